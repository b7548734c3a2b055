"""Tags and segments (issue 9, section 3): manual tags through the API, rule
tags evaluated set-based and kept current by writes, their history, tag
filters in lists, exports and counts, views' ``where`` as segments, and what
a user cannot learn through them. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from conftest import is_error, make_config
from crmkit.cli import cli
from crmkit.loading import load_config
from crmkit.metadata.problems import ConfigError
from crmkit.permissions import SYSTEM
from crmkit.tagging import TAG_TABLE

FILES = {
    "app.yaml": """
        app: shop
        timezone: Asia/Shanghai
    """,
    "entities/customer.yaml": """
        entity: customer
        label: {en: Customer, zh: 客户}
        title: name
        owned: true
        fields:
          name: {type: string, required: true}
          level: {type: enum, options: [a, b, c], default: b, index: true}
          credit_score: {type: integer}
          last_order_at: {type: datetime}
        relations:
          orders: {kind: one_to_many, entity: order, field: customer}
        list: {columns: [name, level], sort: "-created_at"}
    """,
    "entities/order.yaml": """
        entity: order
        label: {en: Order, zh: 订单}
        owned: true
        fields:
          customer: {type: ref, to: customer, required: true}
          total: {type: money, min: 0}
          status: {type: enum, options: [paid, refunded], default: paid}
          ordered_at: {type: datetime, required: true}
    """,
    "tags.yaml": """
        tags:
          loyal:
            entity: customer
            label: {en: Loyal, zh: 忠实客户}
            rule: "count(orders where status = 'paid' and total >= 100) >= 2"
            use: Two paid orders of 100 or more; thanked with a coupon.
            group: {en: Purchases, zh: 消费}
          trusted:
            entity: customer
            rule: "credit_score > 700"
            use: Good credit; may pay on account.
          sleeping:
            entity: customer
            rule: "last_order_at < now() - 90d"
            use: No order for 90 days; woken up with a message.
          vegetarian:
            entity: customer
            color: green
            use: Set by hand after a conversation.
          big_order:
            entity: order
            rule: "total >= 1000 and customer.level = 'a'"
            use: Checked by a manager before shipping.
    """,
    "views.yaml": """
        views:
          good_credit:
            entity: customer
            where: "credit_score > 700"
          mine_a:
            entity: customer
            filter: {level: a}
            where: "owner_id == me()"
            sort: name
          busy:
            entity: customer
            where: "count(orders) >= 2"
          for_managers:
            entity: customer
            roles: [manager]
            where: "level = 'a'"
    """,
    "roles.yaml": """
        roles:
          manager:
            entities:
              customer: {read: all, create: true, update: all, export: all}
              order: {read: all, create: true, update: all}
          rep:
            entities:
              customer: {read: own, create: true, update: own, export: own}
              order: {read: own, create: true}
            fields:
              customer.credit_score: hidden
          viewer:
            entities:
              customer: {read: all, export: all}
              order: {read: all}
    """,
}


@pytest.fixture
def shop(make_app, tmp_path: Path):
    from conftest import as_test_app

    app = as_test_app(make_app(make_config(tmp_path / "shop", FILES)))
    return app


def rt_of(app):
    return app.extensions["crmkit"]


def customer(app, user="admin", **values):
    response = app.test_client(user=user).post("/api/v1/customer", json={"name": "c", **values})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["data"]


def order(app, customer_id, total="150.00", status="paid", user="admin"):
    response = app.test_client(user=user).post("/api/v1/order", json={
        "customer": customer_id, "total": total, "status": status, "ordered_at": "2026-11-01T10:00:00Z"})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["data"]


def tagged(app, entity="customer", tag="loyal"):
    rt = rt_of(app)
    table = rt.tables.metadata.tables[TAG_TABLE]
    with rt.engine.connect() as conn:
        return set(conn.execute(sa.select(table.c.record_id).where(table.c.entity == entity, table.c.tag == tag))
                   .scalars())


def with_users(app):
    from conftest import token_for

    for name, role in (("mgr", "manager"), ("rep", "rep"), ("rep2", "rep"), ("viewer", "viewer")):
        token_for(app, name, (role,))


# ------------------------------------------------------------------ manual tags


def test_manual_tag_added_and_removed_through_the_api(shop):
    c = customer(shop)
    client = shop.test_client()
    response = client.post(f"/api/v1/customer/{c['id']}/tags/vegetarian")
    assert response.status_code == 200
    assert response.get_json() == {"data": {"tags": ["vegetarian"]}}
    assert client.get(f"/api/v1/customer/{c['id']}").get_json()["data"]["tags"] == ["vegetarian"]
    assert client.post(f"/api/v1/customer/{c['id']}/tags/vegetarian").status_code == 200  # again: no change
    response = client.delete(f"/api/v1/customer/{c['id']}/tags/vegetarian")
    assert response.get_json() == {"data": {"tags": []}}
    history = client.get(f"/api/v1/customer/{c['id']}/history").get_json()["data"]
    tag_entries = [(e["action"], e["changes"]) for e in history if e["action"].startswith("tag_")]
    assert tag_entries == [("tag_removed", {"tag": "vegetarian", "by": "user"}),
                           ("tag_added", {"tag": "vegetarian", "by": "user"})]


def test_unknown_tag_is_404_and_rule_tag_cannot_be_set_by_hand(shop):
    c = customer(shop)
    client = shop.test_client()
    is_error(client.post(f"/api/v1/customer/{c['id']}/tags/vegan"), 404, "unknown_tag")
    is_error(client.post(f"/api/v1/customer/{c['id']}/tags/big_order"), 404, "unknown_tag")  # another entity's
    is_error(client.post(f"/api/v1/customer/{c['id']}/tags/loyal"), 409, "rule_tag")
    is_error(client.delete(f"/api/v1/customer/{c['id']}/tags/loyal"), 409, "rule_tag")
    is_error(client.post("/api/v1/customer/999/tags/vegetarian"), 404)


def test_manual_tags_need_the_update_permission_on_the_record(shop):
    with_users(shop)
    mine = customer(shop, user="rep")
    theirs = customer(shop, user="rep2")
    rep = shop.test_client(user="rep")
    assert rep.post(f"/api/v1/customer/{mine['id']}/tags/vegetarian").status_code == 200
    is_error(rep.post(f"/api/v1/customer/{theirs['id']}/tags/vegetarian"), 404)  # out of scope: does not exist
    viewer = shop.test_client(user="viewer")
    is_error(viewer.post(f"/api/v1/customer/{mine['id']}/tags/vegetarian"), 403)
    is_error(viewer.delete(f"/api/v1/customer/{mine['id']}/tags/vegetarian"), 403)
    assert tagged(shop, tag="vegetarian") == {mine["id"]}


# ------------------------------------------------------------------ rule tags


def test_rule_tag_follows_writes_of_the_record_and_of_related_records(shop):
    c = customer(shop)
    assert c["tags"] == []
    first = order(shop, c["id"])
    assert tagged(shop) == set()
    second = order(shop, c["id"])
    assert tagged(shop) == {c["id"]}
    client = shop.test_client()
    assert client.get(f"/api/v1/customer/{c['id']}").get_json()["data"]["tags"] == ["loyal"]
    # a change of a related record the rule reads takes it off again, in the same write
    response = client.patch(f"/api/v1/order/{second['id']}", json={"status": "refunded", "version": 1})
    assert response.status_code == 200
    assert tagged(shop) == set()
    client.patch(f"/api/v1/order/{second['id']}", json={"status": "paid", "version": 2})
    assert tagged(shop) == {c["id"]}
    assert client.delete(f"/api/v1/order/{first['id']}").status_code == 204
    assert tagged(shop) == set()
    # the record's own fields
    client.patch(f"/api/v1/customer/{c['id']}", json={"credit_score": 800, "version": c["version"]})
    assert tagged(shop, tag="trusted") == {c["id"]}
    history = client.get(f"/api/v1/customer/{c['id']}/history").get_json()["data"]
    tag_entries = [(e["action"], e["changes"]["tag"], e["changes"]["by"]) for e in history
                   if e["action"].startswith("tag_")]
    assert tag_entries == [("tag_added", "trusted", "rule"), ("tag_removed", "loyal", "rule"),
                           ("tag_added", "loyal", "rule"), ("tag_removed", "loyal", "rule"),
                           ("tag_added", "loyal", "rule")]


def test_rule_through_a_reference_follows_the_referenced_record(shop):
    c = customer(shop, level="b")
    o = order(shop, c["id"], total="2000.00")
    assert tagged(shop, "order", "big_order") == set()
    shop.test_client().patch(f"/api/v1/customer/{c['id']}", json={"level": "a", "version": c["version"]})
    assert tagged(shop, "order", "big_order") == {o["id"]}


def test_deleted_record_loses_rule_tags_and_gets_them_back_on_restore(shop):
    c = customer(shop, credit_score=900)
    assert tagged(shop, tag="trusted") == {c["id"]}
    client = shop.test_client()
    client.delete(f"/api/v1/customer/{c['id']}")
    assert tagged(shop, tag="trusted") == set()
    assert client.post(f"/api/v1/recycle_bin/customer/{c['id']}/restore").status_code == 200
    assert tagged(shop, tag="trusted") == {c["id"]}


def test_purged_record_takes_its_tags_along(shop):
    rt = rt_of(shop)
    c = customer(shop)
    shop.test_client().post(f"/api/v1/customer/{c['id']}/tags/vegetarian")
    rt.records.delete("customer", c["id"], SYSTEM)
    assert tagged(shop, tag="vegetarian") == {c["id"]}  # in the recycle bin: kept for a restore
    rt.records.purge(dt.timedelta(0))
    assert tagged(shop, tag="vegetarian") == set()


def test_refresh_is_one_insert_and_one_delete_per_rule(shop):
    rt = rt_of(shop)
    old = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    ids = [rt.records.create("customer", {"name": f"c{n}", "credit_score": 600 + 50 * n}, SYSTEM)["id"]
           for n in range(6)]
    table = rt.tables.entities["customer"]
    with rt.engine.begin() as conn:  # time passes: no write of the records, so no re-evaluation
        conn.execute(table.update().values(last_order_at=old))
    assert tagged(shop, tag="sleeping") == set()
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    sa.event.listen(rt.engine, "before_cursor_execute", count)
    try:
        counts = rt.records.tagging.refresh(["sleeping", "trusted"])
    finally:
        sa.event.remove(rt.engine, "before_cursor_execute", count)
    assert counts == {"sleeping": (6, 0), "trusted": (0, 0)}
    assert tagged(shop, tag="sleeping") == set(ids)
    tag_statements = [s for s in statements if TAG_TABLE in s]
    assert len(tag_statements) == 4  # INSERT ... SELECT and DELETE ... WHERE, per rule
    assert sum(s.lstrip().upper().startswith("INSERT INTO CRMKIT_RECORD_TAGS") for s in tag_statements) == 2
    audit = [s for s in statements if "crmkit_audit" in s]
    assert len(audit) == 1  # the history of the six, written at once
    assert len(statements) <= 8  # (+ BEGIN/COMMIT/SAVEPOINT on some drivers)


def test_tags_refresh_command(shop, monkeypatch):
    rt = rt_of(shop)
    c = rt.records.create("customer", {"name": "x"}, SYSTEM)
    table = rt.tables.entities["customer"]
    with rt.engine.begin() as conn:
        conn.execute(table.update().values(last_order_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)))
    monkeypatch.setenv("CRMKIT_DATABASE_URL", str(rt.engine.url.render_as_string(hide_password=False)))
    runner = CliRunner()
    result = runner.invoke(cli, ["tags", "refresh", "sleeping", rt.spec.config_dir])
    assert result.exit_code == 0, result.output
    assert "sleeping: +1 -0" in result.output
    assert tagged(shop, tag="sleeping") == {c["id"]}
    result = runner.invoke(cli, ["tags", "refresh", "vegetarian", rt.spec.config_dir])
    assert result.exit_code == 1 and "manual tag" in result.output
    result = runner.invoke(cli, ["tags", "refresh", "nope", rt.spec.config_dir])
    assert result.exit_code == 1 and "no tag named 'nope'" in result.output


# ------------------------------------------------------------------ filters


def test_tag_filters_in_list_count_and_export(shop):
    rt = rt_of(shop)
    a = rt.records.create("customer", {"name": "anna", "credit_score": 800}, SYSTEM)
    b = rt.records.create("customer", {"name": "bo", "credit_score": 500}, SYSTEM)
    c = rt.records.create("customer", {"name": "cy", "credit_score": 750}, SYSTEM)
    client = shop.test_client()
    client.post(f"/api/v1/customer/{c['id']}/tags/vegetarian")

    def ids(query):
        body = client.get(f"/api/v1/customer?{query}&count=true").get_json()
        assert body["count"] == len(body["data"])
        return {item["id"] for item in body["data"]}

    assert ids("tag=trusted") == {a["id"], c["id"]}
    assert ids("tag=trusted&tag=vegetarian") == {c["id"]}
    assert ids("tag__in=vegetarian,trusted") == {a["id"], c["id"]}
    assert ids("tag__nin=trusted") == {b["id"]}
    assert ids("tag__nin=trusted,vegetarian&name=bo") == {b["id"]}
    rows = client.get("/api/v1/customer?sort=name").get_json()["data"]
    assert [(r["name"], r["tags"]) for r in rows] == [("anna", ["trusted"]), ("bo", []),
                                                      ("cy", ["trusted", "vegetarian"])]
    export = client.get("/api/v1/customer/_export?tag=trusted&sort=name&lang=en").get_data(as_text=True)
    assert "anna" in export and "cy" in export and "bo" not in export
    error = is_error(client.get("/api/v1/customer?tag=trustd"), 400, "invalid_filter")
    assert "did you mean 'trusted'" in str(error)
    is_error(client.get("/api/v1/customer?tag=big_order"), 400, "invalid_filter")


def test_hidden_field_cannot_be_probed_through_a_tag(shop):
    with_users(shop)
    rt = rt_of(shop)
    rep = shop.test_client(user="rep")
    mine = customer(shop, user="rep")
    rt.records.update("customer", mine["id"], {"credit_score": 900}, SYSTEM)
    assert tagged(shop, tag="trusted") == {mine["id"]}
    # the rule reads credit_score, hidden from reps: the tag does not exist for them
    error = is_error(rep.get("/api/v1/customer?tag=trusted"), 400, "invalid_filter")
    assert "trusted" in str(error) and "credit" not in str(error)
    is_error(rep.get("/api/v1/customer?tag__nin=trusted"), 400, "invalid_filter")
    assert rep.get(f"/api/v1/customer/{mine['id']}").get_json()["data"]["tags"] == []
    assert [r["tags"] for r in rep.get("/api/v1/customer").get_json()["data"]] == [[]]
    is_error(rep.post(f"/api/v1/customer/{mine['id']}/tags/trusted"), 404, "unknown_tag")
    history = rep.get(f"/api/v1/customer/{mine['id']}/history").get_json()["data"]
    assert all(e["changes"] is None for e in history if e["action"].startswith("tag_"))
    assert "trusted" not in rep.get(f"/api/v1/customer/{mine['id']}/history").get_data(as_text=True)
    # a manager sees it
    assert shop.test_client(user="mgr").get("/api/v1/customer?tag=trusted").status_code == 200


# ------------------------------------------------------------------ segments


def test_view_where_is_a_segment_within_the_callers_scope(shop):
    with_users(shop)
    rt = rt_of(shop)
    mgr = shop.test_client(user="mgr")
    a = customer(shop, user="rep", name="ann", level="a")
    b = customer(shop, user="rep2", name="bob", level="a")
    customer(shop, user="rep", name="cat", level="b")
    for target, user in ((a, "rep"), (a, "rep"), (b, "rep2"), (b, "admin")):
        order(shop, target["id"], user=user)
    rt.records.update("customer", b["id"], {"credit_score": 720}, SYSTEM)

    def names(client, query):
        body = client.get(f"/api/v1/customer?{query}&count=true").get_json()
        assert "data" in body, body
        assert body["count"] == len(body["data"])
        return [item["name"] for item in body["data"]]

    assert names(mgr, "view=good_credit") == ["bob"]
    assert sorted(names(mgr, "view=busy")) == ["ann", "bob"]
    assert names(mgr, "view=for_managers&sort=name") == ["ann", "bob"]
    rep = shop.test_client(user="rep")
    assert names(rep, "view=mine_a") == ["ann"]  # the view's filter, where (me()) and sort
    assert names(rep, "view=busy") == ["ann"]
    assert names(shop.test_client(user="rep2"), "view=busy") == []  # one of bob's orders is not rep2's to count
    # a view's where reading a hidden field cannot be run by the rep, and does not say why
    error = is_error(rep.get("/api/v1/customer?view=good_credit"), 400, "invalid_parameter")
    assert "credit_score" not in str(error)
    is_error(rep.get("/api/v1/customer?view=for_managers"), 400, "invalid_parameter")  # not a view of theirs
    is_error(mgr.get("/api/v1/customer?view=nope"), 400, "invalid_parameter")
    export = mgr.get("/api/v1/customer/_export?view=good_credit&lang=en").get_data(as_text=True)
    assert "bob" in export and "ann" not in export


# ------------------------------------------------------------------ the config


def test_check_reports_rule_mistakes_in_the_file(tmp_path: Path):
    files = dict(FILES)
    files["tags.yaml"] = """
        tags:
          loyal:
            entity: customer
            rule: "count(orders where totl > 0) >= 2"
    """
    files["views.yaml"] = """
        views:
          odd:
            entity: customer
            where: "level = 'd'"
    """
    with pytest.raises(ConfigError) as raised:
        load_config(make_config(tmp_path / "bad", files))
    problems = {(Path(p.file).name, p.line, p.column, p.message) for p in raised.value.problems}
    assert ("tags.yaml", 4, 31, "order has no field 'totl'") in problems
    assert any(name == "views.yaml" and line == 4 and "'d' is not one of the options" in message
               for name, line, _column, message in problems)


def test_sample_config_seeded_through_the_records_service_has_current_tags(make_runtime):
    from conftest import SAMPLE_CONFIG
    from crmkit.seed import seed

    rt = make_runtime(SAMPLE_CONFIG)
    rt.migrate()
    assert {"sleeping", "high_value", "weekend_active", "birthday_this_month", "overdue_receivable",
            "high_return_risk"} <= set(rt.spec.tags)
    assert all(tag.use for tag in rt.spec.tags.values())
    seed(rt, size=40, random_seed=3)
    assert tagged_any(rt)
    # every write kept the rule tags current: evaluating them all again changes nothing
    counts = rt.records.tagging.refresh()
    assert set(counts) == {name for name, tag in rt.spec.tags.items() if tag.rule}
    assert set(counts.values()) == {(0, 0)}


def tagged_any(rt) -> int:
    table = rt.tables.metadata.tables[TAG_TABLE]
    with rt.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def test_openapi_describes_tags_for_each_caller(shop):
    with_users(shop)
    full = shop.test_client().get("/api/v1/openapi.json").get_json()
    customer_schema = next(s for name, s in full["components"]["schemas"].items()
                           if name.startswith("Customer") and "tags" in s.get("properties", {}))
    assert customer_schema["properties"]["tags"]["items"]["enum"] == ["loyal", "trusted", "sleeping", "vegetarian"]
    route = full["paths"]["/api/v1/customer/{id}/tags/{tag}"]
    assert set(route) == {"post", "delete"}
    assert route["post"]["parameters"][1]["schema"]["enum"] == ["vegetarian"]
    parameters = full["components"]["parameters"]
    assert parameters["customer.tag__nin"]["schema"]["items"]["enum"] == ["loyal", "trusted", "sleeping", "vegetarian"]
    assert parameters["customer.view"]["schema"]["enum"] == ["good_credit", "mine_a", "busy"]  # not for_managers
    mgr = shop.test_client(user="mgr").get("/api/v1/openapi.json").get_json()
    assert mgr["components"]["parameters"]["customer.view"]["schema"]["enum"] == [
        "good_credit", "mine_a", "busy", "for_managers"]
    rep = shop.test_client(user="rep").get("/api/v1/openapi.json").get_json()
    rep_schema = next(s for name, s in rep["components"]["schemas"].items()
                      if name.startswith("Customer") and "tags" in s.get("properties", {}))
    assert rep_schema["properties"]["tags"]["items"]["enum"] == ["loyal", "sleeping", "vegetarian"]
    assert rep["components"]["parameters"]["customer.tag"]["schema"]["items"]["enum"] == [
        "loyal", "sleeping", "vegetarian"]
    assert rep["components"]["parameters"]["customer.view"]["schema"]["enum"] == ["mine_a", "busy"]


@pytest.mark.parametrize("text", [
    "count(orders where status = 'paid' and total >= 100) >= 2",
    "count(orders) > 0",
    "count(orders) >= 0",
    "not (count(orders where status = 'paid') >= 1) and level = 'b'",
    "count(orders where total > 100) > 1 or credit_score > 700",
])
def test_grouped_counts_select_what_per_record_counts_do(shop, text):
    from crmkit.expressions import Context, check, to_sql

    rt = rt_of(shop)
    for n, totals in enumerate(([], ["50.00"], ["150.00", "150.00"], ["150.00", "150.00", "10.00"])):
        c = rt.records.create("customer", {"name": f"c{n}", "credit_score": 650 + 30 * n}, SYSTEM)
        for total in totals:
            order(shop, c["id"], total=total)
    gone = order(shop, c["id"], total="500.00")
    rt.records.delete("order", gone["id"], SYSTEM)  # the recycle bin does not count
    rule = check(text, rt.spec, "customer")
    table = rt.tables.entities["customer"]
    context = Context.at(rt.spec.timezone)
    with rt.engine.connect() as conn:
        def ids(grouped):
            clause = to_sql(rule, rt.tables, dialect=conn.dialect.name, context=context, grouped=grouped)
            return set(conn.execute(sa.select(table.c.id).where(clause)).scalars())

        assert ids(True) == ids(False)


def test_refresh_takes_off_what_no_longer_holds(shop):
    rt = rt_of(shop)
    c = customer(shop)
    order(shop, c["id"])
    order(shop, c["id"])
    assert tagged(shop) == {c["id"]}
    orders = rt.tables.entities["order"]
    with rt.engine.begin() as conn:  # changed behind the records service's back
        conn.execute(orders.update().values(status="refunded"))
    assert rt.records.tagging.refresh(["loyal"]) == {"loyal": (0, 1)}
    assert tagged(shop) == set()
    with rt.engine.begin() as conn:
        conn.execute(orders.update().values(status="paid"))
    assert rt.records.tagging.refresh(["loyal"]) == {"loyal": (1, 0)}
