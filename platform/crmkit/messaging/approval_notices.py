"""The approvals' own notifications, without any config: each approver of a
step that opens gets an in-app notification linking to the approvals queue
(/app/approvals), the requester one when the approval is decided, and, for a
move whose approval says ``remind_after``, the approvers of a step still
undecided get a reminder after each such period (a scheduled sweep).

Each notice is a job (``approval.notify``) enqueued in the decision's own
transaction (no notice of a rolled-back decision); its notifications are
keyed by approval, step and round, so a job run twice, or a sweep that
finds the same step again, notifies nobody twice. Mail, SMS and the rest
are the automations' (``approval_requested`` / ``approval_decided``
triggers with ``to: approvers``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..database import write_transaction
from ..hookspecs import hookimpl
from ..jobs import Schedule, task
from ..metadata.spec import AppSpec, EntitySpec, label_text
from ..permissions import SYSTEM
from ..sqltypes import UTC

if TYPE_CHECKING:
    from ..approvals import ApprovalEvent
    from ..runtime import Runtime

NOTICE_TASK = "approval.notify"
REMIND_TASK = "approval.remind"
#: How often the reminders are looked for.
REMIND_CRON = "*/5 * * * *"
#: The ``automation`` of these notifications (what the bell links them to):
#: a request goes to the approvals queue, a decision to the record.
REQUEST_ORIGIN = "approval:request"
DECISION_ORIGIN = "approval:decision"
#: The most pending approvals one sweep reads at a time.
BATCH = 500


def _texts(kind: str, entity: EntitySpec, language: str) -> tuple[str, str]:
    """(title, body) of a notice as templates about the record, in a language."""
    title = "{{ " + entity.title + " }}"
    what = label_text(entity.label, language, entity.name)
    comment = "{% if approval.comment %}" + ("：" if language == "zh" else ": ") + "{{ approval.comment }}{% endif %}"
    if language == "zh":
        return {
            "request": (f"待您审批：{{{{ approval.transition }}}}｜{title}",
                        f"{{{{ approval.requester }}}} 提交了{what}「{title}」的「{{{{ approval.transition }}}}」，"
                        "请您审批（{{ approval.step }}）。"),
            "reminder": (f"催办：{{{{ approval.transition }}}}｜{title} 仍待您审批",
                         f"{what}「{title}」的「{{{{ approval.transition }}}}」仍在等待您的审批"
                         "（{{ approval.step }}，{{ approval.requester }} 提交）。"),
            "decision": (f"审批{{{{ approval.outcome }}}}：{{{{ approval.transition }}}}｜{title}",
                         f"{{{{ approval.decided_by }}}} {{{{ approval.outcome }}}}您提交的{what}「{title}」的"
                         f"「{{{{ approval.transition }}}}」{comment}"),
        }[kind]
    return {
        "request": (f"Approval requested: {{{{ approval.transition }}}} – {title}",
                    f"{{{{ approval.requester }}}} asks for your approval: {{{{ approval.transition }}}} of {what} "
                    f"{title} ({{{{ approval.step }}}})."),
        "reminder": (f"Reminder: {{{{ approval.transition }}}} – {title} awaits your approval",
                     f"{{{{ approval.transition }}}} of {what} {title} still awaits your approval "
                     "({{ approval.step }}, asked by {{ approval.requester }})."),
        "decision": (f"Your request was {{{{ approval.outcome }}}}: {{{{ approval.transition }}}} – {title}",
                     f"{{{{ approval.decided_by }}}} {{{{ approval.outcome }}}} {{{{ approval.transition }}}} of "
                     f"{what} {title}{comment}"),
    }[kind]


@hookimpl
def record_approval_changed(event: ApprovalEvent) -> None:
    """A step opened: its approvers hear of it; the approval was decided: its requester does."""
    if event.kind in ("requested", "step"):
        notice = "request"
    elif event.decided and event.requested_by is not None:
        notice = "decision"
    else:
        return
    jobs = event.service.jobs
    if jobs is None:  # a records service without a runtime (no queue): nobody to tell
        return
    jobs.enqueue(
        NOTICE_TASK, {"notice": notice, "entity": event.entity, "record_id": event.record_id,
                      "approval": event.facts()},
        key=f"approval-notice:{event.approval_id}:{event.kind}:{event.step}", conn=event.conn)


@task(NOTICE_TASK)
def notify(runtime: Runtime, payload: dict[str, Any]) -> None:
    """The in-app notifications of one approval notice (request, reminder, decision)."""
    entity = runtime.spec.entities.get(str(payload.get("entity")))
    approval = payload.get("approval")
    if entity is None or not isinstance(approval, Mapping):
        return
    with runtime.engine.connect() as conn:
        record = runtime.queries.fetch(conn, entity, int(payload["record_id"]), actor=SYSTEM)
    if record is None:
        return  # deleted since
    notice = str(payload.get("notice"))
    texts = {lang: _texts(notice, entity, lang) for lang in runtime.spec.locales}
    round_ = f":{payload['round']}" if payload.get("round") else ""
    runtime.messaging.notify(
        to="requester" if notice == "decision" else "approvers", entity=entity.name, record=dict(record),
        key=f"approval:{approval['id']}:{approval.get('event')}:{approval.get('position')}{round_}",
        automation=DECISION_ORIGIN if notice == "decision" else REQUEST_ORIGIN,
        title={lang: t for lang, (t, _) in texts.items()}, body={lang: b for lang, (_, b) in texts.items()},
        approval=approval)


def reminding(spec: AppSpec) -> dict[tuple[str, str], dt.timedelta]:
    """(workflow, move) -> after how long its approval's open step is reminded."""
    return {(wf.name, move.name): move.approval.remind_after for wf in spec.workflows for move in wf.transitions
            if move.approval is not None and move.approval.remind_after is not None}


@task(REMIND_TASK)
def remind(runtime: Runtime, payload: dict[str, Any]) -> None:
    """Enqueue a reminder for each pending approval whose open step has
    waited a whole period more since it opened (or since the last reminder)."""
    periods = reminding(runtime.spec)
    if not periods:
        return
    approvals = runtime.records.approvals
    t, s, a, users = approvals.table, approvals.steps, approvals.approvers, runtime.tables.users
    now = dt.datetime.now(UTC)
    workflows = sorted({wf for wf, _ in periods})
    after = 0
    while True:
        with write_transaction(runtime.engine) as tx:
            rows = tx.execute(sa.select(t.c.id, t.c.entity, t.c.record_id, t.c.workflow, t.c.transition, t.c.step,
                                        t.c.requested_at, t.c.requested_by, t.c.requester)
                              .where(t.c.status == "pending", t.c.workflow.in_(workflows), t.c.id > after)
                              .order_by(t.c.id).limit(BATCH)).mappings().all()
            for row in rows:
                period = periods.get((row["workflow"], row["transition"]))
                if period is None or row["step"] is None:
                    continue
                # A later step opened when the one before it was decided.
                opened = tx.execute(sa.select(sa.func.max(a.c.decided_at)).where(
                    a.c.approval_id == row["id"], a.c.position < row["step"])).scalar() or row["requested_at"]
                rounds = int((now - opened.astimezone(UTC)) / period)
                if rounds < 1:
                    continue
                waiting = list(tx.execute(sa.select(a.c.user_id).where(
                    a.c.approval_id == row["id"], a.c.position == row["step"], a.c.decision.is_(None))
                    .order_by(a.c.id)).scalars())
                if not waiting:
                    continue
                label = tx.execute(sa.select(s.c.label).where(s.c.approval_id == row["id"],
                                                              s.c.position == row["step"])).scalar() or {}
                requester = tx.execute(sa.select(users.c.display_name).where(
                    users.c.id == row["requested_by"])).scalar() if row["requested_by"] is not None else None
                facts = {"id": row["id"], "workflow": row["workflow"], "transition": row["transition"],
                         "event": "reminder", "outcome": "", "comment": "", "position": row["step"],
                         "step": dict(label), "approvers": waiting, "requested_by": row["requested_by"],
                         "requester": requester or row["requester"], "decided_by": ""}
                runtime.jobs.enqueue(NOTICE_TASK, {"notice": "reminder", "entity": row["entity"],
                                                   "record_id": row["record_id"], "approval": facts, "round": rounds},
                                     key=f"approval-remind:{row['id']}:{row['step']}:{rounds}", conn=tx)
        if len(rows) < BATCH:
            return
        after = rows[-1]["id"]


@hookimpl
def crmkit_schedules(spec: AppSpec) -> list[Schedule]:
    """The reminders' sweep, when some approval says ``remind_after``."""
    return [Schedule("approvals:remind", REMIND_CRON, REMIND_TASK, {})] if reminding(spec) else []
