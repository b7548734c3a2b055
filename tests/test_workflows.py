"""Workflows as the config declares them (typed, frozen specs) and the guard
of a move as a pure function: an access and a record's values in, a verdict
out, with no database and no service."""

from __future__ import annotations

import dataclasses
import functools
import tempfile
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType

import pytest

from conftest import MINI_FILES, make_config
from crmkit.expressions import check
from crmkit.loading import load_config as load
from crmkit.metadata.spec import TransitionSpec, WorkflowSpec
from crmkit.permissions import Access
from crmkit.workflows import blocker, compile_workflow, missing_fields

WORKFLOW_YAML = """
    workflow: membership
    label: {en: Membership, zh: 会员等级}
    entity: customer
    field: level
    states: [bronze, silver, gold]
    transitions:
      - {name: upgrade, label: {en: Upgrade, zh: 升级}, from: bronze, to: silver, require: [email]}
      - {from: silver, to: gold, roles: [manager], when: "age >= 18"}
      - {name: reset, label: Reset, from: "*", to: bronze}
"""

ROLES_YAML = """
    roles:
      manager:
        label: 经理
        entities:
          "*": {read: all}
          customer: {update: team_tree, delete: false, export: true}
        fields:
          customer.email: masked
"""


def spec_of(tmp_path):
    config = make_config(tmp_path / "config", {**MINI_FILES, "workflows/membership.yaml": WORKFLOW_YAML,
                                                "roles.yaml": ROLES_YAML})
    spec, _pm, _types = load(config)
    return spec


DEAL_FILES = {"app.yaml": "app: deals\n", "entities/deal.yaml": """
    entity: deal
    fields:
      name: {type: string}
      email: {type: email}
      age: {type: integer}
      level: {type: enum, options: [bronze, silver, gold]}
      amount: {type: money}
      closed: {type: boolean}
      note: {type: string}
      stage: {type: enum, options: [open, won]}
"""}


@functools.cache
def deal_spec():
    with tempfile.TemporaryDirectory() as root:
        spec, _pm, _types = load(make_config(Path(root) / "config", DEAL_FILES))
    return spec


def move(name="win", *, roles=(), require=(), when=None, sources=("open",)):
    condition = check(when, deal_spec(), "deal") if when else None
    spec = WorkflowSpec("deal", MappingProxyType({"en": "Deal"}), "deal", "stage", ("open", "won"), "open",
                        (TransitionSpec(name, MappingProxyType({"en": name}), sources, "won", require, roles, when,
                                        condition),))
    return compile_workflow(spec, "Asia/Shanghai").transitions[0]


REP = Access(("rep",), MappingProxyType({}))
MANAGER = Access(("manager", "rep"), MappingProxyType({}))
SYSTEM = Access(("system",), MappingProxyType({}), system=True)


# ---------------------------------------------------------------- typed specs

def test_workflows_load_into_typed_frozen_specs(tmp_path):
    spec = spec_of(tmp_path)
    [workflow] = spec.workflows
    assert (workflow.name, workflow.entity, workflow.field, workflow.initial) == ("membership", "customer", "level",
                                                                                  "bronze")
    assert workflow.states == ("bronze", "silver", "gold") and workflow.label["zh"] == "会员等级"
    assert workflow.source == "workflows/membership.yaml"
    upgrade, gold, reset = workflow.transitions
    assert (upgrade.name, upgrade.sources, upgrade.to, upgrade.require) == ("upgrade", ("bronze",), "silver",
                                                                            ("email",))
    assert dict(upgrade.label) == {"en": "Upgrade", "zh": "升级"}
    assert gold.name == "gold" and gold.roles == ("manager",) and gold.when == "age >= 18"  # named after its target
    assert dict(reset.label) == {"en": "Reset", "zh": "Reset"} and reset.from_any_state
    with pytest.raises(dataclasses.FrozenInstanceError):
        workflow.initial = "gold"  # type: ignore[misc]
    assert not hasattr(spec, "documents")  # no raw documents reach the runtime


def test_roles_load_into_typed_frozen_specs(tmp_path):
    spec = spec_of(tmp_path)
    manager = spec.roles["manager"]
    assert dict(manager.label) == {"en": "经理", "zh": "经理"} and manager.source == "roles.yaml"
    assert dict(manager.grants["*"]) == {"read": "all"}
    assert dict(manager.grants["customer"]) == {"update": "team_tree", "delete": "none", "export": "all"}
    assert dict(manager.fields["customer"]) == {"email": "masked"}
    with pytest.raises(TypeError):
        manager.grants["customer"]["delete"] = "all"  # type: ignore[index]


# ---------------------------------------------------------------- the guard

def test_a_move_without_rules_is_open_to_anyone_who_gets_to_ask():
    assert blocker(move(), REP, {}) is None


def test_a_move_reserved_to_roles_blocks_other_roles_not_the_system():
    win = move(roles=("manager",))
    blocked = blocker(win, REP, {})
    assert blocked is not None and blocked.reason == "roles"
    assert blocked.message == "only manager may make the move 'win'"
    assert blocker(win, MANAGER, {}) is None
    assert blocker(win, SYSTEM, {}) is None


def test_required_fields_must_have_a_value():
    win = move(require=("amount", "note"))
    blocked = blocker(win, REP, {"amount": None, "note": ""})
    assert blocked is not None and blocked.reason == "required" and blocked.missing == ("amount", "note")
    assert blocked.message == "'win' needs: amount, note"
    assert missing_fields(win, {"amount": Decimal(5), "note": []}) == ["note"]
    assert blocker(win, REP, {"amount": Decimal(5), "note": "ok"}) is None


def test_roles_are_checked_before_required_fields_and_the_condition():
    win = move(roles=("manager",), require=("amount",), when="amount > 0")
    blocked = blocker(win, REP, {"amount": None})
    assert blocked is not None and blocked.reason == "roles"


def test_the_condition_decides_on_the_records_values():
    win = move(when="amount > 1000 and closed = false")
    assert blocker(win, REP, {"amount": Decimal("1000.01"), "closed": False}) is None
    blocked = blocker(win, REP, {"amount": Decimal("999"), "closed": False})
    assert blocked is not None and blocked.reason == "condition_failed"
    assert blocked.message == "'win' needs: amount > 1000 and closed = false"
    assert blocker(win, REP, {"amount": None, "closed": False}).reason == "condition_failed"


def test_a_condition_is_the_expression_language_with_its_null_rules():
    anyday = move(when="weekday(today()) between 1 and 7 and (amount > 1 or age < 2)")
    assert blocker(anyday, REP, {"age": 1, "amount": None}) is None
    assert blocker(anyday, REP, {"age": 5, "amount": Decimal("0.50")}).reason == "condition_failed"
    unknown = move(when="age >= 18 and level != 'gold' and note is null")
    assert blocker(unknown, REP, {"age": 18, "level": "silver", "note": None}) is None
    assert blocker(unknown, REP, {"age": None, "level": "silver", "note": None}).reason == "condition_failed"
    assert blocker(unknown, REP, {"age": 30, "level": "gold", "note": None}).reason == "condition_failed"


def test_a_condition_runs_as_the_system_whatever_the_caller_may_see():
    gold = move(when="level = 'gold'")  # REP's access knows no field rules: the guard reads the value itself
    assert blocker(gold, REP, {"level": "gold"}) is None


def test_sources_of_a_move():
    assert move(sources=("open",)).allows_from("open") and not move(sources=("open",)).allows_from("won")
    anywhere = move(sources=("*",))
    assert anywhere.sources is None and anywhere.allows_from("won")


def test_the_api_gives_each_moves_label_as_a_label(make_app, tmp_path):
    app = make_app(make_config(tmp_path / "config", {**MINI_FILES, "workflows/membership.yaml": WORKFLOW_YAML,
                                                     "roles.yaml": ROLES_YAML}))
    client = app.test_client()
    record = client.post("/api/v1/customer", json={"name": "member"}).get_json()["data"]
    moves = client.get(f"/api/v1/customer/{record['id']}/transitions").get_json()["data"]
    assert [(m["name"], m["label"]) for m in moves] == [("upgrade", {"en": "Upgrade", "zh": "升级"}),
                                                         ("reset", {"en": "Reset", "zh": "Reset"})]
