"""Commands on the database: migrate (plan, apply), analyze, purge the recycle
bin, recompute formula fields, refresh rule tags, return pool records."""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from pathlib import Path

import click

from ..database import write_transaction
from .base import CommandError, _runtime, cli, config_argument, user_errors
from .terminal import _hint


@cli.command()
@config_argument
@click.option("--plan", "mode", flag_value="plan", default=True, help="Show what would change (default).")
@click.option("--apply", "mode", flag_value="apply", help="Apply the changes.")
@click.option("--allow-data-loss", is_flag=True,
              help="Also apply the changes that lose data (marked !), after a backup.")
@click.option("-v", "--verbose", is_flag=True, help="Every change on a line (default: one line per entity).")
@user_errors
def migrate(config: Path, mode: str, allow_data_loss: bool, verbose: bool) -> None:
    """Change the database to match the config (--plan shows how)."""
    rt = _runtime(config)
    migration = rt.plan()
    click.echo(migration.describe() if verbose else migration.summary())
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
@user_errors
def analyze(config: Path) -> None:
    """Refresh the query planner's statistics.

    After a bulk import, or nightly (migrations and seeds do it themselves)."""
    started = time.perf_counter()
    rt = _runtime(config)
    rt.check_database()
    rt.analyze()
    click.echo(f"Statistics refreshed in {time.perf_counter() - started:.1f} s.")


@cli.command()
@config_argument
@click.option("--days", type=click.IntRange(0), help="Retention in days (default: recycle_bin_days of the config).")
@user_errors
def purge(config: Path, days: int | None) -> None:
    """Empty the recycle bin of records past the retention."""
    rt = _runtime(config)
    rt.check_database()
    purged = rt.records.purge(dt.timedelta(days=days) if days is not None else None)
    click.echo("Purged: " + (", ".join(f"{n} {e}" for e, n in purged.items()) or "nothing"))


@cli.command()
@click.argument("target", metavar="ENTITY[.FIELD]")
@config_argument
@user_errors
def recompute(target: str, config: Path) -> None:
    """Rebuild an entity's stored formulas.

    Set-based, over every record: every formula of ENTITY (or its FIELD
    alone), then the formulas elsewhere that read them.

    Formulas are kept current on every write; this is for after a bulk load
    that bypassed the records service, or a formula changed in the config."""
    rt = _runtime(config)
    rt.check_database()
    entity_name, _, field_name = target.partition(".")
    entity = rt.spec.entities.get(entity_name)
    if entity is None:
        raise CommandError(f"unknown entity '{entity_name}'{_hint(entity_name, rt.spec.entities)}")
    formulas = [f.name for f in entity.fields.values() if f.formula is not None]
    if field_name and field_name not in formulas:
        raise CommandError(f"{entity_name} has no formula field '{field_name}'{_hint(field_name, formulas)}")
    if not formulas:
        raise CommandError(f"{entity_name} has no formula fields")
    started = time.perf_counter()
    with write_transaction(rt.engine) as conn:
        done = rt.records.rules.recompute(conn, entity_name, field_name or None)
    click.echo(f"Recomputed {', '.join(done)} in {time.perf_counter() - started:.1f} s.")


@cli.group()
def tags() -> None:
    """Tags: evaluate rule tags (tags.yaml) again."""


@tags.command("refresh")
@click.argument("names", nargs=-1, metavar="[TAG]...")
@config_argument
@user_errors
def tags_refresh(names: tuple[str, ...], config: Path) -> None:
    """Evaluate the rule tags (or the TAGs named) over every record.

    Set-based, in one transaction; prints what was added and removed.

    Writes keep tags current; rules that depend on time (``last_order_at <
    now() - 90d``) change by themselves, so run this from cron, e.g. hourly:
    ``0 * * * * CRMKIT_DATABASE_URL=... crmkit tags refresh /srv/crm/config``."""
    env = os.environ.get("CRMKIT_CONFIG")
    if env and names == () and not config.is_dir() and config != Path(env):
        names, config = (str(config),), Path(env)  # `crmkit tags refresh TAG` with CRMKIT_CONFIG set
    rt = _runtime(config)
    rt.check_database()
    started = time.perf_counter()
    counts = rt.records.tagging.refresh(names or None)
    for name, (added, removed) in counts.items():
        click.echo(f"{name}: +{added} -{removed}")
    click.echo(f"{len(counts)} rule tag(s) refreshed in {time.perf_counter() - started:.1f} s.")


@cli.group()
def pool() -> None:
    """The customer pool (公海): return idle records to it."""


@pool.command("return")
@click.argument("arguments", nargs=-1, metavar="[ENTITY] [CONFIG]")
@click.option("--dry-run", is_flag=True, help="Count the records due, return none.")
@user_errors
def pool_return(arguments: tuple[str, ...], dry_run: bool) -> None:
    """Return idle records to their pool now (as the daily job does).

    The records of ENTITY (or of every entity with a pool) whose pool's
    return_when holds, owned at least return_after_days; each return is an
    owner change in the record's history."""
    env = os.environ.get("CRMKIT_CONFIG")
    if len(arguments) > 2:
        raise click.UsageError("at most two arguments: [ENTITY] [CONFIG]")
    entity: str | None = None
    if len(arguments) == 2:
        entity, config = arguments[0], Path(arguments[1])
    elif len(arguments) == 1 and (Path(arguments[0]).is_dir() or not env):
        config = Path(arguments[0])  # the config is the last argument
    elif env:
        entity, config = (arguments[0] if arguments else None), Path(env)
    else:
        raise click.UsageError("Missing argument 'CONFIG': name the config directory, or set CRMKIT_CONFIG.")
    rt = _runtime(config)
    rt.check_database()
    pools = rt.records.pool
    names = [entity] if entity is not None else list(pools.rules)
    for name in names:
        if name not in rt.spec.entities:
            raise CommandError(f"no entity named '{name}'{_hint(name, rt.spec.entities)}")
        if rt.spec.entities[name].pool is None or name not in pools.rules:
            raise CommandError(f"{name} has no pool with a return_when: nothing returns on schedule")
    if not names:
        click.echo("No entity has a pool with a return_when.")
        return
    started = time.perf_counter()
    if dry_run:
        for name in names:
            with rt.engine.connect() as conn:
                due = len(conn.execute(pools.due(conn, name)).all())
            click.echo(f"{name}: {due} due (dry run: none returned)")
        return
    counts = pools.return_due(entity)
    for name, count in counts.items():
        click.echo(f"{name}: {count} returned to the pool")
    click.echo(f"done in {time.perf_counter() - started:.1f} s.")
