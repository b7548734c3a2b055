"""The demo data hangs together: totals and counts match the records that
exist, dates are where they belong, only lost opportunities have a lost
reason, WeChat IDs look like WeChat IDs."""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from decimal import Decimal

import pytest
import sqlalchemy as sa

from conftest import SAMPLE_CONFIG
from crmkit.seed import PAID, seed

TODAY = dt.date(2026, 6, 15)


@pytest.fixture(scope="module")
def sample(module_database_url, tmp_path_factory):
    """The sample config seeded with 150 customers, as of TODAY: every table's
    live rows, by entity, as dicts by field name."""
    from crmkit.runtime import build
    from crmkit.settings import Settings

    rt = build(SAMPLE_CONFIG, Settings(module_database_url, tmp_path_factory.mktemp("seed") / "instance"))
    try:
        rt.migrate()
        seed(rt, size=150, random_seed=11, today=TODAY)
        data = {}
        with rt.engine.connect() as conn:
            for name, entity in rt.spec.entities.items():
                table = rt.tables.entities[name]
                rows = conn.execute(sa.select(table).where(table.c.deleted_at.is_(None))).mappings().all()
                data[name] = {row["id"]: {f.name: row[f.column] for f in entity.fields.values()} for row in rows}
        yield data
    finally:
        rt.engine.dispose()


def children(data, entity: str, via: str) -> dict[int, list[dict]]:
    found: dict[int, list[dict]] = defaultdict(list)
    for record in data[entity].values():
        if record[via] is not None:
            found[record[via]].append(record)
    return found


def test_an_order_totals_its_lines(sample):
    lines = children(sample, "order_line", "order")
    products = sample["product"]
    assert all(lines[order_id] for order_id in sample["order"])  # no order without a line
    for order_id, order in sample["order"].items():
        assert order["total"] == sum(line["amount"] for line in lines[order_id])
        paid = order["total"] - (order["discount_amount"] or 0) if order["status"] in PAID else 0
        assert order["paid_amount"] == paid
    for line in sample["order_line"].values():
        assert line["amount"] == line["quantity"] * line["unit_price"]
        assert line["product_name"] == products[line["product"]]["name"]
        assert line["unit_price"] == products[line["product"]]["price"]


def test_a_customer_sums_up_their_orders(sample):
    orders = children(sample, "order", "customer")
    assert any(orders.values()) and any(not orders[c] for c in sample["customer"])
    for customer_id, customer in sample["customer"].items():
        mine = orders[customer_id]
        paid = [o for o in mine if o["status"] in PAID]
        assert customer["order_count"] == len(paid)  # a formula: count(orders where status in (...))
        assert customer["total_spent"] == sum((o["paid_amount"] for o in mine), Decimal("0.00"))
        assert customer["last_order_at"] == max((o["ordered_at"] for o in mine), default=None)
        if mine:
            assert customer["member_since"] is None or customer["member_since"] <= min(
                o["ordered_at"] for o in mine).date()
        if paid:
            assert 1 <= customer["rfm_recency"] <= 5 and customer["rfm_frequency"] == min(5, len(paid))
        else:
            assert customer["rfm_recency"] is customer["rfm_frequency"] is customer["rfm_monetary"] is None


def test_contracts_their_plans_and_payments_agree(sample):
    plans = children(sample, "receivable_plan", "contract")
    payments_of_contract = children(sample, "payment", "contract")
    payments_of_plan = children(sample, "payment", "receivable_plan")
    for contract_id, contract in sample["contract"].items():
        assert sum(p["amount"] for p in plans[contract_id]) == contract["amount"]
        assert sorted(p["instalment"] for p in plans[contract_id]) == list(range(1, len(plans[contract_id]) + 1))
        assert contract["received_amount"] == sum((p["amount"] for p in payments_of_contract[contract_id]),
                                                  Decimal("0.00"))
    for plan_id, plan in sample["receivable_plan"].items():
        paid = sum((p["amount"] for p in payments_of_plan[plan_id]), Decimal("0.00"))
        assert plan["paid_amount"] == paid
        assert plan["status"] == ("paid" if paid and paid >= plan["amount"] else "partial" if paid else "pending")
    for payment in sample["payment"].values():
        assert payment["contract"] == sample["receivable_plan"][payment["receivable_plan"]]["contract"]


def test_a_campaign_sums_its_orders_and_won_opportunities(sample):
    revenue: dict[int, Decimal] = defaultdict(lambda: Decimal("0.00"))
    for order in sample["order"].values():
        if order["campaign"] is not None:
            revenue[order["campaign"]] += order["paid_amount"]
    for opportunity in sample["opportunity"].values():
        if opportunity["campaign"] is not None and opportunity["stage"] == "won":
            revenue[opportunity["campaign"]] += opportunity["amount"] or 0
    assert any(revenue.values())
    for campaign_id, campaign in sample["campaign"].items():
        assert campaign["actual_revenue"] == revenue[campaign_id]


def test_only_lost_opportunities_have_a_lost_reason(sample):
    stages = {o["stage"] for o in sample["opportunity"].values()}
    assert {"lost", "won"} <= stages
    for opportunity in sample["opportunity"].values():
        assert (opportunity["lost_reason"] is not None) == (opportunity["stage"] == "lost"), opportunity
        if opportunity["stage"] in ("won", "lost"):
            assert opportunity["win_rate"] == (100 if opportunity["stage"] == "won" else 0)


def test_dates_are_where_they_belong(sample):
    def years(day: dt.date) -> float:
        return (TODAY - day).days / 365.25

    now = dt.datetime.combine(TODAY, dt.time(23, 59), tzinfo=dt.UTC)
    for customer in sample["customer"].values():
        assert customer["member_since"] is None or customer["member_since"] <= TODAY
        assert customer["birthday"] is None or 18 <= years(customer["birthday"]) <= 70
        assert customer["baby_birthday"] is None or 0 <= years(customer["baby_birthday"]) <= 6
    ahead = ("due", "expected", "next", "end", "planned")
    system = ("created_at", "updated_at", "deleted_at")  # the moment of the seed itself
    for name, records in sample.items():
        for record in records.values():
            for field, value in record.items():
                if field in system:
                    continue
                if isinstance(value, dt.datetime) and not any(word in field for word in ahead):
                    assert value <= now, (name, field, value)
                elif isinstance(value, dt.date) and not isinstance(value, dt.datetime) and not any(
                        word in field for word in ahead):
                    assert value <= TODAY, (name, field, value)


def test_wechat_ids_look_like_wechat_ids(sample):
    ids = [c["wechat_id"] for c in sample["customer"].values() if c["wechat_id"] is not None]
    assert ids
    assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{5,19}", wechat_id) for wechat_id in ids), ids


def test_some_customers_are_left_in_the_pool(sample):
    owners = [record["owner_id"] for record in sample["customer"].values()]
    pooled = owners.count(None)
    assert 0.05 * len(owners) <= pooled <= 0.3 * len(owners), (pooled, len(owners))
    assert all(record["owner_id"] is not None for record in sample["opportunity"].values())  # no pool there
