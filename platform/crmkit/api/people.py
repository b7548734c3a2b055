"""The API of the caller (/me), users, teams and API tokens.

Users and teams are platform entities under the same role model as records
(crmkit.identity): the directory checks every write and every single user or
team read against the caller's roles; the routes parse and answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from flask import Response, request

from ..errors import BadRequest, NotFound
from ..permissions import scope_params
from . import api
from .http import current_actor, json_response, read_json, read_object, runtime


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


def _scoped(entity: str, action: str) -> sa.Select:
    """Rows of users or teams within the caller's scope of an action (403 when none)."""
    return runtime().directory.scoped(current_actor(), entity, action)


def _id(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        raise NotFound(f"no record with id '{text}'")
    return int(text)


# ------------------------------------------------------------------ me

def _me() -> int:
    """The caller's user id (authentication lets only users in)."""
    actor = current_actor()
    if actor.id is None:
        raise NotFound(f"{actor.name} is not a user")
    return actor.id


@api.get("/me")
def me():
    return json_response({"data": user_json(runtime().directory.user(_me()))})


@api.patch("/me")
def update_me():
    """Your own display name, email and mobile."""
    return json_response({"data": user_json(runtime().directory.update_profile(read_object(), current_actor()))})


@api.post("/me/password")
def change_my_password():
    """``{"current_password", "new_password"}``; ends your other sessions."""
    data = read_json()
    body = data if isinstance(data, dict) else {}
    runtime().directory.change_password(body.get("current_password"), body.get("new_password"), current_actor())
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
    return _tokens(_me())


@api.post("/me/tokens")
def create_my_token():
    """``{"name", "expires_days"?}``; the token is in the answer, once."""
    return _new_token(_me())


@api.delete("/me/tokens/<token_id>")
def revoke_my_token(token_id: str):
    return _revoke_token(_me(), token_id)


def _tokens(user_id: int) -> Response:
    return json_response({"data": [token_json(t) for t in runtime().directory.tokens(user_id, current_actor())]})


def _new_token(user_id: int) -> Response:
    data = read_object('{"name": ...}')
    token = runtime().directory.create_token(user_id, data.get("name") or "", current_actor(),
                                             expires_days=data.get("expires_days"))
    return json_response({"data": {"id": token.id, "name": token.name, "token": token.token,
                                   "expires_at": _iso(token.expires_at)}}, 201)


def _revoke_token(user_id: int, token_id: str) -> Response:
    runtime().directory.revoke_token(user_id, _id(token_id), current_actor())
    return Response(status=204)


# ------------------------------------------------------------------ users

@api.get("/users")
def list_users():
    rt = runtime()
    query = _scoped("user", "read")
    users = rt.tables.users
    if request.args.get("team_id", "").isdigit():
        query = query.where(users.c.team_id == int(request.args["team_id"]))
    if "active" in request.args:
        query = query.where(users.c.active.is_(request.args["active"].lower() in ("true", "1", "yes")))
    if request.args.get("q"):
        text = request.args["q"]
        query = query.where(sa.or_(users.c.username.icontains(text, autoescape=True),
                                   users.c.display_name.icontains(text, autoescape=True)))
    with rt.engine.connect() as conn:
        rows = conn.execute(query.order_by(users.c.id).limit(1000), scope_params(current_actor())).mappings().all()
    return json_response({"data": [user_json(r) for r in rows]})


@api.get("/users/<user_id>")
def get_user(user_id: str):
    return json_response({"data": user_json(runtime().directory.get_user(_id(user_id), current_actor()))})


@api.post("/users")
def create_user():
    row = runtime().directory.create_user(read_object(), current_actor())
    return json_response({"data": user_json(row)}, 201, {"Location": f"/api/v1/users/{row['id']}"})


@api.patch("/users/<user_id>")
def update_user(user_id: str):
    data = read_object()
    return json_response({"data": user_json(runtime().directory.update_user(_id(user_id), data, current_actor()))})


@api.get("/users/<user_id>/tokens")
def user_tokens(user_id: str):
    return _tokens(_id(user_id))


@api.post("/users/<user_id>/tokens")
def create_user_token(user_id: str):
    """A token for another user (an integration account): needs update on that user."""
    return _new_token(_id(user_id))


@api.delete("/users/<user_id>/tokens/<token_id>")
def revoke_user_token(user_id: str, token_id: str):
    return _revoke_token(_id(user_id), token_id)


# ------------------------------------------------------------------ teams

@api.get("/teams")
def list_teams():
    rt = runtime()
    with rt.engine.connect() as conn:
        rows = conn.execute(_scoped("team", "read").order_by(rt.tables.teams.c.id),
                            scope_params(current_actor())).mappings().all()
    return json_response({"data": [team_json(r) for r in rows]})


@api.get("/teams/<team_id>")
def get_team(team_id: str):
    return json_response({"data": team_json(runtime().directory.get_team(_id(team_id), current_actor()))})


@api.post("/teams")
def create_team():
    row = runtime().directory.create_team(read_object(), current_actor())
    return json_response({"data": team_json(row)}, 201, {"Location": f"/api/v1/teams/{row['id']}"})


@api.patch("/teams/<team_id>")
def update_team(team_id: str):
    data = read_object()
    return json_response({"data": team_json(runtime().directory.update_team(_id(team_id), data, current_actor()))})


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
