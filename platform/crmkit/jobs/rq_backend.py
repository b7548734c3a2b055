"""Jobs on Redis with RQ (CRMKIT_REDIS_URL).

The job table stays the truth (the outbox): ``enqueue`` writes a row in the
caller's transaction, as on the database backend. A relay — a thread of each
``crmkit worker`` process, and ``run_pending`` — moves committed due rows to
``queued`` and then pushes them to RQ, so nothing is lost between the
caller's commit and the push; RQ workers (``SimpleWorker``: no fork per job)
take messages of up to JOBS_PER_MESSAGE rows, claim each row (``queued`` →
``running``, with a lease) just before they run it through
:meth:`Jobs.execute_claimed`, which records the outcome.

What can go wrong, and why it loses nothing:

- the relay dies between its commit and the push: the row stays ``queued``
  until its queue lease (QUEUED_LEASE) ends, then is pushed again;
- Redis loses the queue: the same;
- a worker is killed mid-job: the row stays ``running`` until its lease ends,
  then the relay pushes it again and another worker runs it;
- a row is pushed twice: the second message finds it no longer ``queued``
  and does nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from . import store
from .queue import bookkeeping
from .store import PENDING, QUEUED

if TYPE_CHECKING:
    from redis import Redis
    from rq import Queue

    from .queue import Jobs

log = logging.getLogger("crmkit.jobs")
#: How long a row handed to Redis may wait there before it is pushed again
#: (Redis lost it, or the relay died before its push).
QUEUED_LEASE = dt.timedelta(minutes=5)
#: Rows one relay pass moves to Redis.
RELAY_BATCH = 500
#: Rows one RQ message carries at most: RQ's own work per message (some fifty
#: round trips to Redis) is shared by the jobs in it; each row is still
#: claimed, leased and recorded on its own. A pass of few rows spreads them
#: over up to eight messages, so that the workers share them.
JOBS_PER_MESSAGE = 50
#: The Jobs each queue's messages belong to, in this process (perform looks it up).
_JOBS_BY_QUEUE: dict[str, Jobs] = {}
_EXECUTED = threading.local()


def perform(queue_name: str, job_ids: list[int]) -> None:
    """The function RQ runs: for each row, claim it (its lease starts now)
    and run the job. A row that is no longer queued (pushed twice, run by
    another worker) is passed over."""
    jobs = _JOBS_BY_QUEUE.get(queue_name)
    if jobs is None:
        raise RuntimeError(f"this worker serves no crmkit app on queue {queue_name!r}")
    waiting = iter(job_ids)

    def claim(conn: Any) -> Any:
        for job_id in waiting:  # the next row of the message still queued
            claimed = jobs.claim_one_in(conn, job_id)
            if claimed is not None:
                return claimed
        return None

    _EXECUTED.count = getattr(_EXECUTED, "count", 0) + jobs.drain(claim)


class RQBackend:
    """The Redis side of one runtime's jobs."""

    def __init__(self, jobs: Jobs) -> None:
        from redis import Redis
        from rq import Queue

        self.jobs = jobs
        assert jobs.settings.redis_url
        self.redis: Redis = Redis.from_url(jobs.settings.redis_url)
        self.queue_name = jobs.settings.jobs_queue or f"crmkit-{jobs.runtime.spec.name}"
        self.queue: Queue = Queue(self.queue_name, connection=self.redis)
        _JOBS_BY_QUEUE[self.queue_name] = jobs
        self._stop = threading.Event()

    def relay(self, limit: int = RELAY_BATCH) -> int:
        """Hand up to ``limit`` due rows to RQ; how many. Due: pending ones
        whose time has come (queued or running ones whose lease ran out are
        pending again: Jobs.sweep_lost)."""
        t = self.jobs.table
        moment = store.now()
        with bookkeeping(self.jobs.engine) as conn:
            self.jobs.sweep_now_and_then(conn, moment)
            rows = conn.execute(
                t.update().where(t.c.id.in_(store.due_rows(t, (PENDING,), moment, limit)), t.c.status == PENDING)
                .values(status=QUEUED, due_at=moment + QUEUED_LEASE, locked_by=None, updated_at=moment)
                .returning(t.c.id, t.c.task)).all()
        if rows:  # pushed after the commit: a worker that gets a message finds its rows queued
            size = max(1, min(JOBS_PER_MESSAGE, math.ceil(len(rows) / 8)))
            batches = [rows[n:n + size] for n in range(0, len(rows), size)]
            self.queue.enqueue_many([
                self.queue.prepare_data(perform, (self.queue_name, [row.id for row in batch]),
                                        timeout=self._rq_timeout(batch), result_ttl=0, failure_ttl=3600,
                                        description=f"crmkit jobs {batch[0].id}..{batch[-1].id}")
                for batch in batches])
        return len(rows)

    def _rq_timeout(self, rows: Sequence[Any]) -> int:
        """RQ's own time limit for a message: a backstop behind each task's
        timeout, which execute_claimed enforces to the fraction of a second."""
        return math.ceil(sum(self.jobs.timeout_of(row.task) for row in rows)) + 60

    def run_pending(self, limit: int | None = None) -> int:
        """Relay and run in this thread (an RQ SimpleWorker in burst mode)
        until nothing is due; how many jobs ran."""
        ran = 0
        while limit is None or ran < limit:
            pushed = self.relay()
            done = self._burst(None if limit is None else limit - ran)
            ran += done
            if not pushed and not done:
                break
        return ran

    def _burst(self, max_jobs: int | None) -> int:
        from rq import SimpleWorker

        _EXECUTED.count = 0
        worker = SimpleWorker([self.queue], connection=self.redis)
        with _signals_kept():
            worker.work(burst=True, max_jobs=max_jobs, logging_level="WARNING")
        return int(_EXECUTED.count)

    # ------------------------------------------------------------ a `crmkit worker` process on Redis

    def work(self) -> None:
        """Run jobs until SIGTERM or SIGINT (RQ's warm shutdown): an RQ
        SimpleWorker in this (main) thread, the relay in another."""
        from rq import SimpleWorker

        relay = threading.Thread(target=self.relay_loop, name="crmkit-jobs-relay", daemon=True)
        relay.start()
        try:
            SimpleWorker([self.queue], connection=self.redis).work(logging_level="WARNING")
        finally:
            self._stop.set()
            relay.join(5)

    def relay_loop(self) -> None:
        while not self._stop.is_set():
            try:
                pushed = self.relay()
            except (sa.exc.SQLAlchemyError, OSError):  # the database or Redis is away: retry, do not die
                log.exception("jobs: the relay cannot reach the database or Redis; retrying")
                pushed = 0
            if pushed < RELAY_BATCH:
                self._stop.wait(min(self.jobs.settings.jobs_poll, 0.2) if pushed else self.jobs.settings.jobs_poll)

    def stop(self) -> None:
        self._stop.set()

    def delete_queue(self) -> None:
        """Remove this queue and its jobs from Redis (tests)."""
        self.queue.delete(delete_jobs=True)
        _JOBS_BY_QUEUE.pop(self.queue_name, None)

    def pending_in_redis(self) -> int:
        return int(self.queue.count)


@contextmanager
def _signals_kept() -> Iterator[None]:
    """RQ's worker installs its own SIGINT/SIGTERM handlers; a burst run
    inside another program (tests, ``crmkit jobs run``) gives them back."""
    kept: list[tuple[int, Any]] = [(number, signal.getsignal(number)) for number in (signal.SIGINT, signal.SIGTERM)]
    try:
        yield
    finally:
        for number, handler in kept:
            signal.signal(number, handler)
