"""The app document: its timezone and its menu."""

from __future__ import annotations

from collections.abc import Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from ..loader import Document
from ..problems import ProblemList, did_you_mean, shown
from ..spec import DEFAULT_TIMEZONE, EntitySpec, MenuGroup
from .naming import _as_label


def _check_app(doc: Document | None, problems: ProblemList) -> str:
    """The app's timezone (given, or the default), which must exist."""
    app = doc.data if doc is not None else {}
    name = app.get("timezone", DEFAULT_TIMEZONE)
    try:
        ZoneInfo(name)
    except (ValueError, OSError, ZoneInfoNotFoundError):  # ValueError: not even a zone's form ("../x")
        if doc is not None and "timezone" in app:
            problems.add(doc, ("timezone",), f"unknown timezone '{shown(name)}'",
                         did_you_mean(name, available_timezones()) or "an IANA name, e.g. Asia/Shanghai")
        elif doc is not None:
            problems.add(doc, ("app",), f"the default timezone {name} is not known on this machine: "
                         "install the tzdata package or set timezone", key=True)
    return name


def _menu(doc: Document, entities: Mapping[str, EntitySpec], problems: ProblemList) -> tuple[MenuGroup, ...]:
    """app.yaml's ``menu``: every name an entity of the config, each listed once."""
    groups = []
    seen: set[str] = set()
    for i, raw in enumerate(doc.data.get("menu", ())):
        for j, name in enumerate(raw["entities"]):
            if name not in entities:
                problems.add(doc, ("menu", i, "entities", j), f"unknown entity '{name}'", did_you_mean(name, entities))
            elif name in seen:
                problems.add(doc, ("menu", i, "entities", j), f"entity '{name}' is already in the menu")
            seen.add(name)
        label = _as_label(raw["group"], "") if "group" in raw else None
        groups.append(MenuGroup(label, tuple(raw["entities"])))
    return tuple(groups)
