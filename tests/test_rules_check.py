"""crmkit check compiles every expression of the config: a mistake in one is
reported at its file, line and column inside the expression's text, with a
hint; the compiled rules hang on the typed specs."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import SAMPLE_CONFIG, make_config
from crmkit.expressions import Checked
from crmkit.loading import load_config as load
from crmkit.metadata.problems import ConfigError, Problem

APP = "app: shop\n"
ORDER = """\
entity: order
fields:
  customer: {type: ref, to: customer}
  status: {type: enum, options: [draft, paid]}
  quantity: {type: integer}
  price: {type: money}
  starts_on: {type: date}
  ends_on: {type: date}
"""
CUSTOMER = """\
entity: customer
relations:
  orders: {kind: one_to_many, entity: order, field: customer}
fields:
  name: {type: string}
"""


def problems_of(tmp_path: Path, order_extra: str = "", customer_extra: str = "", **files: str) -> list[Problem]:
    make_config(tmp_path, {"app.yaml": APP, "entities/order.yaml": ORDER + order_extra,
                           "entities/customer.yaml": CUSTOMER + customer_extra, **files})
    with pytest.raises(ConfigError) as info:
        load(tmp_path)
    return info.value.problems


def only(tmp_path: Path, order_extra: str = "", customer_extra: str = "", **files: str) -> Problem:
    problems = problems_of(tmp_path, order_extra, customer_extra, **files)
    assert len(problems) == 1, problems
    return problems[0]


def at(problem: Problem) -> tuple:
    return (problem.file, problem.line, problem.column)


def test_an_unknown_name_in_a_formula_points_into_the_expression(tmp_path):
    problem = only(tmp_path, '  amount: {type: money, formula: "quantiy * price"}\n')
    assert at(problem) == ("entities/order.yaml", 9, 35)  # the q of quantiy, after the opening quote
    assert problem.message == "order has no field 'quantiy'" and problem.hint == "did you mean 'quantity'?"


def test_a_plain_scalar_and_a_literal_block_are_located_too(tmp_path):
    line = "  amount: {type: money, formula: quantity * pric}\n"
    problem = only(tmp_path, line)
    assert at(problem) == ("entities/order.yaml", 9, line.index("pric}") + 1)
    block = "validate:\n  - rule: |\n      starts_on <= ends_on and\n      statuss = 'paid'\n    message: x\n"
    problem = only(tmp_path, block)
    assert at(problem) == ("entities/order.yaml", 12, 7) and "did you mean 'status'" in problem.hint


def test_syntax_and_type_errors_in_each_key(tmp_path):
    cases = {
        '  a: {type: string, visible_if: "status = "}\n': "visible_if",
        '  a: {type: string, required_if: "quantity + 1"}\n': "needs a condition",
        '  a: {type: string, readonly_if: "status = \'paid \'"}\n': "not one of the options",
        '  a: {type: integer, formula: "price * 2"}\n': "must compute an integer",
        '  a: {type: date, formula: "frobnicate(ends_on)"}\n': "unknown function",
        '  a: {type: json, formula: "1"}\n': "cannot have a formula",
    }
    for extra, words in cases.items():
        problems = problems_of(tmp_path / str(abs(hash(extra))), extra)
        assert len(problems) == 1 and problems[0].line == 9, (extra, problems)
        assert words in problems[0].message or words in problems[0].hint or words == "visible_if", (extra, problems)


def test_a_formula_takes_no_default_required_or_readonly(tmp_path):
    problems = problems_of(tmp_path, '  a: {type: money, formula: "price", default: 1, readonly: true}\n')
    assert {p.message for p in problems} == {"'default' does not apply to a formula field: its value is computed",
                                             "'readonly' does not apply to a formula field: its value is computed"}


def test_a_validation_rule_and_a_transition_guard_are_checked(tmp_path):
    problem = only(tmp_path, "validate:\n  - {rule: \"ends_on > '2026-02-30'\", message: x}\n")
    assert problem.line == 10 and "not a date" in problem.message
    move = '  - {from: draft, to: paid, when: "count(lines) > 0"}\n'
    flow = "workflow: order_flow\nentity: order\nfield: status\nstates: [draft, paid]\ntransitions:\n" + move
    problem = only(tmp_path / "flow", **{"workflows/flow.yaml": flow})
    assert at(problem) == ("workflows/flow.yaml", 6, move.index("lines") + 1)
    assert "order has no relation 'lines'" in problem.message


def test_aggregates_over_an_unknown_relation_suggest_one(tmp_path):
    problem = only(tmp_path, customer_extra="  spent: {type: money, formula: \"sum(order.price)\"}\n")
    assert problem.message == "customer has no relation 'order'" and problem.hint == "did you mean 'orders'?"
    assert at(problem) == ("entities/customer.yaml", 6, 38)


def test_formulas_in_a_cycle_are_refused(tmp_path):
    problems = problems_of(
        tmp_path, '  total: {type: money, formula: "coalesce(customer.spent, 0) + price"}\n',
        '  spent: {type: money, formula: "sum(orders.total)"}\n')
    assert len(problems) == 2
    assert all("cycle" in p.message for p in problems)
    assert {p.file for p in problems} == {"entities/order.yaml", "entities/customer.yaml"}


def test_a_formula_reading_itself_is_a_cycle(tmp_path):
    problem = only(tmp_path, '  n: {type: integer, formula: "coalesce(n, 0) + 1"}\n')
    assert "cycle: order.n → order.n" in problem.message


def test_the_compiled_rules_hang_on_the_typed_specs():
    spec, _pm, _types = load(SAMPLE_CONFIG)
    line = spec.entities["order_line"].fields["amount"]
    assert isinstance(line.formula, Checked) and line.formula.text == "quantity * unit_price" and line.readonly
    reason = spec.entities["opportunity"].fields["lost_reason"]
    assert reason.visible_if.text == reason.required_if.text == "stage = 'lost'"
    assert [rule.fields for rule in spec.entities["contract"].validate][0] == ("end_on", "start_on")
    win = next(m for flow in spec.workflows for m in flow.transitions if m.name == "win")
    assert isinstance(win.condition, Checked) and win.condition.text == win.when == "amount > 0"
    shipping = next(s for s in spec.entities["order"].form if s.visible_if)
    assert isinstance(shipping.condition, Checked)
