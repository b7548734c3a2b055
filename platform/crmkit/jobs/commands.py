"""The job commands of ``crmkit``: ``worker``, ``scheduler`` and ``jobs``
(list, replay, run). Registered on the ``crmkit`` group by crmkit.cli."""

from __future__ import annotations

import multiprocessing
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click

from ..cli import CommandError, _runtime, _table, _when, config_argument, user_errors
from . import store
from .schedules import ScheduleError, Scheduler, describe


def _started(config: Path):
    rt = _runtime(config)
    rt.check_database()
    return rt


def _on_stop(callback: Any) -> None:
    """SIGTERM and SIGINT ask the loop to stop after the current job."""
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda signum, frame: callback())


def run_worker(config: str | Path) -> None:
    """One worker process: RQ on Redis, else the database loop (which also
    fires the schedules: no scheduler process is needed without Redis)."""
    from ..runtime import build

    rt = build(config)
    rt.check_database()
    try:
        if rt.jobs.backend == "redis":
            rt.jobs.rq().work()
        else:
            _on_stop(rt.jobs.stop)
            rt.jobs.work(schedules=True)
    finally:
        rt.engine.dispose()


@click.command()
@config_argument
@click.option("-n", "--processes", default=1, show_default=True, type=click.IntRange(1, 64),
              help="How many worker processes.")
@user_errors
def worker(config: Path, processes: int) -> None:
    """Run jobs (separate worker processes).

    Runs until stopped (SIGTERM or Ctrl-C: after the current job). With
    CRMKIT_REDIS_URL: RQ workers on the app's queue, each with a relay that
    hands committed jobs to Redis. Without: workers on the database (the
    app's own threads do the same; these add capacity and also fire the
    schedules)."""
    rt = _started(config)
    try:
        Scheduler(rt)  # a bad schedule stops here, with its plugin named, not in every child
    except ScheduleError as exc:
        raise CommandError(str(exc)) from None
    where = f"Redis ({rt.jobs.rq().queue_name})" if rt.jobs.backend == "redis" else "the database"
    click.echo(f"crmkit worker: {processes} process(es) running jobs from {where}; Ctrl-C stops.", err=True)
    rt.engine.dispose()
    if processes == 1:
        run_worker(config)
        return
    context = multiprocessing.get_context("spawn")
    children = [context.Process(target=run_worker, args=(str(config),), name=f"crmkit-worker-{n + 1}")
                for n in range(processes)]
    for child in children:
        child.start()

    def stop_children() -> None:
        for child in children:
            if child.is_alive() and child.pid:
                child.terminate()  # SIGTERM: each finishes its current job

    _on_stop(stop_children)
    for child in children:
        child.join()
    failed = [child.name for child in children if child.exitcode not in (0, -signal.SIGTERM)]
    if failed:
        raise CommandError(f"worker process(es) {', '.join(failed)} stopped with an error")


@click.command()
@config_argument
@click.option("--interval", default=0.5, show_default=True, type=click.FloatRange(0.05, 60),
              help="Seconds between two looks at the schedules.")
@user_errors
def scheduler(config: Path, interval: float) -> None:
    """Fire the periodic jobs of the plugins.

    The schedules come from the crmkit_schedules hook. Each tick fires
    once, even with several schedulers running (run two for high
    availability). Jobs go to the job table; workers run them."""
    rt = _started(config)
    try:
        ticker = Scheduler(rt)
    except ScheduleError as exc:
        raise CommandError(str(exc)) from None
    for schedule in ticker.schedules:
        item = describe(schedule)
        click.echo(f"  {item['name']:<30} {item['cron']:<16} -> {item['task']}", err=True)
    click.echo(f"crmkit scheduler: {len(ticker.schedules)} schedule(s); Ctrl-C stops.", err=True)
    stopped = threading.Event()
    _on_stop(stopped.set)
    while not stopped.is_set():
        try:
            for name in ticker.tick():
                click.echo(f"{time.strftime('%Y-%m-%d %H:%M:%S')} fired {name}")
        except Exception as exc:  # noqa: BLE001 - the database is away: say so and keep going
            click.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        stopped.wait(interval)


@click.group(name="jobs")
def jobs_group() -> None:
    """Jobs: list (--dead: failed for good), replay, run."""


@jobs_group.command("list")
@click.option("--dead", is_flag=True, help="Only the dead-letter list (jobs that failed every attempt).")
@click.option("--status", type=click.Choice(store.STATUSES), help="Only jobs in this status.")
@click.option("--task", "task_name", help="Only jobs of this task.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@config_argument
@user_errors
def jobs_list(dead: bool, status: str | None, task_name: str | None, limit: int, config: Path) -> None:
    """List jobs, newest first, with the last error of each."""
    if dead and status and status != store.DEAD:
        raise click.UsageError("--dead and --status name two statuses: give one")
    rt = _started(config)
    rows = rt.jobs.list(status=store.DEAD if dead else status, task=task_name, limit=limit)
    if not rows:
        click.echo("No jobs." if not (dead or status) else f"No {'dead' if dead else status} jobs.")
        return
    _table(("id", "task", "status", "attempts", "created", "due / finished", "last error"),
           [(row["id"], row["task"], row["status"], f"{row['attempts']}/{row['max_attempts']}",
             _when(row["created_at"]), _when(row["finished_at"] or row["due_at"]), _last_line(row["last_error"]))
            for row in rows])


def _last_line(error: str | None) -> str:
    if not error:
        return ""
    line = error.strip().splitlines()[-1]
    return line if len(line) <= 80 else line[:79] + "…"


@jobs_group.command("replay")
@click.argument("job_id", type=click.IntRange(1))
@config_argument
@user_errors
def jobs_replay(job_id: int, config: Path) -> None:
    """Run a dead job again (its attempts start from zero)."""
    rt = _started(config)
    found = rt.jobs.get(job_id)
    if found is None:
        raise CommandError(f"no job {job_id}")
    if found["status"] != store.DEAD:
        raise CommandError(f"job {job_id} is {found['status']}, not dead: only a dead job is replayed")
    rt.jobs.replay(job_id)
    click.echo(f"Job {job_id} ({found['task']}) queued again.")


@jobs_group.command("run")
@click.option("--limit", type=click.IntRange(1), help="Stop after this many jobs.")
@config_argument
@user_errors
def jobs_run(limit: int | None, config: Path) -> None:
    """Run the jobs due now in this process, then exit (drain the queue)."""
    rt = _started(config)
    started = time.perf_counter()
    ran = rt.jobs.run_pending(limit)
    counts = rt.jobs.counts()
    click.echo(f"Ran {ran} job(s) in {time.perf_counter() - started:.1f} s; now {counts['pending']} pending "
               f"(waiting to retry or for their time), {counts['dead']} dead.")
    if counts["dead"]:
        click.echo("See the dead ones: crmkit jobs list --dead", err=True)
    sys.stdout.flush()
