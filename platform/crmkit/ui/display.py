"""How values look to a person: money, numbers, dates and choices in the
user's language, moments in the app's timezone (CLDR rules, through Babel).

The functions take the language and timezone as arguments, so the screens,
exports and anything else that shows values to people can share them; the
Jinja filters registered by :func:`init_app` bind them to the current request.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time, get_datetime_format
from babel.numbers import format_currency, format_decimal
from flask import Flask
from flask_babel import force_locale, get_timezone, gettext

from .. import regions
from ..metadata.spec import FieldSpec, label_text

DEFAULT_CURRENCY = "CNY"
#: Types whose values are shown as they are stored (text the user typed).
VERBATIM = frozenset({"string", "text", "email", "phone", "url", "autonumber"})


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


def moment(value: dt.datetime, language: str, timezone: dt.tzinfo | str) -> str:
    """2026年11月30日 16:20 (zh), Nov 30, 2026, 4:20 PM (en), in the app's
    timezone. A moment without an offset is taken as UTC (how it is stored)."""
    zone = ZoneInfo(timezone) if isinstance(timezone, str) else timezone
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    local = value.astimezone(zone)
    pattern = str(get_datetime_format("medium", locale=language))  # "{1} {0}": date, then time
    return (pattern.replace("'", "")
            .replace("{0}", format_time(local, "short", locale=language))
            .replace("{1}", format_date(local, "medium", locale=language)))


def boolean(value: bool, language: str) -> str:
    with force_locale(language):
        return gettext("Yes") if value else gettext("No")


def region(code: str) -> str:
    """广东省 广州市 天河区: the region and its ancestors by name (a code that no
    longer exists is shown as the code)."""
    chain = regions.path(code)
    return " ".join(r.name for r in chain) if chain else code


def choice(field: FieldSpec, value: Any, language: str) -> str:
    """An enum option's label in the language (an unknown value as it is)."""
    for option in field.options:
        if option.value == value:
            return label_text(option.label, language, str(value))
    return str(value)


def field_value(field: FieldSpec, value: Any, language: str, timezone: dt.tzinfo | str) -> str:
    """A stored value of a field as a person reads it ('' for none). Refs and
    users are shown by their title, which needs a read: the screens do that."""
    if value is None or value == "":
        return ""
    kind = field.type
    if kind == "money":
        return money(value, language, field.currency)
    if kind in ("integer", "decimal"):
        return number(value, language)
    if kind == "date":
        return date(value, language)
    if kind == "datetime":
        return moment(value, language, timezone)
    if kind == "boolean":
        return boolean(value, language)
    if kind == "enum":
        return choice(field, value, language)
    if kind == "multi_enum":
        return ", ".join(choice(field, v, language) for v in _items(value))
    if kind == "region":
        return region(str(value))
    return str(value)


def _items(value: Any) -> Iterable[Any]:
    return value if isinstance(value, (list, tuple, set, frozenset)) else (value,)


def init_app(app: Flask) -> None:
    """Filters for templates: ``{{ amount|money }}``, ``{{ n|number }}``,
    ``{{ day|date }}``, ``{{ at|moment }}``, ``{{ value|field_value(field) }}``."""
    from .i18n import locale

    app.jinja_env.filters.update(
        money=lambda value, currency=None: money(value, locale(), currency),
        number=lambda value: number(value, locale()),
        date=lambda value: date(value, locale()),
        moment=lambda value: moment(value, locale(), get_timezone()),
        field_value=lambda value, field: field_value(field, value, locale(), get_timezone()),
    )
