"""The API of the caller (/me), users, teams and API tokens.

Users and teams are platform entities under the same role model as records:
a role grants ``user`` and ``team`` actions with scopes (own user = yourself,
team = the users of your team, ...). Setting a user's roles is the ``assign``
action on ``user``; nothing here is open to a role that does not grant it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from flask import Response, request

from ..errors import BadRequest, Forbidden, NotFound, ValidationFailed
from ..permissions import refusal, scope_params
from . import api
from .http import (
    current_actor,
    json_response,
    parse_record_id,
    parse_whole_number,
    read_json,
    read_object,
    runtime,
)


def _iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def user_json(row: Mapping) -> dict:
    return {"id": row["id"], "username": row["username"], "display_name": row["display_name"],
            "email": row["email"], "mobile": row["mobile"], "active": row["active"], "roles": list(row["roles"] or ()),
            "team_id": row["team_id"], "superior_id": row["superior_id"], "last_login_at": _iso(row["last_login_at"]),
            "created_at": _iso(row["created_at"]), "updated_at": _iso(row["updated_at"])}


def team_json(row: Mapping) -> dict:
    return {"id": row["id"], "name": row["name"], "label": row["label"], "parent_id": row["parent_id"],
            "created_at": _iso(row["created_at"]), "updated_at": _iso(row["updated_at"])}


def token_json(row: Mapping) -> dict:
    return {"id": row["id"], "name": row["name"], "hint": row["hint"] + "…", "created_at": _iso(row["created_at"]),
            "expires_at": _iso(row["expires_at"]), "last_used_at": _iso(row["last_used_at"]),
            "revoked_at": _iso(row["revoked_at"])}


def _denied(entity: str, action: str, record_id: int | None = None, message: str | None = None) -> Forbidden:
    target = f"this {entity}" if record_id is not None else f"{entity}s"
    return refusal(current_actor(), f"crmkit_{entity}", action, target, record_id, message)


def _scoped(entity: str, action: str, record_id: int | None = None) -> sa.Select:
    """Rows of users or teams within the caller's scope of an action (403 when none)."""
    rt = runtime()
    actor = current_actor()
    ea = rt.permissions.of(actor).entity(entity)
    if not ea.allows(action):
        raise _denied(entity, action, record_id)
    table = rt.queries.scopes.table(entity)
    query = sa.select(table)
    scope = rt.queries.scopes.predicate(entity, ea.scope(action))
    if scope is not None:
        query = query.where(scope)
    if record_id is not None:
        query = query.where(table.c.id == record_id)
    return query


def _one(entity: str, action: str, record_id: int) -> Mapping:
    """A user or team the caller's scope of ``action`` covers: 404 if they cannot
    even read it, 403 if they can read but not act on it."""
    rt = runtime()
    params = scope_params(current_actor())
    with rt.engine.connect() as conn:
        row = conn.execute(_scoped(entity, "read", record_id), params).mappings().first()
        if row is None:
            raise NotFound(f"no {entity} {record_id}")
        if action != "read" and conn.execute(_scoped(entity, action, record_id), params).first() is None:
            raise _denied(entity, action, record_id)
    return row


def _id(text: str) -> int:
    return parse_record_id(text)


# ------------------------------------------------------------------ me

@api.get("/me")
def me():
    actor = current_actor()
    return json_response({"data": user_json(runtime().directory.user(actor.id))})


@api.patch("/me")
def update_me():
    """Your own display name, email and mobile."""
    data = read_object()
    allowed = {"display_name", "email", "mobile"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValidationFailed(f"you can change only {', '.join(sorted(allowed))} here",
                               {k: ["cannot be changed here"] for k in unknown})
    actor = current_actor()
    return json_response({"data": user_json(runtime().directory.update_user(actor.id, data, by=actor))})


@api.post("/me/password")
def change_my_password():
    """``{"current_password", "new_password"}``; ends your other sessions."""
    data = read_json()
    if not isinstance(data, dict) or not isinstance(data.get("current_password"), str):
        raise ValidationFailed("send current_password and new_password", {"current_password": ["is required"]})
    directory = runtime().directory
    actor = current_actor()
    if not directory.verify(actor.id, data["current_password"]):
        raise Forbidden("the current password is wrong", {"current_password": ["is wrong"]}, code="wrong_password")
    directory.update_user(actor.id, {"password": data.get("new_password")}, by=actor)
    return Response(status=204)


@api.get("/me/permissions")
def my_permissions():
    """What the caller may do: per entity, each action's scope and the fields
    that are hidden, masked or read-only for them; screens hide the rest."""
    rt = runtime()
    actor = current_actor()
    access = rt.permissions.of(actor)
    entities = {}
    for name, summary in rt.permissions.explain(access.roles).items():
        ea = access.entity(name)
        entry: dict[str, Any] = {"actions": summary["actions"]}
        if name in rt.spec.entities:
            entry["fields"] = {f: level for f, level in summary["fields"].items() if level != "hidden"}
            entry["visible"] = [f for f in rt.spec.entities[name].fields if f in ea.visible]
        entities[name] = entry
    return json_response({"data": {"user": {"id": actor.id, "username": actor.name, "team_id": actor.team_id},
                                   "roles": list(access.roles), "entities": entities}})


@api.get("/me/tokens")
def my_tokens():
    return json_response({"data": [token_json(t) for t in runtime().directory.tokens(current_actor().id)]})


@api.post("/me/tokens")
def create_my_token():
    """``{"name", "expires_days"?}``; the token is in the answer, once."""
    return _new_token(current_actor().id)


@api.delete("/me/tokens/<rid:token_id>")
def revoke_my_token(token_id: str):
    actor = current_actor()
    runtime().directory.revoke_token(actor.id, _id(token_id), by=actor)
    return Response(status=204)


def _new_token(user_id: int) -> Response:
    data = read_object('{"name": ...}')
    unknown = sorted(set(data) - {"name", "expires_days"})
    if unknown:
        raise ValidationFailed(f"unknown field '{unknown[0][:40]}'", {k[:40]: ["unknown field"] for k in unknown})
    days = data.get("expires_days")
    if days is not None and (isinstance(days, bool) or not isinstance(days, int)):
        raise ValidationFailed("expires_days must be a whole number", {"expires_days": ["must be a whole number"]})
    token = runtime().directory.create_token(user_id, data.get("name") or "", expires_days=days, by=current_actor())
    return json_response({"data": {"id": token.id, "name": token.name, "token": token.token,
                                   "expires_at": _iso(token.expires_at)}}, 201)


# ------------------------------------------------------------------ users

@api.get("/users")
def list_users():
    rt = runtime()
    query = _scoped("user", "read")
    users = rt.tables.users
    if "team_id" in request.args:
        query = query.where(users.c.team_id == parse_whole_number("team_id", request.args["team_id"]))
    if "active" in request.args:
        if request.args["active"] not in ("true", "false"):
            raise BadRequest("active must be true or false", {"active": ["must be true or false"]},
                             code="invalid_parameter")
        query = query.where(users.c.active.is_(request.args["active"] == "true"))
    if request.args.get("q"):
        text = request.args["q"]
        query = query.where(sa.or_(users.c.username.icontains(text, autoescape=True),
                                   users.c.display_name.icontains(text, autoescape=True)))
    with rt.engine.connect() as conn:
        rows = conn.execute(query.order_by(users.c.id).limit(1000), scope_params(current_actor())).mappings().all()
    return json_response({"data": [user_json(r) for r in rows]})


@api.get("/users/<rid:user_id>")
def get_user(user_id: str):
    return json_response({"data": user_json(_one("user", "read", _id(user_id)))})


@api.post("/users")
def create_user():
    data = read_object()
    actor = current_actor()
    access = runtime().permissions.of(actor).entity("user")
    if not access.allows("create"):
        raise _denied("user", "create")
    if data.get("roles") and not access.allows("assign"):
        raise _denied("user", "assign", message="your role does not allow you to give users roles")
    row = runtime().directory.create_user(data, by=actor)
    return json_response({"data": user_json(row)}, 201, {"Location": f"/api/v1/users/{row['id']}"})


@api.patch("/users/<rid:user_id>")
def update_user(user_id: str):
    data = read_object()
    rid = _id(user_id)
    if set(data) - {"roles"} or not data:
        _one("user", "update", rid)
    if "roles" in data:
        _one("user", "assign", rid)
    actor = current_actor()
    return json_response({"data": user_json(runtime().directory.update_user(rid, data, by=actor))})


@api.get("/users/<rid:user_id>/tokens")
def user_tokens(user_id: str):
    rid = _id(user_id)
    _one("user", "update", rid)
    return json_response({"data": [token_json(t) for t in runtime().directory.tokens(rid)]})


@api.post("/users/<rid:user_id>/tokens")
def create_user_token(user_id: str):
    """A token for another user (an integration account): needs update on that user."""
    rid = _id(user_id)
    _one("user", "update", rid)
    return _new_token(rid)


@api.delete("/users/<rid:user_id>/tokens/<rid:token_id>")
def revoke_user_token(user_id: str, token_id: str):
    rid = _id(user_id)
    _one("user", "update", rid)
    runtime().directory.revoke_token(rid, _id(token_id), by=current_actor())
    return Response(status=204)


# ------------------------------------------------------------------ teams

@api.get("/teams")
def list_teams():
    rt = runtime()
    with rt.engine.connect() as conn:
        rows = conn.execute(_scoped("team", "read").order_by(rt.tables.teams.c.id),
                            scope_params(current_actor())).mappings().all()
    return json_response({"data": [team_json(r) for r in rows]})


@api.get("/teams/<rid:team_id>")
def get_team(team_id: str):
    return json_response({"data": team_json(_one("team", "read", _id(team_id)))})


@api.post("/teams")
def create_team():
    data = read_object()
    if not runtime().permissions.of(current_actor()).allows("team", "create"):
        raise _denied("team", "create")
    unknown = sorted(set(data) - {"name", "label", "parent_id"})
    if unknown:
        raise ValidationFailed(f"unknown field '{unknown[0]}'", {k: ["unknown field"] for k in unknown})
    row = runtime().directory.create_team(data.get("name"), data.get("label"), data.get("parent_id"),
                                          by=current_actor())
    return json_response({"data": team_json(row)}, 201, {"Location": f"/api/v1/teams/{row['id']}"})


@api.patch("/teams/<rid:team_id>")
def update_team(team_id: str):
    data = read_object()
    rid = _id(team_id)
    _one("team", "update", rid)
    return json_response({"data": team_json(runtime().directory.update_team(rid, data, by=current_actor()))})


# ------------------------------------------------------------------ audit trail

@api.get("/audit")
def audit_trail():
    """The audit trail, newest first, within the caller's ``audit`` read scope
    (all, or the entries of their own actions, their team's ...). Filters:
    entity, record_id, action, actor_id, before (an entry id, for the next page)."""
    rt = runtime()
    audit = rt.tables.audit
    query = _scoped("audit", "read")
    for key in ("entity", "action"):
        if request.args.get(key):
            query = query.where(audit.c[key] == request.args[key])
    for key in ("record_id", "actor_id", "before"):
        text = request.args.get(key)
        if text is None:
            continue
        if not (text.isascii() and text.isdigit()) or len(text) > 10:
            raise BadRequest(f"{key} must be a whole number", {key: ["must be a whole number"]},
                             code="invalid_parameter")
        column = audit.c.id if key == "before" else audit.c[key]
        query = query.where(column < int(text) if key == "before" else column == int(text))
    with rt.engine.connect() as conn:
        rows = conn.execute(query.order_by(audit.c.id.desc()).limit(200), scope_params(current_actor())).mappings().all()
    data = [{"id": r["id"], "entity": r["entity"], "record_id": r["record_id"], "action": r["action"],
             "actor": r["actor"], "actor_id": r["actor_id"], "at": _iso(r["at"]),
             "changes": _audit_changes(r)} for r in rows]
    return json_response({"data": data, "next_before": data[-1]["id"] if len(data) == 200 else None})


def _audit_changes(row: Mapping) -> Any:
    """Record changes as the caller may see them (field rules); platform entries as they are."""
    from .records import _visible_changes

    rt = runtime()
    entity = rt.spec.entities.get(row["entity"])
    if entity is None:
        return row["changes"]
    ea = rt.permissions.of(current_actor()).entity(entity.name)
    if ea.scope("read") != frozenset({"all"}):
        return None  # the values of records outside their read scope are not theirs to see
    return _visible_changes(entity, ea, row["changes"])
