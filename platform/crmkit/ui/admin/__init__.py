"""The admin console (/admin/): users, teams, API tokens, the audit trail,
the recycle bin and a data view of every entity, for the admin role only.

Built on Flask-Admin (its views, routing and model-view contract) with our
own templates (ui/templates/admin/), so every page has the shell's top bar,
speaks the user's language and keeps the strict Content-Security-Policy
(Flask-Admin's Bootstrap templates carry inline scripts and handlers).
Flask-Admin's SQLAlchemy views would write to tables directly; here every
view is a client of the services like the API is: reads through the query
builder (``rt.queries``), record writes through the records service
(``rt.records``), users, teams and tokens through the directory
(``rt.directory``), each with the acting user, so a write the API would
refuse is refused here too and shown as the error.

One gate covers every URL under /admin (pages, forms, Flask-Admin's static
files, unknown paths): a browser without a session is sent to the login
page (crmkit.auth), a user without the admin role gets 403.
"""

from __future__ import annotations

from flask import Flask, current_app, render_template, request
from flask_admin import Admin
from flask_admin.theme import Bootstrap4Theme

from ...api.http import current_actor
from ...permissions import ADMIN_ROLE

PREFIX = "/admin"


def is_console_admin() -> bool:
    """Whether the caller has the admin role (the console is theirs only)."""
    rt = current_app.extensions["crmkit"]
    return ADMIN_ROLE in rt.permissions.of(current_actor()).roles


def forbidden_page():
    """The 403 of the console, in the shell, in the user's language."""
    from .base import shell_context

    return render_template("admin/forbidden.html", **shell_context()), 403


def _gate():
    if (request.path == PREFIX or request.path.startswith(PREFIX + "/")) and not is_console_admin():
        return forbidden_page()
    return None


def init_app(app: Flask) -> None:
    from .base import ConsoleHome
    from .people import TeamsView, TokensView, UsersView
    from .records import AuditView, RecordView, RecycleBinView

    app.before_request(_gate)  # after authentication (registered earlier): anonymous browsers go to /login
    rt = app.extensions["crmkit"]
    console = Admin(app, name="crmkit", url=PREFIX, index_view=ConsoleHome(url=PREFIX),
                    theme=Bootstrap4Theme(base_template="admin/master.html"))
    console.add_view(UsersView())
    console.add_view(TeamsView())
    console.add_view(TokensView())
    console.add_view(AuditView())
    console.add_view(RecycleBinView())
    for entity in rt.spec.entities.values():
        console.add_view(RecordView(entity))
