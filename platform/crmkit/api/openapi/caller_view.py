"""A caller's view of the document: the operations their roles allow, fields
hidden from them left out, fields they may not write read-only, masked ones
described as masked; parameters narrowed to what they may filter and sort on.
Cached per combination of roles."""

from __future__ import annotations

import json

from ...permissions import ADMIN_ROLE, Access
from ...runtime import Runtime
from .assembly import build_document
from .pieces import _CACHE_KEY, ACCESS, ADMIN_ONLY, ENTITY, FIELD, NEEDS, TAGS


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
