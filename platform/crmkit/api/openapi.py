"""The OpenAPI 3.1 document: every route the app serves, with its parameters,
bodies and responses, described as the server enforces them (a test walks the
URL map; schemathesis checks the server against the document).

Built once per runtime from the spec, the field types and the entities'
marshmallow schemas (through apispec). Each operation names the access it
needs (``x-crmkit-access``); a caller's view leaves out what their roles do
not allow, fields hidden from them, and the parameters of fields they may not
filter on. Views are cached per combination of roles.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from .. import regions
from ..fieldtypes import (
    DATE,
    DATE_TIME,
    JSON_VALUE_SCHEMA,
    MAX_ID,
    MAX_INTEGER,
    NAME_TEXT,
    NO_NUL,
    REGION_CODE,
    DecimalType,
    FieldType,
)
from ..identity import MIN_PASSWORD, USERNAME
from ..metadata.spec import EntitySpec, FieldSpec, label_text
from ..permissions import ACTIONS, ADMIN_ROLE, Access
from ..query import MAX_IN_VALUES, OPERATORS
from ..records import MAX_BULK
from ..runtime import Runtime
from ..serialization import SpecField
from .http import IF_MATCH, MAX_EXPONENT, MAX_NUMBER_DIGITS

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


class _Document:
    """Builds the whole document of a runtime."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.spec = rt.spec
        self.types: dict[str, FieldType] = dict(rt.field_types)
        self.paths: dict[str, dict] = {}
        self.schemas: dict[str, dict] = {}
        #: Parameters shared by operations (each entity's list parameters), by name.
        self.parameters: dict[str, dict] = {}

    # ------------------------------------------------------------------ the whole

    def build(self) -> dict:
        ma_plugin = MarshmallowPlugin(schema_name_resolver=_no_name)
        api = APISpec(
            title=label_text(self.spec.label, "en", self.spec.name) + " API",
            version=self.spec.version or "1.0.0",
            openapi_version="3.1.0",
            plugins=[ma_plugin],
            info={"description": (self.spec.description or "") + "\n\nGenerated by crmkit from the config. "
                  f"Numbers in a JSON body have at most {MAX_NUMBER_DIGITS} digits and an exponent within "
                  f"±{MAX_EXPONENT}; a PATCH names the version it changes."},
        )
        assert ma_plugin.converter is not None
        ma_plugin.converter.add_attribute_function(_spec_field_schema)
        for name in self.spec.entities:
            schemas = self.rt.schemas[name]
            read = type(schemas.read).__name__
            api.components.schema(read, schema=schemas.read)
            api.components.schema(f"{read}Create", schema=schemas.create)
            api.components.schema(f"{read}Update", schema=schemas.update)
        document = api.to_dict()
        self.schemas = document.setdefault("components", {}).setdefault("schemas", {})
        self._shared_schemas()
        document["tags"] = []
        for name, entity in self.spec.entities.items():
            self._entity_schemas(entity)
            self._entity_paths(entity)
            label = label_text(entity.label, "en", name)
            document["tags"].append({"name": name, "description": label_text(entity.label, "zh", label)})
        self._people_paths()
        self._approval_paths()
        self._jobs_paths()
        self._other_paths()
        self._messaging_paths()
        document["tags"] += [{"name": "me"}, {"name": "people"}, {"name": "audit"}, {"name": "approvals"},
                             {"name": "automations"}, {"name": "jobs"}, {"name": "messages"}, {"name": "meta"}]
        document["paths"] = self.paths
        document["components"]["parameters"] = self.parameters
        document["info"]["x-operators"] = list(OPERATORS)
        document["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer",
                       "description": "A personal API token (crmkit token create USER, or POST /api/v1/me/tokens)."},
            "session": {"type": "apiKey", "in": "cookie", "name": "crmkit_session",
                        "description": "A browser session from /login; changes also need the X-CSRF-Token header."}}
        document["security"] = [{"bearer": []}, {"session": []}]
        return document

    def _op(self, path: str, method: str, tag: str, summary: str, responses: dict, *,
            access: list | None = None, needs: list | None = None, parameters: list | None = None,
            body: dict | None = None, body_required: bool = True, description: str = "",
            public: bool = False, admin: bool = False) -> None:
        operation: dict = {"tags": [tag], "summary": summary,
                           "operationId": f"{method}_{path.removeprefix('/api/v1/').strip('/')}".translate(
                               str.maketrans("/{}.", "____")) or f"{method}_root",
                           "responses": responses}
        if description:
            operation["description"] = description
        if parameters:
            operation["parameters"] = parameters
        if body is not None:
            operation["requestBody"] = {"required": body_required, "content": _json(body)}
        if access is not None:
            operation[ACCESS] = access
        if needs is not None:
            operation[NEEDS] = needs
        if public:
            operation["security"] = [{}]
        if admin:
            operation[ADMIN_ONLY] = True
        self.paths.setdefault(path, {})[method] = operation

    # ------------------------------------------------------------------ schemas

    def _shared_schemas(self) -> None:
        s = self.schemas
        s["Error"] = ERROR_SCHEMA
        s["JsonValue"] = JSON_VALUE_SCHEMA
        for depth, level in enumerate(regions.LEVELS):
            codes = [code for code in regions.all_codes()
                     if REGION_CODE.fullmatch(code) and regions.LEVELS.index(_level(code)) <= depth]
            s[f"Region{level.capitalize()}"] = {
                "type": "string", "enum": codes,
                "description": f"A 6-digit administrative division code (GB/T 2260) down to {level} level; "
                               "names at /api/v1/regions."}
        s["Label"] = {"type": "object", "additionalProperties": {"type": "string"},
                      "examples": [{"en": "Won", "zh": "赢单"}]}
        s["User"] = {"type": "object", "properties": {
            "id": {"type": "integer"}, "username": {"type": "string"}, "display_name": {"type": ["string", "null"]},
            "email": {"type": ["string", "null"]}, "mobile": {"type": ["string", "null"]},
            "active": {"type": "boolean"}, "roles": _array({"type": "string"}),
            "team_id": {"type": ["integer", "null"]}, "superior_id": {"type": ["integer", "null"]},
            "last_login_at": {**ISO_MOMENT, "type": ["string", "null"]},
            "created_at": ISO_MOMENT, "updated_at": ISO_MOMENT}}
        reference = {"type": ["integer", "string", "null"], "minimum": 1, "maximum": MAX_ID, "pattern": NO_NUL,
                     "description": "An id, or a name."}
        person = {"display_name": {"type": "string", "maxLength": 254, "pattern": NAME_TEXT},
                  "email": {"type": ["string", "null"], "maxLength": 254, "pattern": NO_NUL},
                  "mobile": {"type": ["string", "null"], "maxLength": 254, "pattern": NO_NUL}}
        roles = _array({"type": "string", "enum": sorted(self.rt.permissions.roles)})
        user_fields = {**person, "active": {"type": "boolean"}, "roles": roles, "team_id": reference,
                       "superior_id": reference,
                       "password": {"type": ["string", "null"], "minLength": MIN_PASSWORD, "maxLength": 1024}}
        s["UserCreate"] = {"type": "object", "required": ["username"], "additionalProperties": False,
                           "properties": {"username": {"type": "string", "pattern": USERNAME.pattern},
                                          **user_fields}}
        s["UserUpdate"] = {"type": "object", "additionalProperties": False, "properties": user_fields}
        s["MeUpdate"] = {"type": "object", "additionalProperties": False, "properties": person}
        s["Team"] = {"type": "object", "properties": {
            "id": {"type": "integer"}, "name": {"type": "string"}, "label": {"type": ["string", "null"]},
            "parent_id": {"type": ["integer", "null"]}, "created_at": ISO_MOMENT, "updated_at": ISO_MOMENT}}
        team_name = {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,63}$"}
        s["TeamCreate"] = {"type": "object", "required": ["name"], "additionalProperties": False, "properties": {
            "name": team_name, "label": {"type": ["string", "null"], "pattern": NAME_TEXT}, "parent_id": reference}}
        s["TeamUpdate"] = {"type": "object", "additionalProperties": False, "properties": {
            "label": {"type": "string", "pattern": NAME_TEXT}, "parent_id": reference}}
        s["Token"] = {"type": "object", "properties": {
            "id": {"type": "integer"}, "name": {"type": "string"}, "hint": {"type": "string"},
            "created_at": ISO_MOMENT, "expires_at": {"type": ["string", "null"]},
            "last_used_at": {"type": ["string", "null"]}, "revoked_at": {"type": ["string", "null"]}}}
        s["TokenCreate"] = {"type": "object", "required": ["name"], "additionalProperties": False, "properties": {
            "name": {"type": "string", "maxLength": 100, "pattern": NAME_TEXT},
            "expires_days": {"type": ["integer", "null"], "minimum": 1, "maximum": 3650}}}
        s["NewToken"] = {"type": "object", "properties": {
            "id": {"type": "integer"}, "name": {"type": "string"},
            "token": {"type": "string", "description": "The token itself; shown once."},
            "expires_at": {"type": ["string", "null"]}}}
        s["AuditEntry"] = {"type": "object", "properties": {
            "id": {"type": "integer"}, "entity": {"type": "string"}, "record_id": {"type": ["integer", "null"]},
            "action": {"type": "string"}, "actor": {"type": ["string", "null"]},
            "actor_id": {"type": ["integer", "null"]}, "at": ISO_MOMENT,
            "changes": {"description": "What changed: field -> [old, new] (values you may not see left out)."}}}
        s["AutomationRun"] = {"type": "object", "properties": {
            "id": {"type": "integer"}, "automation": {"type": "string"}, "entity": {"type": ["string", "null"]},
            "record_id": {"type": ["integer", "null"]}, "trigger": {"type": "string"}, "depth": {"type": "integer"},
            "status": {"enum": ["ok", "failed", "skipped", "stopped"]},
            "condition": {"type": ["boolean", "null"], "description": "The value of when (null: none)."},
            "results": {"type": ["array", "null"], "description": "Each action: {action, result} or {action, "
                        "error} or {action, skipped}."},
            "error": {"type": ["string", "null"]}, "started_at": ISO_MOMENT, "finished_at": ISO_MOMENT}}
        s["HistoryEntry"] = {"type": "object", "properties": {
            "action": {"type": "string"}, "actor": {"type": ["string", "null"]},
            "actor_id": {"type": ["integer", "null"]}, "at": ISO_MOMENT,
            "changes": {"description": "field -> [old, new]; fields hidden from you left out, masked ones masked."}}}
        s["Collaborator"] = {"type": "object", "properties": {
            "user_id": {"type": "integer"}, "username": {"type": "string"},
            "display_name": {"type": ["string", "null"]}, "access": {"enum": ["read", "write"]},
            "created_at": ISO_MOMENT, "created_by": {"type": ["integer", "null"]}}}
        s["Transition"] = {"type": "object", "required": ["name", "label", "to", "allowed"], "properties": {
            "name": {"type": "string"}, "label": _ref("Label"), "from": {}, "to": {"type": "string"},
            "workflow": {"type": "string"}, "allowed": {"type": "boolean"},
            "reason": {"type": ["string", "null"], "description": "Why you may not make the move now."},
            "missing": _array({"type": "string"}, description="Fields the move needs that are empty."),
            "approval": {"type": "boolean", "description": "Asking for the move sends it for approval."},
            "pending_approval": {"type": ["integer", "null"],
                                 "description": "The approval pending on the record's workflow, if any."}}}
        nullable_text, nullable_moment = {"type": ["string", "null"]}, {**ISO_MOMENT, "type": ["string", "null"]}
        s["Approver"] = {"type": "object", "properties": {
            "user_id": {"type": "integer"}, "username": {"type": "string"}, "name": {"type": "string"},
            "decision": {"enum": ["approved", "rejected", None]}, "comment": nullable_text,
            "decided_at": nullable_moment}}
        s["ApprovalStep"] = {"type": "object", "properties": {
            "position": {"type": "integer"}, "label": _ref("Label"), "role": nullable_text,
            "superior": {"type": ["integer", "null"]}, "mode": {"enum": ["any", "all"]},
            "status": {"enum": ["waiting", "active", "approved", "rejected", "skipped", "cancelled"]},
            "approvers": _array(_ref("Approver"))}}
        s["Approval"] = {"type": "object", "description": "A workflow move waiting for (or decided by) its approvers.",
                         "properties": {
            "id": {"type": "integer"}, "entity": {"type": "string"}, "record_id": {"type": "integer"},
            "workflow": {"type": "string"}, "transition": {"type": "string"}, "transition_label": _ref("Label"),
            "from": {"type": "string"}, "to": {"type": "string"},
            "status": {"enum": ["pending", "approved", "rejected", "cancelled"]},
            "step": {"type": ["integer", "null"], "description": "The position of the step being decided."},
            "requested_by": {"type": "object", "properties": {"id": {"type": ["integer", "null"]},
                                                              "username": {"type": "string"}}},
            "requested_at": ISO_MOMENT, "decided_at": nullable_moment,
            "reason": {"type": ["string", "null"], "description": "The rejection's (or withdrawal's) reason."},
            "values": {"type": "object", "description": "The values sent with the request, applied with the move."},
            "steps": _array(_ref("ApprovalStep")),
            "can_decide": {"type": "boolean", "description": "You are an approver of the step being decided."},
            "can_cancel": {"type": "boolean", "description": "You asked for it and it is pending."}}}
        s["Region"] = {"type": "object", "properties": {
            "code": {"type": "string"}, "name": {"type": "string"}, "level": {"enum": list(regions.LEVELS)}}}
        scope = {"type": "string", "description": "none, or the scopes joined by +: own, team, team_tree, "
                                                  "subordinates, all"}
        s["Permissions"] = {"type": "object", "properties": {
            "user": {"type": "object"}, "roles": _array({"type": "string"}),
            "entities": {"type": "object", "additionalProperties": {"type": "object", "properties": {
                "actions": {"type": "object", "properties": {a: scope for a in ACTIONS}},
                "fields": {"type": "object", "additionalProperties": {"enum": ["hidden", "masked", "read", "write"]}},
                "visible": _array({"type": "string"})}}}}}

    def _entity_schemas(self, entity: EntitySpec) -> None:
        """The request bodies as the records service reads them: unknown fields
        refused, ``id`` and ``version`` read-only (ignored) on create, the
        version required on update, the owner for owned entities."""
        read = self._read_name(entity)
        owner = {"type": "integer", "minimum": 1, "maximum": MAX_ID,
                 "description": "Give the record to this user (needs the assign permission)."}
        ignored = {"type": "integer", "readOnly": True, "description": "Ignored."}
        version = {"type": "integer", "minimum": 1, "maximum": MAX_ID,
                   "description": "The version you read (If-Match may say it instead)."}
        for suffix, extra in (("Create", {"id": ignored, "version": ignored}),
                              ("Update", {"id": ignored, "version": version})):
            schema = self.schemas[read + suffix]
            schema["additionalProperties"] = False
            properties = schema.setdefault("properties", {})
            properties.update(extra)
            if entity.owned:
                properties["owner_id"] = owner
        for workflow in self.rt.records.workflows.get(entity.name, ()):  # a state moves through transitions only
            create = self.schemas[read + "Create"].get("properties", {}).get(workflow.field)
            if create is not None:
                create["enum"] = [workflow.initial] + ([None] if None in create.get("enum", ()) else [])
                create["description"] = "A new record starts in this state."
            update = self.schemas[read + "Update"].get("properties", {}).get(workflow.field)
            if update is not None:
                update["readOnly"] = True
                update["description"] = f"Changes through the {workflow.name} transitions."
        tags = [tag.name for tag in self.rt.queries.tag_catalog.by_entity.get(entity.name, ())]
        if tags:  # every record carries its tags (crmkit.tagging)
            self.schemas[read].setdefault("properties", {})["tags"] = {
                **_array({"enum": tags}), "readOnly": True, TAGS: True,
                "description": "The record's tags (tags.yaml) that you see; left out when `fields` is given."}
        self.schemas[read + "Update"]["required"] = ["version"]
        self.schemas[read + "Update"]["description"] = (
            "The fields to change and `version`; with If-Match the body's version may be left out (the document "
            "cannot say 'one or the other').")

    def _read_name(self, entity: EntitySpec) -> str:
        return type(self.rt.schemas[entity.name].read).__name__

    # ------------------------------------------------------------------ list parameters

    def _filter_value(self, f: FieldSpec) -> dict:
        """The schema of a filter value on the field (a query string, read by parse_text)."""
        kind = f.type
        if f.name == "id" or f.system and kind == "integer" or kind == "ref":
            return {"type": "integer", "minimum": 0, "maximum": MAX_ID}  # ids are never negative
        if kind == "integer":
            return {"type": "integer", "minimum": -MAX_INTEGER, "maximum": MAX_INTEGER}
        ftype = self.types[kind]
        if isinstance(ftype, DecimalType):
            scale = ftype.scale(f)
            limit = 10 ** (ftype.precision(f) - scale)
            return {"type": "number", "exclusiveMinimum": -limit, "exclusiveMaximum": limit,
                    "multipleOf": 1 if scale == 0 else 10.0 ** -scale}
        if kind == "boolean":
            return {"type": "boolean"}
        if kind == "date":
            return {"type": "string", "format": "date", "pattern": DATE.pattern}
        if kind == "datetime":
            return {"type": "string", "anyOf": [{"format": "date-time", "pattern": DATE_TIME.pattern},
                                                {"format": "date", "pattern": DATE.pattern}],
                    "description": "A date-time with an offset, or a date (its midnight in the app's timezone)."}
        if kind in ("enum", "multi_enum"):
            return {"enum": list(f.option_values)}
        if kind == "region":
            return _ref("RegionDistrict" if f.level in (None, "district") else f"Region{f.level.capitalize()}")
        return dict(TEXT)

    def _filters(self, entity: EntitySpec) -> list[dict]:
        parameters = []
        for f in entity.fields.values():
            ops = self.types[f.type].operators if f.name != "id" else ("eq", "ne", "gt", "gte", "lt", "lte", "in",
                                                                         "nin")
            value = self._filter_value(f)
            for op in ops:
                name = f.name if op == "eq" else f"{f.name}__{op}"
                extra: dict = {}
                if op == "isnull":
                    schema: dict = {"type": "boolean"}
                elif op in ("in", "nin"):
                    item = {"type": "string", "pattern": "^[^,\\x00]+$"} if value == TEXT else value
                    schema = _array(item, minItems=1, maxItems=MAX_IN_VALUES)
                    extra = {"style": "form", "explode": False}
                elif op in ("contains", "startswith") and f.type != "multi_enum":
                    schema = dict(TEXT)
                elif op == "within":
                    schema = _ref("RegionDistrict")
                else:
                    schema = value
                parameters.append(_query(name, schema, **extra, **{FIELD: f.name}))
        return parameters

    def _tag_parameters(self, entity: EntitySpec) -> list[dict]:
        """``tag``, ``tag__in``, ``tag__nin`` and ``view`` of an entity with tags or views."""
        parameters = []
        tags = [tag.name for tag in self.rt.queries.tag_catalog.by_entity.get(entity.name, ())]
        if tags:
            names = _array({"enum": tags}, minItems=1, maxItems=MAX_IN_VALUES)
            parameters += [
                _query("tag", names, "Records with this tag (repeat the parameter: with each of them).",
                       style="form", explode=True, **{TAGS: True}),
                _query("tag__in", names, "Records with any of these tags.", style="form", explode=False,
                       **{TAGS: True}),
                _query("tag__nin", names, "Records with none of these tags.", style="form", explode=False,
                       **{TAGS: True}),
            ]
        views = [name for name, view in self.spec.views.items() if view.entity == entity.name]
        if views:
            parameters.append(_query("view", {"enum": views}, "A saved view (views.yaml): its filters, its sort "
                                     "(unless sort is given) and its `where` condition, checked against your access "
                                     "and run within your data scope.", **{TAGS: "views"}))
        return parameters

    def _list_parameters(self, entity: EntitySpec, *, export: bool = False) -> list[dict]:
        sortable = [f.name for f in entity.fields.values() if self.types[f.type].sortable]
        parameters = []
        if not export:
            parameters += [
                _query("limit", {"type": "integer", "minimum": 1, "maximum": self.spec.max_page_size,
                                 "default": entity.list.page_size}),
                _query("cursor", CURSOR, "The `next` value of the previous page, unchanged."),
                _query("count", {"type": "boolean"}, "Also return the total count."),
            ]
        parameters += [
            _query("sort", _array({"enum": [d + n for n in sortable for d in ("", "-")]}, uniqueItems=True),
                   "Fields to sort by, `-` for descending; the configured order when left out.",
                   style="form", explode=False),
            _query("fields", _array({"enum": list(entity.fields)}),
                   "The fields to return (id and version always come).", style="form", explode=False),
        ]
        if entity.list.search:
            parameters.append(_query("q", TEXT, "Search in: " + ", ".join(entity.list.search)))
        parameters += self._tag_parameters(entity)
        parameters += self._filters(entity)
        refs = []
        for parameter in parameters:  # defined once per entity, referred to by its lists, exports, relations
            key = f"{entity.name}.{parameter['name']}"
            if key not in self.parameters:
                # A config entity's parameters follow its field rules; the platform's lists have none.
                governed = entity.name in self.spec.entities
                self.parameters[key] = {**parameter, ENTITY: entity.name} if governed else parameter
            refs.append({"$ref": f"#/components/parameters/{key}"})
        return refs

    # ------------------------------------------------------------------ entity routes

    def _entity_paths(self, entity: EntitySpec) -> None:
        name = entity.name
        label = label_text(entity.label, "en", name)
        plural = label_text(entity.plural, "en", name)
        read = self._read_name(entity)
        one = _data(_ref(read))
        many = _page(_ref(read))
        base, item = f"/api/v1/{name}", f"/api/v1/{name}/{{id}}"
        record_id = _path_id()
        read_access = [[name, "read"]]

        self._op(base, "get", name, f"List {plural}", {**_ok(many, "A page"), **_errors(400)},
                 access=read_access, parameters=self._list_parameters(entity))
        self._op(base, "post", name, f"Create a {label}",
                 {**_ok(one, "Created", 201, {**ETAG, **LOCATION}), **_errors(400, 403, 409, 415, 422)},
                 access=[[name, "create"]], body=_ref(f"{read}Create"))
        bulk_items = _array(_ref(f"{read}Create"), minItems=1, maxItems=MAX_BULK)
        self._op(f"{base}/_bulk", "post", name, f"Create many {plural} (all or none)",
                 {**_ok(_data(_array(_ref(read))), "Created", 201), **_errors(400, 403, 409, 415, 422)},
                 access=[[name, "import"]],
                 body={"anyOf": [bulk_items, {"type": "object", "required": ["data"], "additionalProperties": False,
                                              "properties": {"data": bulk_items}}]},
                 description="A list of records, or `{\"data\": [...]}`; needs create and import.")
        locales = list(self.spec.locales) or ["en"]
        self._op(f"{base}/_export", "get", name, f"Export {plural} as CSV (for people)",
                 {"200": {"description": "CSV (UTF-8 with a byte order mark): headers and values as labels in "
                                         "the language asked for, within your export scope",
                          "content": {"text/csv": {"schema": {"type": "string"}}}}, **_errors(400, 403)},
                 access=[[name, "export"]],
                 parameters=[_query("lang", {"enum": locales}, "The language of headers and labels (else "
                                                               "Accept-Language, else the app's first)."),
                             _query("format", {"enum": ["csv"]})] + self._list_parameters(entity, export=True))
        self._op(item, "get", name, f"Get a {label}", {**_ok(one, "The record", headers=ETAG), **_errors(400, 404)},
                 access=read_access,
                 parameters=[record_id, _query("fields", _array({"enum": list(entity.fields)}),
                                               "The fields to return.", style="form", explode=False,
                                               **{ENTITY: name})])
        self._op(item, "patch", name, f"Update a {label}",
                 {**_ok(one, "Updated", headers=ETAG), **_errors(400, 403, 404, 409, 415, 422, 428)},
                 access=[[name, "update"], [name, "assign"]],
                 parameters=[record_id, IF_MATCH_PARAMETER], body=_ref(f"{read}Update"),
                 description="Send the fields to change and the `version` you read (or If-Match: \"N\"); "
                             "If-Match: * overwrites whatever is current. Neither: 428.")
        self._op(item, "delete", name, f"Move a {label} to the recycle bin",
                 {"204": {"description": "Deleted"}, **_errors(400, 403, 404, 409)},
                 access=[[name, "delete"]], parameters=[record_id, IF_MATCH_PARAMETER])
        self._op(f"{item}/history", "get", name, f"The history of a {label}",
                 {**_ok(_data(_array(_ref("HistoryEntry")))), **_errors(404)}, access=read_access,
                 parameters=[record_id])
        moves = [t.name for wf in self.rt.records.workflows.get(name, ()) for t in wf.transitions]
        self._op(f"{item}/transitions", "get", name, f"The workflow moves of a {label}",
                 {**_ok(_data(_array(_ref("Transition")))), **_errors(404)}, access=read_access,
                 parameters=[record_id])
        if moves:
            self._op(f"{item}/transitions/{{name}}", "post", name, f"Make a workflow move of a {label}",
                     {**_ok(one, "Moved", headers=ETAG),
                      **_ok(_data(_ref("Approval")), "Sent for approval (a move with approval:)", 202, LOCATION),
                      **_errors(400, 403, 404, 409, 415, 422)},
                     access=[[name, "transition"]],
                     parameters=[record_id, {"name": "name", "in": "path", "required": True,
                                             "schema": {"enum": list(dict.fromkeys(moves))}}, IF_MATCH_PARAMETER],
                     body=self._move_body(entity), body_required=False,
                     description="The body may fill in fields the move needs, and `version`.")
        if entity.owned:
            collaborators = _data(_array(_ref("Collaborator")))
            self._op(f"{item}/collaborators", "get", name, f"Who a {label} is shared with",
                     {**_ok(collaborators), **_errors(404)}, access=read_access, parameters=[record_id])
            self._op(f"{item}/collaborators", "post", name, f"Share a {label}",
                     {**_ok(collaborators), **_errors(400, 403, 404, 409, 415, 422)}, access=[[name, "update"]],
                     parameters=[record_id],
                     body={"type": "object", "required": ["user_id"], "additionalProperties": False, "properties": {
                         "user_id": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                         "access": {"enum": ["read", "write"], "default": "read"}}})
            self._op(f"{item}/collaborators/{{user_id}}", "delete", name, f"Stop sharing a {label}",
                     {"204": {"description": "No longer shared"}, **_errors(403, 404)}, access=[[name, "update"]],
                     parameters=[record_id, _path_id("user_id", "user")])
        if entity.pool is not None:  # crmkit.pool
            self._op(f"{item}/claim", "post", name, f"Claim a {label} from the pool",
                     {**_ok(one, "Claimed: you own it", headers=ETAG), **_errors(403, 404, 409)},
                     access=[[name, "update"]], parameters=[record_id],
                     description="Makes you the owner of a record of the pool (one without an owner), if your "
                                 "roles may read and update the entity. 409: it has an owner (`not_in_pool`, "
                                 "`already_owned`), you own the pool's `claim_limit` records already "
                                 "(`claim_limit`), or you released or lost it within `cooldown_days` "
                                 "(`cooldown`, `details.until`). Of two concurrent claims, one wins.")
            self._op(f"{item}/release", "post", name, f"Release a {label} to the pool",
                     {**_ok(one, "Released: in the pool", headers=ETAG),
                      "204": {"description": "Released (by someone who may reassign it but does not see the pool)"},
                      **_errors(403, 404, 409)},
                     access=[[name, "update"], [name, "assign"]], parameters=[record_id],
                     description="Its owner, or someone who may reassign it, gives the record back to the pool "
                                 "(409 `in_pool` when it is there already); the former owner's cool-down starts.")
        manual = [tag.name for tag in self.rt.queries.tag_catalog.by_entity.get(name, ()) if tag.rule is None]
        if manual:
            tagged = _data({"type": "object", "required": ["tags"], "properties": {
                "tags": _array({"type": "string"}, description="The record's tags that you see, after the change.")}})
            tag_parameter = {"name": "tag", "in": "path", "required": True, "schema": {"enum": manual},
                             "description": "A manual tag (one without a rule: a rule tag is the platform's to set)."}
            self._op(f"{item}/tags/{{tag}}", "post", name, f"Put a tag on a {label}",
                     {**_ok(tagged), **_errors(403, 404, 409)}, access=[[name, "update"]],
                     parameters=[record_id, tag_parameter])
            self._op(f"{item}/tags/{{tag}}", "delete", name, f"Take a tag off a {label}",
                     {**_ok(tagged), **_errors(403, 404, 409)}, access=[[name, "update"]],
                     parameters=[record_id, tag_parameter])
        for rel in entity.relations.values():
            other = self.spec.entities[rel.entity]
            other_many = copy.deepcopy(many)
            other_many["properties"]["data"] = _array(_ref(self._read_name(other)))
            self._op(f"{item}/{rel.name}", "get", name, f"{label}: {rel.name}",
                     {**_ok(other_many, "A page"), **_errors(400, 404)},
                     access=read_access, needs=[[rel.entity, "read"]],
                     parameters=[record_id] + self._list_parameters(other))
            if rel.kind == "many_to_many":
                self._op(f"{item}/{rel.name}", "post", name, f"{label}: link {rel.name}",
                         {**_ok(_data({"type": "object", "properties": {"ids": _array({"type": "integer"})}})),
                          **_errors(400, 403, 404, 409, 415, 422)},
                         access=[[name, "update"]], parameters=[record_id],
                         body={"type": "object", "required": ["ids"], "additionalProperties": False, "properties": {
                             "ids": _array({"type": "integer", "minimum": 1, "maximum": MAX_ID})}})
                self._op(f"{item}/{rel.name}/{{other_id}}", "delete", name, f"{label}: unlink one of {rel.name}",
                         {"204": {"description": "Unlinked"}, **_errors(403, 404)}, access=[[name, "update"]],
                         parameters=[record_id, _path_id("other_id", rel.entity)])
        self._op(f"/api/v1/recycle_bin/{name}/{{id}}/restore", "post", name, f"Restore a {label} from the recycle bin",
                 {**_ok(one, "Restored", headers=ETAG), **_errors(404, 409)}, access=[[name, "delete"]],
                 parameters=[record_id])

    def _move_body(self, entity: EntitySpec) -> dict:
        """What a move's body may hold: the writable fields (as in an update) and the version."""
        update = self.schemas[self._read_name(entity) + "Update"]
        states = {wf.field for wf in self.rt.records.workflows.get(entity.name, ())}
        properties = {k: v for k, v in update.get("properties", {}).items() if k not in states and k != "owner_id"}
        return {"type": "object", "additionalProperties": False, "properties": properties}

    # ------------------------------------------------------------------ people, audit

    def _people_paths(self) -> None:
        user, users = _data(_ref("User")), _page(_ref("User"))
        team, teams = _data(_ref("Team")), _page(_ref("Team"))
        tokens, new_token = _data(_array(_ref("Token"))), _data(_ref("NewToken"))
        user_id, team_id, token_id = _path_id("user_id", "user"), _path_id("team_id", "team"), \
            _path_id("token_id", "token")
        self._op("/api/v1/me", "get", "me", "Who you are", {**_ok(user), **_errors()})
        self._op("/api/v1/me", "patch", "me", "Change your display name, email or mobile",
                 {**_ok(user), **_errors(400, 415, 422)}, body=_ref("MeUpdate"))
        self._op("/api/v1/me/password", "post", "me", "Change your password (ends your other sessions)",
                 {"204": {"description": "Changed"}, **_errors(400, 415, 422)},
                 body={"type": "object", "required": ["current_password", "new_password"],
                       "properties": {"current_password": {"type": "string"},
                                      "new_password": {"type": "string", "minLength": MIN_PASSWORD,
                                                       "maxLength": 1024}}})
        self._op("/api/v1/me/permissions", "get", "me", "What you may do", {**_ok(_data(_ref("Permissions"))),
                                                                             **_errors()})
        self._op("/api/v1/me/tokens", "get", "me", "Your API tokens", {**_ok(tokens), **_errors()})
        self._op("/api/v1/me/tokens", "post", "me", "Make yourself an API token (shown once)",
                 {**_ok(new_token, "Created", 201), **_errors(400, 415, 422)}, body=_ref("TokenCreate"))
        self._op("/api/v1/me/tokens/{token_id}", "delete", "me", "Revoke one of your tokens",
                 {"204": {"description": "Revoked"}, **_errors(404)}, parameters=[token_id])
        self._op("/api/v1/users", "get", "people", "List users (within your scope)",
                 {**_ok(users), **_errors(400, 403)}, access=[["user", "read"]],
                 parameters=self._list_parameters(self.rt.queries.platform["user"].spec))
        self._op("/api/v1/users", "post", "people", "Create a user",
                 {**_ok(user, "Created", 201, LOCATION), **_errors(400, 403, 409, 415, 422)},
                 access=[["user", "create"]], body=_ref("UserCreate"))
        self._op("/api/v1/users/{user_id}", "get", "people", "Get a user", {**_ok(user), **_errors(403, 404)},
                 access=[["user", "read"]], parameters=[user_id])
        self._op("/api/v1/users/{user_id}", "patch", "people", "Change a user (roles need assign)",
                 {**_ok(user), **_errors(400, 403, 404, 409, 415, 422)},
                 access=[["user", "update"], ["user", "assign"]], parameters=[user_id], body=_ref("UserUpdate"))
        self._op("/api/v1/users/{user_id}/tokens", "get", "people", "A user's API tokens",
                 {**_ok(tokens), **_errors(403, 404)}, access=[["user", "update"]], parameters=[user_id])
        self._op("/api/v1/users/{user_id}/tokens", "post", "people", "Make a user an API token (shown once)",
                 {**_ok(new_token, "Created", 201), **_errors(400, 403, 404, 415, 422)}, access=[["user", "update"]],
                 parameters=[user_id], body=_ref("TokenCreate"))
        self._op("/api/v1/users/{user_id}/tokens/{token_id}", "delete", "people", "Revoke a user's token",
                 {"204": {"description": "Revoked"}, **_errors(403, 404)}, access=[["user", "update"]],
                 parameters=[user_id, token_id])
        self._op("/api/v1/teams", "get", "people", "List teams (within your scope)",
                 {**_ok(teams), **_errors(400, 403)}, access=[["team", "read"]],
                 parameters=self._list_parameters(self.rt.queries.platform["team"].spec))
        self._op("/api/v1/teams", "post", "people", "Create a team",
                 {**_ok(team, "Created", 201, LOCATION), **_errors(400, 403, 409, 415, 422)},
                 access=[["team", "create"]], body=_ref("TeamCreate"))
        self._op("/api/v1/teams/{team_id}", "get", "people", "Get a team", {**_ok(team), **_errors(403, 404)},
                 access=[["team", "read"]], parameters=[team_id])
        self._op("/api/v1/teams/{team_id}", "patch", "people", "Change a team",
                 {**_ok(team), **_errors(400, 403, 404, 409, 415, 422)}, access=[["team", "update"]],
                 parameters=[team_id], body=_ref("TeamUpdate"))
        self._op("/api/v1/audit", "get", "audit", "The audit trail, newest first (within your scope)",
                 {**_ok(_page(_ref("AuditEntry"))), **_errors(400, 403)},
                 access=[["audit", "read"]],
                 parameters=self._list_parameters(self.rt.queries.platform["audit"].spec))

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

    def _jobs_paths(self) -> None:
        from ..jobs.api import job_source
        from ..jobs.store import STATUSES

        self.schemas["Job"] = {"type": "object", "properties": {
            "id": {"type": "integer"}, "task": {"type": "string"}, "status": {"enum": list(STATUSES)},
            "key": {"type": ["string", "null"]}, "payload": {"type": "object"}, "attempts": {"type": "integer"},
            "max_attempts": {"type": "integer"}, "due_at": ISO_MOMENT, "last_error": {"type": ["string", "null"]},
            "created_at": ISO_MOMENT, "updated_at": ISO_MOMENT, "finished_at": {"type": ["string", "null"]}}}
        job_id = _path_id("job_id", "job")
        self._op("/api/v1/jobs", "get", "jobs", "Jobs, newest first (admins; status=dead: the dead-letter list)",
                 {**_ok(_page(_ref("Job"))), **_errors(400, 403)}, admin=True,
                 parameters=self._list_parameters(job_source(self.rt).spec))
        self._op("/api/v1/jobs/{job_id}", "get", "jobs", "A job, with its last error (admins)",
                 {**_ok(_data(_ref("Job"))), **_errors(403, 404)}, admin=True, parameters=[job_id])
        self._op("/api/v1/jobs/{job_id}/replay", "post", "jobs", "Run a dead job again (admins)",
                 {**_ok(_data(_ref("Job"))), **_errors(403, 404, 409)}, admin=True, parameters=[job_id])

    def _other_paths(self) -> None:
        entities = list(self.spec.entities)
        if self.rt.automations is not None:
            self._op("/api/v1/automations/runs", "get", "automations",
                     "Automation runs, newest first: every run (admins), or one record's runs (entity and "
                     "record_id of a record you may read)",
                     {**_ok(_page(_ref("AutomationRun"))), **_errors(400, 403, 404)},
                     parameters=self._list_parameters(self.rt.automations.log.source.spec))
        self._op("/api/v1/recycle_bin", "get", "meta", "Records in the recycle bin",
                 {**_ok(_data(_array({"type": "object"}))), **_errors(400, 403)},
                 access=[[e, "delete"] for e in entities],
                 parameters=[_query("entity", {"enum": entities}, required=True)])
        self._op("/api/v1/regions", "get", "meta", "省/市/区: the regions below one (provinces without parent)",
                 {**_ok(_data(_array(_ref("Region")))), **_errors(404)},
                 parameters=[_query("parent", _ref("RegionDistrict"))])
        self._op("/api/v1/openapi.json", "get", "meta", "This document (your view of it)",
                 {**_ok({"type": "object"}), **_errors()})
        self._op("/api/v1/docs", "get", "meta", "The API reference page (your view of it)",
                 {"200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}},
                  **_errors()})
        self._op("/healthz", "get", "meta", "Health: the database answers",
                 {**_ok({"type": "object", "properties": {"status": {"const": "ok"}, "app": {"type": "string"}}}),
                  "503": {"description": "The database does not answer",
                          "content": _json({"type": "object", "properties": {"status": {"const": "error"}}})}},
                 public=True)
        page = {"text/html": {"schema": {"type": "string"}}}
        both = {**_json(_ref("Error")), **page}
        self._op("/login", "post", "meta", "Log in for a browser session (a JSON body answers JSON, a form a page)",
                 {"200": {"description": "Logged in: the session cookie is set (JSON), or the login page again",
                          "content": {**_json(_data({"type": "object"})), **page}},
                  "303": {"description": "Logged in from the form: on to the next page"},
                  "401": {"description": "Wrong user name or password", "content": both},
                  "429": {"description": "Too many attempts", "content": both},
                  "default": {"description": "Any other error", "content": both}}, public=True,
                 body={"type": "object", "required": ["username", "password"],
                       "properties": {"username": {"type": "string"}, "password": {"type": "string"},
                                      "next": {"type": "string"}}})
        self._op("/login", "get", "meta", "The login page", {
            "200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}},
            public=True, parameters=[_query("next", {"type": "string"},
                                            "Where to go after logging in (a path of this site; anything else "
                                            "goes to the start page).")])
        self._op("/logout", "post", "meta", "End the browser session",
                 {"204": {"description": "Logged out (JSON)"}, "303": {"description": "To the login page (a form)"},
                  **_errors()})
        self._op("/", "get", "meta", "The start page: a redirect to the API reference",
                 {"302": {"description": "To /api/v1/docs"}, **_errors()})


    def _messaging_paths(self) -> None:
        """crmkit.messaging.api: the messages log and the caller's notifications."""
        paging = [_query("limit", {"type": "integer", "minimum": 1, "maximum": 200}, "Items per page (default 50)."),
                  _query("cursor", {"type": "integer", "minimum": 0}, "The next of the previous page.")]
        message = {"type": "object", "properties": {
            name: {"type": ["string", "null"]} for name in (
                "channel", "recipient", "recipient_name", "subject", "body", "status", "error", "template",
                "automation", "entity", "created_at", "updated_at")} | {
            name: {"type": ["integer", "null"]} for name in ("id", "user_id", "record_id", "attempts")}}
        notification = {"type": "object", "properties": {
            "id": {"type": "integer"}, "title": {"type": "string"}, "body": {"type": "string"},
            "entity": {"type": ["string", "null"]}, "record_id": {"type": ["integer", "null"]},
            "automation": {"type": ["string", "null"]}, "created_at": {"type": "string"},
            "read": {"type": "boolean"}, "read_at": {"type": ["string", "null"]}}}
        self._op("/api/v1/messages", "get", "messages",
                 "What was sent about a record (email, SMS, WeChat, in-app, webhooks), newest first",
                 {**_ok(_page(message)), **_errors(400, 404)},
                 parameters=[_query("entity", {"enum": list(self.spec.entities)},
                                    "The record's entity (required unless you are an admin)."),
                             _query("record_id", {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                                    "The record's id (required unless you are an admin)."), *paging])
        unread = _page(notification)
        unread["properties"]["unread"] = {"type": "integer"}
        self._op("/api/v1/notifications", "get", "messages", "Your in-app notifications, newest first",
                 {**_ok(unread), **_errors(400)},
                 parameters=[_query("unread", {"enum": ["true", "false", "1", "0"]}, "Only the unread ones."),
                             _query("lang", {"enum": list(self.spec.locales)}, "The language of the texts."),
                             *paging])
        self._op("/api/v1/notifications/{notification_id}/read", "post", "messages",
                 "Mark one of your notifications read", {**_ok(_data(notification)), **_errors(404)},
                 parameters=[_path_id("notification_id", "notification")])


def _level(code: str) -> str:
    region = regions.get(code)
    return region.level if region is not None else regions.LEVELS[-1]


def _no_name(schema) -> str:
    return ""  # nested schemas inline; the entities' are registered by name


def build_document(rt: Runtime) -> dict:
    return _Document(rt).build()


def document(rt: Runtime, access: Access | None = None) -> dict:
    """The whole document, or (with an access) the caller's view of it: the
    operations their roles allow, fields hidden from them removed, fields they
    may not write marked read-only, masked ones described as masked text.
    Built once per combination of roles."""
    cached = getattr(rt, _CACHE_KEY, None)
    if cached is None:
        cached = {None: build_document(rt)}
        setattr(rt, _CACHE_KEY, cached)
    key = None if access is None else access.roles
    if key not in cached:
        assert access is not None
        cached[key] = _view(rt, cached[None], access)
    return cached[key]


def _allowed(operation: dict, access: Access) -> bool:
    alternatives, needs = operation.get(ACCESS), operation.get(NEEDS, ())
    if operation.get(ADMIN_ONLY) and ADMIN_ROLE not in access.roles:
        return False
    return ((alternatives is None or any(access.allows(entity, action) for entity, action in alternatives))
            and all(access.allows(entity, action) for entity, action in needs))


def _view(rt: Runtime, full: dict, access: Access) -> dict:
    doc = json.loads(json.dumps(full))  # a deep copy, several times faster than copy.deepcopy here
    schemas, paths = doc["components"]["schemas"], doc["paths"]
    for path, operations in list(paths.items()):
        for method, operation in list(operations.items()):
            if not _allowed(operation, access):
                del operations[method]
        if not operations:
            del paths[path]
    used_entities = set()
    for name, entity in rt.spec.entities.items():
        ea = access.entity(name)
        read_name = type(rt.schemas[name].read).__name__
        if not ea.scopes:
            for suffix in ("", "Create", "Update"):
                schemas.pop(read_name + suffix, None)
            continue
        used_entities.add(name)
        hidden = set(entity.fields) - ea.visible
        masked = {n for n, _ in ea.masked}
        for suffix in ("", "Create", "Update"):
            schema = schemas.get(read_name + suffix, {})
            properties = schema.get("properties", {})
            for field_name in hidden:
                properties.pop(field_name, None)
            if suffix:
                for field_name, prop in properties.items():
                    if field_name in ("id", "version"):
                        continue  # as the whole document says: ignored on create, the precondition on update
                    if field_name == "owner_id" and not ea.allows("assign") or \
                            field_name in entity.fields and not entity.fields[field_name].system \
                            and field_name not in ea.writable:
                        prop["readOnly"] = True
            else:
                if TAGS in properties.get("tags", {}):
                    visible_tags = list(rt.queries.tag_catalog.visible(access, name))
                    properties["tags"]["items"]["enum"] = visible_tags
                for field_name in masked & set(properties):
                    properties[field_name] = {"type": ["string", "null"], "readOnly": True,
                                              "description": "Masked for you (e.g. 138****5678)."}
            if "required" in schema:
                schema["required"] = [r for r in schema["required"] if r not in hidden]
    parameters = doc["components"].get("parameters", {})
    for key, parameter in list(parameters.items()):
        if not _keep_parameter(rt, parameter, access):
            del parameters[key]
    for operations in paths.values():
        for operation in operations.values():
            if "parameters" in operation:
                operation["parameters"] = [
                    p for p in operation["parameters"]
                    if ("$ref" in p and p["$ref"].rsplit("/", 1)[1] in parameters)
                    or ("$ref" not in p and _keep_parameter(rt, p, access))]
    doc["tags"] = [t for t in doc.get("tags", []) if t["name"] in used_entities or t["name"] not in rt.spec.entities]
    bin_listing = paths.get("/api/v1/recycle_bin", {}).get("get")
    if bin_listing is not None:
        bin_listing["parameters"][0]["schema"]["enum"] = [e for e in rt.spec.entities if access.allows(e, "delete")]
    return doc


def _keep_parameter(rt: Runtime, parameter: dict, access: Access) -> bool:
    """Whether the caller's view keeps a parameter: not those of fields they
    may not filter or sort on (hidden, or masked); `sort`, `fields` and `q`
    narrowed to what they may use (changed in place)."""
    entity_name = parameter.get(ENTITY)
    if entity_name is None:
        return True
    entity = rt.spec.entities[entity_name]
    ea = access.entity(entity_name)
    if parameter.get(TAGS) == "views":
        usable = rt.queries.tag_catalog.views(access, entity_name)
        shown = [name for name in parameter["schema"]["enum"] if name in usable]
        parameter["schema"]["enum"] = shown
        return bool(shown)
    if parameter.get(TAGS):
        visible = [name for name in parameter["schema"]["items"]["enum"]
                   if name in rt.queries.tag_catalog.visible(access, entity_name)]
        parameter["schema"]["items"]["enum"] = visible
        return bool(visible)
    field = parameter.get(FIELD)
    if field is not None:
        return field in ea.readable
    if parameter["name"] == "sort":
        items = parameter["schema"]["items"]
        items["enum"] = [k for k in items["enum"] if k.lstrip("-") in ea.readable]
    elif parameter["name"] == "fields":
        items = parameter["schema"]["items"]
        items["enum"] = [k for k in items["enum"] if k in ea.visible]
    elif parameter["name"] == "q":
        searchable = [n for n in entity.list.search if n in ea.readable]
        if not searchable:
            return False
        parameter["description"] = "Search in: " + ", ".join(searchable)
    return True
