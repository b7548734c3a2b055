"""The in-process benchmarks' timing loop: alternating rounds.

Each round times every contender once (``repeat`` calls, the time per call
kept), the order turning from round to round, so that a machine busy with
something else slows them alike; the result compares medians, and gives the
range of the per-round ratios.

    timings = alternate({"crmkit": ours, "hand": theirs}, rounds=5)
    timings.median("crmkit") / timings.median("hand")
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass
class Timings:
    """Seconds per call of each contender, one figure per round."""

    seconds: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, seconds: float) -> None:
        self.seconds.setdefault(name, []).append(seconds)

    def median(self, name: str) -> float:
        return statistics.median(self.seconds[name])

    def ratio(self, name: str, reference: str) -> float:
        """The median of ``name`` over the median of ``reference``."""
        return self.median(name) / self.median(reference)

    def ratio_range(self, name: str, reference: str) -> tuple[float, float]:
        """The lowest and highest ratio of the same round."""
        ratios = [a / b for a, b in zip(self.seconds[name], self.seconds[reference], strict=False) if b > 0]
        return (min(ratios), max(ratios)) if ratios else (float("nan"), float("nan"))


def alternate(contenders: Mapping[str, Callable[[], object]], rounds: int, *, repeat: int = 1,
              before_each: Callable[[], object] | None = None, timings: Timings | None = None) -> Timings:
    """Time each contender ``repeat`` times per round for ``rounds`` rounds,
    the order turning every round; ``before_each`` runs (untimed) before each
    contender's turn. Pass ``timings`` to add to them (several actions timed
    in the same rounds)."""
    timings = timings if timings is not None else Timings()
    names = list(contenders)
    for round_number in range(rounds):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            if before_each is not None:
                before_each()
            started = time.perf_counter()
            for _ in range(repeat):
                contenders[name]()
            timings.add(name, (time.perf_counter() - started) / repeat)
    return timings
