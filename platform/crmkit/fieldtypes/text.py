"""Text types: string, text, email, phone, URL."""

from __future__ import annotations

import re

import sqlalchemy as sa

from ..metadata.spec import FieldSpec
from ..sqltypes import UTC
from .base import TEXT_OPS, FieldType, FieldValueError, _storable
from .grammars import EMAIL, NO_NUL, PHONE_LANDLINE, PHONE_MOBILE, PHONE_SERVICE, URL


class StringType(FieldType):
    name = "string"
    keys = frozenset({"max_length", "min_length", "pattern"})
    operators: tuple[str, ...] = TEXT_OPS
    plain_dump = True
    default_length = 255

    def length(self, f: FieldSpec) -> int:
        return f.max_length or self.default_length

    def column_type(self, f):
        return sa.String(self.length(f))

    def normalise(self, f: FieldSpec, text: str) -> str:
        """The text as stored, once it has passed the checks (surrounding spaces trimmed)."""
        return text.strip()

    def coerce(self, f, value, tz=UTC):
        """A JSON string. Length and pattern are checked on the text as sent,
        as the OpenAPI document states them; the stored text is then trimmed."""
        if not isinstance(value, str):
            raise FieldValueError("must be a string")
        text = _storable(value)
        if len(text) > self.length(f):
            raise FieldValueError(f"must be at most {self.length(f)} characters")
        if f.min_length is not None and len(text) < f.min_length:
            raise FieldValueError(f"must be at least {f.min_length} characters")
        if f.pattern and not re.fullmatch(f.pattern, text, re.ASCII):
            raise FieldValueError(f"does not match the pattern {f.pattern}")
        return self.normalise(f, text)

    def json_schema(self, f):
        schema: dict = {"type": "string", "maxLength": self.length(f), "pattern": NO_NUL}
        if f.min_length:
            schema["minLength"] = f.min_length
        if f.pattern:  # JSON Schema patterns search; the field's must match the whole text
            schema["allOf"] = [{"pattern": f"^(?:{f.pattern})$"}]
        return schema

    def check(self, f, report):
        if f.pattern:
            try:
                re.compile(f.pattern)
            except re.error as exc:
                report(f"invalid regular expression: {exc}", "pattern")
        if f.min_length and f.max_length and f.min_length > f.max_length:
            report("min_length is greater than max_length", "min_length")


class TextType(StringType):
    name = "text"
    keys = frozenset({"max_length", "min_length"})
    operators: tuple[str, ...] = ("contains", "startswith", "isnull", "eq", "ne")
    sortable = False
    default_length = 100_000

    def column_type(self, f):
        return sa.Text()

    def normalise(self, f, text):
        return text


class EmailType(StringType):
    name = "email"
    keys = frozenset()
    default_length = 254

    def normalise(self, f, text):
        if not EMAIL.fullmatch(text):
            raise FieldValueError("is not a valid email address")
        local, _, domain = text.rpartition("@")
        return f"{local}@{domain.lower()}"

    def json_schema(self, f):
        return {"type": "string", "pattern": EMAIL.pattern, "maxLength": 254, "examples": ["zhang.san@example.com"]}


class PhoneType(StringType):
    """Mainland mobiles (11 digits starting with 1, optionally after +86 or
    0086), landlines (区号-号码[-分机], the area code also in brackets) and
    400/800 numbers; spaces or hyphens between the groups. Stored as 13812345678,
    010-12345678[-123] or 400-123-4567."""

    name = "phone"
    keys = frozenset({"mobile_only"})
    default_length = 24

    def normalise(self, f, text):
        digits = re.sub(r"[^0-9]", "", text)
        if PHONE_MOBILE.fullmatch(text):
            return digits[-11:]
        if f.mobile_only:
            raise FieldValueError("is not a mobile number (11 digits starting with 1)")
        landline = PHONE_LANDLINE.fullmatch(text)
        if landline:
            area = re.sub(r"[^0-9]", "", landline.group(1))
            number = f"{area}-{landline.group(2)}"
            return f"{number}-{landline.group(3)}" if landline.group(3) else number
        if PHONE_SERVICE.fullmatch(text):
            return f"{digits[:3]}-{digits[3:6]}-{digits[6:]}"
        raise FieldValueError("is not a phone number (a mobile like 13812345678 or a landline like 010-12345678)")

    def json_schema(self, f):
        pattern = PHONE_MOBILE.pattern if f.mobile_only else \
            f"{PHONE_MOBILE.pattern}|{PHONE_LANDLINE.pattern}|{PHONE_SERVICE.pattern}"
        return {"type": "string", "maxLength": 24, "pattern": pattern,
                "examples": ["13812345678", "+86 138-1234-5678", "010-12345678", "(0755) 1234-5678", "400-123-4567"]}


class UrlType(StringType):
    name = "url"
    keys = frozenset()
    default_length = 2048

    def normalise(self, f, text):
        if not URL.fullmatch(text):
            raise FieldValueError("is not an http(s) URL")
        return text

    def json_schema(self, f):
        return {"type": "string", "pattern": URL.pattern, "maxLength": 2048, "examples": ["https://example.com"]}
