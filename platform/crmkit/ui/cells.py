"""How one reader sees the values of records on a page: formatted for people
(crmkit.ui.display), masked where their field rules say, references by the
title of the record they point at (when the reader may read it), links only
where they are safe (a record of this site, an http(s) page, mail, phone).

A page gathers the rows it shows, asks :class:`Cells` to look up the titles
and names they refer to (one query per referenced entity), then asks for
each value's :class:`Cell`. Hidden fields are the caller's to leave out: they
are never read (the query builder selects only what the reader sees).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from markupsafe import Markup, escape

from ..fieldtypes import FieldValueError
from ..metadata.spec import DIRECTORY_ENTITIES, EntitySpec, FieldSpec
from ..permissions import Actor, EntityAccess
from ..runtime import Runtime
from . import display
from .i18n import locale

#: The platform's columns that hold a user or a team (owners, writers).
USER_COLUMNS = frozenset({"owner_id", "created_by", "updated_by", "deleted_by"})
TEAM_COLUMNS = frozenset({"team_id"})
#: Types whose JSON value (an audit entry's, a list page's text) becomes a stored value through coerce.
COERCED = frozenset({"money", "decimal", "date", "datetime"})
SAFE_SCHEMES = ("http://", "https://")
#: Ids looked up per query (a page's refs are far fewer).
CHUNK = 200


@dataclass(frozen=True, slots=True)
class Cell:
    """A value as the reader sees it: its text ('' for none) and, when it
    makes one, a link (``external``: to another site)."""

    text: str
    href: str | None = None
    masked: bool = False
    external: bool = False

    @property
    def empty(self) -> bool:
        return not self.text


EMPTY = Cell("")


def html(cell: Cell) -> Markup:
    """A cell as HTML (escaped text; the link it makes, if any): the ``cell``
    filter of the templates, in Python because a page shows many of them."""
    if cell.empty:
        return Markup('<span class="empty">—</span>')
    text = escape(cell.text)
    if cell.href and cell.external:
        return Markup('<a href="%s" rel="noopener noreferrer nofollow" target="_blank">%s</a>') % (cell.href, text)
    if cell.href:
        return Markup('<a href="%s">%s</a>') % (cell.href, text)
    if cell.masked:
        return Markup('<span class="masked">%s</span>') % text
    return Markup("<span>%s</span>") % text


def target_of(f: FieldSpec) -> str | None:
    """The entity (or ``user``/``team``) a field's value points at, if any."""
    if f.type == "ref":
        return f.to
    if f.name in USER_COLUMNS:
        return "user"
    if f.name in TEAM_COLUMNS:
        return "team"
    return None


class Cells:
    """The values of records as one reader sees them (in the request's language)."""

    def __init__(self, rt: Runtime, actor: Actor) -> None:
        self.rt = rt
        self.actor = actor
        self.access = rt.permissions.of(actor)
        self.language = locale()
        self.timezone = rt.queries.tz  # the app's, as Flask-Babel's selector gives it (read without its lookups)
        #: target entity -> id -> the referenced record's title as text
        self.titles: dict[str, dict[int, str]] = {}

    # ------------------------------------------------------------ lookups

    def load(self, conn: sa.Connection, wanted: Mapping[str, Iterable[Any]]) -> None:
        """Look up the titles of these ids (target entity, ``user`` or ``team`` -> ids)."""
        for target, ids in wanted.items():
            found = self.titles.setdefault(target, {})
            missing = {i for i in ids if isinstance(i, int) and not isinstance(i, bool)} - set(found)
            if not missing:
                continue
            if target in DIRECTORY_ENTITIES:
                found.update(self._directory_names(conn, target, missing))
            elif target in self.rt.spec.entities:
                other = self.rt.spec.entities[target]
                title = other.fields[other.title]
                for record_id, value in self.rt.queries.titles(conn, target, missing, self.actor).items():
                    text = self.text(title, value)
                    found[record_id] = text or f"#{record_id}"

    def refs_of(self, entity: EntitySpec, ea: EntityAccess, rows: Iterable[Mapping[str, Any]],
                wanted: dict[str, set[Any]] | None = None, only: Iterable[str] | None = None) -> dict[str, set[Any]]:
        """The ids the readable ref (and owner, team, writer) fields of these rows
        (of the fields named ``only``, when given) point at, by target (added to ``wanted``)."""
        wanted = {} if wanted is None else wanted
        names = ea.readable if only is None else ea.readable & set(only)
        fields = [(f, target) for f in entity.fields.values()
                  if f.name in names and (target := target_of(f)) is not None]
        for row in rows:
            for f, target in fields:
                value = row.get(f.column)
                if value is not None:
                    wanted.setdefault(target, set()).add(value)
        return wanted

    def _directory_names(self, conn: sa.Connection, target: str, ids: set[int]) -> dict[int, str]:
        """Users' and teams' names, read through the query builder within the
        reader's scope of users (teams): a name they may not read stays unknown."""
        queries = self.rt.queries
        source = queries.platform[target]
        columns = "id,display_name,username" if target == "user" else "id,label,name"
        names: dict[int, str] = {}
        id_list = sorted(ids)
        size = min(CHUNK, self.rt.spec.max_page_size)
        for start in range(0, len(id_list), size):
            chunk = id_list[start:start + size]
            request = queries.parse_list(source, [("id__in", ",".join(map(str, chunk))), ("fields", columns),
                                                  ("limit", str(len(chunk)))], self.access)
            for row in queries.page(conn, source, request, actor=self.actor).mappings():
                if target == "user":
                    names[row["id"]] = row.get("display_name") or row.get("username") or f"#{row['id']}"
                else:
                    names[row["id"]] = row.get("label") or row.get("name") or f"#{row['id']}"
        return names

    # ------------------------------------------------------------ values

    def stored(self, f: FieldSpec, value: Any) -> Any:
        """A value as stored, from what a list page or an audit entry holds
        (moments as text on SQLite, money and dates as JSON text)."""
        if isinstance(value, str) and f.type in COERCED:
            try:
                return self.rt.field_types[f.type].coerce(f, value, self.rt.queries.tz)
            except (FieldValueError, ValueError, TypeError):
                return value
        return value

    def text(self, f: FieldSpec, value: Any) -> str:
        value = self.stored(f, value)
        if isinstance(value, str) and f.type in COERCED:  # a stored text that is no longer a valid value
            return value
        try:
            return display.field_value(f, value, self.language, self.timezone)
        except (TypeError, ValueError, ArithmeticError):
            return str(value)

    def cell(self, f: FieldSpec, value: Any, ea: EntityAccess, *, dumped: bool = False) -> Cell:
        """The cell of a field's value (a stored value; ``dumped``: a JSON value,
        as audit entries hold, already masked by the field rules)."""
        if value is None or value == "" or value == []:
            return EMPTY
        masks = dict(ea.masked)
        if f.name in masks:
            if dumped:
                return Cell(str(value), masked=True)
            try:
                shown = self.rt.field_types[f.type].dump(f, value)
            except (TypeError, ValueError, AttributeError):
                shown = value
            return Cell(masks[f.name](shown), masked=True)
        target = target_of(f)
        if target is not None and not isinstance(value, bool) and isinstance(value, int):
            title = self.titles.get(target, {}).get(value)
            if title is None:
                return Cell(f"#{value}")
            href = f"/app/{target}/{value}" if target in self.rt.spec.entities else None
            return Cell(title, href)
        text = self.text(f, value)
        if f.type == "url" and text.lower().startswith(SAFE_SCHEMES):
            return Cell(text, text, external=True)
        if f.type == "email" and "@" in text:
            return Cell(text, "mailto:" + text)
        if f.type == "phone":
            return Cell(text, "tel:" + text.replace(" ", ""))
        return Cell(text)

    def title(self, entity: EntitySpec, ea: EntityAccess, row: Mapping[str, Any]) -> Cell:
        """A record's title as the reader sees it (EMPTY when it has none of its
        own, or it is hidden from them: the caller names it by its id)."""
        if entity.title == "id" or entity.title not in ea.visible:
            return EMPTY
        f = entity.fields[entity.title]
        cell = self.cell(f, row.get(f.column), ea)
        return Cell(cell.text, masked=cell.masked)

    def moment(self, value: dt.datetime | None) -> str:
        return "" if value is None else display.moment(value, self.language, self.timezone)
