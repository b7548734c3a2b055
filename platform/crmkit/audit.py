"""The audit trail (internal plugin): who changed what, when, from which value to which.

One row per write in ``crmkit_audit``, written in the write's own transaction,
with ``changes`` mapping each field to ``[old, new]`` as JSON values.
"""

from __future__ import annotations

import datetime as dt

from .hookspecs import hookimpl
from .sqltypes import UTC


def _rows(event, action: str, changes_list: list) -> list[dict]:
    now = dt.datetime.now(UTC)
    return [{"entity": event.entity.name, "record_id": record["id"], "action": action,
             "actor_id": event.actor.id, "actor": event.actor.name, "at": now, "changes": changes}
            for record, changes in zip(event.records, changes_list)]


def _write(event, rows: list[dict]) -> None:
    if rows:
        event.conn.execute(event.service.tables.audit.insert(), rows)


@hookimpl
def record_after_create(event) -> None:
    changes = list(map(event.service.schemas[event.entity.name].creation_changes, event.records))
    _write(event, _rows(event, "create", changes))


@hookimpl
def record_after_update(event) -> None:
    _write(event, _rows(event, "update", [{k: list(v) for k, v in c.items()} for c in event.changes]))


@hookimpl
def record_after_delete(event) -> None:
    _write(event, _rows(event, event.action, [None] * len(event.records)))
