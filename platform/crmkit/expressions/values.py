"""What values mean, in Python: the evaluation context (now, the app's
timezone, the user) and the few computations both compilers must do the same
way (exact division and rounding, days in the app's timezone, like patterns).

The SQL compiler folds every part of an expression that reads no record
(``today() - 30d``, ``month(today())``) through these same functions, so such
parts cannot disagree between SQL and Python.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

UTC = dt.UTC


@dataclass(frozen=True)
class Context:
    """When, where and for whom an expression is evaluated: ``now`` (aware),
    the app's timezone (AppSpec.timezone: today(), date(), weekday()... are
    days there) and the user me() stands for (None: the system)."""

    timezone: ZoneInfo
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(UTC))
    user_id: int | None = None

    def __post_init__(self) -> None:
        if self.now.tzinfo is None:
            raise ValueError("Context.now must be an aware datetime")

    @classmethod
    def at(cls, timezone: str, *, now: dt.datetime | None = None, user_id: int | None = None) -> Context:
        """A context in the named timezone (e.g. AppSpec.timezone), now by default."""
        return cls(ZoneInfo(timezone), now or dt.datetime.now(UTC), user_id)

    @property
    def today(self) -> dt.date:
        return self.now.astimezone(self.timezone).date()


def moment(value: dt.datetime, timezone: ZoneInfo) -> dt.datetime:
    """An aware UTC datetime; a naive one is read in the app's timezone."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone)
    return value.astimezone(UTC)


def local_date(value: dt.datetime, timezone: ZoneInfo) -> dt.date:
    """The day a moment falls on in the app's timezone."""
    return value.astimezone(timezone).date()


def day_start(day: dt.date, timezone: ZoneInfo) -> dt.datetime:
    """The first moment (UTC) of a day in the app's timezone. Where midnight
    does not exist (a clock moved forward at midnight), the moment the day
    begins: the earlier offset maps the missing midnight onto the change."""
    return dt.datetime.combine(day, dt.time(0), tzinfo=timezone).astimezone(UTC)


def divide(a: int | Decimal, b: int | Decimal, places: int) -> Decimal | None:
    """a / b exactly, rounded half away from zero to ``places`` digits; None
    when b is 0 (a division by zero is null, as on SQLite)."""
    if b == 0:
        return None
    a_top, a_bottom = a.as_integer_ratio()
    b_top, b_bottom = b.as_integer_ratio()
    top, bottom = a_top * b_bottom * 10**places, a_bottom * b_top
    whole, rest = divmod(abs(top), abs(bottom))
    if 2 * rest >= abs(bottom):
        whole += 1
    return Decimal(-whole if (top < 0) != (bottom < 0) else whole).scaleb(-places)


def round_places(value: int | Decimal, places: int) -> int | Decimal:
    """Half away from zero (2.5 -> 3, -2.5 -> -3), as PostgreSQL's round()."""
    if isinstance(value, int):
        return value
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent <= places:
        return value
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def like_regex(pattern: str) -> re.Pattern[str]:
    """A like pattern as a regular expression: % any text, _ one character,
    a backslash takes the next character as it is. Case-sensitive."""
    parts: list[str] = []
    escaped = False
    for char in pattern:
        if escaped:
            parts.append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            parts.append(".*")
        elif char == "_":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.DOTALL)


def like_glob(pattern: str) -> str:
    """A like pattern as an SQLite GLOB pattern (GLOB is case-sensitive, LIKE
    on SQLite is not): * ? and [ are quoted in brackets."""
    parts: list[str] = []
    escaped = False
    for char in pattern:
        if escaped or char not in "\\%_":
            parts.append(f"[{char}]" if char in "*?[" else char)
            escaped = False
        elif char == "\\":
            escaped = True
        else:
            parts.append("*" if char == "%" else "?")
    return "".join(parts)


def like_literal(text: str) -> str:
    """Text as a like pattern that matches only itself."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
