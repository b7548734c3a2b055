"""WSGI entry point for gunicorn: ``gunicorn 'crmkit.wsgi:app'`` with CRMKIT_CONFIG set.

Each worker builds the app; the first one migrates (additive changes, under a
lock in the database, so workers booting together do not race) and the others
find nothing to do. A start-up that cannot succeed (a broken config, a plugin
that fails, changes that lose data pending, another app's database) stops the
whole server with one message, not a traceback: the worker exits with
gunicorn's "worker failed to boot" status, on which gunicorn halts instead of
starting new workers that would fail the same way, forever.
"""

import sys

from sqlalchemy.exc import OperationalError

from .app import create_app
from .metadata.problems import ConfigError
from .migrations import MigrationRefused
from .plugins import PluginError
from .settings import SettingsError

#: gunicorn's Arbiter.WORKER_BOOT_ERROR: the master stops instead of respawning.
WORKER_BOOT_ERROR = 3

try:
    app = create_app()
except ConfigError as exc:
    sys.stderr.write("crmkit: the config has problems:\n" + "\n".join(str(p) for p in exc.problems) + "\n")
    raise SystemExit(WORKER_BOOT_ERROR) from None
except MigrationRefused as exc:
    if exc.waited:
        # Another worker held the migration lock first and reported this plan in full.
        sys.stderr.write("crmkit: not started: the database needs changes that can lose data "
                         "(see crmkit migrate --plan -v)\n")
    else:
        sys.stderr.write(f"crmkit: not started: {exc}\n")
    raise SystemExit(WORKER_BOOT_ERROR) from None
except (PluginError, SettingsError, RuntimeError) as exc:
    sys.stderr.write(f"crmkit: not started: {exc}\n")
    raise SystemExit(WORKER_BOOT_ERROR) from None
except OperationalError as exc:
    sys.stderr.write(f"crmkit: not started: cannot use the database: {exc.orig}\n")
    raise SystemExit(WORKER_BOOT_ERROR) from None
