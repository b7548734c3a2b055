"""Keyset pagination: page 1 against a page 2,000 pages deep (limit 50) on the
100,000 customers, through the generated API in-process (Flask test client,
with the admin's API token), alternating the two requests many times. The deep cursor is built with the
engine's own encoder from the row that ends page 1,999 (found with OFFSET
once, outside the timing), and checked: the deep page must start where an
OFFSET query says it does.

Also timed: the query builder's SQL alone (same statements, no HTTP layer),
which shows whether the database seeks or scans.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import sqlalchemy as sa

from . import dataset

TARGET = 1.3
LIMIT = 50


def run(db_path: Path, *, depth: int, repetitions: int, token: str, work_dir: Path, log=print) -> dict:
    """``token``: the admin's API token (scope all, like the page it is compared with)."""
    from crmkit.app import create_app
    from crmkit.settings import from_environment

    settings = from_environment({"CRMKIT_DATABASE_URL": dataset.database_url(db_path),
                                 "CRMKIT_INSTANCE": str(work_dir / "instance")})
    app = create_app(dataset.CONFIG_DIR, settings)
    rt = app.extensions["crmkit"]
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    actor = rt.directory.actor_for_token(token)
    access = rt.permissions.of(actor)
    entity = rt.spec.entities["customer"]
    table = rt.tables.entities["customer"]
    request = rt.queries.parse_list(entity, [("limit", str(LIMIT)), ("sort", "-created_at")], access)
    offset = (depth - 1) * LIMIT
    with rt.engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(table)
                             .where(table.c.deleted_at.is_(None))).scalar_one()
        if total < offset + LIMIT:
            raise RuntimeError(f"only {total} customers: a page {depth} deep needs {offset + LIMIT}")
        ordered = (sa.select(table).where(table.c.deleted_at.is_(None))
                   .order_by(table.c.created_at.desc(), table.c.id.desc()))
        before = conn.execute(ordered.offset(offset - 1).limit(1)).mappings().one()
        expected_first = conn.execute(ordered.offset(offset).limit(1)).mappings().one()["id"]
    cursor = rt.queries.encode_cursor(request.sort, before)
    deep_request = rt.queries.parse_list(entity, [("limit", str(LIMIT)), ("sort", "-created_at"), ("cursor", cursor)],
                                         access)
    with rt.engine.connect() as conn:
        query, params = rt.queries.page_statement(conn, entity, deep_request, actor=actor)
        compiled = query.compile(dialect=rt.engine.dialect)
        values = compiled.construct_params(params)
        plan = [row[-1] for row in conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN " + str(compiled), tuple(values[name] for name in compiled.positiontup))]
    first_url = f"/api/v1/customer?limit={LIMIT}&sort=-created_at"
    deep_url = f"{first_url}&cursor={cursor}"
    deep = client.get(deep_url).get_json()
    if deep["data"][0]["id"] != expected_first or len(deep["data"]) != LIMIT:
        raise RuntimeError(f"the deep page starts at {deep['data'][0]['id']}, OFFSET says {expected_first}")

    def timed(url: str) -> float:
        started = time.perf_counter()
        response = client.get(url)
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"GET {url}: {response.status_code}")
        return elapsed

    for _ in range(20):
        timed(first_url), timed(deep_url)
    page1, page_deep = [], []
    for _ in range(repetitions):
        page1.append(timed(first_url))
        page_deep.append(timed(deep_url))

    # The SQL alone, through the query builder (parse once, execute many times).
    sql1, sql_deep = [], []
    with rt.engine.connect() as conn:
        for _ in range(20):
            rt.queries.page(conn, entity, request, actor=actor)
            rt.queries.page(conn, entity, deep_request, actor=actor)
        for _ in range(repetitions):
            started = time.perf_counter()
            rt.queries.page(conn, entity, request, actor=actor)
            sql1.append(time.perf_counter() - started)
            started = time.perf_counter()
            rt.queries.page(conn, entity, deep_request, actor=actor)
            sql_deep.append(time.perf_counter() - started)
    rt.engine.dispose()

    def ms(values):
        return round(statistics.median(values) * 1000, 3)

    ratio = statistics.median(page_deep) / statistics.median(page1)
    sql_ratio = statistics.median(sql_deep) / statistics.median(sql1)
    # Spread: the ratio over each quarter of the repetitions.
    quarter = max(1, repetitions // 4)
    parts = [statistics.median(page_deep[i:i + quarter]) / statistics.median(page1[i:i + quarter])
             for i in range(0, repetitions - quarter + 1, quarter)]
    log(f"  page 1: {ms(page1):.2f} ms, page {depth:,}: {ms(page_deep):.2f} ms per request "
        f"(ratio {ratio:.2f}); SQL alone {ms(sql1):.2f} / {ms(sql_deep):.2f} ms (ratio {sql_ratio:.2f})")
    log(f"  query plan of the deep page: {'; '.join(plan)}")
    return {"customers": total, "depth": depth, "limit": LIMIT, "repetitions": repetitions,
            "page1_ms": ms(page1), "deep_ms": ms(page_deep), "ratio": round(ratio, 3),
            "ratio_min": round(min(parts), 3), "ratio_max": round(max(parts), 3),
            "sql_page1_ms": ms(sql1), "sql_deep_ms": ms(sql_deep), "sql_ratio": round(sql_ratio, 3),
            "query_plan": plan, "target": TARGET, "ok": ratio <= TARGET}
