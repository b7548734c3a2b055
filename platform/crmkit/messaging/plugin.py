"""Messaging as an internal plugin: its tables, the built-in channels, its
API routes and screens, and (crmkit.messaging.approval_notices) the
approvals' notifications, through the same hooks any plugin uses."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Flask

from ..hookspecs import hookimpl
from ..metadata.spec import AppSpec
from .approval_notices import crmkit_schedules, record_approval_changed  # noqa: F401 - the approvals' notices
from .channels import Channel, builtin_channels
from .settings import MessagingSettings
from .store import declare_tables


@hookimpl
def crmkit_tables(metadata: sa.MetaData, spec: AppSpec) -> None:
    declare_tables(metadata)


@hookimpl
def crmkit_channels(settings: MessagingSettings) -> list[Channel]:
    return builtin_channels(settings)


@hookimpl(optionalhook=True)
def crmkit_automation_actions() -> list[Any]:
    """``send``, ``notify`` and ``webhook`` for the automations engine (its
    hook; optional, so this module loads where the engine is not there yet)."""
    from .actions import ACTIONS

    return list(ACTIONS)


@hookimpl
def crmkit_app_ready(app: Flask, spec: AppSpec) -> None:
    from . import api, screens

    rt: Any = app.extensions["crmkit"]
    app.register_blueprint(api.bp)
    screens.init_app(app)
    rt.messaging.warn_once()  # a channel without its gateway, once per process
