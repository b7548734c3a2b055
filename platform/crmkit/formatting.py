"""How values are shown to people: labels in their language, enum options by
label, yes/no, regions by name, money as plain numbers, moments in the app's
timezone.

One place for every reader that is a person rather than a program: the CSV
export today, an XLSX writer and the screens later. The JSON API keeps the
values themselves (codes, ids, UTC); this module turns a stored value into
the text a person reads.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from . import regions
from .metadata.spec import AppSpec, FieldSpec, Label, humanize, label_text
from .sqltypes import UTC

YES_NO = {"zh": ("是", "否"), "en": ("Yes", "No")}
#: How the items of a list (a multi-option field) are joined, per language.
LIST_SEPARATOR = {"zh": "、", "en": ", "}


def label_object(label: Label | str | None, name: str) -> dict[str, str]:
    """A label as the API gives it: ``{"en": ..., "zh": ...}``. A plain string
    stands for every language; no label at all is the humanised name."""
    if isinstance(label, str):
        return {"en": label, "zh": label}
    if label:
        return dict(label)
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


class Formatter:
    """Turns stored values into text for people in one language."""

    def __init__(self, spec: AppSpec, locale: str, tz: dt.tzinfo) -> None:
        self.spec = spec
        self.locale = locale
        self.tz = tz
        self.yes, self.no = YES_NO.get(locale, YES_NO["en"])
        self.separator = LIST_SEPARATOR.get(locale, LIST_SEPARATOR["en"])

    def label(self, label: Label | None, fallback: str = "") -> str:
        """The label in this language; an English reader gets the fallback (a
        humanised name) rather than Chinese, a Chinese one English rather than nothing."""
        if label and label.get(self.locale):
            return label[self.locale]
        if self.locale == "en" and fallback:
            return fallback
        return label_text(label, self.locale, fallback)

    def field_label(self, f: FieldSpec) -> str:
        return self.label(f.label, humanize(f.name))

    def option_label(self, f: FieldSpec, value: Any) -> str:
        for option in f.options:
            if option.value == value:
                return self.label(option.label, str(value))
        return str(value)  # an option removed from the config since the value was stored

    def boolean(self, value: bool) -> str:
        return self.yes if value else self.no

    def region(self, code: str) -> str:
        """广东省广州市天河区 (the code itself if the table does not know it)."""
        return regions.full_name(code) or code

    def number(self, value: Decimal | int) -> Decimal | int:
        """Money and decimals as plain numbers: no currency sign, no grouping,
        never exponent notation (1E+2 is 100)."""
        if isinstance(value, Decimal) and value.is_finite() and value.adjusted() >= len(value.as_tuple().digits):
            return value.quantize(Decimal(1))  # 1E+2: digits end before the units
        return value

    def moment(self, value: dt.datetime) -> str:
        """A moment in the app's timezone, to the second: 2026-01-31 09:30:00."""
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(self.tz).strftime("%Y-%m-%d %H:%M:%S")

    def value(self, f: FieldSpec, value: Any) -> Any:
        """A stored value (as read from the database) for a person; numbers stay
        numbers, everything else becomes text, None stays None. A reference is
        the referenced id here: titles are the caller's to look up (it knows
        who is reading)."""
        if value is None:
            return None
        kind = f.type
        if kind == "enum":
            return self.option_label(f, value)
        if kind == "multi_enum":
            return self.separator.join(self.option_label(f, v) for v in value)
        if kind == "boolean":
            return self.boolean(value)
        if kind == "region":
            return self.region(value)
        if kind in ("money", "decimal"):
            return self.number(value)
        if kind == "datetime":
            return self.moment(value)
        if kind == "date":
            return value.isoformat()
        if kind == "json":
            return json.dumps(value, ensure_ascii=False)
        return value
