"""How values look to a person: labels, money, numbers, dates and choices in
the user's language, moments in the app's timezone (CLDR rules, through Babel).

The one place for every reader that is a person rather than a program: the
screens (text, :func:`field_value`) and the CSV and XLSX exports (cells,
:func:`cell_value`: numbers and dates stay numbers and dates, so a
spreadsheet can sum and sort them). Each kind of value has one rule here,
shared by both. The JSON API keeps the values themselves (codes, ids, UTC).

The functions take the language and timezone as arguments; the Jinja filters
registered by :func:`init_app` bind them to the current request.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable
from decimal import Decimal
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_time, get_datetime_format
from babel.numbers import format_currency, format_decimal, get_currency_precision, get_currency_symbol
from flask import Flask
from flask_babel import force_locale, get_timezone, gettext

from .. import regions
from ..metadata.spec import FieldSpec, Label, humanize, label_text

DEFAULT_CURRENCY = "CNY"
#: Types whose values are shown as they are stored (text the user typed).
VERBATIM = frozenset({"string", "text", "email", "phone", "url", "autonumber"})
#: How the items of a list (a multi-option field) are joined, per language.
LIST_SEPARATOR = {"zh": "、", "en": ", "}


# ------------------------------------------------------------------ labels and languages

def label(value: Label | None, language: str, fallback: str = "") -> str:
    """A config label in the language. An English reader of a label written
    only in Chinese gets the fallback (the humanised name) when there is one;
    otherwise any language beats nothing."""
    if value:
        text = value.get(language)
        if text:
            return text
    if language == "en" and fallback:
        return fallback
    return label_text(value, language, fallback)


def field_label(field: FieldSpec, language: str) -> str:
    return label(field.label, language, humanize(field.name))


def label_object(value: Label | str | None, name: str) -> dict[str, str]:
    """A label as the API gives it: ``{"en": ..., "zh": ...}``. A plain string
    stands for every language; no label at all is the humanised name."""
    if isinstance(value, str):
        return {"en": value, "zh": value}
    if value:
        return dict(value)
    return {"en": humanize(name)}


def choose_locale(asked: str | None, accepted: Iterable[str], locales: tuple[str, ...]) -> str | None:
    """The language to show: the one asked for by name (None if the app does
    not offer it), else the first of the accepted languages (best first) the app
    offers, else the app's first locale."""
    if asked is not None:
        return asked if asked in locales else None
    for language in accepted:
        base = language.lower().split("-")[0]
        if base in locales:
            return base
    return locales[0] if locales else "en"


# ------------------------------------------------------------------ one rule per kind of value

def money(value: Decimal | int | float, language: str, currency: str | None = None) -> str:
    """¥1,280.00 in Chinese and in English alike: the currency's own digits
    and its usual symbol (:func:`usual_symbol`), in the language's pattern
    (Babel's rule; a list formats hundreds of amounts, so the rule is read
    once per language and currency, see :func:`_money_rule`)."""
    rule = _money_rule(language, currency or DEFAULT_CURRENCY)
    if rule is None or isinstance(value, float):
        return _currency(value, currency or DEFAULT_CURRENCY, language)
    return rule(Decimal(value))


@lru_cache(maxsize=64)
def usual_symbol(currency: str) -> str:
    """The symbol the currency's own country writes: ¥ for CNY, $ for USD,
    € for EUR, HK$ for HKD. Babel's symbols depend on the reader's language
    (CN¥ in English, US$ in Chinese), so one amount would look different in
    the two languages of the same screen; a business shows its currency one way."""
    try:
        home: Locale | str = Locale.parse(f"und_{currency[:2]}")  # the likeliest language of its country
    except (ValueError, LookupError, UnknownLocaleError):
        home = "en"  # EUR, XAF…: no single country; CLDR's international symbol
    try:
        return get_currency_symbol(currency, home)
    except (ValueError, LookupError):
        return currency


def _currency(value: Decimal | int | float, currency: str, language: str) -> str:
    """Babel's currency format for the language, with the currency's usual symbol."""
    text = format_currency(value, currency, locale=language)
    return text.replace(get_currency_symbol(currency, language), usual_symbol(currency), 1)


def number(value: Decimal | int | float, language: str) -> str:
    """1,234,567.891: grouped the language's way, every significant digit kept."""
    rule = _number_rule(language)
    if rule is None or isinstance(value, float):
        return format_decimal(value, locale=language, decimal_quantization=False)
    return rule(Decimal(value))


def date(value: dt.date, language: str) -> str:
    """2026年11月30日 (zh), Nov 30, 2026 (en)."""
    if isinstance(value, dt.datetime):
        raise TypeError("a moment is shown with moment(), in the app's timezone")
    return _date(value, language)


@lru_cache(maxsize=4096)
def _date(value: dt.date, language: str) -> str:
    return format_date(value, "medium", locale=language)


@lru_cache(maxsize=2 * 24 * 60 * 4)
def _time(hour: int, minute: int, language: str) -> str:
    return format_time(dt.time(hour, minute), "short", locale=language)


@lru_cache(maxsize=16)
def _datetime_pattern(language: str) -> str:
    return str(get_datetime_format("medium", locale=language)).replace("'", "")  # "{1} {0}": date, then time


#: Probes a fast rule must format exactly as Babel does before it is used.
PROBES = tuple(Decimal(text) for text in ("0", "5", "-0.5", "0.10", "12.345", "999.995", "-1234567.891",
                                          "1234567890.125", "100", "1E+2", "-7"))


def _pieces(text: str, digits: str) -> tuple[str, str] | None:
    """The text before and after ``digits`` in a formatted probe."""
    start = text.find(digits[0])
    end = text.rfind(digits[-1])
    if start < 0 or end < 0:
        return None
    return text[:start], text[end + 1:]


def _grouped(value: Decimal, places: int | None, group: str, decimal: str) -> str:
    text = format(value, f",.{places}f") if places is not None else format(value, ",f")
    if group == "," and decimal == ".":  # Python's own marks (zh, en): nothing to swap
        return text
    return text.replace(",", "\0").replace(".", decimal).replace("\0", group)


@lru_cache(maxsize=64)
def _money_rule(language: str, currency: str) -> Callable[[Decimal], str] | None:
    """Babel's currency format for a language as a quick function, or None
    when it is not one this shortcut reproduces (checked on PROBES)."""
    try:
        positive = _currency(Decimal("1234567.25"), currency, language)
        negative = _currency(Decimal("-1234567.25"), currency, language)
        places = get_currency_precision(currency)
    except (ValueError, LookupError):
        return None
    plus, minus = _pieces(positive, "125"), _pieces(negative, "125")
    if plus is None or minus is None or len(positive) - len(plus[0]) - len(plus[1]) != 12:
        return None
    body = positive[len(plus[0]):len(positive) - len(plus[1])]  # 1,234,567.25
    group, decimal = body[1], body[-3]

    def rule(value: Decimal) -> str:
        rounded = value.quantize(Decimal(1).scaleb(-places)) if value.is_finite() else value
        before, after = minus if rounded.is_signed() and rounded != 0 else plus
        return before + _grouped(abs(rounded), places, group, decimal) + after

    if all(rule(p) == _currency(p, currency, language) for p in PROBES):
        return rule
    return None


@lru_cache(maxsize=16)
def _number_rule(language: str) -> Callable[[Decimal], str] | None:
    """Babel's decimal format (every significant digit) as a quick function,
    or None when this shortcut does not reproduce it (checked on PROBES)."""
    probe = format_decimal(Decimal("1234567.25"), locale=language, decimal_quantization=False)
    negative = format_decimal(Decimal("-1234567.25"), locale=language, decimal_quantization=False)
    if len(probe) != 12 or not negative.endswith(probe):
        return None
    group, decimal, minus = probe[1], probe[-3], negative[:-len(probe)]

    def rule(value: Decimal) -> str:
        if not value.is_finite():
            return format_decimal(value, locale=language, decimal_quantization=False)
        digits = value.normalize() if value != value.to_integral_value() else value.quantize(Decimal(1))
        sign = minus if digits.is_signed() and digits != 0 else ""
        return sign + _grouped(abs(digits), None, group, decimal)

    if all(rule(p) == format_decimal(p, locale=language, decimal_quantization=False) for p in PROBES):
        return rule
    return None


@lru_cache(maxsize=16)
def _whole_rule(language: str, number_rule: Callable[[Decimal], str]) -> Callable[[int], str]:
    """The number rule of a language for Python ints (what it gives for their
    Decimal), without the Decimal: a list shows an integer column fifty times."""
    probe = number_rule(Decimal(-1234567))
    body = number_rule(Decimal(1234567))
    group, minus = body[1], probe[:-len(body)]

    def rule(value: int) -> str:
        text = format(abs(value), ",")
        if group != ",":
            text = text.replace(",", group)
        return minus + text if value < 0 else text
    return rule


def local_moment(value: dt.datetime, timezone: dt.tzinfo | str) -> dt.datetime:
    """A stored moment in the app's timezone (one without an offset is taken
    as UTC, how it is stored)."""
    zone = ZoneInfo(timezone) if isinstance(timezone, str) else timezone
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(zone)


def moment(value: dt.datetime, language: str, timezone: dt.tzinfo | str) -> str:
    """2026年11月30日 16:20 (zh), Nov 30, 2026, 4:20 PM (en), in the app's timezone."""
    local = local_moment(value, timezone)
    return (_datetime_pattern(language).replace("{0}", _time(local.hour, local.minute, language))
            .replace("{1}", _date(local.date(), language)))


def boolean(value: bool, language: str) -> str:
    yes, no = _yes_no(language)
    return yes if value else no


@lru_cache(maxsize=16)
def _yes_no(language: str) -> tuple[str, str]:
    """The words of a yes/no value in a language, looked up once: switching
    the catalog's language (force_locale) costs more than a page's other
    formatting. The platform's catalogs are the same for every app."""
    with force_locale(language):
        return str(gettext("Yes")), str(gettext("No"))


@lru_cache(maxsize=4096)
def region(code: str) -> str:
    """广东省广州市天河区: the region and its ancestors by name, as an address
    is written (a code that no longer exists is shown as the code)."""
    return regions.full_name(code) or code


def choice(field: FieldSpec, value: Any, language: str) -> str:
    """An enum option's label in the language (an unknown value as it is: an
    option removed from the config since the value was stored)."""
    found = option_labels(field, language).get(value)
    return found if found is not None else str(value)


#: Option labels per field and language, read once (fields live as long as the spec).
_OPTION_LABELS: dict[tuple[int, str], tuple[FieldSpec, dict[Any, str]]] = {}


def option_labels(field: FieldSpec, language: str) -> dict[Any, str]:
    """Each option's label in the language, by value."""
    key = (id(field), language)
    found = _OPTION_LABELS.get(key)
    if found is None or found[0] is not field:
        if len(_OPTION_LABELS) > 4096:
            _OPTION_LABELS.clear()
        found = _OPTION_LABELS[key] = (field, {o.value: label(o.label, language, humanize(str(o.value)))
                                              for o in field.options})
    return found[1]


def choices(field: FieldSpec, values: Any, language: str) -> str:
    """The options of a multi-option field, joined the language's way: 贵宾、新客 / VIP, New."""
    separator = LIST_SEPARATOR.get(language, LIST_SEPARATOR["en"])
    return separator.join(choice(field, v, language) for v in _items(values))


def plain_number(value: Decimal | int) -> Decimal | int:
    """Money and decimals as plain numbers for a spreadsheet: no currency sign,
    no grouping, never exponent notation (1E+2 is 100)."""
    if isinstance(value, Decimal) and value.is_finite() and value.adjusted() >= len(value.as_tuple().digits):
        return value.quantize(Decimal(1))  # 1E+2: digits end before the units
    return value


def _words(field: FieldSpec, value: Any, language: str) -> str | None:
    """The rules screens and exports share: choices, yes/no, regions, JSON."""
    kind = field.type
    if kind == "enum":
        return choice(field, value, language)
    if kind == "multi_enum":
        return choices(field, value, language)
    if kind == "boolean":
        return boolean(value, language)
    if kind == "region":
        return region(str(value))
    if kind == "json":
        return json.dumps(value, ensure_ascii=False)
    return None


def field_value(field: FieldSpec, value: Any, language: str, timezone: dt.tzinfo | str) -> str:
    """A stored value of a field as a person reads it on a screen ('' for
    none). Refs and users are shown by their title, which needs a read: the
    screens do that."""
    if value is None or value == "":
        return ""
    words = _words(field, value, language)
    if words is not None:
        return words
    kind = field.type
    if kind == "money":
        return money(value, language, field.currency)
    if kind in ("integer", "decimal"):
        return number(value, language)
    if kind == "date":
        return date(value, language)
    if kind == "datetime":
        return moment(value, language, timezone)
    return str(value)


def value_rule(field: FieldSpec, language: str, timezone: dt.tzinfo | str) -> Callable[[Any], str]:
    """:func:`field_value` of one field for values that are not empty, its rule
    chosen once: a list formats each of its columns fifty times a page, and
    the choice (the type, the language's number rule, the yes/no words) cost
    more than the formatting. Gives what field_value gives, value for value."""
    kind = field.type
    if kind == "enum":
        labels = option_labels(field, language)

        def option(value: Any) -> str:
            found = labels.get(value)
            return found if found is not None else str(value)
        return option
    if kind == "boolean":
        yes, no = boolean(True, language), boolean(False, language)
        return lambda value: yes if value else no
    if kind == "region":
        return lambda value: region(str(value))
    if kind in ("multi_enum", "json"):
        return lambda value: _words(field, value, language) or ""
    if kind == "money":
        currency = field.currency or DEFAULT_CURRENCY
        money_rule = _money_rule(language, currency)
        if money_rule is None:
            return lambda value: money(value, language, currency)
        return lambda value: (money(value, language, currency) if isinstance(value, float)
                              else money_rule(Decimal(value)))
    if kind in ("integer", "decimal"):
        number_rule = _number_rule(language)
        if number_rule is None:
            return lambda value: number(value, language)
        whole = _whole_rule(language, number_rule)

        def a_number(value: Any) -> str:
            if type(value) is int:  # an integer field's every value: grouped without Decimal's rounding
                return whole(value)
            return number(value, language) if isinstance(value, float) else number_rule(Decimal(value))
        return a_number
    if kind == "date":
        return lambda value: date(value, language)
    if kind == "datetime":
        return lambda value: moment(value, language, timezone)
    return str


def cell_value(field: FieldSpec, value: Any, language: str, timezone: dt.tzinfo | str) -> Any:
    """A stored value of a field as a spreadsheet cell (None for none): words
    as on the screens, but numbers stay numbers (money without its sign, so a
    spreadsheet sums it), days stay dates and moments become the app's local
    time to the second (a spreadsheet has no timezones). A reference is the
    referenced id here: titles are the caller's to look up."""
    if value is None:
        return None
    words = _words(field, value, language)
    if words is not None:
        return words
    kind = field.type
    if kind in ("money", "decimal"):
        return plain_number(value)
    if kind == "datetime":
        return local_moment(value, timezone).replace(tzinfo=None, microsecond=0)
    return value


def _items(value: Any) -> Iterable[Any]:
    return value if isinstance(value, (list, tuple, set, frozenset)) else (value,)


def init_app(app: Flask) -> None:
    """Filters for templates: ``{{ amount|money }}``, ``{{ n|number }}``,
    ``{{ day|date }}``, ``{{ at|moment }}``, ``{{ value|field_value(field) }}``,
    ``{{ field|field_label }}``."""
    from .i18n import locale

    app.jinja_env.filters.update(
        money=lambda value, currency=None: money(value, locale(), currency),
        number=lambda value: number(value, locale()),
        date=lambda value: date(value, locale()),
        moment=lambda value: moment(value, locale(), get_timezone()),
        field_value=lambda value, field: field_value(field, value, locale(), get_timezone()),
        field_label=lambda field: field_label(field, locale()),
    )
