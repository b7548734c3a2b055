"""The screens of notifications: a bell with the unread count in the top bar
of every page, and /app/notifications, the user's notifications with a
button to mark each read (a form: CSRF-checked, 303 back)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Flask, render_template, request
from markupsafe import Markup
from werkzeug.wrappers import Response

from ..api.http import current_actor, runtime
from ..errors import NotFound
from ..ui.display import moment
from ..ui.i18n import locale
from ..ui.security import redirect_to
from ..ui.shell import add_user_part, render_own, shell_context, user_count
from .approval_notices import REQUEST_ORIGIN
from .store import notification_json

bp = Blueprint("crmkit_notifications", __name__, url_prefix="/app")
PAGE_SIZE = 50


@bp.get("/notifications")
def notifications() -> str:
    rt = runtime()
    actor = current_actor()
    language = locale()
    only_unread = request.args.get("unread") == "1"
    rows = rt.messaging.store.notifications_of(actor.id, unread=only_unread, limit=PAGE_SIZE) \
        if actor.id is not None else []
    items: list[dict[str, Any]] = []
    for row in rows:
        item = notification_json(row, language)
        item["when"] = moment(row["created_at"], language, rt.spec.timezone)
        entity = rt.spec.entities.get(row["entity"] or "")
        item["href"] = f"/app/{entity.name}/{row['record_id']}" if entity is not None and row["record_id"] else None
        if row["automation"] == REQUEST_ORIGIN:  # an approval waiting for the reader: the queue
            item["href"], item["to_approvals"] = "/app/approvals", True
        items.append(item)
    return render_template("notifications.html", notifications=items, only_unread=only_unread,
                           **shell_context())


@bp.post("/notifications/<int:notification_id>/read")
def mark_read(notification_id: int) -> Response:
    actor = current_actor()
    row = runtime().messaging.store.mark_read(actor.id, notification_id) if actor.id is not None else None
    if row is None:
        raise NotFound(f"no notification {notification_id} of yours")
    return redirect_to(request.form.get("next"), "/app/notifications")


def bell(rt: Any, actor: Any) -> Markup:
    """The top bar's bell with this user's unread count (put in per request:
    the top bar itself is kept and shared, crmkit.ui.shell)."""
    return render_own("_topbar_bell.html", unread=user_count(rt, actor, "bell"))


def _unread(rt: Any) -> sa.ScalarSelect[Any]:
    return rt.messaging.store.unread_count_query()


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    add_user_part(app, "bell", bell, count=_unread)
