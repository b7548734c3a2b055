"""The record routes: list, create, get, update, delete, export, bulk, history,
related records, many-to-many links, collaborators, transitions, the recycle bin.

Handlers are thin: they parse the request, call the query builder (reads) or
the records service (writes), and dump JSON.
"""

from __future__ import annotations

from flask import Response, request, stream_with_context

from ..approvals import ApprovalPending
from ..errors import BadRequest, NotFound, ValidationFailed
from ..fieldtypes import MAX_ID
from ..permissions import audit_changes
from ..records import MAX_BULK
from . import api, exports
from .http import (
    current_actor,
    entity_access,
    entity_or_404,
    expected_version,
    json_response,
    page_response,
    parse_record_id,
    presenter,
    read_json,
    read_object,
    record_response,
    request_locale,
    runtime,
)
from .tags import with_tags


@api.get("/<entity:entity_name>")
def list_records(entity_name: str):
    rt = runtime()
    entity = entity_or_404(entity_name)
    entity_access(entity, "read")
    actor = current_actor()
    list_request = rt.queries.parse_list(entity, request.args.items(multi=True), rt.permissions.of(actor))
    with rt.engine.connect() as conn:
        page = rt.queries.page(conn, entity, list_request, actor=actor)
    tagged = None if list_request.fields is not None else with_tags(entity, [row[page.columns.index("id")]
                                                                              for row in page.rows])
    return page_response(entity, page, list_request.fields, tagged)


@api.post("/<entity:entity_name>")
def create_record(entity_name: str):
    rt = runtime()
    entity = entity_or_404(entity_name)
    row = rt.records.create(entity.name, read_json(), current_actor())
    return record_response(entity, row, 201)


EXPORT_FORMATS = ("csv", "xlsx")
XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@api.get("/<entity:entity_name>/_export")
def export_records(entity_name: str):
    """The records of a list request (filters, q, sort, fields) as CSV or XLSX
    (``format``) for people, within the caller's export scope: headers and
    values as labels in the request's language (``lang``, else
    Accept-Language, else the app's first), references as their records'
    titles where the caller may read them, hidden fields left out and masked
    ones masked; in XLSX money, numbers, dates and moments are typed cells a
    spreadsheet can sum and sort. Written to the audit trail."""
    rt = runtime()
    entity = entity_or_404(entity_name)
    entity_access(entity, "export")
    actor = current_actor()
    kind = request.args.get("format", "csv")
    if kind not in EXPORT_FORMATS:
        raise BadRequest("format must be csv or xlsx", {"format": ["one of csv, xlsx"]}, code="invalid_parameter")
    language = request_locale()
    args = [(k, v) for k, v in request.args.items(multi=True) if k not in ("format", "lang")]
    unpaged = [key for key, _ in args if key in ("limit", "cursor", "count")]
    if unpaged:
        raise BadRequest(f"an export has no pages: leave out {unpaged[0]}", {unpaged[0]: ["not a parameter here"]},
                         code="invalid_parameter")
    access = rt.permissions.of(actor)
    list_request = rt.queries.parse_list(entity, args, access)
    sheet = exports.Sheet(rt, entity, actor, list_request, language, args, order=_field_order(args))
    headers = {"Content-Disposition": f'attachment; filename="{entity.name}.{kind}"', "Content-Language": language}
    if kind == "xlsx":
        return Response(sheet.xlsx(), mimetype=XLSX_MIMETYPE, headers=headers)
    return Response(stream_with_context(sheet.csv()), mimetype="text/csv", headers=headers)


def _field_order(args: list[tuple[str, str]]) -> tuple[str, ...]:
    """The fields in the order ``fields`` names them (the screen's columns)."""
    named = [v for k, v in args if k == "fields"]
    return tuple(n.strip() for n in ",".join(named).split(",") if n.strip())


@api.get("/<entity:entity_name>/<rid:record_id>/collaborators")
def list_collaborators(entity_name: str, record_id: str):
    rt = runtime()
    entity = entity_or_404(entity_name)
    rows = rt.records.sharing.collaborators(entity.name, parse_record_id(record_id), current_actor())
    return json_response({"data": [{"user_id": r["user_id"], "username": r["username"],
                                    "display_name": r["display_name"], "access": r["access"],
                                    "created_at": r["created_at"].isoformat().replace("+00:00", "Z"),
                                    "created_by": r["created_by"]} for r in rows]})


@api.post("/<entity:entity_name>/<rid:record_id>/collaborators")
def add_collaborator(entity_name: str, record_id: str):
    """``{"user_id": 5, "access": "read" | "write"}``"""
    rt = runtime()
    entity = entity_or_404(entity_name)
    body = read_object('{"user_id": ..., "access": "read"}')
    _only(body, {"user_id", "access"})
    rid = parse_record_id(record_id)
    rt.records.sharing.share(entity.name, rid, body.get("user_id"), body.get("access", "read"), current_actor())
    return list_collaborators(entity_name, record_id)


@api.delete("/<entity:entity_name>/<rid:record_id>/collaborators/<rid:user_id>")
def remove_collaborator(entity_name: str, record_id: str, user_id: str):
    rt = runtime()
    entity = entity_or_404(entity_name)
    rt.records.sharing.unshare(entity.name, parse_record_id(record_id), parse_record_id(user_id), current_actor())
    return Response(status=204)


@api.post("/<entity:entity_name>/_bulk")
def bulk_create(entity_name: str):
    rt = runtime()
    entity = entity_or_404(entity_name)
    body = read_json()
    items = body.get("data") if isinstance(body, dict) and set(body) == {"data"} else body
    if not isinstance(items, list) or not items:
        raise BadRequest("send a JSON list of records (or {\"data\": [...]})", code="invalid_body")
    if len(items) > MAX_BULK:
        raise BadRequest(f"at most {MAX_BULK} records per bulk request", code="too_many_records")
    rows = rt.records.create_many(entity.name, items, current_actor(), action="import")
    present = presenter(entity)
    return json_response({"data": [present(row) for row in rows]}, 201)


@api.get("/<entity:entity_name>/<rid:record_id>")
def get_record(entity_name: str, record_id: str):
    rt = runtime()
    entity = entity_or_404(entity_name)
    ea = entity_access(entity, None)
    fields = rt.queries.fields_param(entity, request.args["fields"], ea) if "fields" in request.args else None
    unknown = set(request.args) - {"fields"}
    if unknown:
        raise BadRequest(f"unknown parameter '{sorted(unknown)[0]}'", code="invalid_parameter")
    with rt.engine.connect() as conn:
        row = rt.queries.read_one(conn, entity, parse_record_id(record_id), actor=current_actor(), fields=fields)
    if row is None:
        raise NotFound(f"{entity.name} {record_id} not found")
    return record_response(entity, row, fields=fields)


@api.patch("/<entity:entity_name>/<rid:record_id>")
def update_record(entity_name: str, record_id: str):
    rt = runtime()
    entity = entity_or_404(entity_name)
    rid = parse_record_id(record_id)
    body = read_json()
    version = expected_version(body, required=True)
    if isinstance(body, dict) and "If-Match" in request.headers:  # the header wins over the body's version
        body = {k: v for k, v in body.items() if k != "version"}
    row = rt.records.update(entity.name, rid, body, current_actor(), version=version)
    return record_response(entity, row)


@api.delete("/<entity:entity_name>/<rid:record_id>")
def delete_record(entity_name: str, record_id: str):
    rt = runtime()
    entity = entity_or_404(entity_name)
    rt.records.delete(entity.name, parse_record_id(record_id), current_actor(), version=expected_version(None))
    return Response(status=204)


@api.get("/<entity:entity_name>/<rid:record_id>/transitions")
def list_transitions(entity_name: str, record_id: str):
    """The moves from the record's current state, each with whether the caller may make it now."""
    rt = runtime()
    entity = entity_or_404(entity_name)
    moves = rt.records.transitions(entity.name, parse_record_id(record_id), current_actor())
    return json_response({"data": moves})


@api.post("/<entity:entity_name>/<rid:record_id>/transitions/<name>")
def make_transition(entity_name: str, record_id: str, name: str):
    """Move the record; the body may fill in fields the move requires. A
    move that needs approval answers 202 with the pending approval."""
    rt = runtime()
    entity = entity_or_404(entity_name)
    body = read_json() if request.content_length else {}
    row = rt.records.transition(entity.name, parse_record_id(record_id), name, body, current_actor(),
                                version=expected_version(body))
    if isinstance(row, ApprovalPending):  # the move waits for approval (crmkit.approvals)
        return json_response({"data": row.approval}, 202,
                             {"Location": f"{request.script_root}/api/v1/approvals/{row.approval['id']}"})
    return record_response(entity, row)


@api.get("/<entity:entity_name>/<rid:record_id>/history")
def record_history(entity_name: str, record_id: str):
    """The record's audit entries, newest first, as a list (limit, cursor,
    sort, filters such as action=update, count); the values in them as the
    caller may see them."""
    rt = runtime()
    entity = entity_or_404(entity_name)
    rid = parse_record_id(record_id)
    actor = current_actor()
    access = rt.permissions.of(actor)
    list_request = rt.queries.parse_list(rt.queries.history, request.args.items(multi=True), access)
    with rt.engine.connect() as conn:
        page = rt.queries.history_page(conn, entity, rid, list_request, actor=actor)

    tags = rt.queries.tag_catalog.visible(access, entity.name)

    def visible(entry: dict) -> dict:
        if "changes" in entry:
            entry["changes"] = audit_changes(access, entity, entry["changes"], record_read=True)
            if entry.get("action", "").startswith("tag_") and (entry["changes"] or {}).get("tag") not in tags:
                entry["changes"] = None  # a tag whose rule reads what the caller may not see
        return entry

    return page_response(rt.queries.history, page, list_request.fields, visible)


@api.get("/<entity:entity_name>/<rid:record_id>/<relation:relation>")
def related_records(entity_name: str, record_id: str, relation: str):
    """The records related to this one, as a list of the other entity."""
    rt = runtime()
    entity = entity_or_404(entity_name)
    rel = rt.queries.relation(entity, relation)
    rid = parse_record_id(record_id)
    other = rt.spec.entities[rel.entity]
    actor = current_actor()
    entity_access(other, "read")
    list_request = rt.queries.parse_list(other, request.args.items(multi=True), rt.permissions.of(actor))
    with rt.engine.connect() as conn:
        page = rt.queries.related_page(conn, entity, rid, rel, list_request, actor=actor)
    return page_response(other, page, list_request.fields)


@api.post("/<entity:entity_name>/<rid:record_id>/<relation:relation>")
def link_records(entity_name: str, record_id: str, relation: str):
    rt = runtime()
    entity = entity_or_404(entity_name)
    body = read_json()
    if isinstance(body, dict):
        _only(body, {"ids"})
    ids = body.get("ids") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise BadRequest("send {\"ids\": [1, 2, ...]}", {"ids": ["must be a list of record ids"]}, code="invalid_body")
    if not all(0 < i <= MAX_ID for i in ids):  # cannot be the id of anything (and is not echoed whole)
        raise ValidationFailed(f"ids are whole numbers from 1 to {MAX_ID}", {"ids": [f"must be from 1 to {MAX_ID}"]})
    linked = rt.records.link(entity.name, parse_record_id(record_id), relation, ids, current_actor())
    return json_response({"data": {"ids": linked}})


@api.delete("/<entity:entity_name>/<rid:record_id>/<relation:relation>/<rid:other_id>")
def unlink_record(entity_name: str, record_id: str, relation: str, other_id: str):
    rt = runtime()
    entity = entity_or_404(entity_name)
    rt.records.unlink(entity.name, parse_record_id(record_id), relation, parse_record_id(other_id), current_actor())
    return Response(status=204)


def _only(body: dict, keys: set[str]) -> None:
    """A small body with these keys only (a misspelt one is not ignored)."""
    unknown = sorted(set(body) - keys)
    if unknown:
        raise ValidationFailed(f"unknown field '{unknown[0][:40]}'", {k[:40]: ["unknown field"] for k in unknown})


@api.get("/recycle_bin")
def recycle_bin():
    """Records in an entity's recycle bin (``entity=NAME``), newest deletion
    first, as a list (limit, cursor, sort, filters, count): those the caller
    could delete, which they may restore."""
    rt = runtime()
    name = request.args.get("entity")
    if not name:
        raise BadRequest("name the entity: /api/v1/recycle_bin?entity=customer", code="invalid_parameter")
    entity = entity_or_404(name)
    entity_access(entity, "delete")
    actor = current_actor()
    source = rt.queries.binned[entity.name]
    args = [(k, v) for k, v in request.args.items(multi=True) if k != "entity"]
    list_request = rt.queries.parse_list(source, args, rt.permissions.of(actor))
    with rt.engine.connect() as conn:
        page = rt.queries.deleted_page(conn, entity, list_request, actor=actor)
    return page_response(source, page, list_request.fields)


@api.post("/recycle_bin/<entity:entity_name>/<rid:record_id>/restore")
def restore_record(entity_name: str, record_id: str):
    rt = runtime()
    entity = entity_or_404(entity_name)
    row = rt.records.restore(entity.name, parse_record_id(record_id), current_actor())
    return record_response(entity, row)


