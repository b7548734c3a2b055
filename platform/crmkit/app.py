"""The Flask application factory: everything is wired here, in order."""

from __future__ import annotations

import os
import weakref
from pathlib import Path

import sqlalchemy as sa
from flask import Flask

from . import runtime as runtime_module
from .settings import Settings


def create_app(config_dir: str | Path | None = None, settings: Settings | None = None, *,
               migrate: bool | None = None) -> Flask:
    """Build the app for a config directory (default: ``CRMKIT_CONFIG``).

    ``migrate``: bring the database to the config first (default: the
    CRMKIT_AUTO_MIGRATE setting, on); changes that lose data are refused
    (MigrationRefused), as is a database of another app. ``migrate=False``
    builds the app without touching the database (and without the job
    threads, which CRMKIT_JOBS_WORKERS otherwise starts).

    Raises ConfigError (every problem of the config), PluginError or MigrationRefused."""
    config_dir = config_dir or os.environ.get("CRMKIT_CONFIG")
    if not config_dir:
        raise RuntimeError("no config: pass a config directory or set CRMKIT_CONFIG")
    rt = runtime_module.build(config_dir, settings)
    settings = rt.settings
    try:
        _start_database(rt, config_dir, settings.auto_migrate if migrate is None else migrate,
                        check=migrate is not False)
    except BaseException:
        rt.engine.dispose()  # no app will use it: close its connections now
        raise
    # A server that builds the app before forking its workers (gunicorn
    # --preload) must not hand the parent's pooled connections to the children.
    engine = weakref.ref(rt.engine)
    os.register_at_fork(after_in_child=lambda: _forget_connections(engine()))

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
    if migrate is not False:  # an app to serve (not one built to list its routes)
        _start_jobs(rt)
    return app


def _start_jobs(rt: runtime_module.Runtime) -> None:
    """The in-process job workers (database backend, CRMKIT_JOBS_WORKERS
    threads); started again in a child a server forks after loading the app
    (gunicorn --preload), where the parent's threads do not exist."""
    if rt.jobs.start_threads():
        jobs = weakref.ref(rt.jobs)

        def restart() -> None:
            found = jobs()
            if found is not None:
                found.forget_threads()
                found.start_threads()

        os.register_at_fork(after_in_child=restart)


def _start_database(rt: runtime_module.Runtime, config_dir: str | Path, migrate: bool, *, check: bool) -> None:
    if migrate:
        from .migrations import DatabaseOfAnotherApp, MigrationRefused

        try:
            rt.migrate()
        except DatabaseOfAnotherApp:
            raise
        except MigrationRefused as exc:
            assert exc.plan is not None
            losing = "\n".join(f"  ! {change.detail()}" for change in exc.plan.destructive)
            raise MigrationRefused(f"the database needs changes that can lose data:\n{losing}\nSee the whole "
                                   f"plan with 'crmkit migrate {config_dir} --plan -v'; apply it with --apply "
                                   "--allow-data-loss (after a backup of the data), or change the config back.",
                                   exc.plan, waited=exc.waited) from None
    elif check:
        rt.check_database()


def _forget_connections(engine: sa.Engine | None) -> None:
    if engine is not None:
        engine.dispose(close=False)


def _ui_path(name: str) -> str:
    from importlib.resources import files

    return str(files("crmkit.ui").joinpath(name))
