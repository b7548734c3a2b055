"""The shell of the business screens (/app/...): the layout every screen
extends (top bar, navigation, search box, messages) and the pages that are
only the shell so far: search and the entity pages' placeholders (the home
page is crmkit.ui.home's).

A view gathers what the services return and renders it; it never builds SQL
and never decides a permission itself (the access of the user does).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, g, render_template, request
from werkzeug.exceptions import HTTPException

from ..api.http import current_actor
from ..permissions import ADMIN_ROLE
from ..runtime import Runtime
from .i18n import offered, remember_language
from .navigation import navigation
from .security import redirect_to

bp = Blueprint("crmkit_app", __name__, url_prefix="/app")


def _runtime() -> Runtime:
    return current_app.extensions["crmkit"]


@bp.context_processor
def shell_context() -> dict[str, Any]:
    """What the layout needs on every page: the app, the user, their menu."""
    rt = _runtime()
    actor = current_actor()
    access = rt.permissions.of(actor)
    return {"spec": rt.spec, "actor": actor, "csrf_token": g.get("crmkit_csrf", ""),
            "nav_groups": navigation(rt.spec, access), "is_admin": ADMIN_ROLE in access.roles}


@bp.get("/search")
def search():
    """The global search box's target; searching across entities comes with the lists."""
    return render_template("search.html", query=request.args.get("q", "")[:200])


@bp.get("/<entity_name>")
def entity_list(entity_name: str):
    """Where an entity's list will be; the navigation links here already."""
    rt = _runtime()
    entity = rt.spec.entities.get(entity_name)
    if entity is None or not rt.permissions.of(current_actor()).entity(entity_name).allows("read"):
        abort(404)
    return render_template("entity_placeholder.html", entity=entity)


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
