"""The generated REST API under /api/v1/ (contract in DESIGN.md).

Handlers are thin: they parse the request, call the query builder (reads) or
the records service (writes), and dump JSON. Every error is one JSON shape.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Callable, Mapping
from urllib.parse import urlencode

import sqlalchemy as sa

from flask import Blueprint, Flask, Response, current_app, g, render_template, request
from werkzeug.exceptions import HTTPException

from .. import regions as region_data
from ..errors import BadRequest, CrmError, Forbidden, NotFound
from ..fieldtypes import MAX_ID
from ..metadata.spec import EntitySpec
from ..permissions import EntityAccess, scope_params
from ..records import ANONYMOUS, MAX_BULK, Actor
from ..runtime import Runtime

API_PREFIX = "/api/v1"


def runtime() -> Runtime:
    return current_app.extensions["crmkit"]


def current_actor() -> Actor:
    """Who is calling: set by the authentication of every request (auth.py)."""
    return g.get("crmkit_actor", ANONYMOUS)


def entity_access(entity: EntitySpec, action: str | None = "read") -> EntityAccess:
    """The caller's access to an entity; with an action, a 403 unless some scope allows it."""
    actor = current_actor()
    ea = runtime().permissions.of(actor).entity(entity.name)
    if action is not None and not ea.allows(action):
        raise runtime().records.refuse(actor, entity, action)
    return ea


def presenter(entity: EntitySpec, fields: frozenset | None = None) -> Callable[[Mapping], dict]:
    """row -> JSON for the caller: the one way a record leaves the API. Fields
    hidden from them are left out, masked ones masked."""
    ea = runtime().permissions.of(current_actor()).entity(entity.name)
    only = ea.visible if fields is None else fields & ea.visible
    dump = runtime().schemas[entity.name].dumper(None if len(only) == len(entity.fields) else only)
    masks = tuple((name, mask) for name, mask in ea.masked if name in only)
    if not masks:
        return dump

    def present(row: Mapping) -> dict:
        out = dump(row)
        for name, mask in masks:
            if out[name] is not None:
                out[name] = mask(out[name])
        return out

    return present


def json_response(body: Any, status: int = 200, headers: dict | None = None) -> Response:
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate a client sent, echoed in an error: escape it
        data = json.dumps(body, separators=(",", ":"), default=str).encode("ascii")
    return Response(data, status=status, mimetype="application/json", headers=headers)


def error_response(error: CrmError) -> Response:
    return json_response(error.body(), error.status)


def read_json() -> Any:
    content_type = request.mimetype or ""
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise CrmError("send the body as JSON with Content-Type: application/json",
                       code="unsupported_media_type", status=415)
    raw = request.get_data(cache=False)
    try:
        return json.loads(raw, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        where = f" at line {exc.lineno} column {exc.colno}" if hasattr(exc, "lineno") else ""
        raise BadRequest(f"the body is not valid JSON{where}", code="invalid_json") from None
    except RecursionError:
        raise BadRequest("the body is not valid JSON: nested too deeply", code="invalid_json") from None


def read_object(example: str = "a JSON object") -> dict:
    """The body, which must be a JSON object (a 400 that shows ``example`` otherwise)."""
    body = read_json()
    if not isinstance(body, dict):
        raise BadRequest(f"send {example}", code="invalid_body")
    return body


def entity_or_404(name: str) -> EntitySpec:
    entity = runtime().spec.entities.get(name)
    if entity is None:
        raise NotFound(f"no entity named '{name}'", code="unknown_entity")
    return entity


def expected_version(body: Any) -> int | None:
    header = request.headers.get("If-Match")
    if header:
        text = header.strip().removeprefix("W/").strip('"')
        if not text.isdigit():
            raise BadRequest("If-Match must be the record's version, e.g. \"3\"", code="invalid_header")
        return int(text)
    if isinstance(body, dict) and "version" in body:
        version = body["version"]
        if isinstance(version, bool) or not isinstance(version, int):
            raise BadRequest("version must be an integer", {"version": ["must be an integer"]},
                             code="invalid_version")
        return version
    return None


def record_response(entity: EntitySpec, row, status: int = 200, fields: frozenset | None = None) -> Response:
    body = {"data": presenter(entity, fields)(row)}
    headers = {"ETag": f'"{row["version"]}"'}
    if status == 201:
        headers["Location"] = f"{API_PREFIX}/{entity.name}/{row['id']}"
    return json_response(body, status, headers)


def page_response(entity: EntitySpec, rows, next_cursor: str | None, total: int | None,
                  fields: frozenset | None) -> Response:
    """A page of a list: ``{"data", "next", "next_url"[, "count"]}``; next_url is this
    request's URL with the cursor of the next page."""
    present = presenter(entity, fields)
    body: dict = {"data": [present(row) for row in rows], "next": next_cursor, "next_url": None}
    if next_cursor:
        args = [(k, v) for k, v in request.args.items(multi=True) if k != "cursor"] + [("cursor", next_cursor)]
        body["next_url"] = f"{request.path}?{urlencode(args)}"
    if total is not None:
        body["count"] = total
    return json_response(body)


api = Blueprint("crmkit_api", __name__, url_prefix=API_PREFIX)


@api.get("/<entity_name>")
def list_records(entity_name: str):
    rt = runtime()
    entity = entity_or_404(entity_name)
    entity_access(entity, "read")
    actor = current_actor()
    list_request = rt.queries.parse_list(entity, request.args.items(multi=True), rt.permissions.of(actor))
    with rt.engine.connect() as conn:
        rows, next_cursor, total = rt.queries.page(conn, entity, list_request, actor=actor)
    return page_response(entity, rows, next_cursor, total, list_request.fields)


@api.post("/<entity_name>")
def create_record(entity_name: str):
    rt = runtime()
    entity = entity_or_404(entity_name)
    row = rt.records.create(entity.name, read_json(), current_actor())
    return record_response(entity, row, 201)


MAX_EXPORT = 200_000
#: Spreadsheet programs run cells that start with these as formulas.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@api.get("/<entity_name>/_export")
def export_records(entity_name: str):
    """The records of a list request (filters, q, sort, fields) as CSV, within the
    caller's export scope, hidden fields left out and masked ones masked. The
    export is written to the audit trail."""
    import csv
    import io

    from flask import stream_with_context

    rt = runtime()
    entity = entity_or_404(entity_name)
    entity_access(entity, "export")
    actor = current_actor()
    args = [(k, v) for k, v in request.args.items(multi=True) if k not in ("limit", "cursor", "count", "format")]
    if request.args.get("format", "csv") != "csv":
        raise BadRequest("format must be csv", {"format": ["only csv is offered"]}, code="invalid_parameter")
    list_request = rt.queries.parse_list(entity, args, rt.permissions.of(actor))
    present = presenter(entity, list_request.fields)
    names = [n for n in entity.fields if n in (list_request.fields or rt.permissions.of(actor).entity(entity.name).visible)]
    query = rt.queries.export_select(entity, list_request, actor, MAX_EXPORT)
    params = scope_params(actor)

    def cell(value: Any) -> Any:
        if isinstance(value, list):
            value = ";".join(str(v) for v in value)
        elif isinstance(value, dict):
            value = json.dumps(value, ensure_ascii=False)
        if isinstance(value, str) and value.startswith(FORMULA_STARTS):
            value = "'" + value
        return value

    def generate():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        buffer.write("\ufeff")  # Excel reads UTF-8 (Chinese) only with the BOM
        writer.writerow(names)
        count = 0
        with rt.engine.connect() as conn:
            result = conn.execution_options(yield_per=2000).execute(query, params).mappings()
            for row in result:
                item = present(row)
                writer.writerow([cell(item.get(n)) for n in names])
                count += 1
                if buffer.tell() > 65536:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
        yield buffer.getvalue()
        rt.directory.audit_export(actor, entity.name, count, args)

    filename = f"{entity.name}.csv"
    return Response(stream_with_context(generate()), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@api.get("/<entity_name>/<record_id>/collaborators")
def list_collaborators(entity_name: str, record_id: str):
    rt = runtime()
    entity = entity_or_404(entity_name)
    rows = rt.records.collaborators(entity.name, _record_id(record_id), current_actor())
    return json_response({"data": [{"user_id": r["user_id"], "username": r["username"],
                                    "display_name": r["display_name"], "access": r["access"],
                                    "created_at": r["created_at"].isoformat().replace("+00:00", "Z"),
                                    "created_by": r["created_by"]} for r in rows]})


@api.post("/<entity_name>/<record_id>/collaborators")
def add_collaborator(entity_name: str, record_id: str):
    """``{"user_id": 5, "access": "read" | "write"}``"""
    rt = runtime()
    entity = entity_or_404(entity_name)
    body = read_object('{"user_id": ..., "access": "read"}')
    rid = _record_id(record_id)
    rt.records.share(entity.name, rid, body.get("user_id"), body.get("access", "read"), current_actor())
    return list_collaborators(entity_name, record_id)


@api.delete("/<entity_name>/<record_id>/collaborators/<user_id>")
def remove_collaborator(entity_name: str, record_id: str, user_id: str):
    rt = runtime()
    entity = entity_or_404(entity_name)
    rt.records.unshare(entity.name, _record_id(record_id), _record_id(user_id), current_actor())
    return Response(status=204)


@api.post("/<entity_name>/_bulk")
def bulk_create(entity_name: str):
    rt = runtime()
    entity = entity_or_404(entity_name)
    body = read_json()
    items = body.get("data") if isinstance(body, dict) else body
    if not isinstance(items, list) or not items:
        raise BadRequest("send a JSON list of records (or {\"data\": [...]})", code="invalid_body")
    if len(items) > MAX_BULK:
        raise BadRequest(f"at most {MAX_BULK} records per bulk request", code="too_many_records")
    rows = rt.records.create_many(entity.name, items, current_actor(), action="import")
    present = presenter(entity)
    return json_response({"data": [present(row) for row in rows]}, 201)


def _record_id(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 10 or int(text) > MAX_ID:
        raise NotFound(f"no record with id '{text}'")
    return int(text)


@api.get("/<entity_name>/<record_id>")
def get_record(entity_name: str, record_id: str):
    rt = runtime()
    entity = entity_or_404(entity_name)
    ea = entity_access(entity, None)
    fields = rt.queries.fields_param(entity, request.args["fields"], ea) if "fields" in request.args else None
    unknown = set(request.args) - {"fields"}
    if unknown:
        raise BadRequest(f"unknown parameter '{sorted(unknown)[0]}'", code="invalid_parameter")
    with rt.engine.connect() as conn:
        row = rt.queries.fetch(conn, entity, _record_id(record_id), actor=current_actor())
    if row is None:
        raise NotFound(f"{entity.name} {record_id} not found")
    return record_response(entity, row, fields=fields)


@api.patch("/<entity_name>/<record_id>")
def update_record(entity_name: str, record_id: str):
    rt = runtime()
    entity = entity_or_404(entity_name)
    body = read_json()
    version = expected_version(body)
    row = rt.records.update(entity.name, _record_id(record_id), body, current_actor(), version=version)
    return record_response(entity, row)


@api.delete("/<entity_name>/<record_id>")
def delete_record(entity_name: str, record_id: str):
    rt = runtime()
    entity = entity_or_404(entity_name)
    rt.records.delete(entity.name, _record_id(record_id), current_actor(), version=expected_version(None))
    return Response(status=204)


@api.get("/<entity_name>/<record_id>/transitions")
def list_transitions(entity_name: str, record_id: str):
    """The moves from the record's current state, each with whether the caller may make it now."""
    rt = runtime()
    entity = entity_or_404(entity_name)
    moves = rt.records.transitions(entity.name, _record_id(record_id), current_actor())
    return json_response({"data": moves})


@api.post("/<entity_name>/<record_id>/transitions/<name>")
def make_transition(entity_name: str, record_id: str, name: str):
    """Move the record; the body may fill in fields the move requires."""
    rt = runtime()
    entity = entity_or_404(entity_name)
    body = read_json() if request.content_length else {}
    row = rt.records.transition(entity.name, _record_id(record_id), name, body, current_actor(),
                                version=expected_version(body))
    return record_response(entity, row)


@api.get("/<entity_name>/<record_id>/history")
def record_history(entity_name: str, record_id: str):
    rt = runtime()
    entity = entity_or_404(entity_name)
    rid = _record_id(record_id)
    audit = rt.tables.audit
    ea = entity_access(entity, None)
    with rt.engine.connect() as conn:
        if rt.queries.fetch(conn, entity, rid, actor=current_actor()) is None:
            raise NotFound(f"{entity.name} {record_id} not found")
        rows = conn.execute(sa.select(audit).where(audit.c.entity == entity.name, audit.c.record_id == rid,
                                                   audit.c.action != "denied")
                            .order_by(audit.c.id.desc()).limit(200)).mappings().all()
    data = [{"action": r["action"], "actor": r["actor"], "actor_id": r["actor_id"],
             "at": r["at"].isoformat().replace("+00:00", "Z"), "changes": _visible_changes(entity, ea, r["changes"])}
            for r in rows]
    return json_response({"data": data})


def _visible_changes(entity: EntitySpec, ea: EntityAccess, changes: Any) -> Any:
    """An audit entry as the caller may see it: hidden fields left out, masked values masked."""
    if not isinstance(changes, dict):
        return changes
    masks = dict(ea.masked)
    out = {}
    for name, change in changes.items():
        if name in entity.fields and name not in ea.visible:
            continue
        if name in masks and isinstance(change, list):
            change = [None if v is None else masks[name](v) for v in change]
        out[name] = change
    return out


@api.get("/<entity_name>/<record_id>/<relation>")
def related_records(entity_name: str, record_id: str, relation: str):
    rt = runtime()
    entity = entity_or_404(entity_name)
    rel = entity.relations.get(relation)
    if rel is None:
        raise NotFound(f"{entity.name} has no relation '{relation}'", code="unknown_relation")
    rid = _record_id(record_id)
    other = rt.spec.entities[rel.entity]
    actor = current_actor()
    with rt.engine.connect() as conn:
        if rt.queries.fetch(conn, entity, rid, actor=actor) is None:
            raise NotFound(f"{entity.name} {record_id} not found")
        entity_access(other, "read")
        list_request = rt.queries.parse_list(other, request.args.items(multi=True), rt.permissions.of(actor))
        table = rt.tables.entities[other.name]
        if rel.kind == "one_to_many":
            via = other.fields[rel.field or entity.name]
            condition = table.c[via.column] == rid
        else:
            link = rt.tables.links[(entity.name, rel.name)]
            left, right = list(link.c)[0], list(link.c)[1]
            condition = table.c.id.in_(sa.select(right).where(left == rid))
        rows, next_cursor, total = rt.queries.page(conn, other, list_request, actor=actor, extra=[condition])
    return page_response(other, rows, next_cursor, total, list_request.fields)


@api.post("/<entity_name>/<record_id>/<relation>")
def link_records(entity_name: str, record_id: str, relation: str):
    rt = runtime()
    entity = entity_or_404(entity_name)
    body = read_json()
    ids = body.get("ids") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise BadRequest("send {\"ids\": [1, 2, ...]}", {"ids": ["must be a list of record ids"]}, code="invalid_body")
    linked = rt.records.link(entity.name, _record_id(record_id), relation, ids, current_actor())
    return json_response({"data": {"ids": linked}})


@api.delete("/<entity_name>/<record_id>/<relation>/<other_id>")
def unlink_record(entity_name: str, record_id: str, relation: str, other_id: str):
    rt = runtime()
    entity = entity_or_404(entity_name)
    rt.records.unlink(entity.name, _record_id(record_id), relation, _record_id(other_id), current_actor())
    return Response(status=204)


@api.get("/recycle_bin")
def recycle_bin():
    rt = runtime()
    name = request.args.get("entity")
    if not name:
        raise BadRequest("name the entity: /api/v1/recycle_bin?entity=customer", code="invalid_parameter")
    entity = entity_or_404(name)
    entity_access(entity, "delete")
    table = rt.tables.entities[entity.name]
    actor = current_actor()
    query = sa.select(table).where(table.c.deleted_at.is_not(None))
    scope = rt.queries.scope(entity.name, actor, "delete")  # what the caller could delete, they may restore
    if scope is not None:
        query = query.where(scope)
    with rt.engine.connect() as conn:
        rows = conn.execute(query.order_by(table.c.deleted_at.desc()).limit(200), scope_params(actor)).mappings().all()
    present = presenter(entity)
    data = []
    for row in rows:
        item = present(row)
        item["deleted_at"] = row["deleted_at"].isoformat().replace("+00:00", "Z")
        item["deleted_by"] = row["deleted_by"]
        data.append(item)
    return json_response({"data": data})


@api.post("/recycle_bin/<entity_name>/<record_id>/restore")
def restore_record(entity_name: str, record_id: str):
    rt = runtime()
    entity = entity_or_404(entity_name)
    row = rt.records.restore(entity.name, _record_id(record_id), current_actor())
    return record_response(entity, row)


@api.get("/regions")
def list_regions():
    parent = request.args.get("parent") or None
    if parent is not None and region_data.get(parent) is None:
        raise NotFound(f"no region with code '{parent}'", code="unknown_region")
    data = [{"code": r.code, "name": r.name, "level": r.level} for r in region_data.children(parent)]
    return json_response({"data": data})


@api.get("/openapi.json")
def openapi_document():
    from .openapi import document

    rt = runtime()
    return json_response(document(rt, rt.permissions.of(current_actor())))


@api.get("/docs")
def api_docs():
    from .openapi import document

    rt = runtime()
    access = rt.permissions.of(current_actor())
    return render_template("api_docs.html", spec=rt.spec, doc=document(rt, access), types=rt.field_types,
                           access=access)


def _api_error(exc: Exception) -> Response:
    if isinstance(exc, CrmError):
        return error_response(exc)
    if isinstance(exc, HTTPException):
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large",
                415: "unsupported_media_type"}.get(exc.code or 500, "http_error")
        message = {404: "no such URL in the API; see /api/v1/docs",
                   405: f"method {request.method} is not allowed here",
                   413: "the request body is too large"}.get(exc.code or 500, exc.description or "")
        return json_response({"error": {"code": code, "message": message}}, exc.code or 500)
    current_app.logger.exception("unexpected error in %s %s", request.method, request.path)
    return json_response({"error": {"code": "internal_error",
                                    "message": "an unexpected error occurred; it has been logged"}}, 500)


def init_app(app: Flask) -> None:
    from . import people  # noqa: F401 - its routes join the blueprint

    app.register_blueprint(api)

    @app.errorhandler(CrmError)
    def crm_error(exc: CrmError):
        if isinstance(exc, Forbidden) and exc.denial:
            runtime().directory.audit_denial(exc.denial)
        response = error_response(exc)
        if exc.status == 429 and isinstance(exc.details, dict):
            response.headers["Retry-After"] = str(exc.details.get("retry_after", 60))
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if request.path.startswith(API_PREFIX) or request.path == "/healthz":
            return _api_error(exc)
        return exc

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        return _api_error(exc)

    @app.get("/healthz")
    def healthz():
        rt = runtime()
        try:
            with rt.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except Exception:
            return json_response({"status": "error", "database": "unreachable"}, 503)
        return json_response({"status": "ok", "app": rt.spec.name})

