"""Every read through the query builder: the recycle bin, related records, a
record's history, users, teams and the audit trail speak the grammar of entity
lists (limit, cursor, sort, filters, count, fields) with its error shapes and
the caller's scope; hidden fields are never selected; list items leave out
fields without a value; statements are built once per shape."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from conftest import MINI_FILES, as_test_app, is_error, make_config, token_for
from crmkit.permissions import SYSTEM, audit_changes

API = "/api/v1"

ROLES_YAML = """
    roles:
      rep:
        entities:
          customer: {read: own, create: true, update: own, delete: own}
          order: {read: own, create: true}
          product: {read: all}
          user: {read: team}
          team: {read: own}
          audit: {read: own}
        fields:
          customer.balance: hidden
          customer.mobile: masked
      viewer:
        entities:
          customer: {read: all}
          order: {read: all}
          audit: {read: all}
        fields:
          customer.balance: hidden
          customer.email: masked
"""
PEOPLE = [("rep1", ["rep"], "east"), ("rep2", ["rep"], "east"), ("rep3", ["rep"], "west"),
          ("viewer", ["viewer"], "hq")]


@pytest.fixture(scope="module")
def shop(module_database_url, tmp_path_factory):
    """Teams hq > east, west; three reps and a viewer; five customers owned by
    each rep (one with an order trail and favourite products); deleted ones."""
    from crmkit.app import create_app
    from crmkit.settings import Settings

    root = tmp_path_factory.mktemp("reads")
    config = make_config(root / "config", {**MINI_FILES, "roles.yaml": ROLES_YAML})
    app = as_test_app(create_app(config, Settings(database_url=module_database_url, instance_dir=root / "instance")))
    rt = app.extensions["crmkit"]
    hq = rt.directory.create_team({"name": "hq", "label": "总部"}, SYSTEM)
    for team in ("east", "west"):
        rt.directory.create_team({"name": team, "label": team.title(), "parent_id": hq["id"]}, SYSTEM)
    users = {name: rt.directory.create_user({"username": name, "roles": roles, "team_id": team,
                                             "display_name": f"{name} user"}, SYSTEM)
             for name, roles, team in PEOPLE}
    for name in users:
        token_for(app, name)
    customers: dict[str, list[int]] = {}
    for name in ("rep1", "rep2", "rep3"):
        customers[name] = [rt.records.create("customer", {
            "name": f"{name} c{n}", "mobile": f"1391{users[name]['id']:03d}{n:04d}", "balance": f"{n}.00",
            "email": f"{name}{n}@example.com" if n % 2 else None, "owner_id": users[name]["id"]}, SYSTEM)["id"]
            for n in range(5)]
    rep1 = rt.directory.actor(rt.directory.user("rep1"))
    first = customers["rep1"][0]
    rt.records.update("customer", first, {"age": 30}, rep1)
    for n in range(3):
        rt.records.update("customer", first, {"balance": f"{10 + n}.00", "mobile": f"1380000{n:04d}"}, SYSTEM)
    orders = [rt.records.create("order", {"customer": first, "total": f"{n}.00",
                                          "ordered_at": f"2026-01-0{n + 1}T10:00:00Z"}, rep1)["id"] for n in range(5)]
    products = [rt.records.create("product", {"name": f"p{n}", "sku": f"SKU{n}"}, SYSTEM)["id"] for n in range(4)]
    rt.records.link("customer", first, "favourites", products, SYSTEM)
    for name in ("rep1", "rep2"):
        for record_id in customers[name][3:]:
            rt.records.delete("customer", record_id, SYSTEM)
    yield app, users, customers, orders, products
    rt.engine.dispose()


def client_of(app, name):
    return app.test_client(user=name)


def walk(client, url: str) -> list[dict]:
    """Every item of a list, following next_url."""
    items, pages = [], 0
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert set(body) <= {"data", "next", "next_url", "count"}
        assert (body["next"] is None) == (body["next_url"] is None)
        items += body["data"]
        url = body["next_url"]
        pages += 1
        assert pages < 100
    return items


# ---------------------------------------------------------------- recycle bin

def test_recycle_bin_pages_with_the_list_grammar(shop):
    app, users, customers, *_ = shop
    admin = app.test_client()
    deleted = set(customers["rep1"][3:] + customers["rep2"][3:])
    items = walk(admin, f"{API}/recycle_bin?entity=customer&limit=1")
    assert {i["id"] for i in items} == deleted and len(items) == 4
    stamps = [i["deleted_at"] for i in items]
    assert stamps == sorted(stamps, reverse=True)  # newest deletion first
    body = admin.get(f"{API}/recycle_bin?entity=customer&count=true&name__startswith=rep1&sort=name").get_json()
    assert body["count"] == 2 and [i["name"] for i in body["data"]] == ["rep1 c3", "rep1 c4"]
    assert "deleted_by" not in body["data"][0]  # the system deleted them: no value, left out
    assert admin.get(f"{API}/recycle_bin?entity=customer&fields=name,deleted_by").get_json()["data"][0] \
        .keys() == {"id", "version", "name", "deleted_by"}
    is_error(admin.get(f"{API}/recycle_bin?entity=customer&limit=0"), 400, "invalid_parameter")
    is_error(admin.get(f"{API}/recycle_bin?entity=customer&nme=x"), 400, "invalid_filter")
    is_error(admin.get(f"{API}/recycle_bin?entity=customer&cursor=xyz"), 400, "invalid_cursor")
    is_error(admin.get(f"{API}/recycle_bin?entity=customer&sort=notes"), 400, "invalid_sort")


def test_recycle_bin_shows_what_the_caller_could_delete_without_hidden_fields(shop):
    app, users, customers, *_ = shop
    items = walk(client_of(app, "rep1"), f"{API}/recycle_bin?entity=customer&limit=1")
    assert {i["id"] for i in items} == set(customers["rep1"][3:])
    assert all("balance" not in i and i["mobile"].count("*") == 4 for i in items)
    is_error(client_of(app, "rep1").get(f"{API}/recycle_bin?entity=customer&balance=3.00"), 400, "invalid_filter")
    is_error(client_of(app, "viewer").get(f"{API}/recycle_bin?entity=customer"), 403, "forbidden")


# ---------------------------------------------------------------- related records

def test_related_records_page_with_cursor_count_and_filters(shop):
    app, users, customers, orders, products = shop
    admin = app.test_client()
    first = customers["rep1"][0]
    items = walk(admin, f"{API}/customer/{first}/orders?limit=2&sort=ordered_at")
    assert [i["id"] for i in items] == orders
    body = admin.get(f"{API}/customer/{first}/orders?count=true&total__gte=3.00&limit=1").get_json()
    assert body["count"] == 2 and len(body["data"]) == 1 and body["next"]
    favourites = walk(admin, f"{API}/customer/{first}/favourites?limit=3&sort=name")
    assert [i["name"] for i in favourites] == ["p0", "p1", "p2", "p3"]
    assert admin.get(f"{API}/customer/{first}/favourites?count=true&name=p2").get_json()["count"] == 1
    assert admin.get(f"{API}/customer/{customers['rep2'][0]}/favourites").get_json()["data"] == []
    is_error(admin.get(f"{API}/customer/{first}/orders?limit=x"), 400, "invalid_parameter")
    is_error(admin.get(f"{API}/customer/{first}/orders?total__near=1"), 400, "invalid_filter")
    is_error(admin.get(f"{API}/customer/{first}/nothing"), 404)  # only the config's relations are routes
    is_error(admin.get(f"{API}/customer/{customers['rep1'][3]}/orders"), 404, "not_found")  # in the bin


def test_related_records_follow_both_scopes(shop):
    app, users, customers, orders, products = shop
    first = customers["rep1"][0]
    assert [i["id"] for i in walk(client_of(app, "rep1"), f"{API}/customer/{first}/orders")] == orders[::-1]
    is_error(client_of(app, "rep2").get(f"{API}/customer/{first}/orders"), 404, "not_found")  # not their customer
    viewer = client_of(app, "viewer")
    assert len(walk(viewer, f"{API}/customer/{first}/orders?limit=2")) == 5
    is_error(viewer.get(f"{API}/customer/{first}/favourites"), 403, "forbidden")  # no read on product


# ---------------------------------------------------------------- history

def test_history_pages_newest_first_with_filters_and_count(shop):
    app, users, customers, *_ = shop
    admin = app.test_client()
    first = customers["rep1"][0]
    entries = walk(admin, f"{API}/customer/{first}/history?limit=2")
    assert [e["action"] for e in entries] == ["update"] * 5 + ["create"]  # four changes and a link
    assert [e["id"] for e in entries] == sorted((e["id"] for e in entries), reverse=True)
    assert entries[-1]["changes"]["name"] == [None, "rep1 c0"]
    body = admin.get(f"{API}/customer/{first}/history?action=update&count=true&limit=1").get_json()
    assert body["count"] == 5 and len(body["data"]) == 1
    assert admin.get(f"{API}/customer/{first}/history?actor=rep1&count=true").get_json()["count"] == 1
    oldest = admin.get(f"{API}/customer/{first}/history?sort=id&fields=action").get_json()["data"][0]
    assert oldest.keys() == {"id", "action"}
    is_error(admin.get(f"{API}/customer/{first}/history?limit=1000"), 400, "invalid_parameter")
    is_error(admin.get(f"{API}/customer/{first}/history?entity=order"), 400, "invalid_filter")
    is_error(admin.get(f"{API}/customer/{first}/history?at__gte=yesterday"), 400, "invalid_filter")
    is_error(admin.get(f"{API}/customer/{first}/history?sort=changes"), 400, "invalid_sort")


def test_history_shows_values_as_the_reader_may_see_them(shop):
    app, users, customers, *_ = shop
    first = customers["rep1"][0]
    client_of(app, "rep2").delete(f"{API}/customer/{first}")  # a refusal (404 for them): not history
    entries = walk(client_of(app, "rep1"), f"{API}/customer/{first}/history")
    assert all("balance" not in (e["changes"] or {}) for e in entries)
    changed = [e["changes"]["mobile"][1] for e in entries if "mobile" in (e["changes"] or {})]
    assert len(changed) == 4 and all(value.count("*") == 4 for value in changed)
    assert all(e["action"] != "denied" for e in entries)
    is_error(client_of(app, "rep2").get(f"{API}/customer/{first}/history"), 404, "not_found")


def test_audit_changes_is_one_rule_for_history_and_the_trail(shop):
    app, users, customers, *_ = shop
    rt = app.extensions["crmkit"]
    customer = rt.spec.entities["customer"]
    changes = {"balance": ["1.00", "2.00"], "email": [None, "a@b.cn"], "name": ["a", "b"], "favourites": [[], [3]]}
    viewer = rt.permissions.of(rt.directory.actor(rt.directory.user("viewer")))
    assert audit_changes(viewer, customer, changes) == {"email": [None, "a***@b.cn"], "name": ["a", "b"],
                                                        "favourites": [[], [3]]}
    rep = rt.permissions.of(rt.directory.actor(rt.directory.user("rep1")))
    assert audit_changes(rep, customer, changes) is None  # not a reader of every customer
    assert "balance" not in audit_changes(rep, customer, changes, record_read=True)
    assert audit_changes(rep, None, {"roles": [[], ["rep"]]}) == {"roles": [[], ["rep"]]}


# ---------------------------------------------------------------- users, teams, audit

def test_users_list_speaks_the_entity_grammar(shop):
    app, users, *_ = shop
    admin = app.test_client()
    everyone = walk(admin, f"{API}/users?limit=2")
    assert {u["username"] for u in everyone} >= {"rep1", "rep2", "rep3", "viewer", "admin"}
    assert all("password_hash" not in u for u in everyone)
    east = admin.get(f"{API}/users?team_id={users['rep1']['team_id']}&sort=-username&count=true").get_json()
    assert [u["username"] for u in east["data"]] == ["rep2", "rep1"] and east["count"] == 2
    assert [u["username"] for u in admin.get(f"{API}/users?q=rep3").get_json()["data"]] == ["rep3"]
    assert admin.get(f"{API}/users?active=false").get_json()["data"] == []
    assert {u["username"] for u in admin.get(f"{API}/users?roles__contains=viewer").get_json()["data"]} == {"viewer"}
    only = admin.get(f"{API}/users?fields=username,email&username=rep1").get_json()["data"]
    assert only == [{"id": users["rep1"]["id"], "username": "rep1", "email": None}]
    is_error(admin.get(f"{API}/users?active=maybe"), 400, "invalid_filter")
    is_error(admin.get(f"{API}/users?team_id=east"), 400, "invalid_filter")
    is_error(admin.get(f"{API}/users?password_hash=x"), 400, "invalid_filter")
    is_error(admin.get(f"{API}/users?sort=password_hash"), 400, "invalid_sort")
    is_error(admin.get(f"{API}/users?limit=-1"), 400, "invalid_parameter")
    is_error(admin.get(f"{API}/users?cursor=!!"), 400, "invalid_cursor")


def test_users_and_teams_lists_keep_to_the_callers_scope(shop):
    app, users, *_ = shop
    rep = client_of(app, "rep1")
    assert {u["username"] for u in walk(rep, f"{API}/users?limit=1")} == {"rep1", "rep2"}
    assert rep.get(f"{API}/users?team_id={users['rep3']['team_id']}&count=true").get_json()["count"] == 0
    assert [t["name"] for t in walk(rep, f"{API}/teams")] == ["east"]
    teams = walk(app.test_client(), f"{API}/teams?limit=1&sort=name")
    assert [t["name"] for t in teams] == ["east", "hq", "west"]
    hq = teams[1]["id"]
    assert {t["name"] for t in app.test_client().get(f"{API}/teams?parent_id={hq}").get_json()["data"]} == \
        {"east", "west"}
    is_error(client_of(app, "viewer").get(f"{API}/teams"), 403, "forbidden")


def test_audit_list_pages_by_cursor_within_its_scope(shop):
    app, users, customers, *_ = shop
    admin = app.test_client()
    first = customers["rep1"][0]
    entries = walk(admin, f"{API}/audit?entity=customer&record_id={first}&limit=2")
    assert [e["action"] for e in entries][-1] == "create" and len(entries) >= 5
    assert [e["id"] for e in entries] == sorted((e["id"] for e in entries), reverse=True)
    newest = entries[0]["id"]
    older = admin.get(f"{API}/audit?entity=customer&record_id={first}&id__lt={newest}&count=true").get_json()
    assert older["count"] == len(entries) - 1  # id__lt replaces the old before=
    is_error(admin.get(f"{API}/audit?before={newest}"), 400, "invalid_filter")
    mine = walk(client_of(app, "rep1"), f"{API}/audit?limit=3")
    assert mine and all(e["actor_id"] == users["rep1"]["id"] for e in mine)
    viewer = client_of(app, "viewer").get(f"{API}/audit?entity=customer&record_id={first}&action=update")
    assert all("balance" not in e["changes"] for e in viewer.get_json()["data"])
    rep_sees = client_of(app, "rep1").get(f"{API}/audit?entity=customer&action=update").get_json()["data"]
    assert rep_sees and all(e["changes"] is None for e in rep_sees)  # own entries, but not every customer's values


# ---------------------------------------------------------------- what is selected

def _selected(statement: sa.Select) -> set[str]:
    return set(statement.selected_columns.keys())


def test_hidden_fields_are_never_selected(shop):
    app, users, customers, *_ = shop
    rt = app.extensions["crmkit"]
    rep = rt.directory.actor(rt.directory.user("rep1"))
    access = rt.permissions.of(rep)
    customer = rt.spec.entities["customer"]
    with rt.engine.connect() as conn:
        for source, args in ((customer, []), (rt.queries.binned["customer"], []),
                             (customer, [("fields", "name,mobile")]), (customer, [("sort", "-name")])):
            request = rt.queries.parse_list(source, args, access)
            statement, params = rt.queries.page_statement(conn, source, request, actor=rep)
            selected = _selected(statement)
            assert "balance" not in selected and "balance" not in str(statement)
            assert {"id", "version"} <= selected and ("mobile" in selected)  # masked: read, shown masked
        slim = rt.queries.parse_list(customer, [("fields", "name"), ("sort", "age")], access)
        statement, _ = rt.queries.page_statement(conn, customer, slim, actor=rep)
        assert _selected(statement) == {"id", "version", "name", "age"}  # age: the cursor needs it
        row = rt.queries.read_one(conn, customer, customers["rep1"][0], actor=rep)
        assert "balance" not in row and row["name"] == "rep1 c0"
        export, _ = rt.queries.export_statement(customer, rt.queries.parse_list(customer, [], access), rep, 10)
        assert "balance" not in _selected(export)
    response = client_of(app, "rep1").get(f"{API}/customer/{customers['rep1'][0]}?fields=name")
    assert response.get_json()["data"] == {"id": customers["rep1"][0], "version": 5, "name": "rep1 c0"}


def test_list_statements_are_built_once_per_shape(shop):
    app, users, *_ = shop
    rt = app.extensions["crmkit"]
    customer = rt.spec.entities["customer"]
    access = rt.permissions.of(SYSTEM)

    def statement(*args):
        with rt.engine.connect() as conn:
            request = rt.queries.parse_list(customer, list(args), access)
            return rt.queries.page_statement(conn, customer, request, actor=SYSTEM)

    gold, gold_params = statement(("level", "gold"), ("limit", "5"))
    silver, silver_params = statement(("level", "silver"), ("limit", "7"))
    assert gold is silver and gold_params["_f0"] == "gold" and silver_params["_f0"] == "silver"
    assert silver_params["_limit"] == 8
    assert statement(("level__ne", "gold"))[0] is not gold
    assert statement(("level__in", "gold,silver"))[0] is statement(("level__in", "bronze"))[0]
    assert statement(("age__isnull", "true"))[0] is not statement(("age__isnull", "false"))[0]


# ---------------------------------------------------------------- the payload

def test_list_items_leave_out_fields_without_a_value_unless_asked(shop):
    app, users, customers, *_ = shop
    admin = app.test_client()
    record_id = customers["rep1"][2]  # no email, no age
    item = admin.get(f"{API}/customer?id={record_id}").get_json()["data"][0]
    assert "email" not in item and "age" not in item and item["name"] == "rep1 c2"
    assert {"id", "version", "created_at", "owner_id"} <= item.keys()
    asked = admin.get(f"{API}/customer?id={record_id}&fields=name,email").get_json()["data"][0]
    assert asked == {"id": record_id, "version": 1, "name": "rep1 c2", "email": None}
    whole = admin.get(f"{API}/customer/{record_id}").get_json()["data"]
    assert whole["email"] is None and "age" in whole  # one record: every field, as a form needs


@pytest.mark.parametrize("moment", ["2026-01-31T08:30:00+00:00", "2026-01-31T08:30:00.250000+00:00",
                                    "1999-12-31T23:59:59.000001+00:00", "0001-01-01T00:00:00+00:00"])
def test_timestamps_read_as_text_are_what_the_field_type_writes(moment):
    """Lists on SQLite read timestamps as their API text; it must be the text
    DateTimeType.dump makes of the same stored value."""
    import datetime as dt

    from sqlalchemy.dialects import sqlite

    from crmkit.fieldtypes import DateTimeType
    from crmkit.sqltypes import UTCDateTime, UTCDateTimeText

    value = dt.datetime.fromisoformat(moment)
    dialect = sqlite.dialect()
    stored = UTCDateTime().bind_processor(dialect)(value)
    read = UTCDateTimeText().result_processor(dialect, None)
    assert read(stored) == DateTimeType().dump(None, value)
    assert read(stored.split(".")[0]) == DateTimeType().dump(None, value.replace(microsecond=0))
