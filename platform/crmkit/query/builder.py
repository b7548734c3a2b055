"""The query builder (``QueryBuilder``): reads of one record (fetch, scope
checks, titles, existing ids), the lists besides an entity's own (related
records, the recycle bin, a record's history, what is shared with the actor),
and rows as JSON. Its parts: sources, scopes, grammar, statements."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import sqlalchemy as sa

from ..errors import NotFound
from ..metadata.spec import EntitySpec, RelationSpec
from ..permissions import Actor, scope_params
from ..serialization import compile_row_dumper
from .grammar import ListRequest
from .sources import Source
from .statements import MAX_STATEMENTS, Page, Statements, Within


class QueryBuilder(Statements):
    """Every read goes through here (see ``crmkit.query``)."""

    # -------------------------------------------------------------- one record

    def fetch(self, conn: sa.Connection, entity: EntitySpec, record_id: int, *, actor: Actor,
              actions: tuple[str, ...] = ("read",), for_update: bool = False, deleted: bool = False,
              columns: tuple[str, ...] | None = None) -> sa.RowMapping | None:
        """The record, if it is within the actor's scope of every one of the
        actions (every column, or only ``columns``)."""
        lock = for_update and conn.dialect.name == "postgresql"
        scopes = tuple(self.scope(entity.name, actor, action) for action in actions)
        key = (entity.name, deleted, lock, scopes, columns)
        query = self._fetch_statements.get(key)
        if query is None:  # built once per entity, kind and scope: the one read of every get and write
            table = self.table(entity)
            condition = table.c.deleted_at.is_not(None) if deleted else table.c.deleted_at.is_(None)
            selected = [table] if columns is None else [table.c[c] for c in columns]
            query = sa.select(*selected).where(table.c.id == sa.bindparam("_record_id"), condition,
                                               *(s for s in scopes if s is not None))
            if lock:
                query = query.with_for_update()
            self._fetch_statements[key] = query
        params = scope_params(actor)
        params["_record_id"] = record_id
        return conn.execute(query, params).mappings().first()

    def within(self, conn: sa.Connection, entity: EntitySpec, record_id: int, *, actor: Actor,
               actions: tuple[str, ...]) -> dict[str, bool]:
        """Whether a live record is within the actor's scope of each action,
        in one read (``fetch`` with each action alone says the same, a read
        each: a record page asks for four). An action whose scope is every
        record costs no read."""
        scopes = {action: self.scope(entity.name, actor, action) for action in actions}
        asked = tuple(action for action, scope in scopes.items() if scope is not None)
        found = {action: True for action, scope in scopes.items() if scope is None}
        if asked:
            key = ("within", entity.name, asked, tuple(scopes[a] for a in asked))
            query = self._fetch_statements.get(key)
            if query is None:
                table = self.table(entity)
                query = sa.select(*(sa.case((cast(sa.ColumnElement[bool], scopes[a]), True), else_=False).label(a)
                                    for a in asked)).where(table.c.id == sa.bindparam("_record_id"),
                                                           table.c.deleted_at.is_(None))
                self._fetch_statements[key] = query
            params = scope_params(actor)
            params["_record_id"] = record_id
            row = conn.execute(query, params).first()
            found.update((a, bool(row is not None and row[n])) for n, a in enumerate(asked))
        return found

    def read_one(self, conn: sa.Connection, entity: EntitySpec, record_id: int, *, actor: Actor,
                 fields: frozenset[str] | None = None) -> sa.RowMapping | None:
        """A record as the actor may read it: only the columns of the fields
        they see (of ``fields``, when given)."""
        columns = self.columns(entity, self.permissions.of(actor).entity(entity.name), fields)
        return self.fetch(conn, entity, record_id, actor=actor, columns=columns)

    def titles(self, conn: sa.Connection, entity_name: str, ids: set[int], actor: Actor) -> dict[int, Any]:
        """The titles (stored values of the title field) of those of the ids that
        are live records the actor may read, when the title is readable for them."""
        entity = self.spec.entities[entity_name]
        title = entity.fields.get(entity.title)
        if title is None or not ids or title.name not in self.permissions.of(actor).entity(entity_name).readable:
            return {}
        scope = self.scope(entity_name, actor)
        key = ("titles", entity_name, scope)
        query = self._fetch_statements.get(key)
        if query is None:  # built once per entity and scope (a record page asks for several titles)
            table = self.table(entity)
            conditions = [table.c.id.in_(sa.bindparam("_ids", expanding=True)), self.live(entity)]
            if scope is not None:
                conditions.append(scope)
            query = self._fetch_statements[key] = sa.select(table.c.id, table.c[title.column]).where(*conditions)
        found: dict[int, Any] = {}
        id_list = sorted(ids)
        params: dict[str, Any] = dict(scope_params(actor))
        for start in range(0, len(id_list), 900):
            params["_ids"] = id_list[start:start + 900]
            found.update((row[0], row[1]) for row in conn.execute(query, params))
        return found

    def existing_ids(self, conn: sa.Connection, entity_name: str, ids: set[int], actor: Actor) -> set[int]:
        """Those of the ids that are live records the actor may read; for the
        platform's users and teams (refs to user or team), active users and
        teams within the actor's read scope of them."""
        table = self.scopes.table(entity_name)
        live: sa.ColumnElement[bool]
        if entity_name == "user":
            live = table.c.active.is_(True)
        elif entity_name == "team":
            live = sa.true()
        else:
            live = table.c.deleted_at.is_(None)
        scope = self.scope(entity_name, actor)
        found: set[int] = set()
        id_list = sorted(ids)
        for start in range(0, len(id_list), 900):
            chunk = id_list[start:start + 900]
            query = sa.select(table.c.id).where(table.c.id.in_(chunk), live)
            if scope is not None:
                query = query.where(scope)
            found.update(conn.execute(query, scope_params(actor)).scalars())
        return found

    # -------------------------------------------------------------- the other lists

    def relation(self, entity: EntitySpec, name: str) -> RelationSpec:
        rel = entity.relations.get(name)
        if rel is None:
            raise NotFound(f"{entity.name} has no relation '{name}'", code="unknown_relation")
        return rel

    def related_page(self, conn: sa.Connection, entity: EntitySpec, record_id: int, relation: RelationSpec,
                     request: ListRequest, *, actor: Actor) -> Page:
        """The records related to one record through a relation (a page of the
        other entity's list, within the actor's scope of it). A record the
        actor cannot read has no related records for them: 404."""
        if self.fetch(conn, entity, record_id, actor=actor, columns=("id",)) is None:
            raise NotFound(f"{entity.name} {record_id} not found")
        other = self.sources[relation.entity]

        def build() -> sa.ColumnElement[bool]:
            parent = sa.bindparam("_parent_id", type_=sa.Integer())
            if relation.kind == "one_to_many":
                via = other.spec.fields[relation.field or entity.name]
                return other.table.c[via.column] == parent
            left, right = self.tables.link_columns(entity.name, relation.name)
            return other.table.c.id.in_(sa.select(right).where(left == parent))

        within = Within(("related", entity.name, relation.name), build, {"_parent_id": record_id})
        return self.page(conn, other, request, actor=actor, within=within)

    def deleted_page(self, conn: sa.Connection, entity: EntitySpec, request: ListRequest, *, actor: Actor) -> Page:
        """A page of an entity's recycle bin (parse the request with
        ``binned[entity]``): the records the actor could delete, which they may restore."""
        return self.page(conn, self.binned[entity.name], request, actor=actor, action="delete")

    def history_page(self, conn: sa.Connection, entity: EntitySpec, record_id: int, request: ListRequest, *,
                     actor: Actor) -> Page:
        """A page of a record's history (parse the request with ``history``):
        its audit entries, refusals left out, if the actor may read the record
        (404 otherwise). The values in them are the caller's to filter
        (permissions.audit_changes)."""
        if self.fetch(conn, entity, record_id, actor=actor, columns=("id",)) is None:
            raise NotFound(f"{entity.name} {record_id} not found")
        audit = self.tables.audit

        def build() -> sa.ColumnElement[bool]:
            return sa.and_(audit.c.entity == sa.bindparam("_entity", type_=sa.String()),
                           audit.c.record_id == sa.bindparam("_record_id", type_=sa.Integer()),
                           audit.c.action != "denied")

        within = Within("history", build, {"_entity": entity.name, "_record_id": record_id})
        return self.page(conn, self.history, request, actor=actor, within=within)

    def shared_with(self, conn: sa.Connection, actor: Actor, limit: int) -> list[tuple[str, int]]:
        """The records most recently shared with the actor, newest share first:
        (entity, id) pairs of live records they may read (titles() gives their titles)."""
        if actor.id is None:
            return []
        shares = self.tables.shares
        rows = conn.execute(sa.select(shares.c.entity, shares.c.record_id).where(shares.c.user_id == actor.id)
                            .order_by(shares.c.created_at.desc()).limit(limit * 2)).all()
        found: list[tuple[str, int]] = []
        by_entity: dict[str, set[int]] = {}
        for entity_name, record_id in rows:
            if entity_name in self.spec.entities:
                by_entity.setdefault(entity_name, set()).add(record_id)
        readable = {name: self.existing_ids(conn, name, ids, actor) for name, ids in by_entity.items()}
        for entity_name, record_id in rows:
            if record_id in readable.get(entity_name, ()) and len(found) < limit:
                found.append((entity_name, record_id))
        return found

    # -------------------------------------------------------------- JSON

    def row_dumper(self, source: EntitySpec | Source, columns: tuple[str, ...], only: frozenset[str] | None,
                   sparse: bool = False) -> Callable[[Sequence[Any]], dict[str, Any]]:
        """rows of these columns -> JSON-ready dicts of the fields in ``only``
        (every field read, when None); ``sparse`` leaves out fields without a
        value, except those named in ``only``."""
        source = self.source(source)
        key = (source.key, columns, only, sparse)
        dump = self._dumpers.get(key)
        if dump is None:
            if len(self._dumpers) >= MAX_STATEMENTS:
                self._dumpers.clear()
            dump = self._dumpers[key] = compile_row_dumper(source.spec, self.field_types, columns, only,
                                                           sparse=sparse, ready=self._text_columns(source, columns))
        return dump
