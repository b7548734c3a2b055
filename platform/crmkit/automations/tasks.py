"""The automations' jobs (crmkit.jobs tasks) and their schedules."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from ..hookspecs import hookimpl
from ..jobs import Schedule, task
from ..metadata.spec import AppSpec
from . import sweeps
from .engine import PRUNE_CRON, PRUNE_TASK, RUN_TASK

if TYPE_CHECKING:
    from ..runtime import Runtime


@task(RUN_TASK)
def run_automation(runtime: Runtime, payload: dict[str, Any]) -> None:
    """One automation on one record."""
    runtime.automations.run(payload)


@task(sweeps.SCHEDULE_TASK)
def schedule_tick(runtime: Runtime, payload: dict[str, Any]) -> None:
    """A tick of a scheduled automation: its runs, selected set-based."""
    sweeps.schedule(runtime.automations, str(payload.get("automation")))


@task(sweeps.SWEEP_TASK)
def time_sweep(runtime: Runtime, payload: dict[str, Any]) -> None:
    """The time triggers whose moment has come."""
    sweeps.sweep(runtime.automations)


@task(PRUNE_TASK)
def prune(runtime: Runtime, payload: dict[str, Any]) -> None:
    """Retention: the run log and the done jobs older than CRMKIT_AUTOMATION_RUNS_KEEP_DAYS (0: none)."""
    days = runtime.settings.automation_runs_keep_days
    if days > 0:
        runtime.automations.prune(dt.timedelta(days=days))


@hookimpl
def crmkit_schedules(spec: AppSpec) -> list[Schedule]:
    """A schedule per scheduled automation, one sweep of the time triggers
    (when there are any), and the daily retention of the run log and the done jobs."""
    found = [Schedule(f"automation:{a.name}", a.trigger.cron, sweeps.SCHEDULE_TASK, {"automation": a.name})
             for a in spec.automations.values() if a.enabled and a.trigger.kind == "schedule" and a.trigger.cron]
    if any(a.enabled and a.trigger.kind == "time" for a in spec.automations.values()):
        found.append(Schedule("automations:time", sweeps.SWEEP_CRON, sweeps.SWEEP_TASK, {}))
    found.append(Schedule("automations:prune", PRUNE_CRON, PRUNE_TASK, {}))
    return found
