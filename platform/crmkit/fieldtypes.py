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
from urllib.parse import urlsplit
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

MOBILE = re.compile(r"^1[3-9]\d{9}$")
LANDLINE = re.compile(r"^0\d{2,3}-\d{7,8}(-\d{1,6})?$")
SERVICE_NUMBER = re.compile(r"^[48]00-?\d{3}-?\d{4}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
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
#: Enough digits for any decimal field (precision is at most 18), so rounding never overflows.
DECIMAL_CONTEXT = Context(prec=60)


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
        return text.strip()

    def coerce(self, f, value, tz=UTC):
        if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
            raise FieldValueError("must be a string")
        text = self.normalise(f, _storable(str(value)))
        if len(text) > self.length(f):
            raise FieldValueError(f"must be at most {self.length(f)} characters")
        if f.min_length is not None and len(text) < f.min_length:
            raise FieldValueError(f"must be at least {f.min_length} characters")
        if f.pattern and not re.fullmatch(f.pattern, text):
            raise FieldValueError(f"does not match the pattern {f.pattern}")
        return text

    def json_schema(self, f):
        schema: dict = {"type": "string", "maxLength": self.length(f)}
        if f.min_length:
            schema["minLength"] = f.min_length
        if f.pattern:
            schema["pattern"] = f.pattern
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
    operators = ("contains", "startswith", "isnull", "eq", "ne")
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
        text = text.strip()
        if not EMAIL.match(text):
            raise FieldValueError("is not a valid email address")
        local, _, domain = text.rpartition("@")
        return f"{local}@{domain.lower()}"

    def json_schema(self, f):
        return {"type": "string", "format": "email", "maxLength": 254}


class PhoneType(StringType):
    """Mainland mobiles (11 digits starting with 1), landlines (区号-号码) and 400/800 numbers."""

    name = "phone"
    keys = frozenset({"mobile_only"})
    default_length = 24

    def normalise(self, f, text):
        compact = re.sub(r"[\s()（）]", "", text)
        digits = compact.replace("-", "")
        for prefix in ("+86", "0086"):
            if digits.startswith(prefix) and MOBILE.match(digits[len(prefix):]):
                digits = digits[len(prefix):]
        if MOBILE.match(digits):
            return digits
        if f.mobile_only:
            raise FieldValueError("is not a mobile number (11 digits starting with 1)")
        if LANDLINE.match(compact) or SERVICE_NUMBER.match(compact):
            return compact
        if re.fullmatch(r"0\d{9,11}", digits):
            return f"{digits[:3]}-{digits[3:]}" if digits[1] in "12" else f"{digits[:4]}-{digits[4:]}"
        raise FieldValueError("is not a phone number (a mobile like 13812345678 or a landline like 010-12345678)")

    def json_schema(self, f):
        pattern = MOBILE.pattern if f.mobile_only else None
        schema = {"type": "string", "maxLength": 24, "examples": ["13812345678"]}
        if pattern:
            schema["pattern"] = pattern
        return schema


class UrlType(StringType):
    name = "url"
    keys = frozenset()
    default_length = 2048

    def normalise(self, f, text):
        text = text.strip()
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise FieldValueError("is not an http(s) URL")
        return text

    def json_schema(self, f):
        return {"type": "string", "format": "uri", "maxLength": 2048}


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
        return {"type": "string", "readOnly": True, "examples": [render_autonumber(f.pattern or "", dt.datetime(2026, 1, 1), 1)]}

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
                    + ", ".join("{%s}" % t for t in AUTONUMBER_DATE_TOKENS) + " and {seq:N}")
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
        if isinstance(value, bool):
            raise FieldValueError("must be an integer")
        if isinstance(value, int):
            number = value
        elif isinstance(value, Decimal) and value == value.to_integral_value():
            number = int(value)
        elif isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
            number = int(value)
        else:
            raise FieldValueError("must be an integer")
        if abs(number) > 2**63 - 1:
            raise FieldValueError("is too large")
        _bounds(f, number, int)
        return number

    def json_schema(self, f):
        schema: dict = {"type": "integer"}
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
        if isinstance(value, bool) or not isinstance(value, (int, Decimal, str, float)):
            raise FieldValueError("must be a number")
        try:
            number = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
        except InvalidOperation:
            raise FieldValueError("must be a number") from None
        if not number.is_finite():
            raise FieldValueError("must be a finite number")
        scale = self.scale(f)
        if number and number.adjusted() >= self.precision(f) - scale:
            raise FieldValueError("is too large")
        quantum = Decimal(1).scaleb(-scale)
        exponent = number.as_tuple().exponent  # an int: the number is finite
        if isinstance(exponent, int) and exponent < -scale and number != number.quantize(quantum,
                                                                                        context=DECIMAL_CONTEXT):
            raise FieldValueError(f"has more than {scale} digits after the decimal point")
        number = number.quantize(quantum, context=DECIMAL_CONTEXT)
        if len(number.as_tuple().digits) > self.precision(f):
            raise FieldValueError("is too large")
        _bounds(f, number, lambda b: Decimal(str(b)))
        return number

    def dump(self, f, value):
        return None if value is None else str(value)

    def json_schema(self, f):
        return {"type": "string", "format": "decimal", "pattern": r"^-?\d+(\.\d+)?$",
                "description": f"A decimal number with up to {self.scale(f)} digits after the point, sent as a string or a number and returned as a string."}

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
        schema["description"] = f"An amount in {f.currency or 'CNY'}, as a decimal string with 2 digits after the point."
        schema["x-currency"] = f.currency or "CNY"
        schema["examples"] = ["1280.00"]
        return schema


class BooleanType(FieldType):
    name = "boolean"
    operators = ("eq", "ne", "isnull")
    plain_dump = True
    TRUE = frozenset({"true", "1", "yes", "on"})
    FALSE = frozenset({"false", "0", "no", "off"})

    def column_type(self, f):
        return sa.Boolean()

    def coerce(self, f, value, tz=UTC):
        if isinstance(value, bool):
            return value
        raise FieldValueError("must be true or false")

    def parse_text(self, f, text, tz=UTC):
        lowered = text.strip().lower()
        if lowered in self.TRUE:
            return True
        if lowered in self.FALSE:
            return False
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
                value = dt.date.fromisoformat(value.strip())
            except ValueError:
                raise FieldValueError("must be a date like 2026-01-31") from None
        _bounds(f, value, lambda b: b if isinstance(b, dt.date) else dt.date.fromisoformat(str(b)))
        return value

    def dump(self, f, value):
        return None if value is None else value.isoformat()

    def json_schema(self, f):
        return {"type": "string", "format": "date"}

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
        if isinstance(value, dt.datetime):
            moment = value
        elif isinstance(value, str):
            text = value.strip()
            try:
                moment = dt.datetime.fromisoformat(text)
            except ValueError:
                raise FieldValueError("must be a date-time like 2026-01-31T09:30:00+08:00") from None
        else:
            raise FieldValueError("must be a date-time like 2026-01-31T09:30:00+08:00")
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
        return {"type": "string", "format": "date-time"}

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
        if value in f.option_values and not isinstance(value, bool):
            return value
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
    operators = ("contains", "isnull")
    sortable = False
    plain_dump = False

    def column_type(self, f):
        return json_type()

    def coerce(self, f, value, tz=UTC):
        if not isinstance(value, list):
            raise FieldValueError("must be a list of options")
        chosen = []
        for item in value:
            if item not in f.option_values or isinstance(item, bool):
                raise FieldValueError(f"'{item}' is not one of: {', '.join(str(v) for v in f.option_values)}")
            if item not in chosen:
                chosen.append(item)
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
        return {"type": "array", "uniqueItems": True, "items": {"enum": list(f.option_values)},
                "x-labels": {str(o.value): dict(o.label) for o in f.options}}


class RefType(FieldType):
    """A many-to-one reference, stored as ``<name>_id``, sent and returned as the id."""

    name = "ref"
    keys = frozenset({"to", "on_delete"})
    operators = CHOICE_OPS
    plain_dump = True

    def column_type(self, f):
        return sa.Integer()

    def coerce(self, f, value, tz=UTC):
        if isinstance(value, dict) and set(value) == {"id"}:
            value = value["id"]
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 10:
                value = int(value)
            else:
                raise FieldValueError(f"must be the id of a {f.to}")
        if value < 1 or value > MAX_ID:
            raise FieldValueError(f"must be the id of a {f.to}")
        return value

    def json_schema(self, f):
        return {"type": "integer", "minimum": 1, "description": f"The id of a {f.to}.", "x-ref": f.to}


class JsonType(FieldType):
    name = "json"
    operators = ("isnull",)
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
        return {}


_JSON_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def _plain_json(value):
    """Decimals (from the exact JSON parser) back to numbers for storage."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_plain_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain_json(v) for k, v in value.items()}
    return value


class RegionType(FieldType):
    """省/市/区 as the 6-digit administrative code (440106 = 广东省广州市天河区)."""

    name = "region"
    keys = frozenset({"level"})
    operators = ("eq", "ne", "in", "nin", "isnull", "within")
    plain_dump = True

    def column_type(self, f):
        return sa.String(6)

    def coerce(self, f, value, tz=UTC):
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not re.fullmatch(r"\d{6}", value.strip()):
            raise FieldValueError("must be a 6-digit region code like 440106")
        code = value.strip()
        region = regions.get(code)
        if region is None:
            raise FieldValueError(f"'{code}' is not a known region code")
        if region.depth > regions.LEVELS.index(f.level or "district"):
            raise FieldValueError(f"must be a {f.level} or larger region")
        return code

    def json_schema(self, f):
        return {"type": "string", "pattern": r"^\d{6}$", "examples": ["440106"],
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
