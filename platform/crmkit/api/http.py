"""What every API route shares: the caller, JSON in and out, the one error
shape, and the presenter through which every record leaves the API."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from flask import Flask, Response, current_app, g, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from ..errors import BadRequest, CrmError, NotFound
from ..fieldtypes import MAX_ID, FieldValueError, whole_number
from ..metadata.spec import EntitySpec
from ..permissions import ANONYMOUS, Actor, EntityAccess
from ..query import Page, Source
from ..runtime import Runtime
from ..ui.display import choose_locale

API_PREFIX = "/api/v1"


def runtime() -> Runtime:
    return current_app.extensions["crmkit"]


def runtime_of(app: Flask) -> Runtime:
    return app.extensions["crmkit"]


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
        return json.loads(raw, parse_float=_json_decimal, parse_int=_json_int)
    except NumberTooLarge as exc:
        raise BadRequest(f"the body holds a number no field can take: {exc}", code="number_out_of_range") from None
    except (ValueError, UnicodeDecodeError) as exc:
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise BadRequest(f"the body is not valid JSON{where}", code="invalid_json") from None
    except RecursionError:
        raise BadRequest("the body is not valid JSON: nested too deeply", code="invalid_json") from None


#: Bounds of a number in a JSON body, checked on its text before anything
#: converts it: no field holds more digits (a JSON field's numbers are
#: floats or 64-bit integers), and Decimal arithmetic on an exponent in the
#: millions or int() of one in the billions can hold a worker for minutes.
MAX_NUMBER_DIGITS = 1000
MAX_EXPONENT = 1000


class NumberTooLarge(ValueError):
    pass


def _json_int(text: str) -> int:
    if len(text) > MAX_NUMBER_DIGITS:
        raise NumberTooLarge(f"an integer of {len(text)} digits (at most {MAX_NUMBER_DIGITS})")
    return int(text)


def _json_decimal(text: str) -> Decimal:
    mantissa, _, exponent = text.lower().partition("e")
    if len(mantissa) > MAX_NUMBER_DIGITS + 2:
        raise NumberTooLarge(f"a number of {len(mantissa)} digits (at most {MAX_NUMBER_DIGITS})")
    if exponent and (len(exponent.lstrip("+-").lstrip("0")) > 4 or abs(int(exponent)) > MAX_EXPONENT):
        raise NumberTooLarge(f"the exponent of {text[:20]}{'…' if len(text) > 20 else ''} is beyond "
                             f"±{MAX_EXPONENT}")
    return Decimal(text)


def read_object(example: str = "a JSON object") -> dict:
    """The body, which must be a JSON object (a 400 that shows ``example`` otherwise)."""
    body = read_json()
    if not isinstance(body, dict):
        raise BadRequest(f"send {example}", code="invalid_body")
    return body


def request_locale() -> str:
    """The language of a response for people: ``?lang=``, else the best of
    Accept-Language the app offers, else the app's first locale."""
    locales = runtime().spec.locales
    asked = request.args.get("lang")
    locale = choose_locale(asked, [language for language, _ in request.accept_languages], locales)
    if locale is None:
        raise BadRequest(f"lang must be one of: {', '.join(locales)}", {"lang": [f"one of {', '.join(locales)}"]},
                         code="invalid_parameter")
    return locale


def entity_or_404(name: str) -> EntitySpec:
    entity = runtime().spec.entities.get(name)
    if entity is None:
        raise NotFound(f"no entity named '{name}'", code="unknown_entity")
    return entity


#: If-Match as the API reads it: ``*`` (whatever is current) or one entity tag,
#: the record's version in quotes (weak tags too: a proxy may weaken ETags; bare
#: digits too, as clients often send them). A version that is not the record's is stale.
IF_MATCH = re.compile(r'^(\*|(W/)?"[0-9]{1,10}"|[0-9]{1,10})$')
def expected_version(body: Any, *, required: bool = False) -> int | None:
    """The version the request says it changes: ``If-Match`` (which wins) or
    ``version`` in the body; None for ``If-Match: *`` (whatever is current) or
    for neither. With ``required`` (PATCH), neither is a 428: a write must say
    what it overwrites (RFC 6585), and ``*`` is how to say "anything"."""
    header = request.headers.get("If-Match")
    if header is not None:
        text = header.strip()
        if not IF_MATCH.match(text):
            raise BadRequest('If-Match must be the record\'s version in quotes, e.g. "3", or * to change '
                             "whatever version is current", {"If-Match": ["must be \"N\" or *"]},
                             code="invalid_header")
        if text == "*":
            return None
        return int(text.removeprefix("W/").strip('"'))
    if isinstance(body, dict) and "version" in body:
        version = body["version"]
        if isinstance(version, Decimal) and version.is_finite() and version == version.to_integral_value():
            version = int(version)  # JSON has one number type: 3.0 is the integer 3, as JSON Schema says
        if isinstance(version, bool) or not isinstance(version, int):
            raise BadRequest("version must be an integer", {"version": ["must be an integer"]},
                             code="invalid_version")
        return _version_number(version, "version")
    if required:
        raise CrmError('say which version you change: send "version" in the body (the version you read) '
                       'or the header If-Match: "N"; If-Match: * overwrites whatever is current',
                       {"version": ["is required (or the If-Match header)"]},
                       code="version_required", status=428)
    return None


def _version_number(version: int, where: str) -> int:
    if not 1 <= version <= MAX_ID:
        raise BadRequest(f"{where} must be a version between 1 and {MAX_ID}",
                         {where: [f"must be between 1 and {MAX_ID}"]}, code="invalid_version")
    return version


def record_response(entity: EntitySpec, row, status: int = 200, fields: frozenset | None = None) -> Response:
    body = {"data": presenter(entity, fields)(row)}
    if fields is None:  # the tags the caller sees (crmkit.tagging)
        from .tags import with_tags

        body["data"] = with_tags(entity, [row["id"]])(body["data"])
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
    """An id in a URL: 1 to MAX_ID in ASCII digits; anything else names no record (404)."""
    if not (text.isascii() and text.isdigit()) or len(text) > 10 or int(text) > MAX_ID or int(text) < 1:
        raise NotFound(f"no record with id '{_cut(text)}'")
    return int(text)


def parse_whole_number(name: str, text: str, maximum: int = MAX_ID) -> int:
    """A whole-number query parameter (an id, a count): ASCII digits, 0 to
    ``maximum``; a 400 naming it otherwise."""
    try:
        if not text.isascii() or not text.isdigit():
            raise FieldValueError("must be a whole number")
        return whole_number(text, maximum)
    except FieldValueError as exc:
        raise BadRequest(f"{name} must be a whole number up to {maximum}", {name: [str(exc)]},
                         code="invalid_parameter") from None


def refuse_nul_parameters() -> None:
    """No database compares text with a NUL character (PostgreSQL refuses it):
    a query parameter holding one is a 400 on every route."""
    for key, value in request.args.items(multi=True):
        if "\x00" in key or "\x00" in value:
            name = key.replace("\x00", "\\0")
            raise BadRequest(f"{name} must not contain NUL characters", {name: ["contains a NUL character"]},
                             code="invalid_parameter")


#: The first segments of the API's own URLs (everything else names an entity).
API_ROUTES = frozenset({"me", "users", "teams", "audit", "regions", "recycle_bin", "openapi.json", "docs"})


def _unknown_entity() -> str | None:
    """The entity a URL of the API names, when the config has none of that name."""
    parts = request.path.removeprefix(API_PREFIX + "/").split("/")
    if not request.path.startswith(API_PREFIX + "/") or not parts[0] or parts[0] in API_ROUTES:
        return None
    return None if parts[0] in runtime().spec.entities else parts[0]


def _cut(text: str, limit: int = 40) -> str:
    """A value echoed in a message, cut short: a huge one is not sent back whole."""
    return text if len(text) <= limit else text[:limit] + "…"



def api_error(exc: Exception) -> Response:
    if isinstance(exc, CrmError):
        return error_response(exc)
    if isinstance(exc, HTTPException):
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large",
                415: "unsupported_media_type"}.get(exc.code or 500, "http_error")
        if exc.code == 404 and _unknown_entity() is not None:
            return error_response(NotFound(f"no entity named '{_cut(_unknown_entity() or '')}'",
                                           code="unknown_entity"))
        message = {404: "no such URL in the API; see /api/v1/docs",
                   405: f"method {request.method} is not allowed here",
                   413: "the request body is too large"}.get(exc.code or 500, exc.description or "")
        headers = {}
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:  # RFC 9110: a 405 says what is allowed
            headers["Allow"] = ", ".join(sorted(exc.valid_methods))
        return json_response({"error": {"code": code, "message": message}}, exc.code or 500, headers)
    current_app.logger.exception("unexpected error in %s %s", request.method, request.path)
    return json_response({"error": {"code": "internal_error",
                                    "message": "an unexpected error occurred; it has been logged"}}, 500)


