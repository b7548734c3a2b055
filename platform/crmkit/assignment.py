"""Assignment (internal plugin): who owns a record nobody named an owner for.

Two strategies over the *candidates* (the active users of a role and/or a
team with its sub-teams, optionally narrowed to a team by a field of the
record, ``route``):

- ``round_robin``: each candidate in turn. The turn (the last user picked) is
  a row of ``crmkit_assignment_turns`` per candidate set, read and moved in the
  write's transaction under a row lock (PostgreSQL ``FOR UPDATE``; SQLite's
  write transactions hold the database lock), so two concurrent creates never
  pick the same "next".
- ``least_loaded``: the candidate owning the fewest live records of the
  entity (ties: the lowest user id), counted under the same lock, so two
  concurrent creates see each other's records.

Used two ways, one implementation: an entity's ``assignment:`` block (applied
here, by the ``record_before_create`` hook, to the records created without an
``owner_id``) and the automations' ``assign`` action (crmkit.pool_actions).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .hookspecs import hookimpl
from .metadata.spec import AppSpec, AssignmentSpec, EntitySpec
from .sqltypes import UTC, UTCDateTime

if TYPE_CHECKING:
    from .records import RecordEvent
    from .tables import Tables

TURN_TABLE = "crmkit_assignment_turns"
STRATEGIES = ("round_robin", "least_loaded")
KEY_SIZE = 200


@hookimpl
def crmkit_tables(metadata: sa.MetaData, spec: AppSpec) -> None:
    sa.Table(
        TURN_TABLE, metadata,
        sa.Column("key", sa.String(KEY_SIZE), primary_key=True),  # entity|role|team: one candidate set
        sa.Column("last_user_id", sa.Integer),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )


def _insert(conn: sa.Connection, table: sa.Table) -> Any:
    """The dialect's INSERT (which knows ON CONFLICT)."""
    from sqlalchemy.dialects import postgresql, sqlite

    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


@dataclass(frozen=True)
class Candidate:
    id: int
    team_id: int | None


@dataclass
class _Pick:
    """The candidates of one set and the lock on its turn, for one write."""

    key: str
    candidates: list[Candidate]
    last: int | None = None
    loads: dict[int, int] = field(default_factory=dict)


class Assigner:
    """Picks owners; every call runs in the caller's write transaction."""

    def __init__(self, spec: AppSpec, tables: Tables) -> None:
        self.spec = spec
        self.tables = tables
        self.turns = tables.metadata.tables[TURN_TABLE]

    # -------------------------------------------------------------- candidates

    def _team_ids(self, conn: sa.Connection, name: str) -> set[int]:
        """The team called ``name`` and every team below it (none: unknown name)."""
        teams = self.tables.teams
        rows = conn.execute(sa.select(teams.c.id, teams.c.name, teams.c.parent_id)).all()
        root = next((row.id for row in rows if row.name == name), None)
        if root is None:
            return set()
        found, frontier = {root}, {root}
        while frontier:
            frontier = {row.id for row in rows if row.parent_id in frontier} - found
            found |= frontier
        return found

    def candidates(self, conn: sa.Connection, rule: AssignmentSpec, team: str | None = None) -> list[Candidate]:
        """The active users the rule picks from, by id (``team``: a routed team
        narrowing the rule's own)."""
        users = self.tables.users
        query = sa.select(users.c.id, users.c.team_id, users.c.roles).where(users.c.active.is_(True))
        for name in (rule.team, team):
            if name is not None:
                query = query.where(users.c.team_id.in_(sorted(self._team_ids(conn, name)) or [-1]))
        rows = conn.execute(query.order_by(users.c.id)).all()
        return [Candidate(row.id, row.team_id) for row in rows
                if rule.role is None or rule.role in (row.roles or ())]

    def routed_team(self, entity: EntitySpec, rule: AssignmentSpec, record: Mapping[str, Any]) -> str | None:
        """The team the record's route field picks (None: no route or no match).
        A region code matches the longest key it starts with; other values exactly."""
        if rule.route_field is None or not rule.routes:
            return None
        value = record.get(rule.route_field)
        if value is None:
            return None
        text = str(value)
        f = entity.fields.get(rule.route_field)
        if f is not None and f.type == "region":
            prefixes = [key for key in rule.routes if text.startswith(key)]
            return rule.routes[max(prefixes, key=len)] if prefixes else None
        return rule.routes.get(text)

    # -------------------------------------------------------------- picking

    def _lock(self, conn: sa.Connection, key: str) -> int | None:
        """The turn of a candidate set, locked until the transaction ends."""
        turns = self.turns
        conn.execute(_insert(conn, turns).values(key=key, last_user_id=None, updated_at=dt.datetime.now(UTC))
                     .on_conflict_do_nothing())
        query = sa.select(turns.c.last_user_id).where(turns.c.key == key)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        last: int | None = conn.execute(query).scalar()
        return last

    def _loads(self, conn: sa.Connection, entity: EntitySpec, ids: Sequence[int]) -> dict[int, int]:
        table = self.tables.entities[entity.name]
        counts = dict.fromkeys(ids, 0)
        for start in range(0, len(ids), 900):
            chunk = list(ids[start:start + 900])
            rows = conn.execute(sa.select(table.c.owner_id, sa.func.count()).where(
                table.c.owner_id.in_(chunk), table.c.deleted_at.is_(None)).group_by(table.c.owner_id))
            counts.update({owner: count for owner, count in rows})
        return counts

    def pick(self, conn: sa.Connection, entity: EntitySpec, rule: AssignmentSpec, records: Sequence[Mapping[str, Any]],
             *, keep: int | None = None) -> list[Candidate | None]:
        """An owner for each record (by field name; None: no candidate, or
        ``keep``, the creator, is one and keeps it). Moves the turns."""
        picks: dict[str, _Pick] = {}
        out: list[Candidate | None] = []
        for record in records:
            team = self.routed_team(entity, rule, record)
            key = "|".join((entity.name, rule.role or "", rule.team or "", team or ""))[:KEY_SIZE]
            state = picks.get(key)
            if state is None:
                found = self.candidates(conn, rule, team)
                if not found and team is not None:  # the route names a team with none of them: everyone
                    found = self.candidates(conn, rule)
                state = picks[key] = _Pick(key, found)
                if found and not (keep is not None and any(c.id == keep for c in found)):
                    state.last = self._lock(conn, key)
                    if rule.strategy == "least_loaded":
                        state.loads = self._loads(conn, entity, [c.id for c in found])
            if not state.candidates or (keep is not None and any(c.id == keep for c in state.candidates)):
                out.append(None)
                continue
            chosen = self._next(rule, state)
            state.last = chosen.id
            state.loads[chosen.id] = state.loads.get(chosen.id, 0) + 1
            out.append(chosen)
        for state in picks.values():
            if state.candidates and state.last is not None:
                conn.execute(self.turns.update().where(self.turns.c.key == state.key)
                             .values(last_user_id=state.last, updated_at=dt.datetime.now(UTC)))
        return out

    def _next(self, rule: AssignmentSpec, state: _Pick) -> Candidate:
        candidates = state.candidates
        if rule.strategy == "least_loaded":
            return min(candidates, key=lambda c: (state.loads.get(c.id, 0), c.id))
        after = [c for c in candidates if state.last is None or c.id > state.last]
        return after[0] if after else candidates[0]


def rule_from(args: Any) -> tuple[AssignmentSpec | None, list[str]]:
    """An AssignmentSpec from an automation's ``assign`` arguments, or the
    problems with them."""
    if not isinstance(args, Mapping):
        return None, ["assign takes {strategy: round_robin|least_loaded, role: ROLE} or {..., team: TEAM}"]
    problems = []
    unknown = sorted(set(args) - {"strategy", "role", "team"})
    if unknown:
        problems.append(f"assign has no key '{unknown[0]}' (keys: strategy, role, team)")
    strategy = args.get("strategy", "round_robin")
    if strategy not in STRATEGIES:
        problems.append(f"assign strategy must be round_robin or least_loaded, not {strategy!r}")
    role, team = args.get("role"), args.get("team")
    if role is None and team is None:
        problems.append("assign needs a role or a team to pick its candidates from")
    for key, value in (("role", role), ("team", team)):
        if value is not None and not isinstance(value, str):
            problems.append(f"assign {key} must be a name")
    if problems:
        return None, problems
    return AssignmentSpec(strategy, role, team, keep_own=False), []


# ------------------------------------------------------------------ record hook

@hookimpl
def record_before_create(event: RecordEvent) -> None:
    """An entity's ``assignment`` block: records created without an owner_id
    go to the picked candidates (the creator keeps a record when they are a
    candidate and ``keep_own`` holds)."""
    rule = event.entity.assignment
    if rule is None or rule.on != "create":
        return
    wanted = [index for index, owner in enumerate(event.owners) if owner is None and index not in event.pooled]
    if not wanted:
        return
    keep = event.actor.id if rule.keep_own and event.actor.id is not None else None
    picked = event.service.assigner.pick(event.conn, event.entity, rule, [event.rows[i] for i in wanted], keep=keep)
    for index, candidate in zip(wanted, picked):
        if candidate is not None:
            event.assigned[index] = (candidate.id, candidate.team_id)
