"""Workflows: the state machines of the config, compiled from their specs, and
the guard that decides whether a move may be made.

A workflow's field changes only through its transitions: from the allowed
states, by the roles the transition names, within the caller's ``transition``
scope, with the required fields filled and the ``when`` condition true. This
module is the model and the guard, with no database and no service: the
records service fetches the record, checks the scope, asks :func:`blocker`
and makes the move through its update path.

``when`` conditions are in the expression language, compiled at check time
(TransitionSpec.condition) and evaluated here on the record's values, as the
system (a guard is the admin's rule, not the caller's question): a condition
may read fields the caller cannot see, and through references and relations
when a loader is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from zoneinfo import ZoneInfo

from .expressions import Context, Loader, holds
from .expressions.tree import Checked
from .metadata.spec import AppSpec, Label, TransitionSpec, WorkflowSpec
from .permissions import Access

# ------------------------------------------------------------------ the model

@dataclass(frozen=True)
class Transition:
    """A move, compiled from its spec."""

    spec: TransitionSpec
    #: None: from any state.
    sources: frozenset[str] | None
    roles: frozenset[str]
    #: The app's timezone: today() and date() in a condition are days there.
    timezone: ZoneInfo

    @property
    def condition(self) -> Checked | None:
        """The compiled ``when`` (None without one)."""
        return self.spec.condition

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


def compile_workflow(spec: WorkflowSpec, timezone: str) -> Workflow:
    zone = ZoneInfo(timezone)
    moves = tuple(Transition(move, None if move.from_any_state else frozenset(move.sources), frozenset(move.roles),
                             zone)
                  for move in spec.transitions)
    return Workflow(spec, moves)


def compile_workflows(spec: AppSpec) -> dict[str, tuple[Workflow, ...]]:
    """Workflows by entity name."""
    found: dict[str, list[Workflow]] = {}
    for workflow in spec.workflows:
        found.setdefault(workflow.entity, []).append(compile_workflow(workflow, spec.timezone))
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
    move's roles), ``required`` (fields without a value: ``missing``) or
    ``condition_failed``."""

    reason: Literal["roles", "required", "condition_failed"]
    message: str
    missing: tuple[str, ...] = ()


def blocker(move: Transition, access: Access, values: Mapping[str, Any], *, context: Context | None = None,
            loader: Loader | None = None) -> Blocked | None:
    """What stops someone with this access making the move on a record with
    these values (field name -> value, with ``id`` for a stored record), if
    anything: its roles, its required fields, its condition, checked in that
    order. The source state and the ``transition`` scope are the caller's to
    check. ``context``: when (now by default) and for whom; ``loader``: how a
    condition that reads other records reads them (crmkit.expressions.SqlLoader;
    needed only by such conditions)."""
    if move.roles and not access.system and not move.roles & set(access.roles):
        return Blocked("roles", f"only {', '.join(sorted(move.roles))} may make the move '{move.name}'")
    missing = missing_fields(move, values)
    if missing:
        return Blocked("required", f"'{move.name}' needs: {', '.join(missing)}", tuple(missing))
    condition = move.condition
    if condition is not None and not holds(condition, values, context or Context(move.timezone), loader):
        return Blocked("condition_failed", f"'{move.name}' needs: {move.when}")
    return None
