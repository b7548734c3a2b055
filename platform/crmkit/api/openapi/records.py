"""The records area: an entity's request bodies and its routes (list, create,
bulk, export, one record, history, workflow moves, sharing, the pool, tags,
relations, restore from the recycle bin)."""

from __future__ import annotations

import copy

from ...fieldtypes import MAX_ID
from ...metadata.spec import EntitySpec, label_text
from ...records import MAX_BULK
from .parameters import _ListParameters
from .pieces import (
    ENTITY,
    ETAG,
    IF_MATCH_PARAMETER,
    LOCATION,
    TAGS,
    _array,
    _data,
    _errors,
    _ok,
    _page,
    _path_id,
    _query,
    _ref,
)


class _RecordPaths(_ListParameters):
    """Each entity's schemas and paths."""

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
