"""The crmkit commands about people: users, passwords, the first admin, API
tokens, teams, and what roles allow (roles explain)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import MINI_FILES, SAMPLE_CONFIG, make_config
from crmkit.cli import cli
from crmkit.cli import people as cli_people
from crmkit.errors import Unauthorized
from crmkit.runtime import build
from crmkit.settings import Settings
from test_cli import db_env, process

ROLES_YAML = """
    roles:
      sales_rep:
        label: {en: Sales rep, zh: 销售人员}
        entities:
          customer: {read: own, create: true, update: own}
          user: {read: all}
        fields: {customer.balance: hidden}
      sales_manager:
        entities:
          customer: {read: team_tree, create: true, update: team_tree, assign: team_tree}
"""
GENERATED = re.compile(r"^Password: (\S+)  \(shown once", re.MULTILINE)


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    """A migrated database for a config with roles; CRMKIT_CONFIG names the config."""
    config = make_config(tmp_path / "config", {**MINI_FILES, "roles.yaml": ROLES_YAML})
    values = {**db_env(database_url, tmp_path / "instance"), "CRMKIT_CONFIG": str(config)}
    assert run(["migrate", str(config), "--apply"], values).exit_code == 0
    return values


@pytest.fixture
def directory(env, engines):
    """The directory of the same database, to check what the commands did."""
    rt = engines.add(build(env["CRMKIT_CONFIG"], Settings(env["CRMKIT_DATABASE_URL"],
                                                          Path(env["CRMKIT_INSTANCE"]))))
    return rt.directory


def run(args: list[str], env: dict | None = None, input: str | None = None):
    return CliRunner().invoke(cli, args, env=env, input=input, catch_exceptions=False)


def logs_in(directory, username: str, password: str) -> bool:
    try:
        directory.login(username, password)
    except Unauthorized:
        return False
    return True


@pytest.fixture
def terminal(monkeypatch):
    """Someone at a terminal answers the prompts."""
    monkeypatch.setattr(cli_people, "_on_terminal", lambda: True)


# ---------------------------------------------------------------- users

def test_user_create_with_everything_then_list(env, directory):
    assert run(["team", "create", "sales"], env).exit_code == 0
    boss = run(["user", "create", "wang", "--role", "sales_manager", "--password", "boss-pass-1", "--team", "sales"],
               env)
    assert boss.exit_code == 0, boss.output
    assert boss.stdout == "Created user wang (id 1, roles: sales_manager).\n"
    rep = run(["user", "create", "li", "--role", "sales_rep", "--role", "sales_manager", "--password", "rep-pass-1",
               "--team", "sales", "--superior", "wang", "--display-name", "李雷", "--email", "li@example.cn",
               "--mobile", "13812345678"], env)
    assert rep.exit_code == 0, rep.output
    assert "Password" not in rep.stdout  # given, so not printed
    listed = run(["user", "list"], env)
    assert listed.stdout.splitlines() == [
        "id  username  display name  roles                    team   superior  active",
        "1   wang      wang          sales_manager            sales            yes",
        "2   li        李雷          sales_rep,sales_manager  sales  wang      yes",
    ]
    li = directory.user("li")
    assert (li["email"], li["mobile"]) == ("li@example.cn", "13812345678")
    assert logs_in(directory, "li", "rep-pass-1")


def test_user_create_off_a_terminal_prints_a_generated_password_once(env, directory):
    result = run(["user", "create", "li", "--role", "sales_rep"], env)
    assert result.exit_code == 0, result.output
    password = GENERATED.search(result.stdout).group(1)
    assert len(password) >= 16
    assert result.stdout.count(password) == 1
    assert password not in run(["user", "list"], env).stdout
    assert logs_in(directory, "li", password)


def test_user_create_as_a_process_generates_the_password(env):
    result = process(["user", "create", "li", "--role", "sales_rep"], env)
    assert result.returncode == 0, result.stderr
    assert GENERATED.search(result.stdout)


def test_user_create_on_a_terminal_asks_twice_without_echo(env, directory, terminal):
    typed = "short\nshort\nsecret-one\nsecret-two\nsecret-one\nsecret-one\n"
    result = run(["user", "create", "li", "--role", "sales_rep"], env, input=typed)
    assert result.exit_code == 0, result.output
    assert "Error: a password needs at least 8 characters" in result.output
    assert "Error: The two entered values do not match." in result.output
    assert "secret-one" not in result.output  # hidden input, and not printed back
    assert not GENERATED.search(result.stdout)
    assert logs_in(directory, "li", "secret-one")


def test_user_create_unknown_role_suggests_one_before_asking_a_password(env, terminal):
    result = run(["user", "create", "li", "--role", "sales_repp"], env)
    assert result.exit_code == 1
    assert result.stderr == ("error: unknown role 'sales_repp' (did you mean 'sales_rep'?); "
                             "the roles are: sales_rep, sales_manager, admin\n")
    assert "Password" not in result.output


@pytest.mark.parametrize("args, message", [
    (["--password", "short"], "error: a password needs at least 8 characters\n"),
    (["--team", "nowhere", "--password", "long-enough"], "error: no team 'nowhere'\n"),
    (["--superior", "nobody", "--password", "long-enough"], "error: no superior 'nobody'\n"),
])
def test_user_create_refusals_are_user_errors(env, args, message):
    result = run(["user", "create", "li", "--role", "sales_rep", *args], env)
    assert (result.exit_code, result.stderr) == (1, message)


def test_user_name_taken(env):
    assert run(["user", "create", "li", "--role", "sales_rep", "--password", "long-enough"], env).exit_code == 0
    again = run(["user", "create", "LI", "--role", "sales_rep", "--password", "long-enough"], env)
    assert (again.exit_code, again.stderr) == (1, "error: another user is named 'LI'\n")


def test_user_commands_need_a_config(env):
    without = {k: v for k, v in env.items() if k != "CRMKIT_CONFIG"}
    result = run(["user", "list"], without)
    assert result.exit_code == 2
    assert "Missing argument 'CONFIG': name the config directory, or set CRMKIT_CONFIG." in result.stderr
    assert run(["user", "list", env["CRMKIT_CONFIG"]], without).exit_code == 0


def test_user_commands_before_migrate_say_what_to_do(tmp_path, mini_config):
    env = {**db_env(f"sqlite:///{tmp_path / 'fresh.sqlite3'}", tmp_path), "CRMKIT_CONFIG": str(mini_config)}
    result = run(["user", "list"], env)
    assert (result.exit_code, result.stderr) == (
        1, f"error: the database has no users yet: run crmkit migrate {mini_config} --apply first\n")


def test_set_password_given_generated_and_prompted(env, directory, terminal):
    assert run(["user", "create", "li", "--role", "sales_rep", "--password", "first-pass"], env).exit_code == 0
    given = run(["user", "set-password", "li", "--password", "second-pass"], env)
    assert given.stdout == "Password of li changed; their browser sessions were ended.\n"
    assert logs_in(directory, "li", "second-pass") and not logs_in(directory, "li", "first-pass")
    prompted = run(["user", "set-password", "li"], env, input="third-pass\nthird-pass\n")
    assert prompted.exit_code == 0 and "third-pass" not in prompted.output
    assert logs_in(directory, "li", "third-pass")


def test_set_password_off_a_terminal_generates_one(env, directory):
    assert run(["user", "create", "li", "--role", "sales_rep", "--password", "first-pass"], env).exit_code == 0
    result = run(["user", "set-password", "li"], env)
    password = GENERATED.search(result.stdout).group(1)
    assert logs_in(directory, "li", password)
    missing = run(["user", "set-password", "nobody", "--password", "whatever-1"], env)
    assert (missing.exit_code, missing.stderr) == (1, "error: no user 'nobody'\n")


def test_disabled_user_cannot_log_in_nor_use_tokens(env, directory):
    assert run(["user", "create", "li", "--role", "sales_rep", "--password", "long-enough"], env).exit_code == 0
    token = run(["token", "create", "li"], env).stdout.strip()
    assert directory.actor_for_token(token).name == "li"
    result = run(["user", "disable", "li"], env)
    assert result.stdout.startswith("Disabled li:")
    assert not logs_in(directory, "li", "long-enough")
    assert directory.actor_for_token(token) is None
    assert run(["user", "list"], env).stdout.splitlines()[1].endswith("no")
    assert run(["user", "enable", "li"], env).stdout == "Enabled li.\n"
    assert directory.actor_for_token(token).name == "li"


# ---------------------------------------------------------------- the first admin

def test_create_admin_if_missing_prints_the_password_once_then_nothing_new(env, directory):
    first = run(["user", "create-admin", "--if-missing"], env)
    assert first.exit_code == 0, first.output
    found = re.fullmatch(r"\n=+\n  The first admin:  user admin  password (\S+)\n  Shown this once: keep it now "
                         r"\(change it with: crmkit user set-password admin\)\.\n=+\n\n", first.stdout)
    assert found, first.stdout
    assert directory.user("admin")["roles"] == ["admin"]
    assert logs_in(directory, "admin", found.group(1))
    second = run(["user", "create-admin", "--if-missing"], env)
    assert (second.exit_code, second.stdout) == (0, "An admin exists (admin).\n")
    without_flag = run(["user", "create-admin"], env)
    assert (without_flag.exit_code, without_flag.stderr) == (1, "error: another user is named 'admin'\n")


def test_create_admin_takes_the_password_from_the_environment(env, directory):
    result = run(["user", "create-admin", "--if-missing"], {**env, "CRMKIT_ADMIN_PASSWORD": "from-the-env"})
    assert result.stdout == "Created the first admin: admin (password from CRMKIT_ADMIN_PASSWORD)\n"
    assert logs_in(directory, "admin", "from-the-env")


def test_create_admin_is_not_needed_when_another_user_has_the_role(env, directory):
    assert run(["user", "create", "boss", "--role", "admin", "--password", "long-enough"], env).exit_code == 0
    result = run(["user", "create-admin", "--if-missing"], env)
    assert result.stdout == "An admin exists (boss).\n"


# ---------------------------------------------------------------- tokens

def test_token_create_prints_only_the_token_on_stdout(env, directory):
    assert run(["user", "create", "li", "--role", "sales_rep", "--password", "long-enough"], env).exit_code == 0
    result = run(["token", "create", "li", "--name", "laptop", "--expires-days", "30"], env)
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert result.stdout == token + "\n" and token.startswith("crm_")
    assert re.fullmatch(r"Token 1 'laptop' for li \(expires \d{4}-\d\d-\d\d \d\d:\d\d UTC\); shown once, "
                        r"keep it now:\n", result.stderr)
    assert directory.actor_for_token(token).name == "li"
    listed = run(["token", "list", "li"], env).stdout.splitlines()
    assert listed[0].split() == ["id", "name", "starts", "with", "created", "expires", "last", "used", "status"]
    assert listed[1].startswith(f"1   laptop  {token[:8]}…")
    assert listed[1].endswith("active")
    assert token not in "\n".join(listed)


def test_token_revoke(env, directory):
    assert run(["user", "create", "li", "--role", "sales_rep", "--password", "long-enough"], env).exit_code == 0
    token = run(["token", "create", "li"], env).stdout.strip()
    revoked = run(["token", "revoke", "li", "1"], env)
    assert revoked.stdout == "Revoked token 1 of li.\n"
    assert directory.actor_for_token(token) is None
    assert run(["token", "list", "li"], env).stdout.splitlines()[1].endswith("revoked")
    again = run(["token", "revoke", "li", "1"], env)
    assert (again.exit_code, again.stderr) == (1, "error: no active token 1\n")


@pytest.mark.parametrize("args", [["token", "create", "li", "--expires-days", "0"], ["token", "revoke", "li", "one"]])
def test_token_bad_usage(env, args):
    assert run(args, env).exit_code == 2


def test_token_for_nobody(env):
    result = run(["token", "create", "nobody"], env)
    assert (result.exit_code, result.stderr) == (1, "error: no user 'nobody'\n")


# ---------------------------------------------------------------- teams

def test_teams_are_listed_as_a_tree(env):
    for args in (["hq", "--label", "总部"], ["sales", "--label", "销售部", "--parent", "hq"],
                 ["sales_east", "--label", "华东销售组", "--parent", "sales"], ["sales_south", "--parent", "sales"],
                 ["service", "--label", "客服部", "--parent", "hq"], ["branch"]):
        result = run(["team", "create", *args], env)
        assert result.exit_code == 0, result.output
    assert result.stdout == "Created team branch (id 6).\n"
    run(["user", "create", "li", "--role", "sales_rep", "--team", "sales_east", "--password", "long-enough"], env)
    assert run(["team", "list"], env).stdout.splitlines() == [
        "branch  (0 users)",
        "hq  总部  (0 users)",
        "├── sales  销售部  (0 users)",
        "│   ├── sales_east  华东销售组  (1 user)",
        "│   └── sales_south  (0 users)",
        "└── service  客服部  (0 users)",
    ]


@pytest.mark.parametrize("args, message", [
    (["sales", "--parent", "nowhere"], "error: no parent 'nowhere'\n"),
    (["Sales"], "error: a team name is snake_case (a-z, 0-9, _)\n"),
])
def test_team_create_refusals(env, args, message):
    result = run(["team", "create", *args], env)
    assert (result.exit_code, result.stderr) == (1, message)


def test_no_teams_yet(env):
    assert run(["team", "list"], env).stdout == "No teams yet: crmkit team create NAME [--parent P].\n"


# ---------------------------------------------------------------- roles

def _matrix(output: str) -> dict[str, dict[str, str]]:
    lines = output.split("\n\n")[1].splitlines()
    header = lines[0].split()
    return {cells[0]: dict(zip(header[1:], cells[1:])) for cells in (line.split() for line in lines[1:])}


def test_roles_explain_sample_sales_rep():
    result = run(["roles", "explain", str(SAMPLE_CONFIG), "--role", "sales_rep"])
    assert result.exit_code == 0, result.output
    matrix = _matrix(result.stdout)
    assert matrix["customer"] == {"read": "own+pool", "create": "yes", "update": "own", "delete": "-", "export": "-",
                                  "import": "-", "assign": "-", "transition": "own"}
    assert matrix["product"]["read"] == "all" and matrix["product"]["update"] == "-"
    assert matrix["user"]["read"] == "all"
    assert "\nNo access: return_visit, audit\n" in result.stdout
    assert re.search(r"^product\.cost +hidden$", result.stdout, re.MULTILINE)


def test_roles_explain_gives_the_union_of_roles_as_json():
    result = run(["roles", "explain", str(SAMPLE_CONFIG), "--role", "sales_rep", "--role", "marketer", "--json"])
    document = json.loads(result.stdout)
    assert document["roles"] == ["sales_rep", "marketer"]
    customer = document["entities"]["customer"]
    assert customer["actions"]["read"] == "all"  # marketer's all is wider than the rep's own
    assert customer["actions"]["update"] == "own"
    # masked for the marketer, but the rep may write it: the most open level wins
    assert "mobile" not in customer["fields"]
    marketer = json.loads(run(["roles", "explain", str(SAMPLE_CONFIG), "--role", "marketer", "--json"]).stdout)
    assert marketer["entities"]["customer"]["fields"]["mobile"] == "masked"


def test_roles_explain_unknown_role(mini_config):
    result = run(["roles", "explain", str(SAMPLE_CONFIG), "--role", "sales_rpe"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: unknown role 'sales_rpe' (did you mean 'sales_rep'?); the roles are: ")
    builtin = run(["roles", "explain", str(mini_config), "--role", "admin"])
    assert _matrix(builtin.stdout)["customer"]["delete"] == "all"


def test_roles_explain_broken_config_is_a_user_error(tmp_path):
    config = make_config(tmp_path / "config", {**MINI_FILES, "roles.yaml": "roles:\n  rep:\n    entities: "
                                               "{customer: {reed: own}}\n"})
    result = run(["roles", "explain", str(config), "--role", "rep"])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == "roles.yaml:3:27: unknown action 'reed' (did you mean 'read'?)"


def test_roles_list():
    result = run(["roles", "list", str(SAMPLE_CONFIG)])
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert names == ["admin", "sales_manager", "sales_rep", "service_rep", "marketer", "analyst", "executive",
                     "finance"]
    assert "销售人员" in result.stdout


@pytest.mark.parametrize("args", [
    ["user"], ["user", "create", "li"], ["user", "create"], ["user", "frobnicate"], ["team", "create"],
    ["roles", "explain", str(SAMPLE_CONFIG)], ["roles", "explain"],
])
def test_people_commands_bad_usage_exits_2(args, env):
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_seed_on_a_config_without_sales_roles_owns_nothing(tmp_path, database_url, directory):
    config = make_config(tmp_path / "no_roles", MINI_FILES)
    env = db_env(database_url, tmp_path / "instance")
    result = run(["seed", str(config), "--size", "5", "--users", "2"], env)
    assert result.exit_code == 0, result.output
    assert result.stderr == "No extra sales reps: the config has no sales_rep role.\n"
    assert "Demo users" not in result.stdout
    assert directory.team("sales_east")["name"] == "sales_east"  # the teams are there to use all the same
