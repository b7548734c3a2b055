"""Users, teams and API tokens in the console: read through the query
builder, written through the directory with the acting admin (the checks
of the API: creating users, giving roles, changing a team...)."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request
from flask_admin import expose
from flask_babel import gettext as _
from flask_babel import lazy_gettext

from ...errors import CrmError
from ...query import Source
from ..security import redirect_to
from .base import (
    ConsoleView,
    ServiceModelView,
    Submitted,
    actor,
    first_url,
    list_args,
    next_url,
    page_rows,
    read_page,
    report,
    runtime,
)

#: At most this many rows are read for a picker or a tree (teams; users by id).
PICKER_ROWS = 1000


def all_rows(source: Source, args: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Every row of a small list (teams), page after page, within the admin's scope."""
    rt = runtime()
    rows: list[dict[str, Any]] = []
    cursor: list[tuple[str, str]] = []
    while len(rows) < PICKER_ROWS:
        page, _request = read_page(source, [*args, ("limit", str(rt.spec.max_page_size)), *cursor])
        if page is None:
            break
        rows.extend(page_rows(source, page))
        if not page.next:
            break
        cursor = [("cursor", page.next)]
    return rows


def teams() -> list[dict[str, Any]]:
    return all_rows(runtime().queries.platform["team"], [("sort", "name")])


def user_names(ids: set[int]) -> dict[int, str]:
    """User names of these ids (those within the admin's read scope)."""
    wanted = sorted(i for i in ids if i)
    if not wanted:
        return {}
    rows = all_rows(runtime().queries.platform["user"], [("id__in", ",".join(map(str, wanted[:500])))])
    return {row["id"]: row["username"] for row in rows}


def _text(name: str) -> str | None:
    value = request.form.get(name, "").strip()
    return value or None


def _reference(name: str) -> Any:
    """A team or superior from the form: an id (digits) or a name, the
    directory's own ways to name them; nothing chosen is None."""
    value = _text(name)
    return int(value) if value is not None and value.isascii() and value.isdigit() and len(value) <= 10 else value


# ---------------------------------------------------------------- users

class UsersView(ServiceModelView):
    column_list = ("username", "display_name", "roles", "team_id", "superior_id", "active", "last_login_at")
    list_template = "admin/users/list.html"
    create_template = edit_template = "admin/users/form.html"
    details_template = "admin/users/details.html"

    def __init__(self) -> None:
        super().__init__(lazy_gettext("Users"), "crmkit_admin_users", "/admin/users")

    def source(self) -> Source:
        return runtime().queries.platform["user"]

    # The model view's contract, on the directory.
    def get_one(self, id: Any) -> Any:
        try:
            return runtime().directory.get_user(int(id), actor())
        except (CrmError, ValueError):
            return None

    def create_model(self, form: Any) -> Any:
        return runtime().directory.create_user(form.data, actor())

    def update_model(self, form: Any, model: Any) -> Any:
        return runtime().directory.update_user(model["id"], form.data, actor())

    def delete_model(self, model: Any) -> bool:
        """Users are disabled, never deleted: their records and audit entries name them."""
        runtime().directory.update_user(model["id"], {"active": False}, actor())
        return True

    # Pages.
    @expose("/")
    def index_view(self) -> Any:
        page, list_request = read_page(self.source(), list_args())
        rows = page_rows(self.source(), page)
        all_teams = teams()
        team_labels = {t["id"]: t["label"] for t in all_teams}
        superiors = user_names({r["superior_id"] for r in rows if r.get("superior_id")})
        return self.render(self.list_template, rows=rows, team_labels=team_labels, superiors=superiors,
                           teams=all_teams, next_url=next_url(page), first_url=first_url(), args=request.args,
                           role_labels=runtime().permissions.roles)

    def _form_data(self, old: Any = None) -> dict[str, Any]:
        """What the form sends, as the directory takes it; on edit only what changed
        (so that changing a name needs no right to give roles)."""
        data: dict[str, Any] = {
            "display_name": _text("display_name"), "email": _text("email"), "mobile": _text("mobile"),
            "roles": request.form.getlist("roles"), "team_id": _reference("team_id"),
            "superior_id": _reference("superior_id"),
        }
        if old is None:
            data["username"] = request.form.get("username", "").strip()
            if data["display_name"] is None:
                del data["display_name"]
            if not data["roles"]:
                del data["roles"]
            password = request.form.get("password", "")
            if password:
                data["password"] = password
            return {k: v for k, v in data.items() if v is not None or k in ("team_id", "superior_id")}
        superior = old["superior_id"]
        changed = {}
        for key, value in data.items():
            current = list(old[key] or ()) if key == "roles" else old[key]
            if key == "superior_id" and isinstance(value, str):
                current = user_names({superior}).get(superior) if superior else None
            if key == "team_id" and isinstance(value, str):
                current = next((t["name"] for t in teams() if t["id"] == old["team_id"]), None)
            if value != current:
                changed[key] = value
        return changed

    def _form(self, user: Any, errors: dict[str, list[str]], values: dict[str, Any]) -> Any:
        return self.render(self.edit_template, user=user, errors=errors, values=values, teams=teams(),
                           roles=sorted(runtime().permissions.roles), role_labels=runtime().permissions.roles)

    @expose("/new/", methods=("GET", "POST"))
    def create_view(self) -> Any:
        errors: dict[str, list[str]] = {}
        if request.method == "POST":
            try:
                user = self.create_model(Submitted(self._form_data()))
            except CrmError as exc:
                errors = report(exc)
            else:
                flash(_("User %(name)s was created.", name=user["username"]), "success")
                return redirect(self.get_url(".details_view", id=user["id"]), 303)
        return self._form(None, errors, request.form)

    @expose("/edit/", methods=("GET", "POST"))
    def edit_view(self) -> Any:
        user = self.get_one(request.args.get("id", ""))
        if user is None:
            return self._missing()
        errors: dict[str, list[str]] = {}
        if request.method == "POST":
            try:
                changed = self._form_data(user)
                if changed:
                    self.update_model(Submitted(changed), user)
            except CrmError as exc:
                errors = report(exc)
            else:
                flash(_("User %(name)s was saved.", name=user["username"]), "success")
                return redirect(self.get_url(".details_view", id=user["id"]), 303)
            values: Any = request.form
        else:
            values = {**user, "superior_id": user_names({user["superior_id"]}).get(user["superior_id"], "")
                      if user["superior_id"] else ""}
        return self._form(user, errors, values)

    def _missing(self) -> Any:
        flash(_("No such user."), "error")
        return redirect(self.get_url(".index_view"), 303)

    @expose("/details/")
    def details_view(self) -> Any:
        rt = runtime()
        user = self.get_one(request.args.get("id", ""))
        if user is None:
            return self._missing()
        try:
            tokens = rt.directory.tokens(user["id"], actor())
        except CrmError:
            tokens = []
        team = next((t for t in teams() if t["id"] == user["team_id"]), None)
        superior = user_names({user["superior_id"]}).get(user["superior_id"]) if user["superior_id"] else None
        return self.render(self.details_template, user=user, tokens=tokens, team=team, superior=superior,
                           role_labels=rt.permissions.roles)

    @expose("/active/", methods=("POST",))
    def active_view(self) -> Any:
        """Disable (sessions end) or enable a user."""
        user_id = request.args.get("id", "")
        user = self.get_one(user_id)
        if user is None:
            return self._missing()
        active = request.form.get("active") == "true"
        try:
            runtime().directory.update_user(user["id"], {"active": active}, actor())
        except CrmError as exc:
            report(exc)
        else:
            flash(_("User %(name)s was enabled.", name=user["username"]) if active
                  else _("User %(name)s was disabled.", name=user["username"]), "success")
        return redirect(self.get_url(".details_view", id=user["id"]), 303)

    @expose("/password/", methods=("POST",))
    def password_view(self) -> Any:
        """Set a new password (the user's sessions end)."""
        user = self.get_one(request.args.get("id", ""))
        if user is None:
            return self._missing()
        try:
            runtime().directory.update_user(user["id"], {"password": request.form.get("password", "")}, actor())
        except CrmError as exc:
            report(exc)
        else:
            flash(_("The password of %(name)s was reset.", name=user["username"]), "success")
        return redirect(self.get_url(".details_view", id=user["id"]), 303)


# ---------------------------------------------------------------- teams

class TeamsView(ServiceModelView):
    column_list = ("name", "label", "parent_id")
    list_template = "admin/teams/list.html"
    create_template = edit_template = "admin/teams/form.html"

    def __init__(self) -> None:
        super().__init__(lazy_gettext("Teams"), "crmkit_admin_teams", "/admin/teams")

    def source(self) -> Source:
        return runtime().queries.platform["team"]

    def get_one(self, id: Any) -> Any:
        try:
            return runtime().directory.get_team(int(id), actor())
        except (CrmError, ValueError):
            return None

    def create_model(self, form: Any) -> Any:
        return runtime().directory.create_team(form.data, actor())

    def update_model(self, form: Any, model: Any) -> Any:
        return runtime().directory.update_team(model["id"], form.data, actor())

    def delete_model(self, model: Any) -> bool:
        raise CrmError("teams are not deleted: move their users and sub-teams instead", code="not_supported")

    @expose("/")
    def index_view(self) -> Any:
        return self.render(self.list_template, tree=team_tree(teams()))

    @expose("/details/")
    def details_view(self) -> Any:
        return redirect(self.get_url(".edit_view", id=request.args.get("id", "")), 303)

    def _form(self, team: Any, errors: dict[str, list[str]], values: Any) -> Any:
        others = [t for t in team_tree(teams()) if team is None or t[1]["id"] != team["id"]]
        return self.render(self.edit_template, team=team, errors=errors, values=values, parents=others)

    @expose("/new/", methods=("GET", "POST"))
    def create_view(self) -> Any:
        errors: dict[str, list[str]] = {}
        if request.method == "POST":
            data = {"name": request.form.get("name", "").strip(), "label": _text("label"),
                    "parent_id": _reference("parent_id")}
            try:
                self.create_model(Submitted(data))
            except CrmError as exc:
                errors = report(exc)
            else:
                flash(_("Team %(name)s was created.", name=data["name"]), "success")
                return redirect(self.get_url(".index_view"), 303)
        return self._form(None, errors, request.form)

    @expose("/edit/", methods=("GET", "POST"))
    def edit_view(self) -> Any:
        team = self.get_one(request.args.get("id", ""))
        if team is None:
            flash(_("No such team."), "error")
            return redirect(self.get_url(".index_view"), 303)
        errors: dict[str, list[str]] = {}
        if request.method == "POST":
            data = {"label": _text("label") or "", "parent_id": _reference("parent_id")}
            changed = {k: v for k, v in data.items() if v != team[k]}
            try:
                if changed:
                    self.update_model(Submitted(changed), team)
            except CrmError as exc:
                errors = report(exc)
            else:
                flash(_("Team %(name)s was saved.", name=team["name"]), "success")
                return redirect(self.get_url(".index_view"), 303)
        return self._form(team, errors, request.form if request.method == "POST" else team)


def team_tree(rows: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """Teams as a tree, depth first: (depth, team); a team whose parent is
    out of sight (or in a loop) is shown at the top."""
    ids = {row["id"] for row in rows}
    children: dict[int | None, list[dict[str, Any]]] = {}
    for row in rows:
        parent = row["parent_id"] if row["parent_id"] in ids else None
        children.setdefault(parent, []).append(row)
    out: list[tuple[int, dict[str, Any]]] = []
    seen: set[int] = set()

    def walk(parent: int | None, depth: int) -> None:
        for row in sorted(children.get(parent, ()), key=lambda r: r["name"]):
            if row["id"] not in seen:
                seen.add(row["id"])
                out.append((depth, row))
                walk(row["id"], depth + 1)

    walk(None, 0)
    out.extend((0, row) for row in rows if row["id"] not in seen)
    return out


# ---------------------------------------------------------------- tokens

class TokensView(ConsoleView):
    """Every API token of the users the admin may change (newest first),
    to see what has access and revoke what should not."""

    def __init__(self) -> None:
        super().__init__(name=lazy_gettext("API tokens"), endpoint="crmkit_admin_tokens", url="/admin/tokens")

    @expose("/")
    def index_view(self) -> Any:
        rt = runtime()
        username = request.args.get("user", "").strip()
        user_id = None
        if username:
            found = all_rows(rt.queries.platform["user"], [("username", username)])
            user_id = found[0]["id"] if found else 0
        try:
            tokens = rt.directory.token_list(actor(), user_id=user_id)
        except CrmError as exc:
            report(exc)
            tokens = []
        return self.render("admin/tokens.html", tokens=tokens, username=username)

    @expose("/revoke/", methods=("POST",))
    def revoke_view(self) -> Any:
        try:
            user_id, token_id = int(request.form.get("user_id", "")), int(request.form.get("token_id", ""))
            runtime().directory.revoke_token(user_id, token_id, actor())
        except ValueError:
            flash(_("No such token."), "error")
        except CrmError as exc:
            report(exc)
        else:
            flash(_("The token was revoked."), "success")
        return redirect_to(request.form.get("next"), self.get_url(".index_view"))
