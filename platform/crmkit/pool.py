"""The customer pool, 公海 (internal plugin): an owned entity's records without an owner.

An entity's ``pool:`` turns it on. Who may *claim* a record of the pool:
a user whose roles may read and update the entity in some scope; the
permissions module adds the pool to their read scope (``owner_id IS NULL``,
in SQL), so a rep who reads only their own records still sees the pool.
A claim is an update of the owner through the records service (as the user,
on behalf of the platform: the rep's update scope does not cover a record
that is not theirs yet), so it is validated, hooked and in the record's
history like any owner change. It is refused past the per-user
``claim_limit`` of owned live records, and within ``cooldown_days`` of the
user releasing or losing the same record. An owner *releases* a record (an
update to no owner); records whose ``return_when`` holds, and whose owner has
had them ``return_after_days``, *return* on schedule (task ``pool.return``,
or ``crmkit pool return``), selected in one statement by the expression
language's SQL.

Concurrency: a claim locks the record's row (PostgreSQL ``FOR UPDATE``,
SQLite's write lock) and the claimer's user row before it checks, so of two
reps claiming the same record exactly one wins, and one rep's concurrent
claims cannot pass their limit.

Every owner change of a pool entity, whatever its path (a claim, a release,
a manager's reassignment, a return), is kept in ``crmkit_pool_events``: what
the cool-down and "owned since" read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .database import write_transaction
from .errors import Conflict, CrmError, NotFound
from .expressions import Checked, Context, ExpressionError, check, to_sql
from .hookspecs import hookimpl
from .jobs import Schedule, task
from .metadata.problems import Problem, ProblemList, did_you_mean
from .metadata.spec import AppSpec, EntitySpec, PoolSpec
from .permissions import Actor
from .sqltypes import UTC, UTCDateTime

if TYPE_CHECKING:
    from .metadata.loader import Document
    from .records import RecordEvent, RecordsService
    from .runtime import Runtime

EVENT_TABLE = "crmkit_pool_events"
#: What happened to a record's ownership (the user is the one it happened to).
CLAIM, ASSIGN, RELEASE, RETURN = "claim", "assign", "release", "return"
#: The actor of scheduled returns, as the history shows it.
RETURNER = Actor(None, "pool return", system=True)
#: Records returned per transaction.
BATCH = 500
#: When the pools' scheduled return runs (daily at 02:30, in the app's time zone).
RETURN_CRON = "30 2 * * *"


@hookimpl
def crmkit_tables(metadata: sa.MetaData, spec: AppSpec) -> None:
    sa.Table(
        EVENT_TABLE, metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("record_id", sa.Integer, nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),  # who got or lost the record
        sa.Column("action", sa.String(16), nullable=False),  # claim | assign | release | return
        sa.Column("actor_id", sa.Integer),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Index("ix_crmkit_pool_events_record", "entity", "record_id", "user_id", "at"),
        sqlite_autoincrement=True,
    )


def _now() -> dt.datetime:
    return dt.datetime.now(UTC)


# ------------------------------------------------------------------ checking the config

def check_pools(spec: AppSpec, entity_docs: Mapping[str, Document], problems: ProblemList) -> None:
    """A pool's ``return_when`` (a condition over the entity, as the system)
    and an assignment's role, against the whole spec; located in the file."""
    roles = set(spec.roles) | {"admin"}
    for name, entity in spec.entities.items():
        doc = entity_docs.get(name)
        if doc is None:
            continue
        rule = entity.assignment
        if rule is not None and rule.role is not None and rule.role not in roles:
            problems.add(doc, ("assignment", "role"), f"assignment names unknown role '{rule.role}'",
                         did_you_mean(rule.role, roles))
        pool = entity.pool
        if pool is None:
            continue
        if pool.return_when is None and pool.return_after_days is not None:
            problems.add(doc, ("pool", "return_after_days"), "return_after_days needs return_when: the condition "
                         "that sends a record back (e.g. no follow-up in 30 days)")
        if pool.return_when is not None:
            try:
                check(pool.return_when, spec, name)
            except ExpressionError as error:
                line, column = doc.locate_text(("pool", "return_when"), error.line, error.column)
                problems.add_problem(Problem(doc.file, line, column, error.message, error.hint))


# ------------------------------------------------------------------ the service

class Pool:
    """Claims, releases and returns; written through the records service
    (``service.pool``), in its transactions."""

    def __init__(self, service: RecordsService) -> None:
        self.service = service
        self.spec = service.spec
        self.table = service.tables.metadata.tables[EVENT_TABLE]
        self.rules: dict[str, Checked] = {
            name: check(entity.pool.return_when, self.spec, name) for name, entity in self.spec.entities.items()
            if entity.pool is not None and entity.pool.return_when is not None}
        events = self.table
        #: A claim's checks in one statement, built once per entity (building costs more than running it):
        #: when the claimer last gave the record up (within the cool-down), and how many records they own.
        gave_up = sa.select(sa.func.max(events.c.at)).where(
            events.c.entity == sa.bindparam("_entity"), events.c.record_id == sa.bindparam("_record_id"),
            events.c.user_id == sa.bindparam("_user_id"), events.c.action.in_((RELEASE, RETURN)),
            events.c.at > sa.bindparam("_since", type_=UTCDateTime())).scalar_subquery()
        self._claimer = {name: sa.select(gave_up, sa.select(sa.func.count()).select_from(table).where(
            table.c.owner_id == sa.bindparam("_user_id"), table.c.deleted_at.is_(None)).scalar_subquery())
            for name, table in service.tables.entities.items() if self.spec.entities[name].pool is not None}
        users = service.tables.users
        self._lock_user = sa.select(users.c.id).where(users.c.id == sa.bindparam("_user_id")).with_for_update()

    def of(self, entity_name: str) -> tuple[EntitySpec, PoolSpec]:
        entity = self.service.entity(entity_name)
        if entity.pool is None:
            raise NotFound(f"{entity.name} has no pool", code="no_pool")
        return entity, entity.pool

    # -------------------------------------------------------------- claim

    def may_claim(self, actor: Actor, entity: EntitySpec) -> bool:
        """Whether the actor's roles may claim from the entity's pool: read and
        update it in some scope (the same rule that shows them the pool)."""
        ea = self.service.access(actor, entity)
        return entity.pool is not None and actor.id is not None and ea.allows("read") and ea.allows("update")

    def claim(self, entity_name: str, record_id: int, actor: Actor) -> dict[str, Any]:
        """Make the actor the owner of a record of the pool; returns the stored record."""
        entity, pool = self.of(entity_name)
        if not self.may_claim(actor, entity):
            raise self.service.refuse(actor, entity, "update", record_id,
                                      f"your role does not allow you to claim {entity.name} records from the pool")
        assert actor.id is not None
        queries = self.service.queries
        with write_transaction(self.service.engine) as tx:
            if tx.dialect.name == "postgresql":  # one claim of a user at a time (the limit); SQLite: the write lock
                tx.execute(self._lock_user, {"_user_id": actor.id})
            # Lock the record whoever owns it, then judge it as it is now.
            row = queries.fetch(tx, entity, record_id, actor=self.service_actor(actor), for_update=True,
                                columns=("id", "owner_id", "version"))
            # A record of the pool is in the read scope of whoever may claim; another, only if their scope says so.
            if row is None or (row["owner_id"] is not None
                               and queries.fetch(tx, entity, record_id, actor=actor, columns=("id",)) is None):
                raise NotFound(f"{entity.name} {record_id} not found (or no longer in the pool)")
            if row["owner_id"] == actor.id:
                raise Conflict(f"{entity.name} {record_id} is yours already", code="already_owned")
            if row["owner_id"] is not None:
                raise Conflict(f"{entity.name} {record_id} is not in the pool: someone else owns it",
                               {"owner_id": ["the record has an owner"]}, code="not_in_pool")
            self._check_claimer(tx, entity, pool, record_id, actor.id)
            return self.service.update(entity.name, record_id, {"owner_id": actor.id}, self.service_actor(actor),
                                       conn=tx)

    def service_actor(self, actor: Actor) -> Actor:
        """The user, acting through the platform: their scope need not cover
        a record that is not theirs yet (checked here instead)."""
        return actor.on_behalf()

    def _check_claimer(self, tx: sa.Connection, entity: EntitySpec, pool: PoolSpec, record_id: int,
                       user_id: int) -> None:
        """The cool-down, then the claim limit."""
        if not pool.cooldown_days and pool.claim_limit is None:
            return
        since = _now() - dt.timedelta(days=pool.cooldown_days)
        last, owned = tx.execute(self._claimer[entity.name], {
            "_entity": entity.name, "_record_id": record_id, "_user_id": user_id, "_since": since}).one()
        if last is not None and pool.cooldown_days:
            until = last + dt.timedelta(days=pool.cooldown_days)
            raise Conflict(f"you gave this {entity.name} up on {last:%Y-%m-%d}: you may claim it again from "
                           f"{until:%Y-%m-%d %H:%M} UTC ({pool.cooldown_days}-day cool-down)",
                           {"until": until.isoformat()}, code="cooldown")
        if pool.claim_limit is not None and owned >= pool.claim_limit:
            raise Conflict(f"you own {owned} {entity.name} records; the pool's limit is {pool.claim_limit}: "
                           "release some before claiming more", {"limit": pool.claim_limit, "owned": owned},
                           code="claim_limit")

    # -------------------------------------------------------------- release

    def release(self, entity_name: str, record_id: int, actor: Actor) -> dict[str, Any]:
        """Give a record back to the pool: its owner may (within their update
        scope), and so may whoever may assign it."""
        entity, _pool = self.of(entity_name)
        with write_transaction(self.service.engine) as tx:
            ea = self.service.access(actor, entity)
            action = "update"
            row = self.service.queries.fetch(tx, entity, record_id, actor=actor, actions=("update",),
                                             columns=("id", "owner_id"))
            if row is None or row["owner_id"] != actor.id:
                action = "assign"
                if not ea.allows("assign"):
                    visible = self.service.queries.fetch(tx, entity, record_id, actor=actor, columns=("id", "owner_id"))
                    if visible is None:
                        raise self.service.not_found(entity, record_id)
                    if visible["owner_id"] is None:
                        raise Conflict(f"{entity.name} {record_id} is in the pool already", code="in_pool")
                    raise self.service.refuse(actor, entity, "update", record_id,
                                              "only the owner (or someone who may reassign it) releases a record")
            old = self.service.fetch_for(tx, entity, record_id, actor, (action,))
            if old["owner_id"] is None:
                raise Conflict(f"{entity.name} {record_id} is in the pool already", code="in_pool")
            return self.service.update(entity.name, record_id, {"owner_id": None}, self.service_actor(actor),
                                       conn=tx)

    def send_back(self, entity_name: str, record_id: int, actor: Actor, *,
                  conn: sa.Connection | None = None) -> bool:
        """Return a record to the pool as the system (an automation's
        ``return_to_pool``); False when it is there already."""
        entity, _pool = self.of(entity_name)
        if conn is None:
            with write_transaction(self.service.engine) as tx:
                return self.send_back(entity_name, record_id, actor, conn=tx)
        old = self.service.fetch_for(conn, entity, record_id, actor, ("assign",))
        if old["owner_id"] is None:
            return False
        self.service.update(entity.name, record_id, {"owner_id": None}, actor, conn=conn)
        return True

    # -------------------------------------------------------------- scheduled return

    def due(self, conn: sa.Connection, entity_name: str, now: dt.datetime | None = None) -> sa.Select[Any]:
        """The ids of the records that return now: owned, live, return_when
        true, owned at least return_after_days (one statement)."""
        entity, pool = self.of(entity_name)
        rule = self.rules.get(entity.name)
        if rule is None:
            raise CrmError(f"the pool of {entity.name} has no return_when: nothing returns on schedule",
                           code="no_return_rule", status=409)
        table = self.service.tables.entities[entity.name]
        context = Context.at(self.spec.timezone, now=now)
        holds = to_sql(rule, self.service.tables, dialect=conn.dialect.name, context=context)
        query = sa.select(table.c.id).where(table.c.owner_id.is_not(None), table.c.deleted_at.is_(None), holds)
        if pool.return_after_days:
            events = self.table
            got = (sa.select(sa.func.max(events.c.at))
                   .where(events.c.entity == entity.name, events.c.record_id == table.c.id,
                          events.c.user_id == table.c.owner_id, events.c.action.in_((CLAIM, ASSIGN)))
                   .scalar_subquery())
            cutoff = context.now - dt.timedelta(days=pool.return_after_days)
            query = query.where(table.c.created_at <= cutoff,
                                sa.or_(got.is_(None), got <= sa.literal(cutoff, UTCDateTime())))
        return query.order_by(table.c.id)

    def return_due(self, entity_name: str | None = None, *, now: dt.datetime | None = None,
                   actor: Actor = RETURNER) -> dict[str, int]:
        """Send back to the pool every record due (of one entity, or of every
        pool with a return rule), in batches; returns entity -> how many."""
        names = [entity_name] if entity_name is not None else list(self.rules)
        counts: dict[str, int] = {}
        engine = self.service.engine
        for name in names:
            self.of(name)
            with engine.connect() as conn:
                ids = list(conn.execute(self.due(conn, name, now)).scalars())
            counts[name] = 0
            for start in range(0, len(ids), BATCH):
                with write_transaction(engine) as tx:
                    for record_id in ids[start:start + BATCH]:
                        try:
                            if self.send_back(name, record_id, actor, conn=tx):
                                counts[name] += 1
                        except NotFound:  # deleted since it was selected
                            continue
        return counts

    # -------------------------------------------------------------- reading

    def in_pool(self, conn: sa.Connection, entity: EntitySpec, ids: Sequence[int]) -> set[int]:
        """Which of these records are in the pool (for a list page's claim buttons)."""
        table = self.service.tables.entities[entity.name]
        return set(conn.execute(sa.select(table.c.id).where(table.c.id.in_(list(ids)), table.c.owner_id.is_(None),
                                                            table.c.deleted_at.is_(None))).scalars())

    def owned_count(self, conn: sa.Connection, entity: EntitySpec, user_id: int) -> int:
        table = self.service.tables.entities[entity.name]
        return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(
            table.c.owner_id == user_id, table.c.deleted_at.is_(None))).scalar_one())

    def events(self, conn: sa.Connection, entity: EntitySpec, record_id: int) -> Sequence[Mapping[str, Any]]:
        """The ownership moves of a record, oldest first."""
        events = self.table
        rows = conn.execute(sa.select(events).where(events.c.entity == entity.name, events.c.record_id == record_id)
                            .order_by(events.c.id)).mappings().all()
        return [dict(row) for row in rows]

    # -------------------------------------------------------------- the record hook

    def owner_changed(self, event: RecordEvent) -> None:
        """Keep every owner change of a pool entity: who lost it (release by
        themselves, return otherwise), who got it (claim from the pool by
        themselves, assign otherwise)."""
        rows = []
        at = _now()
        for change, record in zip(event.changes, event.records):
            if "owner_id" not in change:
                continue
            before, after = change["owner_id"]
            if before is not None:
                rows.append({"entity": event.entity.name, "record_id": record["id"], "user_id": before,
                             "action": RELEASE if event.actor.id == before else RETURN,
                             "actor_id": event.actor.id, "at": at})
            if after is not None:
                rows.append({"entity": event.entity.name, "record_id": record["id"], "user_id": after,
                             "action": CLAIM if before is None and event.actor.id == after else ASSIGN,
                             "actor_id": event.actor.id, "at": at})
        if rows:
            event.conn.execute(self.table.insert(), rows)


# ------------------------------------------------------------------ schedule

@task("pool.return")
def return_to_pools(runtime: Runtime, payload: dict[str, Any]) -> None:
    """The scheduled return of a pool (``{"entity": NAME}``; none: every pool).
    At least once is fine: a second run finds nothing more due."""
    runtime.records.pool.return_due(payload.get("entity"))


@hookimpl
def crmkit_automation_actions() -> list[Any]:
    """``assign`` and ``return_to_pool`` for the automations engine."""
    from .pool_actions import AssignAction, ReturnToPoolAction

    return [AssignAction(), ReturnToPoolAction()]


@hookimpl
def crmkit_schedules(spec: AppSpec) -> list[Schedule]:
    """One daily return per entity whose pool has a return_when."""
    return [Schedule(f"pool.return.{name}", RETURN_CRON, "pool.return", {"entity": name})
            for name, entity in spec.entities.items() if entity.pool is not None and entity.pool.return_when]


@hookimpl
def record_after_update(event: RecordEvent) -> None:
    if event.entity.pool is not None:
        event.service.pool.owner_changed(event)
