"""The audit trail (internal plugin): who changed what, when, from which value to which.

This module is the only writer of ``crmkit_audit``. It declares the table
through the ``crmkit_tables`` hook, as any plugin would, writes one row per
record write through the record hooks (in the write's own transaction, with
``changes`` mapping each field to ``[old, new]`` as JSON values), and offers
:class:`AuditTrail` for what is not a record write: purges, logins, changes of
users, teams and tokens (entity ``crmkit_user``), exports and refusals.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .database import write_transaction
from .hookspecs import hookimpl
from .metadata.spec import AppSpec
from .permissions import Actor
from .sqltypes import UTC, UTCDateTime, json_type

if TYPE_CHECKING:
    from .records import RecordEvent

AUDIT_TABLE = "crmkit_audit"
#: The entity name of people events: logins, users, teams, tokens.
PEOPLE = "crmkit_user"
#: Column sizes: values are cut to fit rather than refused (the trail must not fail a write).
ENTITY_SIZE, ACTION_SIZE, ACTOR_SIZE = 64, 16, 100
#: How much of an export's query string is kept.
QUERY_ITEMS, QUERY_VALUE_SIZE = 50, 200


@hookimpl
def crmkit_tables(metadata: sa.MetaData, spec: AppSpec) -> None:
    sa.Table(
        AUDIT_TABLE, metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("entity", sa.String(ENTITY_SIZE), nullable=False),
        sa.Column("record_id", sa.Integer, nullable=False),
        sa.Column("action", sa.String(ACTION_SIZE), nullable=False),
        sa.Column("actor_id", sa.Integer),
        sa.Column("actor", sa.String(ACTOR_SIZE), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("changes", json_type()),
        sa.Index("ix_crmkit_audit_record", "entity", "record_id", "id"),
        sqlite_autoincrement=True,
    )


def _now() -> dt.datetime:
    return dt.datetime.now(UTC)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


class AuditTrail:
    """Writes the audit trail; every write of ``crmkit_audit`` goes through here.

    Methods that take ``conn`` write in that connection's transaction (so the
    entry commits or rolls back with what it records); ``export`` and
    ``denial`` record what happened outside any write, in a transaction of
    their own."""

    def __init__(self, engine: sa.Engine, table: sa.Table) -> None:
        self.engine = engine
        self.table = table

    def _insert(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
        if rows:
            conn.execute(self.table.insert(), rows)

    def _entry(self, entity: str, record_id: int, action: str, actor_id: int | None, actor: str,
               changes: Any, at: dt.datetime | None = None) -> dict[str, Any]:
        return {"entity": entity[:ENTITY_SIZE], "record_id": record_id, "action": action[:ACTION_SIZE],
                "actor_id": actor_id, "actor": actor[:ACTOR_SIZE], "at": at or _now(), "changes": changes}

    # ------------------------------------------------------------ records

    def records(self, conn: sa.Connection, entity: str, action: str, actor: Actor, ids: Sequence[int],
                changes: Sequence[Any]) -> None:
        """One entry per record of a write (create, update, delete, restore)."""
        at = _now()
        self._insert(conn, [self._entry(entity, record_id, action, actor.id, actor.name, change, at)
                            for record_id, change in zip(ids, changes)])

    def tags(self, conn: sa.Connection, entity: str, tag: str, actor: Actor, added: Sequence[int],
             removed: Sequence[int], by: str) -> None:
        """A tag put on (``tag_added``) or taken off (``tag_removed``) records,
        ``by`` its rule or a user; ``actor`` is who wrote what made it change."""
        at = _now()
        self._insert(conn, [self._entry(entity, record_id, action, actor.id, actor.name, {"tag": tag, "by": by}, at)
                            for action, ids in (("tag_added", added), ("tag_removed", removed))
                            for record_id in ids])

    def purged(self, conn: sa.Connection, entity: str, ids: Iterable[int]) -> None:
        """Records deleted for good from the recycle bin (by the system)."""
        at = _now()
        self._insert(conn, [self._entry(entity, record_id, "purge", None, "system", None, at) for record_id in ids])

    # ------------------------------------------------------------ people

    def login(self, conn: sa.Connection, user_id: int, username: str, address: str | None) -> None:
        self._insert(conn, [self._entry(PEOPLE, user_id, "login", user_id, username, {"address": address})])

    def login_failed(self, conn: sa.Connection, user: Mapping[Any, Any] | None, tried: str,
                     address: str | None) -> None:
        """A failed login: under the user's id when the name is theirs, else under 0 as anonymous."""
        user_id = user["id"] if user is not None else None
        self._insert(conn, [self._entry(PEOPLE, user_id or 0, "login_failed", user_id,
                                        user["username"] if user is not None else "anonymous",
                                        {"username": tried[:100], "address": address})])

    def people(self, conn: sa.Connection, action: str, record_id: int, actor: Actor,
               details: Mapping[str, Any]) -> None:
        """A change of a user, a team or a token (``user_created``, ``roles_changed``,
        ``token_revoked``, ``team_updated`` ...); ``record_id`` is the user's (0 for teams)."""
        self._insert(conn, [self._entry(PEOPLE, record_id, action, actor.id, actor.name, _jsonable(details))])

    # ------------------------------------------------------------ outside a write

    def export(self, actor: Actor, entity: str, rows: int, query: Sequence[tuple[str, str]]) -> None:
        """An export of ``rows`` records with the query string that chose them."""
        changes = {"rows": rows, "query": [[k, v[:QUERY_VALUE_SIZE]] for k, v in query[:QUERY_ITEMS]]}
        with write_transaction(self.engine) as tx:
            self._insert(tx, [self._entry(entity, 0, "export", actor.id, actor.name, changes)])

    def denial(self, denial: Mapping[str, Any]) -> None:
        """A refused action (``errors.Forbidden.denial``), once its request's transaction is over."""
        changes = _jsonable({"action": denial.get("action"),
                             **({"reason": denial["reason"]} if "reason" in denial else {})})
        with write_transaction(self.engine) as tx:
            self._insert(tx, [self._entry(str(denial.get("entity", "?")), denial.get("record_id") or 0, "denied",
                                          denial.get("actor_id"), str(denial.get("actor", "?")), changes)])


# ------------------------------------------------------------------ record hooks

def _record_ids(event: RecordEvent) -> list[int]:
    return [record["id"] for record in event.records]


@hookimpl
def record_after_create(event: RecordEvent) -> None:
    changes = list(map(event.service.schemas[event.entity.name].creation_changes, event.records))
    event.service.audit.records(event.conn, event.entity.name, "create", event.actor, _record_ids(event), changes)


@hookimpl
def record_after_update(event: RecordEvent) -> None:
    changes = [{k: list(v) for k, v in c.items()} for c in event.changes]
    event.service.audit.records(event.conn, event.entity.name, "update", event.actor, _record_ids(event), changes)


@hookimpl
def record_after_delete(event: RecordEvent) -> None:
    event.service.audit.records(event.conn, event.entity.name, event.action, event.actor, _record_ids(event),
                                [None] * len(event.records))
