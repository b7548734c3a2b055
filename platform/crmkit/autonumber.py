"""Auto-numbers (internal plugin): fills autonumber fields on create.

A pattern like ``HT{YYYYMMDD}{seq:6}`` gives HT20261123000001, HT20261123000002,
...; the sequence restarts whenever the pattern's date part changes (daily for
YYYYMMDD, monthly for YYYYMM, yearly for YYYY, never without a date). Numbers
are reserved with one atomic upsert per batch, safe under concurrent writers.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from .fieldtypes import autonumber_period, render_autonumber
from .hookspecs import hookimpl


def reserve(conn: sa.Connection, table: sa.Table, key: str, period: str, count: int) -> int:
    """Reserve ``count`` numbers; returns the first."""
    from sqlalchemy.dialects import postgresql, sqlite

    # Both dialects' INSERT ... ON CONFLICT DO UPDATE, alike but of different types.
    insert: Any = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = insert(table).values(key=key, period=period, value=count).on_conflict_do_update(
        index_elements=[table.c.key, table.c.period], set_={"value": table.c.value + count}
    ).returning(table.c.value)
    last = conn.execute(statement).scalar_one()
    return last - count + 1


@hookimpl
def record_before_create(event) -> None:
    fields = [f for f in event.entity.user_fields if f.type == "autonumber"]
    if not fields:
        return
    now = dt.datetime.now(event.service.tz)
    table = event.service.tables.sequences
    for f in fields:
        pending = [row for row in event.rows if not row.get(f.name)]
        if not pending:
            continue
        period = autonumber_period(f.pattern, now)
        first = reserve(event.conn, table, f"{event.entity.name}.{f.name}", period, len(pending))
        for offset, row in enumerate(pending):
            row[f.name] = render_autonumber(f.pattern, now, first + offset)
