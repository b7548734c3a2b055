"""The Flask application factory: everything is wired here, in order."""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask

from . import runtime as runtime_module
from .settings import Settings, from_environment


def create_app(config_dir: str | Path | None = None, settings: Settings | None = None, *,
               migrate: bool | None = None) -> Flask:
    """Build the app for a config directory (default: ``CRMKIT_CONFIG``).

    Raises ConfigError (every problem of the config) or PluginError."""
    config_dir = config_dir or os.environ.get("CRMKIT_CONFIG")
    if not config_dir:
        raise RuntimeError("no config: pass a config directory or set CRMKIT_CONFIG")
    settings = settings or from_environment()
    rt = runtime_module.build(config_dir, settings)
    if migrate if migrate is not None else settings.auto_migrate:
        plan = rt.plan()
        if not plan.empty:
            if plan.destructive:
                from .migrations import MigrationRefused

                rt.engine.dispose()  # no app will use it: close its connections now
                raise MigrationRefused("the database needs changes that can lose data; run "
                                       f"'crmkit migrate {config_dir} --plan' to see them:\n{plan.describe()}")
            rt.migrate()

    app = Flask("crmkit", root_path=str(Path(__file__).parent), instance_path=str(settings.instance_dir),
                template_folder=_ui_path("templates"), static_folder=_ui_path("static"),
                static_url_path="/static")
    app.config.update(MAX_CONTENT_LENGTH=settings.max_body_bytes, JSON_SORT_KEYS=False)
    app.secret_key = settings.secret_key or os.urandom(32)
    app.extensions["crmkit"] = rt
    if settings.trust_proxy:
        # Behind nginx or a load balancer: the client's address (login throttle) and
        # https (Secure cookies) come from the headers the trusted proxies set.
        from werkzeug.middleware.proxy_fix import ProxyFix

        proxies = settings.trust_proxy
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)  # type: ignore[method-assign]

    from . import api, auth, ui

    auth.init_app(app)
    api.init_app(app)
    ui.init_app(app)

    from .plugins import PluginError, call_startup_hook

    try:
        call_startup_hook(rt.pm, "crmkit_app_ready", app=app, spec=rt.spec)
    except PluginError:
        rt.engine.dispose()  # no app will use it: close its connections now
        raise
    from .cli import cli

    app.cli.add_command(cli)
    return app


def _ui_path(name: str) -> str:
    from importlib.resources import files

    return str(files("crmkit.ui").joinpath(name))
