"""Dates and moments: the date and datetime types, and the app's timezone."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from ..sqltypes import UTC, UTCDateTime
from .base import ORDERED_OPS, FieldType, FieldValueError, _bounds
from .grammars import DATE, DATE_TIME


class DateType(FieldType):
    name = "date"
    keys = frozenset({"min", "max"})
    operators = ORDERED_OPS

    def column_type(self, f):
        return sa.Date()

    def coerce(self, f, value, tz=UTC):
        if isinstance(value, dt.datetime) or not isinstance(value, (str, dt.date)):
            raise FieldValueError("must be a date like 2026-01-31")
        if isinstance(value, str):
            try:
                if not DATE.fullmatch(value):
                    raise ValueError(value)
                value = dt.date.fromisoformat(value)
            except ValueError:
                raise FieldValueError("must be a date like 2026-01-31") from None
        _bounds(f, value, lambda b: b if isinstance(b, dt.date) else dt.date.fromisoformat(str(b)))
        return value

    def dump(self, f, value):
        return None if value is None else value.isoformat()

    def json_schema(self, f):
        schema: dict = {"type": "string", "format": "date", "pattern": DATE.pattern}
        if f.min is not None or f.max is not None:
            schema["description"] = f"From {f.min or 'any date'} to {f.max or 'any date'}."
            schema["x-minimum"], schema["x-maximum"] = f.min, f.max
        return schema

    def default_value(self, f, tz):
        if f.default == "today":
            return dt.datetime.now(tz).date()
        return None if f.default is None else self.coerce(f, f.default)

    def check(self, f, report):
        for key in ("min", "max"):
            value = getattr(f, key)
            if value is not None:
                try:
                    dt.date.fromisoformat(str(value))
                except ValueError:
                    report(f"{key} must be a date like 2026-01-31", key)


class DateTimeType(FieldType):
    """A moment in time; stored in UTC, returned as ISO 8601 in UTC. A value
    without an offset is read in the app's timezone."""

    name = "datetime"
    operators = ORDERED_OPS

    def column_type(self, f):
        return UTCDateTime()

    def coerce(self, f, value, tz=UTC):
        """A JSON value: RFC 3339 (seconds and an offset, as JSON Schema's
        date-time says), or a datetime object from Python callers."""
        if isinstance(value, str):
            if not DATE_TIME.fullmatch(value):
                raise FieldValueError("must be a date-time with an offset, like 2026-01-31T09:30:00+08:00")
            return self.parse_text(f, value, tz)
        if not isinstance(value, dt.datetime):
            raise FieldValueError("must be a date-time like 2026-01-31T09:30:00+08:00")
        return self._utc(value, tz)

    def parse_text(self, f, text, tz=UTC):
        """A filter or cursor value: RFC 3339, or a date (its midnight in the
        app's timezone)."""
        if DATE.fullmatch(text):
            text += "T00:00:00"
        elif not DATE_TIME.fullmatch(text):
            raise FieldValueError("must be a date-time like 2026-01-31T09:30:00+08:00 or a date like 2026-01-31")
        try:
            moment = dt.datetime.fromisoformat(text.upper())
        except ValueError:
            raise FieldValueError("must be a date-time like 2026-01-31T09:30:00+08:00") from None
        return self._utc(moment, tz)

    def _utc(self, moment: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=tz)
        try:
            return moment.astimezone(UTC)
        except OverflowError:  # 0001-01-01 east of UTC, 9999-12-31 west of it
            raise FieldValueError("is out of range") from None

    def dump(self, f, value):
        if value is None:
            return None
        if value.tzinfo is not UTC:  # values read from the database are UTC already
            value = value.astimezone(UTC)
        return value.isoformat()[:-6] + "Z"  # ...+00:00 -> ...Z

    def json_schema(self, f):
        return {"type": "string", "format": "date-time", "pattern": DATE_TIME.pattern,
                "examples": ["2026-01-31T09:30:00+08:00"]}

    def default_value(self, f, tz):
        if f.default == "now":
            return dt.datetime.now(UTC)
        return None if f.default is None else self.coerce(f, f.default, tz)


def app_timezone(name: str) -> dt.tzinfo:
    """The app's timezone; the checker refuses a name that does not exist, so
    there is no silent fallback here."""
    return ZoneInfo(name)
