"""A scheduled automation over many records: the tick's selection (one
SELECT of the matching ids, the ``when`` compiled to SQL) and the enqueueing
of one run per record (multi-row INSERTs of 5,000 jobs per transaction, each
with its idempotency key), against a hand-written baseline doing the same in
one statement: ``INSERT INTO crmkit_job ... SELECT ... FROM account WHERE
deleted_at IS NULL AND level = 'gold' ON CONFLICT (key) DO NOTHING``, the
same payloads and keys. The records are written straight into the table
(INSERT ... SELECT over a series), not through the records service. The job
table is emptied before each timed tick; rounds alternate which side goes
first.

    python -m bench.sweeps [--records 1000000] [--rounds 2] [--database-url postgresql://...]

Without --database-url: an SQLite file in a temporary directory (use
--records 20000 there); a --database-url is a scratch database, its tables
dropped afterwards. Target: crmkit ≤ 3 × the hand-written statement.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from .timing import alternate

TARGET = 3.0
AUTOMATION = "nightly"
#: The tick the benchmark's schedule stands for (02:00 UTC).
TICK = dt.datetime(2026, 11, 30, 2, 0, 5, tzinfo=dt.UTC)


def config(root: Path) -> Path:
    (root / "entities").mkdir(parents=True)
    (root / "automations").mkdir()
    (root / "app.yaml").write_text("app: sweeps_bench\ntimezone: UTC\n")
    (root / "entities" / "account.yaml").write_text(
        "entity: account\nfields:\n  name: {type: string, required: true}\n"
        "  level: {type: enum, options: [bronze, gold], default: bronze}\n")
    (root / "automations" / "nightly.yaml").write_text(
        f"automations:\n  {AUTOMATION}:\n    trigger: {{schedule: \"0 2 * * *\"}}\n    entity: account\n"
        "    when: \"level = 'gold'\"\n    do: [{set: {name: checked}}]\n")
    return root


def fill(rt, records: int) -> None:
    """``records`` gold accounts, written in one statement per 100,000."""
    table = rt.tables.entities["account"]
    moment = sa.bindparam("moment", dt.datetime.now(dt.UTC), type_=table.c.created_at.type)
    postgresql = rt.engine.dialect.name == "postgresql"
    with rt.engine.begin() as conn:
        for start in range(0, records, 100_000):
            stop = min(records, start + 100_000)
            if postgresql:
                series = sa.text("SELECT g AS n FROM generate_series(:start, :stop) AS g")
            else:
                series = sa.text("WITH RECURSIVE s(n) AS (SELECT :start UNION ALL SELECT n + 1 FROM s "
                                 "WHERE n < :stop) SELECT n FROM s")
            s = series.bindparams(start=start + 1, stop=stop).columns(n=sa.Integer).subquery("s")
            conn.execute(table.insert().from_select(
                ["version", "created_at", "updated_at", "name", "level"],
                sa.select(sa.literal(1), moment, moment, sa.literal("account ") + sa.cast(s.c.n, sa.String),
                          sa.literal("gold"))))
        if postgresql:
            conn.exec_driver_sql("ANALYZE account")


def baseline_statement(rt, stamp: str) -> sa.TextClause:
    """The hand-written tick: the same rows as crmkit's (payload, key, status, times) in one INSERT ... SELECT."""
    prefix = f"automation:{AUTOMATION}:{stamp}:"
    if rt.engine.dialect.name == "postgresql":
        payload = "jsonb_build_object('automation', :name, 'record_id', id, 'run', :prefix || id)"
    else:
        payload = "json_object('automation', :name, 'record_id', id, 'run', :prefix || id)"
    jobs = rt.jobs.table
    return sa.text(
        "INSERT INTO crmkit_job (task, payload, key, status, attempts, max_attempts, due_at, created_at, updated_at) "
        f"SELECT 'automation.run', {payload}, :prefix || id, 'pending', 0, :attempts, :moment, :moment, :moment "
        "FROM account WHERE deleted_at IS NULL AND level = 'gold' ORDER BY id ON CONFLICT (key) DO NOTHING"
    ).bindparams(sa.bindparam("moment", type_=jobs.c.due_at.type), name=AUTOMATION, prefix=prefix,
                 attempts=rt.settings.jobs_max_attempts)


def run(records: int, rounds: int, database_url: str | None = None) -> dict:
    from crmkit.automations import sweeps
    from crmkit.runtime import build
    from crmkit.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        url = database_url or f"sqlite:///{root / 'sweeps.sqlite3'}"
        rt = build(config(root / "config"), Settings(database_url=url, instance_dir=root / "instance"))
        try:
            rt.migrate()
            started = time.perf_counter()
            fill(rt, records)
            print(f"  {records:,} accounts written in {time.perf_counter() - started:.1f} s")
            tick = sweeps.tick_of(rt.spec.automations[AUTOMATION], rt.spec.timezone, TICK)
            stamp = tick.strftime("%Y%m%dT%H%M")
            statement = baseline_statement(rt, stamp)
            counts: dict[str, int] = {}

            def empty() -> None:
                with rt.engine.begin() as conn:
                    if conn.dialect.name == "postgresql":
                        conn.exec_driver_sql("TRUNCATE crmkit_job")
                    else:
                        conn.exec_driver_sql("DELETE FROM crmkit_job")

            def crmkit() -> None:
                counts["crmkit"] = sweeps.schedule(rt.automations, AUTOMATION, TICK)

            def hand() -> None:
                with rt.engine.begin() as conn:
                    counts["hand"] = conn.execute(statement, {"moment": dt.datetime.now(dt.UTC)}).rowcount

            timings = alternate({"crmkit": crmkit, "hand": hand}, rounds, before_each=empty)
            # Both wrote the same jobs: the keys and payloads of the last round's crmkit tick.
            empty()
            crmkit()
            again = sweeps.schedule(rt.automations, AUTOMATION, TICK)
        finally:
            if database_url:  # a scratch database: leave it as it was
                rt.tables.metadata.drop_all(rt.engine)
            rt.engine.dispose()
    ratio = timings.median("crmkit") / timings.median("hand")
    result = {"records": records, "database": url.split(":")[0], "rounds": rounds,
              "crmkit_s": round(timings.median("crmkit"), 3), "hand_s": round(timings.median("hand"), 3),
              "ratio": round(ratio, 2), "ratio_min": round(timings.ratio_range("crmkit", "hand")[0], 2),
              "ratio_max": round(timings.ratio_range("crmkit", "hand")[1], 2),
              "enqueued": counts["crmkit"], "hand_enqueued": counts["hand"], "second_tick_enqueued": again,
              "target": TARGET, "ok": ratio <= TARGET and counts["crmkit"] == records and again == 0}
    print(f"  scheduled tick over {records:,} records ({result['database']}): crmkit {result['crmkit_s']:.2f} s, "
          f"hand-written INSERT ... SELECT {result['hand_s']:.2f} s, ratio {ratio:.2f} "
          f"({result['ratio_min']:.2f}-{result['ratio_max']:.2f}; target ≤ {TARGET:g}) "
          f"{'ok' if result['ok'] else 'MISSED'}; {counts['crmkit']:,} runs enqueued, {again} on a second tick")
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.sweeps", description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--database-url", help="a scratch database, emptied afterwards (default: an SQLite file in "
                                               "a temporary directory)")
    args = parser.parse_args(argv)
    return run(args.records, args.rounds, args.database_url)


if __name__ == "__main__":
    main()
