"""Commands that read a config: check it, list the API's routes, print the
OpenAPI document, list the roles and explain what one allows."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .base import _runtime, cli, config_argument, user_errors
from .people import _check_roles
from .terminal import _table


@cli.command()
@config_argument
@user_errors
def check(config: Path) -> None:
    """Check a config; print every problem as file:line:column.

    Every problem at once, as file:line:column: message; exit status 1 when
    there is one."""
    from .. import loading

    spec, pm, _types = loading.load_config(config)
    fields = sum(len(e.user_fields) for e in spec.entities.values())
    click.echo(f"{config}: OK ({len(spec.entities)} entities, {fields} fields)")
    if spec.templates:
        from ..messaging.checks import gateway_warnings

        for warning in gateway_warnings(spec, pm):
            click.echo(f"warning: {warning}", err=True)


@cli.command()
@config_argument
@user_errors
def routes(config: Path) -> None:
    """List the API's routes."""
    from ..app import create_app

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
    from ..api.openapi import build_document

    text = json.dumps(build_document(_runtime(config)), ensure_ascii=False, indent=2)
    if output:
        output.write_text(text + "\n", encoding="utf-8")
    else:
        click.echo(text)


@cli.group()
def roles() -> None:
    """The roles of a config and what they allow."""


def _permissions(config: Path):
    from .. import loading
    from ..permissions import Permissions

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
    from ..permissions import ACTIONS, UNSCOPED

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
