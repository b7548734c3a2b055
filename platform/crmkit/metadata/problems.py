"""Problems found in a configuration, reported as ``file:line:column: message``.

A loader or checker never raises on the first mistake: it collects every
problem, so an admin fixes a broken config in one round.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .loader import Document


#: The longest value a message shows, and the longest message: a problem
#: points at a value, it never echoes a huge one whole.
MAX_SHOWN = 60
MAX_MESSAGE = 500
MAX_PER_FILE = 100


def shown(value: object, limit: int = MAX_SHOWN) -> str:
    """``value`` as text for a message, cut to ``limit`` characters, control
    characters escaped (a message goes to a terminal: no NUL, no escape codes)."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) > limit:
        text = f"{text[:limit - 1]}…"
    if not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int
    column: int
    message: str
    hint: str = ""

    def __post_init__(self) -> None:
        # The last guard for a message that quotes a value it was handed.
        object.__setattr__(self, "message", shown(self.message, MAX_MESSAGE))
        object.__setattr__(self, "hint", shown(self.hint, MAX_MESSAGE))

    def __str__(self) -> str:
        text = f"{self.file}:{self.line}:{self.column}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


class ConfigError(Exception):
    """The configuration has problems; ``problems`` lists every one of them."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.column, p.message))
        super().__init__("\n".join(str(p) for p in self.problems))


def did_you_mean(word: object, candidates: Iterable[object]) -> str:
    """A hint naming the closest candidate, or an empty string."""
    if not isinstance(word, str) or len(word) > MAX_SHOWN:
        return ""
    close = difflib.get_close_matches(word, [str(c) for c in candidates], n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else ""


@dataclass
class ProblemList:
    """Collects problems against documents that can locate a path in their file,
    at most MAX_PER_FILE of them per file (a file of junk gets a page, not thousands)."""

    problems: list[Problem] = field(default_factory=list)
    _per_file: Counter[str] = field(default_factory=Counter, repr=False)

    def add(self, doc: Document, path: tuple, message: str, hint: str = "", *, key: bool = False) -> None:
        if self._counted(doc.file):
            line, column = doc.locate(path, key=key)
            self.problems.append(Problem(doc.file, line, column, message, hint))

    def add_problem(self, problem: Problem) -> None:
        if self._counted(problem.file):
            self.problems.append(problem)

    def full(self, file: str) -> bool:
        """Whether no more problems of ``file`` will be listed."""
        return self._per_file[file] >= MAX_PER_FILE

    def unlisted(self, file: str) -> None:
        """There is a problem of ``file`` beyond those listed (whoever finds the
        file full stops looking and says so)."""
        self._counted(file)

    def _counted(self, file: str) -> bool:
        """Counts one more problem of ``file``; whether it is listed."""
        self._per_file[file] += 1
        if self._per_file[file] == MAX_PER_FILE + 1:
            self.problems.append(Problem(file, 1, 1, f"more than {MAX_PER_FILE} problems in this file: "
                                         "the rest are not listed"))
        return self._per_file[file] <= MAX_PER_FILE

    def __bool__(self) -> bool:
        return bool(self.problems)

    def raise_if_any(self) -> None:
        if self.problems:
            raise ConfigError(self.problems)
