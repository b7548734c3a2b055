"""The customer pool (公海, issue 10 section 4): who sees the pool, claims
(limit, cool-down, scope, concurrency: exactly one of two reps wins), releases,
the scheduled return selected by the expression language's SQL, the CLI, the
automation action, and the history of it all. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from conftest import as_test_app, is_error, make_config, token_for
from crmkit.cli import cli
from crmkit.loading import load_config
from crmkit.metadata.problems import ConfigError
from crmkit.permissions import SYSTEM, Actor
from crmkit.pool import EVENT_TABLE, RETURNER
from crmkit.pool_actions import ReturnToPoolAction
from crmkit.sqltypes import UTC

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
          region: {type: region}
        relations:
          activities: {kind: one_to_many, entity: activity, field: customer}
          orders: {kind: one_to_many, entity: order, field: customer}
        pool:
          claim_limit: 2
          cooldown_days: 7
          return_after_days: 30
          return_when: |-
            not exists(activities where occurred_at > now() - 30d)
            and not exists(orders where ordered_at > now() - 30d)
        list: {columns: [name, region], sort: "-created_at"}
    """,
    "entities/activity.yaml": """
        entity: activity
        owned: true
        fields:
          customer: {type: ref, to: customer, required: true}
          occurred_at: {type: datetime, required: true}
    """,
    "entities/order.yaml": """
        entity: order
        fields:
          customer: {type: ref, to: customer, required: true}
          ordered_at: {type: datetime, required: true}
    """,
    "roles.yaml": """
        roles:
          manager:
            entities:
              customer: {read: all, create: true, update: all, assign: all}
              activity: {read: all, create: true}
              order: {read: all, create: true}
              user: {read: all}
          rep:
            entities:
              customer: {read: own, create: true, update: own}
              activity: {read: own, create: true}
              order: {read: own, create: true}
              user: {read: all}
          viewer:
            entities:
              customer: {read: own}
    """,
}


@pytest.fixture
def shop(make_app, tmp_path: Path):
    app = as_test_app(make_app(make_config(tmp_path / "shop", FILES)))
    for name, roles in (("rep_a", ["rep"]), ("rep_b", ["rep"]), ("boss", ["manager"]), ("looker", ["viewer"])):
        token_for(app, name, tuple(roles))
    return app


def rt_of(app):
    return app.extensions["crmkit"]


def user_id(app, name: str) -> int:
    return rt_of(app).directory.user(name)["id"]


def actor(app, name: str) -> Actor:
    rt = rt_of(app)
    user = rt.directory.user(name)
    return Actor(user["id"], name, team_id=user["team_id"], access=rt.permissions.access(user["roles"]))


def customer(app, owner: str | None = None, **values) -> dict:
    """A customer made by the admin, owned by ``owner`` (None: in the pool)."""
    body = {"name": "c", **values, "owner_id": None if owner is None else user_id(app, owner)}
    response = app.test_client().post("/api/v1/customer", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["data"]


def claim(app, user: str, record_id: int):
    return app.test_client(user=user).post(f"/api/v1/customer/{record_id}/claim")


def release(app, user: str, record_id: int):
    return app.test_client(user=user).post(f"/api/v1/customer/{record_id}/release")


def owner_of(app, record_id: int) -> int | None:
    rt = rt_of(app)
    table = rt.tables.entities["customer"]
    with rt.engine.connect() as conn:
        owner: int | None = conn.execute(sa.select(table.c.owner_id).where(table.c.id == record_id)).scalar()
    return owner


def listed(app, user: str) -> set[int]:
    response = app.test_client(user=user).get("/api/v1/customer?limit=100&count=true")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["count"] == len(body["data"])  # the count and the page agree on the scope
    return {row["id"] for row in body["data"]}


def age_pool_events(app, days: int) -> None:
    """Move every recorded ownership change ``days`` into the past (a test's clock)."""
    rt = rt_of(app)
    events = rt.tables.metadata.tables[EVENT_TABLE]
    with rt.engine.begin() as conn:
        for event_id, at in conn.execute(sa.select(events.c.id, events.c.at)).all():
            conn.execute(events.update().where(events.c.id == event_id).values(at=at - dt.timedelta(days=days)))


def age_customers(app, days: int) -> None:
    """Make every customer ``days`` older."""
    rt = rt_of(app)
    table = rt.tables.entities["customer"]
    with rt.engine.begin() as conn:
        for record_id, at in conn.execute(sa.select(table.c.id, table.c.created_at)).all():
            conn.execute(table.update().where(table.c.id == record_id).values(created_at=at - dt.timedelta(days=days)))


# ---------------------------------------------------------------- who sees the pool

def test_rep_sees_pool_records_and_their_own_not_a_colleagues(shop):
    pooled = customer(shop)
    mine = customer(shop, "rep_a")
    theirs = customer(shop, "rep_b")
    assert listed(shop, "rep_a") == {pooled["id"], mine["id"]}
    assert listed(shop, "rep_b") == {pooled["id"], theirs["id"]}
    assert shop.test_client(user="rep_a").get(f"/api/v1/customer/{pooled['id']}").status_code == 200
    is_error(shop.test_client(user="rep_a").get(f"/api/v1/customer/{theirs['id']}"), 404)
    # A role that may not update customers cannot claim, so is not shown the pool.
    assert listed(shop, "looker") == set()
    permissions = shop.test_client(user="rep_a").get("/api/v1/me/permissions").get_json()["data"]
    assert permissions["entities"]["customer"]["actions"]["read"] == "own+pool"


def test_pool_scope_is_sql_filter_usable_in_lists(shop):
    pooled = customer(shop, name="pooled one")
    customer(shop, "rep_b", name="pooled two")  # rep_b's: not for rep_a
    response = shop.test_client(user="rep_a").get("/api/v1/customer?owner_id__isnull=true")
    assert [row["id"] for row in response.get_json()["data"]] == [pooled["id"]]


def test_rep_pages_through_their_records_and_the_pool_in_order(shop):
    """The list reads the pool as a branch of its own (a UNION of two ordered,
    limited branches): keyset pages still give every record once, in order."""
    made = [customer(shop, owner, name=f"n{i:02}") for i, owner in
            enumerate(["rep_a", None, "rep_b", None, "rep_a", "rep_a", None, "rep_b", None])]
    expected = [c["id"] for c in sorted(made, key=lambda c: c["name"])
                if c["owner_id"] in (None, user_id(shop, "rep_a"))]
    client = shop.test_client(user="rep_a")
    seen, url = [], "/api/v1/customer?sort=name&limit=2"
    while url:
        body = client.get(url).get_json()
        seen += [row["id"] for row in body["data"]]
        url = body["next_url"]
    assert seen == expected
    desc = client.get("/api/v1/customer?sort=-name&limit=100&name__startswith=n").get_json()["data"]
    assert [row["id"] for row in desc] == expected[::-1]


# ---------------------------------------------------------------- claims

def test_claim_makes_the_rep_the_owner_and_shows_in_history(shop):
    c = customer(shop)
    response = claim(shop, "rep_a", c["id"])
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["data"]["owner_id"] == user_id(shop, "rep_a")
    assert owner_of(shop, c["id"]) == user_id(shop, "rep_a")
    history = shop.test_client(user="rep_a").get(f"/api/v1/customer/{c['id']}/history").get_json()["data"]
    change = next(entry for entry in history if entry["action"] == "update")
    assert change["changes"]["owner_id"] == [None, user_id(shop, "rep_a")]
    assert change["actor"] == "rep_a"
    is_error(claim(shop, "rep_a", c["id"]), 409, "already_owned")
    is_error(claim(shop, "rep_b", c["id"]), 404)  # rep_a's now: not rep_b's to see


def test_rep_cannot_claim_outside_their_scope(shop):
    theirs = customer(shop, "rep_b")
    is_error(claim(shop, "rep_a", theirs["id"]), 404)
    assert owner_of(shop, theirs["id"]) == user_id(shop, "rep_b")
    pooled = customer(shop)
    is_error(claim(shop, "looker", pooled["id"]), 403, "forbidden")
    is_error(claim(shop, "rep_a", 999999), 404)
    # The manager sees every customer: claiming one that has an owner is a conflict, not a takeover.
    is_error(claim(shop, "boss", theirs["id"]), 409, "not_in_pool")


def test_claim_limit_counts_owned_records(shop):
    customer(shop, "rep_a")
    second = customer(shop)
    third = customer(shop)
    assert claim(shop, "rep_a", second["id"]).status_code == 200
    error = is_error(claim(shop, "rep_a", third["id"]), 409, "claim_limit")
    assert error["details"] == {"limit": 2, "owned": 2}
    assert owner_of(shop, third["id"]) is None
    assert release(shop, "rep_a", second["id"]).status_code == 200
    assert claim(shop, "rep_a", third["id"]).status_code == 200


def test_cooldown_after_release_applies_to_that_rep_only(shop):
    c = customer(shop)
    assert claim(shop, "rep_a", c["id"]).status_code == 200
    response = release(shop, "rep_a", c["id"])
    assert response.status_code == 200 and response.get_json()["data"]["owner_id"] is None
    error = is_error(claim(shop, "rep_a", c["id"]), 409, "cooldown")
    assert "7-day cool-down" in error["message"]
    age_pool_events(shop, 6)
    is_error(claim(shop, "rep_a", c["id"]), 409, "cooldown")
    assert claim(shop, "rep_b", c["id"]).status_code == 200  # someone else may take it at once
    assert release(shop, "rep_b", c["id"]).status_code == 200
    age_pool_events(shop, 2)  # rep_a's release is 8 days old, rep_b's 2
    assert claim(shop, "rep_a", c["id"]).status_code == 200


def test_release_by_owner_or_by_whoever_may_reassign(shop):
    c = customer(shop, "rep_a")
    is_error(release(shop, "rep_b", c["id"]), 404)
    is_error(release(shop, "looker", c["id"]), 404)
    assert release(shop, "boss", c["id"]).status_code == 200
    assert owner_of(shop, c["id"]) is None
    is_error(release(shop, "rep_a", c["id"]), 409, "in_pool")
    # The manager took it from rep_a: a loss, so rep_a's cool-down runs.
    is_error(claim(shop, "rep_a", c["id"]), 409, "cooldown")


def test_owner_null_patch_needs_assign_and_create_into_pool_needs_assign(shop):
    rep = shop.test_client(user="rep_a")
    mine = rep.post("/api/v1/customer", json={"name": "m"}).get_json()["data"]
    assert mine["owner_id"] == user_id(shop, "rep_a")
    is_error(rep.patch(f"/api/v1/customer/{mine['id']}", json={"owner_id": None, "version": mine["version"]}),
             403, "forbidden")
    is_error(rep.post("/api/v1/customer", json={"name": "p", "owner_id": None}), 403, "forbidden")
    response = shop.test_client(user="boss").patch(f"/api/v1/customer/{mine['id']}",
                                                  json={"owner_id": None, "version": mine["version"]})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["data"]["owner_id"] is None and response.get_json()["data"]["team_id"] is None


def test_entity_without_pool_has_no_claim(shop, make_app, tmp_path):
    files = {**FILES, "entities/customer.yaml": FILES["entities/customer.yaml"].split("        pool:")[0]
             + '        list: {columns: [name], sort: "-created_at"}\n'}
    app = as_test_app(make_app(make_config(tmp_path / "nopool", files)))
    created = app.test_client().post("/api/v1/customer", json={"name": "x"}).get_json()["data"]
    is_error(app.test_client().post(f"/api/v1/customer/{created['id']}/claim"), 404, "no_pool")
    is_error(app.test_client().post("/api/v1/customer", json={"name": "y", "owner_id": None}), 422)


# ---------------------------------------------------------------- concurrency

def test_two_reps_claiming_at_once_exactly_one_wins(shop):
    clients = {name: shop.test_client(user=name) for name in ("rep_a", "rep_b")}
    for _round in range(4):
        c = customer(shop)
        barrier = threading.Barrier(2)
        statuses: dict[str, int] = {}

        def attempt(name: str, record_id: int = c["id"], gate: threading.Barrier = barrier,
                    out: dict[str, int] = statuses) -> None:
            gate.wait()
            out[name] = clients[name].post(f"/api/v1/customer/{record_id}/claim").status_code

        threads = [threading.Thread(target=attempt, args=(name,)) for name in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(statuses.values()) in ([200, 404], [200, 409]), statuses
        winner = next(name for name, status in statuses.items() if status == 200)
        assert owner_of(shop, c["id"]) == user_id(shop, winner)
        rt = rt_of(shop)
        with rt.engine.connect() as conn:
            claims = rt.records.pool.events(conn, rt.spec.entities["customer"], c["id"])
        assert [(e["action"], e["user_id"]) for e in claims] == [("claim", user_id(shop, winner))]
        release(shop, winner, c["id"])  # keep under the claim limit


def test_one_rep_claiming_many_at_once_stays_within_the_limit(shop):
    ids = [customer(shop)["id"] for _ in range(5)]
    client = shop.test_client(user="rep_a")
    barrier = threading.Barrier(len(ids))
    statuses: list[int] = []
    lock = threading.Lock()

    def attempt(record_id: int) -> None:
        barrier.wait()
        status = client.post(f"/api/v1/customer/{record_id}/claim").status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=attempt, args=(record_id,)) for record_id in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 200, 409, 409, 409]
    assert sum(owner_of(shop, record_id) == user_id(shop, "rep_a") for record_id in ids) == 2


# ---------------------------------------------------------------- the scheduled return

def follow_up(app, user: str, customer_id: int, at: dt.datetime) -> None:
    response = app.test_client(user=user).post("/api/v1/activity", json={
        "customer": customer_id, "occurred_at": at.isoformat()})
    assert response.status_code == 201, response.get_json()


def test_scheduled_return_selects_idle_records_held_long_enough(shop):
    rt = rt_of(shop)
    idle = customer(shop, "rep_a")
    busy = customer(shop, "rep_a")
    ordered = customer(shop, "rep_b")
    pooled = customer(shop)
    later = dt.datetime.now(UTC) + dt.timedelta(days=40)
    follow_up(shop, "rep_a", busy["id"], later - dt.timedelta(days=3))
    shop.test_client().post("/api/v1/order", json={"customer": ordered["id"],
                                                     "ordered_at": (later - dt.timedelta(days=10)).isoformat()})
    # Ten days on, nobody has had a customer 30 days: nothing returns.
    assert rt.records.pool.return_due("customer", now=dt.datetime.now(UTC) + dt.timedelta(days=10)) == {"customer": 0}
    assert rt.records.pool.return_due(now=later) == {"customer": 1}
    assert owner_of(shop, idle["id"]) is None
    assert owner_of(shop, busy["id"]) == user_id(shop, "rep_a")
    assert owner_of(shop, ordered["id"]) == user_id(shop, "rep_b")
    assert owner_of(shop, pooled["id"]) is None
    history = shop.test_client().get(f"/api/v1/customer/{idle['id']}/history").get_json()["data"]
    returned = next(entry for entry in history if entry["action"] == "update")
    assert returned["actor"] == RETURNER.name and returned["changes"]["owner_id"] == [user_id(shop, "rep_a"), None]
    # The rep lost it: their cool-down runs; a colleague may claim it.
    is_error(claim(shop, "rep_a", idle["id"]), 409, "cooldown")
    assert claim(shop, "rep_b", idle["id"]).status_code == 200


def test_a_claim_restarts_the_owners_time(shop):
    rt = rt_of(shop)
    c = customer(shop)
    assert claim(shop, "rep_a", c["id"]).status_code == 200
    age_customers(shop, 100)  # the customer is old; the claim is today's
    soon = dt.datetime.now(UTC) + dt.timedelta(days=5)
    assert rt.records.pool.return_due("customer", now=soon) == {"customer": 0}
    age_pool_events(shop, 31)
    assert rt.records.pool.return_due("customer", now=soon) == {"customer": 1}


def test_pool_return_command(shop, monkeypatch):
    rt = rt_of(shop)
    c = customer(shop, "rep_a")
    age_customers(shop, 31)
    monkeypatch.setenv("CRMKIT_DATABASE_URL", rt.engine.url.render_as_string(hide_password=False))
    runner = CliRunner()
    result = runner.invoke(cli, ["pool", "return", "customer", rt.spec.config_dir, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "customer: 1 due" in result.output and owner_of(shop, c["id"]) is not None
    result = runner.invoke(cli, ["pool", "return", rt.spec.config_dir])
    assert result.exit_code == 0, result.output
    assert "customer: 1 returned to the pool" in result.output
    assert owner_of(shop, c["id"]) is None
    result = runner.invoke(cli, ["pool", "return", "activity", rt.spec.config_dir])
    assert result.exit_code == 1 and "activity has no pool" in result.output
    result = runner.invoke(cli, ["pool", "return", "custmer", rt.spec.config_dir])
    assert result.exit_code == 1 and "no entity named 'custmer'" in result.output


def test_pool_return_is_a_daily_scheduled_job(shop, make_runtime):
    from crmkit.jobs.schedules import collect
    from crmkit.pool import RETURN_CRON

    rt = make_runtime(Path(rt_of(shop).spec.config_dir))  # the same database, no worker threads
    assert [(s.name, s.cron, s.task, dict(s.payload)) for s in collect(rt) if s.task == "pool.return"] == [
        ("pool.return.customer", RETURN_CRON, "pool.return", {"entity": "customer"})]
    c = customer(shop, "rep_a")
    age_customers(shop, 31)
    assert rt.jobs.enqueue("pool.return", {"entity": "customer"}, key="pool.return:test")
    rt.jobs.run_pending()
    deadline = time.monotonic() + 10  # the app's own worker thread may have taken the job
    while owner_of(shop, c["id"]) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert owner_of(shop, c["id"]) is None


# ---------------------------------------------------------------- the automation action

def test_return_to_pool_action(shop):
    rt = rt_of(shop)
    c = customer(shop, "rep_a")
    action = ReturnToPoolAction()
    spec = rt.spec
    assert action.check({}, spec.entities["customer"], spec) == []
    assert "needs a pool" in action.check({}, spec.entities["activity"], spec)[0]
    assert "takes no arguments" in action.check({"x": 1}, spec.entities["customer"], spec)[0]
    table = rt.tables.entities["customer"]
    with rt.engine.connect() as conn:
        record = dict(conn.execute(sa.select(table).where(table.c.id == c["id"])).mappings().one())
    system = Actor(None, "automation idle_back", system=True)
    ctx = SimpleNamespace(runtime=rt, automation="idle_back", entity=spec.entities["customer"], record=record,
                          actor=system, key="k", dry_run=True, depth=0)
    assert "would return the record to the pool" in action.describe(ctx, {})
    assert action.run(ctx, {}).startswith("would")
    assert owner_of(shop, c["id"]) == user_id(shop, "rep_a")  # a dry run writes nothing
    ctx.dry_run = False
    assert action.run(ctx, {}) == "returned to the pool"
    assert owner_of(shop, c["id"]) is None
    history = shop.test_client().get(f"/api/v1/customer/{c['id']}/history").get_json()["data"]
    assert history[0]["actor"] == "automation idle_back"
    assert action.run(ctx, {}) == "in the pool already"


# ---------------------------------------------------------------- config

def test_config_errors_are_located(tmp_path):
    def problems(name: str, files: dict[str, str]) -> str:
        with pytest.raises(ConfigError) as raised:
            load_config(make_config(tmp_path / name, files))
        return "\n".join(str(p) for p in raised.value.problems)

    unowned = FILES["entities/activity.yaml"].replace("owned: true\n", "owned: false\n        pool: {claim_limit: 3}\n")
    text = problems("unowned", {**FILES, "entities/activity.yaml": unowned})
    assert "entities/activity.yaml:3:1: a pool needs owned: true on activity" in text
    misspelt = FILES["entities/customer.yaml"].replace("exists(activities where", "exists(activites where")
    text = problems("misspelt", {**FILES, "entities/customer.yaml": misspelt})
    assert "entities/customer.yaml:16:16: customer has no relation 'activites'" in text
    no_rule = FILES["entities/customer.yaml"].split("          return_when:")[0] + "        list: {columns: [name]}\n"
    text = problems("no_rule", {**FILES, "entities/customer.yaml": no_rule})
    assert "return_after_days needs return_when" in text


def test_sample_config_customer_pool(tmp_path, make_runtime):
    from conftest import SAMPLE_CONFIG

    rt = make_runtime(SAMPLE_CONFIG)
    customer_spec = rt.spec.entities["customer"]
    assert customer_spec.pool is not None and customer_spec.pool.return_after_days == 30
    assert rt.permissions.access(["sales_rep"]).entity("customer").scope("read") == {"own", "pool"}
    rt.migrate()
    with rt.engine.connect() as conn:  # the return rule compiles to SQL on this database
        assert conn.execute(rt.records.pool.due(conn, "customer")).all() == []
    assert SYSTEM.system


def test_openapi_documents_claim_and_release_for_who_may_call_them(make_app):
    from openapi_spec_validator import validate

    from conftest import SAMPLE_CONFIG

    app = make_app(SAMPLE_CONFIG)
    full = app.test_client().get("/api/v1/openapi.json").get_json()
    validate(full)
    claim_op = full["paths"]["/api/v1/customer/{id}/claim"]["post"]
    assert "cooldown" in claim_op["description"] and "409" in claim_op["responses"]
    assert "/api/v1/customer/{id}/release" in full["paths"]
    assert "/api/v1/lead/{id}/claim" not in full["paths"]  # leads have no pool
    token_for(app, "rep", ("sales_rep",))
    token_for(app, "mkt", ("marketer",))
    rep = app.test_client(user="rep").get("/api/v1/openapi.json").get_json()
    assert "post" in rep["paths"]["/api/v1/customer/{id}/claim"]
    marketer = app.test_client(user="mkt").get("/api/v1/openapi.json").get_json()
    assert "/api/v1/customer/{id}/claim" not in marketer["paths"]  # marketing reads customers, may not claim
