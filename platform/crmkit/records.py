"""The records service: the one door for every write.

API, UI, imports, automations and plugins create, update, delete, restore,
link, share and move records through here, so validation, reference checks,
permissions, workflow rules, optimistic locking, unique checks, audit and
events hold everywhere, once. Record hooks (``record_before_create`` ...) run
inside the write's transaction.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import pluggy
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from .approvals import ApprovalPending, Approvals
from .assignment import Assigner
from .audit import AuditTrail
from .database import write_transaction
from .errors import Conflict, CrmError, Forbidden, NotFound, ValidationFailed
from .expressions import SqlLoader
from .fieldtypes import MAX_ID, FieldType
from .metadata.spec import AppSpec, EntitySpec, FieldSpec, RelationSpec, label_text
from .permissions import ANONYMOUS, Actor, EntityAccess, refusal, scope_params
from .pool import Pool
from .query import QueryBuilder
from .rules import RecordRules
from .serialization import EntitySchemas
from .sharing import Sharing
from .sqltypes import UTC
from .tables import Tables
from .tagging import Tagging
from .workflows import Blocked, Transition, Workflow, blocker, compile_workflows, missing_fields

if TYPE_CHECKING:
    from .jobs import Jobs

MAX_BULK = 1000


class RecordError(CrmError):
    """A plugin hook refuses a write; status and details as for any API error."""

    status, code = 422, "refused"


@dataclass
class RecordEvent:
    """What a record hook is told. ``rows`` and ``records`` are lists: one item
    for a single write, many for a bulk create."""

    action: str  # create | update | delete | restore
    entity: EntitySpec
    actor: Actor
    conn: sa.Connection
    service: RecordsService
    rows: list[dict[str, Any]] = field(default_factory=list)  # values by field name (create: all; update: the changes)
    old: list[Mapping[str, Any]] = field(default_factory=list)  # stored rows before the write (by column)
    records: list[dict[str, Any]] = field(default_factory=list)  # stored rows after the write (by column)
    changes: list[dict[str, Any]] = field(default_factory=list)  # update: field -> (old, new), dumped to JSON values
    #: update: the workflow move that made it (None: a plain update).
    transition: Transition | None = None
    #: create: the owner asked for per record (None: none asked for), and the
    #: indexes of records created straight into the entity's pool (no owner).
    owners: list[int | None] = field(default_factory=list)
    pooled: set[int] = field(default_factory=set)
    #: create: record index -> (owner, team) a hook chose (crmkit.assignment).
    assigned: dict[int, tuple[int, int | None]] = field(default_factory=dict)


class RecordsService:
    def __init__(self, spec: AppSpec, engine: sa.Engine, tables: Tables, queries: QueryBuilder,
                 schemas: Mapping[str, EntitySchemas], field_types: Mapping[str, FieldType],
                 pm: pluggy.PluginManager, tz: dt.tzinfo, audit: AuditTrail) -> None:
        self.spec = spec
        self.engine = engine
        self.tables = tables
        self.queries = queries
        self.schemas = schemas
        self.field_types = field_types
        self.hook = pm.hook
        self.tz = tz
        self.audit = audit
        self.permissions = queries.permissions
        #: entity -> its workflows
        self.workflows = compile_workflows(spec)
        #: entity -> workflow field -> workflow
        self._workflow_fields = {name: {wf.field: wf for wf in flows} for name, flows in self.workflows.items()}
        #: Collaborators (record shares), written through this service.
        self.sharing = Sharing(self)
        #: Formulas, rollups, conditional fields and validation rules (applied by its record hooks).
        self.rules = RecordRules(spec, tables)
        #: Tags on records, manual and by rule (crmkit.tagging), written through this service.
        self.tagging = Tagging(self)
        #: Owners picked by round-robin or load (crmkit.assignment), and the pools (crmkit.pool).
        self.assigner = Assigner(spec, tables)
        self.pool = Pool(self)
        self.rules.listeners.append(self.tagging.computed)  # a rollup that changes may change a rule tag
        #: Approvals of workflow moves (crmkit.approvals), written through this service.
        self.approvals = Approvals(self)
        #: The automations engine (crmkit.automations), set when the runtime is built.
        self.automations: Any = None
        self._referrers = self._find_referrers()
        #: The job queue (crmkit.jobs), set by runtime.build: a record hook
        #: enqueues in the write's transaction with
        #: ``event.service.jobs.enqueue(task, payload, conn=event.conn)``.
        self.jobs: Jobs | None = None
        #: The UPDATE of a live record at a known version; the SET columns are
        #: the parameters given (built once: statement building is costly).
        self._update_statements = {
            name: table.update().where(table.c.id == sa.bindparam("_record_id"),
                                       table.c.version == sa.bindparam("_old_version"),
                                       table.c.deleted_at.is_(None))
            for name, table in tables.entities.items()}
        #: Every column of each entity's table, in spec order.
        self._column_names = {name: tuple(f.column for f in entity.fields.values())
                              for name, entity in spec.entities.items()}

    # ---------------------------------------------------------------- helpers

    def entity(self, name: str) -> EntitySpec:
        entity = self.spec.entities.get(name)
        if entity is None:
            raise NotFound(f"no entity named '{name}'", code="unknown_entity")
        return entity

    def _find_referrers(self) -> dict[str, list[tuple[EntitySpec, FieldSpec]]]:
        found: dict[str, list[tuple[EntitySpec, FieldSpec]]] = {}
        for entity in self.spec.entities.values():
            for f in entity.user_fields:
                if f.type == "ref" and f.to is not None:
                    found.setdefault(f.to, []).append((entity, f))
        return found

    def _transaction(self, conn: sa.Connection | None) -> AbstractContextManager[sa.Connection]:
        if conn is not None:
            return nullcontext(conn)
        return write_transaction(self.engine)

    def _columns(self, entity: EntitySpec, values: Mapping[str, Any]) -> dict[str, Any]:
        fields = entity.fields
        return {fields[name].column: value for name, value in values.items()}

    def _check_refs(self, conn: sa.Connection, entity: EntitySpec, rows: list[dict[str, Any]],
                    actor: Actor) -> dict[int, dict[str, Any]]:
        """Refs must point at live records the writer may read: one query per
        ref field for all rows (a record outside their scope does not exist for them)."""
        errors: dict[int, dict[str, Any]] = {}
        for f in entity.user_fields:
            if f.type != "ref" or f.to is None:
                continue
            wanted = {row[f.name] for row in rows if row.get(f.name) is not None}
            if not wanted:
                continue
            missing = wanted - self.queries.existing_ids(conn, f.to, wanted, actor)
            for index, row in enumerate(rows):
                if row.get(f.name) in missing:
                    errors.setdefault(index, {})[f.name] = [self._missing_ref(f, row[f.name])]
        return errors

    def _missing_ref(self, f: FieldSpec, value: int) -> str:
        if f.to == "user":  # a disabled user can be given nothing new
            return f"user {value} does not exist or is disabled"
        target = self.spec.entities.get(f.to or "")
        return f"{label_text(target.label, 'en', f.to or '') if target else f.to} {value} does not exist"

    def _unique_conflict(self, exc: IntegrityError, entity: EntitySpec) -> CrmError:
        text = str(exc.orig)
        fields: tuple[str, ...] = ()
        diag = getattr(exc.orig, "diag", None)
        constraint = getattr(diag, "constraint_name", None)
        if constraint and constraint in self.tables.unique_names:
            fields = self.tables.unique_names[constraint][1]
        else:
            match = re.search(r"UNIQUE constraint failed: (.+)$", text)
            if match:
                columns = [part.split(".")[-1].strip() for part in match.group(1).split(",")]
                by_column = {f.column: f.name for f in entity.fields.values()}
                fields = tuple(by_column.get(c, c) for c in columns)
        if fields:
            what = label_text(entity.label, "en", entity.name).lower()
            message = f"another {what} already has this {' and '.join(fields)}"
            return Conflict(message, {name: ["already used by another record"] for name in fields},
                            code="unique_violation")
        if "FOREIGN KEY" in text or "foreign key" in text:
            return Conflict("a referenced record does not exist", code="reference_violation")
        return Conflict("the change conflicts with stored data", code="integrity_error")

    def _now(self) -> dt.datetime:
        return dt.datetime.now(UTC)

    # ---------------------------------------------------------------- permissions

    def access(self, actor: Actor, entity: EntitySpec) -> EntityAccess:
        return self.permissions.of(actor).entity(entity.name)

    def refuse(self, actor: Actor, entity: EntitySpec, action: str, record_id: int | None = None,
               message: str | None = None) -> Forbidden:
        """The 403 of an action the actor's roles do not allow (on this record)."""
        target = (f"this {label_text(entity.label, 'en', entity.name).lower()}" if record_id is not None
                  else label_text(entity.plural, "en", entity.name).lower())
        return refusal(actor, entity.name, action, target, record_id, message)

    def _require(self, actor: Actor, entity: EntitySpec, *actions: str) -> EntityAccess:
        ea = self.access(actor, entity)
        for action in actions:
            if not ea.allows(action):
                raise self.refuse(actor, entity, action)
        return ea

    def fetch_for(self, tx: sa.Connection, entity: EntitySpec, record_id: int, actor: Actor,
                  actions: tuple[str, ...], *, deleted: bool = False) -> Mapping[str, Any]:
        """The record for a write, if the actor's scope of every action covers it.
        A record they cannot read does not exist for them (404); one they can
        read but not change is a 403."""
        row = self.queries.fetch(tx, entity, record_id, actor=actor, actions=actions, for_update=True,
                                 deleted=deleted)
        if row is not None:
            return cast(Mapping[str, Any], row)  # a RowMapping's keys may be columns too; ours are names
        visible = self.queries.fetch(tx, entity, record_id, actor=actor, deleted=deleted)
        if visible is None:
            if deleted:
                raise NotFound(f"{entity.name} {record_id} is not in the recycle bin")
            raise self.not_found(entity, record_id)
        ea = self.access(actor, entity)
        refused = next((a for a in actions if not ea.allows(a)), None)
        if refused is None:  # allowed on some records, not this one: find the action whose scope excludes it
            refused = next((a for a in actions if self.queries.fetch(tx, entity, record_id, actor=actor,
                                                                     actions=(a,), deleted=deleted) is None),
                           actions[0])
        raise self.refuse(actor, entity, refused, record_id)

    def _owner_from(self, data: Any, entity: EntitySpec) -> tuple[Any, int | None, bool]:
        """(data without owner_id, the owner asked for, whether one was asked
        for); null asks for no owner on an entity with a pool (into the pool)."""
        if not entity.owned or not isinstance(data, dict) or "owner_id" not in data:
            return data, None, False
        data = dict(data)
        owner = data.pop("owner_id")
        if owner is None and entity.pool is not None:
            return data, None, True
        if isinstance(owner, bool) or not isinstance(owner, int) or not 0 < owner <= MAX_ID:
            raise ValidationFailed("owner_id must be the id of a user", {"owner_id": ["must be the id of a user"]})
        return data, owner, True

    def _owner_team(self, tx: sa.Connection, actor: Actor, entity: EntitySpec, owner_id: int) -> int | None:
        """The team of a new owner, who must be an active user within the actor's
        assign scope (a manager hands records to their team, not to anyone)."""
        users = self.tables.users
        query = sa.select(users.c.team_id).where(users.c.id == owner_id, users.c.active.is_(True))
        kinds = self.access(actor, entity).scope("assign")
        scope = self.queries.scopes.predicate("user", kinds)
        if scope is not None:
            query = query.where(scope)
        found = tx.execute(query, scope_params(actor)).first()
        if found is None:
            raise Conflict(f"no active user {owner_id} you may assign records to",
                           {"owner_id": [f"user {owner_id} is not an active user within your assign scope"]},
                           code="reference_not_found")
        team_id: int | None = found[0]
        return team_id

    # ---------------------------------------------------------------- create

    def create(self, entity_name: str, data: Any, actor: Actor = ANONYMOUS, *,
               conn: sa.Connection | None = None) -> dict[str, Any]:
        return self.create_many(entity_name, [data], actor, conn=conn, single=True)[0]

    def create_many(self, entity_name: str, items: list[Any], actor: Actor = ANONYMOUS, *,
                    conn: sa.Connection | None = None, single: bool = False,
                    action: str = "create") -> list[dict[str, Any]]:
        """Create records, all or none; returns the stored rows (by column).

        ``action`` is create, or import for a bulk load (which needs both).
        The owner is the actor unless ``owner_id`` names another user, which
        needs the assign permission."""
        entity = self.entity(entity_name)
        ea = self._require(actor, entity, *dict.fromkeys(("create", action)))
        schemas = self.schemas[entity.name]
        rows: list[dict[str, Any]] = []
        owners: list[int | None] = []
        pooled: set[int] = set()
        errors: dict[int, dict[str, Any]] = {}
        for index, data in enumerate(items):
            data, owner, asked = self._owner_from(data, entity)
            if asked and owner != actor.id and not ea.allows("assign"):
                raise self.refuse(actor, entity, "assign", message="your role does not allow you to "
                                      "create records owned by someone else")
            owners.append(owner if asked else None)
            if asked and owner is None:
                pooled.add(index)
            values, problems = schemas.load(data, partial=False, system=actor.system, access=ea)
            if problems:
                errors[index] = problems
            rows.append(values)
        defaults = [(f.name, self.field_types[f.type].default_value(f, self.tz))
                    for f in entity.user_fields if f.default is not None]
        for row in rows:
            for name, value in defaults:
                if name not in row:
                    row[name] = copy.deepcopy(value) if isinstance(value, (list, dict)) else value
        for field_name, workflow in self._workflow_fields.get(entity.name, {}).items():
            for index, (row, data) in enumerate(zip(rows, items)):
                given = isinstance(data, dict) and data.get(field_name) is not None
                if given and not actor.system and row.get(field_name) != workflow.initial:
                    errors.setdefault(index, {})[field_name] = [
                        f"a new record starts in state '{workflow.initial}'; it moves on through the transitions"]
                elif not given:
                    row[field_name] = workflow.initial
        if errors:
            raise self._validation(errors, single)
        with self._transaction(conn) as tx:
            errors = self._check_refs(tx, entity, rows, actor)
            if errors:
                raise self._missing_references(errors, single)
            teams = {owner: self._owner_team(tx, actor, entity, owner) for owner in set(owners)
                     if owner is not None and owner != actor.id}
            event = RecordEvent("create", entity, actor, tx, self, rows=rows, owners=owners, pooled=pooled)
            self.hook.record_before_create(event=event)
            now = self._now()
            system = {"version": 1, "created_at": now, "updated_at": now,
                      "created_by": actor.id, "updated_by": actor.id}
            if entity.owned:
                system["owner_id"] = actor.id
                system["team_id"] = actor.team_id
            table = self.tables.entities[entity.name]
            # Each record as it is stored: every column, by column name.
            blank = dict.fromkeys(self._column_names[entity.name])
            blank.update(system)
            fields = entity.fields
            records = []
            for index, (row, owner) in enumerate(zip(rows, owners)):
                values = blank.copy()
                for name, value in row.items():
                    values[fields[name].column] = value
                if owner is not None and owner != actor.id:
                    values["owner_id"], values["team_id"] = owner, teams[owner]
                elif index in pooled:
                    values["owner_id"] = values["team_id"] = None
                elif index in event.assigned:  # chosen by the entity's assignment rule
                    values["owner_id"], values["team_id"] = event.assigned[index]
                records.append(values)
            try:
                if len(records) == 1:
                    values = records[0]
                    del values["id"]
                    values["id"] = tx.execute(table.insert().returning(table.c.id), values).scalar_one()
                else:
                    ids = self._reserve_ids(tx, table, len(records))
                    for record_id, values in zip(ids, records):
                        values["id"] = record_id
                    tx.execute(table.insert(), records)
            except IntegrityError as exc:
                raise self._unique_conflict(exc, entity) from None
            event.records = records
            self.hook.record_after_create(event=event)
        return records

    def _reserve_ids(self, tx: sa.Connection, table: sa.Table, count: int) -> list[int]:
        """Ids for a bulk insert, so it can be one executemany without RETURNING.

        PostgreSQL hands them out from the table's sequence; on SQLite the write
        transaction holds the database lock, so the next ids after the highest
        ever used (AUTOINCREMENT's own counter) are ours."""
        if tx.dialect.name == "postgresql":
            sequence = tx.execute(sa.text("SELECT pg_get_serial_sequence(:t, 'id')"),
                                  {"t": f'"{table.name}"'}).scalar_one()
            return list(tx.execute(sa.text("SELECT nextval(:s) FROM generate_series(1, :n)"),
                                   {"s": sequence, "n": count}).scalars())
        highest = tx.execute(sa.text("SELECT seq FROM sqlite_sequence WHERE name = :t"), {"t": table.name}).scalar()
        highest = max(highest or 0, tx.execute(sa.select(sa.func.max(table.c.id))).scalar() or 0)
        return list(range(highest + 1, highest + 1 + count))

    def _missing_references(self, errors: dict[int, dict[str, Any]], single: bool) -> Conflict:
        """Values that are well formed but name records that do not exist (for
        the writer): a conflict with the data, not a malformed request (409)."""
        invalid = self._validation(errors, single)
        return Conflict(invalid.message, invalid.details, code="reference_not_found")

    def _validation(self, errors: dict[int, dict[str, Any]], single: bool) -> ValidationFailed:
        if single:
            details = errors[0]
            fields = ", ".join(details)
            return ValidationFailed(f"invalid values for: {fields}", details)
        return ValidationFailed(f"{len(errors)} record(s) have invalid values",
                                {str(index): problems for index, problems in sorted(errors.items())})

    # ---------------------------------------------------------------- update

    def update(self, entity_name: str, record_id: int, data: Any, actor: Actor = ANONYMOUS, *,
               version: int | None = None, conn: sa.Connection | None = None,
               transition: Transition | None = None) -> dict[str, Any]:
        entity = self.entity(entity_name)
        schemas = self.schemas[entity.name]
        if isinstance(data, dict) and version is None and "version" in data:
            version = data["version"]
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            raise ValidationFailed("version must be an integer", {"version": ["must be an integer"]})
        data, owner, reassign = self._owner_from(data, entity)
        ea = self.access(actor, entity)
        state = None
        if transition is not None:  # the move's permission covers its state field, whatever the field rules
            data = dict(data)
            state = next((name, data.pop(name)) for name, wf in self._workflow_fields[entity.name].items()
                         if transition in wf.transitions)
        values, problems = schemas.load(data, partial=True, system=actor.system, access=ea)
        if state is not None:
            values[state[0]] = state[1]
        for field_name in self._workflow_fields.get(entity.name, {}):
            if field_name in values and transition is None and not actor.system:
                problems[field_name] = ["changes only through the workflow's transitions: "
                                        f"POST /api/v1/{entity.name}/{record_id}/transitions/NAME"]
        if problems:
            raise self._validation({0: problems}, True)
        if transition is not None:
            actions: tuple[str, ...] = ("transition",)
        else:
            actions = (("update",) if values or not reassign else ()) + (("assign",) if reassign else ())
        with self._transaction(conn) as tx:
            old = self.fetch_for(tx, entity, record_id, actor, actions)
            if owner is not None and owner != old["owner_id"]:  # reassigned: the team follows the owner
                values.update(owner_id=owner, team_id=self._owner_team(tx, actor, entity, owner))
            elif reassign and owner is None and old["owner_id"] is not None:  # back to the entity's pool
                values.update(owner_id=None, team_id=None)
            if version is not None and version != old["version"]:
                raise Conflict(f"the record was changed by someone else (your version {version}, "
                               f"current {old['version']}); reload it and apply your change again",
                               {"version": [f"stale: current version is {old['version']}"]}, code="stale_version")
            errors = self._check_refs(tx, entity, [values], actor)
            if errors:
                raise self._missing_references(errors, True)
            event = RecordEvent("update", entity, actor, tx, self, rows=[values], old=[old], transition=transition)
            self.hook.record_before_update(event=event)
            fields = entity.fields
            changed = {name: value for name, value in values.items() if old[fields[name].column] != value}
            if not changed:
                return dict(old)
            updates = self._columns(entity, changed)
            updates.update(updated_at=self._now(), updated_by=actor.id, version=old["version"] + 1)
            try:
                result = tx.execute(self._update_statements[entity.name],
                                    {**updates, "_record_id": record_id, "_old_version": old["version"]})
            except IntegrityError as exc:
                raise self._unique_conflict(exc, entity) from None
            if result.rowcount != 1:
                raise Conflict("the record was changed by someone else while you saved; reload it",
                               {"version": ["changed concurrently"]}, code="stale_version")
            record = dict(old)
            record.update(updates)
            dump = self.schemas[entity.name].dump
            before, after = dump(old, frozenset(changed)), dump(record, frozenset(changed))
            event.rows = [changed]
            event.records = [record]
            event.changes = [{name: (before[name], after[name]) for name in changed}]
            self.hook.record_after_update(event=event)
        return record

    def not_found(self, entity: EntitySpec, record_id: int) -> NotFound:
        return NotFound(f"{entity.name} {record_id} not found")

    # ---------------------------------------------------------------- delete

    def delete(self, entity_name: str, record_id: int, actor: Actor = ANONYMOUS, *,
               version: int | None = None, conn: sa.Connection | None = None) -> None:
        """Move a record to the recycle bin (restorable until purged)."""
        entity = self.entity(entity_name)
        with self._transaction(conn) as tx:
            old = self.fetch_for(tx, entity, record_id, actor, ("delete",))
            if version is not None and version != old["version"]:
                raise Conflict("the record was changed by someone else; reload it before deleting",
                               {"version": [f"stale: current version is {old['version']}"]}, code="stale_version")
            event = RecordEvent("delete", entity, actor, tx, self, old=[old])
            self.hook.record_before_delete(event=event)
            self._handle_referrers(tx, entity, record_id, actor)
            changes = {"deleted_at": self._now(), "deleted_by": actor.id, "version": old["version"] + 1}
            result = tx.execute(self._update_statements[entity.name],
                                {**changes, "_record_id": record_id, "_old_version": old["version"]})
            if result.rowcount != 1:
                raise Conflict("the record was changed by someone else while you deleted it; reload it",
                               {"version": ["changed concurrently"]}, code="stale_version")
            record = dict(old)
            record.update(changes)
            event.records = [record]
            self.hook.record_after_delete(event=event)

    def _handle_referrers(self, tx: sa.Connection, entity: EntitySpec, record_id: int, actor: Actor) -> None:
        """What deleting a record entails for the records that refer to it. The
        actor may delete the record, so the cascade and the clearing of references
        run on their behalf, whether or not their scope covers the referrers;
        a restriction reports how many refer to it, not which (ids outside their
        scope are not theirs to learn)."""
        actor = actor.on_behalf()
        for other, f in self._referrers.get(entity.name, ()):
            table = self.tables.entities[other.name]
            ids = list(tx.execute(sa.select(table.c.id).where(table.c[f.column] == record_id,
                                                               table.c.deleted_at.is_(None))).scalars())
            if not ids:
                continue
            if f.on_delete == "restrict":
                what = label_text(other.plural, "en", other.name).lower()
                raise Conflict(f"cannot delete: {len(ids)} {what} refer to it through '{f.name}'; "
                               "delete or re-assign them first",
                               {"references": {other.name: len(ids)}}, code="referenced")
            for other_id in ids:
                if f.on_delete == "cascade":
                    self.delete(other.name, other_id, actor, conn=tx)
                else:
                    self.update(other.name, other_id, {f.name: None}, actor, conn=tx)

    def restore(self, entity_name: str, record_id: int, actor: Actor = ANONYMOUS) -> dict[str, Any]:
        entity = self.entity(entity_name)
        with write_transaction(self.engine) as tx:
            old = self.fetch_for(tx, entity, record_id, actor, ("delete",), deleted=True)
            table = self.tables.entities[entity.name]
            updates = {"deleted_at": None, "deleted_by": None, "version": old["version"] + 1,
                       "updated_at": self._now(), "updated_by": actor.id}
            try:
                tx.execute(table.update().where(table.c.id == record_id).values(updates))
            except IntegrityError as exc:
                raise self._unique_conflict(exc, entity) from None
            record = dict(old)
            record.update(updates)
            event = RecordEvent("restore", entity, actor, tx, self, old=[old], records=[record])
            self.hook.record_after_delete(event=event)
        return record

    # ---------------------------------------------------------------- many-to-many

    def _link_parts(self, entity: EntitySpec, relation: str
                    ) -> tuple[RelationSpec, sa.Table, sa.Column[Any], sa.Column[Any]]:
        rel = entity.relations.get(relation)
        if rel is None or rel.kind != "many_to_many":
            raise NotFound(f"{entity.name} has no many-to-many relation '{relation}'", code="unknown_relation")
        left, right = self.tables.link_columns(entity.name, rel.name)
        return rel, self.tables.links[(entity.name, rel.name)], left, right

    def link(self, entity_name: str, record_id: int, relation: str, ids: list[int],
             actor: Actor = ANONYMOUS) -> list[int]:
        """Link records through a many-to-many relation; returns the linked ids afterwards."""
        entity = self.entity(entity_name)
        rel, link, left, right = self._link_parts(entity, relation)
        with write_transaction(self.engine) as tx:
            old = self.fetch_for(tx, entity, record_id, actor, ("update",))
            in_range = {i for i in ids if 0 < i <= MAX_ID}  # others cannot be ids at all
            missing = set(ids) - self.queries.existing_ids(tx, rel.entity, in_range, actor)
            if missing:
                raise Conflict(f"no {rel.entity} with id {sorted(missing)[0]}",
                               {"ids": [f"{rel.entity} {i} does not exist" for i in sorted(missing)]},
                               code="reference_not_found")
            before = set(tx.execute(sa.select(right).where(left == record_id)).scalars())
            new = [i for i in dict.fromkeys(ids) if i not in before]
            if new:
                now = self._now()
                tx.execute(link.insert(), [{left.name: record_id, right.name: i, "created_at": now,
                                            "created_by": actor.id} for i in new])
                self.relation_changed(tx, entity, old, relation, before, before | set(new), actor)
            return sorted(before | set(new))

    def unlink(self, entity_name: str, record_id: int, relation: str, other_id: int, actor: Actor = ANONYMOUS) -> None:
        entity = self.entity(entity_name)
        rel, link, left, right = self._link_parts(entity, relation)
        with write_transaction(self.engine) as tx:
            old = self.fetch_for(tx, entity, record_id, actor, ("update",))
            before = set(tx.execute(sa.select(right).where(left == record_id)).scalars())
            if other_id not in before:
                raise NotFound(f"{rel.entity} {other_id} is not linked to {entity.name} {record_id}")
            tx.execute(link.delete().where(left == record_id, right == other_id))
            self.relation_changed(tx, entity, old, relation, before, before - {other_id}, actor)

    def relation_changed(self, tx: sa.Connection, entity: EntitySpec, old: Mapping[str, Any], relation: str,
                         before: Iterable[Any], after: Iterable[Any], actor: Actor) -> None:
        """A link change is an update of the record's relation: audited, hooked, no new version."""
        event = RecordEvent("update", entity, actor, tx, self, rows=[{}], old=[old], records=[dict(old)],
                            changes=[{relation: (sorted(before), sorted(after))}])
        self.hook.record_after_update(event=event)

    # ---------------------------------------------------------------- workflow moves

    def _move(self, entity: EntitySpec, name: str) -> tuple[Workflow, Transition]:
        for workflow in self.workflows.get(entity.name, ()):
            move = workflow.transition(name)
            if move is not None:
                return workflow, move
        raise NotFound(f"{entity.name} has no transition '{name}'", code="unknown_transition")

    def _refusal(self, blocked: Blocked, move: Transition, actor: Actor, entity: EntitySpec,
                 record_id: int) -> CrmError:
        """The error of a move the workflow guard blocks."""
        if blocked.reason == "roles":
            return self.refuse(actor, entity, "transition", record_id, blocked.message)
        if blocked.reason == "required":
            return Conflict(blocked.message, {n: [f"is required to '{move.name}'"] for n in blocked.missing},
                            code="fields_required")  # the record's state: 409
        return Conflict(blocked.message, code=blocked.reason)

    def transitions(self, entity_name: str, record_id: int, actor: Actor, *, conn: sa.Connection | None = None,
                    in_scope: bool | None = None,
                    pending: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """The moves of a record's workflows from its current state, each with
        whether the actor may make it now and, if not, why (read on ``conn``
        when given: a page that reads the record too uses one connection).

        A caller that has asked already may say what it found, and it is not
        read again: ``in_scope``, whether the record is in the actor's
        transition scope; ``pending``, the record's pending approvals (as
        ``approvals.of_record`` gives them)."""
        entity = self.entity(entity_name)
        if conn is None:
            with self.engine.connect() as own:
                return self._transitions(own, entity, record_id, actor, in_scope, pending)
        return self._transitions(conn, entity, record_id, actor, in_scope, pending)

    def _transitions(self, conn: sa.Connection, entity: EntitySpec, record_id: int, actor: Actor,
                     in_scope: bool | None, pending: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        row = self.queries.fetch(conn, entity, record_id, actor=actor)
        if row is None:
            raise self.not_found(entity, record_id)
        if in_scope is None:  # a transition scope of every record holds this live one: no second read to ask
            in_scope = (self.queries.scope(entity.name, actor, "transition") is None
                        or self.queries.fetch(conn, entity, record_id, actor=actor,
                                              actions=("transition",)) is not None)
        if pending is None:
            pending = self.approvals.of_record(conn, entity.name, record_id, actor, pending=True)
        values = {f.name: row[f.column] for f in entity.fields.values()}
        access = self.permissions.of(actor)
        context = self.rules.context(actor.id)
        loader = SqlLoader(conn, self.tables)  # for a condition that reads other records
        moves = []
        waiting_in = {a["workflow"]: a for a in pending if a["status"] == "pending"}
        for workflow in self.workflows.get(entity.name, ()):
            state = values[workflow.field]
            for move in workflow.transitions:
                if not move.allows_from(state):
                    continue
                blocked = blocker(move, access, values, context=context, loader=loader) if in_scope else None
                reason = ("your role does not allow you to move this record" if not in_scope
                          else blocked.message if blocked is not None else None)
                waiting = waiting_in.get(workflow.name)
                if waiting is not None:  # the state is locked until it is decided
                    reason = f"'{waiting['transition']}' is awaiting approval"
                moves.append({"name": move.name, "label": dict(move.label), "from": state, "to": move.to,
                              "workflow": workflow.name, "allowed": reason is None, "reason": reason,
                              "missing": missing_fields(move, values),
                              "approval": move.spec.approval is not None,
                              "pending_approval": waiting["id"] if waiting is not None else None})
        return moves

    def transition(self, entity_name: str, record_id: int, name: str, data: Any, actor: Actor, *,
                   version: int | None = None, conn: sa.Connection | None = None,
                   approved: bool = False) -> dict[str, Any] | ApprovalPending:
        """Make a workflow move; ``data`` may fill in fields it requires (under
        the actor's field rules) in the same write, which is an update.

        A move with an ``approval`` is not made: a pending approval is
        (crmkit.approvals), returned as ApprovalPending; ``approved`` is how
        that module makes the move once it is approved."""
        entity = self.entity(entity_name)
        workflow, move = self._move(entity, name)
        data = dict(data) if isinstance(data, dict) else {}
        data.pop("version", None)
        if workflow.field in data:
            raise ValidationFailed(f"the transition sets {workflow.field}; do not send it",
                                   {workflow.field: ["is set by the transition"]})
        with self._transaction(conn) as tx:
            old = self.fetch_for(tx, entity, record_id, actor, ("transition",))
            state = old[entity.fields[workflow.field].column]
            if not move.allows_from(state):
                starts = ", ".join(sorted(move.sources or ()))
                raise Conflict(f"cannot '{move.name}' from state '{state}'",
                               {workflow.field: [f"is '{state}'; '{move.name}' starts from {starts}"]},
                               code="invalid_transition")
            values, problems = self.schemas[entity.name].load(data, partial=True, system=actor.system,
                                                              access=self.access(actor, entity))
            if problems:
                raise self._validation({0: problems}, True)
            merged = {f.name: old[f.column] for f in entity.fields.values()}
            merged.update(values)
            blocked = blocker(move, self.permissions.of(actor), merged, context=self.rules.context(actor.id),
                              loader=SqlLoader(tx, self.tables))
            if blocked is not None:
                raise self._refusal(blocked, move, actor, entity, record_id)
            if move.spec.approval is not None and not approved:
                if version is not None and version != old["version"]:
                    raise Conflict(f"the record was changed by someone else (your version {version}, "
                                   f"current {old['version']}); reload it and ask again",
                                   {"version": [f"stale: current version is {old['version']}"]},
                                   code="stale_version")
                pending = self.approvals.request(tx, entity, workflow, move, old, values, merged, actor)
                if pending is not None:
                    return pending
            return self.update(entity.name, record_id, {**data, workflow.field: move.to}, actor, version=version,
                               conn=tx, transition=move)

    # ---------------------------------------------------------------- recycle bin

    def purge_record(self, entity_name: str, record_id: int, actor: Actor) -> None:
        """Delete one record of the recycle bin for good (the admin console's
        purge): needs the delete action covering it, like restoring it."""
        entity = self.entity(entity_name)
        with write_transaction(self.engine) as tx:
            self.fetch_for(tx, entity, record_id, actor, ("delete",), deleted=True)
            table = self.tables.entities[entity.name]
            try:
                tx.execute(table.delete().where(table.c.id == record_id, table.c.deleted_at.is_not(None)))
            except IntegrityError:
                raise Conflict("other records still refer to it; purge or change them first",
                               code="referenced") from None
            shares = self.tables.shares
            tx.execute(shares.delete().where(shares.c.entity == entity.name, shares.c.record_id == record_id))
            self.audit.records(tx, entity.name, "purge", actor, [record_id], [None])

    def purge(self, older_than: dt.timedelta | None = None) -> dict[str, int]:
        """Delete for good what has been in the recycle bin longer than the retention."""
        cutoff = self._now() - (older_than if older_than is not None else dt.timedelta(days=self.spec.recycle_bin_days))
        purged: dict[str, int] = {}
        with write_transaction(self.engine) as tx:
            for entity in self.spec.entities.values():
                table = self.tables.entities[entity.name]
                ids = list(tx.execute(sa.select(table.c.id).where(table.c.deleted_at < cutoff)).scalars())
                if not ids:
                    continue
                tx.execute(table.delete().where(table.c.id.in_(ids)))
                shares = self.tables.shares
                tx.execute(shares.delete().where(shares.c.entity == entity.name, shares.c.record_id.in_(ids)))
                self.audit.purged(tx, entity.name, ids)
                self.tagging.purged(tx, entity.name, ids)
                purged[entity.name] = len(ids)
        return purged

