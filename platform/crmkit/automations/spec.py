"""Automations as typed, frozen specs (automations/*.yaml, checked by
crmkit.automations.checking): a trigger, an optional ``when`` condition and
actions run in order."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..expressions import Checked

Label = Mapping[str, str]

#: The kinds of trigger, in the order the reference lists them.
RECORD_EVENTS = ("created", "updated", "deleted")
#: Triggers on approvals of workflow moves (crmkit.approvals): a step opened, the approval decided.
APPROVAL_EVENTS = ("approval_requested", "approval_decided")
TRIGGER_KINDS = (*RECORD_EVENTS, "transition", *APPROVAL_EVENTS, "tag_added", "tag_removed", "schedule", "time")
#: The outcomes an ``approval_decided`` trigger may wait for.
OUTCOMES = ("approved", "rejected")
#: The event a write or a tag change is indexed by (``transition`` is an update's).
EVENT_OF = {"created": "create", "updated": "update", "deleted": "delete", "transition": "transition",
            "tag_added": "tag_added", "tag_removed": "tag_removed",
            "approval_requested": "approval_requested", "approval_decided": "approval_decided"}


@dataclass(frozen=True, slots=True)
class TriggerSpec:
    """What starts an automation. ``kind`` is one of TRIGGER_KINDS; the other
    attributes are those the kind uses."""

    kind: str
    #: The entity whose records it acts on (None: a schedule without entity).
    entity: str | None
    #: updated: fire only when one of these fields changed (empty: any change).
    fields: tuple[str, ...] = ()
    #: transition, approval_requested, approval_decided: the workflow, and the move (None: any move of it).
    workflow: str | None = None
    move: str | None = None
    #: approval_decided: only this outcome (approved or rejected; None: either).
    outcome: str | None = None
    #: tag_added / tag_removed: the tag.
    tag: str | None = None
    #: schedule: a cron line (minute hour day month weekday).
    cron: str | None = None
    #: time: the date or datetime field, and the offset from it (negative: before).
    date_field: str | None = None
    offset: dt.timedelta = dt.timedelta(0)
    #: The trigger as written (for the run log and messages).
    text: str = ""

    @property
    def event(self) -> str | None:
        """The record event this trigger waits for (None: schedule and time, which sweep)."""
        return EVENT_OF.get(self.kind)


@dataclass(frozen=True, slots=True)
class ActionStep:
    """One action of an automation: its name (``set``, ``send``...) and its
    arguments as written (read-only data), checked by the action's type."""

    name: str
    args: Any


@dataclass(frozen=True, slots=True)
class AutomationSpec:
    name: str
    label: Label
    trigger: TriggerSpec
    actions: tuple[ActionStep, ...]
    #: The condition as written, and compiled against the trigger's entity.
    when: str | None = None
    condition: Checked | None = None
    enabled: bool = True
    description: str = ""
    source: str = ""

    @property
    def entity(self) -> str | None:
        return self.trigger.entity
