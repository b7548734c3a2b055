"""The engine: SQLite by default (WAL, foreign keys on), PostgreSQL by URL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url


def create_engine(url: str, **kwargs) -> sa.Engine:
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    # JSON columns as compact UTF-8 text: Chinese stays readable in the database
    # and takes a third of the room \uXXXX escapes would.
    options: dict = {"future": True, "json_serializer": _json_text}
    if parsed.get_backend_name() == "sqlite":
        options["connect_args"] = {"timeout": 30, "check_same_thread": False}
    else:
        options.update(pool_pre_ping=True, pool_size=5, max_overflow=10)
    options.update(kwargs)
    engine = sa.create_engine(parsed, **options)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_immediate)
    return engine


_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _json_text(value) -> str:
    return _JSON_ENCODER.encode(value)  # one encoder for every value (json.dumps makes one per call)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # Take over transaction control from the sqlite3 module so BEGIN IMMEDIATE works.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    memory = dbapi_connection.execute("PRAGMA database_list").fetchone()[2] == ""
    if not memory:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    # A 64 MiB page cache (the default is 2 MiB): index pages of big tables stay
    # in memory, which bulk writes to many indexes need (memory is taken as used).
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin_immediate(conn) -> None:
    # Writers take the write lock at BEGIN, so two writers queue instead of
    # failing with "database is locked" when they upgrade from a read.
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("crmkit_write") else "BEGIN")


@contextmanager
def write_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection in a transaction meant to write (on SQLite: BEGIN IMMEDIATE)."""
    with engine.connect() as conn:
        conn.execution_options(crmkit_write=True)
        with conn.begin():
            yield conn


def analyze(engine: sa.Engine, tables: list[str]) -> None:
    """Refresh the query planner's statistics of these tables, after a migration
    or a bulk load. Without them SQLite cannot tell a selective index (a rep's
    own customers) from an unselective one, and may sort a whole department's
    records for one page."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA analysis_limit=1000")  # sample: a second, not minutes, on big tables
            conn.exec_driver_sql("ANALYZE")
        elif tables:
            preparer = conn.dialect.identifier_preparer
            conn.exec_driver_sql("ANALYZE " + ", ".join(preparer.quote(name) for name in tables))
        conn.commit()
