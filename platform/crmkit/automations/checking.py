"""Checking automations documents against the whole spec, into AutomationSpecs.

Every name an automation uses must exist (entities, fields, workflows and
their moves, tags, actions), a cron line must be one, a time offset must fit
its field, ``when`` must compile in the expression language; each mistake is
a problem with the file, line and column (inside the expression for ``when``).
An action checks its own arguments (ActionType.check); its messages are
located at the step.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from ..expressions import ExpressionError, check
from ..metadata.loader import Document
from ..metadata.problems import Problem, ProblemList, did_you_mean, shown
from ..metadata.spec import AppSpec, EntitySpec, humanize
from .actions import ActionType
from .spec import APPROVAL_EVENTS, OUTCOMES, TRIGGER_KINDS, ActionStep, AutomationSpec, TriggerSpec

TIME = re.compile(r"^\s*([0-9]+)\s*([dhm])\s+(before|after)\s+([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)\s*$")
UNITS = {"d": dt.timedelta(days=1), "h": dt.timedelta(hours=1), "m": dt.timedelta(minutes=1)}
#: The longest offset of a time trigger (ten years).
MAX_OFFSET = dt.timedelta(days=3660)


def valid_cron(text: str) -> str | None:
    """None when ``text`` is a cron line of five fields (or @daily...); else what is wrong."""
    from croniter import croniter

    fields = text.split()
    if not (len(fields) == 5 or (len(fields) == 1 and fields[0].startswith("@"))):
        return (f"'{shown(text)}' is not a cron line: five fields, minute hour day month weekday "
                "(e.g. '0 9 * * 1-5')")
    if not croniter.is_valid(text):
        return f"'{shown(text)}' is not a valid cron line (minute 0-59, hour 0-23, day 1-31, month 1-12, weekday 0-6)"
    return None


def compile_automations(spec: AppSpec, docs: Sequence[Document], actions: Mapping[str, ActionType] | None,
                        problems: ProblemList) -> AppSpec:
    """The spec with its automations typed; problems reported (the spec is
    returned anyway: the caller raises when there are any)."""
    compiler = _Compiler(spec, actions, problems)
    found: dict[str, AutomationSpec] = {}
    seen: dict[str, Document] = {}
    for doc in docs:
        for name, raw in doc.data["automations"].items():
            first = seen.setdefault(name, doc)
            if first is not doc:
                problems.add(doc, ("automations", name), f"automation '{name}' is defined twice "
                             f"(also in {first.file})", key=True)
                continue
            automation = compiler.automation(doc, name, raw)
            if automation is not None:
                found[name] = automation
    return dataclasses.replace(spec, automations=MappingProxyType(found))


class _Compiler:
    def __init__(self, spec: AppSpec, actions: Mapping[str, ActionType] | None, problems: ProblemList) -> None:
        self.spec = spec
        self.actions = actions
        self.problems = problems

    def automation(self, doc: Document, name: str, raw: Mapping[str, Any]) -> AutomationSpec | None:
        path = ("automations", name)
        before = len(self.problems.problems)
        trigger = self.trigger(doc, path, raw)
        entity = self.spec.entities.get(trigger.entity or "") if trigger is not None else None
        condition = None
        when = raw.get("when")
        if when is not None and trigger is not None:
            if trigger.entity is None:
                self.problems.add(doc, path + ("when",), "when is a condition about a record: "
                                  "give the schedule an entity")
            elif entity is not None:
                try:
                    condition = check(when, self.spec, entity.name)
                except ExpressionError as error:
                    line, column = doc.locate_text(path + ("when",), error.line, error.column)
                    self.problems.add_problem(Problem(doc.file, line, column, error.message, error.hint))
        steps = []
        for i, step in enumerate(raw["do"]):
            ((action_name, args),) = step.items()
            steps.append(ActionStep(action_name, _freeze(args)))
            self.action(doc, path + ("do", i), action_name, args, entity, trigger)
        if trigger is None or len(self.problems.problems) > before:
            return None
        label = raw.get("label")
        return AutomationSpec(
            name=name, trigger=trigger, actions=tuple(steps), when=when, condition=condition,
            label=MappingProxyType({"en": label, "zh": label} if isinstance(label, str)
                                   else dict(label or {"en": humanize(name)})),
            enabled=bool(raw.get("enabled", True)), description=raw.get("description", ""), source=doc.file)

    # -------------------------------------------------------------- triggers

    def trigger(self, doc: Document, path: tuple, raw: Mapping[str, Any]) -> TriggerSpec | None:
        given = raw["trigger"]
        kinds = [k for k in given if k in TRIGGER_KINDS]
        at = path + ("trigger",)
        if len(kinds) != 1:
            message = ("a trigger needs one of " if not kinds else "a trigger has one kind, not ") + ", ".join(
                kinds or TRIGGER_KINDS)
            self.problems.add(doc, at, message)
            return None
        kind = kinds[0]
        value = given[kind]
        if "fields" in given and kind != "updated":
            self.problems.add(doc, at + ("fields",), "fields applies to an updated trigger", key=True)
        if "outcome" in given and kind != "approval_decided":
            self.problems.add(doc, at + ("outcome",), "outcome applies to an approval_decided trigger", key=True)
        declared = raw.get("entity")
        trigger: TriggerSpec | None
        if kind in ("created", "updated", "deleted"):
            entity = self.entity(doc, at + (kind,), value)
            trigger = TriggerSpec(kind, value, text=f"{kind}: {value}")
            if kind == "updated" and "fields" in given and entity is not None:
                for j, fname in enumerate(given["fields"]):
                    if fname not in entity.fields:
                        self.problems.add(doc, at + ("fields", j), f"{entity.name} has no field '{shown(fname)}'",
                                          did_you_mean(fname, entity.fields))
                trigger = dataclasses.replace(trigger, fields=tuple(given["fields"]),
                                              text=f"updated: {value} ({', '.join(given['fields'])})")
        elif kind == "transition":
            trigger = self.transition(doc, at + (kind,), value)
        elif kind in APPROVAL_EVENTS:
            trigger = self.approval(doc, at, kind, value, given.get("outcome"))
        elif kind in ("tag_added", "tag_removed"):
            tag = self.spec.tags.get(value)
            if tag is None:
                self.problems.add(doc, at + (kind,), f"unknown tag '{shown(value)}'",
                                  did_you_mean(value, self.spec.tags))
                return None
            trigger = TriggerSpec(kind, tag.entity, tag=value, text=f"{kind}: {value}")
        elif kind == "schedule":
            problem = valid_cron(value) if isinstance(value, str) else "a schedule is a cron line"
            if problem is not None:
                self.problems.add(doc, at + (kind,), problem)
            entity_name = None
            if declared is not None:
                entity_name = declared if self.entity(doc, path + ("entity",), declared) is not None else None
            return TriggerSpec(kind, entity_name, cron=value, text=f"schedule: {value}")
        else:
            trigger = self.time(doc, at + (kind,), value)
        if trigger is None:
            return None
        if declared is not None and trigger.entity is not None and declared != trigger.entity:
            self.problems.add(doc, path + ("entity",), f"the trigger acts on {trigger.entity} records, "
                              f"not {shown(declared)}")
        return trigger

    def entity(self, doc: Document, at: tuple, name: Any) -> EntitySpec | None:
        entity = self.spec.entities.get(name) if isinstance(name, str) else None
        if entity is None:
            self.problems.add(doc, at, f"unknown entity '{shown(name)}'", did_you_mean(name, self.spec.entities))
        return entity

    def transition(self, doc: Document, at: tuple, value: str) -> TriggerSpec | None:
        name, _, move = value.partition(".")
        workflow = next((wf for wf in self.spec.workflows if wf.name == name), None)
        if workflow is None:
            self.problems.add(doc, at, f"unknown workflow '{shown(name)}'",
                              did_you_mean(name, [wf.name for wf in self.spec.workflows]))
            return None
        if move and move not in [m.name for m in workflow.transitions]:
            moves = [m.name for m in workflow.transitions]
            self.problems.add(doc, at, f"workflow '{name}' has no move '{shown(move)}'",
                              did_you_mean(move, moves) or f"its moves: {', '.join(moves)}")
            return None
        return TriggerSpec("transition", workflow.entity, workflow=name, move=move or None,
                           text=f"transition: {value}")

    def approval(self, doc: Document, at: tuple, kind: str, value: str, outcome: Any) -> TriggerSpec | None:
        """``approval_requested`` / ``approval_decided``: a workflow (or one of
        its moves) whose approval it waits for, and the outcome."""
        moving = self.transition(doc, at + (kind,), value)
        if moving is None:
            return None
        workflow = next(wf for wf in self.spec.workflows if wf.name == moving.workflow)
        needing = [m.name for m in workflow.transitions if m.approval is not None]
        if moving.move is not None and moving.move not in needing or not needing:
            what = f"move '{moving.move}' of workflow '{moving.workflow}'" if moving.move else \
                f"workflow '{moving.workflow}'"
            self.problems.add(doc, at + (kind,), f"{what} needs no approval: nothing to wait for",
                              f"the moves with an approval: {', '.join(needing)}" if needing else
                              "give a move an approval: {steps: [...]} in the workflow")
            return None
        if outcome is not None and outcome not in OUTCOMES:
            self.problems.add(doc, at + ("outcome",), f"outcome must be one of {', '.join(OUTCOMES)}, "
                              f"not '{shown(outcome)}'", did_you_mean(str(outcome), OUTCOMES))
            return None
        text = f"{kind}: {value}" + (f" ({outcome})" if outcome else "")
        return dataclasses.replace(moving, kind=kind, outcome=outcome, text=text)

    def time(self, doc: Document, at: tuple, value: str) -> TriggerSpec | None:
        match = TIME.match(value)
        if match is None:
            self.problems.add(doc, at, f"'{shown(value)}' is not a time: 'Nd, Nh or Nm before or after "
                              "ENTITY.FIELD', e.g. '3d before contract.end_date', '4h after ticket.created_at'")
            return None
        count, unit, direction, entity_name, field_name = match.groups()
        entity = self.entity(doc, at, entity_name)
        if entity is None:
            return None
        f = entity.fields.get(field_name)
        if f is None:
            self.problems.add(doc, at, f"{entity_name} has no field '{field_name}'",
                              did_you_mean(field_name, entity.fields))
            return None
        if f.type not in ("date", "datetime"):
            self.problems.add(doc, at, f"a time trigger counts from a date or datetime field, not {f.type} field "
                              f"'{field_name}'")
            return None
        offset = int(count) * UNITS[unit]
        if f.type == "date" and unit != "d":
            self.problems.add(doc, at, f"{entity_name}.{field_name} is a date: count whole days from it "
                              f"(e.g. '1d {direction} {entity_name}.{field_name}')")
            return None
        if offset > MAX_OFFSET:
            self.problems.add(doc, at, f"the offset {count}{unit} is longer than ten years")
            return None
        return TriggerSpec("time", entity_name, date_field=field_name,
                           offset=-offset if direction == "before" else offset, text=f"time: {value.strip()}")

    # -------------------------------------------------------------- actions

    def action(self, doc: Document, at: tuple, name: str, args: Any, entity: EntitySpec | None,
               trigger: TriggerSpec | None) -> None:
        if self.actions is None:
            return
        action = self.actions.get(name)
        if action is None:
            known = ", ".join(sorted(self.actions))
            hint = did_you_mean(name, self.actions)
            self.problems.add(doc, at + (name,), f"unknown action '{shown(name)}' (known actions: {known})",
                              hint, key=True)
            return
        if trigger is None or (trigger.entity is not None and entity is None):
            return  # the trigger's own problem is reported; the arguments cannot be judged without it
        if trigger.kind == "deleted" and getattr(action, "writes_record", False):
            self.problems.add(doc, at + (name,), f"{name}: the trigger's record ({trigger.text}) is in the "
                              "recycle bin and cannot be changed; create a record or send a message instead, or "
                              "use another trigger", key=True)
            return
        try:
            messages = action.check(args, entity, self.spec)
        except Exception as exc:  # noqa: BLE001 - a plugin's check must not break crmkit check
            messages = [f"action '{name}' failed to check its arguments: {type(exc).__name__}: {exc}"]
        for message in messages or ():
            self.problems.add(doc, at + (name,), message)


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value
