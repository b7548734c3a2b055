"""Jobs (crmkit.jobs): at least once, idempotent, retried, dead-lettered,
replayed; on the database backend and on Redis with RQ (each test on both)."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import JOB_BACKENDS, redis_url_for_tests
from crmkit.database import write_transaction
from crmkit.jobs import PermanentFailure, Schedule, task
from crmkit.jobs.schedules import Scheduler
from crmkit.runtime import Runtime

#: What the tasks below saw: (task, payload) in the order they ran.
RAN: list[tuple[str, dict]] = []
FAILURES: dict[str, int] = {}


@task("test.record")
def record_it(runtime: Runtime, payload: dict) -> None:
    RAN.append(("test.record", payload))


@task("test.flaky", max_attempts=3)
def flaky(runtime: Runtime, payload: dict) -> None:
    """Fails the first ``fail`` times it runs for a ``name``."""
    count = FAILURES.get(payload["name"], 0)
    FAILURES[payload["name"]] = count + 1
    if count < payload["fail"]:
        raise RuntimeError(f"failure {count + 1} of {payload['name']}")
    RAN.append(("test.flaky", payload))


@task("test.hopeless")
def hopeless(runtime: Runtime, payload: dict) -> None:
    raise PermanentFailure("the record is gone")


@task("test.slow", timeout=0.3, max_attempts=1)
def slow(runtime: Runtime, payload: dict) -> None:
    time.sleep(payload.get("seconds", 2))
    RAN.append(("test.slow", payload))


@task("test.short_lease", timeout=0.3)
def short_lease(runtime: Runtime, payload: dict) -> None:
    RAN.append(("test.short_lease", payload))


@task("test.effect")
def send_once(runtime: Runtime, payload: dict) -> None:
    """Sends (appends to RAN) once per key, even when the job runs twice."""
    with write_transaction(runtime.engine) as conn:
        if runtime.jobs.claim_effect(f"sent:{payload['key']}", conn=conn):
            RAN.append(("test.effect", payload))


@pytest.fixture(autouse=True)
def clean_slate():
    RAN.clear()
    FAILURES.clear()
    yield


@pytest.fixture(params=JOB_BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def rt(backend: str, make_runtime, mini_config: Path) -> Runtime:
    overrides: dict = {"jobs_backoff": 0.0}
    if backend == "redis":
        overrides.update(redis_url=redis_url_for_tests(), jobs_queue=f"crmkit-test-{uuid.uuid4().hex[:12]}")
    runtime = make_runtime(mini_config, **overrides)
    runtime.migrate()
    yield runtime
    if backend == "redis":
        runtime.jobs.rq().delete_queue()


def ran(name: str) -> list[dict]:
    return [payload for task_name, payload in RAN if task_name == name]


def test_a_job_runs_once_with_its_payload(rt):
    assert rt.jobs.enqueue("test.record", {"n": 1, "name": "张三"}) is True
    assert rt.jobs.run_pending() == 1
    assert ran("test.record") == [{"n": 1, "name": "张三"}]
    assert rt.jobs.run_pending() == 0
    assert rt.jobs.counts()["done"] == 1


def test_a_second_job_with_the_same_key_is_not_added(rt):
    assert rt.jobs.enqueue("test.record", {"n": 1}, key="welcome:42") is True
    assert rt.jobs.enqueue("test.record", {"n": 2}, key="welcome:42") is False
    rt.jobs.run_pending()
    assert rt.jobs.enqueue("test.record", {"n": 3}, key="welcome:42") is False  # not after it ran either
    rt.jobs.run_pending()
    assert ran("test.record") == [{"n": 1}]


def test_done_jobs_are_purged_with_their_keys(rt):
    rt.jobs.enqueue("test.record", {"n": 1}, key="once")
    rt.jobs.enqueue("test.hopeless", {})
    rt.jobs.run_pending()
    assert rt.jobs.purge(dt.timedelta(days=1)) == 0  # finished just now
    assert rt.jobs.purge(dt.timedelta(0)) == 1  # the done one; the dead one stays for the admins
    assert [job["status"] for job in rt.jobs.list()] == ["dead"]
    assert rt.jobs.enqueue("test.record", {"n": 2}, key="once") is True  # the key went with its job


def test_a_job_enqueued_in_a_transaction_exists_only_if_it_commits(rt):
    class Abandon(Exception):
        pass

    with pytest.raises(Abandon), write_transaction(rt.engine) as conn:
        assert rt.jobs.enqueue("test.record", {"n": "rolled back"}, conn=conn, key="k") is True
        raise Abandon
    with write_transaction(rt.engine) as conn:
        assert rt.jobs.enqueue("test.record", {"n": "committed"}, conn=conn, key="k") is True
    assert rt.jobs.run_pending() == 1
    assert ran("test.record") == [{"n": "committed"}]


def test_a_failing_job_is_retried_until_it_succeeds(rt):
    rt.jobs.enqueue("test.flaky", {"name": "a", "fail": 2})
    assert rt.jobs.run_pending() == 3
    assert ran("test.flaky") == [{"name": "a", "fail": 2}]
    [job] = rt.jobs.list()
    assert (job["status"], job["attempts"], job["last_error"]) == ("done", 3, None)


def test_a_job_that_fails_every_attempt_goes_to_the_dead_letter_list_and_can_be_replayed(rt):
    rt.jobs.enqueue("test.flaky", {"name": "b", "fail": 3})
    assert rt.jobs.run_pending() == 3  # max_attempts=3
    [job] = rt.jobs.list(status="dead")
    assert job["attempts"] == 3
    assert "RuntimeError: failure 3 of b" in job["last_error"]
    assert ran("test.flaky") == []
    assert rt.jobs.replay(job["id"]) is True
    assert rt.jobs.replay(job["id"]) is False  # no longer dead
    assert rt.jobs.run_pending() == 1
    assert ran("test.flaky") == [{"name": "b", "fail": 3}]
    assert rt.jobs.get(job["id"])["status"] == "done"


def test_a_permanent_failure_is_not_retried(rt):
    rt.jobs.enqueue("test.hopeless", {})
    assert rt.jobs.run_pending() == 1
    [job] = rt.jobs.list(status="dead")
    assert job["attempts"] == 1 and "the record is gone" in job["last_error"]


def test_retries_back_off_exponentially(rt):
    from dataclasses import replace

    rt.settings = replace(rt.settings, jobs_backoff=30.0)
    rt.jobs.settings = rt.settings
    rt.jobs.enqueue("test.flaky", {"name": "c", "fail": 5})
    assert rt.jobs.run_pending() == 1  # the retry waits about 30 s
    [job] = rt.jobs.list(status="pending")
    wait = (job["due_at"] - dt.datetime.now(dt.UTC)).total_seconds()
    assert 20 < wait < 37
    for attempt, factor in [(1, 1), (2, 2), (3, 4), (4, 8), (20, 120)]:  # doubled each time, an hour at most
        assert 0.8 * 30 * factor <= rt.jobs.backoff(attempt) <= 1.2 * 30 * factor


def test_a_job_for_later_waits_for_its_time(rt):
    rt.jobs.enqueue("test.record", {"n": "later"}, run_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    rt.jobs.enqueue("test.record", {"n": "now"})
    assert rt.jobs.run_pending() == 1
    assert ran("test.record") == [{"n": "now"}]


def test_a_job_past_its_timeout_is_interrupted(rt):
    rt.jobs.enqueue("test.slow", {"seconds": 5})
    started = time.monotonic()
    assert rt.jobs.run_pending() == 1
    assert time.monotonic() - started < 3
    [job] = rt.jobs.list(status="dead")
    assert "timeout" in job["last_error"]
    assert ran("test.slow") == []


def test_an_effect_is_claimed_once(rt):
    assert rt.jobs.claim_effect("sms:1") is True
    assert rt.jobs.claim_effect("sms:1") is False
    rt.jobs.enqueue("test.effect", {"key": "x"})
    rt.jobs.enqueue("test.effect", {"key": "x"})  # the same effect twice: sent once
    assert rt.jobs.run_pending() == 2
    assert ran("test.effect") == [{"key": "x"}]


def test_an_effect_claimed_in_a_rolled_back_transaction_can_be_claimed_again(rt):
    with pytest.raises(ConnectionError), write_transaction(rt.engine) as conn:
        assert rt.jobs.claim_effect("webhook:7", conn=conn) is True
        raise ConnectionError("the webhook did not answer")
    assert rt.jobs.claim_effect("webhook:7") is True


def test_bad_enqueues_are_refused_with_a_clear_message(rt):
    with pytest.raises(LookupError, match="no task 'test.recrod' is registered"):
        rt.jobs.enqueue("test.recrod", {})
    with pytest.raises(TypeError, match="must be JSON"):
        rt.jobs.enqueue("test.record", {"when": dt.date(2026, 1, 1)})
    with pytest.raises(TypeError, match="must be a mapping"):
        rt.jobs.enqueue("test.record", [1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="aware datetime"):
        rt.jobs.enqueue("test.record", {}, run_at=dt.datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="idempotency key"):
        rt.jobs.enqueue("test.record", {}, key="x" * 201)
    assert rt.jobs.counts() == {"pending": 0, "queued": 0, "running": 0, "done": 0, "dead": 0}


def test_many_jobs_go_in_at_once_each_key_once(rt):
    assert rt.jobs.enqueue("test.record", {"n": 0}, key="many:0") is True
    items = [({"n": n}, f"many:{n}") for n in range(5)] + [({"n": "again"}, "many:3"), ({"n": "keyless"}, None)]
    assert rt.jobs.enqueue_many("test.record", items) == 5  # 1-4 and the keyless one; 0 and 3 were taken
    assert rt.jobs.enqueue_many("test.record", items[:5]) == 0
    assert rt.jobs.enqueue_many("test.record", []) == 0
    with write_transaction(rt.engine) as conn:
        assert rt.jobs.enqueue_many("test.record", [({"n": 9}, "many:9")], conn=conn) == 1
    assert rt.jobs.run_pending() == 7
    assert sorted(str(p["n"]) for p in ran("test.record")) == ["0", "1", "2", "3", "4", "9", "keyless"]


def test_bad_batches_are_refused_whole_with_a_clear_message(rt):
    with pytest.raises(LookupError, match="no task 'test.recrod' is registered"):
        rt.jobs.enqueue_many("test.recrod", [({}, None)])
    with pytest.raises(TypeError, match="must be JSON"):
        rt.jobs.enqueue_many("test.record", [({"n": 1}, "a"), ({"when": dt.date(2026, 1, 1)}, "b")])
    with pytest.raises(ValueError, match="idempotency key"):
        rt.jobs.enqueue_many("test.record", [({"n": 1}, "a"), ({}, "x" * 201)])
    with pytest.raises(ValueError, match="aware datetime"):
        rt.jobs.enqueue_many("test.record", [({}, None)], run_at=dt.datetime(2026, 1, 1))
    assert rt.jobs.counts()["pending"] == 0


def test_a_worker_claims_as_many_jobs_as_it_asks_for(rt):
    for n in range(5):
        rt.jobs.enqueue("test.record", {"n": n})
    assert [job.payload for job in rt.jobs.claim_due(2)] == [{"n": 0}, {"n": 1}]
    assert (rt.jobs.counts()["running"], rt.jobs.counts()["pending"]) == (2, 3)


def test_a_job_whose_worker_was_lost_runs_again_after_its_lease(rt):
    rt.jobs.enqueue("test.short_lease", {"n": 1})  # lease: timeout 0.3 s + 1.03 s
    if rt.jobs.backend == "database":
        assert len(rt.jobs.claim_due(1)) == 1  # a worker took it and died
    else:
        rt.jobs.rq().relay()
        job_id = rt.jobs.list()[0]["id"]
        assert rt.jobs.claim_one(job_id) is not None  # a worker took it and died
    assert rt.jobs.run_pending() == 0
    time.sleep(1.5)
    assert rt.jobs.run_pending() == 1
    assert ran("test.short_lease") == [{"n": 1}]
    [job] = rt.jobs.list()
    assert (job["status"], job["attempts"]) == ("done", 2)


def test_a_job_whose_worker_was_lost_in_its_last_attempt_goes_to_the_dead_letter_list(rt):
    rt.jobs.enqueue("test.slow", {"seconds": 0})  # max_attempts=1
    if rt.jobs.backend == "database":
        assert len(rt.jobs.claim_due(1)) == 1
    else:
        rt.jobs.rq().relay()
        assert rt.jobs.claim_one(rt.jobs.list()[0]["id"]) is not None
    time.sleep(1.5)
    assert rt.jobs.run_pending() == 0
    [job] = rt.jobs.list(status="dead")
    assert "the worker was lost" in job["last_error"]


# ---------------------------------------------------------------- schedules

def test_a_schedule_fires_each_tick_once(rt):
    schedule = Schedule("nightly", "0 3 * * *", "test.record", {"what": "nightly"})
    scheduler, other = Scheduler(rt, [schedule]), Scheduler(rt, [schedule])
    tz = scheduler.tz
    day = dt.datetime(2026, 3, 1, 12, 0, tzinfo=tz)
    assert scheduler.tick(day) == []  # first seen: starts from here
    assert scheduler.tick(day + dt.timedelta(hours=14)) == []  # 02:00 next day
    assert scheduler.tick(day + dt.timedelta(hours=15, seconds=1)) == ["nightly"]  # 03:00:01
    assert other.tick(day + dt.timedelta(hours=15, seconds=2)) == []  # the other scheduler: already fired
    assert scheduler.tick(day + dt.timedelta(hours=16)) == []
    # Three days with no scheduler: the missed ticks fire once.
    assert other.tick(day + dt.timedelta(days=4)) == ["nightly"]
    assert rt.jobs.run_pending() == 2
    assert ran("test.record") == [{"what": "nightly"}] * 2
    keys = sorted(job["key"] for job in rt.jobs.list())
    assert keys == ["schedule:nightly:2026-03-01T19:00:00+00:00", "schedule:nightly:2026-03-04T19:00:00+00:00"]


def test_a_bad_schedule_names_its_plugin(rt):
    from crmkit.hookspecs import hookimpl
    from crmkit.jobs.schedules import ScheduleError

    class Plugin:
        @hookimpl
        def crmkit_schedules(self, spec):
            return [Schedule("weekly", "every monday", "test.record", {})]

    rt.pm.register(Plugin(), name="reports")
    try:
        with pytest.raises(ScheduleError, match="schedule 'weekly' of plugin 'reports': 'every monday' is not a cron"):
            Scheduler(rt)
    finally:
        rt.pm.unregister(name="reports")


def test_the_job_tables_are_migrated_with_the_others(rt):
    names = set(sa.inspect(rt.engine).get_table_names())
    assert {"crmkit_job", "crmkit_job_effect", "crmkit_schedule_state"} <= names


def test_job_settings_come_from_the_environment_and_bad_ones_are_named():
    from crmkit.settings import SettingsError, from_environment

    settings = from_environment({"CRMKIT_JOBS_WORKERS": "3", "CRMKIT_JOBS_MAX_ATTEMPTS": "7",
                                 "CRMKIT_JOBS_BACKOFF": "0.5", "CRMKIT_JOBS_TIMEOUT": "60",
                                 "CRMKIT_JOBS_IMPORT": "a.tasks, b.tasks", "CRMKIT_JOBS_QUEUE": "crm"})
    assert (settings.jobs_workers, settings.jobs_max_attempts, settings.jobs_backoff, settings.jobs_timeout,
            settings.jobs_import, settings.jobs_queue) == (3, 7, 0.5, 60.0, ("a.tasks", "b.tasks"), "crm")
    defaults = from_environment({})
    assert (defaults.jobs_workers, defaults.jobs_max_attempts, defaults.redis_url) == (1, 5, None)
    with pytest.raises(SettingsError, match="CRMKIT_JOBS_BACKOFF must be a number of seconds, not 'soon'"):
        from_environment({"CRMKIT_JOBS_BACKOFF": "soon"})
    with pytest.raises(SettingsError, match="CRMKIT_JOBS_TIMEOUT must be a number of seconds above 0"):
        from_environment({"CRMKIT_JOBS_TIMEOUT": "0"})
    with pytest.raises(SettingsError, match="CRMKIT_JOBS_WORKERS must be the number of threads"):
        from_environment({"CRMKIT_JOBS_WORKERS": "-1"})
    assert (defaults.automation_runs_keep_days,
            from_environment({"CRMKIT_AUTOMATION_RUNS_KEEP_DAYS": "30"}).automation_runs_keep_days) == (90, 30)
    with pytest.raises(SettingsError, match="CRMKIT_AUTOMATION_RUNS_KEEP_DAYS must be a number of days"):
        from_environment({"CRMKIT_AUTOMATION_RUNS_KEEP_DAYS": "3 months"})
