"""The crmkit command: exit 0 on success, 1 on a user error (message, no
traceback), 2 on bad usage; through click's runner and as a real process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from openapi_spec_validator import validate

from conftest import CUSTOMER_YAML, MINI_FILES, database, make_config
from crmkit.cli import cli
from crmkit.database import create_engine
from crmkit.permissions import SYSTEM

CRMKIT = Path(sys.executable).parent / "crmkit"
LOCATED = re.compile(r"^[^\s:]+:\d+:\d+: \S")

BROKEN = dict(MINI_FILES)
BROKEN["entities/customer.yaml"] = CUSTOMER_YAML.replace("type: phone", "type: phnoe").replace(
    "to: customer,", "to: custmer,")


def run(args: list[str], env: dict | None = None):
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=False)


def db_env(url: str, instance: Path) -> dict[str, str]:
    return {"CRMKIT_DATABASE_URL": url, "CRMKIT_INSTANCE": str(instance)}


def process(args: list[str], env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CRMKIT_")}
    full_env.update(env or {})
    return subprocess.run([str(CRMKIT), *args], capture_output=True, text=True, env=full_env, cwd=cwd,
                          timeout=120, check=False)


# ---------------------------------------------------------------- check

def test_check_good_config(mini_config):
    result = run(["check", str(mini_config)])
    assert result.exit_code == 0
    assert result.stdout == f"{mini_config}: OK (4 entities, 25 fields)\n"


def test_check_broken_config_lists_every_problem(tmp_path):
    config = make_config(tmp_path / "config", BROKEN)
    result = run(["check", str(config)])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines == [
        "entities/customer.yaml:8:18: unknown field type 'phnoe' (did you mean 'phone'?)",
        "entities/customer.yaml:22:29: ref to unknown entity 'custmer' (did you mean 'customer'?)",
        "2 problem(s) found.",
    ]
    assert "Traceback" not in result.output


def test_check_as_a_process(tmp_path, mini_config):
    good = process(["check", str(mini_config)])
    assert (good.returncode, good.stderr) == (0, "")
    assert "OK (4 entities" in good.stdout
    config = make_config(tmp_path / "broken", BROKEN)
    bad = process(["check", str(config)])
    assert bad.returncode == 1
    problem_lines = bad.stderr.splitlines()[:-1]
    assert len(problem_lines) == 2 and all(LOCATED.match(line) for line in problem_lines), bad.stderr
    assert bad.stderr.splitlines()[-1] == "2 problem(s) found."
    assert "Traceback" not in bad.stdout + bad.stderr


@pytest.mark.parametrize("args", [
    [], ["check"], ["frobnicate"], ["migrate", "cfg", "--bogus"], ["seed", "cfg", "--size", "zero"],
    ["seed", "cfg", "--size", "0"],
])
def test_bad_usage_exits_2(args):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_bad_usage_as_a_process():
    result = process(["migrate"])
    assert result.returncode == 2
    assert "Missing argument 'CONFIG'" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_database_is_a_user_error(mini_config, tmp_path):
    env = db_env("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2", tmp_path)
    result = process(["migrate", str(mini_config), "--plan"], env)
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot use the database:")
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------- migrate

def test_migrate_plan_then_apply(mini_config, database_url, tmp_path):
    env = db_env(database_url, tmp_path / "instance")
    plan = run(["migrate", str(mini_config), "--plan", "-v"], env)
    assert plan.exit_code == 0
    assert "  + add table customer" in plan.stdout
    assert "  + add unique index uq_customer_mobile on customer" in plan.stdout
    default = run(["migrate", str(mini_config), "-v"], env)
    assert default.stdout == plan.stdout  # --plan is the default: nothing applied yet
    summary = run(["migrate", str(mini_config)], env).stdout.splitlines()
    # The platform's tables: saved views, record tags, approvals (3), jobs (3), automations (2), messaging (2),
    # assignment turns and pool events:
    assert summary == ["  + platform: 24 new tables",
                       "  + customer: new table, 27 columns, 8 indexes, 1 new link table",
                       "  + product: new table, 10 columns, 5 indexes",
                       "  + contract: new table, 11 columns, 5 indexes",
                       "  + order: new table, 11 columns, 5 indexes"]
    applied = run(["migrate", str(mini_config), "--apply"], env)
    assert applied.exit_code == 0
    count = plan.stdout.count("\n  + ") + 1
    assert applied.stdout == "\n".join(summary) + f"\nApplied {count} change(s).\n"
    again = run(["migrate", str(mini_config), "--plan"], env)
    assert again.stdout == "The database matches the config: nothing to do.\n"


def test_migrate_refuses_data_loss_until_allowed(mini_config, database_url, tmp_path):
    env = db_env(database_url, tmp_path / "instance")
    make_config(mini_config, {"entities/note.yaml": "entity: note\nfields:\n  text: {type: text}\n"})
    assert run(["migrate", str(mini_config), "--apply"], env).exit_code == 0
    (mini_config / "entities/note.yaml").unlink()
    refused = run(["migrate", str(mini_config), "--apply"], env)
    assert refused.exit_code == 1
    assert "  ! note: table note removed (its data)\n" in refused.stdout
    assert "  ! remove table note (its data)" in run(["migrate", str(mini_config), "-v"], env).stdout
    assert "Nothing applied: rerun with --allow-data-loss" in refused.stderr
    allowed = run(["migrate", str(mini_config), "--apply", "--allow-data-loss"], env)
    assert allowed.exit_code == 0
    backup = re.search(r"Backup of the affected data: (\S+)", allowed.stdout).group(1)
    assert (Path(backup) / "note.jsonl").exists()
    assert run(["migrate", str(mini_config)], env).stdout.startswith("The database matches")


def test_migrate_broken_config_is_a_user_error(tmp_path):
    config = make_config(tmp_path / "config", BROKEN)
    result = run(["migrate", str(config), "--apply"], db_env("sqlite://", tmp_path))
    assert result.exit_code == 1
    assert "unknown field type 'phnoe'" in result.stderr


def test_migrate_as_a_process(mini_config, database_url, tmp_path):
    env = db_env(database_url, tmp_path / "instance")
    result = process(["migrate", str(mini_config), "--apply"], env)
    assert result.returncode == 0, result.stderr
    assert "Applied" in result.stdout
    result = process(["migrate", str(mini_config), "--plan"], env)
    assert result.stdout == "The database matches the config: nothing to do.\n"


# ---------------------------------------------------------------- openapi, routes, purge

def test_openapi_prints_a_valid_document(mini_config, tmp_path):
    result = run(["openapi", str(mini_config)], db_env(f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path))
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert document["openapi"] == "3.1.0"
    validate(document)
    out = tmp_path / "openapi.json"
    assert run(["openapi", str(mini_config), "-o", str(out)], db_env("sqlite://", tmp_path)).exit_code == 0
    assert json.loads(out.read_text(encoding="utf-8")) == document


def test_routes_lists_the_api(mini_config, tmp_path):
    result = run(["routes", str(mini_config)], db_env("sqlite://", tmp_path))
    assert result.exit_code == 0
    routes = {tuple(line.split()) for line in result.stdout.splitlines()}
    assert ("GET", "/api/v1/<entity:entity_name>") in routes
    assert ("POST", "/api/v1/<entity:entity_name>") in routes
    for method in ("GET", "PATCH", "DELETE"):
        assert (method, "/api/v1/<entity:entity_name>/<rid:record_id>") in routes
    assert ("GET", "/api/v1/openapi.json") in routes
    assert ("GET", "/healthz") in routes


def test_purge_removes_old_deleted_records(mini_config, database_url, tmp_path, make_runtime):
    env = db_env(database_url, tmp_path / "instance")
    assert run(["migrate", str(mini_config), "--apply"], env).exit_code == 0
    rt = make_runtime(mini_config)
    record = rt.records.create("product", {"name": "Beans"}, SYSTEM)
    rt.records.delete("product", record["id"], SYSTEM)
    kept = run(["purge", str(mini_config)], env)
    assert kept.stdout == "Purged: nothing\n"
    purged = run(["purge", str(mini_config), "--days", "0"], env)
    assert purged.stdout == "Purged: 1 product\n"
    with rt.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(rt.tables.entities["product"])).scalar() == 0


# ---------------------------------------------------------------- seed

def _customers(url: str) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text("SELECT id, name, mobile, level FROM customer ORDER BY id")))
    finally:
        engine.dispose()


def test_seed_is_deterministic(mini_config, database_url, tmp_path, request):
    kind = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    first = run(["seed", str(mini_config), "--size", "20"], db_env(database_url, tmp_path / "one"))
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith("Seeded ") and " records in " in first.stdout
    assert "20 customer" in first.stdout
    (tmp_path / "two").mkdir()
    with database(kind, tmp_path / "two") as other_url:
        second = run(["seed", str(mini_config), "--size", "20"], db_env(other_url, tmp_path / "two"))
        assert second.exit_code == 0, second.output
        one, two = _customers(database_url), _customers(other_url)
    assert len(one) == 20
    assert one == two
    assert len({row.mobile for row in one if row.mobile}) == len([row for row in one if row.mobile])
    assert all(re.fullmatch(r"1[3-9]\d{9}", row.mobile) for row in one if row.mobile)
    different = run(["seed", str(mini_config), "--size", "20", "--seed", "7", "--if-empty"],
                    db_env(database_url, tmp_path / "one"))
    assert different.stdout == "Demo data already present; nothing seeded.\n"


def test_seed_respects_field_bounds_whatever_they_are(tmp_path, database_url):
    """Minimums above the generator's usual ranges still give valid values."""
    from conftest import make_config

    config = make_config(tmp_path / "config", {"app.yaml": "app: shop\n", "entities/deal.yaml": """
        entity: deal
        fields:
          name: {type: string}
          amount: {type: money, min: 50000}
          seats: {type: integer, min: 500}
          share: {type: decimal, min: 2, max: 3, scale: 2}
    """})
    result = run(["seed", str(config), "--size", "30"], db_env(database_url, tmp_path))
    assert result.exit_code == 0, result.output
    assert "Seeded " in result.stdout


def test_a_meaningless_setting_is_a_message_not_a_traceback(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from conftest import SAMPLE_CONFIG
    from crmkit.cli import cli

    monkeypatch.setenv("CRMKIT_INSTANCE", str(tmp_path))
    for name in ("CRMKIT_TRUST_PROXY", "CRMKIT_MAX_BODY_BYTES"):
        monkeypatch.setenv(name, "lots")
        result = CliRunner().invoke(cli, ["migrate", str(SAMPLE_CONFIG)])
        assert result.exit_code == 1 and name in result.output and "Traceback" not in result.output
        monkeypatch.delenv(name)


def test_analyze_refreshes_the_planner_statistics(tmp_path, monkeypatch):
    import sqlite3

    from click.testing import CliRunner

    from conftest import SAMPLE_CONFIG
    from crmkit.cli import cli

    monkeypatch.setenv("CRMKIT_INSTANCE", str(tmp_path))
    runner = CliRunner()
    assert runner.invoke(cli, ["migrate", str(SAMPLE_CONFIG), "--apply"]).exit_code == 0
    database = sqlite3.connect(tmp_path / "retail_crm.sqlite3")  # each app its own database
    database.execute("INSERT INTO product (version, created_at, updated_at, name) "
                     "VALUES (1, '2026-01-01 00:00:00', '2026-01-01 00:00:00', 'tea')")
    database.commit()
    result = runner.invoke(cli, ["analyze", str(SAMPLE_CONFIG)])
    assert result.exit_code == 0 and "Statistics refreshed" in result.output
    assert database.execute("SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'product'").fetchone()[0] > 0


# ---------------------------------------------------------------- one database per app; one rule for the config

def test_each_app_gets_its_own_database_by_default(mini_config, tmp_path):
    from conftest import SAMPLE_CONFIG

    env = {"CRMKIT_INSTANCE": str(tmp_path / "instance")}
    assert run(["migrate", str(SAMPLE_CONFIG), "--apply"], env).exit_code == 0
    mine = run(["migrate", str(mini_config), "--apply"], env)  # the README's "your own config" after make run
    assert mine.exit_code == 0, mine.output
    assert "!" not in mine.stdout
    assert sorted(p.name for p in (tmp_path / "instance").glob("*.sqlite3")) == ["mini.sqlite3", "retail_crm.sqlite3"]


def test_a_database_of_another_app_is_refused_not_planned_away(mini_config, database_url, tmp_path):
    from crmkit.app import create_app
    from crmkit.migrations import DatabaseOfAnotherApp
    from crmkit.settings import Settings

    env = db_env(database_url, tmp_path / "instance")
    assert run(["migrate", str(mini_config), "--apply"], env).exit_code == 0
    other = make_config(tmp_path / "other", {"app.yaml": "app: shop\n", "entities/note.yaml":
                                             "entity: note\nfields:\n  text: {type: text}\n"})
    message = ("error: this database belongs to the app 'mini', not to 'shop' (the app: key of app.yaml); "
               "nothing was changed. Give shop a database of its own")
    for args in (["migrate", str(other)], ["migrate", str(other), "--apply", "--allow-data-loss"],
                 ["seed", str(other)], ["user", "list", str(other)], ["purge", str(other)]):
        refused = run(args, env)
        assert refused.exit_code == 1, (args, refused.output)
        assert refused.stderr.startswith(message), refused.stderr
        assert "remove table" not in refused.output
    with pytest.raises(DatabaseOfAnotherApp):
        create_app(other, Settings(database_url, tmp_path / "instance"))
    assert run(["migrate", str(mini_config)], env).stdout == "The database matches the config: nothing to do.\n"


def test_a_database_from_before_the_mark_gets_it_on_its_next_migration(mini_config, tmp_path):
    env = db_env(f"sqlite:///{tmp_path / 'old.sqlite3'}", tmp_path)
    assert run(["migrate", str(mini_config), "--apply"], env).exit_code == 0
    engine = create_engine(env["CRMKIT_DATABASE_URL"])
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE crmkit_app")
    engine.dispose()
    assert run(["migrate", str(mini_config)], env).stdout == "  + platform: 1 new table\n"
    assert run(["migrate", str(mini_config), "--apply"], env).exit_code == 0
    other = make_config(tmp_path / "other", {"app.yaml": "app: shop\n"})
    assert "belongs to the app 'mini'" in run(["migrate", str(other)], env).stderr


@pytest.mark.parametrize("args", [["check"], ["migrate"], ["routes"], ["roles", "list"], ["user", "list"],
                                  ["team", "list"], ["token", "list", "admin"], ["analyze"]])
def test_every_command_finds_its_config_the_same_way(args, mini_config, tmp_path):
    env = db_env(f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path)
    assert run(["migrate", str(mini_config), "--apply"], env).exit_code == 0
    if args[0] == "token":
        assert run(["user", "create", "admin", str(mini_config), "--role", "admin", "--password", "pw-long-enough-1"],
                   env).exit_code == 0
    by_argument = run([*args, str(mini_config)], env)
    assert by_argument.exit_code == 0, by_argument.output
    by_environment = run(args, {**env, "CRMKIT_CONFIG": str(mini_config)})
    def timeless(text: str) -> str:  # elapsed times differ from run to run
        return re.sub(r"in \d+(\.\d+)? s\b", "in N s", text)

    assert (by_environment.exit_code, timeless(by_environment.stdout)) == (0, timeless(by_argument.stdout))
    neither = CliRunner().invoke(cli, args, env={**env, "CRMKIT_CONFIG": ""})
    assert neither.exit_code == 2
    assert "Missing argument 'CONFIG': name the config directory, or set CRMKIT_CONFIG." in neither.output


def _commands(output: str) -> dict[str, str]:
    lines = output.split("Commands:\n", 1)[1].splitlines()
    return dict(line.strip().split(None, 1) for line in lines if line.strip())


def test_help_lists_every_command_with_one_whole_line():
    groups = {"": cli, **{name: command for name, command in cli.commands.items() if hasattr(command, "commands")}}
    for name, group in groups.items():
        listed = _commands(run([name, "--help"] if name else ["--help"]).stdout)
        assert set(listed) == set(group.commands), name
        cut = [f"{name} {command}: {text}" for command, text in listed.items() if text.endswith("...")]
        assert not cut, cut


def test_version_is_the_project_version():
    import tomllib

    from conftest import ROOT

    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert run(["--version"]).stdout == f"crmkit, version {version}\n"


def test_flask_crmkit_runs_the_same_commands(mini_config, tmp_path):
    flask = Path(sys.executable).parent / "flask"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("CRMKIT_", "FLASK_"))}
    full_env["CRMKIT_INSTANCE"] = str(tmp_path)
    result = subprocess.run([str(flask), "crmkit", "check", str(mini_config)], capture_output=True, text=True,
                            env=full_env, cwd=tmp_path, timeout=120, check=False)
    assert (result.returncode, result.stdout) == (0, f"{mini_config}: OK (4 entities, 25 fields)\n"), result.stderr
    migrated = subprocess.run([str(flask), "--app", "crmkit.wsgi", "crmkit", "migrate", "--apply"],
                              capture_output=True, text=True, env={**full_env, "CRMKIT_CONFIG": str(mini_config)},
                              cwd=tmp_path, timeout=120, check=False)
    assert migrated.returncode == 0, migrated.stderr
    assert "Applied" in migrated.stdout
