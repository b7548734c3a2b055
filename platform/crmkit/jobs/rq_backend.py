"""Jobs on Redis with RQ (CRMKIT_REDIS_URL): being built."""

from __future__ import annotations

from typing import Any


class RQBackend:
    def __init__(self, jobs: Any) -> None:
        self.jobs = jobs

    def run_pending(self, limit: int | None = None) -> int:
        raise NotImplementedError("the Redis backend of crmkit.jobs is not there yet")
