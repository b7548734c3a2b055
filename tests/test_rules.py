"""Rules of the metadata through the API, on SQLite and PostgreSQL: formulas
and rollups kept current, conditional fields, validation rules, the workflow
guard in the expression language, crmkit recompute, and the form states the
screens get from the same compiled rules."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from conftest import OVERWRITE, is_error, make_config, token_for
from crmkit.app import create_app
from crmkit.cli import cli
from crmkit.permissions import SYSTEM
from crmkit.rules import field_states, sections_shown
from crmkit.settings import Settings

APP = "app: shop\nlabel: Shop\ntimezone: Asia/Shanghai\n"

CUSTOMER = """
entity: customer
fields:
  name: {type: string, required: true}
  spent: {type: money, formula: "coalesce(sum(orders.net where status = 'paid'), 0)"}
  paid_orders: {type: integer, formula: "count(orders where status = 'paid')"}
  band: {type: string, formula: "if(spent >= 1000, 'big', 'small')"}
  labelled: {type: integer, formula: "count(labels)"}
relations:
  orders: {kind: one_to_many, entity: order, field: customer}
  labels: {kind: many_to_many, entity: label}
"""

LABEL = """
entity: label
fields:
  name: {type: string}
"""

ORDER = """
entity: order
fields:
  customer: {type: ref, to: customer, required: true}
  status: {type: enum, options: [draft, paid, cancelled], default: draft}
  total: {type: money, formula: "coalesce(sum(lines.amount), 0)"}
  discount_rate: {type: decimal, scale: 2}
  net: {type: money, formula: "total * (1 - coalesce(discount_rate, 0))"}
  cancel_reason: {type: string, visible_if: "status = 'cancelled'", required_if: "status = 'cancelled'"}
  discount_reason: {type: string, required: true, visible_if: "discount_rate > 0"}
  note: {type: string, readonly_if: "status = 'paid'"}
  customer_name: {type: string, formula: "customer.name + ' (' + customer.band + ')'"}
  starts_on: {type: date}
  ends_on: {type: date}
validate:
  - rule: "ends_on >= starts_on"
    message: {en: The order ends before it starts, zh: 订单结束早于开始}
  - rule: "discount_rate is null or discount_rate <= 0.5"
    message: {en: At most half off, zh: 折扣不超过五折}
  - rule: "discount_rate is null or discount_rate < 0.3 or note is not null"
    message: {en: A big discount needs a note, zh: 大额折扣需备注}
relations:
  lines: {kind: one_to_many, entity: line, field: order}
"""

LINE = """
entity: line
fields:
  order: {type: ref, to: order, required: true, on_delete: cascade}
  quantity: {type: integer, required: true}
  unit_price: {type: money, required: true}
  amount: {type: money, formula: "quantity * unit_price"}
"""

DEAL = """
entity: deal
fields:
  customer: {type: ref, to: customer, required: true}
  stage: {type: enum, options: [open, won, lost], default: open}
"""

DEAL_FLOW = """
workflow: deal_stage
entity: deal
field: stage
states: [open, won, lost]
transitions:
  - {name: win, from: open, to: won, when: "customer.paid_orders >= 1 and weekday(today()) between 1 and 7"}
  - {name: lose, from: open, to: lost}
"""

ROLES = """
roles:
  clerk:
    label: Clerk
    entities: {"*": {read: all, create: true, update: all, delete: all}}
    fields: {order.discount_rate: hidden}
"""

FILES = {"app.yaml": APP, "roles.yaml": ROLES, "entities/customer.yaml": CUSTOMER, "entities/label.yaml": LABEL,
         "entities/order.yaml": ORDER, "entities/line.yaml": LINE, "entities/deal.yaml": DEAL,
         "workflows/deal.yaml": DEAL_FLOW}


@pytest.fixture(scope="module")
def shop(module_database_url, tmp_path_factory):
    root = tmp_path_factory.mktemp("shop")
    config = make_config(root / "config", FILES)
    from conftest import as_test_app

    app = as_test_app(create_app(config, Settings(database_url=module_database_url, instance_dir=root / "instance")))
    app.config["shop_config"] = config
    yield app
    app.extensions["crmkit"].engine.dispose()


@pytest.fixture
def api(shop):
    return shop.test_client()


def post(api, entity, body, status=201):
    response = api.post(f"/api/v1/{entity}", json=body)
    assert response.status_code == status, response.get_json()
    return response.get_json()["data"] if status == 201 else response.get_json()


def get(api, entity, record_id):
    return api.get(f"/api/v1/{entity}/{record_id}").get_json()["data"]


def patch(api, entity, record_id, body):
    return api.patch(f"/api/v1/{entity}/{record_id}", json=body, headers=OVERWRITE)


def order_with_lines(api, customer_id, *lines, **fields):
    order = post(api, "order", {"customer": customer_id, **fields})
    for quantity, price in lines:
        post(api, "line", {"order": order["id"], "quantity": quantity, "unit_price": price})
    return get(api, "order", order["id"])


# ---------------------------------------------------------------- formulas and rollups

def test_a_formula_is_computed_on_every_write_of_its_record(api):
    customer = post(api, "customer", {"name": "Li"})
    order = post(api, "order", {"customer": customer["id"]})
    line = post(api, "line", {"order": order["id"], "quantity": 3, "unit_price": "2.50"})
    assert line["amount"] == "7.50"
    changed = patch(api, "line", line["id"], {"quantity": 4}).get_json()["data"]
    assert changed["amount"] == "10.00"


def test_a_formula_field_is_refused_on_writes(api):
    customer = post(api, "customer", {"name": "Wang"})
    error = is_error(api.post("/api/v1/order", json={"customer": customer["id"], "total": "5.00"}), 422)
    assert error["details"]["total"] == ["is computed by its formula: it cannot be set"]
    order = post(api, "order", {"customer": customer["id"]})
    error = is_error(patch(api, "order", order["id"], {"net": "1.00"}), 422)
    assert "computed by its formula" in error["details"]["net"][0]


def test_rollups_follow_lines_created_changed_moved_deleted_and_restored(api):
    customer = post(api, "customer", {"name": "Zhao"})
    first = order_with_lines(api, customer["id"], (2, "10.00"), (1, "5.00"))
    second = order_with_lines(api, customer["id"])
    assert (first["total"], first["net"], second["total"]) == ("25.00", "25.00", "0.00")
    line = post(api, "line", {"order": first["id"], "quantity": 1, "unit_price": "1.00"})
    assert get(api, "order", first["id"])["total"] == "26.00"
    patch(api, "line", line["id"], {"unit_price": "3.00"})  # changed
    assert get(api, "order", first["id"])["total"] == "28.00"
    patch(api, "line", line["id"], {"order": second["id"]})  # moved: both orders
    assert (get(api, "order", first["id"])["total"], get(api, "order", second["id"])["total"]) == ("25.00", "3.00")
    assert api.delete(f"/api/v1/line/{line['id']}").status_code == 204
    assert get(api, "order", second["id"])["total"] == "0.00"
    assert api.post(f"/api/v1/recycle_bin/line/{line['id']}/restore").status_code == 200
    assert get(api, "order", second["id"])["total"] == "3.00"


def test_rollups_chain_through_formulas_and_other_entities(api):
    customer = post(api, "customer", {"name": "Sun"})
    order = order_with_lines(api, customer["id"], (10, "100.00"), discount_rate="0.10", discount_reason="loyal")
    assert order["net"] == "900.00"
    assert get(api, "customer", customer["id"])["spent"] == "0.00"  # not paid yet
    assert patch(api, "order", order["id"], {"status": "paid"}).status_code == 200
    found = get(api, "customer", customer["id"])
    assert (found["spent"], found["paid_orders"], found["band"]) == ("900.00", 1, "small")
    post(api, "line", {"order": order["id"], "quantity": 1, "unit_price": "200.00"})  # line -> order -> customer
    found = get(api, "customer", customer["id"])
    assert (found["spent"], found["band"]) == ("1080.00", "big")
    other = post(api, "customer", {"name": "Qian"})
    patch(api, "order", order["id"], {"customer": other["id"]})  # the order moves to another customer
    assert get(api, "customer", customer["id"])["spent"] == "0.00"
    assert get(api, "customer", other["id"])["spent"] == "1080.00"
    assert api.delete(f"/api/v1/order/{order['id']}").status_code == 204  # its lines go with it (cascade)
    assert get(api, "customer", other["id"])["paid_orders"] == 0


def test_a_formula_through_a_ref_follows_the_referenced_record(api):
    customer = post(api, "customer", {"name": "Jiang"})
    order = order_with_lines(api, customer["id"], (1, "2000.00"))
    assert order["customer_name"] == "Jiang (small)"
    patch(api, "customer", customer["id"], {"name": "Jiang Wei"})
    assert get(api, "order", order["id"])["customer_name"] == "Jiang Wei (small)"
    patch(api, "order", order["id"], {"status": "paid"})  # the customer's band changes: so does the order's formula
    assert get(api, "order", order["id"])["customer_name"] == "Jiang Wei (big)"


def test_many_to_many_links_count(api):
    customer = post(api, "customer", {"name": "Zhou"})
    labels = [post(api, "label", {"name": n})["id"] for n in ("a", "b")]
    assert api.post(f"/api/v1/customer/{customer['id']}/labels", json={"ids": labels}).status_code in (200, 201)
    assert get(api, "customer", customer["id"])["labelled"] == 2
    assert api.delete(f"/api/v1/customer/{customer['id']}/labels/{labels[0]}").status_code in (200, 204)
    assert get(api, "customer", customer["id"])["labelled"] == 1


def test_recompute_rebuilds_formulas_set_based(shop, api):
    customer = post(api, "customer", {"name": "Wu"})
    order = order_with_lines(api, customer["id"], (1, "50.00"), status="paid")
    rt = shop.extensions["crmkit"]
    orders, customers = rt.tables.entities["order"], rt.tables.entities["customer"]
    with rt.engine.begin() as conn:  # a bulk load that went around the records service
        conn.execute(orders.update().where(orders.c.id == order["id"]).values(total=None, net=None))
        conn.execute(customers.update().where(customers.c.id == customer["id"]).values(spent=None))
    result = CliRunner().invoke(cli, ["recompute", "order", str(shop.config["shop_config"])],
                                env={"CRMKIT_DATABASE_URL": str(rt.engine.url.render_as_string(False))})
    assert result.exit_code == 0, result.output
    assert "order.total" in result.output and "customer.spent" in result.output
    assert get(api, "order", order["id"])["net"] == "50.00"
    assert get(api, "customer", customer["id"])["spent"] == "50.00"


def test_recompute_names_what_it_cannot_find(shop):
    rt = shop.extensions["crmkit"]
    env = {"CRMKIT_DATABASE_URL": str(rt.engine.url.render_as_string(False))}
    config = str(shop.config["shop_config"])
    result = CliRunner().invoke(cli, ["recompute", "ordr", config], env=env)
    assert result.exit_code == 1
    assert "unknown entity 'ordr'" in result.output and "did you mean 'order'" in result.output
    result = CliRunner().invoke(cli, ["recompute", "order.totl", config], env=env)
    assert result.exit_code == 1 and "no formula field 'totl'" in result.output


# ---------------------------------------------------------------- conditional fields

def test_required_if_and_visible_if(api):
    customer = post(api, "customer", {"name": "Zheng"})
    order = post(api, "order", {"customer": customer["id"]})
    error = is_error(patch(api, "order", order["id"], {"status": "cancelled"}), 422, "rule_failed")
    assert error["details"]["cancel_reason"] == ["is required when status = 'cancelled'"]
    cancelled = patch(api, "order", order["id"], {"status": "cancelled", "cancel_reason": "too slow"})
    assert cancelled.get_json()["data"]["cancel_reason"] == "too slow"
    reopened = patch(api, "order", order["id"], {"status": "draft"}).get_json()["data"]
    assert reopened["cancel_reason"] is None  # hidden by its condition: cleared
    ignored = patch(api, "order", order["id"], {"cancel_reason": "sneaky"}).get_json()["data"]
    assert ignored["cancel_reason"] is None


def test_a_required_field_hidden_by_its_condition_is_not_required(api):
    customer = post(api, "customer", {"name": "Feng"})
    order = post(api, "order", {"customer": customer["id"]})  # discount_reason: required only where it shows
    assert order["discount_reason"] is None
    error = is_error(patch(api, "order", order["id"], {"discount_rate": "0.20"}), 422, "rule_failed")
    assert error["details"] == {"discount_reason": ["is required when discount_rate > 0"]}
    error = is_error(api.post("/api/v1/order", json={"customer": customer["id"], "discount_rate": "0.2"}), 422)
    assert "discount_reason" in error["details"]
    given = patch(api, "order", order["id"], {"discount_rate": "0.20", "discount_reason": "friend"})
    assert given.status_code == 200


def test_readonly_if_applies_to_the_record_as_stored(api):
    customer = post(api, "customer", {"name": "Chen"})
    order = post(api, "order", {"customer": customer["id"], "note": "draft note"})
    assert patch(api, "order", order["id"], {"note": "edited", "status": "paid"}).status_code == 200
    error = is_error(patch(api, "order", order["id"], {"note": "later"}), 422, "rule_failed")
    assert error["details"]["note"] == ["is read-only while status = 'paid'"]
    assert patch(api, "order", order["id"], {"note": "edited"}).status_code == 200  # unchanged: no change


# ---------------------------------------------------------------- validation rules

def test_validation_rules_on_create_update_and_bulk(api):
    customer = post(api, "customer", {"name": "Han"})
    body = {"customer": customer["id"], "starts_on": "2026-03-02", "ends_on": "2026-03-01"}
    error = is_error(api.post("/api/v1/order", json=body), 422, "rule_failed")
    assert error["message"] == "The order ends before it starts"
    assert error["details"]["starts_on"] == error["details"]["ends_on"] == ["The order ends before it starts"]
    [rule] = error["details"]["_rules"]
    assert rule == {"rule": "ends_on >= starts_on", "fields": ["ends_on", "starts_on"],
                    "message": {"en": "The order ends before it starts", "zh": "订单结束早于开始"}}
    order = post(api, "order", {**body, "ends_on": None})  # unknown is no failure: an empty end date passes
    error = is_error(patch(api, "order", order["id"], {"ends_on": "2026-01-01", "discount_rate": "0.60"}), 422)
    assert {r["rule"] for r in error["details"]["_rules"]} == {
        "ends_on >= starts_on", "discount_rate is null or discount_rate <= 0.5",
        "discount_rate is null or discount_rate < 0.3 or note is not null"}
    bulk = api.post("/api/v1/order/_bulk", json=[{"customer": customer["id"]}, {**body}])
    error = is_error(bulk, 422, "rule_failed")
    assert set(error["details"]) == {"1"} and "_rules" in error["details"]["1"]


def test_validation_runs_on_transitions_and_the_guard_reads_through_refs(shop, api):
    customer = post(api, "customer", {"name": "Yang"})
    deal = post(api, "deal", {"customer": customer["id"]})
    moves = {m["name"]: m for m in api.get(f"/api/v1/deal/{deal['id']}/transitions").get_json()["data"]}
    assert moves["win"]["allowed"] is False and "customer.paid_orders >= 1" in moves["win"]["reason"]
    is_error(api.post(f"/api/v1/deal/{deal['id']}/transitions/win", json={}), 409, "condition_failed")
    order_with_lines(api, customer["id"], (1, "1.00"), status="paid")
    moved = api.post(f"/api/v1/deal/{deal['id']}/transitions/win", json={})
    assert moved.status_code == 200 and moved.get_json()["data"]["stage"] == "won"


def test_rules_hold_for_the_system_too(shop):
    rt = shop.extensions["crmkit"]
    customer = rt.records.create("customer", {"name": "Sys"}, SYSTEM)
    with pytest.raises(Exception) as raised:
        rt.records.create("order", {"customer": customer["id"], "starts_on": "2026-02-02", "ends_on": "2026-02-01"},
                          SYSTEM)
    assert getattr(raised.value, "code", None) == "rule_failed"
    order = rt.records.create("order", {"customer": customer["id"], "total": "99.00"}, SYSTEM)
    assert order["total"] == Decimal("0.00")  # the system may send a formula field: it is computed all the same
    updated = rt.records.update("order", order["id"], {"total": "5.00", "discount_rate": "0.1",
                                                      "discount_reason": "x"}, SYSTEM)
    assert updated["total"] == Decimal("0.00") and updated["net"] == Decimal("0.00")


# ---------------------------------------------------------------- for the screens

def test_field_states_give_forms_the_same_rules(shop):
    rt = shop.extensions["crmkit"]
    rules = rt.records.rules
    states = field_states(rules, "order", {"status": "cancelled", "total": Decimal("5.00")})
    assert states["cancel_reason"].visible and states["cancel_reason"].required
    assert not states["discount_reason"].visible and not states["discount_reason"].required
    assert states["total"].readonly and not states["note"].readonly
    stored = field_states(rules, "order", {"status": "paid", "discount_rate": Decimal("0.1")}, stored=True)
    assert stored["note"].readonly and stored["discount_reason"].required and not stored["cancel_reason"].visible
    with rt.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(rt.tables.entities["order"])).scalar() >= 0


# ---------------------------------------------------------------- permissions

def test_a_rule_reading_a_hidden_field_holds_but_names_neither_it_nor_its_text(shop, api):
    customer = post(api, "customer", {"name": "Lu"})
    order = post(api, "order", {"customer": customer["id"], "discount_rate": "0.40", "discount_reason": "vip",
                                "note": "approved by Ma"})
    token_for(shop, "clerk", ("clerk",))
    clerk = shop.test_client(user="clerk")
    assert "discount_rate" not in get(clerk, "order", order["id"])
    error = is_error(patch(clerk, "order", order["id"], {"note": None}), 422, "rule_failed")
    assert error["message"] == "A big discount needs a note"
    assert error["details"]["_rules"] == [{"rule": None, "fields": ["note"],
                                          "message": {"en": "A big discount needs a note", "zh": "大额折扣需备注"}}]
    assert "discount_rate" not in str(error) and "discount_reason" in str(get(clerk, "order", order["id"]))
    access = shop.extensions["crmkit"].permissions.of(
        shop.extensions["crmkit"].directory.actor_for_token(token_for(shop, "clerk", ("clerk",)))).entity("order")
    states = field_states(shop.extensions["crmkit"].records.rules, "order", {"discount_rate": Decimal("0.4")}, access)
    assert "discount_rate" not in states and states["discount_reason"].visible


def test_sections_shown_follow_their_conditions(tmp_path, make_runtime):
    from conftest import SAMPLE_CONFIG

    rt = make_runtime(SAMPLE_CONFIG)
    shown = sections_shown(rt.records.rules, "order", {"channel": "store"})
    assert shown == [True, True, False, True]
    assert sections_shown(rt.records.rules, "order", {"channel": "online"})[2] is True


# ---------------------------------------------------------------- the sample config

def test_the_sample_configs_rules(make_app):
    from conftest import SAMPLE_CONFIG

    app = make_app(SAMPLE_CONFIG)
    api = app.test_client()
    customer = post(api, "customer", {"name": "张三"})
    product = post(api, "product", {"name": "茶叶", "price": "88.00"})
    order = post(api, "order", {"customer": customer["id"]})
    for quantity in (2, 1):
        post(api, "order_line", {"order": order["id"], "product": product["id"], "quantity": quantity,
                                 "unit_price": "88.00"})
    assert get(api, "order", order["id"])["total"] == "264.00"
    patch(api, "order", order["id"], {"status": "paid", "paid_amount": "250.00"})
    found = get(api, "customer", customer["id"])
    assert (found["total_spent"], found["order_count"]) == ("250.00", 1)
    assert found["last_order_at"] == get(api, "order", order["id"])["ordered_at"]

    body = {"name": "年度合同", "customer": customer["id"], "amount": "1000.00", "start_on": "2026-06-01",
            "end_on": "2026-05-01"}
    error = is_error(api.post("/api/v1/contract", json=body), 422, "rule_failed")
    assert error["details"]["_rules"][0]["message"]["zh"] == "合同到期日期早于开始日期"

    deal = post(api, "opportunity", {"name": "大单", "customer": customer["id"]})
    is_error(api.post(f"/api/v1/opportunity/{deal['id']}/transitions/lose", json={}), 409, "fields_required")
    lost = api.post(f"/api/v1/opportunity/{deal['id']}/transitions/lose", json={"lost_reason": "price"})
    assert lost.status_code == 200 and lost.get_json()["data"]["lost_reason"] == "price"
    reopened = api.post(f"/api/v1/opportunity/{deal['id']}/transitions/reopen", json={})
    assert reopened.get_json()["data"]["lost_reason"] is None  # hidden again: cleared
    sent = patch(api, "opportunity", deal["id"], {"lost_reason": "price"})  # a hidden field's value is not kept
    assert sent.status_code == 200 and sent.get_json()["data"]["lost_reason"] is None
