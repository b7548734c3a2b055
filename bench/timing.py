"""The in-process benchmarks' timing loop: alternating rounds.

Each round times every contender once (``repeat`` calls, the time per call
kept), the order turning from round to round, so that a machine busy with
something else slows them alike; the result compares medians, and gives the
range of the per-round ratios.

    timings = alternate({"crmkit": ours, "hand": theirs}, rounds=5)
    timings.ratio("crmkit", "hand")

A benchmark that times several phases per turn walks the same order itself:

    for name in alternating(("plain", "ruled"), rounds):
        with timings.timer((name, "create"), per=records):
            ...
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Timings:
    """Seconds per call of each contender, one figure per round."""

    seconds: dict[Any, list[float]] = field(default_factory=dict)

    def add(self, name: Hashable, seconds: float) -> None:
        self.seconds.setdefault(name, []).append(seconds)

    @contextmanager
    def timer(self, name: Hashable, *, per: int = 1) -> Iterator[None]:
        """Time the block, kept as seconds per one of ``per`` operations."""
        started = time.perf_counter()
        yield
        self.add(name, (time.perf_counter() - started) / max(per, 1))

    def median(self, name: Hashable) -> float:
        return statistics.median(self.seconds[name])

    def ratio(self, name: Hashable, reference: Hashable) -> float:
        """The median of ``name`` over the median of ``reference``."""
        return self.median(name) / self.median(reference)

    def ratio_range(self, name: Hashable, reference: Hashable) -> tuple[float, float]:
        """The lowest and highest ratio of the same round."""
        ratios = [a / b for a, b in zip(self.seconds[name], self.seconds[reference], strict=False) if b > 0]
        return (min(ratios), max(ratios)) if ratios else (float("nan"), float("nan"))


def orders(names: Sequence[str], rounds: int) -> Iterator[tuple[str, ...]]:
    """The order of each round: the names turned by one more each round."""
    names = tuple(names)
    for round_number in range(rounds):
        shift = round_number % len(names)
        yield names[shift:] + names[:shift]


def alternating(names: Sequence[str], rounds: int) -> Iterator[str]:
    """Each name once per round, in the order of :func:`orders`."""
    for order in orders(names, rounds):
        yield from order


def alternate(contenders: Mapping[str, Callable[[], object]], rounds: int, *, repeat: int = 1,
              before_each: Callable[[], object] | None = None, timings: Timings | None = None) -> Timings:
    """Time each contender ``repeat`` times per round for ``rounds`` rounds,
    the order turning every round; ``before_each`` runs (untimed) before each
    contender's turn. Pass ``timings`` to add to them (several actions timed
    in the same rounds)."""
    timings = timings if timings is not None else Timings()
    for name in alternating(list(contenders), rounds):
        if before_each is not None:
            before_each()
        with timings.timer(name, per=repeat):
            for _ in range(repeat):
                contenders[name]()
    return timings
