"""Refs to the platform's users and teams ({type: ref, to: user}): an engineer,
an approver, a desk. A foreign key to the user or team table; a write names an
active user (or a team) the writer may read; filters by id and through the
ref, within the caller's read scope of users."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from conftest import is_error, make_config, token_for
from crmkit.permissions import SYSTEM

API = "/api/v1"

FILES = {
    "app.yaml": "app: service\n",
    "entities/ticket.yaml": """
        entity: ticket
        owned: true
        fields:
          subject: {type: string, required: true}
          engineer: {type: ref, to: user, label: {en: Engineer, zh: 工程师}}
          desk: {type: ref, to: team}
    """,
    "roles.yaml": """
        roles:
          agent:
            entities:
              ticket: {read: all, create: true, update: all}
              user: {read: team}
              team: {read: all}
          outsider:
            entities:
              ticket: {read: all, create: true}
    """,
}


@pytest.fixture
def app(make_app, tmp_path):
    app = make_app(make_config(tmp_path / "config", FILES))
    directory = app.extensions["crmkit"].directory
    east = directory.create_team({"name": "east", "label": "East"}, SYSTEM)
    west = directory.create_team({"name": "west", "label": "West"}, SYSTEM)
    app.people = {  # type: ignore[attr-defined]
        "east": east["id"], "west": west["id"],
        "wang": directory.create_user({"username": "wang", "roles": ["agent"], "team_id": east["id"]}, SYSTEM)["id"],
        "li": directory.create_user({"username": "li", "roles": ["agent"], "team_id": east["id"]}, SYSTEM)["id"],
        "zhao": directory.create_user({"username": "zhao", "roles": ["agent"], "team_id": west["id"]}, SYSTEM)["id"],
        "gone": directory.create_user({"username": "gone", "roles": ["agent"], "team_id": east["id"],
                                       "active": False}, SYSTEM)["id"],
    }
    return app


def client_of(app, username: str, roles: tuple[str, ...] = ("agent",)):
    client = app.test_client(user=None)
    client.environ_base["HTTP_AUTHORIZATION"] = "Bearer " + token_for(app, username, roles)
    return client


def test_the_table_has_foreign_keys_to_the_user_and_team_tables(app):
    table = app.extensions["crmkit"].tables.entities["ticket"]
    assert {fk.target_fullname for fk in table.c.engineer_id.foreign_keys} == {"crmkit_user.id"}
    assert {fk.target_fullname for fk in table.c.desk_id.foreign_keys} == {"crmkit_team.id"}


def test_a_ticket_names_its_engineer_and_desk(app):
    client = client_of(app, "wang")
    people = app.people
    response = client.post(f"{API}/ticket", json={"subject": "Printer", "engineer": people["li"],
                                                  "desk": people["west"]})
    assert response.status_code == 201, response.get_json()
    ticket = response.get_json()["data"]
    assert (ticket["engineer"], ticket["desk"]) == (people["li"], people["west"])
    again = client.get(f"{API}/ticket/{ticket['id']}").get_json()["data"]
    assert again["engineer"] == people["li"]


def test_an_engineer_must_be_an_active_user_the_writer_may_read(app):
    client = client_of(app, "wang")
    people = app.people
    for engineer, message in ((99999, "user 99999 does not exist or is disabled"),
                              (people["gone"], f"user {people['gone']} does not exist or is disabled"),
                              # wang reads the users of his own team only: zhao is in the west team
                              (people["zhao"], f"user {people['zhao']} does not exist or is disabled")):
        error = is_error(client.post(f"{API}/ticket", json={"subject": "x", "engineer": engineer}), 409,
                         "reference_not_found")
        assert error["details"] == {"engineer": [message]}
    error = is_error(client.post(f"{API}/ticket", json={"subject": "x", "desk": 99999}), 409)
    assert error["details"] == {"desk": ["team 99999 does not exist"]}


def test_a_writer_who_may_not_read_users_can_name_none(app):
    client = client_of(app, "stranger", ("outsider",))
    error = is_error(client.post(f"{API}/ticket", json={"subject": "x", "engineer": app.people["li"]}), 409)
    assert list(error["details"]) == ["engineer"]
    assert client.post(f"{API}/ticket", json={"subject": "x"}).status_code == 201


def test_the_system_may_name_any_active_user(app):
    records = app.extensions["crmkit"].records
    ticket = records.create("ticket", {"subject": "x", "engineer": app.people["zhao"]}, SYSTEM)
    assert ticket["engineer_id"] == app.people["zhao"]


def test_filters_by_engineer_and_through_the_engineer(app):
    records = app.extensions["crmkit"].records
    people = app.people
    made = {who: records.create("ticket", {"subject": who, "engineer": people[who]}, SYSTEM)["id"]
            for who in ("wang", "li", "zhao")}
    admin = app.test_client()

    def subjects(client, query: str) -> list[str]:
        response = client.get(f"{API}/ticket?{query}&sort=subject")
        assert response.status_code == 200, response.get_json()
        return [row["subject"] for row in response.get_json()["data"]]

    assert subjects(admin, f"engineer={people['li']}") == ["li"]
    assert subjects(admin, f"engineer__in={people['li']},{people['zhao']}") == ["li", "zhao"]
    assert subjects(admin, f"engineer.team_id={people['east']}") == ["li", "wang"]
    assert subjects(admin, "engineer.username=zhao") == ["zhao"]
    assert subjects(admin, "engineer.username__startswith=WA") == ["wang"]
    # Through the ref, only the users the caller may read count: wang reads his own team's.
    wang = client_of(app, "wang")
    assert subjects(wang, f"engineer.team_id={people['west']}") == []
    assert subjects(wang, "engineer.username=zhao") == []
    assert subjects(wang, f"engineer={people['zhao']}") == ["zhao"]  # the ticket's own column
    assert len(made) == 3


def test_a_filter_through_the_engineer_names_a_field_of_users(app):
    admin = app.test_client()
    error = is_error(admin.get(f"{API}/ticket?engineer.password_hash=x"), 400, "invalid_filter")
    assert "password_hash" in error["message"]
    is_error(admin.get(f"{API}/ticket?engineer.team_id=abc"), 400, "invalid_filter")
    # A caller who may not read users cannot filter through a ref to them.
    stranger = client_of(app, "stranger", ("outsider",))
    is_error(stranger.get(f"{API}/ticket?engineer.username=li"), 400, "invalid_filter")


def test_openapi_says_the_ref_is_to_a_user(app):
    document = app.test_client().get(f"{API}/openapi.json").get_json()
    schemas = document["components"]["schemas"]
    engineer = next(s["properties"]["engineer"] for s in schemas.values()
                    if "engineer" in s.get("properties", {}))
    assert engineer["x-ref"] == "user"
    desk = next(s["properties"]["desk"] for s in schemas.values() if "desk" in s.get("properties", {}))
    assert desk["x-ref"] == "team"


def test_adding_a_user_ref_to_an_existing_entity_migrates(make_runtime, tmp_path):
    files = dict(FILES)
    files["entities/ticket.yaml"] = FILES["entities/ticket.yaml"].replace(
        "          engineer: {type: ref, to: user, label: {en: Engineer, zh: 工程师}}\n", "")
    config = make_config(tmp_path / "config", files)
    rt = make_runtime(config)
    rt.migrate()
    first = rt.records.create("ticket", {"subject": "before"}, SYSTEM)
    make_config(config, {"entities/ticket.yaml": FILES["entities/ticket.yaml"]})
    rt = make_runtime(config)
    rt.migrate()
    assert rt.plan().empty
    user = rt.directory.create_user({"username": "li", "roles": []}, SYSTEM)
    rt.records.update("ticket", first["id"], {"engineer": user["id"]}, SYSTEM, version=first["version"])
    with rt.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT subject, engineer_id FROM ticket")).all()
    assert [tuple(row) for row in stored] == [("before", user["id"])]


def test_the_sample_seeds_tickets_with_engineers_from_the_demo_users(make_app):
    from conftest import SAMPLE_CONFIG
    from crmkit.seed import seed

    app = make_app(SAMPLE_CONFIG)
    rt = app.extensions["crmkit"]
    assert rt.spec.entities["ticket"].fields["engineer"].to == "user"
    seed(rt, size=40, random_seed=5)
    tickets = app.test_client().get(f"{API}/ticket?limit=100").get_json()["data"]
    engineers = {ticket["engineer"] for ticket in tickets}
    service = {user["id"] for user in rt.directory.users() if "service_rep" in user["roles"]}
    assert tickets and engineers and engineers <= service
    filtered = app.test_client().get(f"{API}/ticket?engineer.username=service&count=true").get_json()
    assert filtered["count"] == len(tickets)
