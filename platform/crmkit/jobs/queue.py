"""``runtime.jobs``: enqueue jobs in the caller's transaction, run them at
least once, retry with back-off, keep the dead-letter list.

Every job is first a row of the job table (crmkit.jobs.store), written in the
caller's transaction when one is given: the job exists if and only if the
caller's write commits. Then one of two backends runs it:

- the database (default, no services): workers — a thread of the app, the
  ``crmkit worker`` processes, or ``run_pending`` in tests — claim due rows
  with a lease (``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL);
- Redis (``CRMKIT_REDIS_URL``): a relay in each ``crmkit worker`` process
  hands committed due rows to RQ, whose workers run them
  (crmkit.jobs.rq_backend).

Both run a job through :meth:`Jobs.execute_claimed`, so retries, timeouts,
the dead-letter list and the lease behave the same on both.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import signal
import threading
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..database import write_transaction
from . import store
from .schedules import Scheduler
from .store import DEAD, DONE, PENDING, QUEUED, RUNNING
from .tasks import TASKS, PermanentFailure

if TYPE_CHECKING:
    from ..query import Source
    from ..runtime import Runtime

log = logging.getLogger("crmkit.jobs")
#: The longest wait between two attempts, whatever the back-off says.
MAX_BACKOFF = 3600.0


class JobTimeout(Exception):
    """An attempt ran past its task's timeout."""


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended: done, dead (with the error), or pending again
    (with the error and when to retry)."""

    status: str
    error: str | None = None
    retry_at: dt.datetime | None = None


@dataclass(frozen=True)
class ClaimedJob:
    """A job a worker holds (until ``lease_until``) under the claim ``token``."""

    id: int
    task: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    token: str


class Jobs:
    """The jobs of one runtime (``runtime.jobs``)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.engine = runtime.engine
        self.settings = runtime.settings
        self.table: sa.Table = runtime.tables.metadata.tables[store.JOB_TABLE]
        self.effects: sa.Table = runtime.tables.metadata.tables[store.EFFECT_TABLE]
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._rq: Any = None  # crmkit.jobs.rq_backend.RQBackend, made on first use
        self._swept_at: dt.datetime | None = None
        self._paused = 0
        self._claims: dict[tuple[Any, ...], Any] = {}
        self._source: Source | None = None
        t = self.table
        mine = t.update().where(t.c.id == sa.bindparam("p_id"), t.c.status == RUNNING,
                                t.c.locked_by == sa.bindparam("p_token"))
        outcome: dict[str, Any] = {
            "status": sa.bindparam("p_status"), "updated_at": sa.bindparam("p_moment"), "locked_by": None,
            "last_error": sa.bindparam("p_error"), "finished_at": sa.bindparam("p_finished")}
        #: The outcome of a claimed job (done or dead), and a retry (pending again, due later).
        self._outcome = mine.values(**outcome)
        self._retry = mine.values(**outcome, due_at=sa.bindparam("p_due"))

    # ------------------------------------------------------------ the interface

    @property
    def backend(self) -> str:
        """``redis`` when CRMKIT_REDIS_URL is set, else ``database``."""
        return "redis" if self.settings.redis_url else "database"

    def enqueue(self, task: str, payload: Mapping[str, Any], *, key: str | None = None,
                conn: sa.Connection | None = None, run_at: dt.datetime | None = None) -> bool:
        """Add a job: run ``task`` with ``payload`` (a JSON object) at ``run_at``
        (default: now).

        With ``conn`` the job is written in that connection's transaction: it
        exists if and only if that transaction commits. ``key`` makes the call
        idempotent: a second job with the same key is not added (returns
        False; True when the job was added)."""
        store.check_key(key)
        values = {**self._common(task, run_at), "payload": store.json_payload(task, payload), "key": key}
        if conn is not None:
            added = self._insert(conn, values)
        else:
            with write_transaction(self.engine) as own:
                added = self._insert(own, values)
            self._wake.set()
        return added

    def enqueue_many(self, task: str, items: Iterable[tuple[Mapping[str, Any], str | None]], *,
                     conn: sa.Connection | None = None, run_at: dt.datetime | None = None) -> int:
        """Add many jobs of one ``task`` at once: ``items`` are (payload, key)
        pairs, checked as :meth:`enqueue` checks one (a bad one: nothing is
        added); the rows go in as one multi-row INSERT ... SELECT from a JSON
        array (ON CONFLICT DO NOTHING on the key: a key already taken, or
        taken twice in ``items``, adds one job), whatever their number:
        callers batch (a few thousand per transaction). With ``conn``, in that
        connection's transaction; how many jobs were added. Workers see them
        as they see enqueue's (the Redis relay moves committed rows)."""
        common = self._common(task, run_at)
        items = list(items)
        if not items:
            return 0
        batch = store.json_batch(task, items)
        if conn is not None:
            return store.insert_batch_once(conn, self.table, common, batch, "key", "payload")
        with write_transaction(self.engine) as own:
            added = store.insert_batch_once(own, self.table, common, batch, "key", "payload")
        self._wake.set()
        return added

    def _common(self, task: str, run_at: dt.datetime | None) -> dict[str, Any]:
        """The values a new job of ``task`` shares with every other (checked: a registered task, an aware time)."""
        registered = TASKS.get(task)
        if registered is None:
            raise LookupError(f"no task {task!r} is registered (known: {', '.join(sorted(TASKS)) or 'none'})")
        if run_at is not None and run_at.tzinfo is None:
            raise ValueError("run_at must be an aware datetime (with a time zone)")
        moment = store.now()
        return {"task": task, "status": PENDING, "attempts": 0,
                "max_attempts": registered.max_attempts or self.settings.jobs_max_attempts,
                "due_at": run_at or moment, "created_at": moment, "updated_at": moment}

    def _insert(self, conn: sa.Connection, values: dict[str, Any]) -> bool:
        if values["key"] is None:
            conn.execute(self.table.insert().values(**values))
            return True
        return store.insert_once(conn, self.table, values, "key")

    def claim_effect(self, key: str, conn: sa.Connection | None = None) -> bool:
        """Claim a side effect outside the database (an email, a webhook call)
        by a key that names it: True the first time, False ever after.

        Claim it in the transaction of the job's own write (``conn``) and make
        the call before that transaction commits: when the call fails, the
        claim rolls back with it and the retry calls again; when it
        succeeded, a re-run of the job (after a crash) finds the claim and
        does not call twice."""
        store.check_key(key)
        if not key:
            raise ValueError("claim_effect needs a key")
        values = {"key": key, "claimed_at": store.now()}
        if conn is not None:
            return store.insert_once(conn, self.effects, values, "key")
        with write_transaction(self.engine) as own:
            return store.insert_once(own, self.effects, values, "key")

    def run_pending(self, limit: int | None = None) -> int:
        """Run the jobs due now in this thread (tests, ``crmkit jobs run``),
        until none is due or ``limit`` ran; how many ran (failed attempts
        included). A failed job retried with back-off waits for its time."""
        if self.backend == "redis":
            return self.rq().run_pending(limit)
        return self.drain(self.claim_next_due, limit=limit)

    def drain(self, claim: Callable[[sa.Connection], ClaimedJob | None], *, limit: int | None = None) -> int:
        """Claim a job, run it, and again, until ``claim`` finds none (or
        ``limit`` ran); how many ran. The outcome of each job is written in
        the transaction that claims the next one: one transaction per job,
        not two."""
        enforce = _in_main_thread()
        ran = 0
        finished: tuple[ClaimedJob, Outcome] | None = None
        # One connection for the whole loop (the tasks take others from the
        # pool): no checkout, ping and reset per job; on PostgreSQL its
        # commits do not wait for the disk until it goes back to the pool
        # (see bookkeeping).
        with self.engine.connect() as conn:
            conn.execution_options(crmkit_write=True)
            postgresql = conn.dialect.name == "postgresql"
            if postgresql:
                conn.exec_driver_sql("SET synchronous_commit TO OFF")
                conn.commit()
            try:
                while True:
                    with conn.begin():
                        if finished is not None:
                            self._write_outcome(conn, *finished)
                        job = claim(conn) if limit is None or ran < limit else None
                    if job is None:
                        return ran
                    finished = (job, self._run(job, enforce))
                    ran += 1
            finally:
                if postgresql and not conn.invalidated:
                    conn.rollback()
                    conn.exec_driver_sql("RESET synchronous_commit")
                    conn.commit()

    def claim_next_due(self, conn: sa.Connection) -> ClaimedJob | None:
        """The next due job, claimed in ``conn``'s transaction (database backend)."""
        claimed = self._claim_due_in(conn, 1)
        return claimed[0] if claimed else None

    # ------------------------------------------------------------ running (both backends)

    def timeout_of(self, task: str) -> float:
        registered = TASKS.get(task)
        return (registered.timeout if registered and registered.timeout else None) or self.settings.jobs_timeout

    def lease(self, task: str) -> dt.timedelta:
        """How long a claim holds a job: its timeout and a margin, after which
        the worker is taken as lost and the job runs again."""
        timeout = self.timeout_of(task)
        return dt.timedelta(seconds=timeout + min(60.0, 1.0 + timeout / 10))

    def sweep_lost(self, conn: sa.Connection, moment: dt.datetime) -> int:
        """Take back the jobs whose lease ran out: a worker took them (or the
        relay handed them to Redis) and was lost — killed, or past its
        timeout. They are pending again, due now; those lost in their last
        attempt go to the dead-letter list. How many were taken back."""
        t = self.table
        lost = "the worker was lost (killed, or past its lease)"
        dead = conn.execute(
            t.update()
            .where(t.c.status == RUNNING, t.c.due_at <= moment, t.c.attempts >= t.c.max_attempts)
            .values(status=DEAD, finished_at=moment, updated_at=moment, locked_by=None,
                    last_error=f"{lost} in the last attempt"))
        again = conn.execute(
            t.update()
            .where(t.c.status.in_((RUNNING, QUEUED)), t.c.due_at <= moment)
            .values(status=PENDING, updated_at=moment, locked_by=None,
                    last_error=sa.case((t.c.status == RUNNING, lost), else_=t.c.last_error)))
        return int(dead.rowcount or 0) + int(again.rowcount or 0)

    def claim_due(self, limit: int) -> list[ClaimedJob]:
        """Claim up to ``limit`` due jobs for this worker (database backend):
        pending ones whose time has come (those of lost workers are pending
        again, see sweep_lost). One UPDATE ... RETURNING, each row's lease
        set by its task."""
        with bookkeeping(self.engine) as conn:
            return self._claim_due_in(conn, limit)

    def _claim_due_in(self, conn: sa.Connection, limit: int) -> list[ClaimedJob]:
        token = uuid.uuid4().hex
        moment = store.now()
        statement, params = self._claim(limit, moment, (PENDING,))
        self.sweep_now_and_then(conn, moment)
        rows = conn.execute(statement, {**params, "p_token": token, "p_moment": moment}).all()
        return [ClaimedJob(row.id, row.task, row.payload, row.attempts, row.max_attempts, token) for row in rows]

    def _claim(self, limit: int | None, moment: dt.datetime, statuses: tuple[str, ...]) -> tuple[Any, dict[str, Any]]:
        """The claim's statement (built once per shape: statement building
        costs more than the database here) and the leases' parameters: each
        task with a timeout of its own gets its own lease. ``limit``: the
        first due rows (locked, skipping those another worker holds); None:
        the row ``p_id``."""
        default = self.lease("")
        special = tuple(sorted(name for name, registered in TASKS.items()
                               if registered.timeout and self.lease(name) != default))
        params: dict[str, Any] = {"p_lease": moment + default}
        params.update({f"p_lease_{n}": moment + self.lease(name) for n, name in enumerate(special)})
        key = (limit, statuses, special)
        statement = self._claims.get(key)
        if statement is None:
            t = self.table
            which: Any = t.c.id == sa.bindparam("p_id")
            if limit is not None:
                # A materialized CTE: PostgreSQL evaluates it once. As a plain
                # IN (subquery LIMIT n FOR UPDATE SKIP LOCKED) it may run it
                # again per row and claim more than n rows.
                due = store.due_rows(t, statuses, sa.bindparam("p_moment"), limit).cte("due").prefix_with(
                    "MATERIALIZED")
                which = t.c.id.in_(sa.select(due.c.id))
            lease: Any = sa.bindparam("p_lease", type_=t.c.due_at.type)
            if special:
                lease = sa.case({name: sa.bindparam(f"p_lease_{n}", type_=t.c.due_at.type)
                                 for n, name in enumerate(special)}, value=t.c.task, else_=lease)
            statement = self._claims[key] = (
                t.update().where(which, t.c.status.in_(statuses))
                .values(status=RUNNING, attempts=t.c.attempts + 1, locked_by=sa.bindparam("p_token"),
                        updated_at=sa.bindparam("p_moment"), due_at=lease)
                .returning(t.c.id, t.c.task, t.c.payload, t.c.attempts, t.c.max_attempts))
        return statement, params

    def sweep_now_and_then(self, conn: sa.Connection, moment: dt.datetime) -> None:
        """sweep_lost, at most once a second per process (not once per job):
        a lost job waits its lease and up to a second more."""
        if self._swept_at is None or (moment - self._swept_at).total_seconds() >= 1:
            self._swept_at = moment
            self.sweep_lost(conn, moment)

    def claim_one(self, job_id: int, statuses: tuple[str, ...] = (QUEUED,)) -> ClaimedJob | None:
        """Claim one job by id if it is in one of these statuses (the Redis
        backend: the row handed to RQ; None when another worker ran it)."""
        with bookkeeping(self.engine) as conn:
            return self.claim_one_in(conn, job_id, statuses)

    def claim_one_in(self, conn: sa.Connection, job_id: int,
                     statuses: tuple[str, ...] = (QUEUED,)) -> ClaimedJob | None:
        token = uuid.uuid4().hex
        moment = store.now()
        statement, params = self._claim(None, moment, statuses)
        row = conn.execute(statement, {**params, "p_token": token, "p_moment": moment, "p_id": job_id}).first()
        if row is None:
            return None
        return ClaimedJob(row.id, row.task, row.payload, row.attempts, row.max_attempts, token)

    def execute_claimed(self, job: ClaimedJob, *, enforce_timeout: bool) -> bool:
        """Run a claimed job and record the outcome; whether it succeeded."""
        outcome = self._run(job, enforce_timeout)
        with bookkeeping(self.engine) as conn:
            self._write_outcome(conn, job, outcome)
        return outcome.status == DONE

    def _run(self, job: ClaimedJob, enforce_timeout: bool) -> Outcome:
        """Run a claimed job; what to record.

        ``enforce_timeout``: interrupt the task with SIGALRM at its timeout
        (only in a main thread; elsewhere — a thread of the app — the lease
        ends a job that overruns: another worker takes it over, and the late
        outcome is not recorded)."""
        registered = TASKS.get(job.task)
        try:
            if registered is None:
                raise LookupError(f"no task {job.task!r} is registered in this worker (is its plugin enabled, "
                                  "or its module in CRMKIT_JOBS_IMPORT?)")
            with _deadline(self.timeout_of(job.task) if enforce_timeout else None):
                registered.function(self.runtime, dict(job.payload))
        except PermanentFailure:
            return self._failure(job, traceback.format_exc(), permanent=True)
        except Exception:  # noqa: BLE001 - any error of a task is the job's failure (retried), never the worker's
            return self._failure(job, traceback.format_exc(), permanent=False)
        return Outcome(DONE)

    def backoff(self, attempts: int) -> float:
        """Seconds before the next attempt: exponential (the CRMKIT_JOBS_BACKOFF
        base, doubled per attempt) with some jitter, at most an hour."""
        base = self.settings.jobs_backoff
        return min(MAX_BACKOFF, base * 2 ** (attempts - 1)) * random.uniform(0.8, 1.2)

    def _failure(self, job: ClaimedJob, error: str, *, permanent: bool) -> Outcome:
        if permanent or job.attempts >= job.max_attempts:
            log.warning("job %s (%s) failed for good after %s attempt(s)", job.id, job.task, job.attempts)
            return Outcome(DEAD, error)
        log.info("job %s (%s) failed (attempt %s of %s); retried", job.id, job.task, job.attempts, job.max_attempts)
        return Outcome(PENDING, error, store.now() + dt.timedelta(seconds=self.backoff(job.attempts)))

    def _write_outcome(self, conn: sa.Connection, job: ClaimedJob, outcome: Outcome) -> bool:
        """Write the outcome, if the claim still holds (a worker that outlived
        its lease lost the job to another and records nothing)."""
        moment = store.now()
        params = {"p_id": job.id, "p_token": job.token, "p_status": outcome.status, "p_moment": moment,
                  "p_error": store.error_text(outcome.error) if outcome.error else None,
                  "p_finished": None if outcome.retry_at else moment}
        statement = self._outcome
        if outcome.retry_at is not None:
            statement, params["p_due"] = self._retry, outcome.retry_at
        result = conn.execute(statement, params)
        if not result.rowcount:
            log.warning("job %s (%s): the lease ran out before it finished; another worker took it", job.id,
                        job.task)
        return bool(result.rowcount)

    # ------------------------------------------------------------ the dead-letter list, for admins

    def get(self, job_id: int) -> dict[str, Any] | None:
        """A job (None when there is none), read as :meth:`list` reads them."""
        found = self.list(job_id=job_id, limit=1)
        return found[0] if found else None

    @property
    def source(self) -> Source:
        """The job table as a list source (crmkit.jobs.source): how the jobs are read."""
        if self._source is None:
            from .source import job_source

            self._source = job_source(self.table)
        return self._source

    def list(self, *, status: str | None = None, task: str | None = None, job_id: int | None = None,
             limit: int = 50) -> list[dict[str, Any]]:
        """Jobs, newest first, through the query builder as the jobs API reads them (``crmkit jobs list``)."""
        from ..permissions import SYSTEM

        queries = self.runtime.queries
        args = [("sort", "-id"), *((("status", status),) if status else ()), *((("task", task),) if task else ()),
                *((("id", str(job_id)),) if job_id is not None else ())]
        request = queries.parse_list(self.source, args, self.runtime.permissions.of(SYSTEM))
        request.limit = limit
        with self.engine.connect() as conn:
            rows = queries.page(conn, self.source, request, actor=SYSTEM).mappings()
        # A page carries SQLite's timestamps as the API's text (no datetime made per row): here, datetimes.
        moments = [name for name, f in self.source.spec.fields.items() if f.type == "datetime"]
        for row in rows:
            for name in moments:
                if isinstance(row.get(name), str):
                    row[name] = dt.datetime.fromisoformat(row[name])
        return rows

    def replay(self, job_id: int) -> bool:
        """Run a dead job again, with its attempts from zero; False when there
        is no such dead job."""
        t = self.table
        moment = store.now()
        with write_transaction(self.engine) as conn:
            result = conn.execute(t.update().where(t.c.id == job_id, t.c.status == DEAD)
                                  .values(status=PENDING, attempts=0, due_at=moment, updated_at=moment,
                                          finished_at=None, locked_by=None))
        self._wake.set()
        return bool(result.rowcount)

    def purge(self, older_than: dt.timedelta) -> int:
        """Delete the done jobs finished longer ago than ``older_than``; how
        many. Their idempotency keys go with them: a key holds as long as
        its job is kept. Dead jobs stay until replayed."""
        t = self.table
        with write_transaction(self.engine) as conn:
            result = conn.execute(t.delete().where(t.c.status == DONE, t.c.finished_at < store.now() - older_than))
        return int(result.rowcount or 0)

    def counts(self) -> dict[str, int]:
        t = self.table
        with self.engine.connect() as conn:
            found: dict[str, int] = {status: n for status, n in conn.execute(
                sa.select(t.c.status, sa.func.count()).group_by(t.c.status))}
        return {status: int(found.get(status, 0)) for status in store.STATUSES}

    # ------------------------------------------------------------ the app's worker threads (database backend)

    def start_threads(self, count: int | None = None) -> int:
        """Start the in-process workers (CRMKIT_JOBS_WORKERS threads, database
        backend only: with Redis the ``crmkit worker`` processes run jobs);
        how many were started."""
        count = self.settings.jobs_workers if count is None else count
        if self.backend != "database" or count <= 0 or self._threads:
            return 0
        self._stop.clear()
        for n in range(count):
            thread = threading.Thread(target=self.work, name=f"crmkit-jobs-{n + 1}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return count

    def stop_threads(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def pause_threads(self, timeout: float = 10.0) -> None:
        """Before a fork (gunicorn --preload forks its workers from a master
        that built the app): stop the threads after their current job, so
        none holds a lock the child would inherit locked."""
        self._paused = len(self._threads)
        if self._paused:
            self.stop_threads(timeout)

    def resume_threads(self) -> None:
        """After a fork, in the parent: the threads paused before it start again."""
        if self._paused:
            self.start_threads(self._paused)

    def forget_threads(self) -> None:
        """After a fork, in the child: the parent's threads do not exist
        here; start_threads starts the child's own."""
        self._threads.clear()
        self._stop = threading.Event()
        self._wake = threading.Event()

    def work(self, *, burst: bool = False, schedules: bool = True) -> int:
        """Run due jobs until stopped (``burst``: until none is due); how many
        ran. The loop of a worker thread and of a database ``crmkit worker``;
        with ``schedules`` it fires the periodic jobs too (each tick once,
        however many workers do), so no scheduler process is needed."""
        scheduler = None
        if schedules:
            try:
                scheduler = Scheduler(self.runtime)
            except ValueError as exc:  # a bad schedule: the jobs still run (crmkit scheduler refuses to start)
                log.error("jobs: the schedules do not run: %s", exc)
        ran = failures = 0
        while not self._stop.is_set():
            done = 0
            try:
                if scheduler is not None:
                    scheduler.tick()
                done = self.drain(self._claim_unless_stopped)
                ran += done
                failures = 0
            except sa.exc.SQLAlchemyError as exc:  # the database is away: wait longer and longer, do not die
                if failures == 0:
                    log.exception("jobs: cannot use the database; trying again")
                elif failures % 20 == 0:
                    log.warning("jobs: still cannot use the database: %s", exc)
                failures += 1
            if burst and not failures:
                break
            if not done:
                self._wake.wait(min(30.0, self.settings.jobs_poll * 2 ** min(failures, 5)))
                self._wake.clear()
        return ran

    def _claim_unless_stopped(self, conn: sa.Connection) -> ClaimedJob | None:
        return None if self._stop.is_set() else self.claim_next_due(conn)

    def stop(self) -> None:
        """Ask a running ``work`` loop to stop after its current job."""
        self._stop.set()
        self._wake.set()

    def rq(self) -> Any:
        if self._rq is None:
            from .rq_backend import RQBackend

            self._rq = RQBackend(self)
        return self._rq


@contextmanager
def bookkeeping(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A write transaction for a job's own state (claims, outcomes, the
    relay). On PostgreSQL it commits without waiting for the disk
    (synchronous_commit off): a crash of the database may forget the last
    moments of such changes, which only means a job runs again (at least
    once, as promised), and a worker saves a disk flush per job. The job's
    creation is never written so: it commits with the caller's write."""
    with write_transaction(engine) as conn:
        _commit_without_waiting(conn)
        yield conn


def _commit_without_waiting(conn: sa.Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")


@contextmanager
def _deadline(seconds: float | None) -> Iterator[None]:
    """Raise JobTimeout in the task when it runs past ``seconds`` (SIGALRM:
    main thread only)."""
    if seconds is None:
        yield
        return

    def expired(signum: int, frame: Any) -> None:
        raise JobTimeout(f"the job ran past its timeout of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
