"""Periodic jobs: the schedules plugins contribute (``crmkit_schedules``),
fired each tick once however many schedulers run.

The last tick fired of each schedule is a row of ``crmkit_schedule_state``;
a scheduler that finds a schedule due takes that row's lock (SELECT ... FOR
UPDATE; on SQLite the write lock), checks again, enqueues the job and moves
the row on in the same transaction, so a second scheduler waits and then
finds nothing to do. The job's idempotency key (``schedule:NAME:TICK``) says
the same once more. Ticks missed while no scheduler ran fire once, not once
each; a schedule seen for the first time starts from now.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from croniter import croniter

from ..database import write_transaction
from ..fieldtypes import app_timezone
from . import store
from .tasks import NAME_SIZE, TASKS, Schedule

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger("crmkit.jobs")


class ScheduleError(ValueError):
    """A schedule that cannot run: a bad cron, an unknown task, a name used twice."""


def collect(runtime: Runtime) -> list[Schedule]:
    """Every plugin's schedules, checked (ScheduleError names the plugin)."""
    from ..plugins import startup_results

    found: dict[str, Schedule] = {}
    for plugin, result in startup_results(runtime.pm, "crmkit_schedules", spec=runtime.spec):
        for schedule in result:
            where = f"schedule {getattr(schedule, 'name', schedule)!r} of plugin '{plugin}'"
            if not isinstance(schedule, Schedule):
                raise ScheduleError(f"{where}: crmkit_schedules must return Schedule objects")
            if not schedule.name or len(schedule.name) > NAME_SIZE:
                raise ScheduleError(f"{where}: a name is 1 to {NAME_SIZE} characters")
            if schedule.name in found:
                raise ScheduleError(f"{where}: the name is used by another schedule")
            if not isinstance(schedule.cron, str) or not croniter.is_valid(schedule.cron) \
                    or len(schedule.cron.split()) not in (5, 6):
                raise ScheduleError(f"{where}: {schedule.cron!r} is not a cron expression of five fields "
                                    "(minute hour day-of-month month day-of-week, e.g. '0 9 * * 1-5'), "
                                    "or six with seconds last")
            if schedule.task not in TASKS:
                raise ScheduleError(f"{where}: no task {schedule.task!r} is registered")
            store.json_payload(schedule.task, schedule.payload)
            found[schedule.name] = schedule
    return list(found.values())


class Scheduler:
    """Fires the schedules of a runtime; call :meth:`tick` often (every second or so)."""

    def __init__(self, runtime: Runtime, schedules: list[Schedule] | None = None) -> None:
        self.runtime = runtime
        self.schedules = collect(runtime) if schedules is None else schedules
        self.table: sa.Table = runtime.tables.metadata.tables[store.SCHEDULE_TABLE]
        self.tz = app_timezone(runtime.spec.timezone)

    def latest_tick(self, schedule: Schedule, moment: dt.datetime) -> dt.datetime:
        """The last tick of ``schedule`` at or before ``moment``."""
        ticks = croniter(schedule.cron, moment.astimezone(self.tz) + dt.timedelta(seconds=1))
        tick: dt.datetime = ticks.get_prev(dt.datetime)
        while tick > moment:
            tick = ticks.get_prev(dt.datetime)
        return tick.astimezone(store.UTC)

    def next_tick(self, schedule: Schedule, after: dt.datetime) -> dt.datetime:
        tick: dt.datetime = croniter(schedule.cron, after.astimezone(self.tz)).get_next(dt.datetime)
        return tick.astimezone(store.UTC)

    def tick(self, moment: dt.datetime | None = None) -> list[str]:
        """Fire what is due at ``moment`` (default: now); the names of the
        schedules this call fired."""
        if not self.schedules:
            return []
        moment = moment or store.now()
        t = self.table
        with self.runtime.engine.connect() as conn:
            last = dict(conn.execute(sa.select(t.c.name, t.c.last_tick)).all())
        fired = []
        for schedule in self.schedules:
            seen = last.get(schedule.name)
            if seen is not None and self.next_tick(schedule, seen) > moment:
                continue  # the common case, without a write
            if self._fire(schedule, moment):
                fired.append(schedule.name)
        return fired

    def _fire(self, schedule: Schedule, moment: dt.datetime) -> bool:
        t = self.table
        tick = self.latest_tick(schedule, moment)
        with write_transaction(self.runtime.engine) as conn:
            if store.insert_once(conn, t, {"name": schedule.name, "last_tick": tick}, "name"):
                return False  # first seen now: it starts from this tick, fired by nobody
            seen = conn.execute(sa.select(t.c.last_tick).where(t.c.name == schedule.name).with_for_update()).scalar()
            if seen is not None and self.next_tick(schedule, seen) > moment:
                return False  # another scheduler fired it first
            added = self.runtime.jobs.enqueue(schedule.task, schedule.payload, conn=conn,
                                              key=f"schedule:{schedule.name}:{tick.isoformat()}")
            conn.execute(t.update().where(t.c.name == schedule.name).values(last_tick=tick))
        if added:
            log.info("schedule %s fired for %s", schedule.name, tick.isoformat())
        return added


def describe(schedule: Schedule) -> dict[str, Any]:
    return {"name": schedule.name, "cron": schedule.cron, "task": schedule.task, "payload": dict(schedule.payload)}

