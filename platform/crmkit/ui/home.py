"""The home page (/app/): what needs the logged-in user today.

A column of widgets, each a small template fed by a function of the user:
their to-dos due today and overdue (the records of every entity with a
``due`` field in its config that they own), their newest records, and the
records others shared with them. Every read goes through the query builder,
within the user's scope. A later dashboards issue adds widgets to
:data:`WIDGETS`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import render_template
from flask_babel import lazy_gettext

from ..api.http import current_actor
from ..errors import BadRequest
from ..metadata.spec import EntitySpec
from ..permissions import Actor
from .cards import build_cards, runtime, stored
from .display import field_value
from .i18n import locale
from .shell import bp

#: Items per widget.
WIDGET_SIZE = 10


@dataclass
class Item:
    """One line of a widget: a record, where it is, and a note (when it is due, when it was made)."""

    entity: EntitySpec
    id: int
    title: str
    note: str = ""
    overdue: bool = False
    at: Any = None


@dataclass
class Widget:
    """A slot of the home page: its heading, its template and what the template shows."""

    name: str
    title: str
    template: str
    items: list[Item] = field(default_factory=list)
    empty: str = ""


def _owner_key(entity: EntitySpec) -> str:
    """Whose a record is: its owner, or on entities without owners, its creator."""
    return "owner_id" if entity.owned else "created_by"


def _readable(actor: Actor) -> list[EntitySpec]:
    rt = runtime()
    access = rt.permissions.of(actor)
    return [e for e in rt.spec.entities.values() if access.entity(e.name).allows("read")]


def _rows(conn: sa.Connection, entity: EntitySpec, actor: Actor, args: list[tuple[str, str]]) -> list[dict[str, Any]]:
    rt = runtime()
    try:
        request = rt.queries.parse_list(entity, args, rt.permissions.of(actor))
    except BadRequest:  # the config names what this user may not see: nothing to show them
        return []
    return rt.queries.page(conn, entity, request, actor=actor).mappings()


def due_items(conn: sa.Connection, actor: Actor) -> list[Item]:
    """The user's records that are due today or overdue, the oldest first."""
    rt = runtime()
    zone = ZoneInfo(rt.spec.timezone)
    today = dt.datetime.now(zone).date()
    tomorrow = today + dt.timedelta(days=1)
    items: list[Item] = []
    for entity in _readable(actor):
        if entity.due is None or entity.due.field_name not in entity.fields:
            continue
        f = entity.fields[entity.due.field_name]
        if f.type == "date":
            before, start = tomorrow.isoformat(), today
        else:
            before = dt.datetime.combine(tomorrow, dt.time(), zone).isoformat()
            start = dt.datetime.combine(today, dt.time(), zone)
        args = [*entity.due.filter.items(), (_owner_key(entity), str(actor.id)), (f"{f.name}__lt", before),
                ("sort", f.name), ("limit", str(WIDGET_SIZE))]
        rows = _rows(conn, entity, actor, args)
        ea = rt.permissions.of(actor).entity(entity.name)
        for card, row in zip(build_cards(conn, entity, rows, (), ea, actor), rows):
            when = stored(f, row.get(f.column))
            items.append(Item(entity, card.id, card.title, field_value(f, when, locale(), zone),
                              overdue=when is not None and when < start, at=_moment(when, zone)))
    items.sort(key=lambda item: item.at)
    return items[:WIDGET_SIZE * 2]


def _moment(value: Any, zone: dt.tzinfo) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime.combine(value, dt.time(), zone)


def newest_items(conn: sa.Connection, actor: Actor) -> list[Item]:
    """The records the user owns (or made, where records have no owner), newest first."""
    rt = runtime()
    zone = ZoneInfo(rt.spec.timezone)
    items: list[Item] = []
    for entity in _readable(actor):
        if not entity.owned:
            continue
        args = [(_owner_key(entity), str(actor.id)), ("sort", "-created_at"), ("limit", "5")]
        rows = _rows(conn, entity, actor, args)
        ea = rt.permissions.of(actor).entity(entity.name)
        created = entity.fields["created_at"]
        for card, row in zip(build_cards(conn, entity, rows, (), ea, actor), rows):
            when = stored(created, row.get("created_at"))
            items.append(Item(entity, card.id, card.title, field_value(created, when, locale(), zone),
                              at=_moment(when, zone)))
    items.sort(key=lambda item: item.at, reverse=True)
    return items[:WIDGET_SIZE]


def shared_items(conn: sa.Connection, actor: Actor) -> list[Item]:
    """The records others shared with the user, the latest share first."""
    rt = runtime()
    pairs = rt.queries.shared_with(conn, actor, WIDGET_SIZE)
    titles: dict[str, dict[int, Any]] = {}
    for entity_name in {name for name, _ in pairs}:
        titles[entity_name] = rt.queries.titles(conn, entity_name, {i for n, i in pairs if n == entity_name}, actor)
    items = []
    for entity_name, record_id in pairs:
        entity = rt.spec.entities[entity_name]
        title = titles[entity_name].get(record_id)
        items.append(Item(entity, record_id, str(title) if title not in (None, "") else f"#{record_id}"))
    return items


#: The home page's widgets in order: (name, heading, template, what to show when empty, items of a user).
WIDGETS: list[tuple[str, Any, str, Any, Callable[[sa.Connection, Actor], list[Item]]]] = [
    ("due", lazy_gettext("Due today and overdue"), "_home_items.html",
     lazy_gettext("Nothing is due. Plan your next follow-ups on your records, and they will show up here on the day."),
     due_items),
    ("newest", lazy_gettext("Your newest records"), "_home_items.html",
     lazy_gettext("You have no records yet. Open a list from the menu and create your first one."), newest_items),
    ("shared", lazy_gettext("Shared with you"), "_home_items.html",
     lazy_gettext("Nobody has shared a record with you yet. Colleagues can add you as a collaborator on theirs."),
     shared_items),
]


@bp.get("/")
def home():
    rt = runtime()
    actor = current_actor()
    widgets = []
    with rt.engine.connect() as conn:
        for name, title, template, empty, items in WIDGETS:
            widgets.append(Widget(name, str(title), template, items(conn, actor), str(empty)))
    return render_template("home.html", widgets=widgets)
