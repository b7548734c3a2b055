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
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

from .metadata.spec import AppSpec, Label


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
