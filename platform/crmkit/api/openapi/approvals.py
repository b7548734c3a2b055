"""The approvals area (crmkit.approvals): the queue, one approval and its decisions."""

from __future__ import annotations

from ...fieldtypes import MAX_ID
from .operations import _Operations
from .pieces import _data, _errors, _ok, _page, _path_id, _query, _ref


class _ApprovalPaths(_Operations):
    """The approvals' paths."""

    def _approval_paths(self) -> None:
        """crmkit.approvals: the queue, one approval and its decisions (who may decide is the service's to say)."""
        approval, approval_id = _data(_ref("Approval")), _path_id("approval_id", "approval")
        self._op("/api/v1/approvals", "get", "approvals", "Approvals you may see (their records you may read)",
                 {**_ok(_page(_ref("Approval"))), **_errors(400)},
                 parameters=[_query("mine", {"enum": ["pending", "requested"]},
                                    "pending: waiting for your decision; requested: those you asked for"),
                             _query("entity", {"enum": list(self.spec.entities)}),
                             _query("record_id", {"type": "integer", "minimum": 1, "maximum": MAX_ID}),
                             _query("status", {"enum": ["pending", "approved", "rejected", "cancelled"]}),
                             _query("limit", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}),
                             _query("cursor", {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                                    "The next page's cursor (next).")])
        self._op("/api/v1/approvals/{approval_id}", "get", "approvals", "One approval",
                 {**_ok(approval), **_errors(404)}, parameters=[approval_id])
        comment = {"type": "object", "additionalProperties": False, "properties": {
            "comment": {"type": ["string", "null"], "maxLength": 2000}}}
        # a rejection says why: a comment with more than blanks in it
        reason = {"type": "object", "additionalProperties": False, "required": ["comment"], "properties": {
            "comment": {"type": "string", "maxLength": 2000, "pattern": "\\S"}}}
        for verb, summary, errors in (
                ("approve", "Approve (an approver of the step being decided); the last approval makes the move",
                 (400, 403, 404, 409, 415, 422)),
                ("reject", "Reject with a reason (comment, required); the record stays in its state",
                 (400, 403, 404, 409, 415, 422)),
                ("cancel", "Withdraw your request", (400, 403, 404, 409, 415, 422))):
            self._op(f"/api/v1/approvals/{{approval_id}}/{verb}", "post", "approvals", summary,
                     {**_ok(approval), **_errors(*errors)}, parameters=[approval_id],
                     body=reason if verb == "reject" else comment, body_required=verb == "reject")
