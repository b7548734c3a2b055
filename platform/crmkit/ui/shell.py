"""The shell of the business screens (/app/...): the layout every screen
extends (top bar, navigation, search box, messages) and the pages that are
the language switch. The screens are in their own modules on this blueprint
(crmkit.ui.home, lists, record, forms, boards, calendars).

A view gathers what the services return and renders it; it never builds SQL
and never decides a permission itself (the access of the user does).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, g, render_template, request
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
    from .approvals import waiting_count

    return {"spec": rt.spec, "actor": actor, "csrf_token": g.get("crmkit_csrf", ""),
            "nav_groups": navigation(rt.spec, access), "is_admin": ADMIN_ROLE in access.roles,
            "approvals_waiting": waiting_count(rt, actor)}




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
