"""Workflows: the state machines of the config, compiled from their specs, and
the guard that decides whether a move may be made.

A workflow's field changes only through its transitions: from the allowed
states, by the roles the transition names, within the caller's ``transition``
scope, with the required fields filled and the ``when`` condition true. This
module is the model and the guard, with no database and no service: the
records service fetches the record, checks the scope, asks :func:`blocker`
and makes the move through its update path.

``when`` conditions: until the expression language lands, the subset
``field OP literal [and field OP literal ...]`` (OP one of = == != < <= > >=,
literals numbers, 'text', true, false, null) is compiled; any other
condition compiles to nothing, and its transition refuses with a message
saying so rather than run unchecked. :class:`Condition` is the seam the
expression language replaces.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, Protocol

from .metadata.spec import AppSpec, Label, TransitionSpec, WorkflowSpec
from .permissions import Access

# ------------------------------------------------------------------ conditions


class Condition(Protocol):
    """A compiled ``when``: whether a record's values (field name -> stored value) satisfy it."""

    def holds(self, values: Mapping[str, Any]) -> bool: ...


_COMPARISON = re.compile(r"^\s*([a-z][a-z0-9_]*)\s*(==|!=|<=|>=|=|<|>)\s*(.+?)\s*$")
_UNSUPPORTED = object()


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
        return _UNSUPPORTED


@dataclass(frozen=True)
class Comparisons:
    """``field OP literal [and ...]``: every comparison holds."""

    parts: tuple[tuple[str, str, Any], ...]

    def holds(self, values: Mapping[str, Any]) -> bool:
        return all(_compare(values.get(name), op, literal) for name, op, literal in self.parts)


def _compare(value: Any, op: str, literal: Any) -> bool:
    if isinstance(literal, Decimal) and value is not None and not isinstance(value, bool):
        try:
            value = Decimal(str(value))
        except InvalidOperation:
            return False
    if op in ("=", "=="):
        return bool(value == literal)
    if op == "!=":
        return bool(value != literal)
    if value is None or literal is None:
        return False
    try:
        if op == "<":
            return bool(value < literal)
        if op == "<=":
            return bool(value <= literal)
        if op == ">":
            return bool(value > literal)
        return bool(value >= literal)
    except TypeError:
        return False


def compile_condition(text: str, fields: Collection[str]) -> Condition | None:
    """The condition, or None when it is outside the supported subset (or
    names something that is not a field of the entity)."""
    parts = []
    for part in re.split(r"\s+and\s+", text.strip()):
        match = _COMPARISON.match(part)
        if not match or match.group(1) not in fields:
            return None
        literal = _literal(match.group(3))
        if literal is _UNSUPPORTED:
            return None
        parts.append((match.group(1), match.group(2), literal))
    return Comparisons(tuple(parts))


# ------------------------------------------------------------------ the model

@dataclass(frozen=True)
class Transition:
    """A move, compiled from its spec."""

    spec: TransitionSpec
    #: None: from any state.
    sources: frozenset[str] | None
    roles: frozenset[str]
    #: The compiled ``when``; None without one, or when it is outside the supported subset.
    condition: Condition | None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def label(self) -> Label:
        return self.spec.label

    @property
    def to(self) -> str:
        return self.spec.to

    @property
    def require(self) -> tuple[str, ...]:
        return self.spec.require

    @property
    def when(self) -> str | None:
        return self.spec.when

    def allows_from(self, state: Any) -> bool:
        return self.sources is None or str(state) in self.sources


@dataclass(frozen=True)
class Workflow:
    """A workflow, compiled from its spec against its entity's fields."""

    spec: WorkflowSpec
    transitions: tuple[Transition, ...]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def entity(self) -> str:
        return self.spec.entity

    @property
    def field(self) -> str:
        return self.spec.field

    @property
    def states(self) -> tuple[str, ...]:
        return self.spec.states

    @property
    def initial(self) -> str:
        return self.spec.initial

    def transition(self, name: str) -> Transition | None:
        return next((move for move in self.transitions if move.name == name), None)


def compile_workflow(spec: WorkflowSpec, fields: Collection[str]) -> Workflow:
    moves = tuple(
        Transition(move, None if move.from_any_state else frozenset(move.sources), frozenset(move.roles),
                   compile_condition(move.when, fields) if move.when else None)
        for move in spec.transitions)
    return Workflow(spec, moves)


def compile_workflows(spec: AppSpec) -> dict[str, tuple[Workflow, ...]]:
    """Workflows by entity name."""
    found: dict[str, list[Workflow]] = {}
    for workflow in spec.workflows:
        fields = spec.entities[workflow.entity].fields
        found.setdefault(workflow.entity, []).append(compile_workflow(workflow, fields))
    return {entity: tuple(flows) for entity, flows in found.items()}


# ------------------------------------------------------------------ the guard

def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def missing_fields(move: Transition, values: Mapping[str, Any]) -> list[str]:
    """The fields the move requires that have no value."""
    return [name for name in move.require if _empty(values.get(name))]


@dataclass(frozen=True)
class Blocked:
    """Why a move cannot be made now: ``roles`` (the caller has none of the
    move's roles), ``required`` (fields without a value: ``missing``),
    ``condition_failed`` or ``unsupported_condition``."""

    reason: Literal["roles", "required", "condition_failed", "unsupported_condition"]
    message: str
    missing: tuple[str, ...] = ()


def blocker(move: Transition, access: Access, values: Mapping[str, Any]) -> Blocked | None:
    """What stops someone with this access making the move on a record with
    these values (field name -> value), if anything: its roles, its required
    fields, its condition, checked in that order. The source state and the
    ``transition`` scope are the caller's to check."""
    if move.roles and not access.system and not move.roles & set(access.roles):
        return Blocked("roles", f"only {', '.join(sorted(move.roles))} may make the move '{move.name}'")
    missing = missing_fields(move, values)
    if missing:
        return Blocked("required", f"'{move.name}' needs: {', '.join(missing)}", tuple(missing))
    if move.when:
        if move.condition is None:
            return Blocked("unsupported_condition",
                           f"the condition '{move.when}' needs the expression language, which is not built yet")
        if not move.condition.holds(values):
            return Blocked("condition_failed", f"'{move.name}' needs: {move.when}")
    return None
