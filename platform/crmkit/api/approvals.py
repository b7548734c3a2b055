"""The approval routes: an approver's queue, one approval, and its decisions
(approve, reject, withdraw). Who may decide is the approvals service's to
say (crmkit.approvals), not the route's."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Response, request

from ..errors import BadRequest
from ..fieldtypes import MAX_ID
from . import api
from .http import current_actor, json_response, parse_record_id, read_json, runtime

DEFAULT_LIMIT = 50


def _number(name: str, low: int, high: int) -> int | None:
    text = request.args.get(name)
    if text is None:
        return None
    if not (text.isascii() and text.isdigit() and len(text) <= 10) or not low <= int(text) <= high:
        raise BadRequest(f"{name} must be a whole number from {low} to {high}",
                         {name: [f"a whole number from {low} to {high}"]}, code="invalid_parameter")
    return int(text)


@api.get("/approvals")
def list_approvals() -> Response:
    """Approvals the caller may see, newest first: ``mine=pending`` (waiting
    for the caller's decision) or ``mine=requested``; ``entity`` and
    ``record_id``, ``status``; ``limit`` and ``cursor`` as in any list."""
    rt = runtime()
    entity = request.args.get("entity")
    if entity is not None and entity not in rt.spec.entities:
        raise BadRequest(f"no entity named '{entity}'", {"entity": ["unknown entity"]}, code="invalid_parameter")
    limit = _number("limit", 1, 200) or DEFAULT_LIMIT
    rows, more = rt.records.approvals.listing(
        current_actor(), mine=request.args.get("mine"), entity=entity, record_id=_number("record_id", 1, MAX_ID),
        status=request.args.get("status"), limit=limit, before=_number("cursor", 1, MAX_ID))
    next_url = None
    if more is not None:
        args = {k: v for k, v in request.args.items() if k != "cursor"}
        args["cursor"] = str(more)
        next_url = request.base_url + "?" + urlencode(args)
    return json_response({"data": rows, "next": str(more) if more is not None else None, "next_url": next_url})


@api.get("/approvals/<rid:approval_id>")
def get_approval(approval_id: str) -> Response:
    rt = runtime()
    return json_response({"data": rt.records.approvals.get(parse_record_id(approval_id), current_actor())})


def _comment() -> object:
    if not request.content_length:
        return None
    body = read_json()
    if not isinstance(body, dict):
        raise BadRequest('send a JSON object, e.g. {"comment": "within budget"}', code="invalid_body")
    unknown = set(body) - {"comment"}
    if unknown:
        raise BadRequest(f"unknown key: {', '.join(sorted(unknown))}", {k: ["unknown key"] for k in unknown},
                         code="invalid_body")
    return body.get("comment")


@api.post("/approvals/<rid:approval_id>/approve")
def approve(approval_id: str) -> Response:
    """Approve as an approver of the step being decided; the last approval makes the move."""
    rt = runtime()
    done = rt.records.approvals.approve(parse_record_id(approval_id), current_actor(), _comment())
    return json_response({"data": done})


@api.post("/approvals/<rid:approval_id>/reject")
def reject(approval_id: str) -> Response:
    """Reject with a reason (``comment``, required); the record stays in its state."""
    rt = runtime()
    done = rt.records.approvals.reject(parse_record_id(approval_id), current_actor(), _comment())
    return json_response({"data": done})


@api.post("/approvals/<rid:approval_id>/cancel")
def cancel(approval_id: str) -> Response:
    """The requester withdraws the request (撤回)."""
    rt = runtime()
    done = rt.records.approvals.cancel(parse_record_id(approval_id), current_actor(), _comment())
    return json_response({"data": done})
