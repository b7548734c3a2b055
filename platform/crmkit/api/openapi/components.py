"""The component schemas shared by the areas: errors, regions, labels, users,
teams, tokens, the audit trail, automation runs, history, collaborators,
transitions, approvals, permissions."""

from __future__ import annotations

from ... import regions
from ...fieldtypes import JSON_VALUE_SCHEMA, MAX_ID, NAME_TEXT, NO_NUL, REGION_CODE
from ...identity import MIN_PASSWORD, USERNAME
from ...permissions import ACTIONS
from .operations import _Operations
from .pieces import ERROR_SCHEMA, ISO_MOMENT, _array, _level, _ref


class _SharedSchemas(_Operations):
    """The shared component schemas."""

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
