"""What every field type is: ``FieldType`` (the interface, and its defaults),
``FieldValueError``, the config keys every field accepts, the sets of filter
operators, and the checks that text and numbers share (storable text, min
and max)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from ..metadata.spec import FieldSpec
from ..sqltypes import UTC

COMMON_KEYS = frozenset({"type", "label", "help", "required", "unique", "index", "readonly", "default"})
TEXT_OPS = ("eq", "ne", "in", "nin", "contains", "startswith", "isnull", "gt", "gte", "lt", "lte")
ORDERED_OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "isnull")
CHOICE_OPS = ("eq", "ne", "in", "nin", "isnull")


class FieldValueError(ValueError):
    """A value that does not fit its field; the message is for the person who sent it."""


class FieldType:
    name = ""
    keys: frozenset[str] = frozenset()
    operators: tuple[str, ...] = ("eq", "ne", "in", "nin", "isnull")
    sortable = True
    #: True when dump() returns the stored value unchanged (a fast path for lists).
    plain_dump = False

    def column_type(self, f: FieldSpec) -> sa.types.TypeEngine:
        raise NotImplementedError

    def coerce(self, f: FieldSpec, value: Any, tz: dt.tzinfo = UTC) -> Any:
        """A value from a JSON body, checked against the field's constraints."""
        raise NotImplementedError

    def parse_text(self, f: FieldSpec, text: str, tz: dt.tzinfo = UTC) -> Any:
        """A value from a query string (filters, cursors)."""
        return self.coerce(f, text, tz)

    def dump(self, f: FieldSpec, value: Any) -> Any:
        return value

    def json_schema(self, f: FieldSpec) -> dict:
        raise NotImplementedError

    def check(self, f: FieldSpec, report: Callable[[str, str], None]) -> None:
        """Semantic checks of the field's own config; ``report(message, key)``."""

    def default_value(self, f: FieldSpec, tz: dt.tzinfo) -> Any:
        """The value a new record gets when none is given: the config's default,
        coerced as input is (a money default 0 is stored and shown as 0.00)."""
        if f.default is None:
            return None
        try:
            return self.coerce(f, f.default, tz)
        except FieldValueError:  # the checker refuses such defaults; keep it as written
            return f.default


def _storable(text: str) -> str:
    """Text every database can store: no NUL character, no lone surrogate."""
    if "\x00" in text:
        raise FieldValueError("must not contain NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise FieldValueError("is not valid Unicode text (a lone surrogate)") from None
    return text


def _bounds(f: FieldSpec, value: Any, convert: Callable[[Any], Any]) -> None:
    if f.min is not None and value < convert(f.min):
        raise FieldValueError(f"must be at least {f.min}")
    if f.max is not None and value > convert(f.max):
        raise FieldValueError(f"must be at most {f.max}")
