"""Field types: how each kind of field is stored, checked, read and written.

One object per type holds everything about it, so adding a type (a plugin may)
is adding one object: its column type, how a value from JSON or a query string
is coerced and validated, how it is written back to JSON, its JSON Schema for
the OpenAPI document, the filter operators it supports, and the config keys it
accepts.
"""

from __future__ import annotations

from ..hookspecs import hookimpl
from ..metadata.spec import FieldSpec, label_text
from .autonumber import (
    AUTONUMBER_DATE_TOKENS,
    AUTONUMBER_TOKEN,
    AutonumberType,
    autonumber_period,
    autonumber_problem,
    render_autonumber,
)
from .base import CHOICE_OPS, COMMON_KEYS, ORDERED_OPS, TEXT_OPS, FieldType, FieldValueError
from .choices import BooleanType, EnumType, MultiEnumType
from .dates import DateTimeType, DateType, app_timezone
from .grammars import (
    BLANK,
    DATE,
    DATE_TIME,
    DECIMAL_TEXT,
    EMAIL,
    NAME_TEXT,
    NAMED,
    NO_NUL,
    PHONE_LANDLINE,
    PHONE_MOBILE,
    PHONE_SERVICE,
    PLAIN_DECIMAL,
    REGION_CODE,
    URL,
)
from .json_values import JSON_VALUE_SCHEMA, MAX_FLOAT, JsonType
from .numbers import (
    DECIMAL_CONTEXT,
    MAX_ID,
    MAX_INTEGER,
    WHOLE_NUMBER,
    DecimalType,
    IntegerType,
    MoneyType,
    integral,
    whole_number,
)
from .refs import RefType
from .region import RegionType
from .text import EmailType, PhoneType, StringType, TextType, UrlType

__all__ = ["AUTONUMBER_DATE_TOKENS", "AUTONUMBER_TOKEN", "AutonumberType", "BLANK", "BooleanType", "CHOICE_OPS",
           "COMMON_KEYS", "DATE", "DATE_TIME", "DECIMAL_CONTEXT", "DECIMAL_TEXT", "DateTimeType", "DateType",
           "DecimalType", "EMAIL", "EmailType", "EnumType", "FieldType", "FieldValueError", "IntegerType",
           "JSON_VALUE_SCHEMA", "JsonType", "MAX_FLOAT", "MAX_ID", "MAX_INTEGER", "MoneyType", "MultiEnumType",
           "NAMED", "NAME_TEXT", "NO_NUL", "ORDERED_OPS", "PHONE_LANDLINE", "PHONE_MOBILE", "PHONE_SERVICE",
           "PLAIN_DECIMAL", "PhoneType", "REGION_CODE", "RefType", "RegionType", "StringType", "TEXT_OPS", "TextType",
           "URL", "UrlType", "WHOLE_NUMBER", "app_timezone", "autonumber_period", "autonumber_problem", "integral",
           "render_autonumber", "whole_number", "BUILTIN_TYPES", "crmkit_field_types", "describe"]

BUILTIN_TYPES: tuple[FieldType, ...] = (
    StringType(), TextType(), IntegerType(), DecimalType(), MoneyType(), BooleanType(),
    DateType(), DateTimeType(), EmailType(), PhoneType(), UrlType(), EnumType(), MultiEnumType(),
    RefType(), JsonType(), RegionType(), AutonumberType(),
)


def describe(f: FieldSpec) -> str:
    return label_text(f.label, "en", f.name)


@hookimpl
def crmkit_field_types() -> list[FieldType]:
    """The built-in types, contributed like a plugin's (crmkit.fieldtypes is an internal plugin)."""
    return list(BUILTIN_TYPES)
