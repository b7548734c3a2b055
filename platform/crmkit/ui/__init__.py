"""The screens: server-rendered pages for people in browsers.

Templates, static files and message catalogs live in the top-level ``ui/``
folder (linked into this package as ``templates``, ``static`` and
``translations``). Everything the screens need is wired here, in order.
"""

from __future__ import annotations

from flask import Flask, current_app, redirect


def init_app(app: Flask) -> None:
    from . import admin, display, docs, i18n, login, security, shell
    # The screens add their routes to the shell's blueprint: imported before it is registered.
    from . import (approvals, boards, calendars, forms, home, lists, pool, record,  # noqa: F401  # isort: skip
                   record_actions, record_panels)

    app.jinja_env.trim_blocks = app.jinja_env.lstrip_blocks = True  # no blank lines where tags were
    i18n.init_app(app)  # the language of every page, the catalogs, the label filter
    display.init_app(app)  # money, numbers, dates and choices as people read them
    security.init_app(app)  # the Content-Security-Policy of every page
    app.config.update(SESSION_COOKIE_NAME="crmkit_flash", SESSION_COOKIE_SAMESITE="Lax")  # flash() messages only
    app.context_processor(lambda: {"spec": current_app.extensions["crmkit"].spec})
    app.register_blueprint(login.bp)
    app.register_blueprint(docs.bp)
    app.register_blueprint(shell.bp)
    admin.init_app(app)  # the admin console at /admin/ (Flask-Admin; admin role only)

    @app.get("/")
    def index():
        return redirect("/app/")
