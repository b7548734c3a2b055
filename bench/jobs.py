"""Jobs: trivial jobs per second, each path against a hand-written baseline in the same run.

    python -m bench.jobs [--jobs N] [--database-url URL] [--redis-url URL] [--only inprocess|redis]

- **inprocess** (the default backend, no services): N jobs enqueued, then
  drained by one of the app's worker threads (``Jobs.work``: claim with a
  lease, run, record the outcome: two write transactions per job); against a
  hand-written loop on the same table doing the least a durable queue must
  (claim one row with an UPDATE ... RETURNING, run, mark it done). Target
  ≥ 300 jobs/s.
- **redis**: ``crmkit worker -n 2`` (two RQ worker processes, each with its
  relay), N jobs enqueued in one transaction (the outbox) while they run,
  timed from the commit to the last job done; against two plain RQ
  SimpleWorkers running the same no-op function from a queue filled with
  ``enqueue_many`` (RQ alone, no database, nothing durable beyond Redis).
  Target ≥ 1,000 jobs/s.

Default database: SQLite in a temporary directory (PostgreSQL with
``--database-url``); Redis: CRMKIT_REDIS_URL or redis://127.0.0.1:6379/0.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "bench" / "config"
TARGETS = {"inprocess": 300.0, "redis": 1000.0}


def _runtime(database_url: str, **settings):
    import bench.jobs_tasks  # noqa: F401 - registers bench.noop
    from crmkit.runtime import build
    from crmkit.settings import Settings

    rt = build(CONFIG, Settings(database_url=database_url, instance_dir=Path(tempfile.mkdtemp()), **settings))
    rt.migrate()
    return rt


def _enqueue(rt, count: int) -> float:
    """Enqueue ``count`` jobs in one transaction; the moment it committed."""
    from crmkit.database import write_transaction

    with write_transaction(rt.engine) as conn:
        for n in range(count):
            rt.jobs.enqueue("bench.noop", {"n": n}, conn=conn)
    return time.perf_counter()


def _clear(rt) -> None:
    from crmkit.database import write_transaction

    with write_transaction(rt.engine) as conn:
        conn.execute(rt.jobs.table.delete())


def inprocess(database_url: str, count: int) -> tuple[float, float]:
    """(crmkit jobs/s, hand-written jobs/s) on the database backend."""
    rt = _runtime(database_url)
    try:
        _clear(rt)
        _enqueue(rt, count)
        started = time.perf_counter()
        thread = threading.Thread(target=rt.jobs.work, kwargs={"burst": True, "schedules": False})
        thread.start()  # a worker thread of the app, as in a served app
        thread.join()
        crmkit_rate = count / (time.perf_counter() - started)
        assert rt.jobs.counts()["done"] == count, rt.jobs.counts()
        _clear(rt)
        _enqueue(rt, count)
        started = time.perf_counter()
        done = _hand_written_drain(rt.engine, rt.jobs.table)
        hand_rate = count / (time.perf_counter() - started)
        assert done == count
        return crmkit_rate, hand_rate
    finally:
        rt.engine.dispose()


def _hand_written_drain(engine: sa.Engine, table: sa.Table) -> int:
    """The least a durable queue on a table does per job: claim one due row
    (one UPDATE ... RETURNING, in its own transaction), run the function,
    mark the row done (a second transaction). Both transactions as crmkit's
    bookkeeping ones (on PostgreSQL, synchronous_commit off), so the two
    differ by what crmkit adds, not by the disk."""
    import datetime as dt

    from bench.jobs_tasks import noop
    from crmkit.jobs.queue import bookkeeping as write_transaction  # on PostgreSQL: no wait for the disk, as crmkit
    from crmkit.sqltypes import UTC

    t = table
    claim = (t.update().where(t.c.id == sa.select(t.c.id).where(t.c.status == "pending",
                                                               t.c.due_at <= sa.bindparam("now"))
                              .order_by(t.c.due_at).limit(1).scalar_subquery())
             .values(status="running", attempts=t.c.attempts + 1, due_at=sa.bindparam("lease"))
             .returning(t.c.id, t.c.payload))  # statements built once, as crmkit's are
    finish = t.update().where(t.c.id == sa.bindparam("job")).values(status="done", finished_at=sa.bindparam("now"))
    done = 0
    while True:
        now = dt.datetime.now(UTC)
        with write_transaction(engine) as conn:
            row = conn.execute(claim, {"now": now, "lease": now + dt.timedelta(seconds=300)}).first()
        if row is None:
            return done
        noop(None, row.payload)
        with write_transaction(engine) as conn:
            conn.execute(finish, {"job": row.id, "now": now})
        done += 1


def redis(database_url: str, redis_url: str, count: int, workers: int = 2) -> tuple[float, float]:
    """(crmkit jobs/s, raw RQ jobs/s) with ``workers`` worker processes."""
    queue = f"crmkit-bench-{uuid.uuid4().hex[:8]}"
    rt = _runtime(database_url, redis_url=redis_url, jobs_queue=queue)
    _clear(rt)
    env = {**os.environ, "CRMKIT_DATABASE_URL": database_url, "CRMKIT_REDIS_URL": redis_url,
           "CRMKIT_JOBS_QUEUE": queue, "CRMKIT_JOBS_IMPORT": "bench.jobs_tasks", "CRMKIT_JOBS_POLL": "0.2",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    crmkit = Path(sys.executable).parent / "crmkit"
    process = subprocess.Popen([str(crmkit), "worker", "-n", str(workers), str(CONFIG)], env=env,
                               start_new_session=True, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(4)  # the workers start (each builds the runtime)
        committed = _enqueue(rt, count)
        deadline = time.monotonic() + 600
        while rt.jobs.counts()["done"] < count:
            if process.poll() is not None:
                raise RuntimeError(f"crmkit worker stopped: {process.communicate()[1][-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"not done in time: {rt.jobs.counts()}")
            time.sleep(0.02)
        crmkit_rate = count / (time.perf_counter() - committed)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.communicate(timeout=60)
        rt.jobs.rq().delete_queue()
        rt.engine.dispose()
    return crmkit_rate, _raw_rq(redis_url, count, workers)


def _raw_rq(redis_url: str, count: int, workers: int) -> float:
    """Plain RQ: ``workers`` SimpleWorker processes on a queue filled with
    enqueue_many; timed from the fill to the queue's last job finished."""
    from redis import Redis
    from rq import Queue

    from bench.jobs_tasks import raw_noop

    name = f"raw-bench-{uuid.uuid4().hex[:8]}"
    connection = Redis.from_url(redis_url)
    queue = Queue(name, connection=connection)
    code = ("import sys; from redis import Redis; from rq import Queue, SimpleWorker; "
            f"c = Redis.from_url({redis_url!r}); "
            f"SimpleWorker([Queue({name!r}, connection=c)], connection=c).work(logging_level='WARNING')")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    processes = [subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True)
                 for _ in range(workers)]
    try:
        time.sleep(2)
        filled = time.perf_counter()
        for start in range(0, count, 500):
            queue.enqueue_many([queue.prepare_data(raw_noop, (n,), result_ttl=0)
                                for n in range(start, min(count, start + 500))])
        while queue.count or queue.started_job_registry.count:
            time.sleep(0.02)
        return count / (time.perf_counter() - filled)
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)
        queue.delete(delete_jobs=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.jobs", description=__doc__.split("\n\n")[1])
    parser.add_argument("--jobs", type=int, default=5000, help="jobs per measured run (5000)")
    parser.add_argument("--database-url", help="default: SQLite in a temporary directory")
    parser.add_argument("--redis-url", default=os.environ.get("CRMKIT_REDIS_URL") or "redis://127.0.0.1:6379/0")
    parser.add_argument("--only", choices=["inprocess", "redis"])
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when a target is missed")
    args = parser.parse_args(argv)
    result = measure(args.jobs, args.database_url, args.redis_url, args.only)
    missed = any(not r["met"] for r in result.values())
    return 1 if missed and args.strict else 0


def measure(count: int, database_url: str | None, redis_url: str, only: str | None) -> dict:
    """Both paths (or ``only`` one), printed as they finish; their figures."""
    url = database_url or f"sqlite:///{Path(tempfile.mkdtemp()) / 'jobs.sqlite3'}"
    print(f"jobs benchmark: {count} trivial jobs a run, database {url.split('://')[0]}", flush=True)
    result: dict = {}
    if only in (None, "inprocess"):
        crmkit_rate, hand = inprocess(url, count)
        ok = crmkit_rate >= TARGETS["inprocess"]
        result["inprocess"] = {"crmkit_per_s": round(crmkit_rate), "hand_per_s": round(hand),
                               "ratio": round(crmkit_rate / hand, 2), "target_per_s": TARGETS["inprocess"], "met": ok}
        print(f"in-process (1 worker thread): crmkit {crmkit_rate:8.0f} jobs/s   hand-written {hand:8.0f} jobs/s   "
              f"ratio {crmkit_rate / hand:4.2f}   target >= {TARGETS['inprocess']:.0f}/s: "
              f"{'ok' if ok else 'MISSED'}", flush=True)
    if only in (None, "redis"):
        crmkit_rate, raw = redis(url, redis_url, count)
        ok = crmkit_rate >= TARGETS["redis"]
        result["redis"] = {"crmkit_per_s": round(crmkit_rate), "rq_per_s": round(raw),
                           "ratio": round(crmkit_rate / raw, 2), "target_per_s": TARGETS["redis"], "met": ok}
        print(f"redis (2 worker processes):   crmkit {crmkit_rate:8.0f} jobs/s   raw RQ      {raw:8.0f} jobs/s   "
              f"ratio {crmkit_rate / raw:4.2f}   target >= {TARGETS['redis']:.0f}/s: {'ok' if ok else 'MISSED'}",
              flush=True)
    return result

if __name__ == "__main__":
    sys.exit(main())
