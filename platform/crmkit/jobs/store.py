"""The job table (declared by the internal plugin crmkit.jobs.plugin): every job is a row of
``crmkit_job`` in the app's own database, written in the caller's
transaction (an outbox), whichever backend runs it.

A row's life: ``pending`` (due at ``due_at``) → ``queued`` (handed to Redis;
only with CRMKIT_REDIS_URL) → ``running`` (claimed by a worker; its lease
runs out at ``due_at``) → ``done``, or back to ``pending`` after a failure
(with back-off), or ``dead`` (the dead-letter list) after the last attempt.
A running or queued row whose ``due_at`` has passed was lost with its worker
(or Redis) and is made pending again: that is the lease that makes a SIGKILL
lose nothing. ``locked_by`` names the claim, so a worker that comes back after
its lease ran out cannot overwrite the outcome of the one that took over.

Only this module writes these tables.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ..sqltypes import UTC, UTCDateTime, json_type
from .tasks import NAME_SIZE

JOB_TABLE = "crmkit_job"
EFFECT_TABLE = "crmkit_job_effect"
SCHEDULE_TABLE = "crmkit_schedule_state"
KEY_SIZE, TOKEN_SIZE, ERROR_SIZE = 200, 64, 4000
PENDING, QUEUED, RUNNING, DONE, DEAD = "pending", "queued", "running", "done", "dead"
STATUSES = (PENDING, QUEUED, RUNNING, DONE, DEAD)


def define_tables(metadata: sa.MetaData) -> None:
    sa.Table(
        JOB_TABLE, metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("task", sa.String(NAME_SIZE), nullable=False),
        sa.Column("payload", json_type(), nullable=False),
        sa.Column("key", sa.String(KEY_SIZE), unique=True),  # idempotency: one job per key
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        # pending: when it may run; queued/running: when its lease runs out.
        sa.Column("due_at", UTCDateTime(), nullable=False),
        sa.Column("locked_by", sa.String(TOKEN_SIZE)),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime()),
        sa.Index("ix_crmkit_job_status_due", "status", "due_at", "id"),
        # The retention deletes done jobs by age.
        sa.Index("ix_crmkit_job_status_finished", "status", "finished_at"),
        sqlite_autoincrement=True,
    )
    sa.Table(
        EFFECT_TABLE, metadata,
        sa.Column("key", sa.String(KEY_SIZE), primary_key=True),
        sa.Column("claimed_at", UTCDateTime(), nullable=False),
    )
    sa.Table(
        SCHEDULE_TABLE, metadata,
        sa.Column("name", sa.String(NAME_SIZE), primary_key=True),
        sa.Column("last_tick", UTCDateTime(), nullable=False),
    )


def now() -> dt.datetime:
    return dt.datetime.now(UTC)


def check_key(key: str | None) -> None:
    if key is not None and (not isinstance(key, str) or not key or len(key) > KEY_SIZE):
        raise ValueError(f"an idempotency key is a string of 1 to {KEY_SIZE} characters, not {key!r}")


def json_payload(task: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """The payload as it will be stored: a JSON object (a clear error now
    rather than a job that can never be read back)."""
    loaded = json.loads(json_text(task, payload))
    assert isinstance(loaded, dict)
    return loaded


def json_text(task: str, payload: Mapping[str, Any]) -> str:
    """The payload as JSON text, checked as json_payload checks it."""
    if not isinstance(payload, Mapping):
        raise TypeError(f"job {task!r}: the payload must be a mapping, not {type(payload).__name__}")
    try:
        return json.dumps(dict(payload), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"job {task!r}: the payload must be JSON (strings, numbers, booleans, null, lists, "
                        f"objects): {exc}") from None


def insert_once(conn: sa.Connection, table: sa.Table, values: Mapping[str, Any], key_column: str) -> bool:
    """Insert a row unless one with the same key exists; whether it was inserted.

    ON CONFLICT DO NOTHING, not a caught IntegrityError: on PostgreSQL an error
    would abort the caller's whole transaction."""
    dialect = conn.dialect.name
    column = table.c[key_column]
    if dialect in ("postgresql", "sqlite"):
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        # RETURNING tells whether a row went in (psycopg's rowcount does not here).
        stmt = insert(table).values(**values).on_conflict_do_nothing(index_elements=[key_column]).returning(column)
        return conn.execute(stmt).first() is not None
    # another database: check first (good enough where nothing races)
    if conn.execute(sa.select(column).where(column == values[key_column])).first() is not None:
        return False
    conn.execute(table.insert().values(**values))
    return True


def json_batch(task: str, items: Sequence[tuple[Mapping[str, Any], str | None]]) -> str:
    """(payload, key) pairs as one JSON text ``[[payload, key], ...]``, each
    payload checked as json_payload checks one (the encoder runs once for
    the batch; on an error, the faulty payload is found and named as
    json_payload names it)."""
    pairs: list[list[Any]] = []
    for payload, key in items:
        if not isinstance(payload, dict):
            if not isinstance(payload, Mapping):
                raise TypeError(f"job {task!r}: the payload must be a mapping, not {type(payload).__name__}")
            payload = dict(payload)
        check_key(key)
        pairs.append([payload, key])
    try:
        return json.dumps(pairs, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError):
        for payload, _key in pairs:
            json_payload(task, payload)
        raise


def insert_batch_once(conn: sa.Connection, table: sa.Table, common: Mapping[str, Any], batch: str,
                      key_column: str, json_column: str) -> int:
    """Insert a row per element of ``batch`` (json_batch's text: [[the JSON
    column's value, the key], ...]), with the ``common`` values, unless a
    row with its key exists (rows without a key always go in); how many
    went in. PostgreSQL and SQLite: one INSERT ... SELECT from the JSON
    array ... ON CONFLICT DO NOTHING, whatever the batch's size (its
    parameters: one per common value and the batch)."""
    dialect = conn.dialect.name
    if dialect not in ("postgresql", "sqlite"):
        return sum(insert_once(conn, table, {**common, json_column: payload, key_column: key}, key_column)
                   for payload, key in json.loads(batch))
    items: Any = sa.bindparam("p_batch", batch, type_=sa.Text)
    value: sa.ColumnElement[Any]
    key: sa.ColumnElement[Any]
    if dialect == "postgresql":
        element = sa.func.jsonb_array_elements(sa.cast(items, postgresql.JSONB)).table_valued("value").alias("e")
        value, key = element.c.value.op("->")(0), element.c.value.op("->>")(1)
        insert: Any = postgresql.insert
    else:
        element = sa.func.json_each(items).table_valued("value").alias("e")
        value, key = sa.func.json_extract(element.c.value, "$[0]"), sa.func.json_extract(element.c.value, "$[1]")
        insert = sqlite.insert
    names = list(common)
    rows = sa.select(*(sa.bindparam(f"p_{name}", common[name], type_=table.c[name].type) for name in names),
                     value, key).select_from(element).where(sa.true())  # WHERE: SQLite's upsert after a SELECT
    stmt = (insert(table).from_select([*names, json_column, key_column], rows)
            .on_conflict_do_nothing(index_elements=[key_column]).returning(table.c[key_column]))
    return len(conn.execute(stmt).all())


def due_rows(table: sa.Table, statuses: Sequence[str], moment: Any, limit: int) -> sa.Select[Any]:
    """The ids of up to ``limit`` rows in these statuses whose due_at has come,
    oldest first, locked (PostgreSQL: skipping rows another worker holds)."""
    return (sa.select(table.c.id)
            .where(table.c.status.in_(statuses), table.c.due_at <= moment)
            .order_by(table.c.due_at, table.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True))


def error_text(text: str) -> str:
    return text if len(text) <= ERROR_SIZE else "…" + text[-(ERROR_SIZE - 1):]
