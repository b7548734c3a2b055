"""WSGI entry point for gunicorn: ``gunicorn 'crmkit.wsgi:app'`` with CRMKIT_CONFIG set.

Each worker builds the app (with ``--preload``, the master builds it once,
before forking). Workers booting together migrate one at a time (a lock in the
database): the first applies the additive changes, the others find nothing
left to do.

A start-up that cannot succeed (a broken config, a plugin that fails, changes
that lose data pending, another app's database) stops the whole server with
one message and no traceback: the worker exits with gunicorn's "worker failed
to boot" status, on which the master stops instead of starting new workers
that would fail the same way, forever. When several workers find the same
refused plan, the first one says so and exits; the others, as far as they can
tell, stay quiet while the master stops them (gunicorn prints a traceback of
its own when a second worker fails to boot while it stops). With ``--preload``
the master builds the app, and so migrates or refuses, once: one message, always.
"""

import signal
import sys
import threading
import time
from typing import Any

from sqlalchemy.exc import OperationalError

from .app import create_app
from .metadata.problems import ConfigError
from .migrations import MigrationRefused
from .plugins import PluginError
from .settings import SettingsError

#: gunicorn's Arbiter.WORKER_BOOT_ERROR: the master stops instead of respawning.
WORKER_BOOT_ERROR = 3
#: How long a worker whose refusal a sibling reported waits to be stopped (seconds).
SIBLING_WAIT = 15
#: How long any refusing worker waits for a stop before it reports (seconds): the
#: master may not have stopped the others yet after a sibling reported and exited.
FIRST_WAIT = 3


class _StopRequests:
    """SIGTERM noted, not acted on, while the app is built: a worker stopped
    halfway through a migration would leave it to the next one; the signal
    is passed on to the server's own handler once the app is built."""

    def __init__(self) -> None:
        self.received = False
        self.previous: Any = None
        self.active = threading.current_thread() is threading.main_thread()  # signals: main thread only

    def __enter__(self) -> "_StopRequests":
        if self.active:
            self.previous = signal.signal(signal.SIGTERM, self._note)
        return self

    def _note(self, signum: int, frame: Any) -> None:
        self.received = True

    def __exit__(self, *exc_info: object) -> None:
        if not self.active:
            return
        signal.signal(signal.SIGTERM, self.previous)
        if self.received and exc_info[0] is None and callable(self.previous):
            self.previous(signal.SIGTERM, None)

    def wait(self, seconds: float) -> bool:
        """Whether a stop request came within ``seconds``."""
        deadline = time.monotonic() + seconds
        while not self.received and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.received


def _not_started(message: str) -> SystemExit:
    sys.stderr.write(f"crmkit: not started: {message}\n")
    sys.stderr.flush()
    return SystemExit(WORKER_BOOT_ERROR)


with _StopRequests() as stop:
    try:
        app = create_app()
    except ConfigError as exc:
        raise _not_started("the config has problems:\n" + "\n".join(str(p) for p in exc.problems)) from None
    except MigrationRefused as exc:
        # A sibling may have refused the same plan first and said so: this
        # worker waited for the migration lock behind it, or it got here just
        # after that one exited. Then the master is stopping: go quietly.
        if stop.active and stop.wait(SIBLING_WAIT if exc.waited else FIRST_WAIT):
            raise SystemExit(0) from None
        raise _not_started(str(exc)) from None
    except (PluginError, SettingsError, RuntimeError) as exc:
        raise _not_started(str(exc)) from None
    except OperationalError as exc:
        raise _not_started(f"cannot use the database: {exc.orig}") from None
