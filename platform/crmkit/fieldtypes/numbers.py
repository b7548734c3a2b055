"""Numbers: the bounds of ids and integers, whole numbers read safely from text,
and the integer, decimal and money types."""

from __future__ import annotations

import re
from decimal import Context, Decimal, InvalidOperation

import sqlalchemy as sa

from ..metadata.spec import FieldSpec
from ..sqltypes import UTC, ExactDecimal
from .base import ORDERED_OPS, FieldType, FieldValueError, _bounds
from .grammars import DECIMAL_TEXT, PLAIN_DECIMAL

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
