"""``crmkit automations ...``: the commands of the automations."""

from __future__ import annotations

from pathlib import Path

import click

from ..cli import CommandError, _hint, _runtime, config_argument, user_errors


def _automations() -> None:
    """Automations: list them, try one out, prune the run log."""


automations: click.Group = click.group("automations")(_automations)


@automations.command("test")
@click.argument("name")
@click.option("--record", "record_id", type=click.IntRange(1, 2**31 - 1),
              help="The id of the record to try it on (the trigger's entity); none for a schedule without entity.")
@config_argument
@user_errors
def automations_test(name: str, record_id: int | None, config: Path) -> None:
    """Dry-run automation NAME on a record; writes nothing.

    Shows the value of its condition and what each action would do; writes
    nothing (not even the run log)."""
    rt = _runtime(config)
    rt.check_database()
    automation = rt.spec.automations.get(name)
    if automation is None:
        raise CommandError(f"no automation named '{name}'{_hint(name, rt.spec.automations)}")
    if automation.entity is not None and record_id is None:
        raise CommandError(f"'{name}' acts on {automation.entity} records: give one with --record ID")
    try:
        result = rt.automations.dry_run(name, record_id)
    except LookupError as exc:
        raise CommandError(str(exc).strip("'\"")) from None
    trigger = automation.trigger.text
    target = f"{automation.entity} {record_id}" if automation.entity is not None and record_id else "no record"
    click.echo(f"{name} ({trigger}) on {target}{'' if automation.enabled else ' [disabled: enabled: false]'}")
    if automation.when is None:
        click.echo("condition: none (always runs)")
    else:
        value = "true: the actions run" if result.condition else "false: nothing would run"
        click.echo(f"condition: {automation.when} → {value}")
    for i, line in enumerate(result.lines, 1):
        click.echo(f"  {i}. {line}")
    click.echo("dry run: nothing was written.")


@automations.command("list")
@config_argument
@user_errors
def automations_list(config: Path) -> None:
    """List the automations: trigger, condition, actions; off ones marked."""
    from .. import loading

    spec, _pm, _types = loading.load_config(config)
    if not spec.automations:
        click.echo("no automations (add automations/*.yaml)")
        return
    for automation in spec.automations.values():
        state = "" if automation.enabled else "  [off: enabled: false]"
        click.echo(f"{automation.name}{state}")
        click.echo(f"  on {automation.trigger.text}" + (f", if {automation.when}" if automation.when else ""))
        click.echo(f"  do {', '.join(step.name for step in automation.actions)}")


def _days(value: str) -> int:
    text = value.strip().lower()
    number = text[:-1] if text.endswith("d") else text
    if not number.isdigit():
        raise click.BadParameter(f"a number of days, e.g. 90d or 90, not {value!r}")
    return int(number)


@automations.command("prune")
@click.option("--older-than", "older_than", metavar="DAYS",
              help="Delete what is older than this many days (e.g. 90d); default: CRMKIT_AUTOMATION_RUNS_KEEP_DAYS.")
@config_argument
@user_errors
def automations_prune(older_than: str | None, config: Path) -> None:
    """Delete old automation runs and done jobs (dead jobs stay).

    What the daily job does, now: runs logged and jobs done longer ago than
    --older-than (default CRMKIT_AUTOMATION_RUNS_KEEP_DAYS, 90). Done jobs
    are kept at least 8 days (their keys stop time triggers firing twice)."""
    import datetime as dt

    rt = _runtime(config)
    rt.check_database()
    days = _days(older_than) if older_than is not None else rt.settings.automation_runs_keep_days
    if older_than is None and days == 0:
        raise CommandError("CRMKIT_AUTOMATION_RUNS_KEEP_DAYS is 0 (keep forever): give --older-than DAYS")
    runs, jobs = rt.automations.prune(dt.timedelta(days=days))
    click.echo(f"Deleted {runs} automation run(s) and {jobs} done job(s) older than {days} day(s).")
