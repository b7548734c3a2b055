"""The checks of workflow documents (states, moves, the roles and approval
steps they name) and the workflows typed as WorkflowSpecs."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from ..loader import Document
from ..problems import ProblemList, did_you_mean
from ..spec import MAX_SUPERIOR_DEPTH, ApprovalSpec, ApprovalStepSpec, TransitionSpec, WorkflowSpec
from .naming import _as_label


def _check_workflows(docs: list[Document], entity_ref, field_ref, problems: ProblemList) -> None:
    """Each workflow's entity and enum field, its states (options of the
    field) and the states and fields its moves name."""
    for doc in docs:
        entity = entity_ref(doc, ("entity",), doc.data["entity"])
        field_ref(doc, ("field",), entity, doc.data["field"])
        states = doc.data["states"]
        if entity is not None and doc.data["field"] in entity.fields:
            f = entity.fields[doc.data["field"]]
            if f.type != "enum":
                problems.add(doc, ("field",), f"workflow field {entity.name}.{f.name} must be an enum, not {f.type}")
            else:
                for i, state in enumerate(states):
                    if state not in [str(v) for v in f.option_values]:
                        problems.add(doc, ("states", i), f"state '{state}' is not an option of {entity.name}.{f.name}",
                                     did_you_mean(state, [str(v) for v in f.option_values]))
        for i, move in enumerate(doc.data["transitions"]):
            sources = move["from"] if isinstance(move["from"], list) else [move["from"]]
            for state in sources + [move["to"]]:
                if state != "*" and state not in states:
                    problems.add(doc, ("transitions", i), f"unknown state '{state}'", did_you_mean(state, states))
            for j, fname in enumerate(move.get("require", ())):
                field_ref(doc, ("transitions", i, "require", j), entity, fname)


def _check_transition_roles(docs: list[Document], defined: set[str], problems: ProblemList) -> None:
    """The roles each move names and its approval steps, against the roles there are."""
    for doc in docs:
        for i, move in enumerate(doc.data["transitions"]):
            for j, role in enumerate(move.get("roles", ())):
                if role not in defined:
                    problems.add(doc, ("transitions", i, "roles", j), f"unknown role '{role}'",
                                 did_you_mean(role, defined))
            _check_approval(doc, ("transitions", i, "approval"), move.get("approval"), defined, problems)


def _workflow_spec(doc: Document) -> WorkflowSpec:
    data = doc.data
    moves = []
    for raw in data["transitions"]:
        name = raw.get("name") or raw["to"]
        sources = raw["from"] if isinstance(raw["from"], list) else [raw["from"]]
        moves.append(TransitionSpec(name, _as_label(raw.get("label"), name), tuple(sources), raw["to"],
                                    tuple(raw.get("require", ())), tuple(raw.get("roles", ())), raw.get("when"),
                                    approval=_approval_spec(raw.get("approval"))))
    states = tuple(data["states"])
    return WorkflowSpec(data["workflow"], _as_label(data.get("label"), data["workflow"]), data["entity"],
                        data["field"], states, data.get("initial") or states[0], tuple(moves), source=doc.file)


def _approval_spec(raw: Mapping[str, Any] | None) -> ApprovalSpec | None:
    """A move's ``approval``, typed; each step's mode spelled out (the
    approval's when the step names none)."""
    if raw is None:
        return None
    mode = raw.get("mode", "any")
    steps = []
    for step in raw["steps"]:
        label = _as_label(step["label"], "") if "label" in step else None
        steps.append(ApprovalStepSpec(label, step.get("role"), step.get("superior"), step.get("mode", mode),
                                      step.get("when")))
    return ApprovalSpec(tuple(steps), mode, remind_after=duration(raw["remind_after"])
                        if "remind_after" in raw else None)


#: A duration as the metadata writes it: 30m, 24h, 2d.
DURATION = re.compile(r"^([1-9][0-9]{0,3})([mhd])$")


def duration(text: str) -> dt.timedelta:
    """``30m``, ``24h``, ``2d`` as a timedelta (the schema checked the text)."""
    match = DURATION.match(text)
    assert match is not None, text
    unit = {"m": dt.timedelta(minutes=1), "h": dt.timedelta(hours=1), "d": dt.timedelta(days=1)}[match.group(2)]
    return int(match.group(1)) * unit


def _check_approval(doc: Document, path: tuple, raw: Any, roles: set[str] | frozenset[str],
                    problems: ProblemList) -> None:
    """A move's approval steps: each names one known role or a superior
    within reach (their conditions are compiled with the other expressions)."""
    if not isinstance(raw, dict):
        return
    for k, step in enumerate(raw.get("steps", ())):
        where = path + ("steps", k)
        if ("role" in step) == ("superior" in step):
            problems.add(doc, where, "an approval step names its approvers by 'role' or by 'superior' (one of them)",
                         "e.g. {role: finance} or {superior: 1} (the requester's direct superior)")
        if "role" in step and step["role"] not in roles:
            problems.add(doc, where + ("role",), f"unknown role '{step['role']}'", did_you_mean(step["role"], roles))
        depth = step.get("superior")
        if depth is not None and not (isinstance(depth, int) and 1 <= depth <= MAX_SUPERIOR_DEPTH):
            problems.add(doc, where + ("superior",),
                         f"superior must be 1 to {MAX_SUPERIOR_DEPTH}, not {depth}",
                         "the Nth superior up the requester's reporting chain; 1 is their direct superior")
