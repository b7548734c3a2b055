"""Roles at work through the API: data scopes in every read path, actions and
scopes on every write, field rules (hidden, masked, read-only) on every path a
value could leak through, IDOR (others' ids), sharing, users and teams, and
what /me/permissions tells a client."""

from __future__ import annotations

import csv
import io

import pytest
import sqlalchemy as sa

from conftest import MINI_FILES, OVERWRITE, as_test_app, is_error, make_config, token_for
from crmkit.errors import Forbidden, NotFound
from crmkit.permissions import SYSTEM

API = "/api/v1"

ROLES_YAML = """
    roles:
      rep:
        label: {en: Sales rep, zh: 销售人员}
        entities:
          customer: {read: own, create: true, update: own, delete: none, assign: none}
          order: {read: own, create: true, update: own}
          product: {read: all}
          user: {read: all}
        fields:
          customer.mobile: masked
          customer.balance: hidden
          customer.notes: read
      manager:
        entities:
          "*": {read: all}
          customer: {read: team_tree, create: true, update: team_tree, delete: team, export: team_tree,
                     assign: team_tree}
          user: {read: team_tree}
        fields:
          customer.balance: read
      chief:
        entities:
          customer: {read: subordinates, update: subordinates, transition: subordinates}
        fields:
          customer.level: read
      auditor:
        entities:
          "*": {read: all, export: all}
        fields:
          customer.mobile: masked
          customer.email: masked
          customer.balance: masked
          customer.extra: hidden
      nobody:
        description: grants nothing
"""

WORKFLOW_YAML = """
    workflow: membership
    entity: customer
    field: level
    states: [bronze, silver, gold]
    transitions:
      - {name: upgrade, from: bronze, to: silver, require: [email]}
      - {name: crown, from: silver, to: gold, roles: [manager], when: "age >= 18"}
      - {name: reset, from: "*", to: bronze, when: "weekday(now()) > 7"}
"""

#  hq
#  └── sales            boss (manager), mate (rep)
#      ├── east         rep (rep), east2 (rep)
#      └── west         west (rep)
#  service              helper (rep, reports to rep), stranger (rep)
ORG = [  # username, roles, team, superior
    ("boss", ["manager"], "sales", None),
    ("mate", ["rep"], "sales", "boss"),
    ("rep", ["rep"], "east", "boss"),
    ("east2", ["rep"], "east", "boss"),
    ("west", ["rep"], "west", "boss"),
    ("helper", ["rep"], "service", "rep"),
    ("stranger", ["rep"], "service", None),
    ("chief", ["chief"], "hq", None),
    ("auditor", ["auditor"], "hq", None),
    ("nobody", ["nobody"], "hq", None),
    ("both", ["rep", "auditor"], "east", None),
]


@pytest.fixture(scope="module")
def org(module_database_url, tmp_path_factory):
    """An app on the mini config with roles, the org above and one customer owned by each user."""
    from crmkit.app import create_app
    from crmkit.settings import Settings

    root = tmp_path_factory.mktemp("perm")
    config = make_config(root / "config", {**MINI_FILES, "roles.yaml": ROLES_YAML,
                                            "workflows/membership.yaml": WORKFLOW_YAML})
    app = as_test_app(create_app(config, Settings(database_url=module_database_url, instance_dir=root / "instance")))
    rt = app.extensions["crmkit"]
    directory = rt.directory
    for name, label, parent in (("hq", "总部", None), ("sales", "销售部", "hq"), ("east", "华东", "sales"),
                                ("west", "华南", "sales"), ("service", "客服部", "hq")):
        directory.create_team({"name": name, "label": label, "parent_id": parent}, SYSTEM)
    users = {}
    for name, roles, team, superior in ORG:
        users[name] = directory.create_user({"username": name, "roles": roles, "team_id": team,
                                             "superior_id": superior}, SYSTEM)
        token_for(app, name)
    owned = {}
    for name, user in users.items():
        owned[name] = rt.records.create("customer", {"name": f"of {name}", "mobile": f"1380000{user['id']:04d}",
                                                     "email": f"{name}@example.com", "balance": "100.00",
                                                     "notes": "secret plans", "extra": {"k": 1},
                                                     "owner_id": user["id"]}, SYSTEM)["id"]
    yield app, users, owned
    rt.engine.dispose()


def client_of(app, name):
    return app.test_client(user=name)


def visible_ids(app, name, entity="customer", query=""):
    response = client_of(app, name).get(f"{API}/{entity}?limit=100{query}")
    assert response.status_code == 200, response.get_json()
    return {r["id"] for r in response.get_json()["data"]}


# ---------------------------------------------------------------- scopes

EXPECTED_READ = {
    "rep": {"rep"},
    "mate": {"mate"},
    "boss": {"boss", "mate", "rep", "east2", "west", "both"},  # sales and below
    "chief": {"chief"},  # nobody reports to the chief
    "auditor": set(ORG_NAMES := [o[0] for o in ORG]),
    "nobody": None,
    "both": set(ORG_NAMES),
}


@pytest.mark.parametrize("name", list(EXPECTED_READ))
def test_list_get_and_count_agree_with_the_scope(org, name):
    app, users, owned = org
    expected = EXPECTED_READ[name]
    client = client_of(app, name)
    if expected is None:
        is_error(client.get(f"{API}/customer"), 403, "forbidden")
        for record_id in owned.values():
            is_error(client.get(f"{API}/customer/{record_id}"), 404)
        return
    wanted = {owned[n] for n in expected}
    assert visible_ids(app, name) == wanted
    assert client.get(f"{API}/customer?count=true&limit=1").get_json()["count"] == len(wanted)
    for owner, record_id in owned.items():
        response = client.get(f"{API}/customer/{record_id}")
        assert response.status_code == (200 if owner in expected else 404), (owner, response.get_json())


def test_subordinates_follow_the_reporting_chain(org):
    app, users, owned = org
    rt = app.extensions["crmkit"]
    rt.directory.update_user(users["stranger"]["id"], {"superior_id": users["chief"]["id"]}, SYSTEM)
    try:
        assert visible_ids(app, "chief") == {owned["chief"], owned["stranger"]}
    finally:
        rt.directory.update_user(users["stranger"]["id"], {"superior_id": None}, SYSTEM)
    assert visible_ids(app, "chief") == {owned["chief"]}


def test_search_filters_and_related_lists_stay_in_scope(org):
    app, users, owned = org
    assert visible_ids(app, "rep", query="&q=of") == {owned["rep"]}
    assert visible_ids(app, "rep", query="&name__startswith=of") == {owned["rep"]}
    # An order of the rep's that points at a stranger's customer cannot be made (the customer does not exist for them)
    client = client_of(app, "rep")
    error = is_error(client.post(f"{API}/order", json={"customer": owned["stranger"],
                                                      "ordered_at": "2026-01-01T00:00:00Z"}), 409)
    assert error["details"] == {"customer": [f"Customer {owned['stranger']} does not exist"]}
    order = client.post(f"{API}/order", json={"customer": owned["rep"], "ordered_at": "2026-01-01T00:00:00Z"})
    assert order.status_code == 201
    # related list of a customer outside the scope: 404, not an empty list
    is_error(client.get(f"{API}/customer/{owned['stranger']}/orders"), 404)
    assert client.get(f"{API}/customer/{owned['rep']}/orders").status_code == 200


def test_filter_through_a_ref_applies_the_targets_scope(org):
    app, users, owned = org
    rt = app.extensions["crmkit"]
    boss = client_of(app, "boss")  # reads every order ("*": read all) but customers only in sales
    rt.records.create("order", {"customer": owned["stranger"], "ordered_at": "2026-02-01T00:00:00Z", "total": 7},
                      SYSTEM)
    all_orders = boss.get(f"{API}/order?limit=100&total=7").get_json()["data"]
    assert all_orders, "the boss reads every order"
    through = boss.get(f"{API}/order?limit=100&total=7&customer.name=of stranger").get_json()["data"]
    assert through == []  # the stranger's customer is outside the boss's customer scope


# ---------------------------------------------------------------- writes

def test_update_in_scope_works_outside_is_404_or_403(org):
    app, users, owned = org
    rep = client_of(app, "rep")
    assert rep.patch(f"{API}/customer/{owned['rep']}", json={"age": 40}, headers=OVERWRITE).status_code == 200
    is_error(rep.patch(f"{API}/customer/{owned['mate']}", json={"age": 40}, headers=OVERWRITE), 404)
    is_error(rep.delete(f"{API}/customer/{owned['rep']}"), 403, "forbidden")  # delete: none, but they can see it
    auditor = client_of(app, "auditor")  # reads everything, changes nothing
    error = is_error(auditor.patch(f"{API}/customer/{owned['rep']}", json={"age": 41},
                                   headers=OVERWRITE), 403, "forbidden")
    assert "change" in error["message"]
    is_error(auditor.post(f"{API}/customer", json={"name": "x"}), 403, "forbidden")
    boss = client_of(app, "boss")
    assert boss.patch(f"{API}/customer/{owned['west']}", json={"age": 42}, headers=OVERWRITE).status_code == 200
    is_error(boss.patch(f"{API}/customer/{owned['stranger']}", json={"age": 42}, headers=OVERWRITE), 404)
    # delete: team (sales only, not the sub-teams)
    is_error(boss.delete(f"{API}/customer/{owned['west']}"), 403, "forbidden")


def test_denials_are_audited(org):
    app, users, owned = org
    rt = app.extensions["crmkit"]
    client_of(app, "auditor").delete(f"{API}/customer/{owned['rep']}")
    audit = rt.tables.audit
    with rt.engine.connect() as conn:
        row = conn.execute(sa.select(audit).where(audit.c.action == "denied", audit.c.actor == "auditor")
                           .order_by(audit.c.id.desc())).mappings().first()
    assert row is not None and row["entity"] == "customer" and row["record_id"] == owned["rep"]
    assert row["changes"] == {"action": "delete"}


def test_idor_guessing_ids(org):
    """Every way to touch a record by id answers 404 outside the scope."""
    app, users, owned = org
    rep = client_of(app, "rep")
    target = owned["stranger"]
    for method, url, body in [
        ("get", f"{API}/customer/{target}", None),
        ("patch", f"{API}/customer/{target}", {"name": "mine now", "version": 1}),
        ("delete", f"{API}/customer/{target}", None),
        ("get", f"{API}/customer/{target}/history", None),
        ("get", f"{API}/customer/{target}/orders", None),
        ("get", f"{API}/customer/{target}/collaborators", None),
        ("post", f"{API}/customer/{target}/collaborators", {"user_id": users["rep"]["id"], "access": "write"}),
        ("post", f"{API}/customer/{target}/favourites", {"ids": [1]}),
        ("patch", f"{API}/customer/{target}", {"owner_id": users["rep"]["id"], "version": 1}),
    ]:
        response = getattr(rep, method)(url, json=body) if body is not None else getattr(rep, method)(url)
        assert response.status_code in (403, 404), (method, url, response.status_code)
        if response.status_code == 403:  # only for an action their role lacks altogether
            message = response.get_json()["error"]["message"]
            assert "assign" in message or "delete" in message
        else:
            assert "stranger" not in response.get_data(as_text=True)
    rt = app.extensions["crmkit"]
    with rt.engine.connect() as conn:
        row = rt.queries.fetch(conn, rt.spec.entities["customer"], target, actor=SYSTEM)
    assert row["name"] == "of stranger" and row["owner_id"] == users["stranger"]["id"]


def test_assign_within_the_assign_scope(org):
    app, users, owned = org
    rt = app.extensions["crmkit"]
    record = rt.records.create("customer", {"name": "to hand over", "owner_id": users["mate"]["id"]}, SYSTEM)
    boss = client_of(app, "boss")
    # to someone outside the boss's team tree: refused, and the record stays
    error = is_error(boss.patch(f"{API}/customer/{record['id']}", json={"owner_id": users["stranger"]["id"]},
                                headers=OVERWRITE), 409, "reference_not_found")
    assert "owner_id" in error["details"]
    moved = boss.patch(f"{API}/customer/{record['id']}", json={"owner_id": users["west"]["id"]}, headers=OVERWRITE)
    assert moved.status_code == 200
    data = moved.get_json()["data"]
    assert data["owner_id"] == users["west"]["id"] and data["team_id"] == users["west"]["team_id"]
    # a rep may not assign at all, not even what they own
    rep_record = rt.records.create("customer", {"name": "rep's", "owner_id": users["rep"]["id"]}, SYSTEM)
    is_error(client_of(app, "rep").patch(f"{API}/customer/{rep_record['id']}", json={"owner_id": users["east2"]["id"]},
                                         headers=OVERWRITE), 403, "forbidden")
    # nor create a record for someone else
    is_error(client_of(app, "rep").post(f"{API}/customer", json={"name": "x", "owner_id": users["east2"]["id"]}),
             403, "forbidden")
    created = client_of(app, "rep").post(f"{API}/customer", json={"name": "mine"}).get_json()["data"]
    assert created["owner_id"] == users["rep"]["id"] and created["team_id"] == users["rep"]["team_id"]


# ---------------------------------------------------------------- fields

def test_hidden_fields_leak_nowhere(org):
    app, users, owned = org
    rep = client_of(app, "rep")
    record = rep.get(f"{API}/customer/{owned['rep']}").get_json()["data"]
    assert "balance" not in record
    listed = rep.get(f"{API}/customer").get_json()["data"][0]
    assert "balance" not in listed
    # not through history either
    rt = app.extensions["crmkit"]
    rt.records.update("customer", owned["rep"], {"balance": "97531.86"}, SYSTEM)
    history = rep.get(f"{API}/customer/{owned['rep']}/history").get_json()["data"]
    assert history and all("balance" not in (h["changes"] or {}) for h in history)
    assert "97531" not in rep.get(f"{API}/customer/{owned['rep']}/history").get_data(as_text=True)
    # filtering, sorting, fields= and search on it are the same 400 as an unknown field
    for query, code in [("balance=100", "invalid_filter"), ("balance__gt=1", "invalid_filter"),
                        ("sort=balance", "invalid_sort"), ("fields=balance", "invalid_parameter")]:
        error = is_error(rep.get(f"{API}/customer?{query}"), 400, code)
        assert "unknown" in error["message"]
    error = is_error(rep.get(f"{API}/customer/{owned['rep']}?fields=name,balance"), 400)
    assert "unknown field 'balance'" in error["message"]
    # writing it: the same message as a field that does not exist, no did-you-mean to it
    error = is_error(rep.patch(f"{API}/customer/{owned['rep']}", json={"balance": "1"}, headers=OVERWRITE), 422)
    assert error["details"] == {"balance": ["unknown field"]}
    error = is_error(rep.patch(f"{API}/customer/{owned['rep']}", json={"balanc": "1"}, headers=OVERWRITE), 422)
    assert "balance" not in str(error)
    # and not in the OpenAPI document the rep gets
    document = rep.get(f"{API}/openapi.json").get_data(as_text=True)
    assert '"balance"' not in document


def test_masked_fields_are_masked_everywhere(org):
    app, users, owned = org
    auditor = client_of(app, "auditor")
    record = auditor.get(f"{API}/customer/{owned['rep']}").get_json()["data"]
    assert record["mobile"] == f"138****{users['rep']['id']:04d}"
    assert record["email"] == "r***@example.com"
    assert record["balance"] == "***"
    assert "extra" not in record
    # the list, the export and the history agree
    listed = {r["id"]: r for r in auditor.get(f"{API}/customer?limit=100").get_json()["data"]}
    assert listed[owned["rep"]]["mobile"].startswith("138****")
    text = auditor.get(f"{API}/customer/_export").get_data(as_text=True)
    assert "13800" not in text and "@example.com" in text and "rep@" not in text
    history = auditor.get(f"{API}/customer/{owned['rep']}/history").get_json()["data"]
    creation = history[-1]["changes"]
    assert creation["mobile"][1].startswith("138****") and creation["balance"][1] == "***"
    # masked values cannot be searched, filtered or sorted on (that would reveal them)
    is_error(auditor.get(f"{API}/customer?mobile__startswith=1380000"), 400, "invalid_filter")
    is_error(auditor.get(f"{API}/customer?sort=mobile"), 400, "invalid_sort")
    # a user with a role that shows it plainly sees it (union of roles)
    rep = client_of(app, "rep")
    assert rep.get(f"{API}/customer/{owned['rep']}").get_json()["data"]["mobile"].startswith("138****")
    both = client_of(app, "both")
    seen = both.get(f"{API}/customer/{owned['both']}").get_json()["data"]
    assert seen["mobile"].startswith("138****")  # masked in both roles: stays masked
    assert seen["extra"] == {"k": 1}  # hidden for the auditor, writable for the rep: the union shows it


def test_read_only_field_for_a_role(org):
    app, users, owned = org
    rep = client_of(app, "rep")
    error = is_error(rep.patch(f"{API}/customer/{owned['rep']}", json={"notes": "new"}, headers=OVERWRITE), 422)
    assert error["details"] == {"notes": ["is read-only for your role"]}
    error = is_error(rep.patch(f"{API}/customer/{owned['rep']}", json={"mobile": "13900000000"},
                               headers=OVERWRITE), 422)
    assert error["details"] == {"mobile": ["is read-only for your role"]}


# ---------------------------------------------------------------- sharing

def test_collaborators_read_and_write(org):
    app, users, owned = org
    boss = client_of(app, "boss")
    rep = client_of(app, "rep")
    target = owned["mate"]
    is_error(rep.get(f"{API}/customer/{target}"), 404)
    # the rep cannot share what they cannot update
    is_error(rep.post(f"{API}/customer/{target}/collaborators", json={"user_id": users["rep"]["id"]}), 404)
    shared = boss.post(f"{API}/customer/{target}/collaborators", json={"user_id": users["rep"]["id"], "access": "read"})
    assert shared.status_code == 200, shared.get_json()
    assert [c["username"] for c in shared.get_json()["data"]] == ["rep"]
    assert rep.get(f"{API}/customer/{target}").status_code == 200
    assert target in visible_ids(app, "rep")
    is_error(rep.patch(f"{API}/customer/{target}", json={"age": 5}, headers=OVERWRITE), 403, "forbidden")
    boss.post(f"{API}/customer/{target}/collaborators", json={"user_id": users["rep"]["id"], "access": "write"})
    assert rep.patch(f"{API}/customer/{target}", json={"age": 5}, headers=OVERWRITE).status_code == 200
    # a collaborator cannot share further, nor delete
    is_error(rep.post(f"{API}/customer/{target}/collaborators", json={"user_id": users["east2"]["id"]}), 403)
    is_error(rep.delete(f"{API}/customer/{target}"), 403)
    assert boss.delete(f"{API}/customer/{target}/collaborators/{users['rep']['id']}").status_code == 204
    is_error(rep.get(f"{API}/customer/{target}"), 404)
    history = boss.get(f"{API}/customer/{target}/history").get_json()["data"]
    assert any("collaborators" in (h["changes"] or {}) for h in history)


# ---------------------------------------------------------------- export

def test_export_follows_the_export_scope(org):
    app, users, owned = org
    is_error(client_of(app, "rep").get(f"{API}/customer/_export"), 403, "forbidden")
    response = client_of(app, "boss").get(f"{API}/customer/_export?fields=name,mobile&sort=name&lang=en")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0] == ["ID", "Version", "Name", "Mobile"]
    names = {r[2] for r in rows[1:]}
    assert "of stranger" not in names and "of west" in names
    rt = app.extensions["crmkit"]
    audit = rt.tables.audit
    with rt.engine.connect() as conn:
        exported = conn.execute(sa.select(audit).where(audit.c.action == "export", audit.c.actor == "boss")
                                ).mappings().all()
    assert exported and exported[-1]["changes"]["rows"] == len(rows) - 1


def test_export_neutralises_spreadsheet_formulas(org):
    app, users, owned = org
    rt = app.extensions["crmkit"]
    rt.records.create("customer", {"name": "=HYPERLINK(1)", "owner_id": users["boss"]["id"]}, SYSTEM)
    text = client_of(app, "boss").get(f"{API}/customer/_export?name__startswith==HYP").get_data(as_text=True)
    assert "'=HYPERLINK(1)" in text


# ---------------------------------------------------------------- me, users, teams

def test_me_permissions_says_what_the_screens_may_show(org):
    app, users, owned = org
    data = client_of(app, "rep").get(f"{API}/me/permissions").get_json()["data"]
    assert data["roles"] == ["rep"]
    customer = data["entities"]["customer"]
    assert customer["actions"]["read"] == "own" and customer["actions"]["delete"] == "none"
    assert customer["actions"]["create"] == "all"
    assert customer["fields"]["mobile"] == "masked" and customer["fields"]["notes"] == "read"
    assert "balance" not in customer["fields"] and "balance" not in customer["visible"]
    assert data["entities"]["contract"]["actions"]["read"] == "none"
    both = client_of(app, "both").get(f"{API}/me/permissions").get_json()["data"]
    assert both["roles"] == ["auditor", "rep"]
    assert both["entities"]["contract"]["actions"]["read"] == "all"


def test_users_and_teams_follow_their_own_scopes(org):
    app, users, owned = org
    boss = client_of(app, "boss")
    listed = {u["username"] for u in boss.get(f"{API}/users").get_json()["data"]}
    assert listed == {"boss", "mate", "rep", "east2", "west", "both"}
    assert all("password" not in str(u) for u in boss.get(f"{API}/users").get_json()["data"])
    is_error(boss.get(f"{API}/users/{users['stranger']['id']}"), 404)
    is_error(boss.post(f"{API}/users", json={"username": "new1"}), 403, "forbidden")
    # nobody can make themselves admin without assign on users
    is_error(client_of(app, "rep").patch(f"{API}/users/{users['rep']['id']}", json={"roles": ["admin"]}), 403)
    admin = app.test_client()
    made = admin.post(f"{API}/users", json={"username": "newbie", "roles": ["rep"], "team_id": "east"})
    assert made.status_code == 201, made.get_json()
    is_error(admin.post(f"{API}/users", json={"username": "x2", "roles": ["sales_reps"]}), 422)
    changed = admin.patch(f"{API}/users/{made.get_json()['data']['id']}", json={"roles": ["auditor"]})
    assert changed.get_json()["data"]["roles"] == ["auditor"]
    rt = app.extensions["crmkit"]
    audit = rt.tables.audit
    with rt.engine.connect() as conn:
        row = conn.execute(sa.select(audit).where(audit.c.action == "roles_changed")
                           .order_by(audit.c.id.desc())).mappings().first()
    assert row["changes"] == {"roles": [["rep"], ["auditor"]]} and row["actor"] == "admin"


def test_the_directory_checks_whoever_calls_it(org):
    """The admin console and automations call the directory, not the routes:
    the same grants, scopes and 404-or-403 hold there."""
    app, users, owned = org
    rt = app.extensions["crmkit"]
    directory = rt.directory
    rep, boss = (directory.actor(directory.user(name)) for name in ("rep", "boss"))
    with pytest.raises(Forbidden) as refused:
        directory.create_user({"username": "sneaky"}, rep)
    assert refused.value.denial == {"entity": "crmkit_user", "record_id": None, "action": "create",
                                    "actor_id": rep.id, "actor": "rep"}
    with pytest.raises(Forbidden) as refused:  # they read themselves, but may not give roles
        directory.update_user(rep.id, {"roles": ["admin"]}, rep)
    assert refused.value.denial["action"] == "assign"
    with pytest.raises(NotFound):  # outside the boss's read scope (team_tree of sales): no such user for them
        directory.update_user(users["stranger"]["id"], {"display_name": "x"}, boss)
    with pytest.raises(Forbidden):  # within it, but the boss has no update on users
        directory.update_user(users["mate"]["id"], {"display_name": "x"}, boss)
    with pytest.raises(Forbidden):
        directory.create_team({"name": "rogue"}, boss)
    with pytest.raises(Forbidden):
        directory.update_team(directory.team("sales")["id"], {"label": "x"}, boss)
    with pytest.raises(NotFound):
        directory.create_token(users["stranger"]["id"], "theirs", boss)
    with pytest.raises(Forbidden):
        directory.create_token(users["mate"]["id"], "theirs", boss)
    with pytest.raises(Forbidden):
        directory.tokens(users["mate"]["id"], boss)
    mine = directory.create_token(rep.id, "mine", rep)  # your own tokens are yours
    assert [t["name"] for t in directory.tokens(rep.id, rep)].count("mine") == 1
    directory.revoke_token(rep.id, mine.id, rep)
    assert directory.user("mate")["display_name"] == "mate"
    with pytest.raises(NotFound):
        directory.user("sneaky")
    made = directory.create_user({"username": "by_system", "roles": ["rep"]}, SYSTEM)  # the CLI's way
    assert directory.update_user(made["id"], {"roles": ["auditor"]}, SYSTEM)["roles"] == ["auditor"]


def test_refusals_of_people_writes_are_audited(org):
    app, users, owned = org
    rt = app.extensions["crmkit"]
    is_error(client_of(app, "boss").patch(f"{API}/users/{users['mate']['id']}", json={"email": "x@example.com"}),
             403, "forbidden")
    audit = rt.tables.audit
    with rt.engine.connect() as conn:
        row = conn.execute(sa.select(audit).where(audit.c.action == "denied", audit.c.actor == "boss")
                           .order_by(audit.c.id.desc())).mappings().first()
    assert (row["entity"], row["record_id"], row["changes"]) == ("crmkit_user", users["mate"]["id"],
                                                                 {"action": "update"})


def test_tokens_are_shown_once_and_revocable(org):
    app, users, owned = org
    rep = client_of(app, "rep")
    made = rep.post(f"{API}/me/tokens", json={"name": "script", "expires_days": 30})
    assert made.status_code == 201
    token = made.get_json()["data"]["token"]
    listed = rep.get(f"{API}/me/tokens").get_json()["data"]
    assert token not in str(listed) and any(t["name"] == "script" for t in listed)
    fresh = app.test_client(user=None)
    assert fresh.get(f"{API}/me", headers={"Authorization": f"Bearer {token}"}).get_json()["data"]["username"] == "rep"
    assert rep.delete(f"{API}/me/tokens/{made.get_json()['data']['id']}").status_code == 204
    is_error(fresh.get(f"{API}/me", headers={"Authorization": f"Bearer {token}"}), 401)


def test_a_role_without_grants_sees_nothing(org):
    app, users, owned = org
    nobody = client_of(app, "nobody")
    for entity in ("customer", "order", "product", "contract"):
        is_error(nobody.get(f"{API}/{entity}"), 403, "forbidden")
        is_error(nobody.post(f"{API}/{entity}", json={}), 403, "forbidden")
    is_error(nobody.get(f"{API}/users"), 403)
    assert nobody.get(f"{API}/me").status_code == 200


# ---------------------------------------------------------------- transitions

def test_transitions_need_the_transition_scope_roles_and_requirements(org):
    app, users, owned = org
    rt = app.extensions["crmkit"]
    boss, rep, chief = client_of(app, "boss"), client_of(app, "rep"), client_of(app, "chief")
    record = rt.records.create("customer", {"name": "member", "owner_id": users["chief"]["id"]}, SYSTEM)
    url = f"{API}/customer/{record['id']}"
    assert record["level"] == "bronze"
    # the state field changes only through transitions
    error = is_error(app.test_client().patch(url, json={"level": "gold"}, headers=OVERWRITE), 422)
    assert "transitions" in error["details"]["level"][0]
    # outside the scope: 404; the rep's role has no transition at all
    is_error(rep.post(f"{url}/transitions/upgrade"), 404)
    moves = chief.get(f"{url}/transitions").get_json()["data"]
    assert [(m["name"], m["allowed"]) for m in moves] == [("upgrade", False), ("reset", False)]
    assert moves[0]["missing"] == ["email"]
    error = is_error(chief.post(f"{url}/transitions/upgrade"), 409, "fields_required")
    assert error["details"] == {"email": ["is required to 'upgrade'"]}
    # the required field can come with the move; level is read-only for the chief, yet the move sets it
    moved = chief.post(f"{url}/transitions/upgrade", json={"email": "m@example.com"})
    assert moved.status_code == 200, moved.get_json()
    assert moved.get_json()["data"]["level"] == "silver"
    is_error(chief.post(f"{url}/transitions/upgrade"), 409, "invalid_transition")
    # crown: only managers, and only when the condition holds
    is_error(chief.post(f"{url}/transitions/crown"), 403, "forbidden")
    is_error(boss.post(f"{url}/transitions/crown"), 404)  # the chief's customer is outside the boss's scope
    admin = app.test_client()
    is_error(admin.post(f"{url}/transitions/crown"), 403)  # admin has no manager role: roles are roles
    rt.directory.update_user(users["boss"]["id"], {"team_id": "hq"}, SYSTEM)
    rt.records.update("customer", record["id"], {"owner_id": users["boss"]["id"]}, SYSTEM)
    is_error(boss.post(f"{url}/transitions/crown"), 403, "forbidden")  # boss reads but has no transition action
    rt.directory.update_user(users["boss"]["id"], {"team_id": "sales"}, SYSTEM)
    # a condition in the expression language that does not hold (never: weekdays are 1 to 7)
    error = is_error(admin.post(f"{url}/transitions/reset"), 409, "condition_failed")
    assert error["message"] == "'reset' needs: weekday(now()) > 7"
    assert admin.get(url).get_json()["data"]["level"] == "silver"
    is_error(client_of(app, "chief").post(f"{API}/customer/{owned['chief']}/transitions/nope"), 404,
             "unknown_transition")


def test_new_records_start_in_the_initial_state(org):
    app, users, owned = org
    error = is_error(app.test_client().post(f"{API}/customer", json={"name": "x", "level": "gold"}), 422)
    assert "starts in state 'bronze'" in error["details"]["level"][0]


def test_audit_trail_by_its_own_scope(org):
    app, users, owned = org
    client_of(app, "nobody").get(f"{API}/customer")  # a denial
    entries = app.test_client().get(f"{API}/audit?action=denied").get_json()["data"]
    assert any(e["actor"] == "nobody" and e["entity"] == "customer" for e in entries)
    is_error(client_of(app, "rep").get(f"{API}/audit"), 403, "forbidden")
    is_error(app.test_client().get(f"{API}/audit?record_id=x"), 400, "invalid_filter")  # as in entity lists
    rt = app.extensions["crmkit"]
    rt.records.update("customer", owned["rep"], {"balance": "777.00"}, SYSTEM)
    changes = app.test_client().get(f"{API}/audit?entity=customer&record_id={owned['rep']}").get_json()["data"]
    assert changes[0]["changes"] == {"balance": [changes[0]["changes"]["balance"][0], "777.00"]}


def test_recycle_bin_follows_the_delete_scope(org):
    app, users, owned = org
    rt = app.extensions["crmkit"]
    boss = client_of(app, "boss")
    mine = rt.records.create("customer", {"name": "boss bin", "owner_id": users["boss"]["id"]}, SYSTEM)
    other = rt.records.create("customer", {"name": "west bin", "owner_id": users["west"]["id"]}, SYSTEM)
    assert boss.delete(f"{API}/customer/{mine['id']}").status_code == 204
    rt.records.delete("customer", other["id"], SYSTEM)
    binned = {r["id"] for r in boss.get(f"{API}/recycle_bin?entity=customer").get_json()["data"]}
    assert mine["id"] in binned and other["id"] not in binned  # west is below the boss's delete scope (team)
    is_error(boss.post(f"{API}/recycle_bin/customer/{other['id']}/restore"), 403)  # readable, not theirs to restore
    assert boss.post(f"{API}/recycle_bin/customer/{mine['id']}/restore").status_code == 200
    is_error(client_of(app, "rep").get(f"{API}/recycle_bin?entity=customer"), 403, "forbidden")


def test_the_records_service_checks_whoever_calls_it(org):
    """An automation running as a user is held to that user's roles."""
    from crmkit.errors import Forbidden, NotFound, ValidationFailed

    app, users, owned = org
    rt = app.extensions["crmkit"]
    rep = rt.directory.actor(rt.directory.user("rep"))
    with pytest.raises(NotFound):
        rt.records.update("customer", owned["stranger"], {"age": 1}, rep)
    with pytest.raises(Forbidden):
        rt.records.delete("customer", owned["rep"], rep)
    with pytest.raises(ValidationFailed) as refused:
        rt.records.update("customer", owned["rep"], {"balance": "1.00"}, rep)
    assert refused.value.details == {"balance": ["unknown field"]}
    with pytest.raises(Forbidden):
        rt.records.create("contract", {"amount": "1.00"}, rep)
    from crmkit.permissions import ANONYMOUS

    with pytest.raises(Forbidden):
        rt.records.create("product", {"name": "x"}, ANONYMOUS)


def test_pages_of_own_and_shared_records_interleave(org):
    """Shared records join the list in their sort order, across pages, in the count too."""
    app, users, owned = org
    rt = app.extensions["crmkit"]
    admin = app.test_client()
    who = rt.directory.create_user({"username": "pager", "roles": ["rep"], "team_id": "west"}, SYSTEM)
    token_for(app, "pager")
    mine, shared = [], []
    for i in range(7):
        owner = who["id"] if i % 2 == 0 else users["stranger"]["id"]
        record = rt.records.create("customer", {"name": f"page {i}", "owner_id": owner}, SYSTEM)
        (mine if owner == who["id"] else shared).append(record["id"])
    for record_id in shared:
        admin.post(f"{API}/customer/{record_id}/collaborators", json={"user_id": who["id"], "access": "read"})
    client = client_of(app, "pager")
    for sort in ("-created_at", "name", "-name"):
        seen, url = [], f"{API}/customer?limit=2&sort={sort}&count=true"
        while url:
            body = client.get(url).get_json()
            assert body["count"] == 7
            seen += [r["name"] for r in body["data"]]
            url = body["next_url"]
        expected = sorted((f"page {i}" for i in range(7)), reverse=sort.startswith("-"))
        if sort == "-created_at":
            expected = [f"page {i}" for i in reversed(range(7))]
        assert seen == expected, sort
    assert client.get(f"{API}/customer?name=page 1").get_json()["data"][0]["id"] == shared[0]
