"""Running an app: serve it, seed its database with sample data."""

from __future__ import annotations

import time
from pathlib import Path

import click

from .base import _runtime, cli, config_argument, user_errors


@cli.command()
@config_argument
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--debug", is_flag=True, help="Reload on code changes (development only).")
@user_errors
def serve(config: Path, host: str, port: int, debug: bool) -> None:
    """Serve the CRM (development server; production: gunicorn)."""
    from werkzeug.serving import run_simple

    from ..app import create_app

    app = create_app(config)
    app.debug = debug
    click.echo(f"crmkit serving {config} on http://{host}:{port}/  (API docs: http://{host}:{port}/api/v1/docs)")
    # run_simple, not app.run: under `flask crmkit serve` app.run does nothing (FLASK_RUN_FROM_CLI).
    run_simple(host, port, app, use_reloader=debug, use_debugger=debug, threaded=True)


@cli.command()
@config_argument
@click.option("--size", default=200, show_default=True, type=click.IntRange(1, 10_000_000),
              help="How many customers (other records scale with it).")
@click.option("--seed", "random_seed", default=42, show_default=True, type=int,
              help="Random seed: same seed, same data.")
@click.option("--if-empty", is_flag=True, help="Do nothing when the database already has records.")
@click.option("--users", "extra_reps", default=0, show_default=True, type=click.IntRange(0, 10_000),
              help="Extra sales reps (rep001, ...) to spread the records over, without a password.")
@click.option("--demo-password", envvar="CRMKIT_DEMO_PASSWORD", metavar="PASSWORD", show_envvar=True,
              help="The demo users' password (default: crmkit-demo).")
@user_errors
def seed(config: Path, size: int, random_seed: int, if_empty: bool, extra_reps: int,
         demo_password: str | None) -> None:
    """Fill the database with demo data, demo teams and users.

    Realistic demo data (Chinese names, mobiles, cities), after a demo
    organisation: teams, and a user per role of the config."""
    from ..seed import DEMO_PASSWORD, demo_org, is_empty
    from ..seed import seed as run_seed

    rt = _runtime(config)
    rt.migrate()
    if if_empty and not is_empty(rt):
        click.echo("Demo data already present; nothing seeded.")
        return
    started = time.perf_counter()
    password = rt.directory.check_password(demo_password or DEMO_PASSWORD)
    org = demo_org(rt, extra_reps=extra_reps, password=password, random_seed=random_seed)

    def progress(entity: str, count: int, seconds: float) -> None:
        click.echo(f"  {entity:<20} {count:>9,} in {seconds:6.1f} s", err=True)

    # A big seed takes a while: say how it goes, entity by entity.
    counts = run_seed(rt, size=size, random_seed=random_seed, org=org,
                      progress=progress if size >= 10_000 else None)
    assert counts is not None
    total = sum(counts.values())
    click.echo(f"Seeded {total:,} records in {time.perf_counter() - started:.1f} s: "
               + ", ".join(f"{n} {name}" for name, n in counts.items()))
    named = [name for name in org.users if name not in org.extra]
    if named:
        made = [name for name in named if name in org.created]
        click.echo("Demo users: " + ", ".join(f"{name} ({', '.join(org.users[name][1])})" for name in named))
        if not made:
            click.echo("(They existed already and keep their passwords.)")
        elif len(made) == len(named):
            click.echo(f"Their password: {org.password}")
        else:
            click.echo(f"Password of {', '.join(made)}: {org.password} (the others existed and keep theirs)")
    if extra_reps and not org.extra:
        click.echo("No extra sales reps: the config has no sales_rep role.", err=True)
    if org.extra:
        click.echo(f"Extra sales reps: {org.extra[0]} to {org.extra[-1]} ({len(org.extra)}), without a password "
                   "(crmkit user set-password NAME, or crmkit token create NAME).")
