"""People: users (create, passwords, list, disable, enable, the first admin),
their API tokens, and teams."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import sys
from collections.abc import Iterable
from pathlib import Path

import click

from ..errors import CrmError
from ..metadata.problems import did_you_mean
from ..permissions import SYSTEM
from .base import CommandError, _runtime, cli, config_argument, user_errors
from .terminal import _framed, _table, _when


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
    from ..permissions import ADMIN_ROLE

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
