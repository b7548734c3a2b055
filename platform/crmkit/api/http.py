"""What every API route shares: the caller, JSON in and out, the one error
shape, and the presenter through which every record leaves the API."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from flask import Response, current_app, g, request
from werkzeug.exceptions import HTTPException

from ..errors import BadRequest, CrmError, NotFound
from ..fieldtypes import MAX_ID
from ..metadata.spec import EntitySpec
from ..permissions import ANONYMOUS, Actor, EntityAccess
from ..query import Page, Source
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
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
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


def page_response(source: EntitySpec | Source, page: Page, fields: frozenset | None,
                  item: Callable[[dict], dict] | None = None) -> Response:
    """A page of a list: ``{"data", "next", "next_url"[, "count"]}``; next_url is this
    request's URL with the cursor of the next page. Items leave out fields
    without a value unless ``fields`` names them; masked values are masked,
    then ``item`` (if any) finishes each one."""
    rt = runtime()
    ea = rt.queries.reader(source, rt.permissions.of(current_actor()))
    only = None if fields is None else fields & ea.visible
    dump = rt.queries.row_dumper(source, page.columns, only, sparse=fields is None)
    masks = tuple((name, mask) for name, mask in ea.masked if only is None or name in only)
    data = list(map(dump, page.rows))
    for out in data if masks else ():
        for name, mask in masks:
            if out.get(name) is not None:
                out[name] = mask(out[name])
    if item is not None:
        data = list(map(item, data))
    body: dict = {"data": data, "next": page.next, "next_url": None}
    if page.next:
        args = [(k, v) for k, v in request.args.items(multi=True) if k != "cursor"] + [("cursor", page.next)]
        body["next_url"] = f"{request.path}?{urlencode(args)}"
    if page.count is not None:
        body["count"] = page.count
    return json_response(body)


def parse_record_id(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 10 or int(text) > MAX_ID:
        raise NotFound(f"no record with id '{text}'")
    return int(text)



def api_error(exc: Exception) -> Response:
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


