"""Expressions on SQLite and PostgreSQL: the rules of shared/DOMAIN.md select
the records they should, in SQL and in Python alike; the SQL is what one would
write by hand (a correlated subquery on the foreign key, a bound parameter
against an indexed column); a user's expression reads only the records in
their scope; days follow the app's timezone through clock changes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from conftest import make_config
from crmkit import loading
from crmkit.database import create_engine
from crmkit.expressions import Context, SqlLoader, check, evaluate, holds, to_sql
from crmkit.fieldtypes import app_timezone
from crmkit.permissions import Actor, Permissions, scope_params
from crmkit.query import QueryBuilder
from crmkit.tables import build_tables

UTC = dt.UTC
RETAIL = {
    "app.yaml": """
        app: retail
        label: Retail
        timezone: Asia/Shanghai
    """,
    "entities/customer.yaml": """
        entity: customer
        label: Customer
        owned: true
        fields:
          name: {type: string, required: true}
          level: {type: enum, options: [a, b, c]}
          birthday: {type: date}
          total_spent: {type: money}
          paid_orders: {type: integer}
          last_order_at: {type: datetime, index: true}
          referrer: {type: ref, to: customer}
        relations:
          orders: {kind: one_to_many, entity: order, field: customer}
          favourites: {kind: many_to_many, entity: product}
    """,
    "entities/order.yaml": """
        entity: order
        label: Order
        owned: true
        fields:
          customer: {type: ref, to: customer}
          status: {type: enum, options: [pending, paid, refunded]}
          total: {type: money}
          ordered_at: {type: datetime}
    """,
    "entities/product.yaml": """
        entity: product
        label: Product
        fields:
          name: {type: string}
          price: {type: money}
    """,
    "entities/contract.yaml": """
        entity: contract
        label: Contract
        owned: true
        fields:
          name: {type: string}
          status: {type: enum, options: [active, ended]}
          end_on: {type: date}
        relations:
          plans: {kind: one_to_many, entity: receivable_plan, field: contract}
    """,
    "entities/receivable_plan.yaml": """
        entity: receivable_plan
        label: Receivable plan
        fields:
          contract: {type: ref, to: contract}
          due_date: {type: date}
          amount: {type: money}
          paid_amount: {type: money}
          status: {type: enum, options: [pending, partial, paid]}
          remind_days_before: {type: integer}
    """,
    "roles.yaml": """
        roles:
          sales_rep:
            entities:
              customer: {read: own}
              order: {read: own}
    """,
}
#: Saturday 2026-03-14, 10:00 in Shanghai.
NOW = dt.datetime(2026, 3, 14, 2, 0, tzinfo=UTC)
CONTEXT = Context.at("Asia/Shanghai", now=NOW)
REP = 7


def at(text: str) -> dt.datetime:
    """A moment written in Shanghai time."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=app_timezone("Asia/Shanghai")).astimezone(UTC)


CUSTOMERS = [
    # 1: sleeping, high value, birthday this month, orders on three weekend days
    {"name": "张三", "level": "a", "birthday": dt.date(1990, 3, 2), "total_spent": Decimal("5000.00"),
     "last_order_at": at("2025-11-01 12:00"), "owner_id": REP},
    # 2: ordered lately, spent exactly 3000, two weekend orders in 90 days (one more was deleted,
    #    one is older, one is Monday 00:30 in Shanghai though Sunday in UTC)
    {"name": "李四", "level": "b", "birthday": dt.date(1985, 4, 1), "total_spent": Decimal("3000.00"),
     "last_order_at": at("2026-03-09 00:30"), "owner_id": 8, "referrer_id": 1},
    # 3: nothing known
    {"name": "王五", "owner_id": 8, "referrer_id": 2},
]


def order(customer: int, status: str, total: str | None, when: str, owner: int, **extra: Any) -> dict[str, Any]:
    return {"customer_id": customer, "status": status, "total": None if total is None else Decimal(total),
            "ordered_at": at(when), "owner_id": owner, **extra}


ORDERS = [
    order(1, "paid", "10.00", "2026-03-07 09:00", REP),  # Saturday
    order(1, "paid", "20.50", "2026-03-08 23:59", 8),  # Sunday
    order(1, "refunded", "5.25", "2026-02-28 10:00", REP),  # Saturday
    order(1, "paid", "99.99", "2026-03-11 10:00", REP),
    order(2, "paid", "1.00", "2026-03-01 08:00", 8),  # Sunday
    order(2, "paid", "2.00", "2026-03-07 20:00", 8),  # Saturday
    order(2, "paid", "3.00", "2026-03-08 12:00", 8, deleted_at=NOW),  # Sunday, in the recycle bin
    order(2, "paid", "4.00", "2025-11-29 12:00", 8),  # Saturday, long ago
    order(2, "pending", None, "2026-03-09 00:30", 8),  # Monday in Shanghai, Sunday in UTC
]
PRODUCTS = [{"name": "beans", "price": Decimal("88.00")}, {"name": "cup", "price": Decimal("9.90")}]
FAVOURITES = [(1, 1), (1, 2), (2, 2)]
CONTRACTS = [
    {"name": "renews soon", "status": "active", "end_on": dt.date(2026, 4, 1), "owner_id": REP},
    {"name": "renews later", "status": "active", "end_on": dt.date(2026, 6, 1), "owner_id": REP},
    {"name": "ended", "status": "ended", "end_on": dt.date(2026, 3, 20), "owner_id": REP},
]
PLANS = [
    {"contract_id": 1, "due_date": dt.date(2026, 3, 1), "amount": Decimal("100.00"), "paid_amount": Decimal("40.00"),
     "status": "partial", "remind_days_before": 3},
    {"contract_id": 1, "due_date": dt.date(2026, 3, 13), "amount": Decimal("100.00"), "paid_amount": Decimal("100.00"),
     "status": "paid", "remind_days_before": 3},
    {"contract_id": 1, "due_date": dt.date(2026, 3, 16), "amount": Decimal("100.00"), "paid_amount": Decimal("0.00"),
     "status": "pending", "remind_days_before": 3},
    {"contract_id": 2, "due_date": dt.date(2026, 3, 14), "amount": Decimal("50.00"), "paid_amount": Decimal("0.00"),
     "status": "pending", "remind_days_before": 0},
]


@dataclass
class Shop:
    spec: Any
    tables: Any
    engine: sa.Engine
    queries: QueryBuilder
    rep: Actor

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def select(self, entity: str, text: str, actor: Actor | None = None) -> tuple[set[int], set[int]]:
        """The ids the condition selects (SQL), and the ids for which it holds (Python)."""
        access = actor.access if actor is not None else None
        checked = check(text, self.spec, entity, access=access)
        scope = (lambda name: self.queries.scope(name, actor)) if actor is not None else None
        params = scope_params(actor) if actor is not None else {}
        table = self.tables.entities[entity]
        clause = to_sql(checked, self.tables, dialect=self.dialect, context=CONTEXT, scope=scope)
        with self.engine.connect() as conn:
            by_sql = set(conn.execute(sa.select(table.c.id).where(table.c.deleted_at.is_(None), clause),
                                      params).scalars())
            loader = SqlLoader(conn, self.tables, scope=scope, parameters=params)
            rows = conn.execute(sa.select(table).where(table.c.deleted_at.is_(None))).mappings().all()
            by_python = {r["id"] for r in rows if holds(checked, r, CONTEXT, loader)}
        return by_sql, by_python

    def values(self, entity: str, text: str, actor: Actor | None = None,
               context: Context = CONTEXT) -> tuple[dict[int, Any], dict[int, Any]]:
        """The expression's value for each record: by SQL, and by Python."""
        access = actor.access if actor is not None else None
        checked = check(text, self.spec, entity, access=access, want="value")
        scope = (lambda name: self.queries.scope(name, actor)) if actor is not None else None
        params = scope_params(actor) if actor is not None else {}
        table = self.tables.entities[entity]
        clause = to_sql(checked, self.tables, dialect=self.dialect, context=context, scope=scope)
        with self.engine.connect() as conn:
            by_sql = dict(conn.execute(sa.select(table.c.id, clause).where(table.c.deleted_at.is_(None)), params).all())
            loader = SqlLoader(conn, self.tables, scope=scope, parameters=params)
            rows = conn.execute(sa.select(table).where(table.c.deleted_at.is_(None))).mappings().all()
            by_python = {r["id"]: evaluate(checked, r, context, loader) for r in rows}
        return by_sql, by_python

    def sql(self, entity: str, text: str) -> str:
        table = self.tables.entities[entity]
        clause = to_sql(check(text, self.spec, entity), self.tables, dialect=self.dialect, context=CONTEXT)
        return str(sa.select(table.c.id).where(clause).compile(self.engine))


@pytest.fixture(scope="module")
def shop(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    root = tmp_path_factory.mktemp("retail")
    spec, pm, types = loading.load_config(make_config(root / "config", RETAIL))
    tables = build_tables(spec, types, pm)
    engine = create_engine(module_database_url)
    tables.metadata.create_all(engine)
    stamps = {"created_at": NOW, "updated_at": NOW}
    with engine.begin() as conn:
        for entity, rows in (("customer", CUSTOMERS), ("order", ORDERS), ("product", PRODUCTS),
                             ("contract", CONTRACTS), ("receivable_plan", PLANS)):
            for row in rows:
                conn.execute(tables.entities[entity].insert().values(**stamps, **row))
        link = tables.links[("customer", "favourites")]
        for customer, product in FAVOURITES:
            conn.execute(link.insert().values(customer_id=customer, product_id=product, created_at=NOW))
    permissions = Permissions(spec, types)
    queries = QueryBuilder(spec, tables, types, app_timezone(spec.timezone), engine.dialect.name, permissions)
    rep = Actor(REP, "rep", access=permissions.access(["sales_rep"]))
    yield Shop(spec, tables, engine, queries, rep)
    engine.dispose()


# ---------------------------------------------------------------- the rules of DOMAIN.md

@pytest.mark.parametrize("rule, expected", [
    ("last_order_at < now() - 90d", {1}),  # sleeping (沉睡客户)
    ("total_spent > 3000", {1}),  # high value (高价值)
    # weekend active (周末活跃)
    ("count(orders where weekday(ordered_at) >= 6 and ordered_at > now() - 90d) >= 3", {1}),
    ("month(birthday) == month(today())", {1}),  # birthday this month (本月生日)
    ("count(orders where status == 'refunded' and ordered_at > now() - 180d) >= 1", {1}),  # returns
    ("not (total_spent > 3000)", {2}),  # a null is neither more nor not more than 3000
    ("total_spent is null or total_spent <= 3000", {2, 3}),
    ("exists(orders where total is null)", {2}),
    ("sum(orders.total where status = 'paid') >= 100", {1}),
    ("referrer.level = 'a'", {2}),
    ("referrer.referrer.name = '张三'", {3}),
    ("count(favourites where price < 10) = 1", {1, 2}),
    ("last_order_at >= '2026-03-09'", {2}),  # Monday 00:30 in Shanghai is on the 9th
    ("date(last_order_at) = '2026-03-09'", {2}),
    ("name in ('张三', '王五') and level is null", {3}),
])
def test_rules_select_the_records_they_describe(shop, rule, expected):
    by_sql, by_python = shop.select("customer", rule)
    assert by_sql == by_python == expected


@pytest.mark.parametrize("entity, rule, expected", [
    # overdue receivables (欠款): due before today and not fully paid
    ("receivable_plan", "due_date < today() and status in ('pending', 'partial') and paid_amount < amount", {1}),
    # payment reminders: due within the plan's own number of days
    ("receivable_plan", "status != 'paid' and days_between(today(), due_date) between 0 and remind_days_before",
     {3, 4}),
    # renewal reminders (续费提醒): active contracts ending within 30 days
    ("contract", "status == 'active' and end_on >= today() and end_on <= today() + 30d", {1}),
    ("contract", "exists(plans where due_date < today() and paid_amount < amount)", {1}),
])
def test_finance_rules(shop, entity, rule, expected):
    by_sql, by_python = shop.select(entity, rule)
    assert by_sql == by_python == expected


def test_values_agree_to_the_cent(shop):
    by_sql, by_python = shop.values("customer", "sum(orders.total where status = 'paid') / 3")
    assert by_sql == by_python == {1: Decimal("43.4967"), 2: Decimal("2.3333"), 3: Decimal("0.0000")}
    by_sql, by_python = shop.values("customer", "avg(orders.total)")
    assert by_sql == by_python == {1: Decimal("33.9350"), 2: Decimal("2.3333"), 3: None}
    by_sql, by_python = shop.values("customer", "max(orders.ordered_at)")
    assert by_sql == by_python == {1: at("2026-03-11 10:00"), 2: at("2026-03-09 00:30"), 3: None}



def test_integer_by_integer_division_is_rounded_not_left_fractional(shop):
    # SQLAlchemy renders `/` between two integer columns as true division on SQLite;
    # the rounding of an exact quotient must still cut it (found by the agreement test:
    # `count(items) = (0 / n)` held in Python and not in SQLite).
    by_sql, by_python = shop.values("receivable_plan", "0 / remind_days_before")
    assert by_sql == by_python == {1: 0, 2: 0, 3: 0, 4: None}
    by_sql, by_python = shop.values("receivable_plan", "(remind_days_before + 2) / remind_days_before")
    assert by_sql == by_python == {1: Decimal("1.6667"), 2: Decimal("1.6667"), 3: Decimal("1.6667"), 4: None}
    assert shop.select("receivable_plan", "0 / remind_days_before = 0") == ({1, 2, 3}, {1, 2, 3})
    by_sql, by_python = shop.values("customer", "round(total_spent)")  # money to whole yuan
    assert by_sql == by_python
    assert shop.select("customer", "round(total_spent) = round(total_spent + 0.001)") == ({1, 2}, {1, 2})


def test_not_keeps_its_parentheses_inside_a_larger_condition(shop):
    # SQLAlchemy writes NOT CASE ... END IS NULL, which SQL reads as NOT (... IS NULL)
    by_sql, by_python = shop.values("customer", "(not (if(level = level, level = level, level = level))) is null")
    assert by_sql == by_python

# ---------------------------------------------------------------- the SQL

def test_an_aggregate_is_one_correlated_subquery_on_the_foreign_key(shop):
    sql = shop.sql("customer", "count(orders where weekday(ordered_at) >= 6 and ordered_at > now() - 90d) >= 3")
    assert sql.count("SELECT") == 2
    assert 'FROM "order" AS order_1' in sql
    assert "WHERE order_1.customer_id = customer.id AND order_1.deleted_at IS NULL" in sql
    # the weekday of each order in Shanghai
    assert ("timezone('Asia/Shanghai', order_1.ordered_at)" if shop.dialect == "postgresql"
            else "date(substr(order_1.ordered_at, 1, 19), CASE WHEN") in sql


def test_a_moment_against_a_fixed_day_is_a_range_on_the_column(shop):
    for rule in ("last_order_at < now() - 90d", "last_order_at >= '2026-03-09'", "date(last_order_at) = today()"):
        sql = shop.sql("customer", rule)
        assert "customer.last_order_at >= " in sql or "customer.last_order_at < " in sql, sql
        assert "date(" not in sql and "timezone(" not in sql, sql


def test_the_database_uses_the_indexes(shop):
    table = shop.tables.entities["customer"]
    plans = []
    with shop.engine.connect() as conn:
        transaction = conn.begin()
        if shop.dialect == "postgresql":
            # The tables are tiny: make the planner show what it would do with many
            # rows, and leave it only the indexes in question (dropped indexes come
            # back with the rollback) so that it cannot settle for another cheap one.
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            wanted = {"ix_customer_last_order_at_live", "ix_order_customer_id_live"}
            for name in sa.inspect(conn).get_indexes("customer") + sa.inspect(conn).get_indexes("order"):
                if name["name"] not in wanted:
                    conn.exec_driver_sql(f'DROP INDEX "{name["name"]}"')
        for rule in ("last_order_at < now() - 90d", "count(orders where ordered_at > now() - 90d) >= 3"):
            clause = to_sql(check(rule, shop.spec, "customer"), shop.tables, dialect=shop.dialect, context=CONTEXT)
            # as the query builder asks: live records only (the indexes are partial, over them)
            compiled = sa.select(table.c.id).where(clause, table.c.deleted_at.is_(None)).compile(shop.engine)
            if shop.dialect == "sqlite":  # SQLite plans before it binds: any values do
                found = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", (None,) * str(compiled).count("?"))
                plans.append(" / ".join(str(r[-1]) for r in found))
            else:
                plans.append(" / ".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params)))
        transaction.rollback()
    assert "ix_customer_last_order_at" in plans[0], plans[0]
    assert "ix_order_customer_id" in plans[1], plans[1]


def test_a_formula_is_stored_for_every_record_in_one_statement(shop):
    customer = shop.tables.entities["customer"]
    formula = check("count(orders where status = 'paid')", shop.spec, "customer", want="value")
    with shop.engine.connect() as conn:
        transaction = conn.begin()
        conn.execute(sa.update(customer).values(
            paid_orders=to_sql(formula, shop.tables, dialect=shop.dialect, context=CONTEXT)))
        stored = dict(conn.execute(sa.select(customer.c.id, customer.c.paid_orders)).all())
        transaction.rollback()
    assert stored == {1: 3, 2: 3, 3: 0}


# ---------------------------------------------------------------- for a user

def test_a_users_aggregate_counts_only_the_records_they_may_read(shop):
    everyone, _ = shop.values("customer", "count(orders)")
    by_sql, by_python = shop.values("customer", "count(orders)", shop.rep)
    assert everyone[1] == 4 and by_sql == by_python == {1: 3, 2: 0, 3: 0}  # the rep owns three of 张三's orders


def test_a_users_reference_reads_only_records_they_may_read(shop):
    by_sql, by_python = shop.values("customer", "referrer.level", shop.rep)
    assert by_sql == by_python == {1: None, 2: "a", 3: None}  # 李四's referrer is the rep's; 王五's is not
    by_sql, by_python = shop.select("customer", "referrer.name = '李四'", shop.rep)
    assert by_sql == by_python == set()
    assert shop.select("customer", "referrer.name = '李四'") == ({3}, {3})


# ---------------------------------------------------------------- days and moments

@pytest.mark.parametrize("zone, moment, day, weekday", [
    ("Europe/Berlin", dt.datetime(2026, 3, 28, 22, 59, 59, 999999, tzinfo=UTC), dt.date(2026, 3, 28), 6),
    ("Europe/Berlin", dt.datetime(2026, 3, 28, 23, 0, tzinfo=UTC), dt.date(2026, 3, 29), 7),
    ("Europe/Berlin", dt.datetime(2026, 3, 29, 21, 59, 59, tzinfo=UTC), dt.date(2026, 3, 29), 7),  # 23:59 CEST
    ("Europe/Berlin", dt.datetime(2026, 3, 29, 22, 0, tzinfo=UTC), dt.date(2026, 3, 30), 1),
    ("Europe/Berlin", dt.datetime(2026, 10, 25, 22, 59, 59, tzinfo=UTC), dt.date(2026, 10, 25), 7),  # 23:59 CET
    ("America/New_York", dt.datetime(2026, 11, 1, 4, 0, tzinfo=UTC), dt.date(2026, 11, 1), 7),  # 00:00 EDT
    ("America/New_York", dt.datetime(2026, 11, 1, 3, 59, tzinfo=UTC), dt.date(2026, 10, 31), 6),
    ("Asia/Shanghai", dt.datetime(2026, 3, 8, 16, 0, tzinfo=UTC), dt.date(2026, 3, 9), 1),
    ("Asia/Shanghai", dt.datetime(1988, 6, 1, 15, 30, tzinfo=UTC), dt.date(1988, 6, 2), 4),  # summer time then
])
def test_days_follow_the_zone_through_clock_changes(shop, zone, moment, day, weekday):
    context = Context.at(zone, now=NOW)
    order = shop.tables.entities["order"]
    with shop.engine.connect() as conn:
        transaction = conn.begin()
        conn.execute(order.update().where(order.c.id == 1).values(ordered_at=moment))
        checked = check("date(ordered_at)", shop.spec, "order", want="value")
        weekday_of = check("weekday(ordered_at)", shop.spec, "order", want="value")
        on_that_day = check(f"ordered_at = '{day}'", shop.spec, "order")
        row = conn.execute(sa.select(
            to_sql(checked, shop.tables, dialect=shop.dialect, context=context),
            to_sql(weekday_of, shop.tables, dialect=shop.dialect, context=context),
            to_sql(on_that_day, shop.tables, dialect=shop.dialect, context=context),
        ).where(order.c.id == 1)).one()
        record = conn.execute(sa.select(order).where(order.c.id == 1)).mappings().one()
        transaction.rollback()
    assert tuple(row) == (day, weekday, True)
    assert (evaluate(checked, record, context), evaluate(weekday_of, record, context)) == (day, weekday)
    assert holds(on_that_day, record, context)


def test_moments_keep_their_microseconds_when_moved(shop):
    moment = dt.datetime(2026, 3, 1, 15, 59, 59, 999999, tzinfo=UTC)
    order = shop.tables.entities["order"]
    checked = check("ordered_at + 1d - 15m", shop.spec, "order", want="value")
    with shop.engine.connect() as conn:
        transaction = conn.begin()
        conn.execute(order.update().where(order.c.id == 1).values(ordered_at=moment))
        moved = conn.execute(sa.select(to_sql(checked, shop.tables, dialect=shop.dialect, context=CONTEXT))
                             .where(order.c.id == 1)).scalar_one()
        transaction.rollback()
    assert moved == moment + dt.timedelta(days=1, minutes=-15)


def test_constants_are_bound_once_not_computed_per_row(shop):
    sql = shop.sql("customer", "birthday >= today() - 30d and month(birthday) = month(today())")
    assert "today" not in sql.lower() and "now" not in sql.lower()
    assert sql.count("birthday") == 2
