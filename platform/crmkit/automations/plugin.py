"""The automations as an internal plugin: the run log's table, the built-in
actions, the record and tag hooks that enqueue runs, and (from
crmkit.automations.tasks) the schedules of scheduled automations and time
triggers, whose jobs that module registers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..hookspecs import hookimpl
from ..metadata.spec import AppSpec
from . import runs, sweeps
from .builtin import BUILTIN_ACTIONS
from .tasks import crmkit_schedules  # noqa: F401 - the jobs of the automations, and their schedules

if TYPE_CHECKING:
    from ..approvals import ApprovalEvent
    from ..records import RecordEvent
    from ..tagging import TagEvent


@hookimpl
def crmkit_tables(metadata: sa.MetaData, spec: AppSpec) -> None:
    runs.declare(metadata)
    sweeps.declare(metadata)


@hookimpl
def crmkit_automation_actions() -> list[Any]:
    """The built-in actions, contributed like a plugin's."""
    return list(BUILTIN_ACTIONS)


def _written(event: RecordEvent) -> None:
    engine = event.service.automations
    if engine is not None:
        engine.written(event)


@hookimpl
def record_after_create(event: RecordEvent) -> None:
    _written(event)


@hookimpl
def record_after_update(event: RecordEvent) -> None:
    _written(event)


@hookimpl
def record_after_delete(event: RecordEvent) -> None:
    _written(event)


@hookimpl
def record_tags_changed(event: TagEvent) -> None:
    engine = event.service.automations
    if engine is not None:
        engine.tags_changed(event)


@hookimpl
def record_approval_changed(event: ApprovalEvent) -> None:
    engine = event.service.automations
    if engine is not None:
        engine.approval_changed(event)
