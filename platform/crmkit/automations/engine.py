"""The automations engine: matching record events to automations, and runs.

Matching is on the write's hot path, so it is an index built once at start-up:
(entity, event) -> the enabled automations waiting for it. A write of an entity
nobody waits for costs one dict lookup; an ``updated`` trigger with
``fields:`` compares the changed fields before anything else. A matching
automation is enqueued as the job ``automation.run`` in the write's own
transaction (the outbox: no run for a write that rolled back, no write without
its runs).

A run re-reads the record, evaluates ``when`` (the Python evaluator) and runs
the actions in order as the system actor "automation NAME", each through the
records service; the first failing action stops the run. Every run is a row
of the run log. Loop protection: a write made by a run enqueues the runs it
triggers one level deeper (a context variable says how deep the current run
is); past MAX_DEPTH the chain stops with a logged error.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..database import write_transaction
from ..errors import CrmError
from ..expressions import Checked, Context, SqlLoader, check, evaluate
from ..permissions import Actor
from .actions import ActionContext, ActionType
from .runs import FAILED, RUNS_TABLE, SKIPPED, STOPPED, Run, RunLog
from .spec import AutomationSpec

if TYPE_CHECKING:
    from ..approvals import ApprovalEvent
    from ..records import RecordEvent
    from ..runtime import Runtime
    from ..tagging import TagEvent

#: The job that runs one automation on one record.
RUN_TASK = "automation.run"
#: The retention's job (daily), and how long done jobs are kept at least:
#: longer than a time sweep looks back (sweeps.CATCH_UP, 7 days), so that a
#: run's key outlives the sweeps that could enqueue it again.
PRUNE_TASK = "automation.prune"
PRUNE_CRON = "40 3 * * *"
KEYS_HELD = dt.timedelta(days=8)
#: How many automation runs may lead to one another (an automation that
#: triggers itself, or a cycle of them, stops there with a logged error).
MAX_DEPTH = 5
#: Runs enqueued in one statement (Jobs.enqueue_many): a bulk write's, a sweep's per transaction.
BATCH = 5000


@dataclass(frozen=True)
class _Running:
    automation: str
    depth: int


#: The run whose actions are executing now (None: a user's write).
_running: contextvars.ContextVar[_Running | None] = contextvars.ContextVar("crmkit_automation_run", default=None)


def current_depth() -> int:
    """The depth of the runs a write made now would trigger (0: not inside a run)."""
    running = _running.get()
    return 0 if running is None else running.depth + 1


#: How the audit trail names an automation's writes: "automation NAME".
ACTOR_PREFIX = "automation "


def actor_for(name: str) -> Actor:
    """The system actor of an automation's writes, audited as "automation NAME"."""
    return Actor(None, ACTOR_PREFIX + name, system=True)


@dataclass
class DryRun:
    """What ``crmkit automations test`` shows: the condition's value and what
    each action would do."""

    automation: str
    record: Mapping[str, Any] | None
    condition: bool | None
    lines: list[str] = field(default_factory=list)


class Automations:
    """The automations of one runtime: the event index, the actions, the run log."""

    def __init__(self, rt: Runtime, actions: Mapping[str, ActionType]) -> None:
        self.rt = rt
        self.spec = rt.spec
        self.actions = dict(actions)
        self.log = RunLog(rt.tables.metadata.tables[RUNS_TABLE])
        #: (entity, event) -> enabled automations waiting for it; event: create,
        #: update, delete, transition, tag_added, tag_removed.
        self.index: dict[tuple[str, str], tuple[AutomationSpec, ...]] = {}
        for automation in self.spec.automations.values():
            event = automation.trigger.event
            if automation.enabled and event is not None and automation.entity is not None:
                key = (automation.entity, event)
                self.index[key] = self.index.get(key, ()) + (automation,)
        self._expressions: dict[tuple[str, str], Checked] = {}

    # -------------------------------------------------------------- matching (the write's hot path)

    def written(self, event: RecordEvent) -> None:
        """A record hook: enqueue the runs this write triggers."""
        entity = event.entity.name
        action = event.action
        if action == "restore":
            return
        waiting = self.index.get((entity, action))
        moving = self.index.get((entity, "transition")) if action == "update" else None
        if not waiting and not moving:
            return
        transition = getattr(event, "transition", None)
        pending: list[tuple[AutomationSpec, int]] = []
        for automation in waiting or ():
            wanted = automation.trigger.fields
            for i, record in enumerate(event.records):
                if wanted and not any(name in event.changes[i] for name in wanted):
                    continue
                pending.append((automation, record["id"]))
        if moving and transition is not None:
            for automation in moving:
                trigger = automation.trigger
                if trigger.move is not None and trigger.move != transition.name:
                    continue
                if not any(m.name == transition.name for m in self._moves(trigger.workflow)):
                    continue
                pending.extend((automation, record["id"]) for record in event.records)
        if pending:
            self._enqueue(event.conn, entity, pending)

    def tags_changed(self, event: TagEvent) -> None:
        """A tag hook: enqueue the runs of tag_added / tag_removed triggers."""
        pending: list[tuple[AutomationSpec, int]] = []
        for kind, ids in (("tag_added", event.added), ("tag_removed", event.removed)):
            if not ids:
                continue
            for automation in self.index.get((event.entity, kind), ()):
                if automation.trigger.tag == event.tag:
                    pending.extend((automation, record_id) for record_id in ids)
        if pending:
            self._enqueue(event.conn, event.entity, pending)

    def approval_changed(self, event: ApprovalEvent) -> None:
        """An approval hook: enqueue the runs of approval_requested (a step
        opened) and approval_decided (approved or rejected) triggers, with
        the approval's facts in the payload (for templates and recipients)."""
        kind = "approval_requested" if event.kind in ("requested", "step") else \
            "approval_decided" if event.decided else None
        waiting = self.index.get((event.entity, kind)) if kind is not None else None
        if not waiting:
            return
        matching = [a for a in waiting if a.trigger.workflow == event.workflow
                    and a.trigger.move in (None, event.transition)
                    and a.trigger.outcome in (None, event.kind)]
        if matching:
            self._enqueue(event.conn, event.entity, [(a, event.record_id) for a in matching],
                          event.facts())

    def _moves(self, workflow: str | None) -> Sequence[Any]:
        return next((wf.transitions for wf in self.spec.workflows if wf.name == workflow), ())

    def _enqueue(self, conn: sa.Connection, entity: str, pending: list[tuple[AutomationSpec, int]],
                 approval: Mapping[str, Any] | None = None) -> None:
        depth = current_depth()
        if depth >= MAX_DEPTH:
            running = _running.get()
            chain = running.automation if running is not None else "?"
            self.log.write(conn, [Run(a.name, entity, record_id, a.trigger.text, depth, status=STOPPED,
                                      error=f"stopped: {depth} automation runs led to this one (from "
                                            f"'{chain}'); the limit is {MAX_DEPTH}: a loop?")
                                  for a, record_id in pending])
            return
        payloads = [self.payload(automation, entity, record_id, depth) for automation, record_id in pending]
        if approval is not None:
            for payload in payloads:
                payload["approval"] = dict(approval)
        jobs = self.rt.jobs
        if len(payloads) == 1:  # one record saved: the write's usual case
            jobs.enqueue(RUN_TASK, payloads[0], conn=conn)
            return
        for start in range(0, len(payloads), BATCH):  # a bulk write (an import, a seed): a statement per batch
            jobs.enqueue_many(RUN_TASK, [(payload, None) for payload in payloads[start:start + BATCH]], conn=conn)

    @staticmethod
    def payload(automation: AutomationSpec, entity: str | None, record_id: int | None, depth: int = 0,
                run: str | None = None) -> dict[str, Any]:
        return {"automation": automation.name, "entity": entity, "record_id": record_id,
                "trigger": automation.trigger.text, "depth": depth, "run": run or uuid.uuid4().hex}

    @staticmethod
    def swept_payload(automation: AutomationSpec, record_id: int | None, run: str) -> dict[str, Any]:
        """The payload of a run a schedule or a time sweep enqueues (a million
        at a time): only what :meth:`run` cannot know — the entity, the
        trigger and the depth (0) are the automation's own."""
        return {"automation": automation.name, "record_id": record_id, "run": run}

    # -------------------------------------------------------------- runs

    def expression(self, entity: str, text: str) -> Checked:
        """An action's expression about records of ``entity``, checked once."""
        key = (entity, text)
        found = self._expressions.get(key)
        if found is None:
            found = self._expressions[key] = check(text, self.spec, entity, want="value")
        return found

    def read(self, automation: AutomationSpec, record_id: int | None) -> Mapping[str, Any] | None:
        """The trigger record as stored now (one in the recycle bin for a deleted trigger)."""
        if automation.entity is None or record_id is None:
            return None
        entity = self.spec.entities[automation.entity]
        with self.rt.engine.connect() as conn:
            row = self.rt.queries.fetch(conn, entity, record_id, actor=actor_for(automation.name),
                                        deleted=automation.trigger.kind == "deleted")
        return dict(row) if row is not None else None

    def condition(self, automation: AutomationSpec, record: Mapping[str, Any] | None) -> bool | None:
        """The value of ``when`` on the record (None: no condition)."""
        if automation.condition is None or record is None:
            return None
        with self.rt.engine.connect() as conn:
            value = evaluate(automation.condition, record, Context.at(self.spec.timezone),
                             SqlLoader(conn, self.rt.tables))
        return value is True

    def run(self, payload: Mapping[str, Any]) -> Run | None:
        """The job ``automation.run``: one automation on one record (or none, for
        a schedule without entity); returns the run as logged (None: nothing to do)."""
        automation = self.spec.automations.get(str(payload.get("automation")))
        if automation is None or not automation.enabled:
            return None  # removed or switched off since it was enqueued
        record_id = payload.get("record_id")
        depth = int(payload.get("depth") or 0)
        run = Run(automation.name, automation.entity, record_id, str(payload.get("trigger") or automation.trigger.text),
                  depth)
        record = self.read(automation, record_id)
        if automation.entity is not None and record is None:
            run.status, run.error = SKIPPED, f"{automation.entity} {record_id} no longer exists"
            return self._logged(run)
        run.condition = self.condition(automation, record)
        if run.condition is False:
            run.status = SKIPPED
            return self._logged(run)
        actor = actor_for(automation.name)
        key = str(payload.get("run") or uuid.uuid4().hex)
        approval = payload.get("approval") if isinstance(payload.get("approval"), Mapping) else None
        with _inside(automation.name, depth):
            for i, step in enumerate(automation.actions):
                ctx = ActionContext(self.rt, automation.name, automation.entity, record, actor, f"{key}:{i}",
                                    False, depth, approval)
                try:
                    line = self.actions[step.name].run(ctx, step.args)
                except (CrmError, ValueError, LookupError) as exc:
                    run.status, run.error = FAILED, f"{step.name}: {_message(exc)}"
                    run.results.append({"action": step.name, "error": _message(exc)})
                    run.results.extend({"action": s.name, "skipped": True} for s in automation.actions[i + 1:])
                    break
                except Exception as exc:  # unexpected: logged, and the job fails so the queue retries it
                    run.status, run.error = FAILED, f"{step.name}: {type(exc).__name__}: {exc}"
                    run.results.append({"action": step.name, "error": f"{type(exc).__name__}: {exc}"})
                    self._logged(run)
                    raise
                run.results.append({"action": step.name, "result": line})
                if step is not automation.actions[-1]:
                    record = self.read(automation, record_id) if record_id is not None else record
                    if automation.entity is not None and record is None:
                        run.results.extend({"action": s.name, "skipped": True}
                                           for s in automation.actions[i + 1:])
                        break
        return self._logged(run)

    def _logged(self, run: Run) -> Run:
        with write_transaction(self.rt.engine) as tx:
            self.log.write(tx, [run])
        return run

    def prune(self, older_than: dt.timedelta) -> tuple[int, int]:
        """Retention (the daily job ``automation.prune``, ``crmkit automations
        prune``): delete the runs logged longer ago than ``older_than`` and
        the done jobs finished longer ago (dead jobs stay until replayed or
        purged by hand); (runs, jobs) deleted. A done job holds its
        idempotency key: those of time triggers are kept at least KEYS_HELD
        (a sweep looks that far back), whatever ``older_than`` says."""
        with write_transaction(self.rt.engine) as tx:
            pruned = self.log.prune(tx, dt.datetime.now(dt.UTC) - older_than)
        return pruned, self.rt.jobs.purge(max(older_than, KEYS_HELD))

    def dry_run(self, name: str, record_id: int | None) -> DryRun:
        """What a run would do on the record, writing nothing (``crmkit automations test``)."""
        automation = self.spec.automations[name]
        record = self.read(automation, record_id)
        if automation.entity is not None and record is None:
            raise LookupError(f"{automation.entity} {record_id} not found")
        result = DryRun(name, record, self.condition(automation, record))
        actor = actor_for(name)
        for i, step in enumerate(automation.actions):
            ctx = ActionContext(self.rt, name, automation.entity, record, actor, f"dry-run:{i}", True, 0)
            try:
                line = self.actions[step.name].describe(ctx, step.args)
            except (CrmError, ValueError, LookupError) as exc:
                line = f"would fail: {_message(exc)}"
            result.lines.append(f"{step.name}: {line}")
        return result


@contextmanager
def _inside(automation: str, depth: int) -> Iterator[None]:
    token = _running.set(_Running(automation, depth))
    try:
        yield
    finally:
        _running.reset(token)


def _message(exc: BaseException) -> str:
    if isinstance(exc, CrmError):
        details = exc.details
        if isinstance(details, Mapping) and details:
            parts = [f"{k}: {'; '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in details.items()]
            return f"{exc.message} ({', '.join(parts)})"
        return exc.message
    return str(exc) or type(exc).__name__
