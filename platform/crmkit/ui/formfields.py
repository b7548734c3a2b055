"""The fields of a record's form: what each input holds and how its text
becomes a value for the records service.

A form speaks text: an input's value is what the browser sends back
(``"1280.00"``, ``"2026-01-31T09:30"``, ``["tea", "coffee"]``). These
functions turn a stored value into that text (to fill an input) and the text
into the value the records service takes (a JSON-like value, or a datetime
read in the app's timezone), with the same words for a mistake as the API.
The service checks everything again; this is only the browser's side of it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from flask_babel import gettext

from .. import regions
from ..fieldtypes import MAX_ID, FieldValueError, whole_number
from ..metadata.spec import FieldSpec

#: How each field type is edited (the macro of ui/templates/_widgets.html that draws it).
WIDGETS = {"string": "text", "text": "textarea", "integer": "number", "decimal": "decimal", "money": "money",
           "date": "date", "datetime": "datetime", "enum": "enum", "multi_enum": "multi_enum",
           "boolean": "boolean", "phone": "phone", "email": "email", "url": "url", "region": "region",
           "ref": "ref", "json": "json", "autonumber": "text"}
#: The select boxes of a region picker, by level.
REGION_PARTS = regions.LEVELS


@dataclass
class Widget:
    """One field of a form as the template draws it."""

    field: FieldSpec
    #: the macro that draws it: a key of WIDGETS' values, or ``readonly``
    kind: str
    #: the input's value as text (a list of texts for a multi_enum)
    value: Any = ""
    #: a read-only field's value as people read it (masked when the role says so)
    shown: str = ""
    required: bool = False
    errors: list[str] = dataclasses.field(default_factory=list)
    #: enum / multi_enum: (value, label) of each option; ref: (id, title) of
    #: the records found for ``search`` (a browser without JavaScript)
    options: list[tuple[str, Any]] = dataclasses.field(default_factory=list)
    #: ref: what was typed into its search box (a browser without JavaScript)
    search: str = ""
    #: ref: the title of the record the value names
    title: str = ""
    #: ref: where the picker asks for records
    options_url: str = ""
    #: region: the chosen region and its ancestors, and each level's choices
    region: RegionChoice | None = None
    #: a condition of the form reads this field: where a change posts the form
    #: to re-render the conditional parts ('' when none reads it)
    trigger_url: str = ""
    #: whether it shows or is required follows the input (a field rule): drawn
    #: in a slot of its own id that a change re-renders (kind ``absent``: hidden now)
    slot: bool = False
    #: the start of its inputs' ids (``f``; another form in the same page, e.g. ``move``, has its own)
    prefix: str = "f"

    @property
    def name(self) -> str:
        return self.field.name

    @property
    def id(self) -> str:
        return f"{self.prefix}-{self.field.name}"

    @property
    def described_by(self) -> str:
        """The ids of the help and error texts, for aria-describedby."""
        parts = []
        if self.field.help:
            parts.append(self.id + "-help")
        if self.errors:
            parts.append(self.id + "-error")
        return " ".join(parts)


@dataclass
class RegionChoice:
    """A region picker: the select boxes the field's level needs, each with
    its choices and the chosen code (empty: none)."""

    levels: tuple[str, ...]
    chosen: dict[str, str]
    choices: dict[str, list[regions.Region]]

    @property
    def code(self) -> str:
        for level in reversed(self.levels):
            if self.chosen.get(level):
                return self.chosen[level]
        return ""


def region_choice(code: str, level: str | None) -> RegionChoice:
    """The picker for a code (the code's own chain chosen; every level below
    the deepest chosen one offers the children of the one above)."""
    levels = REGION_PARTS[: REGION_PARTS.index(level or "district") + 1]
    chain = {r.level: r.code for r in regions.path(code)} if code else {}
    chosen: dict[str, str] = {}
    choices: dict[str, list[regions.Region]] = {}
    parent: str | None = None
    for part in levels:
        choices[part] = regions.children(parent) if part == "province" or parent else []
        chosen[part] = chain.get(part, "")
        parent = chosen[part] or None
    return RegionChoice(levels, chosen, choices)


def region_from_form(form: Mapping[str, Any], name: str, level: str | None) -> str:
    """The code a region picker sends: the code typed into its input (a
    browser without JavaScript), else the deepest select box that belongs to
    the one above it (a province changed without the city following)."""
    typed = str(form.get(name) or "").strip()
    if typed:
        return typed
    code, parent = "", None
    for part in REGION_PARTS[: REGION_PARTS.index(level or "district") + 1]:
        value = str(form.get(f"{name}__{part}") or "")
        region = regions.get(value) if value else None
        if region is None or region.parent != parent:
            break
        code, parent = value, value
    return code


# ---------------------------------------------------------------- values to text

def to_text(f: FieldSpec, value: Any, tz: dt.tzinfo) -> Any:
    """A stored value (or a default) as the input holds it."""
    if value is None:
        return [] if f.type == "multi_enum" else ""
    if f.type == "multi_enum":
        return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]
    if f.type == "boolean":
        return "true" if value else "false"
    if f.type == "date" and isinstance(value, dt.date):
        return value.isoformat()
    if f.type == "datetime":
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        if isinstance(value, dt.datetime):
            local = (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).astimezone(tz)
            return local.strftime("%Y-%m-%dT%H:%M:%S" if local.second else "%Y-%m-%dT%H:%M")
    if f.type == "json":
        return json.dumps(value, ensure_ascii=False, indent=2, default=str)
    return str(value)


def from_form(form: Any, f: FieldSpec) -> Any:
    """The text an input sent (a multi_enum's list; a check box's last value:
    the hidden ``false`` before it, or ``true`` when ticked)."""
    if f.type == "multi_enum":
        return [v for v in form.getlist(f.name) if v]
    if f.type == "boolean":
        sent = form.getlist(f.name)
        return sent[-1] if sent else "false"
    if f.type == "region":
        return region_from_form(form, f.name, f.level)
    return form.get(f.name, "")


def to_value(f: FieldSpec, text: Any) -> Any:
    """The value the records service takes for an input's text (None: empty).
    Raises FieldValueError with the API's words for text no value can come from."""
    if text in ("", [], None):
        return None
    if f.type == "multi_enum":
        by_text = {str(v): v for v in f.option_values}
        return [by_text.get(t, t) for t in text]
    text = str(text)
    if f.type in ("integer", "ref"):
        text = text.strip()
        if f.type == "ref":
            return whole_number(text, MAX_ID, f"must be the id of a {f.to}")
        return whole_number(text.replace(",", ""))
    if f.type in ("decimal", "money"):
        return text.strip().replace(",", "").replace("¥", "").replace("￥", "")
    if f.type == "boolean":
        return text == "true"
    if f.type == "enum":
        return next((v for v in f.option_values if str(v) == text), text)
    if f.type == "datetime":
        try:
            return dt.datetime.fromisoformat(text.strip())  # naive: the app's timezone (the records service)
        except ValueError:
            raise FieldValueError("must be a date-time like 2026-01-31T09:30:00+08:00") from None
    if f.type == "json":
        try:
            return json.loads(text, parse_float=Decimal)
        except (ValueError, RecursionError):
            raise FieldValueError("must be JSON (no NaN, Infinity or lone surrogates)") from None
    if f.type == "date":
        return text.strip()
    return text


# ---------------------------------------------------------------- messages

#: The records service's words for a bad value (English, as the API says
#: them) -> the same in the user's language. Anything else is shown as it is.
_MESSAGES: tuple[tuple[re.Pattern[str], Callable[[dict[str, str]], str]], ...] = tuple(
    (re.compile(pattern), words) for pattern, words in (
        (r"is required( when .*| now)?", lambda g: gettext("This field is required.")),
        (r"must be a whole number|must be an integer", lambda g: gettext("Enter a whole number.")),
        (r"must be a number.*|must be written like .*", lambda g: gettext("Enter a number like 12.50.")),
        (r"has more than (?P<places>\d+) digits after the decimal point",
         lambda g: gettext("Enter at most %(places)s digits after the decimal point.", places=g["places"])),
        (r"is too large|is out of range", lambda g: gettext("The number is too large.")),
        (r"must be at most (?P<max>\d+) characters",
         lambda g: gettext("Enter at most %(max)s characters.", max=g["max"])),
        (r"must be at least (?P<min>\d+) characters",
         lambda g: gettext("Enter at least %(min)s characters.", min=g["min"])),
        (r"must be at least (?P<min>.+)", lambda g: gettext("Enter at least %(min)s.", min=g["min"])),
        (r"must be at most (?P<max>.+)", lambda g: gettext("Enter at most %(max)s.", max=g["max"])),
        (r"is not a mobile number.*", lambda g: gettext("Enter a mobile number: 11 digits starting with 1.")),
        (r"is not a phone number.*",
         lambda g: gettext("Enter a phone number, like 13812345678 or 010-12345678.")),
        (r"is not a valid email address", lambda g: gettext("Enter an email address, like name@example.com.")),
        (r"is not an http\(s\) URL", lambda g: gettext("Enter a web address starting with http:// or https://.")),
        (r"does not match the pattern .*", lambda g: gettext("The value does not have the expected form.")),
        (r"must be a date like .*", lambda g: gettext("Enter a date.")),
        (r"must be a date-time .*", lambda g: gettext("Enter a date and a time.")),
        (r"must be one of: .*|'.*' is not one of: .*", lambda g: gettext("Choose one of the options.")),
        (r"must be the id of a .*|.* does not exist|user \d+ does not exist or is disabled",
         lambda g: gettext("Choose a record from the list; the one given does not exist or you may not see it.")),
        (r"already used by another record", lambda g: gettext("Another record already has this value.")),
        (r"'.*' is not a known region code|must be a 6-digit region code.*",
         lambda g: gettext("Choose a region from the lists.")),
        (r"must be a \w+ or larger region", lambda g: gettext("Choose a larger region.")),
        (r"is read-only.*", lambda g: gettext("This field cannot be changed.")),
        (r"must be JSON.*", lambda g: gettext("Enter valid JSON.")),
        (r"must not contain NUL characters",
         lambda g: gettext("The text contains a character that cannot be stored.")),
    ))


def message(text: str) -> str:
    """A field's error in the user's language (the API's words when none fits)."""
    for pattern, words in _MESSAGES:
        found = pattern.fullmatch(text)
        if found:
            return words(found.groupdict())
    return text
