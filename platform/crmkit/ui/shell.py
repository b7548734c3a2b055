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

import sqlalchemy as sa
from flask import Blueprint, Flask, abort, current_app, g, render_template, request
from jinja2.runtime import Context
from jinja2.utils import pass_context
from markupsafe import Markup
from werkzeug.exceptions import Forbidden, HTTPException

from ..api.http import current_actor
from ..errors import Forbidden as CrmForbidden
from ..permissions import ADMIN_ROLE, Access
from ..runtime import Runtime
from .fragments import fill, kept_parts, mark
from .i18n import locale, offered, remember_language, template_gettext
from .navigation import NavGroup, navigation
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
#: A user part's number as SQL: a scalar subquery on the bind parameter ``user_id``.
UserCount = Callable[[Runtime], "sa.ScalarSelect[Any]"]


def user_parts() -> dict[str, UserPart]:
    """The shell's items that are each user's own (``NAME_item`` in _topbar.html
    and _nav.html): never kept, made per request, and only when the part being
    filled holds their mark. Plugins add theirs with :func:`add_user_part`."""
    return current_app.extensions.setdefault("crmkit_user_parts", {"approvals": _approvals_item})


def _user_counts() -> dict[str, UserCount]:
    return current_app.extensions.setdefault("crmkit_user_part_counts", {"approvals": _approvals_waiting})


def add_user_part(app: Flask, name: str, made: UserPart, *, count: UserCount | None = None) -> None:
    """Add an item of the shell that is each user's own (see :func:`user_parts`);
    ``count``, when it shows a number, is that number as SQL, which the part
    reads with :func:`user_count`."""
    with app.app_context():
        user_parts()[name] = made
        if count is not None:
            _user_counts()[name] = count
        current_app.extensions.pop("crmkit_user_counts_statement", None)


def user_count(rt: Runtime, actor: Any, name: str) -> int:
    """This user's number for the shell's part ``name``. Every part's number
    is read in one statement, once per request (a page shows the bell and the
    approvals badge: one round trip, not one connection each); the statement
    is built once per runtime, its user a bind parameter."""
    if actor.id is None:
        return 0
    counts = g.get("crmkit_user_counts")
    if counts is None:
        kept = current_app.extensions.get("crmkit_user_counts_statement")
        if kept is None or kept[0] is not rt:
            made = _user_counts()
            statement = sa.select(*(count(rt).label(part) for part, count in made.items()))
            kept = current_app.extensions["crmkit_user_counts_statement"] = (rt, statement)
        with rt.engine.connect() as conn:
            counts = g.crmkit_user_counts = dict(conn.execute(kept[1], {"user_id": actor.id}).one()._mapping)
    return int(counts[name] or 0)


def render_own(template: str, **values: Any) -> Markup:
    """A user part's HTML (see :func:`user_parts`) from its small template,
    which reads only the values given, ``_``, ``url_for`` and ``request``:
    rendered without the page's context processors, which a full page runs
    once and these parts, on every page, needed none of."""
    gettext = template_gettext()
    return Markup(current_app.jinja_env.get_template(template).render(
        _=gettext, gettext=gettext, request=request, **values))


def _approvals_waiting(rt: Runtime) -> sa.ScalarSelect[Any]:
    return rt.records.approvals.pending_count_query()


def _approvals_item(rt: Runtime, actor: Any) -> Markup:
    """The navigation's link to the approvals waiting for this user (nothing when none do)."""
    waiting = user_count(rt, actor, "approvals")
    if not waiting:  # the template shows nothing then: most users, on most pages
        return Markup("")
    return render_own("_nav_approvals.html", approvals_waiting=waiting)


@bp.context_processor
def shell_context() -> dict[str, Any]:
    """What the layout needs on every page: the app, the user, their menu."""
    rt = _runtime()
    actor = current_actor()
    access = rt.permissions.of(actor)
    return {"spec": rt.spec, "actor": actor, "csrf_token": g.get("crmkit_csrf", ""),
            "nav_groups": _navigation(rt, access), "is_admin": ADMIN_ROLE in access.roles}


def _navigation(rt: Runtime, access: Access) -> list[NavGroup]:
    """The menu of these roles, worked out once per spec and roles (every
    template a page renders asks for it: the page, the bell, its parts)."""
    kept = current_app.extensions.get("crmkit_navigation")
    if kept is None or kept[0] is not rt.spec:
        kept = current_app.extensions["crmkit_navigation"] = (rt.spec, {})
    menus: dict[tuple[tuple[str, ...], bool], list[NavGroup]] = kept[1]
    key = (access.roles, access.system)
    if key not in menus:
        menus[key] = navigation(rt.spec, access)
    return list(menus[key])


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
