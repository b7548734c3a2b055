"""WSGI entry point for gunicorn: ``gunicorn 'crmkit.wsgi:app'`` with CRMKIT_CONFIG set.

A broken config stops the worker with the config's problems, not a traceback."""

import sys

from .app import create_app
from .metadata.problems import ConfigError
from .migrations import MigrationRefused
from .plugins import PluginError

try:
    app = create_app()
except ConfigError as exc:
    sys.stderr.write("crmkit: the config has problems:\n" + "\n".join(str(p) for p in exc.problems) + "\n")
    raise SystemExit(1) from None
except (PluginError, MigrationRefused, RuntimeError) as exc:
    sys.stderr.write(f"crmkit: {exc}\n")
    raise SystemExit(1) from None
