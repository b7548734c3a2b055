"""The hooks a crmkit plugin can implement.

Hook specifications are versioned with :data:`HOOKSPEC_VERSION`; a new hook
raises the minor number, a changed signature the major one. A plugin declares
the version it was built for (``crmkit_hookspec = "1.0"``), checked when it
registers (crmkit.plugins). Each hook is documented in docs/plugins.md (a test
checks that every hook is).

Record hooks run inside the write's transaction: ``conn`` is the SQLAlchemy
connection of that transaction, so whatever a hook writes commits or rolls
back together with the record.
"""

from __future__ import annotations

import pluggy

PROJECT = "crmkit"
HOOKSPEC_VERSION = "1.4"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def crmkit_metadata_dirs():
    """Return directories of metadata files (entities, tags, ...) this plugin adds to every config that enables it."""


@hookspec
def crmkit_field_types():
    """Return FieldType objects for new field types."""


@hookspec
def crmkit_tables(metadata, spec):
    """Add the plugin's own tables to the SQLAlchemy ``metadata`` (migrated like entity tables)."""


@hookspec
def crmkit_schedules(spec):
    """Return Schedule objects (crmkit.jobs): periodic jobs, each tick fired once. Since 1.1."""


@hookspec
def crmkit_app_ready(app, spec):
    """Called once the Flask app is built: register blueprints, CLI commands, template folders."""


@hookspec
def crmkit_channels(settings):
    """Return message channels (``name``, ``address``, ``configured``, ``deliver``); a later one replaces a
    namesake. Since 1.2."""


@hookspec
def record_before_create(event):
    """Before a record is inserted; may change ``event.values`` or raise a RecordError to refuse."""


@hookspec
def record_after_create(event):
    """After a record is inserted (``event.record`` holds its stored values), in the same transaction."""


@hookspec
def record_before_update(event):
    """Before a record is updated; ``event.old`` and ``event.values`` (the changes) may be inspected or changed."""


@hookspec
def record_after_update(event):
    """After a record is updated; ``event.changes`` maps field to (old, new)."""


@hookspec
def record_before_delete(event):
    """Before a record goes to the recycle bin; raise a RecordError to refuse."""


@hookspec
def record_after_delete(event):
    """After a record went to the recycle bin (or was restored: ``event.action == 'restore'``)."""


@hookspec
def record_tags_changed(event):
    """A tag was put on records or taken off (``event.added``, ``event.removed``: ids), by hand or by its
    rule, in the write's transaction (``event.conn``). Since 1.3."""


@hookspec
def crmkit_automation_actions():
    """Return automation actions: objects with ``name``, ``check``, ``run`` and ``describe``
    (crmkit.automations.actions.ActionType). Since 1.3."""


@hookspec
def record_approval_changed(event):
    """An approval of a workflow move was requested, moved on to its next step, or was approved, rejected or
    withdrawn (``event.kind``; crmkit.approvals.ApprovalEvent), in the decision's transaction. Since 1.4."""
