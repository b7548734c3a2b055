"""Problems found in a configuration, reported as ``file:line:column: message``.

A loader or checker never raises on the first mistake: it collects every
problem, so an admin fixes a broken config in one round.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int
    column: int
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.file}:{self.line}:{self.column}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


class ConfigError(Exception):
    """The configuration has problems; ``problems`` lists every one of them."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.column, p.message))
        super().__init__("\n".join(str(p) for p in self.problems))


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """A hint naming the closest candidate, or an empty string."""
    close = difflib.get_close_matches(str(word), [str(c) for c in candidates], n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else ""


@dataclass
class ProblemList:
    """Collects problems against documents that can locate a path in their file."""

    problems: list[Problem] = field(default_factory=list)

    def add(self, doc, path: tuple, message: str, hint: str = "", *, key: bool = False) -> None:
        line, column = doc.locate(path, key=key)
        self.problems.append(Problem(doc.file, line, column, message, hint))

    def add_problem(self, problem: Problem) -> None:
        self.problems.append(problem)

    def __bool__(self) -> bool:
        return bool(self.problems)

    def raise_if_any(self) -> None:
        if self.problems:
            raise ConfigError(self.problems)
