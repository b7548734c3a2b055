"""Automations (automations/*.yaml): triggers, conditions and actions, run as
jobs by the system actor "automation NAME".

- ``spec``: the typed specs; ``checking``: ``crmkit check`` of the documents;
- ``actions``: the action protocol (ActionType, ActionContext); ``builtin``:
  set, create, tag, untag, transition;
- ``engine``: matching record events, running automations, dry runs;
- ``sweeps``: schedules and time triggers, selected set-based;
- ``runs``: the run log; ``plugin``: the internal plugin wiring it all in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .actions import ActionContext, ActionType
from .spec import ActionStep, AutomationSpec, TriggerSpec

if TYPE_CHECKING:
    from ..runtime import Runtime
    from .engine import Automations

__all__ = ["ActionContext", "ActionStep", "ActionType", "AutomationSpec", "TriggerSpec", "attach"]


def attach(rt: Runtime) -> Automations:
    """Build the runtime's automations engine and hand it to the records service."""
    from ..loading import automation_actions
    from .engine import Automations

    engine = Automations(rt, automation_actions(rt.pm))
    rt.automations = engine
    rt.records.automations = engine
    return engine
