"""Schedules and time triggers: periodic sweeps that select the records to
act on set-based (one statement through the expression language's SQL) and
enqueue their runs in batches, each with an idempotency key, so that a tick
or a sweep done twice enqueues nothing twice.

- ``{schedule: CRON}`` with ``entity:`` runs on every live record for which
  ``when`` holds at the tick (key: automation, tick, record); without an
  entity, once per tick.
- ``{time: "3d before contract.end_date"}`` runs once per record per value of
  the date field, when the moment (the field's value moved by the offset) has
  come; the key holds the value, so a changed date arms it again. A moment
  further back than CATCH_UP is not caught up (a new automation does not fire
  for years of old records). Each sweep remembers when it ran
  (``crmkit_automation_sweep``): the next one reads only the records whose
  moment came since, or that were written since (a changed date), both
  ranges of indexed columns, so a sweep costs what is new, not the whole window.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..database import write_transaction
from ..expressions import Context, to_sql
from ..sqltypes import UTC, UTCDateTime
from .engine import BATCH, RUN_TASK
from .spec import AutomationSpec

if TYPE_CHECKING:
    from .engine import Automations

#: The job of one schedule's tick, and the job sweeping the time triggers.
SCHEDULE_TASK = "automation.schedule"
SWEEP_TASK = "automation.sweep"
#: How often the time triggers are swept (cron), and how late a moment may still fire.
SWEEP_CRON = "*/5 * * * *"
CATCH_UP = dt.timedelta(days=7)
SWEEP_TABLE = "crmkit_automation_sweep"
#: How far back a sweep looks again beyond the last one (writes that committed late).
SLACK = dt.timedelta(minutes=10)


def declare(metadata: sa.MetaData) -> sa.Table:
    """When each time trigger was last swept."""
    return sa.Table(SWEEP_TABLE, metadata,
                    sa.Column("automation", sa.String(64), primary_key=True),
                    sa.Column("swept_at", UTCDateTime(), nullable=False))


def tick_of(automation: AutomationSpec, timezone: str, now: dt.datetime | None = None) -> dt.datetime:
    """The tick a schedule's job stands for: the latest tick of its cron at or
    before now (in the app's timezone), so a job retried later in the same
    period acts for the same tick (and its keys are the same)."""
    from zoneinfo import ZoneInfo

    from croniter import croniter

    assert automation.trigger.cron is not None
    moment = (now or dt.datetime.now(UTC)).astimezone(ZoneInfo(timezone)) + dt.timedelta(seconds=1)
    tick: dt.datetime = croniter(automation.trigger.cron, moment).get_prev(dt.datetime)
    return tick.astimezone(UTC)


def _batches(items: Iterable[Any], size: int | None = None) -> Iterator[list[Any]]:
    """Lists of ``size`` (default BATCH) items, the last shorter."""
    found = iter(items)
    while batch := list(islice(found, size or BATCH)):
        yield batch


def schedule(engine: Automations, name: str, now: dt.datetime | None = None) -> int:
    """The job of a scheduled automation's tick: enqueue its runs; returns how many."""
    automation = engine.spec.automations.get(name)
    if automation is None or not automation.enabled or automation.trigger.kind != "schedule":
        return 0
    tick = tick_of(automation, engine.spec.timezone, now)
    stamp = tick.astimezone(UTC).strftime("%Y%m%dT%H%M")
    if automation.entity is None:
        key = f"automation:{name}:{stamp}"
        with write_transaction(engine.rt.engine) as tx:
            return int(bool(engine.rt.jobs.enqueue(RUN_TASK, engine.swept_payload(automation, None, key), key=key,
                                                   conn=tx)))
    ids = _select(engine, automation, Context.at(engine.spec.timezone, now=tick))
    return _enqueue(engine, automation, ((record_id, f"automation:{name}:{stamp}:{record_id}") for record_id in ids))


def _select(engine: Automations, automation: AutomationSpec, context: Context,
            extra: list[sa.ColumnElement[bool]] | None = None, value: sa.ColumnElement[Any] | None = None
            ) -> list[Any]:
    """The live records of the automation's entity for which ``when`` holds (and ``extra``): one statement."""
    assert automation.entity is not None
    rt = engine.rt
    table = rt.tables.entities[automation.entity]
    conditions: list[sa.ColumnElement[bool]] = [table.c.deleted_at.is_(None), *(extra or ())]
    if automation.condition is not None:
        conditions.append(to_sql(automation.condition, rt.tables, dialect=rt.engine.dialect.name, context=context))
    columns: list[Any] = [table.c.id] if value is None else [table.c.id, value]
    with rt.engine.connect() as conn:
        rows = conn.execute(sa.select(*columns).where(*conditions).order_by(table.c.id)).all()
    return [row[0] if value is None else (row[0], row[1]) for row in rows]


def _enqueue(engine: Automations, automation: AutomationSpec, keyed: Iterable[tuple[int, str]]) -> int:
    """Enqueue the runs (record id, key): a statement and a transaction per batch; how many were new."""
    jobs = engine.rt.jobs
    payload = engine.swept_payload
    done = 0
    for batch in _batches(keyed):
        with write_transaction(engine.rt.engine) as tx:
            done += jobs.enqueue_many(RUN_TASK, [(payload(automation, record_id, key), key)
                                                 for record_id, key in batch], conn=tx)
    return done


def sweep(engine: Automations, now: dt.datetime | None = None) -> int:
    """Enqueue the runs of every time trigger whose moment has come; returns how many."""
    now = now or dt.datetime.now(UTC)
    done = 0
    for automation in engine.spec.automations.values():
        if automation.enabled and automation.trigger.kind == "time":
            done += sweep_one(engine, automation, now)
    return done


def sweep_one(engine: Automations, automation: AutomationSpec, now: dt.datetime) -> int:
    state = engine.rt.tables.metadata.tables[SWEEP_TABLE]
    found = due(engine, automation, now)
    keyed = ((record_id, f"automation:{automation.name}:{record_id}:{_stamp(value)}") for record_id, value in found)
    done = _enqueue(engine, automation, keyed)
    with write_transaction(engine.rt.engine) as tx:
        updated = tx.execute(state.update().where(state.c.automation == automation.name).values(swept_at=now))
        if updated.rowcount == 0:
            tx.execute(state.insert().values(automation=automation.name, swept_at=now))
    return done


def due(engine: Automations, automation: AutomationSpec, now: dt.datetime) -> list[Any]:
    """(id, value of the date field) of the records whose moment has come, as
    far as a sweep at ``now`` must look (one statement)."""
    trigger = automation.trigger
    assert automation.entity is not None and trigger.date_field is not None
    entity = engine.spec.entities[automation.entity]
    f = entity.fields[trigger.date_field]
    table = engine.rt.tables.entities[entity.name]
    column = table.c[f.column]
    state = engine.rt.tables.metadata.tables[SWEEP_TABLE]
    with engine.rt.engine.connect() as conn:
        last = conn.execute(sa.select(state.c.swept_at).where(state.c.automation == automation.name)).scalar()
    context = Context.at(engine.spec.timezone, now=now)
    # The moment is value + offset: it has come when value <= now - offset, and
    # is not too late when value > now - offset - CATCH_UP (bounds on the column: its index serves).
    latest, earliest = _bound(f.type, now, context, trigger.offset), _bound(f.type, now - CATCH_UP, context,
                                                                           trigger.offset)
    conditions: list[sa.ColumnElement[bool]] = [column <= latest, column > earliest]
    if last is not None and last - SLACK > now - CATCH_UP:
        since = last - SLACK  # only what came, or was written, since the last sweep
        conditions.append(sa.or_(column > _bound(f.type, since, context, trigger.offset), table.c.updated_at > since))
    return _select(engine, automation, context, conditions, value=column)


def _bound(field_type: str, moment: dt.datetime, context: Context, offset: dt.timedelta) -> Any:
    """The field's value whose moment (value + offset) is ``moment``: a date for a date field."""
    if field_type == "date":
        return moment.astimezone(context.timezone).date() - offset
    return moment - offset


def _stamp(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(UTC).strftime("%Y%m%dT%H%M%S")
    return value.isoformat() if isinstance(value, dt.date) else str(value)
