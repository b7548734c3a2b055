"""The ``crmkit`` command: check, migrate, serve, seed, routes, openapi, purge.

Exit status 0 on success, 1 on a user error (a message, never a traceback),
2 on bad usage.
"""

from __future__ import annotations

import time

import functools
import json
import sys
from pathlib import Path

import click

from .metadata.problems import ConfigError
from .migrations import MigrationRefused
from .plugins import PluginError

config_argument = click.argument("config", type=click.Path(file_okay=False, path_type=Path))


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
        except (PluginError, MigrationRefused) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except Exception as exc:
            from sqlalchemy.exc import OperationalError

            if isinstance(exc, OperationalError):
                click.echo(f"error: cannot use the database: {exc.orig}", err=True)
                sys.exit(1)
            raise

    return wrapper


def _runtime(config: Path):
    from .runtime import build

    rt = build(config)
    # Close the database connections when the command ends: it may run inside
    # a longer-lived process (flask's CLI, tests), not only as its own process.
    click.get_current_context().call_on_close(rt.engine.dispose)
    return rt


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="crmkit")
def cli() -> None:
    """crmkit: a CRM described in YAML. The database comes from CRMKIT_DATABASE_URL
    (default: an SQLite file in ./instance)."""


@cli.command()
@config_argument
@user_errors
def check(config: Path) -> None:
    """Check a config directory; print every problem as file:line:column: message."""
    from . import config as config_module

    spec, _pm, _types = config_module.load(config)
    fields = sum(len(e.user_fields) for e in spec.entities.values())
    click.echo(f"{config}: OK ({len(spec.entities)} entities, {fields} fields)")


@cli.command()
@config_argument
@click.option("--plan", "mode", flag_value="plan", default=True, help="Show what would change (default).")
@click.option("--apply", "mode", flag_value="apply", help="Apply the changes.")
@click.option("--allow-data-loss", is_flag=True, help="Also apply removals and narrowing type changes, after a backup.")
@user_errors
def migrate(config: Path, mode: str, allow_data_loss: bool) -> None:
    """Compare the config with the database, and change the database to match."""
    rt = _runtime(config)
    migration = rt.plan()
    click.echo(migration.describe())
    if mode != "apply" or migration.empty:
        return
    if migration.destructive and not allow_data_loss:
        click.echo("\nNothing applied: rerun with --allow-data-loss to apply the changes marked !, "
                   "or change the config back.", err=True)
        sys.exit(1)
    _, backup = rt.migrate(allow_data_loss=allow_data_loss)
    if backup:
        click.echo(f"Backup of the affected data: {backup}")
    click.echo(f"Applied {len(migration.changes)} change(s).")


@cli.command()
@config_argument
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--debug", is_flag=True, help="Reload on code changes (development only).")
@user_errors
def serve(config: Path, host: str, port: int, debug: bool) -> None:
    """Serve the CRM with the development server (production: gunicorn, see README)."""
    from .app import create_app

    app = create_app(config)
    click.echo(f"crmkit serving {config} on http://{host}:{port}/  (API docs: http://{host}:{port}/api/v1/docs)")
    app.run(host=host, port=port, debug=debug, use_reloader=debug)


@cli.command()
@config_argument
@click.option("--size", default=200, show_default=True, type=click.IntRange(1, 10_000_000),
              help="How many customers (other records scale with it).")
@click.option("--seed", "random_seed", default=42, show_default=True, type=int, help="Random seed: same seed, same data.")
@click.option("--if-empty", is_flag=True, help="Do nothing when the database already has customers.")
@user_errors
def seed(config: Path, size: int, random_seed: int, if_empty: bool) -> None:
    """Fill the database with realistic demo data (Chinese names, mobiles, cities)."""
    from .seed import seed as run_seed

    rt = _runtime(config)
    if not rt.plan().empty:
        rt.migrate()
    started = time.perf_counter()

    def progress(entity: str, count: int, seconds: float) -> None:
        click.echo(f"  {entity:<20} {count:>9,} in {seconds:6.1f} s", err=True)

    # A big seed takes a while: say how it goes, entity by entity.
    counts = run_seed(rt, size=size, random_seed=random_seed, if_empty=if_empty,
                      progress=progress if size >= 10_000 else None)
    if counts is None:
        click.echo("Demo data already present; nothing seeded.")
        return
    total = sum(counts.values())
    click.echo(f"Seeded {total:,} records in {time.perf_counter() - started:.1f} s: "
               + ", ".join(f"{n} {name}" for name, n in counts.items()))


@cli.command()
@config_argument
@user_errors
def routes(config: Path) -> None:
    """List the API's routes."""
    from .app import create_app

    app = create_app(config, migrate=False)
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        methods = ",".join(sorted(m for m in rule.methods or () if m not in ("HEAD", "OPTIONS")))
        click.echo(f"{methods:<20} {rule.rule}")


@cli.command()
@config_argument
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to a file.")
@user_errors
def openapi(config: Path, output: Path | None) -> None:
    """Print the OpenAPI 3.1 document of a config."""
    from .api.openapi import build_document

    text = json.dumps(build_document(_runtime(config)), ensure_ascii=False, indent=2)
    if output:
        output.write_text(text + "\n", encoding="utf-8")
    else:
        click.echo(text)


@cli.command()
@config_argument
@click.option("--days", type=click.IntRange(0), help="Retention in days (default: recycle_bin_days of the config).")
@user_errors
def purge(config: Path, days: int | None) -> None:
    """Delete for good the records that stayed in the recycle bin past the retention."""
    import datetime as dt

    rt = _runtime(config)
    purged = rt.records.purge(dt.timedelta(days=days) if days is not None else None)
    click.echo("Purged: " + (", ".join(f"{n} {e}" for e, n in purged.items()) or "nothing"))


def main() -> None:
    cli(prog_name="crmkit")
