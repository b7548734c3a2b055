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
TRIGGER_KINDS = (*RECORD_EVENTS, "transition", "tag_added", "tag_removed", "schedule", "time")
#: The event a write or a tag change is indexed by (``transition`` is an update's).
EVENT_OF = {"created": "create", "updated": "update", "deleted": "delete", "transition": "transition",
            "tag_added": "tag_added", "tag_removed": "tag_removed"}


@dataclass(frozen=True, slots=True)
class TriggerSpec:
    """What starts an automation. ``kind`` is one of TRIGGER_KINDS; the other
    attributes are those the kind uses."""

    kind: str
    #: The entity whose records it acts on (None: a schedule without entity).
    entity: str | None
    #: updated: fire only when one of these fields changed (empty: any change).
    fields: tuple[str, ...] = ()
    #: transition: the workflow, and the move (None: any move of it).
    workflow: str | None = None
    move: str | None = None
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
