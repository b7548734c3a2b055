"""``python -m bench.pool [--customers N] [--database URL] [--only list|due|claim] [--rounds R]``

The customer pool (issue 10 section 4) against references in the same run:

- **list**: a rep's customer list (limit 50, sorted ``-created_at``) with the
  pool in their read scope (``owner_id = me OR owner_id IS NULL``: own+pool)
  against the same rep's list without it (own), through the query builder;
  with both query plans.
- **due**: the scheduled return's selection (``Pool.due``: owned, live,
  ``return_when`` compiled from the expression language, owned at least
  ``return_after_days`` by the pool's events) against the same SELECT written
  by hand with NOT EXISTS, over every customer.
- **claim**: claims through ``Pool.claim`` (row locks, cool-down and limit
  checks, the owner change through the records service with its audit row and
  pool event) against the same owner change made through the records service
  as the system without those checks, alternating rounds.

50 users (49 reps); customers (5 % in the pool, the rest owned uniformly),
follow-ups (0 to 3 each, over the last 90 days) and orders (0 to 2 each, over
the last 180 days) are bulk-inserted with SQLAlchemy Core into a database
migrated by crmkit; set-up time is not measured. Default: SQLite in a
temporary directory.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import tempfile
import textwrap
import time
from pathlib import Path

import sqlalchemy as sa

from crmkit.permissions import SYSTEM, Actor
from crmkit.runtime import build
from crmkit.settings import Settings

from .timing import alternate

RETURN_WHEN = ("not exists(activities where occurred_at > now() - 30d)"
               " and not exists(orders where ordered_at > now() - 30d)")
FILES = {
    "app.yaml": "app: poolbench\ntimezone: Asia/Shanghai\n",
    "entities/customer.yaml": f"""
        entity: customer
        title: name
        owned: true
        fields:
          name: {{type: string, required: true}}
          level: {{type: enum, options: [a, b, c], default: b, index: true}}
        relations:
          activities: {{kind: one_to_many, entity: activity, field: customer}}
          orders: {{kind: one_to_many, entity: order, field: customer}}
        pool:
          claim_limit: 1000000
          cooldown_days: 7
          return_after_days: 30
          return_when: "{RETURN_WHEN}"
        list: {{columns: [name, level], sort: "-created_at"}}
    """,
    "entities/activity.yaml": """
        entity: activity
        fields:
          customer: {type: ref, to: customer, required: true}
          occurred_at: {type: datetime, required: true, index: true}
    """,
    "entities/order.yaml": """
        entity: order
        fields:
          customer: {type: ref, to: customer, required: true}
          ordered_at: {type: datetime, required: true, index: true}
    """,
    "roles.yaml": """
        roles:
          rep:
            entities:
              customer: {read: own, update: own}
          reader:
            entities:
              customer: {read: own}
    """,
}


def make_config(root: Path) -> Path:
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


def load(rt, customers: int, seed: int = 10) -> list[int]:
    """The users' ids; customers, follow-ups and orders inserted."""
    rng = random.Random(seed)
    users = [rt.directory.create_user({"username": f"rep_{n:02}", "roles": ["rep"]}, SYSTEM)["id"] for n in range(50)]
    now = dt.datetime.now(dt.UTC)
    customer, activity, order = (rt.tables.entities[n] for n in ("customer", "activity", "order"))
    ref_a = rt.spec.entities["activity"].fields["customer"].column
    ref_o = rt.spec.entities["order"].fields["customer"].column
    ids = {"a": 0, "o": 0}
    with rt.engine.begin() as conn:
        batch_c: list[dict] = []
        batch_a: list[dict] = []
        batch_o: list[dict] = []

        def flush() -> None:
            for table, batch in ((customer, batch_c), (activity, batch_a), (order, batch_o)):
                if batch:
                    conn.execute(table.insert(), batch)
                    batch.clear()

        for n in range(1, customers + 1):
            created = now - dt.timedelta(days=400, seconds=customers - n)
            owner = None if n % 20 == 0 else rng.choice(users)
            batch_c.append({"id": n, "name": f"c{n}", "level": rng.choice("abc"), "owner_id": owner,
                            "version": 1, "created_at": created, "updated_at": created})
            for _ in range(rng.randrange(4)):
                ids["a"] += 1
                moment = now - dt.timedelta(seconds=rng.randrange(90 * 86400))
                batch_a.append({"id": ids["a"], ref_a: n, "occurred_at": moment, "version": 1,
                                "created_at": moment, "updated_at": moment})
            for _ in range(rng.randrange(3)):
                ids["o"] += 1
                moment = now - dt.timedelta(seconds=rng.randrange(180 * 86400))
                batch_o.append({"id": ids["o"], ref_o: n, "ordered_at": moment, "version": 1,
                                "created_at": moment, "updated_at": moment})
            if len(batch_c) >= 5000:
                flush()
        flush()
    rt.analyze()
    return users


def actor(rt, user_id: int, role: str) -> Actor:
    return Actor(user_id, f"user {user_id}", access=rt.permissions.access([role]))


def explain(conn, query, params) -> None:
    compiled = query.params(**params).compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    prefix = "EXPLAIN QUERY PLAN " if conn.dialect.name == "sqlite" else "EXPLAIN "
    for row in conn.exec_driver_sql(prefix + str(compiled)):
        print("    " + " ".join(str(c) for c in row))


def bench_list(rt, users: list[int], rounds: int, per_round: int = 200) -> dict:
    entity = rt.spec.entities["customer"]
    actors = {"own+pool": actor(rt, users[0], "rep"), "own": actor(rt, users[0], "reader")}
    assert actors["own+pool"].access.entity("customer").scope("read") == {"own", "pool"}
    with rt.engine.connect() as conn:
        requests = {k: rt.queries.parse_list(entity, [], a.access) for k, a in actors.items()}
        for name, a in actors.items():
            query, params = rt.queries.page_statement(conn, entity, requests[name], actor=a)
            print(f"  plan of the rep's list, scope {name}:")
            explain(conn, query, params)
        def page_of(name: str):
            return lambda: rt.queries.page(conn, entity, requests[name], actor=actors[name])

        timings = alternate({name: page_of(name) for name in actors}, rounds, repeat=per_round)
    pooled, own = timings.median("own+pool"), timings.median("own")
    print(f"  list page (50, -created_at): own+pool {pooled * 1e6:.0f} us, own {own * 1e6:.0f} us; "
          f"ratio {pooled / own:.2f}x (target <= 1.3x)")
    return {"own_pool_us": round(pooled * 1e6), "own_us": round(own * 1e6), "ratio": round(pooled / own, 2),
            "target": 1.3, "met": pooled / own <= 1.3}


def hand_written_due(rt, now: dt.datetime) -> sa.Select:
    customer, activity, order = (rt.tables.entities[n] for n in ("customer", "activity", "order"))
    events = rt.tables.metadata.tables["crmkit_pool_events"]
    cutoff, recent = now - dt.timedelta(days=30), now - dt.timedelta(days=30)
    got = (sa.select(sa.func.max(events.c.at)).where(
        events.c.entity == "customer", events.c.record_id == customer.c.id, events.c.user_id == customer.c.owner_id,
        events.c.action.in_(("claim", "assign"))).scalar_subquery())
    ref_a = activity.c[rt.spec.entities["activity"].fields["customer"].column]
    ref_o = order.c[rt.spec.entities["order"].fields["customer"].column]
    return (sa.select(customer.c.id).where(
        customer.c.owner_id.is_not(None), customer.c.deleted_at.is_(None), customer.c.created_at <= cutoff,
        ~sa.exists().where(ref_a == customer.c.id, activity.c.deleted_at.is_(None), activity.c.occurred_at > recent),
        ~sa.exists().where(ref_o == customer.c.id, order.c.deleted_at.is_(None), order.c.ordered_at > recent),
        sa.or_(got.is_(None), got <= cutoff)).order_by(customer.c.id))


def bench_due(rt, rounds: int) -> dict:
    now = dt.datetime.now(dt.UTC)
    pool = rt.records.pool
    with rt.engine.connect() as conn:
        ours, theirs = pool.due(conn, "customer", now), hand_written_due(rt, now)
        found = list(conn.execute(ours).scalars())
        assert found == list(conn.execute(theirs).scalars()), "the two selections differ"
        print(f"  due: {len(found)} customers return")
        print("  plan of Pool.due:")
        explain(conn, ours, {})
        timings = alternate({"crmkit": lambda: conn.execute(pool.due(conn, "customer", now)).scalars().all(),
                             "by hand": lambda: conn.execute(hand_written_due(rt, now)).scalars().all()}, rounds)
    ours_t, theirs_t = timings.median("crmkit"), timings.median("by hand")
    print(f"  due selection: crmkit {ours_t * 1e3:.0f} ms, by hand {theirs_t * 1e3:.0f} ms; "
          f"ratio {ours_t / theirs_t:.2f}x (target <= 1.2x)")
    return {"crmkit_ms": round(ours_t * 1e3, 1), "hand_ms": round(theirs_t * 1e3, 1),
            "ratio": round(ours_t / theirs_t, 2), "target": 1.2, "met": ours_t / theirs_t <= 1.2}


def bench_claim(rt, users: list[int], rounds: int, per_round: int = 100) -> dict:
    customer = rt.tables.entities["customer"]
    with rt.engine.connect() as conn:
        pooled = list(conn.execute(sa.select(customer.c.id).where(customer.c.owner_id.is_(None))
                                   .order_by(customer.c.id)).scalars())
    needed = rounds * per_round * 2
    if len(pooled) < needed:
        raise SystemExit(f"claim needs {needed} customers in the pool; there are {len(pooled)} (more --customers)")
    rep = actor(rt, users[1], "rep")
    ids = iter(pooled)
    timings = alternate({"claim": lambda: rt.records.pool.claim("customer", next(ids), rep),
                         "plain update": lambda: rt.records.update("customer", next(ids), {"owner_id": rep.id},
                                                                   SYSTEM)}, rounds, repeat=per_round)
    claim, plain = timings.median("claim"), timings.median("plain update")
    print(f"  claim {claim * 1e3:.2f} ms ({1 / claim:.0f}/s), owner update without the pool's checks "
          f"{plain * 1e3:.2f} ms; ratio {claim / plain:.2f}x (target <= 1.5x)")
    return {"claim_ms": round(claim * 1e3, 2), "plain_ms": round(plain * 1e3, 2), "ratio": round(claim / plain, 2),
            "target": 1.5, "met": claim / plain <= 1.5}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.pool", description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--database", help="a scratch database's URL, emptied afterwards (default: SQLite in a "
                                           "temporary directory)")
    parser.add_argument("--only", choices=("list", "due", "claim"))
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    result: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        url = args.database or f"sqlite:///{root / 'pool.sqlite3'}"
        rt = build(make_config(root / "config"), Settings(database_url=url, instance_dir=root / "instance"))
        try:
            rt.migrate()
            started = time.perf_counter()
            users = load(rt, args.customers)
            print(f"{rt.engine.dialect.name}: {args.customers} customers "
                  f"(loaded in {time.perf_counter() - started:.0f} s, not measured)")
            if args.only in (None, "list"):
                result["list"] = bench_list(rt, users, args.rounds)
            if args.only in (None, "due"):
                result["due"] = bench_due(rt, args.rounds)
            if args.only in (None, "claim"):
                result["claim"] = bench_claim(rt, users, args.rounds)
        finally:
            if args.database:  # a scratch database: leave it as it was
                rt.tables.metadata.drop_all(rt.engine)
            rt.engine.dispose()
    return result


if __name__ == "__main__":
    main()
