"""The JSON type: any JSON value, stored as JSON (no NUL, numbers within what
every reader takes), and its schema for the OpenAPI document."""

from __future__ import annotations

import re
from decimal import Decimal

from ..sqltypes import UTC, json_type
from .base import FieldType, FieldValueError


class JsonType(FieldType):
    name = "json"
    operators: tuple[str, ...] = ("isnull",)
    sortable = False
    max_bytes = 65536

    def column_type(self, f):
        return json_type()

    def coerce(self, f, value, tz=UTC):
        import json

        try:
            text = json.dumps(value, default=str, ensure_ascii=False, allow_nan=False)
            size = len(text.encode("utf-8"))  # a lone surrogate fails here (UnicodeEncodeError)
        except (TypeError, ValueError):
            raise FieldValueError("must be JSON (no NaN, Infinity or lone surrogates)") from None
        if _JSON_NUL.search(text):  # PostgreSQL's jsonb cannot hold it
            raise FieldValueError("must not contain NUL characters")
        if size > self.max_bytes:
            raise FieldValueError(f"is larger than {self.max_bytes} bytes")
        return _plain_json(value)

    def parse_text(self, f, text, tz=UTC):
        raise FieldValueError("JSON fields can only be filtered with isnull")

    def json_schema(self, f):
        return {"$ref": "#/components/schemas/JsonValue",
                "description": f"Any JSON value up to {self.max_bytes} bytes (no NUL characters)."}


#: What a JSON field holds, for the OpenAPI document (components/schemas/JsonValue).
MAX_FLOAT = 1.7976931348623157e308
JSON_VALUE_SCHEMA = {"anyOf": [
    {"type": ["null", "boolean"]},
    {"type": "number", "minimum": -MAX_FLOAT, "maximum": MAX_FLOAT},
    {"type": "string", "pattern": "^[^\\x00]*$"},
    {"type": "array", "items": {"$ref": "#/components/schemas/JsonValue"}},
    {"type": "object", "propertyNames": {"pattern": "^[^\\x00]*$"},
     "additionalProperties": {"$ref": "#/components/schemas/JsonValue"}},
]}


_JSON_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def _plain_json(value):
    """Decimals (from the exact JSON parser) back to numbers for storage: whole
    ones within 64 bits as integers, others as floats (what every JSON reader
    takes); a number beyond both is refused."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_FLOAT:
        raise FieldValueError("holds a number too large to store")
    if isinstance(value, Decimal):
        if value == value.to_integral_value() and (not value or value.adjusted() < 19):
            return int(value)  # magnitude checked first: int() of a huge exponent never returns
        number = float(value)
        if number in (float("inf"), float("-inf")):
            raise FieldValueError("holds a number too large to store")
        return number
    if isinstance(value, list):
        return [_plain_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain_json(v) for k, v in value.items()}
    return value
