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
from collections.abc import Iterable
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time, get_datetime_format
from babel.numbers import format_currency, format_decimal
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
    if value and value.get(language):
        return value[language]
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
    """¥1,280.00 (zh), CN¥1,280.00 (en): the currency's own digits and symbol."""
    return format_currency(value, currency or DEFAULT_CURRENCY, locale=language)


def number(value: Decimal | int | float, language: str) -> str:
    """1,234,567.891: grouped the language's way, every significant digit kept."""
    return format_decimal(value, locale=language, decimal_quantization=False)


def date(value: dt.date, language: str) -> str:
    """2026年11月30日 (zh), Nov 30, 2026 (en)."""
    if isinstance(value, dt.datetime):
        raise TypeError("a moment is shown with moment(), in the app's timezone")
    return format_date(value, "medium", locale=language)


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
    pattern = str(get_datetime_format("medium", locale=language))  # "{1} {0}": date, then time
    return (pattern.replace("'", "")
            .replace("{0}", format_time(local, "short", locale=language))
            .replace("{1}", format_date(local, "medium", locale=language)))


def boolean(value: bool, language: str) -> str:
    with force_locale(language):
        return gettext("Yes") if value else gettext("No")


def region(code: str) -> str:
    """广东省广州市天河区: the region and its ancestors by name, as an address
    is written (a code that no longer exists is shown as the code)."""
    return regions.full_name(code) or code


def choice(field: FieldSpec, value: Any, language: str) -> str:
    """An enum option's label in the language (an unknown value as it is: an
    option removed from the config since the value was stored)."""
    for option in field.options:
        if option.value == value:
            return label(option.label, language, humanize(str(value)))
    return str(value)


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
