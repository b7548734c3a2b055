"""The ``crmkit`` command: check, migrate, serve, seed, routes, openapi, purge;
users, teams, API tokens and roles. Also ``flask crmkit ...`` (an entry point
of the ``flask.commands`` group).

Every command finds its config the same way: the optional CONFIG argument, else
CRMKIT_CONFIG. Exit status 0 on success, 1 on a user error (a message, never a
traceback), 2 on bad usage.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import secrets
import sys
import time
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import click

from .database import write_transaction
from .errors import CrmError
from .metadata.problems import ConfigError, did_you_mean
from .migrations import MigrationRefused
from .permissions import SYSTEM
from .plugins import PluginError
from .settings import SettingsError


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
    from .runtime import build

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


@cli.command()
@config_argument
@user_errors
def check(config: Path) -> None:
    """Check a config; print every problem as file:line:column.

    Every problem at once, as file:line:column: message; exit status 1 when
    there is one."""
    from . import loading

    spec, pm, _types = loading.load_config(config)
    fields = sum(len(e.user_fields) for e in spec.entities.values())
    click.echo(f"{config}: OK ({len(spec.entities)} entities, {fields} fields)")
    if spec.templates:
        from .messaging.checks import gateway_warnings

        for warning in gateway_warnings(spec, pm):
            click.echo(f"warning: {warning}", err=True)


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
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--debug", is_flag=True, help="Reload on code changes (development only).")
@user_errors
def serve(config: Path, host: str, port: int, debug: bool) -> None:
    """Serve the CRM (development server; production: gunicorn)."""
    from werkzeug.serving import run_simple

    from .app import create_app

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
    from .seed import DEMO_PASSWORD, demo_org, is_empty
    from .seed import seed as run_seed

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
    """Print the OpenAPI 3.1 document of the API."""
    from .api.openapi import build_document

    text = json.dumps(build_document(_runtime(config)), ensure_ascii=False, indent=2)
    if output:
        output.write_text(text + "\n", encoding="utf-8")
    else:
        click.echo(text)


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


def _hint(word: str, names: Iterable[str]) -> str:
    hint = did_you_mean(word, names)
    return f" ({hint})" if hint else ""


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


# ---------------------------------------------------------------- people: users, teams, tokens

def _directory(config: Path):
    """The runtime's directory of users, on a database that has the platform's tables."""
    import sqlalchemy as sa

    rt = _runtime(config)
    rt.check_database()
    if not sa.inspect(rt.engine).has_table(rt.tables.users.name):
        raise CommandError(f"the database has no users yet: run crmkit migrate {config} --apply first")
    return rt.directory


def _check_roles(permissions, names: Iterable[str]) -> None:
    for name in names:
        if name not in permissions.roles:
            hint = did_you_mean(name, permissions.roles)
            raise CommandError(f"unknown role '{name}'" + (f" ({hint})" if hint else "")
                                       + f"; the roles are: {', '.join(permissions.roles)}")


def _on_terminal() -> bool:
    """Whether someone can answer a prompt (a password is never read from a pipe)."""
    return sys.stdin.isatty()


def _password(given: str | None, directory, who: str) -> tuple[str, bool]:
    """(password, generated?): the one given, else one typed twice on a
    terminal, else a strong random one (the caller prints it once)."""
    if given is not None:
        return directory.check_password(given), False
    if _on_terminal():
        def checked(value: str) -> str:
            try:
                return directory.check_password(value)
            except CrmError as exc:
                raise click.UsageError(exc.message) from None

        return click.prompt(f"Password for {who}", hide_input=True, confirmation_prompt=True,
                            value_proc=checked), False
    return secrets.token_urlsafe(15), True


def _width(text: str) -> int:
    """Columns a text takes on a terminal (a Chinese character takes two)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([_width(h)] + [_width(row[i]) for row in cells]) for i, h in enumerate(headers)]
    for row in [list(headers)] + cells:
        click.echo("  ".join(v + " " * (w - _width(v)) for v, w in zip(row, widths)).rstrip())


def _framed(lines: list[str]) -> None:
    """Lines in a frame, set apart so that nobody scrolls past them."""
    width = max(map(_width, lines)) + 4
    click.echo("\n" + "=" * width)
    for line in lines:
        click.echo(f"  {line}")
    click.echo("=" * width + "\n")


def _when(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M") if value else ""


@cli.group()
def user() -> None:
    """Users: create, list, disable; passwords.

    The config (CONFIG, else CRMKIT_CONFIG) says which roles there are."""


@user.command("create")
@click.argument("name")
@click.option("--role", "roles", multiple=True, required=True, help="A role of the config (repeat for several).")
@click.option("--password", help="Default: typed twice on a terminal, else generated and printed once.")
@click.option("--team", help="Team name or id.")
@click.option("--superior", help="The user they report to (name or id).")
@click.option("--display-name", help="Default: the user name.")
@click.option("--email")
@click.option("--mobile")
@config_argument
@user_errors
def user_create(name: str, roles: tuple[str, ...], password: str | None, team: str | None, superior: str | None,
                display_name: str | None, email: str | None, mobile: str | None, config: Path) -> None:
    """Create a user NAME with one or more roles."""
    directory = _directory(config)
    _check_roles(directory.permissions, roles)  # before a password is asked for
    secret, generated = _password(password, directory, name)
    data = {"username": name, "roles": list(roles), "password": secret, "team_id": team, "superior_id": superior,
            "display_name": display_name, "email": email, "mobile": mobile}
    made = directory.create_user({k: v for k, v in data.items() if v is not None}, SYSTEM)
    click.echo(f"Created user {made['username']} (id {made['id']}, roles: {', '.join(made['roles'])}).")
    if generated:
        click.echo(f"Password: {secret}  (shown once; change it with crmkit user set-password {name})")


@user.command("set-password")
@click.argument("name")
@click.option("--password", help="Default: typed twice on a terminal, else generated and printed once.")
@config_argument
@user_errors
def user_set_password(name: str, password: str | None, config: Path) -> None:
    """Set a user's password (their browser sessions end)."""
    directory = _directory(config)
    found = directory.user(name)
    secret, generated = _password(password, directory, found["username"])
    directory.update_user(found["id"], {"password": secret}, SYSTEM)
    click.echo(f"Password of {found['username']} changed; their browser sessions were ended.")
    if generated:
        click.echo(f"Password: {secret}  (shown once)")


@user.command("list")
@config_argument
@user_errors
def user_list(config: Path) -> None:
    """List the users."""
    directory = _directory(config)
    rows = directory.users()
    team_names = {team["id"]: team["name"] for team in directory.teams()}
    names = {row["id"]: row["username"] for row in rows}
    _table(("id", "username", "display name", "roles", "team", "superior", "active"),
           [(row["id"], row["username"], row["display_name"], ",".join(row["roles"] or ()),
             team_names.get(row["team_id"]), names.get(row["superior_id"]), "yes" if row["active"] else "no")
            for row in rows])


@user.command("disable")
@click.argument("name")
@config_argument
@user_errors
def user_disable(name: str, config: Path) -> None:
    """Disable a user: no login, no API token; records stay theirs."""
    found = _set_active(config, name, False)
    click.echo(f"Disabled {found['username']}: their sessions were ended and their API tokens no longer work.")


@user.command("enable")
@click.argument("name")
@config_argument
@user_errors
def user_enable(name: str, config: Path) -> None:
    """Enable a disabled user again."""
    click.echo(f"Enabled {_set_active(config, name, True)['username']}.")


def _set_active(config: Path, name: str, active: bool):
    directory = _directory(config)
    return directory.update_user(directory.user(name)["id"], {"active": active}, SYSTEM)


@user.command("create-admin")
@click.option("--if-missing", is_flag=True, help="Do nothing when a user with the admin role exists.")
@config_argument
@user_errors
def user_create_admin(if_missing: bool, config: Path) -> None:
    """Create the first admin, user admin (password printed once).

    The password comes from CRMKIT_ADMIN_PASSWORD, else it is generated and
    printed once."""
    from .permissions import ADMIN_ROLE

    directory = _directory(config)
    admins = [user["username"] for user in directory.users() if ADMIN_ROLE in (user["roles"] or ())]
    if admins and if_missing:
        click.echo(f"An admin exists ({', '.join(admins[:3])}{', ...' if len(admins) > 3 else ''}).")
        return
    from_env = os.environ.get("CRMKIT_ADMIN_PASSWORD") or None
    secret, generated = (from_env, False) if from_env else (secrets.token_urlsafe(15), True)
    directory.create_user({"username": "admin", "display_name": "系统管理员", "roles": [ADMIN_ROLE],
                           "password": directory.check_password(secret)}, SYSTEM)
    if generated:
        _framed([f"The first admin:  user admin  password {secret}",
                 "Shown this once: keep it now (change it with: crmkit user set-password admin)."])
    else:
        click.echo("Created the first admin: admin (password from CRMKIT_ADMIN_PASSWORD)")


@cli.group()
def token() -> None:
    """API tokens (Bearer TOKEN): create, list, revoke."""


@token.command("create")
@click.argument("username")
@click.option("--name", default="cli", show_default=True, help="What the token is for.")
@click.option("--expires-days", type=click.IntRange(1, 3650), help="Default: no expiry.")
@config_argument
@user_errors
def token_create(username: str, name: str, expires_days: int | None, config: Path) -> None:
    """Make an API token for a user (printed once).

    The token is printed once, alone on standard output
    (TOKEN=$(crmkit token create NAME) keeps it)."""
    directory = _directory(config)
    made = directory.create_token(directory.user(username)["id"], name, SYSTEM, expires_days=expires_days)
    expiry = f"expires {_when(made.expires_at)} UTC" if made.expires_at else "no expiry"
    click.echo(f"Token {made.id} '{made.name}' for {username} ({expiry}); shown once, keep it now:", err=True)
    click.echo(made.token)


@token.command("list")
@click.argument("username")
@config_argument
@user_errors
def token_list(username: str, config: Path) -> None:
    """List a user's tokens (by their first characters)."""
    directory = _directory(config)
    now = dt.datetime.now(dt.UTC)

    def status(row: dict) -> str:
        if row["revoked_at"]:
            return "revoked"
        return "expired" if row["expires_at"] and row["expires_at"] <= now else "active"

    _table(("id", "name", "starts with", "created", "expires", "last used", "status"),
           [(row["id"], row["name"], row["hint"] + "…", _when(row["created_at"]), _when(row["expires_at"]),
             _when(row["last_used_at"]), status(row))
            for row in directory.tokens(directory.user(username)["id"], SYSTEM)])


@token.command("revoke")
@click.argument("username")
@click.argument("token_id", type=int)
@config_argument
@user_errors
def token_revoke(username: str, token_id: int, config: Path) -> None:
    """Revoke a user's token by its id (see crmkit token list)."""
    directory = _directory(config)
    directory.revoke_token(directory.user(username)["id"], token_id, SYSTEM)
    click.echo(f"Revoked token {token_id} of {username}.")


@cli.group()
def team() -> None:
    """Teams (departments), in a tree: create, list."""


@team.command("create")
@click.argument("name")
@click.option("--label", help="Display name, e.g. 华东销售组 (default: the name).")
@click.option("--parent", help="The team above it (name or id).")
@config_argument
@user_errors
def team_create(name: str, label: str | None, parent: str | None, config: Path) -> None:
    """Create a team NAME (snake_case)."""
    made = _directory(config).create_team({"name": name, "label": label, "parent_id": parent}, SYSTEM)
    click.echo(f"Created team {made['name']} (id {made['id']}).")


@team.command("list")
@config_argument
@user_errors
def team_list(config: Path) -> None:
    """Show the teams as a tree, with how many active users each has."""
    rows = _directory(config).teams()
    if not rows:
        click.echo("No teams yet: crmkit team create NAME [--parent P].")
        return
    children: dict[int | None, list] = {}
    for row in rows:
        children.setdefault(row['parent_id'], []).append(row)

    def show(row, lead: str, branch: str) -> None:
        count = row['members']
        label = f"  {row['label']}" if row['label'] and row['label'] != row['name'] else ""
        click.echo(f"{lead}{branch}{row['name']}{label}  ({count} user{'s' if count != 1 else ''})")
        below = children.get(row['id'], [])
        for i, child in enumerate(below):
            last = i == len(below) - 1
            show(child, lead + ("" if not branch else "    " if branch == "└── " else "│   "),
                 "└── " if last else "├── ")

    for root in children.get(None, []):
        show(root, "", "")


# ---------------------------------------------------------------- roles

@cli.group()
def roles() -> None:
    """The roles of a config and what they allow."""


def _permissions(config: Path):
    from . import loading
    from .permissions import Permissions

    spec, _pm, types = loading.load_config(config)
    return Permissions(spec, types)


@roles.command("list")
@config_argument
@user_errors
def roles_list(config: Path) -> None:
    """List the roles of a config."""
    for name, role in _permissions(config).roles.items():
        label = role.label.get("zh") or role.label.get("en") or ""
        click.echo(f"{name:<20} {label}")


@roles.command("explain")
@config_argument
@click.option("--role", "role_names", multiple=True, required=True, help="A role (repeat: a user with several).")
@click.option("--json", "as_json", is_flag=True, help="Print the matrix as JSON.")
@user_errors
def roles_explain(config: Path, role_names: tuple[str, ...], as_json: bool) -> None:
    """What a user with these roles may do, entity by entity.

    Per entity, each action's data scope, and the field rules (the union of
    the roles)."""
    from .permissions import ACTIONS, UNSCOPED

    permissions = _permissions(config)
    _check_roles(permissions, role_names)
    matrix = permissions.explain(role_names)
    if as_json:
        click.echo(json.dumps({"roles": list(role_names), "entities": matrix}, ensure_ascii=False, indent=2))
        return
    click.echo(f"Roles: {', '.join(role_names)}  (scopes: own, team, team_tree, subordinates, all; "
               "yes = allowed, - = denied)\n")
    granted = {e: m for e, m in matrix.items() if any(s != "none" for s in m["actions"].values())}

    def cell(action: str, scope: str) -> str:
        if scope == "none":
            return "-"
        return "yes" if action in UNSCOPED else scope

    _table(("entity",) + ACTIONS, [(e, *(cell(a, m["actions"][a]) for a in ACTIONS)) for e, m in granted.items()])
    denied = [e for e in matrix if e not in granted]
    if denied:
        click.echo(f"\nNo access: {', '.join(denied)}")
    rules = [(f"{e}.{f}", level) for e, m in granted.items() for f, level in m["fields"].items()]
    if rules:
        click.echo("\nField rules (other fields: writable where the role may update):")
        _table(("field", "level"), rules)


# ---------------------------------------------------------------- jobs: worker, scheduler, jobs

def _add_job_commands() -> None:
    from .jobs.commands import jobs_group, scheduler, worker

    for command in (worker, scheduler, jobs_group):
        cli.add_command(command)


_add_job_commands()


def main() -> None:
    cli(prog_name="crmkit")


# The automations' commands live with them (crmkit.automations.commands).
from .automations import commands as _automations  # noqa: E402

cli.add_command(_automations.automations)
