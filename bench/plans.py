"""``python -m bench.plans [DATABASE_URL]``: the query plans of the list
statements the query builder runs on the benchmark's customers, to see that
counts and filtered pages of live records read the partial indexes (records in
the recycle bin are not in them) and the recycle bin its own one.

Without a URL it uses bench/results/bench.sqlite3 (``python -m bench --keep-db``
leaves one). On PostgreSQL, load the same rows first (any copy of the table will
do); the plans are what ``EXPLAIN`` says.
"""

from __future__ import annotations

import sys
import tempfile

import sqlalchemy as sa

from . import dataset

#: (title, list parameters, count instead of the page)
STATEMENTS = (
    ("count of live customers", [("count", "true")], True),
    ("count of one owner's customers", [("owner_id", "7")], True),
    ("count of one level (no index on level)", [("level", "gold")], True),
    ("page 1, sorted -created_at", [("sort", "-created_at"), ("limit", "50")], False),
    ("page filtered by level, sorted -created_at", [("level", "gold"), ("sort", "-created_at"), ("limit", "50")],
     False),
    ("page of one owner's customers", [("owner_id", "7"), ("limit", "50")], False),
)


def explain(conn: sa.Connection, query: sa.Select, params: dict) -> list[str]:
    compiled = query.compile(dialect=conn.dialect)
    values = compiled.construct_params(params)
    if conn.dialect.name == "sqlite":
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled),
                                    tuple(values[name] for name in compiled.positiontup or ())).all()
        return [row[-1] for row in rows]
    return [row[0] for row in conn.exec_driver_sql("EXPLAIN " + str(compiled), values)]


def main(argv: list[str] | None = None) -> int:
    from crmkit import runtime
    from crmkit.permissions import SYSTEM
    from crmkit.settings import from_environment

    argv = sys.argv[1:] if argv is None else argv
    url = argv[0] if argv else dataset.database_url(dataset.RESULTS_DIR / "bench.sqlite3")
    settings = from_environment({"CRMKIT_DATABASE_URL": url, "CRMKIT_INSTANCE": tempfile.mkdtemp()})
    rt = runtime.build(dataset.CONFIG_DIR, settings)
    queries = rt.queries
    entity = rt.spec.entities["customer"]
    access = rt.permissions.of(SYSTEM)
    with rt.engine.connect() as conn:
        for title, args, count in STATEMENTS:
            request = queries.parse_list(entity, args, access)
            query, params = queries.page_statement(conn, entity, request, actor=SYSTEM)
            if count:
                query = queries._count_statement(queries.source(entity), request, SYSTEM, "read", None)
            print(f"{title}:")
            for line in explain(conn, query, params):
                print(f"    {line}")
        binned = queries.binned["customer"]
        request = queries.parse_list(binned, [("limit", "50")], access)
        query, params = queries.page_statement(conn, binned, request, actor=SYSTEM, action="delete")
        print("recycle bin page, newest deletion first:")
        for line in explain(conn, query, params):
            print(f"    {line}")
    rt.engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())

