"""The task registry: ``@task("name")`` names a function a job runs, and
:class:`Schedule` a periodic job.

Tasks are registered when their module is imported: the platform's own and
the plugins' modules are imported at start-up by every process (the app, a
worker, the scheduler); other modules through ``CRMKIT_JOBS_IMPORT``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..runtime import Runtime

TaskFunction = Callable[["Runtime", dict[str, Any]], None]
#: The largest task or schedule name (the job table's column).
NAME_SIZE = 120


@dataclass(frozen=True)
class Task:
    name: str
    function: TaskFunction
    #: Attempts before the job goes to the dead-letter list (None: the CRMKIT_JOBS_MAX_ATTEMPTS setting).
    max_attempts: int | None = None
    #: Seconds one attempt may take (None: the CRMKIT_JOBS_TIMEOUT setting).
    timeout: float | None = None


#: Every registered task by name.
TASKS: dict[str, Task] = {}


class PermanentFailure(Exception):
    """Raised by a task that will never succeed with this payload (a record
    that is gone, a template that does not exist): the job goes to the
    dead-letter list at once instead of being retried."""


def task(name: str, *, max_attempts: int | None = None,
         timeout: float | None = None) -> Callable[[TaskFunction], TaskFunction]:
    """Register ``fn(runtime, payload)`` as the task ``name``.

    The function runs in a worker (a thread of the app, a ``crmkit worker``
    process) at least once per job: make its effects idempotent (records
    written in one transaction with their check, ``runtime.jobs.claim_effect``
    for what leaves the database). Raising retries the job with back-off;
    :class:`PermanentFailure` sends it to the dead-letter list at once."""
    if not name or len(name) > NAME_SIZE:
        raise ValueError(f"a task name is 1 to {NAME_SIZE} characters, not {name!r}")
    if max_attempts is not None and max_attempts < 1:
        raise ValueError(f"task {name!r}: max_attempts must be at least 1")
    if timeout is not None and timeout <= 0:
        raise ValueError(f"task {name!r}: timeout must be positive")

    def register(function: TaskFunction) -> TaskFunction:
        known = TASKS.get(name)
        if known is not None and _where(known.function) != _where(function):
            raise ValueError(f"task {name!r} is registered twice: by {_where(known.function)} "
                             f"and by {_where(function)}")
        TASKS[name] = Task(name, function, max_attempts, timeout)
        return function

    return register


def _where(function: Callable[..., Any]) -> str:
    return f"{function.__module__}.{function.__qualname__}"


@dataclass(frozen=True)
class Schedule:
    """A periodic job: ``task`` with ``payload`` at each tick of ``cron``
    (five fields, in the app's time zone). Contributed by plugins through the
    ``crmkit_schedules`` hook; each tick fires once however many schedulers run."""

    name: str
    cron: str
    task: str
    payload: Mapping[str, Any] = field(default_factory=dict)
