"""The run log: one row per automation run (per automation and per record:
when, the trigger, the condition's value, each action's result, the error).

The table is declared through the ``crmkit_tables`` hook and written only
here; it is read through the query builder as a list source (the API's
``/api/v1/automations/runs`` and the record's timeline), so the list grammar
(filters, sort, cursor) applies as to any list.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import sqlalchemy as sa

from ..metadata.builtin_entities import platform_field, platform_id, platform_spec
from ..metadata.spec import EntitySpec, Option
from ..query import ALL, NOT_NULL, Source
from ..sqltypes import UTC, UTCDateTime, json_type

RUNS_TABLE = "crmkit_automation_run"
#: The key of the runs' list source (and of their stream on a timeline).
RUNS = "automation_runs"
NAME_SIZE, TRIGGER_SIZE, ERROR_SIZE, RESULT_SIZE = 64, 200, 1000, 500
#: What became of a run.
OK, FAILED, SKIPPED, STOPPED = "ok", "failed", "skipped", "stopped"
STATUSES = (OK, FAILED, SKIPPED, STOPPED)


def declare(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        RUNS_TABLE, metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("automation", sa.String(NAME_SIZE), nullable=False),
        sa.Column("entity", sa.String(NAME_SIZE)),
        sa.Column("record_id", sa.Integer),
        sa.Column("trigger", sa.String(TRIGGER_SIZE), nullable=False),
        sa.Column("depth", sa.Integer, nullable=False, default=0),
        sa.Column("status", sa.String(16), nullable=False),
        #: The value of ``when`` (None: no condition, or not evaluated).
        sa.Column("condition", sa.Boolean),
        #: [{"action": name, "result": line} or {"action": name, "error": message} or {"action", "skipped"}]
        sa.Column("results", json_type()),
        sa.Column("error", sa.String(ERROR_SIZE)),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=False),
        sa.Index("ix_crmkit_automation_run_record", "entity", "record_id", "id"),
        sa.Index("ix_crmkit_automation_run_automation", "automation", "id"),
        # The daily retention deletes by age.
        sa.Index("ix_crmkit_automation_run_finished", "finished_at"),
        sqlite_autoincrement=True,
    )


def runs_spec() -> EntitySpec:
    """The run log as the list grammar reads it."""
    statuses = tuple(Option(s, MappingProxyType({"en": s})) for s in STATUSES)
    return platform_spec(RUNS, "Automation runs", "自动化运行记录", (
        platform_id("id", "ID", "编号"),
        platform_field("automation", "string", "Automation", "自动化"),
        platform_field("entity", "string", "Entity", "对象"),
        platform_id("record_id", "Record", "记录"),
        platform_field("trigger", "string", "Trigger", "触发"),
        platform_field("depth", "integer", "Depth", "深度"),
        platform_field("status", "enum", "Result", "结果", options=statuses),
        platform_field("condition", "boolean", "Condition", "条件"),
        platform_field("results", "json", "Actions", "动作"),
        platform_field("error", "string", "Error", "错误"),
        platform_field("started_at", "datetime", "Started at", "开始时间"),
        platform_field("finished_at", "datetime", "Finished at", "结束时间"),
    ), sort=("-id",))


def runs_source(table: sa.Table) -> Source:
    """The run log as a list: every row (no data scope: the API and the
    timeline decide who may read which runs)."""
    spec = runs_spec()
    return Source(RUNS, spec, table, None, ALL, frozenset(spec.fields), NOT_NULL | {"started_at", "finished_at"})


@dataclass
class Run:
    """A run being recorded."""

    automation: str
    entity: str | None
    record_id: int | None
    trigger: str
    depth: int
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(UTC))
    status: str = OK
    condition: bool | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    def row(self) -> dict[str, Any]:
        return {"automation": self.automation[:NAME_SIZE], "entity": self.entity, "record_id": self.record_id,
                "trigger": self.trigger[:TRIGGER_SIZE], "depth": self.depth, "status": self.status,
                "condition": self.condition, "results": [_cut(r) for r in self.results] or None,
                "error": self.error[:ERROR_SIZE] if self.error else None, "started_at": self.started_at,
                "finished_at": dt.datetime.now(UTC)}


def _cut(result: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v[:RESULT_SIZE] if isinstance(v, str) else v for k, v in result.items()}


class RunLog:
    """Writes the run log (its one writer)."""

    def __init__(self, table: sa.Table) -> None:
        self.table = table
        self.source = runs_source(table)

    def write(self, conn: sa.Connection, runs: Sequence[Run]) -> None:
        if runs:
            conn.execute(self.table.insert(), [run.row() for run in runs])

    def prune(self, conn: sa.Connection, before: dt.datetime) -> int:
        """Delete the runs that finished before ``before``; how many."""
        return int(conn.execute(self.table.delete().where(self.table.c.finished_at < before)).rowcount or 0)


def outline(results: object) -> list[dict[str, str]] | None:
    """A run's results as a reader who is not an admin sees them: each
    action's name and how it ended, without the lines and errors (they may
    quote values of fields hidden from the reader)."""
    if not isinstance(results, list):
        return None
    return [{"action": str(r.get("action", "")),
             "status": "failed" if r.get("error") else "skipped" if r.get("skipped") else "ok"}
            for r in results if isinstance(r, dict)]
