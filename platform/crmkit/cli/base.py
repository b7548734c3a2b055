"""The ``crmkit`` command group, and what every command shares: the CONFIG
argument (else CRMKIT_CONFIG), user errors turned into a message and exit
status 1, the runtime built from the config."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import CrmError
from ..metadata.problems import ConfigError
from ..migrations import MigrationRefused
from ..plugins import PluginError
from ..settings import SettingsError


def _config_or_environment(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path:
    if value is None:
        raise click.UsageError("Missing argument 'CONFIG': name the config directory, or set CRMKIT_CONFIG.", ctx)
    return value


#: The one rule for every command: the CONFIG argument (the last one), else CRMKIT_CONFIG.
config_argument = click.argument("config", required=False, envvar="CRMKIT_CONFIG", callback=_config_or_environment,
                                 type=click.Path(file_okay=False, path_type=Path))


class CommandError(click.ClickException):
    """A user error found by a command itself: ``error: message``, exit status 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.message}", err=True)


def user_errors(func):
    """Turn the errors a user can cause into a message and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            for problem in exc.problems:
                click.echo(str(problem), err=True)
            click.echo(f"{len(exc.problems)} problem(s) found.", err=True)
            sys.exit(1)
        except (PluginError, MigrationRefused, SettingsError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except CrmError as exc:  # refused by the directory or the records service: a name taken, a short password
            click.echo(f"error: {exc.message}", err=True)
            sys.exit(1)
        except Exception as exc:
            from sqlalchemy.exc import OperationalError

            if isinstance(exc, OperationalError):
                click.echo(f"error: cannot use the database: {exc.orig}", err=True)
                sys.exit(1)
            raise

    return wrapper


def _runtime(config: Path):
    from ..runtime import build

    rt = build(config)
    # Close the database connections when the command ends: it may run inside
    # a longer-lived process (flask's CLI, tests), not only as its own process.
    click.get_current_context().call_on_close(rt.engine.dispose)
    return rt


@click.group(name="crmkit", context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="crmkit")
def cli() -> None:
    """crmkit: a CRM described in YAML.

    CONFIG, the config directory, is the last argument of every command that
    needs one; without it, CRMKIT_CONFIG names it. The database comes from
    CRMKIT_DATABASE_URL (default: instance/<app>.sqlite3, <app> as app.yaml
    names it; CRMKIT_INSTANCE moves the instance folder)."""


def main() -> None:
    cli(prog_name="crmkit")
