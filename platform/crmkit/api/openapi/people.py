"""The people area: the caller (me, their password and tokens), users and their
tokens, teams, and the audit trail."""

from __future__ import annotations

from ...identity import MIN_PASSWORD
from .parameters import _ListParameters
from .pieces import LOCATION, _array, _data, _errors, _ok, _page, _path_id, _ref


class _PeoplePaths(_ListParameters):
    """me, users, teams, audit."""

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
