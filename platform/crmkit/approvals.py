"""Approvals of workflow moves (internal plugin): a move whose spec has an
``approval`` is not made when it is asked for; a pending approval is made
instead, and the move is made when the last step is approved.

The records service asks this module when a move with an approval is
requested (``RecordsService.transition``), in the request's transaction:
the steps whose ``when`` is false are skipped, the approvers of the others are
chosen then (the active users of a role, or the requester's Nth superior,
among those who can read the record) and kept with the approval, so the
approvers of a request do not change under it. A step is approved by any one
of its approvers (或签, ``mode: any``) or by all of them (会签, ``mode: all``);
the next step begins when one is done. On the last approval the move is made
through ``RecordsService.transition`` on the requester's behalf (their name
in the history, the approval as the authority: their roles and scope are not
asked again, the move's required fields and condition are); a rejection ends
the approval with its reason and leaves the record in its state.

While an approval is pending its record is locked against the move's fields
(the workflow's state, the fields the move requires and those its conditions
and its steps' conditions read): a write that changes one is refused (409
``approval_pending``), and so is a second request of a move of the same
workflow. An approval is as visible as its record: whoever may read the
record sees it; an approver must be able to read the record to act.

This module is the only writer of its tables (declared through the
``crmkit_tables`` hook); every step of an approval is written to the
record's audit trail (action ``approval``) through crmkit.audit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from .database import write_transaction
from .errors import BadRequest, Conflict, Forbidden, NotFound, ValidationFailed
from .expressions import SqlLoader, holds
from .hookspecs import hookimpl
from .metadata.spec import ApprovalStepSpec, AppSpec, EntitySpec, label_text
from .permissions import Actor
from .sqltypes import UTC, UTCDateTime, json_type

if TYPE_CHECKING:
    from .records import RecordEvent, RecordsService
    from .workflows import Transition, Workflow

APPROVAL_TABLE = "crmkit_approval"
STEP_TABLE = "crmkit_approval_step"
APPROVER_TABLE = "crmkit_approval_approver"
NAME_SIZE, STATUS_SIZE, KEY_SIZE = 64, 16, 200
#: The longest comment an approver may write.
COMMENT_SIZE = 2000
#: The audit trail's action of every approval event, and the key of its details.
AUDIT_ACTION = "approval"
AUDIT_KEY = "_approval"
#: The most approvals one list answers.
MAX_LIST = 200
STATUSES = ("pending", "approved", "rejected", "cancelled")


@hookimpl
def crmkit_tables(metadata: sa.MetaData, spec: AppSpec) -> None:
    sa.Table(
        APPROVAL_TABLE, metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("entity", sa.String(NAME_SIZE), nullable=False),
        sa.Column("record_id", sa.Integer, nullable=False),
        sa.Column("workflow", sa.String(NAME_SIZE), nullable=False),
        sa.Column("transition", sa.String(NAME_SIZE), nullable=False),
        sa.Column("from_state", sa.String(NAME_SIZE), nullable=False),
        sa.Column("to_state", sa.String(NAME_SIZE), nullable=False),
        sa.Column("status", sa.String(STATUS_SIZE), nullable=False),
        #: The position of the step being decided (None once decided).
        sa.Column("step", sa.Integer),
        sa.Column("requested_by", sa.Integer),
        sa.Column("requester", sa.String(100), nullable=False),
        sa.Column("requested_at", UTCDateTime(), nullable=False),
        sa.Column("decided_at", UTCDateTime()),
        #: The rejection's reason (or the cancellation's).
        sa.Column("reason", sa.Text),
        #: The values sent with the request, applied when the move is made.
        sa.Column("data", json_type()),
        #: entity:record:workflow while pending, else NULL: one pending approval
        #: per record and workflow, enforced by the database under concurrency.
        sa.Column("pending_key", sa.String(KEY_SIZE), unique=True),
        sa.Index("ix_crmkit_approval_record", "entity", "record_id", "id"),
        sa.Index("ix_crmkit_approval_requester", "requested_by", "id"),
        sqlite_autoincrement=True,
    )
    sa.Table(
        STEP_TABLE, metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("approval_id", sa.Integer, sa.ForeignKey(f"{APPROVAL_TABLE}.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("label", json_type()),
        sa.Column("role", sa.String(NAME_SIZE)),
        sa.Column("superior", sa.Integer),
        sa.Column("mode", sa.String(8), nullable=False),
        #: waiting | active | approved | rejected | skipped | cancelled
        sa.Column("status", sa.String(STATUS_SIZE), nullable=False),
        sa.UniqueConstraint("approval_id", "position", name="uq_crmkit_approval_step"),
    )
    sa.Table(
        APPROVER_TABLE, metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("approval_id", sa.Integer, sa.ForeignKey(f"{APPROVAL_TABLE}.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        #: None until they decide: approved | rejected
        sa.Column("decision", sa.String(STATUS_SIZE)),
        sa.Column("comment", sa.Text),
        sa.Column("decided_at", UTCDateTime()),
        sa.UniqueConstraint("approval_id", "position", "user_id", name="uq_crmkit_approval_approver"),
        sa.Index("ix_crmkit_approval_approver_user", "user_id", "approval_id"),
    )


@hookimpl
def record_before_update(event: RecordEvent) -> None:
    """A write that changes a field a pending approval locks is refused."""
    approvals: Approvals = event.service.approvals
    lockable = approvals.lockable.get(event.entity.name)
    if not lockable or not event.rows or not event.old:
        return
    fields = event.entity.fields
    old = event.old[0]
    changing = {name for name, value in event.rows[0].items()
                if name in lockable and old[fields[name].column] != value}
    if changing:
        approvals.refuse_locked(event.conn, event.entity, old["id"], changing)


@hookimpl
def record_after_delete(event: RecordEvent) -> None:
    """A record sent to the recycle bin takes its pending approvals with it (withdrawn)."""
    approvals: Approvals = event.service.approvals
    if event.action == "delete" and event.entity.name in approvals.lockable:
        approvals.withdraw_all(event.conn, event.entity.name, [r["id"] for r in event.records])


def _now() -> dt.datetime:
    return dt.datetime.now(UTC)


def _pending_key(entity: str, record_id: int, workflow: str) -> str:
    return f"{entity}:{record_id}:{workflow}"[:KEY_SIZE]


#: The kinds of ApprovalEvent: a step opened (the first: requested), or the approval ended.
EVENT_KINDS = ("requested", "step", "approved", "rejected", "cancelled")


@dataclass(frozen=True)
class ApprovalEvent:
    """What the ``record_approval_changed`` hook is told, in the transaction
    of ``conn``: ``kind`` is one of EVENT_KINDS; ``approvers`` are the users
    of the step just opened (empty once it ended); ``actor`` acted, with
    ``comment`` (a decision's, or a withdrawal's)."""

    kind: str
    entity: str
    record_id: int
    approval_id: int
    workflow: str
    transition: str
    step: int | None
    approvers: tuple[int, ...]
    requested_by: int | None
    actor: Actor
    comment: str | None
    conn: sa.Connection
    service: RecordsService

    @property
    def decided(self) -> bool:
        return self.kind in ("approved", "rejected")

    def facts(self) -> dict[str, Any]:
        """What a job about this event knows of the approval (JSON): the
        ``approval.*`` variables of templates, the ``approvers`` and
        ``requester`` recipients (crmkit.messaging)."""
        users = self.service.tables.users
        ids = {i for i in (self.requested_by, self.actor.id) if i is not None}
        names = {row.id: row.display_name or row.username for row in self.conn.execute(
            sa.select(users.c.id, users.c.display_name, users.c.username).where(users.c.id.in_(ids)))} \
            if ids else {}
        step_label: Mapping[str, str] = {}
        if self.step is not None:
            s = self.service.approvals.steps
            step_label = self.conn.execute(sa.select(s.c.label).where(
                s.c.approval_id == self.approval_id, s.c.position == self.step)).scalar() or {}
        decider = names.get(self.actor.id, self.actor.name) if self.actor.id is not None else self.actor.name
        return {"id": self.approval_id, "workflow": self.workflow, "transition": self.transition,
                "event": self.kind, "outcome": self.kind if self.decided else "",
                "comment": (self.comment or "") if self.decided else "", "position": self.step,
                "step": dict(step_label), "approvers": list(self.approvers), "requested_by": self.requested_by,
                "requester": names.get(self.requested_by, "") if self.requested_by is not None else "",
                "decided_by": decider if self.decided else ""}


@dataclass(frozen=True)
class ApprovalPending:
    """What ``RecordsService.transition`` answers for a move that now waits
    for approval (instead of the moved record): the approval, as the API shows it."""

    approval: dict[str, Any]


class Approvals:
    """Approvals of workflow moves; every write of their tables goes through here."""

    def __init__(self, service: RecordsService) -> None:
        self.service = service
        self.spec = service.spec
        self.tables = service.tables
        metadata = service.tables.metadata
        self.table = metadata.tables[APPROVAL_TABLE]
        self.steps = metadata.tables[STEP_TABLE]
        self.approvers = metadata.tables[APPROVER_TABLE]
        t = self.table
        #: The pending approvals of one record (built once: every write of a locked field asks it).
        self._pending_of_record = sa.select(t.c.id, t.c.workflow, t.c.transition).where(
            t.c.entity == sa.bindparam("_entity", type_=sa.String()),
            t.c.record_id == sa.bindparam("_record_id", type_=sa.Integer()), t.c.status == "pending")
        #: entity -> the fields some approval of its moves locks while pending.
        self.lockable: dict[str, frozenset[str]] = {}
        for entity, flows in service.workflows.items():
            locked: set[str] = set()
            for workflow in flows:
                for move in workflow.transitions:
                    if move.spec.approval is not None:
                        locked |= self.locked_fields(workflow, move)
            if locked:
                self.lockable[entity] = frozenset(locked)

    # ------------------------------------------------------------ the moves

    def move_of(self, entity: str, workflow: str, name: str) -> tuple[Workflow, Transition] | None:
        for flow in self.service.workflows.get(entity, ()):
            if flow.name == workflow:
                move = flow.transition(name)
                return (flow, move) if move is not None else None
        return None

    def locked_fields(self, workflow: Workflow, move: Transition) -> frozenset[str]:
        """What a pending approval of the move locks: the state, the required
        fields and the fields its conditions read (those the approvers judged),
        but formulas and rollups (the platform computes them, nobody types them)."""
        names = {workflow.field, *move.require}
        conditions = [move.condition] + [step.condition for step in move.spec.approval.steps] \
            if move.spec.approval is not None else [move.condition]
        for checked in conditions:
            if checked is not None:
                names |= {name for entity, name in checked.reads if entity == workflow.entity}
        fields = self.spec.entities[workflow.entity].fields
        return frozenset(name for name in names if name in fields and fields[name].formula is None)

    def refuse_locked(self, conn: sa.Connection, entity: EntitySpec, record_id: int, changing: set[str]) -> None:
        rows = conn.execute(self._pending_of_record, {"_entity": entity.name, "_record_id": record_id}).all()
        for approval_id, workflow_name, name in rows:
            found = self.move_of(entity.name, workflow_name, name)
            if found is None:
                continue
            locked = sorted(changing & self.locked_fields(*found))
            if locked:
                raise Conflict(f"the record awaits approval of '{name}' (approval {approval_id}); "
                               f"{', '.join(locked)} cannot change until it is decided",
                               {n: [f"is locked while the approval of '{name}' is pending"] for n in locked},
                               code="approval_pending")

    # ------------------------------------------------------------ requesting

    def request(self, tx: sa.Connection, entity: EntitySpec, workflow: Workflow, move: Transition,
                old: Mapping[Any, Any], values: Mapping[Any, Any], merged: Mapping[Any, Any],
                actor: Actor) -> ApprovalPending | None:
        """A pending approval of the move (None when every step is skipped:
        the move is then made at once). ``values``: the fields sent with the
        request, loaded; ``merged``: the record's values with them."""
        approval = move.spec.approval
        assert approval is not None
        record_id = old["id"]
        key = _pending_key(entity.name, record_id, workflow.name)
        t = self.table
        pending = tx.execute(sa.select(t.c.id, t.c.transition).where(t.c.pending_key == key)).first()
        if pending is not None:
            raise self._already_pending(pending.id, pending.transition)
        context = self.service.rules.context(actor.id)
        loader = SqlLoader(tx, self.tables)
        plan: list[tuple[ApprovalStepSpec, list[int] | None]] = []
        for step in approval.steps:
            if step.condition is not None and not holds(step.condition, merged, context, loader):
                plan.append((step, None))
            else:
                plan.append((step, self._approvers(tx, entity, record_id, step, actor)))
        first = next((i for i, (_, users) in enumerate(plan) if users is not None), None)
        if first is None:
            return None
        dump = self.service.schemas[entity.name].dump
        data = dump(self.service._columns(entity, values), frozenset(values)) if values else {}
        now = _now()
        try:
            approval_id: int = tx.execute(t.insert().returning(t.c.id).values(
                entity=entity.name, record_id=record_id, workflow=workflow.name, transition=move.name,
                from_state=str(old[entity.fields[workflow.field].column]), to_state=move.to, status="pending",
                step=first, requested_by=actor.id, requester=actor.name[:100], requested_at=now,
                data=data or None, pending_key=key)).scalar_one()
        except IntegrityError:  # another request of the same workflow won the race
            raise self._already_pending(None, move.name) from None
        steps, approvers = [], []
        for position, (step, users) in enumerate(plan):
            status = "skipped" if users is None else "active" if position == first else "waiting"
            steps.append({"approval_id": approval_id, "position": position, "label": self.step_label(step),
                          "role": step.role, "superior": step.superior, "mode": step.mode, "status": status})
            approvers += [{"approval_id": approval_id, "position": position, "user_id": user}
                          for user in users or ()]
        tx.execute(self.steps.insert(), steps)
        tx.execute(self.approvers.insert(), approvers)
        skipped = [position for position, (_, users) in enumerate(plan) if users is None]
        # Not the values sent: the trail's field rules apply to fields, not to what an entry nests.
        self._audit(tx, entity.name, record_id, actor, "requested", approval_id, move.name, skipped=skipped or None)
        self._changed(tx, "requested", {"id": approval_id, "entity": entity.name, "record_id": record_id,
                                        "workflow": workflow.name, "transition": move.name,
                                        "requested_by": actor.id}, first, actor, None)
        return ApprovalPending(self._read(tx, approval_id, actor))

    def step_label(self, step: ApprovalStepSpec) -> dict[str, str]:
        """A step's name for people: its own, else its role's label, else "Superior N"."""
        if step.label:
            return dict(step.label)
        if step.role is not None:
            role = self.spec.roles.get(step.role)
            return dict(role.label) if role is not None and role.label else {"en": step.role}
        return {"en": f"Superior {step.superior}", "zh": f"第{step.superior}级上级"}

    def _already_pending(self, approval_id: int | None, name: str) -> Conflict:
        which = f" (approval {approval_id})" if approval_id is not None else ""
        return Conflict(f"an approval of '{name}'{which} is pending on this record; wait for its decision",
                        {"approval": [f"'{name}' is awaiting approval"]}, code="approval_pending")

    def _approvers(self, tx: sa.Connection, entity: EntitySpec, record_id: int, step: ApprovalStepSpec,
                   requester: Actor) -> list[int]:
        """The users who decide a step: active, able to read the record, not
        the requester (nobody approves their own request); a step nobody can
        decide refuses the request (409 ``no_approver``)."""
        users = self.tables.users
        columns = (users.c.id, users.c.username, users.c.roles, users.c.team_id, users.c.active)
        name = label_text(self.step_label(step), "en", "a step")
        if step.superior is not None:
            current = requester.id
            found = None
            for _ in range(step.superior):
                superior = tx.execute(sa.select(users.c.superior_id).where(users.c.id == current)).scalar() \
                    if current is not None else None
                if superior is None:
                    raise Conflict(f"the approval step '{name}' needs the requester's superior {step.superior} "
                                   "levels up, and there is none: set the superior in the user directory",
                                   {"approval": [f"no superior {step.superior} levels up"]}, code="no_approver")
                current = superior
            found = tx.execute(sa.select(*columns).where(users.c.id == current)).mappings().all()
        else:
            rows = tx.execute(sa.select(*columns).where(users.c.active.is_(True)).order_by(users.c.id)).mappings()
            found = [row for row in rows if step.role in (row["roles"] or ())]
        permissions = self.service.permissions
        chosen = [row["id"] for row in found if row["active"] and row["id"] != requester.id
                  and self.service.queries.fetch(tx, entity, record_id, columns=("id",), actor=Actor(
                      row["id"], row["username"], team_id=row["team_id"],
                      access=permissions.access(row["roles"] or ()))) is not None]
        if not chosen:
            who = f"role {step.role}" if step.role else f"the requester's superior {step.superior} levels up"
            raise Conflict(f"nobody can decide the approval step '{name}': no active user ({who}) can read "
                           "this record", {"approval": [f"no approver for '{name}'"]}, code="no_approver")
        return chosen

    # ------------------------------------------------------------ deciding

    def approve(self, approval_id: int, actor: Actor, comment: Any = None) -> dict[str, Any]:
        """Approve as one of the approvers of the step being decided; the
        last approval of the last step makes the move (in this transaction)."""
        return self._decide(approval_id, actor, "approved", comment)

    def reject(self, approval_id: int, actor: Actor, comment: Any = None) -> dict[str, Any]:
        """Reject with a reason (required): the approval ends, the record
        stays in its state."""
        return self._decide(approval_id, actor, "rejected", comment)

    def _comment(self, comment: Any, required: bool) -> str | None:
        if comment is not None and not isinstance(comment, str):
            raise ValidationFailed("comment must be text", {"comment": ["must be text"]})
        text = (comment or "").strip()
        if len(text) > COMMENT_SIZE:
            raise ValidationFailed(f"the comment is longer than {COMMENT_SIZE} characters",
                                   {"comment": [f"at most {COMMENT_SIZE} characters"]})
        if required and not text:
            raise ValidationFailed("say why you reject it: a comment is required",
                                   {"comment": ["is required to reject"]})
        return text or None

    def _locked(self, tx: sa.Connection, approval_id: int, actor: Actor) -> sa.RowMapping:
        """The approval, locked for this transaction (PostgreSQL: FOR UPDATE;
        SQLite writers are serialised already), if the actor may see it."""
        t = self.table
        query = sa.select(t).where(t.c.id == approval_id)
        if tx.dialect.name == "postgresql":
            query = query.with_for_update()
        row = tx.execute(query).mappings().first()
        if row is None or not self._may_see(tx, row, actor):
            raise NotFound(f"approval {approval_id} not found")
        return row

    def _decide(self, approval_id: int, actor: Actor, decision: str, comment: Any) -> dict[str, Any]:
        text = self._comment(comment, required=decision == "rejected")
        with write_transaction(self.service.engine) as tx:
            row = self._locked(tx, approval_id, actor)
            if row["status"] != "pending":
                raise Conflict(f"approval {approval_id} is {row['status']} already", code="approval_decided")
            a = self.approvers
            mine = tx.execute(sa.select(a.c.id, a.c.decision).where(
                a.c.approval_id == approval_id, a.c.position == row["step"], a.c.user_id == actor.id)).first()
            if actor.id is None or mine is None:
                raise Forbidden(f"you are not an approver of the current step of approval {approval_id}",
                                code="not_an_approver")
            if mine.decision is not None:
                raise Conflict(f"you have decided this step already ({mine.decision})", code="approval_decided")
            now = _now()
            tx.execute(a.update().where(a.c.id == mine.id).values(decision=decision, comment=text, decided_at=now))
            self._audit(tx, row["entity"], row["record_id"], actor, decision, approval_id, row["transition"],
                        step=row["step"], comment=text)
            if decision == "rejected":
                self._finish(tx, row, "rejected", now, text, step_status="rejected")
                self._changed(tx, "rejected", row, None, actor, text)
            else:
                self._advance(tx, row, now, actor, text)
            return self._read(tx, approval_id, actor)

    def _advance(self, tx: sa.Connection, row: Mapping[Any, Any], now: dt.datetime, actor: Actor,
                 comment: str | None) -> None:
        s, a = self.steps, self.approvers
        position = row["step"]
        mode = tx.execute(sa.select(s.c.mode).where(s.c.approval_id == row["id"], s.c.position == position)).scalar()
        decisions = list(tx.execute(sa.select(a.c.decision).where(
            a.c.approval_id == row["id"], a.c.position == position)).scalars())
        done = any(d == "approved" for d in decisions) if mode == "any" else all(d == "approved" for d in decisions)
        if not done:
            return
        tx.execute(s.update().where(s.c.approval_id == row["id"], s.c.position == position).values(status="approved"))
        following = tx.execute(sa.select(s.c.position).where(
            s.c.approval_id == row["id"], s.c.position > position, s.c.status == "waiting")
            .order_by(s.c.position).limit(1)).scalar()
        if following is not None:
            tx.execute(s.update().where(s.c.approval_id == row["id"], s.c.position == following)
                       .values(status="active"))
            tx.execute(self.table.update().where(self.table.c.id == row["id"]).values(step=following))
            self._changed(tx, "step", row, following, actor, comment)
            return
        self._finish(tx, row, "approved", now, None)
        requester = Actor(row["requested_by"], row["requester"], system=True)  # on their behalf
        self.service.transition(row["entity"], row["record_id"], row["transition"], dict(row["data"] or {}),
                                requester, conn=tx, approved=True)
        self._changed(tx, "approved", row, None, actor, comment)

    def _changed(self, tx: sa.Connection, kind: str, row: Mapping[Any, Any], step: int | None, actor: Actor,
                 comment: str | None) -> None:
        """The ``record_approval_changed`` hook (automations, notifications), in this transaction."""
        a = self.approvers
        approvers: tuple[int, ...] = ()
        if step is not None:
            approvers = tuple(tx.execute(sa.select(a.c.user_id).where(
                a.c.approval_id == row["id"], a.c.position == step).order_by(a.c.id)).scalars())
        self.service.hook.record_approval_changed(event=ApprovalEvent(
            kind, row["entity"], row["record_id"], row["id"], row["workflow"], row["transition"], step, approvers,
            row["requested_by"], actor, comment, tx, self.service))

    def _finish(self, tx: sa.Connection, row: Mapping[Any, Any], status: str, now: dt.datetime, reason: str | None,
                *, step_status: str | None = None) -> None:
        t, s = self.table, self.steps
        result = tx.execute(t.update().where(t.c.id == row["id"], t.c.status == "pending").values(
            status=status, decided_at=now, reason=reason, pending_key=None, step=None))
        if result.rowcount != 1:  # decided by someone else meanwhile (a lock makes this rare)
            raise Conflict(f"approval {row['id']} was decided meanwhile; reload it", code="approval_decided")
        if step_status is not None:
            tx.execute(s.update().where(s.c.approval_id == row["id"], s.c.position == row["step"])
                       .values(status=step_status))
        tx.execute(s.update().where(s.c.approval_id == row["id"], s.c.status == "waiting").values(status="cancelled"))

    def cancel(self, approval_id: int, actor: Actor, comment: Any = None) -> dict[str, Any]:
        """The requester withdraws a pending approval (撤回): the record stays where it is."""
        text = self._comment(comment, required=False)
        with write_transaction(self.service.engine) as tx:
            row = self._locked(tx, approval_id, actor)
            if row["status"] != "pending":
                raise Conflict(f"approval {approval_id} is {row['status']} already", code="approval_decided")
            if actor.id is None or actor.id != row["requested_by"]:
                raise Forbidden("only who asked for the approval may withdraw it", code="not_the_requester")
            self._audit(tx, row["entity"], row["record_id"], actor, "cancelled", approval_id, row["transition"],
                        comment=text)
            t = self.table
            tx.execute(t.update().where(t.c.id == approval_id).values(
                status="cancelled", decided_at=_now(), reason=text, pending_key=None, step=None))
            s = self.steps
            tx.execute(s.update().where(s.c.approval_id == approval_id, s.c.status.in_(("waiting", "active")))
                       .values(status="cancelled"))
            self._changed(tx, "cancelled", row, None, actor, text)
            return self._read(tx, approval_id, actor)

    def withdraw_all(self, tx: sa.Connection, entity: str, record_ids: list[int]) -> None:
        """Withdraw the pending approvals of these records (deleted: nothing left to decide)."""
        t, s = self.table, self.steps
        ids = list(tx.execute(sa.select(t.c.id).where(t.c.entity == entity, t.c.record_id.in_(record_ids),
                                                       t.c.status == "pending")).scalars())
        if not ids:
            return
        tx.execute(t.update().where(t.c.id.in_(ids)).values(status="cancelled", decided_at=_now(),
                                                           reason="the record was deleted", pending_key=None,
                                                           step=None))
        tx.execute(s.update().where(s.c.approval_id.in_(ids), s.c.status.in_(("waiting", "active")))
                   .values(status="cancelled"))

    def _audit(self, tx: sa.Connection, entity: str, record_id: int, actor: Actor, event: str, approval_id: int,
               transition: str, **details: Any) -> None:
        changes = {AUDIT_KEY: {"event": event, "id": approval_id, "transition": transition,
                               **{k: v for k, v in details.items() if v is not None}}}
        self.service.audit.records(tx, entity, AUDIT_ACTION, actor, [record_id], [changes])

    # ------------------------------------------------------------ reading

    def _may_see(self, conn: sa.Connection, row: Mapping[Any, Any], actor: Actor) -> bool:
        entity = self.spec.entities.get(row["entity"])
        return entity is not None and self.service.queries.fetch(
            conn, entity, row["record_id"], actor=actor, columns=("id",)) is not None

    def get(self, approval_id: int, actor: Actor) -> dict[str, Any]:
        """One approval, if the actor may read its record (404 otherwise)."""
        with self.service.engine.connect() as conn:
            row = conn.execute(sa.select(self.table).where(self.table.c.id == approval_id)).mappings().first()
            if row is None or not self._may_see(conn, row, actor):
                raise NotFound(f"approval {approval_id} not found")
            return self._present(conn, [row], actor)[0]

    def _read(self, conn: sa.Connection, approval_id: int, actor: Actor) -> dict[str, Any]:
        row = conn.execute(sa.select(self.table).where(self.table.c.id == approval_id)).mappings().one()
        return self._present(conn, [row], actor)[0]

    def of_record(self, conn: sa.Connection, entity: str, record_id: int, actor: Actor, *,
                  pending: bool = False) -> list[dict[str, Any]]:
        """The approvals of a record (the caller has read it), newest first."""
        t = self.table
        query = sa.select(t).where(t.c.entity == entity, t.c.record_id == record_id)
        if pending:
            query = query.where(t.c.status == "pending")
        rows = conn.execute(query.order_by(t.c.id.desc()).limit(MAX_LIST)).mappings().all()
        return self._present(conn, list(rows), actor)

    def listing(self, actor: Actor, *, mine: str | None = None, entity: str | None = None,
                record_id: int | None = None, status: str | None = None, limit: int = 50,
                before: int | None = None) -> tuple[list[dict[str, Any]], int | None]:
        """A page of approvals the actor may see, newest first, and the id to
        read on from (None: no more). ``mine``: ``pending`` (those waiting for
        the actor's decision) or ``requested`` (the actor's requests)."""
        t, a = self.table, self.approvers
        query = sa.select(t)
        if mine == "pending":
            waiting = sa.select(a.c.approval_id).where(a.c.user_id == actor.id, a.c.decision.is_(None),
                                                       a.c.approval_id == t.c.id, a.c.position == t.c.step)
            query = query.where(t.c.status == "pending", sa.exists(waiting))
        elif mine == "requested":
            query = query.where(t.c.requested_by == actor.id)
        elif mine is not None:
            raise BadRequest("mine must be pending or requested", {"mine": ["one of pending, requested"]},
                             code="invalid_parameter")
        if entity is not None:
            query = query.where(t.c.entity == entity)
        if record_id is not None:
            query = query.where(t.c.record_id == record_id)
        if status is not None:
            if status not in STATUSES:
                raise BadRequest(f"status must be one of {', '.join(STATUSES)}",
                                 {"status": [f"one of {', '.join(STATUSES)}"]}, code="invalid_parameter")
            query = query.where(t.c.status == status)
        if before is not None:
            query = query.where(t.c.id < before)
        found: list[Mapping[Any, Any]] = []
        with self.service.engine.connect() as conn:
            # Filtered by what the actor may read, a batch at a time, until the page is full.
            cursor = None
            while len(found) < limit + 1:
                batch_query = query if cursor is None else query.where(t.c.id < cursor)
                batch = conn.execute(batch_query.order_by(t.c.id.desc()).limit(MAX_LIST)).mappings().all()
                if not batch:
                    break
                found += self._visible(conn, batch, actor)
                cursor = batch[-1]["id"]
                if len(batch) < MAX_LIST:
                    break
            page = found[:limit]
            more = page[-1]["id"] if len(found) > limit and page else None
            return self._present(conn, page, actor), more

    def _visible(self, conn: sa.Connection, rows: Iterable[Mapping[Any, Any]], actor: Actor
                 ) -> list[Mapping[Any, Any]]:
        rows = list(rows)
        readable: dict[str, set[int]] = {}
        for name in {row["entity"] for row in rows}:
            if name in self.spec.entities:
                ids = {row["record_id"] for row in rows if row["entity"] == name}
                readable[name] = self.service.queries.existing_ids(conn, name, ids, actor)
        return [row for row in rows if row["record_id"] in readable.get(row["entity"], ())]

    def count_pending(self, conn: sa.Connection, actor: Actor) -> int:
        """How many approvals wait for the actor's decision (their records unchecked: a badge, not a list)."""
        if actor.id is None:
            return 0
        return int(conn.execute(sa.select(self.pending_count_query()), {"user_id": actor.id}).scalar_one())

    def pending_count_query(self) -> sa.ScalarSelect[Any]:
        """:meth:`count_pending` as SQL, of the user in the bind parameter ``user_id``
        (the shell reads it with its other counts in one statement)."""
        t, a = self.table, self.approvers
        return sa.select(sa.func.count()).select_from(t).join(
            a, sa.and_(a.c.approval_id == t.c.id, a.c.position == t.c.step)).where(
            t.c.status == "pending", a.c.user_id == sa.bindparam("user_id"), a.c.decision.is_(None)
        ).scalar_subquery()

    def _present(self, conn: sa.Connection, rows: list[Mapping[Any, Any]], actor: Actor) -> list[dict[str, Any]]:
        if not rows:
            return []
        ids = [row["id"] for row in rows]
        s, a, users = self.steps, self.approvers, self.tables.users
        steps: dict[int, list[dict[str, Any]]] = {}
        for step in conn.execute(sa.select(s).where(s.c.approval_id.in_(ids)).order_by(s.c.position)).mappings():
            steps.setdefault(step["approval_id"], []).append(
                {"position": step["position"], "label": step["label"], "role": step["role"],
                 "superior": step["superior"], "mode": step["mode"], "status": step["status"], "approvers": []})
        people = conn.execute(sa.select(a, users.c.username, users.c.display_name)
                              .join(users, users.c.id == a.c.user_id)
                              .where(a.c.approval_id.in_(ids)).order_by(a.c.id)).mappings().all()
        for person in people:
            step = steps[person["approval_id"]][person["position"]]
            step["approvers"].append({"user_id": person["user_id"], "username": person["username"],
                                      "name": person["display_name"] or person["username"],
                                      "decision": person["decision"], "comment": person["comment"],
                                      "decided_at": _iso(person["decided_at"])})
        out = []
        for row in rows:
            found = self.move_of(row["entity"], row["workflow"], row["transition"])
            label = dict(found[1].label) if found is not None else {"en": row["transition"]}
            mine = [p for p in steps.get(row["id"], [{}])[row["step"]]["approvers"]
                    if p["user_id"] == actor.id and p["decision"] is None] \
                if row["status"] == "pending" and row["step"] is not None and actor.id is not None else []
            out.append({"id": row["id"], "entity": row["entity"], "record_id": row["record_id"],
                        "workflow": row["workflow"], "transition": row["transition"], "transition_label": label,
                        "from": row["from_state"], "to": row["to_state"], "status": row["status"],
                        "step": row["step"], "requested_by": {"id": row["requested_by"], "username": row["requester"]},
                        "requested_at": _iso(row["requested_at"]), "decided_at": _iso(row["decided_at"]),
                        "reason": row["reason"], "values": self._values(row, actor),
                        "steps": steps.get(row["id"], []), "can_decide": bool(mine),
                        "can_cancel": row["status"] == "pending" and actor.id is not None
                        and actor.id == row["requested_by"]})
        return out


    def _values(self, row: Mapping[Any, Any], actor: Actor) -> dict[str, Any]:
        """The values sent with the request, as the reader may see them (hidden ones left out, masked masked)."""
        if not row["data"]:
            return {}
        ea = self.service.permissions.of(actor).entity(row["entity"])
        masks = dict(ea.masked)
        return {name: masks[name](value) if name in masks and value is not None else value
                for name, value in row["data"].items() if name in ea.visible}


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
