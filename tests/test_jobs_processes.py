"""Jobs across real processes: a worker killed with SIGKILL mid-job loses
nothing; two schedulers started at once fire each tick once; and the
production topology (gunicorn, ``crmkit worker``, ``crmkit scheduler`` on
PostgreSQL and Redis) runs a job a record write enqueued."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from conftest import JOB_BACKENDS, MINI_FILES, PG_URL, REDIS_URL, REQUIRE_SERVICES, make_config, redis_url_for_tests
from crmkit.runtime import Runtime, build
from crmkit.settings import Settings

BIN = Path(sys.executable).parent
#: A plugin, installed for the test by a dist-info folder on PYTHONPATH (as pip would).
PLUGIN = '''
    """Tasks that leave a trace in LOG (one line per event), and a schedule."""
    import os
    import time
    from pathlib import Path

    from crmkit.hookspecs import hookimpl
    from crmkit.jobs import Schedule, task

    crmkit_hookspec = "1.1"
    LOG = Path(os.environ["JOBTEST_LOG"])


    def trace(line):
        with LOG.open("a") as log:
            log.write(line + "\\n")


    @task("jobtest.hold", timeout=2)
    def hold(runtime, payload):
        """Started, then waits while the HOLD file exists, then done."""
        trace(f"start {payload['n']} {os.getpid()}")
        while Path(os.environ["JOBTEST_HOLD"]).exists():
            time.sleep(0.05)
        trace(f"done {payload['n']} {os.getpid()}")


    @task("jobtest.tick")
    def tick(runtime, payload):
        trace(f"tick {os.getpid()}")


    @task("jobtest.welcome")
    def welcome(runtime, payload):
        trace(f"welcome {payload['customer']}")


    @hookimpl
    def crmkit_schedules(spec):
        if os.environ.get("JOBTEST_SCHEDULE"):
            return [Schedule("every_2s", "* * * * * */2", "jobtest.tick", {})]
        return []


    @hookimpl
    def record_after_create(event):
        if event.entity.name == "customer":
            for record in event.records:
                event.service.jobs.enqueue("jobtest.welcome", {"customer": record["id"]}, conn=event.conn,
                                           key=f"welcome:{record['id']}")
'''


class World:
    """A config with the jobtest plugin, its environment, and the processes started."""

    def __init__(self, root: Path, database_url: str, redis_url: str | None) -> None:
        self.root = root
        site = root / "site"
        (site / "crmkit_jobtest-0.1.dist-info").mkdir(parents=True)
        (site / "crmkit_jobtest.py").write_text(textwrap.dedent(PLUGIN), encoding="utf-8")
        (site / "crmkit_jobtest-0.1.dist-info" / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: crmkit-jobtest\nVersion: 0.1\n", encoding="utf-8")
        (site / "crmkit_jobtest-0.1.dist-info" / "entry_points.txt").write_text(
            "[crmkit.plugins]\njobtest = crmkit_jobtest\n", encoding="utf-8")
        self.site = site
        self.config = make_config(root / "config", {**MINI_FILES, "app.yaml": "app: mini\nplugins: [jobtest]\n"})
        self.log = root / "trace.log"
        self.hold = root / "hold"
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
                    "CRMKIT_DATABASE_URL": database_url, "CRMKIT_INSTANCE": str(root / "instance"),
                    "JOBTEST_LOG": str(self.log), "JOBTEST_HOLD": str(self.hold), "CRMKIT_JOBS_POLL": "0.1",
                    "CRMKIT_JOBS_BACKOFF": "0", "CRMKIT_JOBS_QUEUE": f"crmkit-test-{uuid.uuid4().hex[:12]}"}
        self.env.pop("CRMKIT_REDIS_URL", None)
        if redis_url:
            self.env["CRMKIT_REDIS_URL"] = redis_url
        self.processes: list[subprocess.Popen] = []
        self.settings = Settings(database_url=database_url, instance_dir=root / "instance", redis_url=redis_url,
                                 jobs_queue=self.env["CRMKIT_JOBS_QUEUE"])
        self.runtime: Runtime | None = None

    def rt(self) -> Runtime:
        """The runtime in the test's own process (to enqueue and inspect)."""
        if self.runtime is None:
            os.environ["JOBTEST_LOG"], os.environ["JOBTEST_HOLD"] = str(self.log), str(self.hold)
            self.runtime = build(self.config, self.settings)
        return self.runtime

    def start(self, *args: str, **env: str) -> subprocess.Popen:
        process = subprocess.Popen([str(BIN / args[0]), *args[1:]], env={**self.env, **env},
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   start_new_session=True)
        self.processes.append(process)
        return process

    def crmkit(self, *args: str) -> str:
        done = subprocess.run([str(BIN / "crmkit"), *args], env=self.env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def lines(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def wait_for(self, what: Callable[[], bool], seconds: float, message: str) -> None:
        deadline = time.monotonic() + seconds
        while not what():
            for process in self.processes:
                if process.poll() not in (None, 0, -signal.SIGTERM, -signal.SIGKILL):
                    pytest.fail(f"{process.args} died: {process.communicate()[1][-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"{message} within {seconds} s; trace: {self.lines()}")
            time.sleep(0.05)

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.communicate()
        if self.runtime is not None:
            if self.runtime.jobs.backend == "redis":
                self.runtime.jobs.rq().delete_queue()
            self.runtime.engine.dispose()


@pytest.fixture
def make_world(tmp_path: Path, monkeypatch) -> Iterator[Callable[..., World]]:
    made: list[World] = []

    def make(database_url: str, redis_url: str | None = None) -> World:
        world = World(tmp_path, database_url, redis_url)
        monkeypatch.syspath_prepend(str(world.site))  # the test's own process loads the plugin too
        world.crmkit("migrate", str(world.config), "--apply")
        made.append(world)
        return world

    yield make
    for world in made:
        world.stop_all()


@pytest.mark.parametrize("backend", JOB_BACKENDS)
def test_a_worker_killed_mid_job_loses_no_job(backend, database_url, make_world):
    world = make_world(database_url, redis_url_for_tests() if backend == "redis" else None)
    world.hold.touch()
    assert world.rt().jobs.enqueue("jobtest.hold", {"n": 1}) is True
    first = world.start("crmkit", "worker", str(world.config))
    world.wait_for(lambda: any(line.startswith("start 1") for line in world.lines()), 30, "the job did not start")
    os.killpg(first.pid, signal.SIGKILL)  # mid-job: no chance to record anything
    first.wait()
    world.hold.unlink()
    assert world.rt().jobs.list()[0]["status"] == "running"  # as the dead worker left it
    second = world.start("crmkit", "worker", str(world.config))
    world.wait_for(lambda: any(line.startswith("done 1") for line in world.lines()), 30,
                   "the job did not complete after its lease")
    time.sleep(1)  # a second completion, if there were one, would show by now
    lines = world.lines()
    assert [line.split()[:2] for line in lines] == [["start", "1"], ["start", "1"], ["done", "1"]]
    assert lines[1].split()[2] == lines[2].split()[2] == str(second.pid)
    [job] = world.rt().jobs.list()
    assert (job["status"], job["attempts"]) == ("done", 2)


def test_two_schedulers_started_at_once_fire_each_tick_once(database_url, make_world):
    world = make_world(database_url)
    schedulers = [world.start("crmkit", "scheduler", str(world.config), "--interval", "0.1",
                              JOBTEST_SCHEDULE="1") for _ in range(2)]
    rt = world.rt()
    world.wait_for(lambda: len(rt.jobs.list(task="jobtest.tick")) >= 3, 20, "three ticks did not fire")
    for process in schedulers:
        os.killpg(process.pid, signal.SIGTERM)
    outputs = [process.communicate(timeout=15)[0] for process in schedulers]
    assert all(process.returncode == 0 for process in schedulers), outputs
    jobs = rt.jobs.list(task="jobtest.tick", limit=1000)
    keys = [job["key"] for job in jobs]
    assert len(keys) == len(set(keys))
    fired = [line for output in outputs for line in output.splitlines() if "fired every_2s" in line]
    assert len(fired) == len(jobs), (outputs, keys)  # no tick was fired by both
    moments = sorted(key.split(":", 2)[2] for key in keys)  # schedule:every_2s:TICK
    seconds = [datetime.fromisoformat(moment).timestamp() for moment in moments]
    assert all(b - a == 2 for a, b in zip(seconds, seconds[1:])), moments  # no tick missed either


# ---------------------------------------------------------------- the production topology

def _services() -> tuple[str, str]:
    if not (PG_URL and REDIS_URL):
        if REQUIRE_SERVICES:
            pytest.fail("CRMKIT_REQUIRE_SERVICES is set but CRMKIT_TEST_DATABASE_URL or CRMKIT_TEST_REDIS_URL is not")
        pytest.skip("the deploy topology needs PostgreSQL and Redis: set CRMKIT_TEST_DATABASE_URL "
                    "and CRMKIT_TEST_REDIS_URL")
    return PG_URL, REDIS_URL


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.redis
@pytest.mark.postgres
def test_the_deploy_topology_runs_jobs(make_world, tmp_path):
    """gunicorn + crmkit worker -n 2 + crmkit scheduler, on PostgreSQL and
    Redis, as the README's deploy section shows them."""
    from conftest import database

    _services()
    with database("postgresql", tmp_path) as database_url:
        world = make_world(database_url, REDIS_URL)
        world.crmkit("user", "create", "boss", "--role", "admin", "--password", "a long password 1", str(world.config))
        token = world.crmkit("token", "create", "boss", str(world.config)).strip()
        port = _free_port()
        world.start("gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "crmkit.wsgi:app",
                    CRMKIT_CONFIG=str(world.config))
        world.start("crmkit", "worker", "-n", "2", str(world.config))
        world.start("crmkit", "scheduler", str(world.config), JOBTEST_SCHEDULE="1")

        def served() -> bool:
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).status == 200
            except OSError:
                return False

        world.wait_for(served, 60, "gunicorn did not answer")
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/customer", method="POST",
            data=json.dumps({"name": "王五"}).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        created = json.load(urllib.request.urlopen(request, timeout=10))["data"]
        world.wait_for(lambda: f"welcome {created['id']}" in world.lines(), 30,
                       "the job the record write enqueued did not run")
        world.wait_for(lambda: any(line.startswith("tick") for line in world.lines()), 30,
                       "the scheduler's job did not run")
        assert world.lines().count(f"welcome {created['id']}") == 1
        world.stop_all()
