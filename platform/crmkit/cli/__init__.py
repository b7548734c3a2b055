"""The ``crmkit`` command: check, migrate, serve, seed, routes, openapi, purge;
users, teams, API tokens and roles. Also ``flask crmkit ...`` (an entry point
of the ``flask.commands`` group).

Every command finds its config the same way: the optional CONFIG argument, else
CRMKIT_CONFIG. Exit status 0 on success, 1 on a user error (a message, never a
traceback), 2 on bad usage.
"""

from . import config, database, people, run  # noqa: F401  (each adds its commands to the group)
from .base import CommandError, cli, config_argument, main, user_errors

# For the commands that live with their packages (crmkit.jobs.commands, crmkit.automations.commands).
from .base import _runtime as _runtime
from .terminal import _hint as _hint
from .terminal import _table as _table
from .terminal import _when as _when

__all__ = ["CommandError", "cli", "config_argument", "main", "user_errors"]


# ---------------------------------------------------------------- jobs: worker, scheduler, jobs

def _add_job_commands() -> None:
    from ..jobs.commands import jobs_group, scheduler, worker

    for command in (worker, scheduler, jobs_group):
        cli.add_command(command)


_add_job_commands()


# The automations' commands live with them (crmkit.automations.commands).
from ..automations import commands as _automations  # noqa: E402

cli.add_command(_automations.automations)
