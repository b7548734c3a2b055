"""``python -m bench.tags [--customers N] [--database URL] [--only refresh|list] [--rounds R]``

Tags against hand-written SQL, in the same run (issue 9, performance):

- **refresh**: the rule tag "weekend active" (``count(orders where
  weekday(ordered_at) >= 6 and ordered_at > now() - 90d) >= 3``) evaluated over
  every customer by ``Tagging.refresh`` (one INSERT ... SELECT and one DELETE
  ... WHERE compiled from the expression, plus the history of what changed),
  against the same two statements written by hand, and against the GROUP BY
  form a DBA might write instead. Measured from no tags (every qualifying
  customer is added: crmkit also writes that many history rows) and in the
  steady state (tags current: the rule is evaluated, nothing changes), rounds
  alternating.
- **list**: the customer list (limit 50, sorted ``-created_at``) filtered by a
  tag (``?tag=vip``) against the same list filtered by the indexed enum
  (``?level=a``), the tag on exactly the customers of level a (10 %), through
  the query builder; with both query plans.

Customers and orders (3 per customer on average, over the last 180 days) are
bulk-inserted with SQLAlchemy Core into a database migrated by crmkit; set-up
time is not measured. Default: SQLite in a temporary directory.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import tempfile
import textwrap
import time
from pathlib import Path

import sqlalchemy as sa

from crmkit.permissions import SYSTEM
from crmkit.runtime import build
from crmkit.settings import Settings
from crmkit.tagging import TAG_TABLE

from .timing import alternate

RULE = "count(orders where weekday(ordered_at) >= 6 and ordered_at > now() - 90d) >= 3"
FILES = {
    "app.yaml": "app: tagbench\ntimezone: Asia/Shanghai\n",
    "entities/customer.yaml": """
        entity: customer
        title: name
        fields:
          name: {type: string, required: true}
          level: {type: enum, options: [a, b, c], default: b, index: true}
        relations:
          orders: {kind: one_to_many, entity: order, field: customer}
        list: {columns: [name, level], sort: "-created_at"}
    """,
    "entities/order.yaml": """
        entity: order
        fields:
          customer: {type: ref, to: customer, required: true}
          ordered_at: {type: datetime, required: true, index: true}
          total: {type: money}
    """,
    "tags.yaml": f"""
        tags:
          weekend_active:
            entity: customer
            rule: "{RULE}"
            use: Pushes on Friday evening.
          vip:
            entity: customer
            use: Set by hand.
    """,
}


def make_config(root: Path) -> Path:
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


def load(rt, customers: int, seed: int = 9) -> int:
    rng = random.Random(seed)
    now = dt.datetime.now(dt.UTC)
    customer, order = rt.tables.entities["customer"], rt.tables.entities["order"]
    ref = rt.spec.entities["order"].fields["customer"].column
    order_id = 0
    with rt.engine.begin() as conn:
        batch_c, batch_o = [], []
        for n in range(1, customers + 1):
            created = now - dt.timedelta(days=400, seconds=customers - n)
            batch_c.append({"id": n, "name": f"c{n}", "level": "a" if n % 10 == 0 else rng.choice("bc"),
                            "version": 1, "created_at": created, "updated_at": created})
            for _ in range(rng.choice((0, 1, 2, 3, 4, 5, 6))):
                order_id += 1
                moment = now - dt.timedelta(seconds=rng.randrange(180 * 86400))
                batch_o.append({"id": order_id, ref: n, "ordered_at": moment, "total": 100, "version": 1,
                                "created_at": moment, "updated_at": moment})
            if len(batch_c) >= 5000:
                conn.execute(customer.insert(), batch_c)
                conn.execute(order.insert(), batch_o)
                batch_c, batch_o = [], []
        if batch_c:
            conn.execute(customer.insert(), batch_c)
        if batch_o:
            conn.execute(order.insert(), batch_o)
    rt.analyze()
    return order_id


def hand_written(dialect: str, form: str) -> tuple[str, str]:
    """The rule's INSERT ... SELECT and DELETE ... WHERE as one would write them:
    ``as_written`` (the rule's order), ``date_first`` (the cheap test first),
    ``group_by`` (the qualifying customers grouped from the recent orders)."""
    if dialect == "postgresql":
        weekend = "extract(isodow from timezone('Asia/Shanghai', o.ordered_at)) >= 6"
    else:
        weekend = "CAST(strftime('%w', o.ordered_at, '+8 hours') AS INTEGER) IN (0, 6)"
    recent = "o.ordered_at > :cutoff"
    if form == "date_first":
        weekend, recent = recent, weekend
    mine = "t.entity = 'customer' AND t.tag = 'weekend_active'"
    if form == "group_by":
        qualifying = (f'SELECT o.customer_id AS id FROM "order" o WHERE o.deleted_at IS NULL AND {recent} '
                      f"AND {weekend} GROUP BY o.customer_id HAVING count(*) >= 3")
        insert = (f"INSERT INTO {TAG_TABLE} (entity, tag, record_id, source, added_at) "
                  f"SELECT 'customer', 'weekend_active', q.id, 'rule', :now FROM ({qualifying}) q "
                  f"JOIN customer c ON c.id = q.id AND c.deleted_at IS NULL "
                  f"WHERE NOT EXISTS (SELECT 1 FROM {TAG_TABLE} t WHERE {mine} AND t.record_id = q.id)")
        delete = (f"DELETE FROM {TAG_TABLE} WHERE entity = 'customer' AND tag = 'weekend_active' "
                  f"AND record_id NOT IN (SELECT q.id FROM ({qualifying}) q)")
        return insert, delete
    count = (f'(SELECT count(*) FROM "order" o WHERE o.customer_id = c.id AND o.deleted_at IS NULL '
             f"AND {weekend} AND {recent})")
    insert = (f"INSERT INTO {TAG_TABLE} (entity, tag, record_id, source, added_at) "
              f"SELECT 'customer', 'weekend_active', c.id, 'rule', :now FROM customer c "
              f"WHERE c.deleted_at IS NULL AND {count} >= 3 "
              f"AND NOT EXISTS (SELECT 1 FROM {TAG_TABLE} t WHERE {mine} AND t.record_id = c.id)")
    delete = (f"DELETE FROM {TAG_TABLE} WHERE entity = 'customer' AND tag = 'weekend_active' AND NOT EXISTS "
              f"(SELECT 1 FROM customer c WHERE c.id = {TAG_TABLE}.record_id AND c.deleted_at IS NULL "
              f"AND {count} >= 3)")
    return insert, delete


def clear(rt) -> None:
    tags, audit = rt.tables.metadata.tables[TAG_TABLE], rt.tables.audit
    with rt.engine.begin() as conn:
        conn.execute(tags.delete().where(tags.c.tag == "weekend_active"))
        conn.execute(audit.delete().where(audit.c.action.like("tag_%")))


def tagged(rt) -> set[int]:
    tags = rt.tables.metadata.tables[TAG_TABLE]
    with rt.engine.connect() as conn:
        return set(conn.execute(sa.select(tags.c.record_id).where(tags.c.tag == "weekend_active")).scalars())


def bench_refresh(rt, rounds: int) -> dict:
    dialect = rt.engine.dialect.name
    now = dt.datetime.now(dt.UTC)
    params = {"now": now, "cutoff": now - dt.timedelta(days=90)}
    if dialect == "sqlite":
        params = {"now": now.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds"),
                  "cutoff": (now - dt.timedelta(days=90)).replace(tzinfo=None).isoformat(sep=" ",
                                                                                         timespec="microseconds")}

    def by_hand(form: str) -> float:
        insert, delete = hand_written(dialect, form)
        started = time.perf_counter()
        with rt.engine.begin() as conn:
            conn.execute(sa.text(insert), params)
            conn.execute(sa.text(delete), params)
        return time.perf_counter() - started

    def crmkit() -> float:
        started = time.perf_counter()
        rt.records.tagging.refresh(["weekend_active"], SYSTEM, now)
        return time.perf_counter() - started

    # the three agree
    clear(rt)
    crmkit()
    ours = tagged(rt)
    forms = ("as_written", "date_first", "group_by")
    for form in forms:
        clear(rt)
        by_hand(form)
        assert tagged(rt) == ours, "the hand-written statements select other customers"
    print(f"  weekend_active: {len(ours)} customers")
    result: dict = {}
    for state in ("from no tags", "steady state"):
        times: dict[str, list[float]] = {"crmkit": [], **{form: [] for form in forms}}
        for r in range(rounds):
            order = [("crmkit", crmkit)] + [(form, lambda form=form: by_hand(form)) for form in forms]
            if r % 2:
                order.reverse()
            for name, run in order:
                if state == "from no tags":
                    clear(rt)
                else:
                    clear(rt)
                    crmkit()
                times[name].append(run())
        medians = {k: statistics.median(v) for k, v in times.items()}
        best = min(medians[form] for form in forms)
        hands = ", ".join(f"{form} {medians[form] * 1000:.0f} ms" for form in forms)
        print(f"  refresh {state}: crmkit {medians['crmkit'] * 1000:.0f} ms; by hand: {hands}; "
              f"ratio to the fastest hand-written {medians['crmkit'] / best:.2f}x "
              f"(to as_written {medians['crmkit'] / medians['as_written']:.2f}x; target <= 1.5x)")
        ratio = medians["crmkit"] / best
        result[state] = {"crmkit_ms": round(medians["crmkit"] * 1000, 1), "hand_ms": round(best * 1000, 1),
                         "ratio": round(ratio, 2), "target": 1.5, "met": ratio <= 1.5}
    return result


def bench_list(rt, rounds: int, per_round: int = 200) -> dict:
    tags = rt.tables.metadata.tables[TAG_TABLE]
    customer = rt.tables.entities["customer"]
    with rt.engine.begin() as conn:
        conn.execute(tags.delete().where(tags.c.tag == "vip"))
        conn.execute(tags.insert().from_select(
            ["entity", "tag", "record_id", "source", "added_at"],
            sa.select(sa.literal("customer"), sa.literal("vip"), customer.c.id, sa.literal("user"),
                      sa.literal(dt.datetime.now(dt.UTC), customer.c.created_at.type))
            .where(customer.c.level == "a")))
    rt.analyze()
    entity = rt.spec.entities["customer"]
    access = rt.permissions.of(SYSTEM)
    requests = {"tag": rt.queries.parse_list(entity, [("tag", "vip")], access),
                "enum": rt.queries.parse_list(entity, [("level", "a")], access)}
    with rt.engine.connect() as conn:
        pages = {k: [row[0] for row in rt.queries.page(conn, entity, r, actor=SYSTEM).rows]
                 for k, r in requests.items()}
        assert pages["tag"] == pages["enum"], "the two lists differ"
        for name, request in requests.items():
            query, params = rt.queries.page_statement(conn, entity, request, actor=SYSTEM)
            compiled = query.params(**params).compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
            explain = "EXPLAIN QUERY PLAN " if conn.dialect.name == "sqlite" else "EXPLAIN "
            plan = conn.exec_driver_sql(explain + str(compiled))
            print(f"  plan of the list filtered by {name}:")
            for row in plan:
                print("    " + " ".join(str(c) for c in row))
        timings = alternate({"tag": lambda: rt.queries.page(conn, entity, requests["tag"], actor=SYSTEM),
                             "enum": lambda: rt.queries.page(conn, entity, requests["enum"], actor=SYSTEM)},
                            rounds, repeat=per_round)
    tag, enum = timings.median("tag"), timings.median("enum")
    print(f"  list page (50, -created_at): by tag {tag * 1e6:.0f} us, by indexed enum {enum * 1e6:.0f} us; "
          f"ratio {tag / enum:.2f}x (target <= 1.3x)")
    return {"tag_us": round(tag * 1e6), "enum_us": round(enum * 1e6), "ratio": round(tag / enum, 2), "target": 1.3,
            "met": tag / enum <= 1.3}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.tags", description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--database", help="a scratch database's URL, emptied afterwards (default: SQLite in a "
                                           "temporary directory)")
    parser.add_argument("--only", choices=("refresh", "list"))
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    result: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        url = args.database or f"sqlite:///{root / 'tags.sqlite3'}"
        rt = build(make_config(root / "config"), Settings(database_url=url, instance_dir=root / "instance"))
        try:
            rt.migrate()
            started = time.perf_counter()
            orders = load(rt, args.customers)
            print(f"{rt.engine.dialect.name}: {args.customers} customers, {orders} orders "
                  f"(loaded in {time.perf_counter() - started:.0f} s, not measured)")
            if args.only in (None, "refresh"):
                result["refresh"] = bench_refresh(rt, args.rounds)
            if args.only in (None, "list"):
                result["list"] = bench_list(rt, args.rounds)
        finally:
            if args.database:  # a scratch database: leave it as it was
                rt.tables.metadata.drop_all(rt.engine)
            rt.engine.dispose()
    return result


if __name__ == "__main__":
    main()
