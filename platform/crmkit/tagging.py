"""Tags (internal plugin): the tags of tags.yaml on records, manual and by rule.

Storage: one link table, ``crmkit_record_tags`` (entity, tag, record_id), whose
primary key makes "the records with tag X" an index range and whose second
index makes "the tags of these records" one; a filter by tag is
``id IN (SELECT record_id ... WHERE entity = ? AND tag = ?)``. Nothing is added
to the entities' own tables, so tags come and go without migrating them.

A rule tag is on exactly the live records for which its rule (an expression,
checked as the system) is true. It is computed set-based: one
``INSERT ... SELECT`` of the records that hold and lack the tag, one
``DELETE ... WHERE`` of the tagged records that no longer hold, for every
record at once (``crmkit tags refresh``) or for those a write may have changed
(the record hooks, in the write's transaction): the record itself, the owners
of a related record an aggregate counts, the records referring to one whose
fields the rule reads. Each change is an entry in the record's history
(``tag_added`` / ``tag_removed``, ``{"tag": ..., "by": "rule" | "user"}``).

Who sees a tag: a manual tag, whoever may read the entity; a rule tag, whoever
may read every field and relation its rule reads (the rule checks against
their access), so that a tag cannot reveal a hidden field.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .database import write_transaction
from .errors import BadRequest, CrmError, NotFound
from .expressions import Checked, Context, ExpressionError, check, to_sql
from .hookspecs import hookimpl
from .metadata.loader import Document
from .metadata.problems import Problem, ProblemList, did_you_mean
from .metadata.spec import AppSpec, EntitySpec, TagSpec
from .permissions import SYSTEM, Access, Actor
from .sqltypes import UTC, UTCDateTime

if TYPE_CHECKING:
    from .records import RecordEvent, RecordsService
    from .tables import Tables

TAG_TABLE = "crmkit_record_tags"
NAME_SIZE = 64
#: Who put a tag on a record.
BY_RULE, BY_USER = "rule", "user"
#: The audit trail's actions for tag changes.
ADDED, REMOVED = "tag_added", "tag_removed"


@hookimpl
def crmkit_tables(metadata: sa.MetaData, spec: AppSpec) -> None:
    sa.Table(
        TAG_TABLE, metadata,
        sa.Column("entity", sa.String(NAME_SIZE), primary_key=True),
        sa.Column("tag", sa.String(NAME_SIZE), primary_key=True),
        sa.Column("record_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("added_at", UTCDateTime(), nullable=False),
        sa.Column("added_by", sa.Integer),
        sa.Index("ix_crmkit_record_tags_record", "entity", "record_id", "tag"),
    )


def _insert(conn: sa.Connection, table: sa.Table) -> Any:
    """The dialect's INSERT (which knows ON CONFLICT)."""
    from sqlalchemy.dialects import postgresql, sqlite

    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


def tag_table(tables: Tables) -> sa.Table:
    return tables.metadata.tables[TAG_TABLE]


# ------------------------------------------------------------------ checking the config

def check_rules(spec: AppSpec, docs: Sequence[Document], problems: ProblemList) -> None:
    """Tag rules and views' ``where`` in the expression language, checked
    against the spec as the system; mistakes located in the file."""
    by_file = {doc.file: doc for doc in docs}
    for tag in spec.tags.values():
        doc = by_file.get(tag.source)
        if doc is not None and tag.entity in spec.entities:
            if "tags" in spec.entities[tag.entity].fields:
                problems.add(doc, ("tags", tag.name, "entity"), f"{tag.entity} has a field named 'tags', which "
                             "would hide its records' list of tags in the API: rename the field")
            if tag.rule is not None:
                _check_one(spec, doc, ("tags", tag.name, "rule"), tag.rule, tag.entity, problems)
    for view in spec.views.values():
        doc = by_file.get(view.source)
        if doc is not None and view.where is not None and view.entity in spec.entities:
            _check_one(spec, doc, ("views", view.name, "where"), view.where, view.entity, problems)


def _check_one(spec: AppSpec, doc: Document, path: tuple, text: str, entity: str, problems: ProblemList) -> None:
    try:
        check(text, spec, entity)
    except ExpressionError as exc:
        line, column = doc.locate(path)
        lines = _text_of(doc, spec.config_dir).splitlines()
        quoted = 0 < line <= len(lines) and lines[line - 1][column - 1:column] in ("'", '"')
        if exc.line == 1:
            column += exc.column - 1 + quoted
        else:
            line, column = line + exc.line - 1, exc.column
        problems.add_problem(Problem(doc.file, line, column, exc.message, exc.hint))


def _text_of(doc: Document, config_dir: str) -> str:
    """The text of a document's file (to tell whether a value is quoted)."""
    if doc.source:
        return doc.source
    try:
        return (Path(config_dir) / doc.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


# ------------------------------------------------------------------ who sees which tags

class TagCatalog:
    """The config's tags, their checked rules, and which of them a user sees."""

    def __init__(self, spec: AppSpec) -> None:
        self.spec = spec
        self.tags = spec.tags
        self.by_entity: dict[str, tuple[TagSpec, ...]] = {}
        for tag in spec.tags.values():
            self.by_entity[tag.entity] = self.by_entity.get(tag.entity, ()) + (tag,)
        #: Rules checked as the system: what the platform evaluates.
        self.rules = {tag.name: check(tag.rule, spec, tag.entity) for tag in spec.tags.values()
                      if tag.rule is not None}
        self._visible: dict[tuple[tuple[str, ...], bool, str], dict[str, TagSpec]] = {}
        self._views: dict[tuple[tuple[str, ...], bool, str], dict[str, Checked | None]] = {}

    def visible(self, access: Access, entity: str) -> dict[str, TagSpec]:
        """The tags of an entity's records this access sees, by name."""
        key = (access.roles, access.system, entity)
        found = self._visible.get(key)
        if found is None:
            found = self._visible[key] = {
                tag.name: tag for tag in self.by_entity.get(entity, ())
                if access.allows(entity, "read") and (tag.rule is None or self._rule_readable(tag, access))}
        return found

    def views(self, access: Access, entity: str) -> dict[str, Checked | None]:
        """The saved views of an entity this access may apply (``?view=``): those
        for their roles whose ``where`` (checked for them, the value) reads only
        what they see."""
        key = (access.roles, access.system, "view:" + entity)
        found = self._views.get(key)
        if found is None:
            found = self._views[key] = {}
            for name, view in self.spec.views.items():
                if view.entity != entity or not access.allows(entity, "read") or (
                        view.roles and not access.system and not set(view.roles) & set(access.roles)):
                    continue
                try:
                    found[name] = None if view.where is None else check(view.where, self.spec, entity, access=access)
                except ExpressionError:
                    continue
        return found

    def _rule_readable(self, tag: TagSpec, access: Access) -> bool:
        if access.system:
            return True
        try:
            check(tag.rule or "", self.spec, tag.entity, access=access)
        except ExpressionError:
            return False
        return True

    def named(self, access: Access, entity: EntitySpec, names: Iterable[str], parameter: str) -> list[str]:
        """Tag names as a caller gives them (``?tag=``): each a tag of the
        entity they see, else a 400 (a tag they cannot see is unknown to them)."""
        visible = self.visible(access, entity.name)
        out = []
        for name in names:
            if name not in visible:
                hint = did_you_mean(name, visible) or (f"tags of {entity.name}: {', '.join(visible)}" if visible
                                                       else f"{entity.name} has no tags")
                raise BadRequest(f"unknown tag '{name[:40]}'", {parameter: [f"unknown tag '{name[:40]}' ({hint})"]},
                                 code="invalid_filter")
            out.append(name)
        return out


def tag_condition(tables: Tables, table: sa.FromClause, entity: str, op: str, param: str) -> sa.ColumnElement[bool]:
    """Records with (``in``: any of) or without (``nin``: none of) the tags
    bound as the expanding parameter ``param``: a probe of the tag table's key."""
    tags = tag_table(tables)
    tagged = sa.select(tags.c.record_id).where(tags.c.entity == entity,
                                               tags.c.tag.in_(sa.bindparam(param, expanding=True)))
    return table.c.id.in_(tagged) if op == "in" else table.c.id.not_in(tagged)


# ------------------------------------------------------------------ the engine

@dataclass
class TagEvent:
    """What the ``record_tags_changed`` hook is told: a tag put on records
    (``added``) or taken off (``removed``), ``by`` its rule or a user, in the
    transaction of ``conn``."""

    entity: str
    tag: str
    actor: Actor
    conn: sa.Connection
    service: RecordsService
    added: Sequence[int]
    removed: Sequence[int]
    by: str


@dataclass(frozen=True)
class _Watch:
    """A rule tag that a write of some entity may change: ``how`` says which
    of the tagged entity's records to evaluate again."""

    tag: TagSpec
    how: str  # self | relation | ref | all
    fields: frozenset[str]  # the written entity's fields the rule reads (a change of others changes nothing)
    column: str = ""  # relation: the related record's ref to the owner; ref: the owner's ref column


class Tagging:
    """Puts tags on records and takes them off; written through the records
    service (``service.tagging``), in its transactions."""

    def __init__(self, service: RecordsService) -> None:
        self.service = service
        self.spec = service.spec
        self.tables = service.tables
        self.table = tag_table(service.tables)
        self.catalog: TagCatalog = service.queries.tag_catalog
        self.watches = self._watches()
        #: The read of names(), per entity and tags seen (built once: every record page and GET reads it).
        self._names_statements: dict[tuple[str, tuple[str, ...]], sa.Select[Any]] = {}

    def _watches(self) -> dict[str, list[_Watch]]:
        watches: dict[str, list[_Watch]] = {}
        for name, rule in self.catalog.rules.items():
            tag = self.spec.tags[name]
            owner = self.spec.entities[tag.entity]
            read: dict[str, set[str]] = {}
            for entity, field_name in rule.reads:
                read.setdefault(entity, set()).add(field_name)
            own = read.pop(owner.name, set()) | {relation for _, relation in rule.relations}
            watches.setdefault(owner.name, []).append(_Watch(tag, "self", frozenset(own)))
            for _, relation_name in rule.relations:
                rel = owner.relations[relation_name]
                fields = frozenset(read.pop(rel.entity, set()))
                if rel.kind == "one_to_many":
                    back = self.spec.entities[rel.entity].fields[rel.field or owner.name]
                    watches.setdefault(rel.entity, []).append(
                        _Watch(tag, "relation", fields | {back.name, "deleted_at"}, back.column))
                else:
                    watches.setdefault(rel.entity, []).append(_Watch(tag, "all", fields | {"deleted_at"}))
            for entity, names in read.items():
                refs = [f for f in owner.fields.values() if f.type == "ref" and f.to == entity]
                watched = frozenset(names | {"deleted_at"})
                how = [_Watch(tag, "ref", watched, f.column) for f in refs]
                watches.setdefault(entity, []).extend(how or [_Watch(tag, "all", watched)])
        return watches

    # -------------------------------------------------------------- rules, set-based

    def refresh(self, names: Iterable[str] | None = None, actor: Actor = SYSTEM,
                now: dt.datetime | None = None) -> dict[str, tuple[int, int]]:
        """Evaluate rule tags (all, or those named) over every record, one
        transaction; returns tag -> (added, removed)."""
        wanted = list(self.catalog.rules) if names is None else list(names)
        for name in wanted:
            if name not in self.catalog.tags:
                raise NotFound(f"no tag named '{name}'", code="unknown_tag")
            if name not in self.catalog.rules:
                raise CrmError(f"'{name}' is a manual tag: it has no rule to evaluate", code="manual_tag", status=409)
        context = Context.at(self.spec.timezone, now=now)
        counts = {}
        with write_transaction(self.service.engine) as tx:
            for name in wanted:
                added, removed = self.apply(tx, self.spec.tags[name], context, actor)
                counts[name] = (len(added), len(removed))
        return counts

    def apply(self, conn: sa.Connection, tag: TagSpec, context: Context, actor: Actor,
              only: Sequence[int] | sa.Select[Any] | None = None) -> tuple[list[int], list[int]]:
        """Make a rule tag true to its rule on every record of its entity (or on
        the ids ``only`` gives, a list or a SELECT of ids): one INSERT ... SELECT,
        one DELETE ... WHERE, and the history of what changed."""
        rule = self.catalog.rules[tag.name]
        entity = self.tables.entities[tag.entity]
        tags = self.table
        # Over every record, PostgreSQL counts related records faster in one GROUP BY than per record
        # (SQLite, with its nested loops, does not).
        grouped = only is None and conn.dialect.name == "postgresql"
        holds = to_sql(rule, self.tables, dialect=conn.dialect.name, context=context, grouped=grouped)
        mine = sa.and_(tags.c.entity == tag.entity, tags.c.tag == tag.name)
        narrowed = [] if only is None else [entity.c.id.in_(only)]
        fresh = (sa.select(sa.literal(tag.entity, sa.String()), entity.c.id, sa.literal(tag.name, sa.String()),
                           sa.literal(BY_RULE, sa.String()), sa.literal(context.now, UTCDateTime()),
                           sa.literal(actor.id, sa.Integer()))
                 .where(entity.c.deleted_at.is_(None), holds, *narrowed,
                        ~sa.exists().where(mine, tags.c.record_id == entity.c.id)))
        # A concurrent write may have just tagged the same record (PostgreSQL): that is no conflict.
        insert = (_insert(conn, tags).from_select(["entity", "record_id", "tag", "source", "added_at", "added_by"],
                                                  fresh).on_conflict_do_nothing())
        added = list(conn.execute(insert.returning(tags.c.record_id)).scalars())
        outside: sa.ColumnElement[bool]
        if grouped:  # the holding ids, computed once (inside EXISTS, the grouping would run per tagged record)
            outside = tags.c.record_id.not_in(sa.select(entity.c.id).where(entity.c.deleted_at.is_(None), holds))
        else:
            outside = ~sa.exists(sa.select(entity.c.id).where(entity.c.id == tags.c.record_id,
                                                             entity.c.deleted_at.is_(None), holds))
        stale = tags.delete().where(mine, *([] if only is None else [tags.c.record_id.in_(only)]), outside)
        removed = list(conn.execute(stale.returning(tags.c.record_id)).scalars())
        self._changed(conn, tag.entity, tag.name, actor, added, removed, BY_RULE)
        return added, removed

    def _changed(self, conn: sa.Connection, entity: str, tag: str, actor: Actor, added: Sequence[int],
                 removed: Sequence[int], by: str) -> None:
        """A tag went on or off records: the history, and the ``record_tags_changed`` hook."""
        if not added and not removed:
            return
        self.service.audit.tags(conn, entity, tag, actor, added, removed, by)
        self.service.hook.record_tags_changed(event=TagEvent(entity, tag, actor, conn, self.service, added,
                                                             removed, by))

    def written(self, event: RecordEvent) -> None:
        """A record was written: evaluate again the rule tags its change may
        have changed, for the records it may have changed them on."""
        watches = self.watches.get(event.entity.name)
        if not watches:
            return
        ids = [record["id"] for record in event.records]
        changed: set[str] | None = None
        if event.action == "update":
            changed = {name for change in event.changes for name in change}
        context: Context | None = None
        for watch in watches:
            if changed is not None and not changed & watch.fields:
                continue
            only: Sequence[int] | sa.Select[Any] | None
            if watch.how == "self":
                only = ids
            elif watch.how == "relation":
                only = sorted({row[watch.column] for row in (*event.old, *event.records)
                               if row.get(watch.column) is not None})
            elif watch.how == "ref":
                owner = self.tables.entities[watch.tag.entity]
                only = sa.select(owner.c.id).where(owner.c[watch.column].in_(ids))
            else:
                only = None
            if isinstance(only, list) and not only:
                continue
            context = context or Context.at(self.spec.timezone, user_id=event.actor.id)
            self.apply(event.conn, watch.tag, context, event.actor, only)

    def computed(self, conn: sa.Connection, entity: str, ids: Sequence[int], fields: set[str]) -> None:
        """Stored formulas of these records changed without a write of theirs
        (crmkit.rules kept a rollup current, set-based): evaluate again the
        rule tags that read them, as for an update of those fields."""
        context: Context | None = None
        for watch in self.watches.get(entity, ()):
            if not fields & watch.fields:
                continue
            only: Sequence[int] | sa.Select[Any] | None
            table = self.tables.entities[entity]
            if watch.how == "self":
                only = ids
            elif watch.how == "relation":
                only = sa.select(table.c[watch.column]).where(table.c.id.in_(ids))
            elif watch.how == "ref":
                owner = self.tables.entities[watch.tag.entity]
                only = sa.select(owner.c.id).where(owner.c[watch.column].in_(ids))
            else:
                only = None
            context = context or Context.at(self.spec.timezone)
            self.apply(conn, watch.tag, context, SYSTEM, only)

    def purged(self, conn: sa.Connection, entity: str, ids: Sequence[int]) -> None:
        """Records deleted for good take their tags with them."""
        tags = self.table
        for start in range(0, len(ids), 900):
            chunk = list(ids[start:start + 900])
            conn.execute(tags.delete().where(tags.c.entity == entity, tags.c.record_id.in_(chunk)))

    # -------------------------------------------------------------- by hand

    def _manual(self, entity: EntitySpec, name: str, actor: Actor) -> TagSpec:
        tag = self.catalog.visible(self.service.permissions.of(actor), entity.name).get(name)
        if tag is None:
            raise NotFound(f"{entity.name} has no tag '{name[:40]}'", code="unknown_tag")
        if tag.rule is not None:
            raise CrmError(f"'{name}' is set by its rule ({tag.rule}); it cannot be added or removed by hand",
                           {"tag": ["is a rule tag"]}, code="rule_tag", status=409)
        return tag

    def add(self, entity_name: str, record_id: int, name: str, actor: Actor) -> list[str]:
        """Put a manual tag on a record (under the update permission); returns its tags."""
        return self._set(entity_name, record_id, name, actor, True)

    def remove(self, entity_name: str, record_id: int, name: str, actor: Actor) -> list[str]:
        """Take a manual tag off a record (under the update permission); returns its tags."""
        return self._set(entity_name, record_id, name, actor, False)

    def _set(self, entity_name: str, record_id: int, name: str, actor: Actor, on: bool) -> list[str]:
        entity = self.service.entity(entity_name)
        tag = self._manual(entity, name, actor)
        tags = self.table
        with write_transaction(self.service.engine) as tx:
            self.service.fetch_for(tx, entity, record_id, actor, ("update",))
            where = (tags.c.entity == entity.name, tags.c.tag == tag.name, tags.c.record_id == record_id)
            if on:  # a concurrent request may have just put it on: no conflict, and one history entry
                row = {"entity": entity.name, "tag": tag.name, "record_id": record_id, "source": BY_USER,
                       "added_at": dt.datetime.now(UTC), "added_by": actor.id}
                statement = _insert(tx, tags).values(row).on_conflict_do_nothing().returning(tags.c.record_id)
                changed = list(tx.execute(statement).scalars())
            else:
                changed = list(tx.execute(tags.delete().where(*where).returning(tags.c.record_id)).scalars())
            if changed:
                added, removed = (changed, []) if on else ([], changed)
                self._changed(tx, entity.name, tag.name, actor, added, removed, BY_USER)
            return self.names(tx, entity, [record_id], self.service.permissions.of(actor))[record_id]

    # -------------------------------------------------------------- reading

    def names(self, conn: sa.Connection, entity: EntitySpec, ids: Sequence[int],
              access: Access) -> dict[int, list[str]]:
        """The tags of these records the access sees, in config order (one query)."""
        visible = self.catalog.visible(access, entity.name)
        out: dict[int, list[str]] = {record_id: [] for record_id in ids}
        if not visible or not ids:
            return out
        tags = self.table
        order = {name: n for n, name in enumerate(visible)}
        key = (entity.name, tuple(visible))
        query = self._names_statements.get(key)
        if query is None:
            query = self._names_statements[key] = sa.select(tags.c.record_id, tags.c.tag).where(
                tags.c.entity == entity.name, tags.c.record_id.in_(sa.bindparam("_ids", expanding=True)),
                tags.c.tag.in_(list(visible)))
        for start in range(0, len(ids), 900):
            rows = conn.execute(query, {"_ids": list(ids[start:start + 900])})
            for record_id, name in rows:
                out[record_id].append(name)
        for found in out.values():
            found.sort(key=order.__getitem__)
        return out


# ------------------------------------------------------------------ record hooks

@hookimpl
def record_after_create(event: RecordEvent) -> None:
    event.service.tagging.written(event)


@hookimpl
def record_after_update(event: RecordEvent) -> None:
    event.service.tagging.written(event)


@hookimpl
def record_after_delete(event: RecordEvent) -> None:
    event.service.tagging.written(event)
