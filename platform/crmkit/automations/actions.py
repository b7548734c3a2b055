"""The action protocol: what an automation's ``do:`` steps are made of.

An action type has a name (the key of a step, ``set``, ``send``...), checks its
arguments when the config is checked (``crmkit check`` adds the file and line
to each message it returns), runs on a record, and describes what it would do
for a dry run (``crmkit automations test``). Built-in actions (set, create,
tag, untag, transition) and those of plugins register alike, through the
``crmkit_automation_actions`` hook; a plugin implements the protocol without
importing this module.

Everything an action writes goes through the records service as
``ctx.actor`` (the system, audited as "automation NAME"), so validation,
workflows and the audit trail hold. An action that has a side effect outside
the database (a message, a webhook) claims ``ctx.key`` first
(``runtime.jobs.claim_effect``), so a run retried after a crash does not do it twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..metadata.spec import AppSpec, EntitySpec
    from ..permissions import Actor
    from ..runtime import Runtime


@dataclass(frozen=True)
class ActionContext:
    """What an action is told when it runs (or is described)."""

    runtime: Runtime
    #: The automation's name.
    automation: str
    #: The trigger's entity (None: a schedule without entity).
    entity: str | None
    #: The trigger record as stored, by column (None for a schedule without entity).
    record: Mapping[str, Any] | None
    #: The system actor, audited as "automation NAME".
    actor: Actor
    #: The idempotency key of this run and step (for side effects).
    key: str
    dry_run: bool
    #: How many automation runs led to this one (0: a user's write, a tick).
    depth: int
    #: An approval trigger's approval (crmkit.approvals.ApprovalEvent.facts), else None.
    approval: Mapping[str, Any] | None = None


@runtime_checkable
class ActionType(Protocol):
    """An action. Optional: ``writes_record = True`` on an action that writes
    the trigger record (set, tag, transition...): ``crmkit check`` refuses it
    on a ``deleted`` trigger, whose record is in the recycle bin."""

    name: str

    def check(self, args: Any, entity: EntitySpec | None, spec: AppSpec) -> list[str]:
        """Problems of the arguments, as messages (``crmkit check`` adds file:line)."""

    def run(self, ctx: ActionContext, args: Any) -> str:
        """Do it; returns one line for the run log. Raise to fail the run."""

    def describe(self, ctx: ActionContext, args: Any) -> str:
        """What it would do (a dry run); writes nothing."""
