"""Start-up under gunicorn: workers booting together migrate once (a lock in
the database), and a start-up that is refused stops the whole server with one
message instead of workers failing and being started again forever."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import make_config
from crmkit.permissions import SYSTEM

GUNICORN = Path(sys.executable).parent / "gunicorn"
WORKERS = 4
CUSTOMER = """
    entity: customer
    fields:
      name: {type: string, max_length: 100}
      age: {type: integer}
"""


@pytest.fixture
def config(tmp_path):
    return make_config(tmp_path / "config", {"app.yaml": "app: shop\n", "entities/customer.yaml": CUSTOMER})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _gunicorn(config: Path, database_url: str, instance: Path, *options: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMKIT_")}
    env.update(CRMKIT_CONFIG=str(config), CRMKIT_DATABASE_URL=database_url, CRMKIT_INSTANCE=str(instance))
    server = subprocess.Popen([str(GUNICORN), "--workers", str(WORKERS), "--bind", f"127.0.0.1:{port}",
                               "--timeout", "120", *options, "crmkit.wsgi:app"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return server, f"http://127.0.0.1:{port}"


def _stop(server: subprocess.Popen) -> str:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
    _, stderr = server.communicate(timeout=60)
    return stderr


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def _columns(rt, table: str) -> set[str]:
    with rt.engine.connect() as conn:
        return {c["name"] for c in sa.inspect(conn).get_columns(table)}


@pytest.mark.parametrize("options", [(), ("--preload",)], ids=["workers", "preload"])
def test_workers_booting_together_add_a_new_column_once(config, database_url, make_runtime, tmp_path, options):
    rt = make_runtime(config)
    rt.migrate()
    rt.records.create("customer", {"name": "张三", "age": 30}, SYSTEM)
    make_config(config, {"entities/customer.yaml": CUSTOMER + "      nickname: {type: string, max_length: 30}\n"})
    server, url = _gunicorn(config, database_url, tmp_path / "instance", *options)
    try:
        deadline = time.monotonic() + 90
        while not _healthy(url) and server.poll() is None and time.monotonic() < deadline:
            time.sleep(0.3)
        # every worker has booted (each answers /healthz alike; give the slowest a moment)
        time.sleep(2)
        assert server.poll() is None, server.communicate(timeout=10)[1]
        for _ in range(3 * WORKERS):  # requests spread over the workers, each with its own connections
            assert _healthy(url)
    finally:
        stderr = _stop(server)
    assert "Traceback" not in stderr and "duplicate column" not in stderr, stderr
    assert "exited with code" not in stderr, stderr
    assert stderr.count("Booting worker") == WORKERS, stderr
    rt = make_runtime(config)
    assert "nickname" in _columns(rt, "customer")
    assert rt.plan().empty


@pytest.mark.parametrize("options", [(), ("--preload",)], ids=["workers", "preload"])
def test_a_refused_start_up_stops_the_server_with_one_message(config, database_url, make_runtime, tmp_path, options):
    rt = make_runtime(config)
    rt.migrate()
    rt.records.create("customer", {"name": "张三", "age": 30}, SYSTEM)
    make_config(config, {"entities/customer.yaml": CUSTOMER.replace("      age: {type: integer}\n", "")})
    server, _url = _gunicorn(config, database_url, tmp_path / "instance", *options)
    try:
        server.wait(timeout=90)
    finally:
        stderr = _stop(server)
    assert server.returncode == 3, stderr  # gunicorn's "failed to boot": the master stops
    message = ("crmkit: not started: the database needs changes that can lose data:\n"
               "  ! remove column customer.age (its data)\n")
    if options:  # the master built the app: one message, always
        assert stderr.count(message) == 1, stderr
        assert "Traceback" not in stderr, stderr
    else:  # each worker builds it: the first refusal says it (the others stay quiet when they can tell)
        assert stderr.count(message) >= 1, stderr
        assert "Reason: Worker failed to boot." in stderr
        assert not re.search(r'File ".*/crmkit/', stderr), stderr  # no traceback through crmkit
    assert stderr.count("Booting worker") <= WORKERS, stderr  # none started again after the refusal
    assert "age" in _columns(make_runtime(config), "customer")
