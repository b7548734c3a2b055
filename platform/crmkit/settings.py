"""Settings from the environment (``CRMKIT_*``); the defaults need no services."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    #: None: each app its own SQLite file in the instance folder (see ``for_app``).
    database_url: str | None
    instance_dir: Path
    redis_url: str | None = None
    secret_key: str | None = None
    auto_migrate: bool = True
    max_body_bytes: int = 10 * 1024 * 1024
    #: How many proxies (nginx, a load balancer) stand in front of the app and set
    #: X-Forwarded-For and X-Forwarded-Proto; 0 trusts no such header.
    trust_proxy: int = 0
    #: Jobs (crmkit.jobs). Threads of the app that run jobs on the database
    #: backend: 0 here, so an app built in code (a test) runs them with
    #: run_pending; CRMKIT_JOBS_WORKERS (default 1) for a served app.
    jobs_workers: int = 0
    #: Attempts before a job goes to the dead-letter list (a task may say its own).
    jobs_max_attempts: int = 5
    #: Seconds before the first retry, doubled for each further one.
    jobs_backoff: float = 10.0
    #: Seconds an attempt may take (a task may say its own).
    jobs_timeout: float = 300.0
    #: Seconds an idle worker waits before it looks for due jobs again.
    jobs_poll: float = 1.0
    #: Modules to import so their tasks are registered (besides the plugins').
    jobs_import: tuple[str, ...] = ()
    #: The RQ queue's name (Redis backend); None: ``crmkit-<app>``.
    jobs_queue: str | None = None
    #: Days the automation run log and the done jobs are kept (a daily job
    #: deletes older ones; dead jobs stay until replayed); 0: kept forever.
    automation_runs_keep_days: int = 90

    def for_app(self, app: str) -> Settings:
        """These settings with the database of app ``app``: CRMKIT_DATABASE_URL
        when set, else ``<instance>/<app>.sqlite3``, so two configs tried on one
        machine (the demo and your own) never share, and never drop each
        other's tables."""
        url = self.database_url or f"sqlite:///{self.instance_dir / f'{app}.sqlite3'}"
        if url.startswith("sqlite:///") and url != "sqlite://":
            Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        return replace(self, database_url=url)

    @property
    def sqlite_file(self) -> str | None:
        prefix = "sqlite:///"
        if self.database_url and self.database_url.startswith(prefix) and self.database_url != "sqlite://":
            return self.database_url[len(prefix):]
        return None

    @property
    def backup_dir(self) -> Path:
        return self.instance_dir / "backups"


def from_environment(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    instance = Path(env.get("CRMKIT_INSTANCE") or Path.cwd() / "instance").resolve()
    return Settings(
        database_url=env.get("CRMKIT_DATABASE_URL") or None,
        instance_dir=instance,
        redis_url=env.get("CRMKIT_REDIS_URL") or None,
        secret_key=env.get("CRMKIT_SECRET_KEY") or None,
        auto_migrate=env.get("CRMKIT_AUTO_MIGRATE", "1").lower() not in ("0", "false", "no"),
        max_body_bytes=_count("CRMKIT_MAX_BODY_BYTES", env.get("CRMKIT_MAX_BODY_BYTES") or str(10 * 1024 * 1024),
                              "the largest request body in bytes"),
        trust_proxy=_count("CRMKIT_TRUST_PROXY", env.get("CRMKIT_TRUST_PROXY") or "0",
                           "the number of proxies in front of crmkit (0, 1, 2...)"),
        jobs_workers=_count("CRMKIT_JOBS_WORKERS", env.get("CRMKIT_JOBS_WORKERS") or "1",
                            "the number of threads that run jobs in the app (0: none)"),
        jobs_max_attempts=max(1, _count("CRMKIT_JOBS_MAX_ATTEMPTS", env.get("CRMKIT_JOBS_MAX_ATTEMPTS") or "5",
                                        "the number of attempts of a job (1, 2, ...)")),
        jobs_backoff=_seconds("CRMKIT_JOBS_BACKOFF", env.get("CRMKIT_JOBS_BACKOFF") or "10"),
        jobs_timeout=_seconds("CRMKIT_JOBS_TIMEOUT", env.get("CRMKIT_JOBS_TIMEOUT") or "300", positive=True),
        jobs_poll=_seconds("CRMKIT_JOBS_POLL", env.get("CRMKIT_JOBS_POLL") or "1", positive=True),
        jobs_queue=env.get("CRMKIT_JOBS_QUEUE") or None,
        automation_runs_keep_days=_count("CRMKIT_AUTOMATION_RUNS_KEEP_DAYS",
                                         env.get("CRMKIT_AUTOMATION_RUNS_KEEP_DAYS") or "90",
                                         "a number of days (0: keep the run log and done jobs forever)"),
        jobs_import=tuple(name.strip() for name in (env.get("CRMKIT_JOBS_IMPORT") or "").split(",") if name.strip()),
    )


class SettingsError(RuntimeError):
    """A CRMKIT_* variable with a value that means nothing (reported without a traceback)."""


def _seconds(name: str, text: str, *, positive: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0 or (positive and value == 0) or value != value or value == float("inf"):
        raise SettingsError(f"{name} must be a number of seconds{' above 0' if positive else ''}, not {text!r}")
    return value


def _count(name: str, text: str, what: str) -> int:
    if not text.strip().isdigit():
        raise SettingsError(f"{name} must be {what}, not {text!r}")
    return int(text)
