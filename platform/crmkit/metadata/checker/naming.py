"""Labels, names and filter values as every kind of document writes them: a
label (text, or text by locale), an identifier, a name defined once across
the documents of a kind, a filter value (as the API's query text)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ..loader import Document
from ..problems import ProblemList
from ..schemas import load_schema
from ..spec import humanize

_IDENTIFIER = re.compile(load_schema("common.json")["$defs"]["identifier"]["pattern"])


def _as_label(value: Any, fallback: str) -> Mapping[str, str]:
    if isinstance(value, str):
        return MappingProxyType({"en": value, "zh": value})
    if isinstance(value, dict):
        return MappingProxyType(dict(value))
    return MappingProxyType({"en": humanize(fallback)})


def _defined_once(doc: Document, what: str, name: str, seen: dict[str, Document], problems: ProblemList) -> bool:
    first = seen.setdefault(name, doc)
    if first is not doc:
        problems.add(doc, (f"{what}s", name), f"{what} '{name}' is defined twice (also in {first.file})", key=True)
        return False
    return True


def _filter_text(value: Any) -> str | None:
    """A filter value as the API's query text; None when it cannot be one."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, dt.date):  # a date or a datetime
        return value.isoformat()
    if isinstance(value, list) and not any(isinstance(item, list | dict) for item in value):
        texts = [text for text in map(_filter_text, value) if text is not None]
        if texts and len(texts) == len(value):
            return ",".join(texts)
    return None
