"""Plain labelled inputs for the few fields the record page asks for itself
(the fields a workflow move requires, the quick-add of a follow-up), and
reading them back from a posted form as the records service takes values.

Deliberately small: the forms of issue 8 bring one macro per field type
(templates ``_input.html`` is the seam to swap for them).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from werkzeug.datastructures import MultiDict

from ..metadata.spec import FieldSpec

#: Field types the record page can ask for with a plain input.
SIMPLE_TYPES = frozenset({"string", "text", "integer", "decimal", "money", "boolean", "date", "datetime", "email",
                          "phone", "url", "enum", "multi_enum", "region"})
_WHOLE = re.compile(r"-?[0-9]{1,18}")


@dataclass(frozen=True, slots=True)
class Input:
    """One field asked for: its spec, the text it shows, the messages about it."""

    field: FieldSpec
    value: Any = ""
    errors: tuple[str, ...] = ()
    required: bool = False


def shown_value(f: FieldSpec, value: Any, tz: dt.tzinfo) -> Any:
    """A stored value as an input holds it (a list for a multi_enum)."""
    if value is None:
        return [] if f.type == "multi_enum" else ""
    if f.type == "datetime" and isinstance(value, dt.datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        return moment.astimezone(tz).strftime("%Y-%m-%dT%H:%M")
    if f.type == "date" and isinstance(value, dt.date):
        return value.isoformat()
    if f.type == "multi_enum":
        return [str(v) for v in value]
    if f.type == "boolean":
        return bool(value)
    return str(value)


def posted_values(fields: Iterable[FieldSpec], form: MultiDict[str, str]) -> dict[str, Any]:
    """The values of these fields in a posted form, as a JSON body would hold
    them; a field left empty is not sent (its default applies, or the service
    says it is required)."""
    values: dict[str, Any] = {}
    for f in fields:
        if f.type == "multi_enum":
            chosen = [v for v in form.getlist(f.name) if v]
            if chosen:
                values[f.name] = chosen
            continue
        if f.type == "boolean":
            values[f.name] = form.get(f.name) in ("on", "true", "1")
            continue
        text = form.get(f.name, "").strip()
        if not text:
            continue
        if f.type in ("integer", "ref") and _WHOLE.fullmatch(text):
            values[f.name] = int(text)
        elif f.type == "enum" and all(isinstance(v, int) for v in f.option_values) and _WHOLE.fullmatch(text):
            values[f.name] = int(text)
        else:
            values[f.name] = text
    return values


def inputs(fields: Iterable[FieldSpec], values: Mapping[str, Any], errors: Mapping[str, Any],
           tz: dt.tzinfo, required: Iterable[str] = ()) -> list[Input]:
    needed = set(required)
    out = []
    for f in fields:
        problems = errors.get(f.name) or ()
        messages = tuple(str(p) for p in (problems if isinstance(problems, (list, tuple)) else [problems]))
        # A required field with a default may be left empty (the default applies).
        out.append(Input(f, shown_value(f, values.get(f.name), tz), messages,
                         f.required and f.default is None or f.name in needed))
    return out


def defaults(fields: Iterable[FieldSpec]) -> dict[str, Any]:
    """The config's defaults a new record's inputs start with (not ``now`` or
    ``today``: those are the moment of saving, left empty)."""
    return {f.name: f.default for f in fields
            if f.default is not None and f.default not in ("now", "today") and f.type != "datetime"}


def form_echo(fields: Iterable[FieldSpec], form: MultiDict[str, str]) -> dict[str, Any]:
    """What was typed, to show again with the errors (never lost)."""
    echo: dict[str, Any] = {}
    for f in fields:
        if f.type == "multi_enum":
            echo[f.name] = form.getlist(f.name)
        elif f.type == "boolean":
            echo[f.name] = form.get(f.name) in ("on", "true", "1")
        else:
            echo[f.name] = form.get(f.name, "")
    return echo
