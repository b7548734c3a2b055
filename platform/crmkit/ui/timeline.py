"""A record's timeline: its follow-up activities, its history (field
changes, workflow moves, shares) and the automations that ran on it, newest
first, in pages.

Activities are the records of entities marked ``timeline: <date field>``
(metadata reference) that refer to this record through a ref field: a
customer's follow-ups, a lead's, an opportunity's. The history is the
record's audit trail (``QueryBuilder.history_page``) with the reader's field
rules applied (``permissions.audit_changes``): a hidden field's changes never
show, a masked one's show masked.

Each stream is read through the query builder in its own keyset order; a page
merges them by time. The cursor of the next page holds each stream's own
cursor (None: the stream is done), so page 50 costs what page 1 does.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext

from ..automations.engine import ACTOR_PREFIX as AUTOMATION_ACTOR
from ..automations.runs import outline
from ..errors import BadRequest
from ..metadata.builtin_entities import history_spec
from ..metadata.spec import EntitySpec, FieldSpec, label_text
from ..permissions import ADMIN_ROLE, Access, Actor, EntityAccess, audit_changes
from ..query import Page
from ..runtime import Runtime
from .cells import EMPTY, Cell, Cells, target_of
from .tags import tag_heads

PAGE_SIZE = 10
#: The most fields the quick-add form of an activity asks for.
QUICK_FIELDS = 6
#: Field types the quick-add asks for (not refs: the record itself is the one given; not json).
QUICK_TYPES = frozenset({"string", "text", "integer", "decimal", "money", "boolean", "date", "datetime", "email",
                         "phone", "url", "enum", "multi_enum", "region"})
HISTORY = "history"
#: The stream of automation runs (crmkit.automations.runs; skipped runs are left out).
RUNS = "automation_runs"
_AT = history_spec().fields["at"]
_OLDEST = dt.datetime.min.replace(tzinfo=dt.UTC)
#: Who an activity is by (its owner, else its creator).
WHO = frozenset({"owner_id", "created_by"})


@dataclass(frozen=True, slots=True)
class ActivitySource:
    """Records of ``entity`` that refer to the record through ``ref``."""

    entity: EntitySpec
    ref: FieldSpec

    @property
    def key(self) -> str:
        return f"{self.entity.name}.{self.ref.name}"


def activity_sources(rt: Runtime, entity: EntitySpec, access: Access) -> list[ActivitySource]:
    """The activities the reader may list on a record of ``entity``: those of
    timeline entities they may read, through a ref and a time they may read."""
    found = []
    for other in rt.spec.entities.values():
        if other.timeline is None:
            continue
        ea = access.entity(other.name)
        if not ea.allows("read") or other.timeline not in ea.readable:
            continue
        for f in other.user_fields:
            if f.type == "ref" and f.to == entity.name and f.name in ea.readable:
                found.append(ActivitySource(other, f))
    return found


def quick_add(rt: Runtime, entity: EntitySpec, access: Access) -> tuple[ActivitySource, list[FieldSpec]] | None:
    """The activity a reader may add from a record's page, and the fields its
    small form asks for (the form's in order, required ones first to be kept,
    at most QUICK_FIELDS, refs left out: the record itself is the one given)."""
    for source in activity_sources(rt, entity, access):
        ea = access.entity(source.entity.name)
        if not ea.allows("create") or source.ref.name not in ea.writable:
            continue
        other = source.entity
        order = [name for section in other.form for name in section.fields]
        order += [f.name for f in other.user_fields if f.required and f.name not in order]
        fields = [other.fields[n] for n in order if n in other.fields and n in ea.writable]
        fields = [f for f in fields if not f.system and not f.readonly and f.type in QUICK_TYPES]
        chosen = {f.name for f in fields if f.required}
        for f in fields:
            if len(chosen) >= QUICK_FIELDS:
                break
            chosen.add(f.name)
        return source, [f for f in fields if f.name in chosen]
    return None


# ------------------------------------------------------------------ entries

@dataclass
class Change:
    label: str
    old: Cell
    new: Cell


@dataclass
class Entry:
    """One line of the timeline. ``kind``: activity, created, changed, moved,
    shared, unshared, deleted, restored, tagged, approval."""

    kind: str
    at: dt.datetime
    actor: Cell = EMPTY
    #: activity: its entity's label, its title (linked) and its fields
    what: str = ""
    title: Cell = EMPTY
    details: list[tuple[str, Cell]] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    #: what happened, in words (all but activities)
    head: str = ""


# ------------------------------------------------------------------ cursors

def encode(cursors: Mapping[str, str | None]) -> str:
    raw = json.dumps(dict(cursors), separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(text: str | None) -> dict[str, str | None]:
    if not text:
        return {}
    bad = BadRequest("malformed timeline cursor: use the 'more' link of the page",
                     {"cursor": ["malformed"]}, code="invalid_cursor")
    try:
        found = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        raise bad from None
    if not isinstance(found, dict) or not all(isinstance(v, (str, type(None))) for v in found.values()):
        raise bad
    return found


# ------------------------------------------------------------------ reading

class Timeline:
    """The timeline of one record for one reader."""

    def __init__(self, rt: Runtime, entity: EntitySpec, record_id: int, actor: Actor, cells: Cells) -> None:
        self.rt = rt
        self.entity = entity
        self.record_id = record_id
        self.actor = actor
        self.access = rt.permissions.of(actor)
        self.cells = cells
        self.sources = activity_sources(rt, entity, self.access)
        self.workflow_fields = {wf.field: wf for wf in rt.records.workflows.get(entity.name, ())}

    def _page(self, conn: sa.Connection, key: str, cursor: str | None, limit: int) -> Page:
        queries = self.rt.queries
        args = [("limit", str(limit))] + ([("cursor", cursor)] if cursor else [])
        if key == HISTORY:
            request = queries.parse_list(queries.history, args, self.access)
            return queries.history_page(conn, self.entity, self.record_id, request, actor=self.actor)
        if key == RUNS:
            return self._runs_page(conn, args)
        source = next(s for s in self.sources if s.key == key)
        args += [(source.ref.name, str(self.record_id)), ("sort", f"-{source.entity.timeline}")]
        request = queries.parse_list(source.entity, args, self.access)
        return queries.page(conn, source.entity, request, actor=self.actor)

    def _runs_page(self, conn: sa.Connection, args: list[tuple[str, str]]) -> Page:
        """A page of the automation runs on the record (the reader may read it:
        the timeline is on its page)."""
        from ..query import Within

        log = self.rt.automations.log
        table = log.table

        def build() -> sa.ColumnElement[bool]:
            return sa.and_(table.c.entity == sa.bindparam("_entity", type_=sa.String()),
                           table.c.record_id == sa.bindparam("_record_id", type_=sa.Integer()),
                           table.c.status != "skipped")

        request = self.rt.queries.parse_list(log.source, args, self.access)
        within = Within("timeline_runs", build, {"_entity": self.entity.name, "_record_id": self.record_id})
        return self.rt.queries.page(conn, log.source, request, actor=self.actor, within=within)

    def read(self, conn: sa.Connection, cursor: str | None, limit: int = PAGE_SIZE
             ) -> tuple[list[Entry], str | None]:
        """A page of entries, newest first, and the cursor of the next page."""
        cursors = decode(cursor)
        keys = [HISTORY] + [s.key for s in self.sources] + ([RUNS] if self.rt.automations is not None else [])
        unknown = set(cursors) - set(keys)
        if unknown:
            raise BadRequest("malformed timeline cursor: use the 'more' link of the page",
                             {"cursor": ["from another record's timeline"]}, code="invalid_cursor")
        pages: dict[str, Page] = {}
        for key in keys:
            if key in cursors and cursors[key] is None:
                continue  # that stream is done
            pages[key] = self._page(conn, key, cursors.get(key), limit)
        stamped: list[tuple[dt.datetime, int, int, str, Mapping[str, Any]]] = []
        for n, (key, page) in enumerate(pages.items()):
            for i, row in enumerate(page.mappings()):
                stamped.append((self._moment(key, row), -n, -i, key, row))
        stamped.sort(key=lambda item: (item[0], item[1], item[2]), reverse=True)
        taken = stamped[:limit]
        used = {key: sum(1 for item in taken if item[3] == key) for key in pages}
        after = dict(cursors)
        for key, page in pages.items():
            if used[key] == len(page.rows):
                after[key] = page.next
            elif used[key]:  # part of the page shown: the cursor after the last row shown
                after[key] = self._page(conn, key, cursors.get(key), used[key]).next
        # A stream not started yet (left out of the cursor) or with a cursor has more to show.
        more = any(key not in after or after[key] is not None for key in keys)
        entries = self._entries(conn, [(key, row) for _, _, _, key, row in taken])
        for entry in entries:
            entry.head = _head(entry)
        return entries, encode(after) if more else None

    def _moment(self, key: str, row: Mapping[str, Any]) -> dt.datetime:
        if key == HISTORY:
            value = self.cells.stored(_AT, row["at"])
        elif key == RUNS:
            value = self.cells.stored(_AT, row["started_at"])
        else:
            source = next(s for s in self.sources if s.key == key)
            f = source.entity.fields[source.entity.timeline or "created_at"]
            value = self.cells.stored(f, row.get(f.column))
            if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
                value = dt.datetime.combine(value, dt.time(), tzinfo=self.rt.queries.tz)
        if not isinstance(value, dt.datetime):
            return _OLDEST
        return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)

    # ------------------------------------------------------------ entries

    def _entries(self, conn: sa.Connection, rows: list[tuple[str, Mapping[str, Any]]]) -> list[Entry]:
        wanted: dict[str, set[Any]] = {}
        history: list[tuple[Mapping[str, Any], Any]] = []
        for key, row in rows:
            if key == RUNS:
                continue
            if key == HISTORY:
                changes = audit_changes(self.access, self.entity, row.get("changes"), record_read=True)
                history.append((row, changes))
                if row.get("actor_id") is not None:
                    wanted.setdefault("user", set()).add(row["actor_id"])
                self._wanted_in_changes(changes, wanted)
            else:
                source = next(s for s in self.sources if s.key == key)
                ea = self.access.entity(source.entity.name)
                self.cells.refs_of(source.entity, ea, [row], wanted, WHO.union(self._shown_fields(source, ea)))
        self.cells.load(conn, wanted)
        out: list[Entry] = []
        changes_of = iter(history)
        for key, row in rows:
            if key == RUNS:
                out.append(self._run(row))
            elif key == HISTORY:
                entry_row, changes = next(changes_of)
                out.extend(self._history_entries(entry_row, changes))
            else:
                out.append(self._activity(next(s for s in self.sources if s.key == key), row))
        return out

    def _wanted_in_changes(self, changes: Any, wanted: dict[str, set[Any]]) -> None:
        if not isinstance(changes, dict):
            return
        for name, change in changes.items():
            if name == "collaborators" and isinstance(change, list):
                for side in change:
                    for pair in side or ():
                        if isinstance(pair, list) and pair:
                            wanted.setdefault("user", set()).add(pair[0])
                continue
            f = self.entity.fields.get(name)
            target = target_of(f) if f is not None else None
            if target is not None and isinstance(change, list):
                wanted.setdefault(target, set()).update(v for v in change if isinstance(v, int))

    def _actor(self, row: Mapping[str, Any]) -> Cell:
        actor_id = row.get("actor_id")
        name = self.cells.titles.get("user", {}).get(actor_id) if actor_id is not None else None
        text = str(row.get("actor") or "")
        if name is None and text.startswith(AUTOMATION_ACTOR):  # "automation NAME": the system, for an automation
            automation = self.rt.spec.automations.get(text[len(AUTOMATION_ACTOR):])
            if automation is not None:
                label = label_text(automation.label, self.cells.language, automation.name)
                return Cell(gettext("automation “%(name)s”", name=label))
        return Cell(name or text)

    def _history_entries(self, row: Mapping[str, Any], changes: Any) -> Iterator[Entry]:
        at = self._moment(HISTORY, row)
        actor = self._actor(row)
        action = row.get("action")
        if action in ("create", "delete", "restore"):
            yield Entry({"create": "created", "delete": "deleted", "restore": "restored"}[action], at, actor)
            return
        if action in ("tag_added", "tag_removed"):  # crmkit.tagging: only a tag the reader sees
            if isinstance(changes, dict):
                head = tag_heads(self.rt.queries.tag_catalog.visible(self.access, self.entity.name),
                                 self.cells.language, str(changes.get("tag")), str(changes.get("by")),
                                 action == "tag_added", actor.text)
                if head is not None:
                    yield Entry("tagged", at, actor, what=head)
            return
        if action == "approval":  # crmkit.approvals: a request, a decision, a withdrawal
            if isinstance(changes, dict) and isinstance(changes.get("_approval"), dict):
                yield self._approval_entry(at, actor, changes["_approval"])
            return
        if action != "update" or not isinstance(changes, dict):
            return
        ea = self.access.entity(self.entity.name)
        language = self.cells.language
        fields: list[Change] = []
        for name, change in changes.items():
            if not isinstance(change, list) or len(change) != 2:
                continue
            if name == "collaborators":
                yield from self._share_entries(at, actor, change)
                continue
            f = self.entity.fields.get(name)
            if f is None:  # a relation's links
                rel = self.entity.relations.get(name)
                label = label_text(rel.label, language, name) if rel is not None and rel.label else name
                fields.append(Change(label, Cell(str(len(change[0] or ()))), Cell(str(len(change[1] or ())))))
                continue
            old, new = (self.cells.cell(f, v, ea, dumped=True) for v in change)
            label = label_text(f.label, language, f.name)
            if name in self.workflow_fields:
                yield Entry("moved", at, actor, changes=[Change(label, old, new)])
            else:
                fields.append(Change(label, old, new))
        if fields:
            yield Entry("changed", at, actor, changes=fields)

    def _approval_entry(self, at: dt.datetime, actor: Cell, details: Mapping[str, Any]) -> Entry:
        name = str(details.get("transition", ""))
        move = next((m for wf in self.rt.records.workflows.get(self.entity.name, ()) for m in wf.transitions
                     if m.name == name), None)
        label = label_text(move.label, self.cells.language, name) if move is not None else name
        comment = details.get("comment")
        shown = [(gettext("Comment"), Cell(str(comment)))] if comment else []
        return Entry("approval", at, actor, what=str(details.get("event", "")), title=Cell(label), details=shown)

    def _share_entries(self, at: dt.datetime, actor: Cell, change: list[Any]) -> Iterator[Entry]:
        def pairs(side: Any) -> dict[Any, Any]:
            return {p[0]: p[1] for p in side or () if isinstance(p, list) and len(p) == 2}

        before, after = pairs(change[0]), pairs(change[1])
        names = self.cells.titles.get("user", {})
        for user_id, level in after.items():
            if before.get(user_id) != level:
                yield Entry("shared", at, actor, title=Cell(names.get(user_id, f"#{user_id}")), what=str(level))
        for user_id in before.keys() - after.keys():
            yield Entry("unshared", at, actor, title=Cell(names.get(user_id, f"#{user_id}")))

    def _shown_fields(self, source: ActivitySource, ea: EntityAccess) -> list[str]:
        """An activity's fields on the timeline: its list's columns and its text
        fields (the reader sees), but the record it is about and its moment and title."""
        other = source.entity
        skip = {source.ref.name, other.timeline, other.title, "id", "version"}
        names = [n for n in other.list.columns if n in ea.visible and n not in skip]
        names += [f.name for f in other.fields.values()
                  if f.type == "text" and f.name in ea.visible and f.name not in skip and f.name not in names]
        return names

    def _run(self, row: Mapping[str, Any]) -> Entry:
        """An automation's run: its name, how it ended, each action's result."""
        automation = self.rt.spec.automations.get(row.get("automation") or "")
        name = label_text(automation.label, self.cells.language, automation.name) if automation is not None \
            else str(row.get("automation"))
        details = []
        if ADMIN_ROLE not in self.access.roles and not self.access.system:  # lines may quote hidden fields
            words = {"ok": gettext("done"), "failed": gettext("failed"), "skipped": gettext("skipped")}
            for step in outline(row.get("results")) or ():
                details.append((step["action"], Cell(words[step["status"]])))
            return Entry("automation", self._moment(RUNS, row), Cell(name), what=str(row.get("status") or ""),
                         details=details)
        for result in row.get("results") or ():
            if isinstance(result, dict):
                text = (result.get("result") or (gettext("failed: %(error)s", error=result["error"])
                                                 if result.get("error") else gettext("skipped")))
                details.append((str(result.get("action", "")), Cell(str(text))))
        if not details and row.get("error"):
            details.append((gettext("Error"), Cell(str(row["error"]))))
        return Entry("automation", self._moment(RUNS, row), Cell(name), what=str(row.get("status") or ""),
                     details=details)

    def _activity(self, source: ActivitySource, row: Mapping[str, Any]) -> Entry:
        other = source.entity
        ea = self.access.entity(other.name)
        language = self.cells.language
        details = []
        for name in self._shown_fields(source, ea):
            f = other.fields[name]
            cell = self.cells.cell(f, row.get(f.column), ea)
            if not cell.empty:
                details.append((label_text(f.label, language, name), cell))
        title = self.cells.title(other, ea, row)
        if title.empty:
            title = Cell(label_text(other.label, language, other.name))
        title = Cell(title.text, f"/app/{other.name}/{row['id']}", title.masked)
        owner = row.get("owner_id") if "owner_id" in ea.readable else row.get("created_by")
        actor = Cell(self.cells.titles.get("user", {}).get(owner, "")) if owner is not None else EMPTY
        return Entry("activity", self._moment(source.key, row), actor,
                     what=label_text(other.label, language, other.name), title=title, details=details)


def _head(entry: Entry) -> str:
    """What happened, in the reader's language (in Python: a template's _() costs ten times as much)."""
    who = entry.actor.text
    if entry.kind == "created":
        return gettext("Created by %(who)s", who=who)
    if entry.kind == "deleted":
        return gettext("Deleted by %(who)s", who=who)
    if entry.kind == "restored":
        return gettext("Restored by %(who)s", who=who)
    if entry.kind == "moved":
        return gettext("Moved by %(who)s", who=who)
    if entry.kind == "changed":
        return gettext("Changed by %(who)s", who=who)
    if entry.kind == "shared":
        access = gettext("read and write") if entry.what == "write" else gettext("read only")
        return gettext("%(who)s shared it with %(name)s (%(access)s)", who=who, name=entry.title.text, access=access)
    if entry.kind == "tagged":
        return entry.what
    if entry.kind == "approval":
        move = entry.title.text
        if entry.what == "requested":
            return gettext("%(who)s asked for approval: %(move)s", who=who, move=move)
        if entry.what == "approved":
            return gettext("%(who)s approved: %(move)s", who=who, move=move)
        if entry.what == "rejected":
            return gettext("%(who)s rejected: %(move)s", who=who, move=move)
        return gettext("%(who)s withdrew the request: %(move)s", who=who, move=move)
    if entry.kind == "automation":
        if entry.what == "ok":
            return gettext("Automation %(name)s ran", name=who)
        return gettext("Automation %(name)s failed", name=who)
    if entry.kind == "unshared":
        return gettext("%(who)s stopped sharing it with %(name)s", who=who, name=entry.title.text)
    return ""
