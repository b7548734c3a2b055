"""Serving the two apps with gunicorn, and loading them with wrk.

Both apps run the same way: gunicorn, 2 sync workers, on 127.0.0.1, each on
its own free port; wrk runs as a separate process with a Lua script that
builds the requests and prints its summary as JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORKERS = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    name: str
    app: str  # gunicorn app spec
    env: dict
    log: Path
    port: int = 0
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    #: The Python that runs gunicorn (another virtual environment's, for a peer app).
    python: str = sys.executable

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> None:
        self.port = free_port()
        env = dict(os.environ)
        env.update(self.env)
        env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
        command = [self.python, "-m", "gunicorn", "--workers", str(WORKERS), "--worker-class", "sync",
                   "--bind", f"127.0.0.1:{self.port}", "--timeout", "120", "--log-level", "warning",
                   "--error-logfile", str(self.log), "--chdir", str(REPO), self.app]
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} server exited at start-up (status {self.process.returncode}); "
                                   f"see {self.log}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as response:
                    if response.status == 200:
                        self._warm_workers()
                        self.started_at = time.monotonic()
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} server did not answer /healthz within {timeout:.0f} s; see {self.log}")

    def _warm_workers(self) -> None:
        # Both workers import lazily on their first requests; touch each a few times.
        for _ in range(WORKERS * 4):
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=5).read()
            except OSError:
                pass

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.kill(self.process.pid, signal.SIGTERM)  # the gunicorn master we started; it stops its workers
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)  # our own session only
            self.process.wait(timeout=10)
        except ProcessLookupError:
            pass


# ------------------------------------------------------------------ wrk

LUA_COMMON = r"""
local thread_counter = 0
function setup(thread)
  thread:set("thread_id", thread_counter)
  thread_counter = thread_counter + 1
end

function init(args)
  math.randomseed(__SEED__ + (thread_id or 0) * 7919)
  counter = 0
  if prepare then prepare() end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "bytes": %d, "status_errors": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "timeouts": %d, "latency_mean_us": %.1f, "latency_p50_us": %d, ' ..
    '"latency_p99_us": %d}\n',
    summary.requests, summary.duration, summary.bytes, e.status, e.connect, e.read, e.write, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass
class WrkResult:
    rps: float
    requests: int
    seconds: float
    errors: dict = field(default_factory=dict)
    latency_ms: dict = field(default_factory=dict)

    @property
    def error_count(self) -> int:
        return self.errors.get("status", 0) + self.errors.get("timeouts", 0)


def wrk_available() -> str | None:
    return shutil.which("wrk")


def run_wrk(url: str, script_body: str, *, seconds: float, threads: int, connections: int, seed: int,
            work_dir: Path, tag: str) -> WrkResult:
    script = work_dir / f"{tag}.lua"
    script.write_text(LUA_COMMON.replace("__SEED__", str(seed)) + script_body, encoding="utf-8")
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
               "-s", str(script), url]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    line = next((text for text in completed.stdout.splitlines() if text.startswith("WRKJSON ")), None)
    if completed.returncode != 0 or line is None:
        output = completed.stderr.strip() or completed.stdout.strip()
        raise RuntimeError(f"wrk failed ({completed.returncode}): {output}")
    data = json.loads(line[len("WRKJSON "):])
    duration = data["duration_us"] / 1e6
    return WrkResult(
        rps=data["requests"] / duration if duration else 0.0,
        requests=data["requests"], seconds=duration,
        errors={"status": data["status_errors"], "connect": data["connect_errors"], "read": data["read_errors"],
                "write": data["write_errors"], "timeouts": data["timeouts"]},
        latency_ms={"mean": round(data["latency_mean_us"] / 1000, 2), "p50": round(data["latency_p50_us"] / 1000, 2),
                    "p99": round(data["latency_p99_us"] / 1000, 2)},
    )
