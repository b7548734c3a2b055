"""The messaging API: what was sent about a record, and the caller's in-app
notifications.

- ``GET /api/v1/messages?entity=E&record_id=N``: the messages about a record,
  for those who may read the record (an admin may leave both out: every message);
- ``GET /api/v1/notifications[?unread=true]``: the caller's notifications,
  newest first, with the unread count;
- ``POST /api/v1/notifications/<id>/read``: mark one read.
Lists page with ``limit`` and ``cursor`` (the ``next`` of the previous page).
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, Response, request

from ..api.http import (
    API_PREFIX,
    current_actor,
    entity_or_404,
    json_response,
    parse_record_id,
    parse_whole_number,
    refuse_nul_parameters,
    request_locale,
    runtime,
)
from ..errors import BadRequest, NotFound
from ..metadata.spec import label_text
from ..permissions import ADMIN_ROLE, Actor, mask_for
from .store import notification_json
from .templates import readable_by, variables

bp = Blueprint("crmkit_messaging_api", __name__, url_prefix=API_PREFIX)
bp.before_request(refuse_nul_parameters)
DEFAULT_LIMIT, MAX_LIMIT = 50, 200


def _page_args() -> tuple[int, int | None]:
    limit = parse_whole_number("limit", request.args["limit"], MAX_LIMIT) if "limit" in request.args \
        else DEFAULT_LIMIT
    if limit < 1:
        raise BadRequest("limit must be between 1 and 200", {"limit": ["must be between 1 and 200"]},
                         code="invalid_parameter")
    cursor = parse_whole_number("cursor", request.args["cursor"]) if request.args.get("cursor") else None
    return limit, cursor


def _page(items: list[dict], limit: int) -> dict:
    more = len(items) > limit
    items = items[:limit]
    cursor = str(items[-1]["id"]) if more and items else None
    args = {k: v for k, v in request.args.items() if k != "cursor"}
    next_url = f"{request.path}?{urlencode({**args, 'cursor': cursor})}" if cursor else None
    return {"data": items, "next": cursor, "next_url": next_url}


@bp.get("/messages")
def messages() -> Response:
    rt = runtime()
    actor = current_actor()
    limit, cursor = _page_args()
    entity_name, record_text = request.args.get("entity"), request.args.get("record_id")
    admin = actor.system or ADMIN_ROLE in rt.permissions.of(actor).roles
    if not admin and (not entity_name or not record_text):
        raise BadRequest("say which record: entity and record_id (only an admin lists every message)",
                         {"entity": ["is required"], "record_id": ["is required"]}, code="invalid_parameter")
    record_id = None
    if record_text:
        try:
            record_id = parse_record_id(record_text)
        except NotFound:
            raise BadRequest("record_id must be a record's id", {"record_id": ["must be a record's id"]},
                             code="invalid_parameter") from None
    if entity_name:
        entity = entity_or_404(entity_name)
        if not admin:
            assert record_id is not None
            with rt.engine.connect() as conn:
                if rt.queries.fetch(conn, entity, record_id, actor=actor) is None:
                    raise NotFound(f"no {entity.name} with id {record_id}")
    items = rt.messaging.store.of_record(entity_name or None, record_id, before=cursor, limit=limit + 1)
    if not admin:
        items = [_as_reader_sees(item, actor) for item in items]
    return json_response(_page(items, limit))


#: How a reader who is not an admin sees an address in the log.
ADDRESS_MASKS = {"email": "email", "sms": "phone", "wechat": "phone"}


def _as_reader_sees(item: dict, actor: Actor) -> dict:
    """A message as a reader of its record (not an admin) sees it: the address
    masked (138****0000, z***@example.com), and the subject and body only when
    they see every field the template reads (the text was rendered as the
    system, which sees everything); otherwise ``redacted``."""
    rt = runtime()
    access = rt.permissions.of(actor)
    if item["channel"] in ADDRESS_MASKS and item["recipient"]:
        item["recipient"] = mask_for(ADDRESS_MASKS[item["channel"]])(item["recipient"])
    template = rt.spec.templates.get(item["template"] or "")
    entity = rt.spec.entities.get(item["entity"] or "")
    shown = False
    if template is not None and entity is not None:
        texts = [label_text(text, lang) for text in (template.subject, template.body) if text
                 for lang in rt.spec.locales]
        shown = all(readable_by(rt.spec, entity, v.path, lambda name: access.entity(name).readable)
                    for text in texts for v in variables(text))
    elif item["channel"] == "webhook":
        shown = True  # no text: the method and the address
    if not shown:
        item["subject"] = item["body"] = None
        item["redacted"] = True
    return item


@bp.get("/notifications")
def notifications() -> Response:
    rt = runtime()
    actor = current_actor()
    limit, cursor = _page_args()
    unread = request.args.get("unread", "false").lower()
    if unread not in ("true", "false", "1", "0"):
        raise BadRequest("unread must be true or false", {"unread": ["must be true or false"]},
                         code="invalid_parameter")
    language = request_locale()
    if actor.id is None:
        return json_response({"data": [], "next": None, "next_url": None, "unread": 0})
    store = rt.messaging.store
    rows = store.notifications_of(actor.id, unread=unread in ("true", "1"), before=cursor, limit=limit + 1)
    body = _page([notification_json(row, language) for row in rows], limit)
    body["unread"] = store.unread_count(actor.id)
    return json_response(body)


@bp.post("/notifications/<notification_id>/read")
def read_notification(notification_id: str) -> Response:
    rt = runtime()
    actor = current_actor()
    number = parse_record_id(notification_id)
    row = rt.messaging.store.mark_read(actor.id, number) if actor.id is not None else None
    if row is None:
        raise NotFound(f"no notification {number} of yours")
    return json_response({"data": notification_json(row, request_locale())})
