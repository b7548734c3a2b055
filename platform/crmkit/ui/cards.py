"""Records shown as cards (the board, the calendar, the home page): a title and
a few fields, formatted for people, read through the query builder.

A card reads only what the query builder selected for the user (hidden fields
are never read), shows masked fields masked, and refs by the titles of the
records the user may read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from flask import current_app
from flask_babel import get_timezone

from ..metadata.spec import EntitySpec, FieldSpec, ViewSpec
from ..permissions import Actor, EntityAccess
from ..runtime import Runtime
from .cells import Cells, target_of
from .display import field_value
from .i18n import label, locale


def runtime() -> Runtime:
    return current_app.extensions["crmkit"]


@dataclass
class CardField:
    name: str
    label: str
    text: str


@dataclass
class Card:
    """One record as a card: its id, version, title and a few fields as text."""

    id: int
    version: int
    title: str
    fields: list[CardField]
    values: dict[str, Any]
    own: bool = False
    #: The record's tags as chips (HTML, crmkit.ui.tags; the board's).
    tags: str = ""
    #: Board: target state -> the move there (name, label, fields it still needs).
    moves: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Board: the label of the move of the board's workflow awaiting approval ("": none).
    pending: str = ""


def stored(f: FieldSpec, value: Any) -> Any:
    """A value as the database gave it, as Python (SQLite hands lists their
    timestamps as API text)."""
    if isinstance(value, str) and f.type == "datetime":
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value


def card_fields(entity: EntitySpec, view: ViewSpec | None, *, leave_out: Iterable[str] = (),
                count: int = 3) -> tuple[str, ...]:
    """The fields a card shows besides its title: the view's columns (else
    the list's), without the title and what the layout already says."""
    skip = {entity.title, *leave_out}
    names = (view.columns if view is not None and view.columns else entity.list.columns)
    return tuple(n for n in names if n not in skip and n in entity.fields)[:count]


def build_cards(conn: sa.Connection, entity: EntitySpec, rows: Sequence[Mapping[str, Any]], shown: Sequence[str],
                ea: EntityAccess, actor: Actor, cells: Cells | None = None) -> list[Card]:
    """Cards of rows (by column) for a user with this access to the entity.

    Refs (to records, users, teams; owners and writers) show the titles and
    names the user may read, looked up by ``cells`` once per target for all
    the rows (pass one loaded with a whole board's rows: no query per column)."""
    language, zone = locale(), get_timezone()
    masks = dict(ea.masked)
    names = [n for n in shown if n in ea.visible]
    cells = cells or Cells(runtime(), actor)
    cells.load(conn, cells.refs_of(entity, ea, rows, only=names))
    titles = cells.titles
    title_field = entity.fields.get(entity.title)
    cards = []
    for row in rows:
        values = {f.name: stored(f, row[f.column]) for f in entity.fields.values() if f.column in row}
        texts = []
        for name in names:
            f = entity.fields[name]
            texts.append(CardField(name, label(f.label, name), _text(f, values.get(name), masks, titles,
                                                                     language, zone)))
        title = ""
        if title_field is not None and title_field.name in ea.visible:
            title = _text(title_field, values.get(title_field.name), masks, titles, language, zone)
        owner = values.get("owner_id") if entity.owned else values.get("created_by")
        cards.append(Card(int(row["id"]), int(row["version"]), title or f"#{row['id']}", texts, values,
                          own=owner is not None and owner == actor.id))
    return cards


def _text(f: FieldSpec, value: Any, masks: Mapping[str, Any], titles: Mapping[str, Mapping[int, str]],
          language: str, zone: Any) -> str:
    if value is None or value == "":
        return ""
    if f.name in masks:
        return str(masks[f.name](value))
    target = target_of(f)
    if target is not None:
        found = titles.get(target, {}).get(value) if isinstance(value, int) else None
        return found or f"#{value}"
    return field_value(f, value, language, zone)


def in_scope(conn: sa.Connection, entity: EntitySpec, actor: Actor, ids: Sequence[int], action: str) -> set[int]:
    """Those of the records (ids the user may read) that the user's scope of
    an action covers (transition: which cards may move; update: which may be
    rescheduled), in one read of the query builder."""
    rt = runtime()
    access = rt.permissions.of(actor)
    if not ids or not access.entity(entity.name).allows(action):
        return set()
    request = rt.queries.parse_list(entity, [("id__in", ",".join(map(str, ids))), ("fields", "id"),
                                             ("limit", str(len(ids)))], access)
    page = rt.queries.page(conn, entity, request, actor=actor, action=action)
    return {int(row["id"]) for row in page.mappings()}
