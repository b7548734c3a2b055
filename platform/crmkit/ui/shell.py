"""The shell of the business screens (/app/...): the layout every screen
extends (top bar, navigation, search box, messages) and the pages that are
the language switch. The screens are in their own modules on this blueprint
(crmkit.ui.home, lists, record, forms, boards, calendars).

A view gathers what the services return and renders it; it never builds SQL
and never decides a permission itself (the access of the user does).

The top bar and the navigation are the same for everyone with the same roles,
language and page: they are rendered once per such key (:class:`ShellCache`)
with marks where the one user's values go (their name, their anti-forgery
token, the page's own path and search text), and those are put in, escaped,
on every page. Nothing of one user is ever kept in the shared HTML.
"""

from __future__ import annotations

import re
import threading
from types import SimpleNamespace
from typing import Any

from flask import Blueprint, current_app, g, render_template, request
from jinja2.runtime import Context
from jinja2.utils import pass_context
from markupsafe import Markup, escape
from werkzeug.exceptions import HTTPException

from ..api.http import current_actor
from ..metadata.spec import AppSpec
from ..permissions import ADMIN_ROLE
from ..runtime import Runtime
from .i18n import locale, offered, remember_language
from .navigation import navigation
from .security import redirect_to

bp = Blueprint("crmkit_app", __name__, url_prefix="/app")

#: The parts of the shell kept rendered, each a template of its own.
SHELL_PARTS = {"topbar": "_topbar.html", "nav": "_nav.html"}
#: Where a user's own values go in a kept part: a mark no value or translation holds.
_SLOT = "\x1f{}\x1f"
_SLOTS = re.compile("\x1f(name|csrf|here|query)\x1f")
#: Kept parts per app (role sets × languages × pages): a bound, not an expected size.
SHELL_CACHE_SIZE = 2048


def _runtime() -> Runtime:
    return current_app.extensions["crmkit"]


class ShellCache:
    """Rendered shell parts of one app, by (part, language, roles, page).

    The key holds everything the parts read that is not a slot: the language
    (labels, the language switch), the roles (the menu, the admin links), the
    entity or home page the menu marks current, and the path the app is
    mounted at (the links). The slots are filled per request."""

    def __init__(self, spec: AppSpec) -> None:
        self.spec = spec
        self._parts: dict[tuple[Any, ...], str] = {}
        self._lock = threading.Lock()

    def part(self, context: Context, name: str) -> Markup:
        rt = _runtime()
        access = rt.permissions.of(context["actor"])
        entity_name = (request.view_args or {}).get("entity_name")
        current = (request.endpoint == "crmkit_app.home",
                   entity_name if entity_name in self.spec.entities else None)
        key = (name, locale(), access.roles, access.system, request.script_root, current)
        kept = self._parts.get(key)
        if kept is None:
            kept = self._render(context, name)
            with self._lock:
                if len(self._parts) >= SHELL_CACHE_SIZE:
                    self._parts.clear()
                self._parts[key] = kept
        actor = context["actor"]
        values = {"name": escape(actor.name), "csrf": escape(context.get("csrf_token", "")),
                  "here": escape(request.full_path.strip("?")), "query": escape(context.get("query", ""))}
        return Markup(_SLOTS.sub(lambda m: values[m.group(1)], kept))

    def _render(self, context: Context, name: str) -> str:
        """The part with marks for the user's values (the rest of the context as it is)."""
        template = context.environment.get_template(SHELL_PARTS[name])
        marked = {**context.get_all(), "actor": SimpleNamespace(name=_SLOT.format("name")),
                  "csrf_token": _SLOT.format("csrf"), "shell_here": _SLOT.format("here"),
                  "query": _SLOT.format("query")}
        return template.render(marked)


def shell_cache() -> ShellCache:
    """The app's kept shell parts (new ones for a new spec)."""
    rt = _runtime()
    cache = current_app.extensions.get("crmkit_shell")
    if cache is None or cache.spec is not rt.spec:
        cache = current_app.extensions["crmkit_shell"] = ShellCache(rt.spec)
    return cache


@bp.app_template_global()
@pass_context
def shell_part(context: Context, name: str) -> Markup:
    """A part of the shell (``topbar`` or ``nav``) for this user, from the kept ones."""
    return shell_cache().part(context, name)


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
    """The language switch: remembered for this browser (a cookie, until
    profiles keep it), then back to the page it was used on."""
    language = request.form.get("lang", "")
    response = redirect_to(request.form.get("next"))
    if language in offered():
        remember_language(response, language)
    return response


@bp.errorhandler(HTTPException)
def error_page(exc: HTTPException):
    """A screen's 404 or 405 inside the shell, in the user's language."""
    return render_template("error.html", error=exc), exc.code or 500
