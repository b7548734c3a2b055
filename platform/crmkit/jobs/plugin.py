"""crmkit.jobs as an internal plugin: the job tables (``crmkit_tables``) and
the admins' jobs API (``crmkit_app_ready``)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..hookspecs import hookimpl
from ..metadata.spec import AppSpec
from . import store


@hookimpl
def crmkit_tables(metadata: sa.MetaData, spec: AppSpec) -> None:
    store.define_tables(metadata)


@hookimpl
def crmkit_app_ready(app: Any, spec: AppSpec) -> None:
    from .api import blueprint

    app.register_blueprint(blueprint)
