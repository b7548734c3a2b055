"""The screens: server-rendered pages for people in browsers.

Templates and static files live in the top-level ``ui/`` folder (linked into
this package as ``templates`` and ``static``).
"""

from __future__ import annotations

from flask import Flask, redirect


def init_app(app: Flask) -> None:
    from . import docs, login

    app.register_blueprint(login.bp)
    app.register_blueprint(docs.bp)

    @app.get("/")
    def index():
        return redirect("/api/v1/docs")
