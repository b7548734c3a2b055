"""The sample config's roles (sample_configs/retail_crm/roles.yaml) give each
role of DOMAIN.md its window, and the demo seed makes a user per role whose
records differ from the others'."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from conftest import SAMPLE_CONFIG
from crmkit.errors import Unauthorized
from crmkit.loading import load_config as load
from crmkit.permissions import ACTIONS, Permissions
from test_cli import db_env
from test_cli_people import run

ROLES = ("admin", "sales_manager", "sales_rep", "service_rep", "marketer", "analyst", "executive", "finance")
SALES_ENTITIES = ("lead", "customer", "contact", "opportunity", "activity", "contract")
MONEY_ENTITIES = ("contract", "receivable_plan", "payment", "invoice")


@pytest.fixture(scope="module")
def permissions() -> Permissions:
    spec, _pm, types = load(SAMPLE_CONFIG)
    return Permissions(spec, types)


def explain(permissions: Permissions, role: str) -> dict:
    return permissions.explain([role])


def test_sample_defines_a_role_for_every_user_of_the_domain(permissions):
    assert tuple(permissions.roles) == ROLES
    for role in permissions.roles.values():
        assert role.label.get("zh") and role.label.get("en") and role.description, role.name


@pytest.mark.parametrize("role", ROLES)
def test_every_role_reads_users_and_teams_for_the_pickers(permissions, role):
    matrix = explain(permissions, role)
    assert matrix["user"]["actions"]["read"] == "all"
    assert matrix["team"]["actions"]["read"] == "all"


def test_sales_rep_works_their_own_customers(permissions):
    matrix = explain(permissions, "sales_rep")
    for entity in SALES_ENTITIES:
        # Customers have a pool (公海): a rep reads their own and the pool's.
        assert matrix[entity]["actions"]["read"] == ("own+pool" if entity == "customer" else "own"), entity
        assert matrix[entity]["actions"]["create"] == "all", entity
        assert matrix[entity]["actions"]["assign"] == "none", entity
    assert matrix["customer"]["actions"]["delete"] == "none"
    assert matrix["opportunity"]["actions"]["transition"] == "own"
    assert matrix["product"]["actions"] == {**dict.fromkeys(ACTIONS, "none"), "read": "all"}
    assert matrix["product"]["fields"]["cost"] == "hidden"
    assert matrix["user"]["actions"]["update"] == "none"


def test_sales_manager_runs_the_department_tree(permissions):
    matrix = explain(permissions, "sales_manager")
    for entity in SALES_ENTITIES:
        actions = matrix[entity]["actions"]
        assert actions["update"] == actions["export"] == "team_tree", entity
        assert actions["read"] == ("team_tree+pool" if entity == "customer" else "team_tree"), entity
        assert actions["assign"] == "team_tree", entity
    assert matrix["contract"]["fields"]["approval_status"] == "read"


def test_service_rep_sees_every_customer_but_not_their_money(permissions):
    matrix = explain(permissions, "service_rep")
    assert matrix["customer"]["actions"]["read"] == "all"
    assert matrix["customer"]["fields"]["total_spent"] == "masked"
    assert matrix["contract"]["fields"]["amount"] == "masked"
    for entity in ("ticket", "feedback", "return_visit"):
        assert matrix[entity]["actions"]["create"] == "all", entity
    assert matrix["ticket"]["actions"]["read"] == "all"
    assert matrix["payment"]["actions"]["read"] == "none"


def test_marketer_owns_leads_and_campaigns_and_sees_customers_without_their_phone(permissions):
    matrix = explain(permissions, "marketer")
    for entity in ("lead", "campaign"):
        assert set(matrix[entity]["actions"].values()) == {"all"} | ({"none"} if entity == "campaign" else set())
    assert matrix["customer"]["actions"]["read"] == "all"
    assert matrix["customer"]["actions"]["update"] == "none"
    assert matrix["customer"]["fields"]["mobile"] == "masked"


@pytest.mark.parametrize("role", ["analyst", "executive"])
def test_analyst_and_executive_read_everything_and_change_nothing(permissions, role):
    matrix = explain(permissions, role)
    assert set(matrix.pop("audit")["actions"].values()) == {"none"}  # the security log is the admin's
    for entity, entry in matrix.items():
        assert entry["actions"]["read"] == "all", entity
        changes = {a: s for a, s in entry["actions"].items() if a not in ("read", "export")}
        assert set(changes.values()) == {"none"}, (entity, changes)
    assert matrix["customer"]["actions"]["export"] == ("all" if role == "analyst" else "none")


def test_analyst_sees_no_mobile(permissions):
    matrix = explain(permissions, "analyst")
    for entity in ("customer", "contact", "lead"):
        assert matrix[entity]["fields"]["mobile"] == "masked", entity


def test_finance_keeps_the_money_and_not_sales_notes(permissions):
    matrix = explain(permissions, "finance")
    for entity in MONEY_ENTITIES[1:]:
        assert {matrix[entity]["actions"][a] for a in ("read", "create", "update", "delete", "export")} == {"all"}
    assert matrix["contract"]["actions"]["update"] == "all"
    assert matrix["contract"]["actions"]["delete"] == "none"
    assert matrix["customer"]["actions"]["read"] == "all"
    assert matrix["customer"]["actions"]["update"] == "none"
    assert matrix["lead"]["fields"]["notes"] == "hidden"
    assert matrix["activity"]["fields"]["content"] == "hidden"


def test_admin_may_do_everything_including_users(permissions):
    matrix = explain(permissions, "admin")
    assert matrix.pop("audit")["actions"]["read"] == "all"  # the audit trail is only read
    for entity, entry in matrix.items():
        assert set(entry["actions"].values()) == {"all"}, entity
        assert entry["fields"] == {}, entity


# ---------------------------------------------------------------- demo seed

def test_demo_seed_gives_each_role_its_window(tmp_path, database_url, make_app):
    env = {**db_env(database_url, tmp_path / "instance"), "CRMKIT_DEMO_PASSWORD": "demo-from-env"}
    result = run(["seed", str(SAMPLE_CONFIG), "--size", "40", "--users", "3"], env)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[1] == ("Demo users: executive (executive), manager (sales_manager), rep_east (sales_rep), "
                        "rep_south (sales_rep), service (service_rep), marketer (marketer), analyst (analyst), "
                        "finance (finance)")
    assert lines[2] == "Their password: demo-from-env"
    assert lines[3].startswith("Extra sales reps: rep001 to rep003 (3), without a password")

    app = make_app(SAMPLE_CONFIG)
    rt = app.extensions["crmkit"]
    directory = rt.directory
    ids = {name: directory.user(name)["id"] for name in ("manager", "rep_east", "rep_south", "service", "marketer",
                                                       "rep001", "rep002", "rep003")}
    east = directory.user("rep_east")
    assert east["superior_id"] == ids["manager"]
    assert east["team_id"] == directory.team("sales_east")["id"]
    assert directory.user("rep002")["team_id"] == directory.team("sales_south")["id"]
    assert directory.team("sales_east")["parent_id"] == directory.team("sales")["id"]
    directory.login("rep_east", "demo-from-env")
    with pytest.raises(Unauthorized):
        directory.login("rep001", "demo-from-env")  # extra reps have no password

    tables = rt.tables.entities
    with rt.engine.connect() as conn:
        customers = dict(conn.execute(sa.select(tables["customer"].c.id, tables["customer"].c.owner_id)).all())
        contacts = conn.execute(sa.select(tables["contact"].c.customer_id, tables["contact"].c.owner_id)).all()
        tickets = conn.execute(sa.select(tables["ticket"].c.owner_id, tables["ticket"].c.team_id)).all()
        lead_owners = set(conn.execute(sa.select(tables["lead"].c.owner_id)).scalars())
    reps = {ids[n] for n in ("rep_east", "rep_south", "rep001", "rep002", "rep003")}
    assert set(customers.values()) == reps | {None}  # spread over every rep, some left in the pool (公海)
    pooled = sum(1 for owner in customers.values() if owner is None)
    assert all(owner == customers[customer] for customer, owner in contacts
               if customers[customer] is not None)  # a rep's contacts are of their customers
    assert tickets and set(tickets) == {(ids["service"], directory.team("service")["id"])}
    assert lead_owners <= reps | {ids["marketer"]} and ids["marketer"] in lead_owners

    def seen(user: str, entity: str = "customer") -> dict:
        return app.test_client(user=user).get(f"/api/v1/{entity}?count=true&limit=200").get_json()

    mine = seen("rep_east")
    assert mine["count"] == sum(1 for owner in customers.values() if owner == ids["rep_east"]) + pooled
    assert 0 < mine["count"] < len(customers)
    assert seen("manager")["count"] == len(customers)  # every rep is in the sales tree
    service = seen("service")
    assert service["count"] == len(customers)
    assert {c["total_spent"] for c in service["data"] if c.get("total_spent") is not None} == {"***"}
    marketer = seen("marketer")
    assert all("****" in c["mobile"] for c in marketer["data"] if c.get("mobile"))
    assert seen("rep_east", "ticket")["count"] == 0
    assert seen("service", "ticket")["count"] == len(tickets)

    again = run(["seed", str(SAMPLE_CONFIG), "--size", "40", "--if-empty"], env)
    assert again.stdout == "Demo data already present; nothing seeded.\n"
