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
    )


class SettingsError(RuntimeError):
    """A CRMKIT_* variable with a value that means nothing (reported without a traceback)."""


def _count(name: str, text: str, what: str) -> int:
    if not text.strip().isdigit():
        raise SettingsError(f"{name} must be {what}, not {text!r}")
    return int(text)
