"""The ref type: a many-to-one reference to another record."""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa

from ..sqltypes import UTC
from .base import CHOICE_OPS, FieldType, FieldValueError
from .numbers import MAX_ID, integral, whole_number


class RefType(FieldType):
    """A many-to-one reference, stored as ``<name>_id``, sent and returned as the id."""

    name = "ref"
    keys = frozenset({"to", "on_delete"})
    operators: tuple[str, ...] = CHOICE_OPS
    plain_dump = True

    def column_type(self, f):
        return sa.Integer()

    def coerce(self, f, value, tz=UTC):
        if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
            value = integral(value, MAX_ID) if value.adjusted() < 10 else 0  # 5.0 is an integer in JSON
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
            raise FieldValueError(f"must be the id of a {f.to}")
        return value

    def parse_text(self, f, text, tz=UTC):
        return self.coerce(f, whole_number(text, MAX_ID, f"must be the id of a {f.to}"), tz)

    def json_schema(self, f):
        return {"type": "integer", "minimum": 1, "maximum": MAX_ID, "description": f"The id of a {f.to}.",
                "x-ref": f.to}
