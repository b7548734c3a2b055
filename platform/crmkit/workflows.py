"""Workflows: the state machines of the config (workflows/*.yaml).

A workflow's field changes only through its transitions: from the allowed
states, by the roles the transition names, within the caller's ``transition``
scope, with the required fields filled and the ``when`` condition true.

``when`` conditions: until the expression language lands, the subset
``field OP literal [and field OP literal ...]`` (OP one of = == != < <= > >=,
literals numbers, 'text', true, false, null) is evaluated; any other
condition makes its transition refuse with a message saying so, rather than
run unchecked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from .database import write_transaction
from .errors import Conflict, CrmError, NotFound, ValidationFailed
from .formatting import label_object
from .metadata.spec import AppSpec, EntitySpec, Label


@dataclass(frozen=True)
class Transition:
    name: str
    label: Label | None
    sources: frozenset[str] | None  # None: from any state
    to: str
    require: tuple[str, ...]
    roles: frozenset[str]
    when: str | None

    def allows_from(self, state: Any) -> bool:
        return self.sources is None or str(state) in self.sources


@dataclass(frozen=True)
class Workflow:
    name: str
    entity: str
    field: str
    states: tuple[str, ...]
    initial: str
    transitions: tuple[Transition, ...]


def compile_workflows(spec: AppSpec) -> dict[str, list[Workflow]]:
    """Workflows by entity name."""
    found: dict[str, list[Workflow]] = {}
    for doc in spec.documents.get("workflow", ()):
        moves = []
        for raw in doc["transitions"]:
            sources = raw["from"] if isinstance(raw["from"], (list, tuple)) else [raw["from"]]
            moves.append(Transition(raw.get("name") or raw["to"], raw.get("label"),
                                    None if "*" in sources else frozenset(sources), raw["to"],
                                    tuple(raw.get("require", ())), frozenset(raw.get("roles", ())), raw.get("when")))
        states = tuple(doc["states"])
        found.setdefault(doc["entity"], []).append(
            Workflow(doc["workflow"], doc["entity"], doc["field"], states, doc.get("initial") or states[0],
                     tuple(moves)))
    return found


# ------------------------------------------------------------------ conditions (subset)

_COMPARISON = re.compile(r"^\s*([a-z][a-z0-9_]*)\s*(==|!=|<=|>=|=|<|>)\s*(.+?)\s*$")


class UnsupportedCondition(Exception):
    pass


def _literal(text: str) -> Any:
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    try:
        return Decimal(text)
    except InvalidOperation:
        raise UnsupportedCondition(text) from None


def condition_holds(condition: str, values: Mapping[str, Any]) -> bool:
    """Whether ``values`` (field name -> stored value) satisfy the condition."""
    result = True
    for part in re.split(r"\s+and\s+", condition.strip()):
        match = _COMPARISON.match(part)
        if not match or match.group(1) not in values:
            raise UnsupportedCondition(part)
        name, op, literal = match.group(1), match.group(2), _literal(match.group(3))
        value = values[name]
        if isinstance(literal, Decimal) and value is not None and not isinstance(value, bool):
            try:
                value = Decimal(str(value))
            except InvalidOperation:
                return False
        if op in ("=", "=="):
            result = result and value == literal
        elif op == "!=":
            result = result and value != literal
        elif value is None or literal is None:
            return False
        else:
            try:
                result = result and {"<": value < literal, "<=": value <= literal,
                                     ">": value > literal, ">=": value >= literal}[op]
            except TypeError:
                return False
    return result


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


# ------------------------------------------------------------------ moves

class WorkflowMoves:
    """The records service's workflow moves (mixed into RecordsService: the
    same permission checks and the same update path as any write)."""

    def _transition(self, entity: EntitySpec, name: str) -> tuple[Workflow, Transition]:
        for workflow in self.workflows.get(entity.name, ()):
            for move in workflow.transitions:
                if move.name == name:
                    return workflow, move
        raise NotFound(f"{entity.name} has no transition '{name}'", code="unknown_transition")

    def transitions(self, entity_name: str, record_id: int, actor) -> list[dict]:
        """The moves of a record's workflows from its current state, each with
        whether the actor may make it now and, if not, why."""
        entity = self.entity(entity_name)
        with self.engine.connect() as conn:
            row = self.queries.fetch(conn, entity, record_id, actor=actor)
            if row is None:
                raise self._not_found(entity, record_id)
            in_scope = self.queries.fetch(conn, entity, record_id, actor=actor, actions=("transition",)) is not None
        values = {f.name: row[f.column] for f in entity.fields.values()}
        moves = []
        for workflow in self.workflows.get(entity.name, ()):
            state = values[workflow.field]
            for move in workflow.transitions:
                if not move.allows_from(state):
                    continue
                blocker = self._blocker(actor, entity, move, values, record_id) if in_scope else None
                reason = ("your role does not allow you to move this record" if not in_scope
                          else blocker.message if blocker is not None else None)
                moves.append({"name": move.name, "label": label_object(move.label, move.name), "from": state,
                              "to": move.to, "workflow": workflow.name, "allowed": reason is None, "reason": reason,
                              "missing": [n for n in move.require if _empty(values.get(n))]})
        return moves

    def _blocker(self, actor, entity: EntitySpec, move: Transition, values: Mapping,
                 record_id: int) -> CrmError | None:
        """What stops the actor making the move with these values, if anything
        (the transition scope is the caller's to check): its roles, its
        required fields, its condition."""
        if move.roles and not actor.system and not move.roles & set(self.permissions.of(actor).roles):
            return self.refuse(actor, entity, "transition", record_id,
                               f"only {', '.join(sorted(move.roles))} may make the move '{move.name}'")
        missing = [n for n in move.require if _empty(values.get(n))]
        if missing:
            return Conflict(f"'{move.name}' needs: {', '.join(missing)}",  # the record's state: 409
                            {n: [f"is required to '{move.name}'"] for n in missing}, code="fields_required")
        if move.when:
            try:
                holds = condition_holds(move.when, values)
            except UnsupportedCondition:
                return Conflict(f"the condition '{move.when}' needs the expression language, which is not "
                                "built yet", code="unsupported_condition")
            if not holds:
                return Conflict(f"'{move.name}' needs: {move.when}", code="condition_failed")
        return None

    def transition(self, entity_name: str, record_id: int, name: str, data: Any, actor, *,
                   version: int | None = None) -> dict:
        """Make a workflow move; ``data`` may fill in fields it requires (under
        the actor's field rules) in the same write."""
        entity = self.entity(entity_name)
        workflow, move = self._transition(entity, name)
        data = dict(data) if isinstance(data, dict) else {}
        data.pop("version", None)
        if workflow.field in data:
            raise ValidationFailed(f"the transition sets {workflow.field}; do not send it",
                                   {workflow.field: ["is set by the transition"]})
        with write_transaction(self.engine) as tx:
            old = self._fetch_for(tx, entity, record_id, actor, ("transition",))
            state = old[entity.fields[workflow.field].column]
            if not move.allows_from(state):
                raise Conflict(f"cannot '{move.name}' from state '{state}'",
                               {workflow.field: [f"is '{state}'; '{move.name}' starts from "
                                                 f"{', '.join(sorted(move.sources or ()))}"]}, code="invalid_transition")
            values, problems = self.schemas[entity.name].load(data, partial=True, system=actor.system,
                                                              access=self.access(actor, entity))
            if problems:
                raise self._validation({0: problems}, True)
            merged = {f.name: old[f.column] for f in entity.fields.values()}
            merged.update(values)
            blocker = self._blocker(actor, entity, move, merged, record_id)
            if blocker is not None:
                raise blocker
            return self.update(entity.name, record_id, {**data, workflow.field: move.to}, actor, version=version,
                               conn=tx, transition=move)

