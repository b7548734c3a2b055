"""Choices: boolean, enum and multi-enum types."""

from __future__ import annotations

import sqlalchemy as sa

from ..sqltypes import UTC, json_type
from .base import CHOICE_OPS, FieldType, FieldValueError


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
