"""Approvals on the screens: the panel of a record's pending (and last
decided) approval on its page, with approve and reject buttons for its
approvers and withdraw for its requester, and the queue page
(/app/approvals) of what waits for the user's decision, linked from the
navigation when something does.

Decisions are POST forms (CSRF) that call the approvals service
(crmkit.approvals), which decides who may act; this module only shows what
the service says the reader may do (``can_decide``, ``can_cancel``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from flask import abort, flash, render_template, request
from flask_babel import gettext

from ..api.http import current_actor
from ..errors import CrmError
from ..metadata.spec import label_text
from ..permissions import Actor
from ..runtime import Runtime
from .cards import runtime
from .cells import Cells
from .i18n import locale
from .security import redirect_to
from .shell import bp

#: Approvals on the queue page, per list.
QUEUE_SIZE = 50
VERBS = ("approve", "reject", "cancel")


@dataclass
class ApprovalCard:
    """An approval as a screen shows it."""

    id: int
    entity: str
    record_id: int
    url: str
    title: str
    move: str
    status: str
    status_text: str
    requester: str
    requested_at: dt.datetime | None
    decided_at: dt.datetime | None
    reason: str | None
    can_decide: bool
    can_cancel: bool
    steps: list[dict[str, Any]] = field(default_factory=list)


def _moment(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def status_text(status: str) -> str:
    return {"pending": gettext("Awaiting approval"), "approved": gettext("Approved"),
            "rejected": gettext("Rejected"), "cancelled": gettext("Withdrawn")}.get(status, status)


def _step_status(status: str) -> str:
    return {"active": gettext("Deciding now"), "waiting": gettext("Waiting"), "approved": gettext("Approved"),
            "rejected": gettext("Rejected"), "skipped": gettext("Skipped"),
            "cancelled": gettext("Withdrawn")}.get(status, status)


def _decision(decision: str | None) -> str:
    return {"approved": gettext("approved"), "rejected": gettext("rejected")}.get(decision or "", gettext("to decide"))


def cards(rt: Runtime, conn: sa.Connection, approvals: list[dict[str, Any]], actor: Actor) -> list[ApprovalCard]:
    """Approvals as cards, with their records' titles as the reader sees them."""
    language = locale()
    access = rt.permissions.of(actor)
    cells = Cells(rt, actor)
    out = []
    for a in approvals:
        entity = rt.spec.entities.get(a["entity"])
        if entity is None:
            continue
        ea = access.entity(entity.name)
        row = rt.queries.read_one(conn, entity, a["record_id"], actor=actor)
        title = cells.title(entity, ea, dict(row)).text if row is not None else ""
        title = title or f"{label_text(entity.label, language, entity.name)} #{a['record_id']}"
        steps = []
        for step in a["steps"]:
            steps.append({"label": label_text(step["label"], language, ""), "status": step["status"],
                          "status_text": _step_status(step["status"]),
                          "mode": gettext("all must approve") if step["mode"] == "all" else gettext("any one approves"),
                          "approvers": [{"name": p["name"], "decision": p["decision"],
                                         "decision_text": _decision(p["decision"]), "comment": p["comment"]}
                                        for p in step["approvers"]]})
        out.append(ApprovalCard(a["id"], entity.name, a["record_id"], f"/app/{entity.name}/{a['record_id']}", title,
                                label_text(a["transition_label"], language, a["transition"]), a["status"],
                                status_text(a["status"]), a["requested_by"]["username"] or "",
                                _moment(a["requested_at"]), _moment(a["decided_at"]), a["reason"],
                                a["can_decide"], a["can_cancel"], steps))
    return out


def record_approvals(rt: Runtime, conn: sa.Connection, found: list[dict[str, Any]],
                     actor: Actor) -> list[ApprovalCard]:
    """What the record page shows of a record's approvals (``found``: all of
    them, as ``approvals.of_record`` gives them): the pending ones, or else
    the last decided one (so a requester sees why it was rejected)."""
    pending = [a for a in found if a["status"] == "pending"]
    return cards(rt, conn, pending or found[:1], actor)


@bp.get("/approvals")
def approvals_page():
    """The queue: approvals waiting for the user's decision, and their own requests."""
    rt = runtime()
    actor = current_actor()
    service = rt.records.approvals
    waiting, _ = service.listing(actor, mine="pending", limit=QUEUE_SIZE)
    mine, _ = service.listing(actor, mine="requested", limit=QUEUE_SIZE)
    with rt.engine.connect() as conn:
        return render_template("approvals.html", waiting=cards(rt, conn, waiting, actor),
                               mine=cards(rt, conn, mine, actor))


@bp.post("/approvals/<int:approval_id>/<verb>")
def decide(approval_id: int, verb: str):
    """Approve, reject (with a reason) or withdraw; back to where the form was."""
    if verb not in VERBS:
        abort(404)
    rt = runtime()
    service = rt.records.approvals
    act = {"approve": service.approve, "reject": service.reject, "cancel": service.cancel}[verb]
    back = request.form.get("next") or "/app/approvals"
    try:
        act(approval_id, current_actor(), request.form.get("comment"))
    except CrmError as exc:
        if exc.status == 404:
            abort(404)
        flash(gettext("Not done: %(reason)s", reason=exc.message), "error")
        return redirect_to(back, "/app/approvals")
    flash({"approve": gettext("Approved."), "reject": gettext("Rejected."),
           "cancel": gettext("The request was withdrawn.")}[verb], "success")
    return redirect_to(back, "/app/approvals")
