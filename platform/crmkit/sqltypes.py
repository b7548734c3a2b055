"""Column types that keep values exact on every database.

SQLite has no exact decimal type (it would store money as a float) and no time
zones; these decorators store scaled integers and UTC there, and use the native
types on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Numeric, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator, TypeEngine

UTC = dt.UTC


class ExactDecimal(TypeDecorator):
    """A decimal with a fixed scale: NUMERIC on PostgreSQL, a scaled BIGINT on SQLite."""

    impl = Numeric
    cache_ok = True

    def __init__(self, precision: int = 18, scale: int = 2) -> None:
        super().__init__()
        self.precision = precision
        self.scale = scale
        self._factor = Decimal(10) ** scale
        self._quantum = Decimal(1).scaleb(-scale)

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(self.precision, self.scale, asdecimal=True))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        value = Decimal(value).quantize(self._quantum)
        if dialect.name == "sqlite":
            return int(value * self._factor)
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if dialect.name == "sqlite":
            return Decimal(int(value)).scaleb(-self.scale)  # exact, with the scale's digits: 1250 -> 12.50
        return Decimal(value).quantize(self._quantum)

    @property
    def python_type(self):
        return Decimal

    def __repr__(self) -> str:
        return f"ExactDecimal({self.precision}, {self.scale})"


class UTCDateTime(TypeDecorator):
    """Aware datetimes in, aware UTC datetimes out; stored as UTC."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "postgresql":
            return dialect.type_descriptor(DateTime(timezone=True))
        return dialect.type_descriptor(DateTime())

    # PostgreSQL: timestamptz through the decorator. A naive value is taken as UTC.

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value, dialect):
        return None if value is None else value.astimezone(UTC)

    # SQLite: the value is UTC text in SQLAlchemy's DateTime format
    # (2026-01-31 08:30:00.000000). It is written and read here directly, with the
    # C datetime functions, instead of through DateTime's regular-expression
    # parser and then the decorator: every read of a record pays for its
    # timestamps. The stored text is the same.

    def bind_processor(self, dialect):
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        # A bulk write stamps every row with the same moment (created_at,
        # updated_at, the audit's at): the last value's text is kept, as one
        # tuple that threads replace whole.
        last: tuple[dt.datetime | None, str | None] = (None, None)

        def process(value):
            nonlocal last
            if value is None:
                return None
            seen, text = last
            if value is seen:
                return text
            moment = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo is not None else value
            text = moment.isoformat(sep=" ", timespec="microseconds")
            last = (value, text)
            return text

        return process

    def result_processor(self, dialect, coltype):
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)
        parse = dt.datetime.fromisoformat

        def process(value):
            if value is None:
                return None
            return parse(value + "+00:00")  # aware UTC in one step (tzinfo is timezone.utc)

        return process

    @property
    def python_type(self):
        return dt.datetime


class UTCDateTimeText(TypeDecorator):
    """A UTCDateTime column on SQLite read straight as the ISO 8601 text the
    API sends (``2026-01-31T08:30:00.250000Z``, as DateTimeType.dump writes
    it), without making a datetime on the way: pages of lists carry several
    timestamps per row."""

    impl = String
    cache_ok = True

    def result_processor(self, dialect, coltype):
        def process(value):
            if value is None:
                return None
            if len(value) == 26 and value[10] == " " and value[19] == ".":  # 2026-01-31 08:30:00.000000
                if value.endswith(".000000"):  # as isoformat() writes a moment without microseconds
                    return f"{value[:10]}T{value[11:19]}Z"
                return f"{value[:10]}T{value[11:]}Z"
            moment = dt.datetime.fromisoformat(value).replace(tzinfo=None)  # written by other means
            return moment.isoformat() + "Z"

        return process


def json_type() -> TypeEngine[Any]:
    """JSON, as JSONB on PostgreSQL (indexable, comparable)."""
    # None is SQL NULL, not the JSON text 'null': "no value" is one thing, which
    # isnull filters find, whether a column was left out or cleared.
    return JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
