"""The API of the caller (/me), users, teams and API tokens.

Users and teams are platform entities under the same role model as records
(crmkit.identity): the directory checks every write and every single user or
team read against the caller's roles; the routes parse and answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Response, request

from ..errors import NotFound, ValidationFailed
from ..permissions import audit_changes
from . import api
from .http import (
    current_actor,
    json_response,
    page_response,
    parse_record_id,
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


def _id(text: str) -> int:
    return parse_record_id(text)


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


@api.delete("/me/tokens/<rid:token_id>")
def revoke_my_token(token_id: str):
    return _revoke_token(_me(), token_id)


def _tokens(user_id: int) -> Response:
    return json_response({"data": [token_json(t) for t in runtime().directory.tokens(user_id, current_actor())]})


def _new_token(user_id: int) -> Response:
    data = read_object('{"name": ...}')
    unknown = sorted(set(data) - {"name", "expires_days"})
    if unknown:
        raise ValidationFailed(f"unknown field '{unknown[0][:40]}'", {k[:40]: ["unknown field"] for k in unknown})
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
    """Users within the caller's scope, as a list (limit, cursor, sort, filters
    such as team_id=3 or active=true, q on user and display names, count)."""
    return _list("user")


def _list(name: str, item=None) -> Response:
    """A list of users, teams or audit entries, in the grammar of entity lists."""
    rt = runtime()
    actor = current_actor()
    if not rt.permissions.of(actor).allows(name, "read"):
        raise rt.directory.refuse(actor, name, "read")
    source = rt.queries.platform[name]
    list_request = rt.queries.parse_list(source, request.args.items(multi=True), rt.permissions.of(actor))
    with rt.engine.connect() as conn:
        page = rt.queries.page(conn, source, list_request, actor=actor)
    return page_response(source, page, list_request.fields, item)


@api.get("/users/<rid:user_id>")
def get_user(user_id: str):
    return json_response({"data": user_json(runtime().directory.get_user(_id(user_id), current_actor()))})


@api.post("/users")
def create_user():
    row = runtime().directory.create_user(read_object(), current_actor())
    return json_response({"data": user_json(row)}, 201, {"Location": f"/api/v1/users/{row['id']}"})


@api.patch("/users/<rid:user_id>")
def update_user(user_id: str):
    data = read_object()
    return json_response({"data": user_json(runtime().directory.update_user(_id(user_id), data, current_actor()))})


@api.get("/users/<rid:user_id>/tokens")
def user_tokens(user_id: str):
    return _tokens(_id(user_id))


@api.post("/users/<rid:user_id>/tokens")
def create_user_token(user_id: str):
    """A token for another user (an integration account): needs update on that user."""
    return _new_token(_id(user_id))


@api.delete("/users/<rid:user_id>/tokens/<rid:token_id>")
def revoke_user_token(user_id: str, token_id: str):
    return _revoke_token(_id(user_id), token_id)


# ------------------------------------------------------------------ teams

@api.get("/teams")
def list_teams():
    """Teams within the caller's scope, as a list (filters such as parent_id=2, q, count)."""
    return _list("team")


@api.get("/teams/<rid:team_id>")
def get_team(team_id: str):
    return json_response({"data": team_json(runtime().directory.get_team(_id(team_id), current_actor()))})


@api.post("/teams")
def create_team():
    row = runtime().directory.create_team(read_object(), current_actor())
    return json_response({"data": team_json(row)}, 201, {"Location": f"/api/v1/teams/{row['id']}"})


@api.patch("/teams/<rid:team_id>")
def update_team(team_id: str):
    data = read_object()
    return json_response({"data": team_json(runtime().directory.update_team(_id(team_id), data, current_actor()))})


# ------------------------------------------------------------------ audit trail

@api.get("/audit")
def audit_trail():
    """The audit trail, newest first, within the caller's ``audit`` read scope
    (all, or the entries of their own actions, their team's ...), as a list:
    filters such as entity=customer, record_id=5, action=update, actor_id=3,
    at__gte=2026-01-01T00:00:00Z; pages by cursor. The values of records are
    shown to readers of every record of the entity."""
    rt = runtime()
    access = rt.permissions.of(current_actor())

    def visible(entry: dict) -> dict:
        if "changes" in entry:
            entity = rt.spec.entities.get(entry.get("entity", ""))
            entry["changes"] = audit_changes(access, entity, entry["changes"])
        return entry

    return _list("audit", visible)
