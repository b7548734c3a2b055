"""The autonumber type and its patterns (``HT{YYYYMMDD}{seq:6}``): checked,
rendered, and the period a sequence counts in."""

from __future__ import annotations

import datetime as dt
import re

from ..sqltypes import UTC
from .base import FieldValueError, _storable
from .text import StringType

AUTONUMBER_TOKEN = re.compile(r"\{([^{}]*)\}")
AUTONUMBER_DATE_TOKENS = {"YYYY": "%Y", "YY": "%y", "MM": "%m", "DD": "%d", "YYYYMMDD": "%Y%m%d",
                          "YYYYMM": "%Y%m", "YYMMDD": "%y%m%d", "YYMM": "%y%m"}


class AutonumberType(StringType):
    """A number the system gives on create, from a pattern like ``HT{YYYYMMDD}{seq:6}``."""

    name = "autonumber"
    keys = frozenset({"pattern"})
    default_length = 64

    def coerce(self, f, value, tz=UTC):
        if not isinstance(value, str):
            raise FieldValueError("must be a string")
        return _storable(value.strip())

    def json_schema(self, f):
        example = render_autonumber(f.pattern or "", dt.datetime(2026, 1, 1), 1)
        return {"type": "string", "readOnly": True, "examples": [example]}

    def check(self, f, report):
        if not f.pattern:
            report("an autonumber field needs a pattern, e.g. HT{YYYYMMDD}{seq:6}", "type")
            return
        problem = autonumber_problem(f.pattern)
        if problem:
            report(problem, "pattern")


def autonumber_problem(pattern: str) -> str:
    seqs = 0
    for token in AUTONUMBER_TOKEN.findall(pattern):
        if token.startswith("seq"):
            seqs += 1
            if not re.fullmatch(r"seq(:[1-9]\d?)?", token):
                return f"bad sequence token {{{token}}}: write {{seq}} or {{seq:6}}"
        elif token not in AUTONUMBER_DATE_TOKENS:
            return (f"unknown token {{{token}}} in pattern; use "
                    + ", ".join(f"{{{t}}}" for t in AUTONUMBER_DATE_TOKENS) + " and {seq:N}")
    if seqs != 1:
        return "the pattern needs exactly one {seq} or {seq:N} token"
    if "{" in AUTONUMBER_TOKEN.sub("", pattern) or "}" in AUTONUMBER_TOKEN.sub("", pattern):
        return "unbalanced braces in pattern"
    return ""


def autonumber_period(pattern: str, now: dt.datetime) -> str:
    """The period a sequence counts in: it restarts when the pattern's date part changes."""
    return "".join(now.strftime(AUTONUMBER_DATE_TOKENS[t]) for t in AUTONUMBER_TOKEN.findall(pattern)
                   if t in AUTONUMBER_DATE_TOKENS)


def render_autonumber(pattern: str, now: dt.datetime, seq: int) -> str:
    def token(match: re.Match) -> str:
        name = match.group(1)
        if name.startswith("seq"):
            width = int(name.partition(":")[2] or 1)
            return str(seq).zfill(width)
        return now.strftime(AUTONUMBER_DATE_TOKENS[name])

    return AUTONUMBER_TOKEN.sub(token, pattern)
