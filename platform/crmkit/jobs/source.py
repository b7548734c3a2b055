"""The job table as a list source: the door through which jobs are listed,
by the jobs API (``GET /api/v1/jobs``) and by ``crmkit jobs list`` alike
(crmkit.query's list grammar: filters, sort, cursor, count)."""

from __future__ import annotations

from types import MappingProxyType

import sqlalchemy as sa

from ..metadata.builtin_entities import platform_field, platform_id, platform_spec
from ..metadata.spec import EntitySpec, Option
from ..query import ALL, NOT_NULL, Source
from . import store


def job_spec() -> EntitySpec:
    """The job table as the list grammar reads it."""
    statuses = tuple(Option(name, MappingProxyType({"en": name})) for name in store.STATUSES)
    return platform_spec("job", "Jobs", "后台任务", (
        platform_id("id", "ID", "编号"),
        platform_field("task", "string", "Task", "任务"),
        platform_field("status", "enum", "Status", "状态", options=statuses),
        platform_field("key", "string", "Idempotency key", "幂等键"),
        platform_field("payload", "json", "Payload", "参数"),
        platform_field("attempts", "integer", "Attempts", "尝试次数"),
        platform_field("max_attempts", "integer", "Max attempts", "最多尝试"),
        platform_field("due_at", "datetime", "Due at", "到期时间"),
        platform_field("last_error", "text", "Last error", "最近错误"),
        platform_field("created_at", "datetime", "Created at", "创建时间"),
        platform_field("updated_at", "datetime", "Updated at", "更新时间"),
        platform_field("finished_at", "datetime", "Finished at", "完成时间"),
    ), sort=("-id",), search=("task", "key"))


def job_source(table: sa.Table) -> Source:
    """The job table (crmkit_job) as a list source: every row, for admins (no data scope)."""
    spec = job_spec()
    return Source("crmkit_job", spec, table, None, ALL, frozenset(spec.fields), NOT_NULL | {"due_at"})
