"""Jobs on a queue: durable, at least once, with retries and a dead-letter list.

``@task("name")`` registers a function; ``runtime.jobs.enqueue(...)`` adds a
job (in the caller's transaction when given ``conn``); workers run it — a
thread of the app by default, ``crmkit worker`` processes on Redis with RQ
when CRMKIT_REDIS_URL is set. :class:`Schedule` objects from the
``crmkit_schedules`` hook are periodic jobs. See docs/jobs.md.
"""

from __future__ import annotations

from .queue import ClaimedJob, Jobs, JobTimeout
from .tasks import TASKS, PermanentFailure, Schedule, Task, task

__all__ = ["TASKS", "ClaimedJob", "JobTimeout", "Jobs", "PermanentFailure", "Schedule", "Task", "task"]
