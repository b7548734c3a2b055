"""The shell of the business screens (/app/...): the layout every screen
extends (top bar, navigation, search box, messages) and the pages that are
the language switch. The screens are in their own modules on this blueprint
(crmkit.ui.home, lists, record, forms, boards, calendars).

A view gathers what the services return and renders it; it never builds SQL
and never decides a permission itself (the access of the user does).

The top bar and the navigation are the same for everyone with the same roles,
language and page: they are rendered once per such key (crmkit.ui.fragments)
with marks where the one user's values go (their name, their anti-forgery
token, the page's own path and search text), and those are put in, escaped,
on every page. Nothing of one user is ever kept in the shared HTML.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, NoReturn

from flask import Blueprint, Flask, abort, current_app, g, render_template, request
from jinja2.runtime import Context
from jinja2.utils import pass_context
from markupsafe import Markup
from werkzeug.exceptions import Forbidden, HTTPException

from ..api.http import current_actor
from ..errors import Forbidden as CrmForbidden
from ..permissions import ADMIN_ROLE
from ..runtime import Runtime
from .fragments import fill, kept_parts, mark
from .i18n import locale, offered, remember_language
from .navigation import navigation
from .security import redirect_to

bp = Blueprint("crmkit_app", __name__, url_prefix="/app")

#: The parts of the shell kept rendered, each a template of its own.
SHELL_PARTS = {"topbar": "_topbar.html", "nav": "_nav.html"}


def _runtime() -> Runtime:
    return current_app.extensions["crmkit"]


@bp.app_template_global()
@pass_context
def shell_part(context: Context, name: str) -> Markup:
    """A part of the shell (``topbar`` or ``nav``) for this user, from the kept ones.

    The key holds everything the parts read that is not a mark: the language
    (labels, the language switch), the roles (the menu, the admin links), the
    entity or home page the menu marks current, and the path the app is
    mounted at (the links). The user's name and token, the page's path and
    its search text are put in per request."""
    rt = _runtime()
    actor = context["actor"]
    access = rt.permissions.of(actor)
    entity_name = (request.view_args or {}).get("entity_name")
    current = (request.endpoint == "crmkit_app.home", entity_name if entity_name in rt.spec.entities else None)
    key = ("shell", name, locale(), access.roles, access.system, request.script_root, current)

    own = user_parts()

    def render() -> str:
        marked = {**context.get_all(), "actor": SimpleNamespace(name=mark("name")), "csrf_token": mark("csrf"),
                  "shell_here": mark("here"), "query": mark("query"),
                  **{f"{part}_item": mark(part) for part in own}}
        return context.environment.get_template(SHELL_PARTS[name]).render(marked)

    return fill(kept_parts().get(key, render), {
        "name": actor.name, "csrf": context.get("csrf_token", ""), "here": request.full_path.strip("?"),
        "query": context.get("query", ""),
        **{part: (lambda made=made: made(rt, actor)) for part, made in own.items()}})


#: Makes one user's own item of the shell (a count, a badge): HTML for this user, now.
UserPart = Callable[[Runtime, Any], Markup]


def user_parts() -> dict[str, UserPart]:
    """The shell's items that are each user's own (``NAME_item`` in _topbar.html
    and _nav.html): never kept, made per request, and only when the part being
    filled holds their mark. Plugins add theirs with :func:`add_user_part`."""
    return current_app.extensions.setdefault("crmkit_user_parts", {"approvals": _approvals_item})


def add_user_part(app: Flask, name: str, made: UserPart) -> None:
    """Add an item of the shell that is each user's own (see :func:`user_parts`)."""
    with app.app_context():
        user_parts()[name] = made


def _approvals_item(rt: Runtime, actor: Any) -> Markup:
    """The navigation's link to the approvals waiting for this user (nothing when none do)."""
    from .approvals import waiting_count

    return Markup(render_template("_nav_approvals.html", approvals_waiting=waiting_count(rt, actor)))


@bp.context_processor
def shell_context() -> dict[str, Any]:
    """What the layout needs on every page: the app, the user, their menu."""
    rt = _runtime()
    actor = current_actor()
    access = rt.permissions.of(actor)
    return {"spec": rt.spec, "actor": actor, "csrf_token": g.get("crmkit_csrf", ""),
            "nav_groups": navigation(rt.spec, access), "is_admin": ADMIN_ROLE in access.roles}


@bp.post("/language")
def choose_language():
    """The language switch: remembered for this browser (a cookie) and on
    the user (their messages are written in it), then back to the page it
    was used on."""
    language = request.form.get("lang", "")
    response = redirect_to(request.form.get("next"))
    if language in offered():
        remember_language(response, language)
        _runtime().directory.remember_language(current_actor(), language)
    return response


def refuse(what: str) -> NoReturn:
    """403 with the forbidden page saying what was refused: ``what`` completes
    "Your role does not allow you to …" (``gettext("create a %(entity)s")``)."""
    abort(403, description=what)


@bp.errorhandler(HTTPException)
def error_page(exc: HTTPException):
    """A screen's 403, 404 or 405 inside the shell, in the user's language; a
    403 says what was refused (what the screen told :func:`refuse`, else the page)."""
    refused = ""
    if exc.code == 403:
        refused = (exc.description or "") if exc.description != Forbidden.description else ""
    return render_template("error.html", error=exc, refused=refused, path=request.path), exc.code or 500


@bp.errorhandler(CrmForbidden)
def service_refusal(exc: CrmForbidden):
    """A refusal of the records service that a screen did not handle: the
    forbidden page in the shell (the API's JSON is for API clients), audited
    as the API's refusals are."""
    if exc.denial:
        _runtime().audit.denial(exc.denial)
    return render_template("error.html", error=SimpleNamespace(code=403), refused="", path=request.path), 403
