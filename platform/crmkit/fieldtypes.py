"""Field types: how each kind of field is stored, checked, read and written.

One object per type holds everything about it, so adding a type (a plugin may)
is adding one object: its column type, how a value from JSON or a query string
is coerced and validated, how it is written back to JSON, its JSON Schema for
the OpenAPI document, the filter operators it supports, and the config keys it
accepts.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from decimal import Context, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from . import regions
from .hookspecs import hookimpl
from .metadata.spec import FieldSpec, label_text
from .sqltypes import UTC, ExactDecimal, UTCDateTime, json_type

COMMON_KEYS = frozenset({"type", "label", "help", "required", "unique", "index", "readonly", "default"})
TEXT_OPS = ("eq", "ne", "in", "nin", "contains", "startswith", "isnull", "gt", "gte", "lt", "lte")
ORDERED_OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "isnull")
CHOICE_OPS = ("eq", "ne", "in", "nin", "isnull")

# Input grammars, shared by the server and the OpenAPI document: explicit
# character classes only, so Python and JSON Schema (ECMA-262) read them alike.
PHONE_MOBILE = re.compile(r"^(?:(?:\+86|0086)[ -]?)?1[3-9][0-9][ -]?[0-9]{4}[ -]?[0-9]{4}$")
PHONE_LANDLINE = re.compile(
    r"^(0(?:10|2[0-9]|[3-9][0-9]{2})[ -]?|\(0(?:10|2[0-9]|[3-9][0-9]{2})\) ?|（0(?:10|2[0-9]|[3-9][0-9]{2})）)"
    r"([0-9]{7,8})(?:-([0-9]{1,6}))?$")
PHONE_SERVICE = re.compile(r"^[48]00[ -]?[0-9]{3}[ -]?[0-9]{4}$")
EMAIL = re.compile(r"^[^@\x00-\x20\x7f]+@[^@\x00-\x20\x7f.]+(?:\.[^@\x00-\x20\x7f.]+)+$")
URL = re.compile(r"^[Hh][Tt][Tt][Pp][Ss]?://[^/?#\x00-\x20\x7f]+(?:[/?#][^\x00-\x20\x7f]*)?$")
DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
#: RFC 3339 (JSON Schema's date-time): seconds and an offset are required.
DATE_TIME = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
                       r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})$")
REGION_CODE = re.compile(r"^[0-9]{6}$")
NO_NUL = "^[^\\x00]*$"
#: What Python's str.strip() or JSON Schema's \\s counts as blank, and control characters.
BLANK = "\\x00-\\x20\\x7f-\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"
#: A name: something besides blanks, no NUL (as the server checks with NAMED).
NAME_TEXT = f"^[^\\x00]*[^{BLANK}][^\\x00]*$"
NAMED = re.compile(NAME_TEXT)
#: A decimal as a JSON string: plain digits and a point (the field's pattern narrows it).
PLAIN_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
#: A decimal in a query string (filters, cursors): an exponent is fair there.
DECIMAL_TEXT = re.compile(r"-?(?:[0-9]+(?:\.[0-9]+)?)(?:[eE][+-]?[0-9]{1,6})?")
AUTONUMBER_TOKEN = re.compile(r"\{([^{}]*)\}")
AUTONUMBER_DATE_TOKENS = {"YYYY": "%Y", "YY": "%y", "MM": "%m", "DD": "%d", "YYYYMMDD": "%Y%m%d",
                          "YYYYMM": "%Y%m", "YYMMDD": "%y%m%d", "YYMM": "%y%m"}


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


#: Ids are 32-bit integer columns; a larger number cannot be the id of anything.
MAX_ID = 2**31 - 1
#: Integer fields are 64-bit columns.
MAX_INTEGER = 2**63 - 1
#: Enough digits for any decimal field (precision is at most 18), so rounding never overflows.
DECIMAL_CONTEXT = Context(prec=60)
WHOLE_NUMBER = re.compile(r"-?[0-9]+")


def whole_number(text: str, maximum: int = MAX_INTEGER, message: str = "must be a whole number") -> int:
    """A whole number written in ASCII digits (a minus allowed), within ±maximum.

    The digits are counted before anything converts them: int() of a long
    digit string costs time quadratic in its length (Python refuses beyond
    4,300 digits with a ValueError)."""
    if not WHOLE_NUMBER.fullmatch(text):
        raise FieldValueError(message)
    if len(text.lstrip("-").lstrip("0")) > len(str(maximum)):
        raise FieldValueError("is out of range")
    number = int(text)
    if abs(number) > maximum:
        raise FieldValueError("is out of range")
    return number


def integral(number: Decimal, maximum: int = MAX_INTEGER) -> int:
    """A whole Decimal as an int, its magnitude checked first: int() of
    Decimal('1e999999999') builds a billion-digit number and never returns."""
    if not number.is_finite() or number != number.to_integral_value():
        raise FieldValueError("must be an integer")
    if number and number.adjusted() >= len(str(maximum)):
        raise FieldValueError("is too large")
    value = int(number)
    if abs(value) > maximum:
        raise FieldValueError("is too large")
    return value


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


class IntegerType(FieldType):
    name = "integer"
    keys = frozenset({"min", "max"})
    operators = ORDERED_OPS
    plain_dump = True

    def column_type(self, f):
        return sa.BigInteger()

    def coerce(self, f, value, tz=UTC):
        if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
            raise FieldValueError("must be an integer")
        number = integral(value) if isinstance(value, Decimal) else value
        if abs(number) > MAX_INTEGER:
            raise FieldValueError("is too large")
        _bounds(f, number, int)
        return number

    def parse_text(self, f, text, tz=UTC):
        return self.coerce(f, whole_number(text), tz)

    def json_schema(self, f):
        schema: dict = {"type": "integer", "minimum": -MAX_INTEGER, "maximum": MAX_INTEGER}
        if f.min is not None:
            schema["minimum"] = f.min
        if f.max is not None:
            schema["maximum"] = f.max
        return schema

    def check(self, f, report):
        for key in ("min", "max"):
            value = getattr(f, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                report(f"{key} must be an integer", key)


class DecimalType(FieldType):
    name = "decimal"
    keys = frozenset({"min", "max", "precision", "scale"})
    operators = ORDERED_OPS
    default_scale = 4

    def scale(self, f: FieldSpec) -> int:
        return self.default_scale if f.scale is None else f.scale

    def precision(self, f: FieldSpec) -> int:
        return f.precision or 18

    def column_type(self, f):
        return ExactDecimal(self.precision(f), self.scale(f))

    def coerce(self, f, value, tz=UTC):
        """A JSON number (read exactly, as Decimal) or a string in the field's
        grammar (``pattern``: plain digits, no exponent, no leading zeros)."""
        if isinstance(value, bool) or not isinstance(value, (int, Decimal, str, float)):
            raise FieldValueError("must be a number")
        if isinstance(value, str):
            if not PLAIN_DECIMAL.fullmatch(value):
                raise FieldValueError(f"must be a number like {self.example(f)}")
            number = self._checked(f, Decimal(value))
            if not re.fullmatch(self.pattern(f), value):  # the rest of the grammar: leading zeros, a needless sign
                raise FieldValueError(f"must be written like {self.example(f)} (no leading zeros)")
            return number
        number = value if isinstance(value, Decimal) else Decimal(repr(value) if isinstance(value, float) else value)
        return self._checked(f, number)

    def parse_text(self, f, text, tz=UTC):
        """A filter or cursor value: exponents allowed (1e3), still within the field's size."""
        if not DECIMAL_TEXT.fullmatch(text):
            raise FieldValueError("must be a number")
        return self._checked(f, Decimal(text))

    def pattern(self, f: FieldSpec) -> str:
        """The grammar of the field's values as strings (the OpenAPI document's pattern)."""
        scale = self.scale(f)
        whole = self.precision(f) - scale
        sign = "" if f.min is not None and Decimal(str(f.min)) >= 0 else "-?"
        fraction = f"(?:\\.[0-9]{{1,{scale}}})?" if scale else ""
        return f"^{sign}(?:0|[1-9][0-9]{{0,{whole - 1}}}){fraction}$"

    def example(self, f: FieldSpec) -> str:
        return "12." + "50"[: self.scale(f)] if self.scale(f) else "12"

    def _checked(self, f: FieldSpec, number: Decimal) -> Decimal:
        """The number within the field's size, scale and bounds, quantized to its scale.
        Every check compares exponents before any arithmetic that could grow with them."""
        if not number.is_finite():
            raise FieldValueError("must be a finite number")
        scale = self.scale(f)
        if number and number.adjusted() >= self.precision(f) - scale:
            raise FieldValueError("is too large")
        quantum = Decimal(1).scaleb(-scale)
        if number.adjusted() - len(number.as_tuple().digits) + 1 < -scale \
                and number != number.quantize(quantum, context=DECIMAL_CONTEXT):  # its last digit's place
            raise FieldValueError(f"has more than {scale} digits after the decimal point")
        number = number.quantize(quantum, context=DECIMAL_CONTEXT)
        if len(number.as_tuple().digits) > self.precision(f):
            raise FieldValueError("is too large")
        _bounds(f, number, lambda b: Decimal(str(b)))
        return number

    def dump(self, f, value):
        return None if value is None else str(value)

    def json_schema(self, f):
        scale = self.scale(f)
        limit = 10 ** (self.precision(f) - scale)
        schema: dict = {
            "type": ["string", "number"], "pattern": self.pattern(f),
            "multipleOf": 1 if scale == 0 else float(Decimal(1).scaleb(-scale)),
            "exclusiveMinimum": -limit, "exclusiveMaximum": limit,
            "description": f"A decimal number with at most {scale} digits after the point, sent as a JSON "
                           "number or a string and returned as a string.",
            "examples": [self.example(f)]}
        for key, bound in (("minimum", f.min), ("maximum", f.max)):
            if bound is not None:
                number = Decimal(str(bound))
                schema[key] = int(number) if number == number.to_integral_value() else float(number)
        return schema

    def check(self, f, report):
        if f.scale is not None and f.precision is not None and f.scale >= f.precision:
            report("scale must be smaller than precision", "scale")
        for key in ("min", "max"):
            value = getattr(f, key)
            if value is not None:
                try:
                    Decimal(str(value))
                except InvalidOperation:
                    report(f"{key} must be a number", key)


class MoneyType(DecimalType):
    """An exact amount in a currency (CNY by default); never a float."""

    name = "money"
    keys = frozenset({"min", "max", "currency", "precision"})
    default_scale = 2

    def json_schema(self, f):
        schema = super().json_schema(f)
        schema["description"] = (f"An amount in {f.currency or 'CNY'}: a JSON number or a string with at most "
                                 "2 digits after the point; returned as a string with 2.")
        schema["x-currency"] = f.currency or "CNY"
        schema["examples"] = ["1280.00"]
        return schema


class BooleanType(FieldType):
    name = "boolean"
    operators: tuple[str, ...] = ("eq", "ne", "isnull")
    plain_dump = True

    def column_type(self, f):
        return sa.Boolean()

    def coerce(self, f, value, tz=UTC):
        if isinstance(value, bool):
            return value
        raise FieldValueError("must be true or false")

    def parse_text(self, f, text, tz=UTC):
        if text in ("true", "false"):  # as JSON and the OpenAPI document write them
            return text == "true"
        raise FieldValueError("must be true or false")

    def json_schema(self, f):
        return {"type": "boolean"}


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


class EnumType(FieldType):
    name = "enum"
    keys = frozenset({"options"})
    operators: tuple[str, ...] = CHOICE_OPS
    plain_dump = True

    def column_type(self, f):
        if all(isinstance(v, int) for v in f.option_values):
            return sa.Integer()
        return sa.String(max([len(str(v)) for v in f.option_values] + [32]))

    def coerce(self, f, value, tz=UTC):
        if not isinstance(value, bool):
            for option in f.option_values:  # the option itself: JSON's 2.0 is the option 2
                if option == value and isinstance(option, str) == isinstance(value, str):
                    return option
        raise FieldValueError(f"must be one of: {', '.join(str(v) for v in f.option_values)}")

    def parse_text(self, f, text, tz=UTC):
        for option in f.option_values:
            if str(option) == text:
                return option
        return self.coerce(f, text, tz)

    def json_schema(self, f):
        return {"enum": list(f.option_values),
                "x-labels": {str(o.value): dict(o.label) for o in f.options}}

    def check(self, f, report):
        if not f.options:
            report(f"an {self.name} field needs options", "type")
        values = [str(v) for v in f.option_values]
        seen = set()
        for value in values:
            if value in seen:
                report(f"option '{value}' is listed twice", "options")
            seen.add(value)


class MultiEnumType(EnumType):
    name = "multi_enum"
    operators: tuple[str, ...] = ("contains", "isnull")
    sortable = False
    plain_dump = False

    def column_type(self, f):
        return json_type()

    def coerce(self, f, value, tz=UTC):
        if not isinstance(value, list):
            raise FieldValueError("must be a list of options")
        chosen = []
        for item in value:
            try:
                option = EnumType.coerce(self, f, item, tz)
            except FieldValueError:
                shown = str(item) if len(str(item)) <= 40 else str(item)[:40] + "…"
                options = ", ".join(str(v) for v in f.option_values)
                raise FieldValueError(f"'{shown}' is not one of: {options}") from None
            if option not in chosen:
                chosen.append(option)
        return chosen

    def parse_text(self, f, text, tz=UTC):
        # One option (multi_enum filters ask whether the list contains it).
        for option in f.option_values:
            if str(option) == text:
                return option
        return EnumType.coerce(self, f, text, tz)

    def dump(self, f, value):
        return [] if value is None else list(value)

    def json_schema(self, f):
        return {"type": "array", "items": {"enum": list(f.option_values)},
                "description": "Options in order; one given twice counts once.",
                "x-labels": {str(o.value): dict(o.label) for o in f.options}}


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


class RegionType(FieldType):
    """省/市/区 as the 6-digit administrative code (440106 = 广东省广州市天河区)."""

    name = "region"
    keys = frozenset({"level"})
    operators: tuple[str, ...] = ("eq", "ne", "in", "nin", "isnull", "within")
    plain_dump = True

    def column_type(self, f):
        return sa.String(6)

    def coerce(self, f, value, tz=UTC):
        if not isinstance(value, str) or not REGION_CODE.fullmatch(value):
            raise FieldValueError("must be a 6-digit region code like 440106")
        code = value
        region = regions.get(code)
        if region is None:
            raise FieldValueError(f"'{code}' is not a known region code")
        if region.depth > regions.LEVELS.index(f.level or "district"):
            raise FieldValueError(f"must be a {f.level} or larger region")
        return code

    def json_schema(self, f):
        level = (f.level or "district").capitalize()
        return {"$ref": f"#/components/schemas/Region{level}", "examples": ["440106"],
                "description": "A 6-digit administrative division code (GB/T 2260); names at /api/v1/regions."}


BUILTIN_TYPES: tuple[FieldType, ...] = (
    StringType(), TextType(), IntegerType(), DecimalType(), MoneyType(), BooleanType(),
    DateType(), DateTimeType(), EmailType(), PhoneType(), UrlType(), EnumType(), MultiEnumType(),
    RefType(), JsonType(), RegionType(), AutonumberType(),
)


def app_timezone(name: str) -> dt.tzinfo:
    """The app's timezone; the checker refuses a name that does not exist, so
    there is no silent fallback here."""
    return ZoneInfo(name)


def describe(f: FieldSpec) -> str:
    return label_text(f.label, "en", f.name)


@hookimpl
def crmkit_field_types() -> list[FieldType]:
    """The built-in types, contributed like a plugin's (crmkit.fieldtypes is an internal plugin)."""
    return list(BUILTIN_TYPES)
