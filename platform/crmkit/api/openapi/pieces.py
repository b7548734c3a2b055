"""The shared pieces of the document: the crmkit extension keys (the access an
operation needs, the entity and field of a parameter), the error shape and
its texts, the schema of a config field, and the small builders every area
uses (a JSON body, a reference, a page, responses, parameters)."""

from __future__ import annotations

from typing import Any

from ... import regions
from ...fieldtypes import MAX_ID, NO_NUL
from ...metadata.spec import label_text
from ...serialization import SpecField
from ..http import IF_MATCH

_CACHE_KEY = "_openapi_document"
#: The access an operation needs: [[entity, action], ...], any of which will do;
#: and what it needs besides, all of it (a related list: reading the other entity).
ACCESS, NEEDS = "x-crmkit-access", "x-crmkit-needs"
#: An operation for admins only (the jobs API).
ADMIN_ONLY = "x-crmkit-admin"
#: The entity and field a query parameter is about (left out where the caller may not filter on it).
ENTITY, FIELD = "x-crmkit-entity", "x-crmkit-field"
#: A parameter or property whose values are tag names (narrowed to the tags the caller sees).
TAGS = "x-crmkit-tags"
TEXT = {"type": "string", "pattern": NO_NUL}
ISO_MOMENT = {"type": "string", "format": "date-time"}
CURSOR = {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"}


def _spec_field_schema(self, field, **kwargs) -> dict:
    if not isinstance(field, SpecField):
        return {}
    schema = dict(field.ftype.json_schema(field.spec))
    f = field.spec
    if "title" not in schema:
        schema["title"] = label_text(f.label, "en", f.name)
    zh = f.label.get("zh")
    if zh:
        schema["x-label-zh"] = zh
    if f.help:
        schema["description"] = label_text(f.help, "en", "")
    if f.readonly or field.dump_only:
        schema["readOnly"] = True
    if f.formula is not None:
        schema["x-formula"] = f.formula.text
    if field.allow_none:
        _nullable(schema)
    return schema


def _nullable(schema: dict) -> None:
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        schema["type"] = types + ["null"]
    elif "enum" in schema:
        schema["enum"] = list(schema["enum"]) + [None]
    elif "$ref" in schema:
        schema["anyOf"] = [{"$ref": schema.pop("$ref")}, {"type": "null"}]


ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {"error": {"type": "object", "required": ["code", "message"], "additionalProperties": False,
                             "properties": {
                                 "code": {"type": "string", "examples": ["validation_failed"]},
                                 "message": {"type": "string"},
                                 "details": {"description": "Per-field messages or other specifics."}}}},
}
ERROR_TEXT = {
    400: "Bad request: a bad parameter, filter, sort, cursor, header or JSON",
    401: "Not authenticated (no, a bad or a revoked token)",
    403: "Your roles do not allow this",
    404: "Not found (or outside what you may see)",
    405: "Method not allowed here (the Allow header lists those that are)",
    409: "Conflict: a stale version, a unique value taken, a record still referenced or one referred to "
         "that does not exist, a workflow move not possible now",
    413: "The body is too large",
    415: "The body is not JSON",
    422: "Invalid field values (details by field)",
    428: "A PATCH must say which version it changes: `version` in the body or If-Match",
    429: "Too many attempts; wait the Retry-After seconds",
}


def _json(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _data(schema: dict) -> dict:
    return {"type": "object", "required": ["data"], "properties": {"data": schema}}


def _page(item: dict) -> dict:
    """A page of a list: its items and the cursor of the next one."""
    return {"type": "object", "required": ["data", "next", "next_url"], "properties": {
        "data": _array(item),
        "next": {"type": ["string", "null"], "description": "The cursor of the next page (opaque)."},
        "next_url": {"type": ["string", "null"], "description": "This request's URL for the next page."},
        "count": {"type": "integer", "description": "All matching records, with count=true."}}}


def _errors(*statuses: int) -> dict:
    """The error responses of an operation: the statuses it is known to give,
    and every other one in the same shape."""
    out = {str(s): {"description": ERROR_TEXT[s], "content": _json(_ref("Error"))}
           for s in sorted({401, *statuses})}
    out["default"] = {"description": "Any other error, in the same shape", "content": _json(_ref("Error"))}
    return out


def _ok(schema: dict | None, description: str = "OK", status: int = 200, headers: dict | None = None) -> dict:
    answer: dict = {"description": description}
    if schema is not None:
        answer["content"] = _json(schema)
    if headers:
        answer["headers"] = headers
    return {str(status): answer}


def _query(name: str, schema: dict, description: str = "", **extra: Any) -> dict:
    parameter = {"name": name, "in": "query", "required": False, "schema": schema, **extra}
    if description:
        parameter["description"] = description
    return parameter


def _path_id(name: str = "id", what: str = "record") -> dict:
    return {"name": name, "in": "path", "required": True, "description": f"The {what}'s id.",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID}}


def _array(items: dict, **extra: Any) -> dict:
    return {"type": "array", "items": items, **extra}


IF_MATCH_PARAMETER = {
    "name": "If-Match", "in": "header", "required": False,
    "schema": {"type": "string", "pattern": IF_MATCH.pattern, "examples": ['"3"', "*"]},
    "description": 'The version the change applies to, as the ETag gave it ("3"); * for whatever is current.',
}
ETAG = {"ETag": {"description": "The record's version, for If-Match.", "schema": {"type": "string"}}}
LOCATION = {"Location": {"description": "The URL of the new resource.", "schema": {"type": "string"}}}


def _level(code: str) -> str:
    region = regions.get(code)
    return region.level if region is not None else regions.LEVELS[-1]


def _no_name(schema) -> str:
    return ""  # nested schemas inline; the entities' are registered by name
