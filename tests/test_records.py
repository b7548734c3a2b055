"""The records service through the REST API: create, read, update, delete,
validation, unique values, read-only fields, auto-numbers, optimistic locking,
the recycle bin, references, the audit trail, bulk create and many-to-many links."""

from __future__ import annotations

import datetime as dt
import re
import threading
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from conftest import OVERWRITE, is_error
from crmkit.errors import ValidationFailed
from crmkit.permissions import SYSTEM, Actor

API = "/api/v1"


def create(client, entity: str, **values) -> dict:
    response = client.post(f"{API}/{entity}", json=values)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["data"]


def ids(response) -> list[int]:
    assert response.status_code == 200, response.get_json()
    return [item["id"] for item in response.get_json()["data"]]


# ---------------------------------------------------------------- create, get, patch, delete

def test_defaults_are_stored_as_input_would_be(make_app, tmp_path):
    """A money default 0 is 0.00 in the create response, as it is when read back."""
    from conftest import make_config

    config = make_config(tmp_path / "config", {"app.yaml": "app: shop\n", "entities/account.yaml": """
        entity: account
        fields:
          name: {type: string}
          balance: {type: money, default: 0}
          rate: {type: decimal, scale: 3, default: 1.5}
          since: {type: date, default: "2026-01-31"}
    """})
    client = make_app(config).test_client()
    created = create(client, "account", name="A")
    assert (created["balance"], created["rate"], created["since"]) == ("0.00", "1.500", "2026-01-31")
    assert client.get(f"{API}/account/{created['id']}").get_json()["data"] == created


def test_create_get_patch_delete(client):
    response = client.post(f"{API}/customer", json={
        "name": "  张三 ", "mobile": "+86 138-1234-5678", "email": "Zhang@EXAMPLE.com", "balance": 12.5,
        "birthday": "1990-02-03", "last_seen": "2026-01-31T09:30:00+08:00", "tags": ["vip", "vip", "new"],
        "region": "440106", "extra": {"source": "wechat", "score": 1.5}, "active": True})
    assert response.status_code == 201
    assert response.headers["Location"] == f"{API}/customer/1"
    assert response.headers["ETag"] == '"1"'
    record = response.get_json()["data"]
    assert record["id"] == 1 and record["version"] == 1
    assert record["name"] == "张三"
    assert record["mobile"] == "13812345678"
    assert record["email"] == "Zhang@example.com"
    assert record["balance"] == "12.50"
    assert record["last_seen"] == "2026-01-31T01:30:00Z"
    assert record["tags"] == ["vip", "new"]
    assert record["region"] == "440106"
    assert record["extra"] == {"source": "wechat", "score": 1.5}
    assert record["level"] == "bronze"  # the default
    assert record["created_at"].endswith("Z") and record["created_at"] == record["updated_at"]

    got = client.get(f"{API}/customer/1")
    assert got.status_code == 200 and got.get_json()["data"] == record
    assert client.get(f"{API}/customer/1?fields=name,level").get_json()["data"] == {
        "id": 1, "version": 1, "name": "张三", "level": "bronze"}

    patched = client.patch(f"{API}/customer/1", json={"level": "gold", "age": 35, "version": 1})
    assert patched.status_code == 200
    data = patched.get_json()["data"]
    assert (data["level"], data["age"], data["version"]) == ("gold", 35, 2)
    assert data["updated_at"] >= data["created_at"]
    assert patched.headers["ETag"] == '"2"'

    unchanged = client.patch(f"{API}/customer/1", json={"level": "gold"}, headers=OVERWRITE)
    assert unchanged.get_json()["data"]["version"] == 2  # nothing changed, no new version

    assert client.delete(f"{API}/customer/1").status_code == 204
    is_error(client.get(f"{API}/customer/1"), 404, "not_found")


def test_missing_record(client):
    is_error(client.get(f"{API}/customer/42"), 404, "not_found")
    is_error(client.patch(f"{API}/customer/42", json={"name": "x"}, headers=OVERWRITE), 404, "not_found")
    is_error(client.delete(f"{API}/customer/42"), 404, "not_found")


@pytest.mark.parametrize("field, value, message", [
    ("name", "x" * 21, "must be at most 20 characters"),
    ("name", ["a"], "must be a string"),
    ("name", None, "is required"),
    ("age", "abc", "must be an integer"),
    ("age", 1.5, "must be an integer"),
    ("age", True, "must be an integer"),
    ("age", -1, "must be at least 0"),
    ("age", 151, "must be at most 150"),
    ("age", 10**30, "is too large"),
    ("balance", "1.234", "has more than 2 digits after the decimal point"),
    ("balance", "abc", "must be a number like 12.50"),
    ("balance", "NaN", "must be a number like 12.50"),
    ("balance", "1.5e3", "must be a number like 12.50"),
    ("balance", "007", "must be written like 12.50 (no leading zeros)"),
    ("balance", [1], "must be a number"),
    ("birthday", "2026-13-01", "must be a date like 2026-01-31"),
    ("birthday", 20260101, "must be a date like 2026-01-31"),
    ("last_seen", "yesterday", "must be a date-time with an offset, like 2026-01-31T09:30:00+08:00"),
    ("last_seen", "2026-01-31T09:30:00", "must be a date-time with an offset, like 2026-01-31T09:30:00+08:00"),
    ("name", 0, "must be a string"),
    ("region", 440106, "must be a 6-digit region code like 440106"),
    ("email", "nope", "is not a valid email address"),
    ("mobile", "12345", "is not a phone number (a mobile like 13812345678 or a landline like 010-12345678)"),
    ("region", "999999", "'999999' is not a known region code"),
    ("region", "abc", "must be a 6-digit region code like 440106"),
    ("level", "diamond", "must be one of: bronze, silver, gold"),
    ("tags", ["vip", "bad"], "'bad' is not one of: vip, new, risk"),
    ("tags", "vip", "must be a list of options"),
    ("website", "ftp://example.com", "is not an http(s) URL"),
    ("active", "yes", "must be true or false"),
    ("referrer", "abc", "must be the id of a customer"),
    ("referrer", 0, "must be the id of a customer"),
    ("total_spent", "3.00", "is read-only"),
    ("code", "KH1", "is read-only"),
    ("created_at", "2026-01-01T00:00:00Z", "is read-only"),
    ("nme", "x", "unknown field (did you mean 'name'?)"),
])
def test_invalid_value_gets_a_field_message(module_app, field, value, message):
    client = module_app.test_client()
    body = {"name": "张三", field: value}
    error = is_error(client.post(f"{API}/customer", json=body), 422, "validation_failed")
    assert error["details"] == {field: [message]}
    assert error["message"] == f"invalid values for: {field}"
    assert ids(client.get(f"{API}/customer")) == []


def test_every_problem_is_reported_at_once(client):
    error = is_error(client.post(f"{API}/customer", json={"age": "x", "level": "diamond"}), 422)
    assert error["details"] == {"age": ["must be an integer"], "level": ["must be one of: bronze, silver, gold"],
                                "name": ["is required"]}


def test_ref_to_a_missing_record(client):
    error = is_error(client.post(f"{API}/order", json={"customer": 99, "ordered_at": "2026-01-01T10:00:00Z"}), 409,
                     "reference_not_found")
    assert error["details"] == {"customer": ["Customer 99 does not exist"]}


def test_ref_to_a_deleted_record(client):
    customer = create(client, "customer", name="A")
    client.delete(f"{API}/customer/{customer['id']}")
    error = is_error(client.post(f"{API}/order", json={"customer": customer["id"],
                                                         "ordered_at": "2026-01-01T10:00:00Z"}), 409)
    assert error["details"] == {"customer": [f"Customer {customer['id']} does not exist"]}


def test_required_field_cannot_be_cleared(client):
    create(client, "customer", name="A")
    error = is_error(client.patch(f"{API}/customer/1", json={"name": None}, headers=OVERWRITE), 422)
    assert error["details"] == {"name": ["is required"]}


def test_patch_validates_like_create(client):
    create(client, "customer", name="A")
    error = is_error(client.patch(f"{API}/customer/1", json={"age": "abc", "bogus": 1}, headers=OVERWRITE), 422)
    assert error["details"] == {"age": ["must be an integer"], "bogus": ["unknown field"]}


# ---------------------------------------------------------------- unique, read-only, auto-numbers

def test_unique_value_gets_409_naming_the_field(client):
    create(client, "customer", name="A", mobile="13812345678")
    error = is_error(client.post(f"{API}/customer", json={"name": "B", "mobile": "138 1234 5678"}),
                     409, "unique_violation")
    assert error["message"] == "another customer already has this mobile"
    assert error["details"] == {"mobile": ["already used by another record"]}
    other = create(client, "customer", name="B", mobile="13900000000")
    error = is_error(client.patch(f"{API}/customer/{other['id']}", json={"mobile": "13812345678"}, headers=OVERWRITE),
                     409, "unique_violation")
    assert error["details"] == {"mobile": ["already used by another record"]}


def test_unique_ignores_records_in_the_recycle_bin(client):
    first = create(client, "customer", name="A", mobile="13812345678")
    client.delete(f"{API}/customer/{first['id']}")
    create(client, "customer", name="B", mobile="13812345678")


def test_readonly_field_is_refused_on_patch_but_the_system_may_set_it(client, rt):
    create(client, "customer", name="A")
    error = is_error(client.patch(f"{API}/customer/1", json={"total_spent": "10.00"},
                                  headers=OVERWRITE), 422, "validation_failed")
    assert error["details"] == {"total_spent": ["is read-only"]}
    record = rt.records.update("customer", 1, {"total_spent": "10.00"}, SYSTEM)
    assert str(record["total_spent"]) == "10.00"
    assert client.get(f"{API}/customer/1").get_json()["data"]["total_spent"] == "10.00"


def _today_in_shanghai() -> set[str]:
    now = dt.datetime.now(ZoneInfo("Asia/Shanghai"))
    return {now.strftime("%Y%m%d"), (now + dt.timedelta(minutes=1)).strftime("%Y%m%d")}


def test_autonumbers_in_sequence(client):
    first = create(client, "contract", amount="100.00")
    second = create(client, "contract")
    bulk = client.post(f"{API}/contract/_bulk", json=[{}, {}, {}]).get_json()["data"]
    numbers = [first["number"], second["number"]] + [r["number"] for r in bulk]
    assert all(re.fullmatch(r"HT\d{8}\d{6}", n) for n in numbers), numbers
    assert {n[2:10] for n in numbers} <= _today_in_shanghai()
    assert [int(n[10:]) for n in numbers] == [1, 2, 3, 4, 5]
    customer = create(client, "customer", name="A")
    assert re.fullmatch(r"KH\d{8}0001", customer["code"])


# ---------------------------------------------------------------- optimistic locking

def test_stale_version_gets_409(client):
    create(client, "customer", name="A")
    assert client.patch(f"{API}/customer/1", json={"age": 1, "version": 1}).status_code == 200
    error = is_error(client.patch(f"{API}/customer/1", json={"age": 2, "version": 1}), 409, "stale_version")
    assert error["details"] == {"version": ["stale: current version is 2"]}
    assert client.get(f"{API}/customer/1").get_json()["data"]["age"] == 1


def test_if_match_header(client):
    create(client, "customer", name="A")
    assert client.patch(f"{API}/customer/1", json={"age": 1}, headers={"If-Match": '"1"'}).status_code == 200
    is_error(client.patch(f"{API}/customer/1", json={"age": 2}, headers={"If-Match": '"1"'}), 409, "stale_version")
    assert client.patch(f"{API}/customer/1", json={"age": 2}, headers={"If-Match": 'W/"2"'}).status_code == 200
    is_error(client.patch(f"{API}/customer/1", json={"age": 3}, headers={"If-Match": "abc"}), 400, "invalid_header")
    is_error(client.patch(f"{API}/customer/1", json={"age": 3, "version": "2"}), 400, "invalid_version")
    is_error(client.delete(f"{API}/customer/1", headers={"If-Match": '"1"'}), 409, "stale_version")
    assert client.delete(f"{API}/customer/1", headers={"If-Match": '"3"'}).status_code == 204


def test_patch_without_a_version_is_428(client):
    create(client, "customer", name="A")
    error = is_error(client.patch(f"{API}/customer/1", json={"age": 1}), 428, "version_required")
    assert "If-Match" in error["message"] and error["details"] == {"version": ["is required (or the If-Match header)"]}
    assert client.get(f"{API}/customer/1").get_json()["data"]["age"] is None  # nothing was written


def test_if_match_star_overwrites_whatever_is_current(client):
    create(client, "customer", name="A")
    client.patch(f"{API}/customer/1", json={"age": 1, "version": 1})
    answer = client.patch(f"{API}/customer/1", json={"age": 2, "version": 1}, headers={"If-Match": "*"})
    assert answer.status_code == 200 and answer.get_json()["data"]["version"] == 3  # the header wins


@pytest.mark.parametrize("header", ['"abc"', '"1", "2"', 'W/3', '"-1"', '"' + "9" * 5000 + '"', "**",
                                    '"\u00b2"', '"²"'])
def test_if_match_must_be_a_quoted_version_or_star(client, header):
    create(client, "customer", name="A")
    error = is_error(client.patch(f"{API}/customer/1", json={"age": 3}, headers={"If-Match": header}), 400,
                     "invalid_header")
    assert error["details"] == {"If-Match": ['must be "N" or *']}
    is_error(client.delete(f"{API}/customer/1", headers={"If-Match": header}), 400, "invalid_header")


def test_a_version_written_as_a_whole_float_is_that_integer(client):
    """JSON has one number type: 1.0 is the integer 1 (as the OpenAPI document's schema says); 1.5 is not."""
    create(client, "customer", name="A")
    assert client.patch(f"{API}/customer/1", json={"age": 3, "version": 1.0}).status_code == 200
    is_error(client.patch(f"{API}/customer/1", json={"age": 4, "version": 2.5}), 400, "invalid_version")


@pytest.mark.parametrize("version", [0, -1, 2**31, 10**40, 1e300])
def test_body_version_out_of_range(client, version):
    create(client, "customer", name="A")
    is_error(client.patch(f"{API}/customer/1", json={"age": 3, "version": version}), 400, "invalid_version")


def test_delete_needs_no_version(client):
    create(client, "customer", name="A")
    assert client.delete(f"{API}/customer/1").status_code == 204


def _race(app, version: int, ages: tuple[int, int]) -> list[int]:
    """Two clients PATCH customer 1 with the same version at the same moment."""
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def write(age: int) -> None:
        own = app.test_client()
        barrier.wait()
        response = own.patch(f"{API}/customer/1", json={"age": age, "version": version})
        statuses.append(response.status_code)

    threads = [threading.Thread(target=write, args=(age,)) for age in ages]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return statuses


def test_two_writers_with_the_same_version_one_gets_409(app, client):
    create(client, "customer", name="A")
    for round_ in range(4):
        version = client.get(f"{API}/customer/1").get_json()["data"]["version"]
        statuses = _race(app, version, (round_ * 10 + 1, round_ * 10 + 2))
        assert sorted(statuses) == [200, 409], statuses
        assert client.get(f"{API}/customer/1").get_json()["data"]["version"] == version + 1


def test_concurrent_creates_get_distinct_autonumbers(app):
    numbers: list[str] = []
    barrier = threading.Barrier(4)

    def write() -> None:
        own = app.test_client()
        barrier.wait()
        for _ in range(3):
            numbers.append(create(own, "contract")["number"])

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(int(n[10:]) for n in numbers) == list(range(1, 13))


# ---------------------------------------------------------------- recycle bin

def test_deleted_record_is_invisible_everywhere_but_the_recycle_bin(client):
    alice = create(client, "customer", name="Alice", mobile="13812345678", level="gold")
    bob = create(client, "customer", name="Bob", level="gold")
    order = create(client, "order", customer=bob["id"], ordered_at="2026-01-01T10:00:00Z")
    gone = create(client, "order", customer=bob["id"], ordered_at="2026-01-02T10:00:00Z")
    assert client.delete(f"{API}/order/{gone['id']}").status_code == 204
    assert client.delete(f"{API}/customer/{alice['id']}").status_code == 204

    is_error(client.get(f"{API}/customer/{alice['id']}"), 404)
    is_error(client.patch(f"{API}/customer/{alice['id']}", json={"age": 3}, headers=OVERWRITE), 404)
    is_error(client.delete(f"{API}/customer/{alice['id']}"), 404)
    is_error(client.get(f"{API}/customer/{alice['id']}/history"), 404)
    assert ids(client.get(f"{API}/customer")) == [bob["id"]]
    listed = client.get(f"{API}/customer?level=gold&count=true").get_json()
    assert listed["count"] == 1 and [r["id"] for r in listed["data"]] == [bob["id"]]
    assert ids(client.get(f"{API}/customer?mobile=13812345678")) == []
    assert ids(client.get(f"{API}/customer?q=Alice")) == []
    assert ids(client.get(f"{API}/customer/{bob['id']}/orders")) == [order["id"]]
    assert client.get(f"{API}/customer/{bob['id']}/orders?count=true").get_json()["count"] == 1
    assert ids(client.get(f"{API}/order?customer.name=Bob")) == [order["id"]]

    binned = client.get(f"{API}/recycle_bin?entity=customer").get_json()["data"]
    assert [r["id"] for r in binned] == [alice["id"]]
    assert binned[0]["name"] == "Alice" and binned[0]["deleted_at"].endswith("Z")
    assert [r["id"] for r in client.get(f"{API}/recycle_bin?entity=order").get_json()["data"]] == [gone["id"]]


def test_restore_brings_a_record_back(client):
    alice = create(client, "customer", name="Alice")
    client.delete(f"{API}/customer/{alice['id']}")
    restored = client.post(f"{API}/recycle_bin/customer/{alice['id']}/restore")
    assert restored.status_code == 200
    assert restored.get_json()["data"]["version"] == 3  # create 1, delete 2, restore 3
    assert ids(client.get(f"{API}/customer")) == [alice["id"]]
    assert client.get(f"{API}/recycle_bin?entity=customer").get_json()["data"] == []
    is_error(client.post(f"{API}/recycle_bin/customer/{alice['id']}/restore"), 404, "not_found")
    actions = [h["action"] for h in client.get(f"{API}/customer/{alice['id']}/history").get_json()["data"]]
    assert actions == ["restore", "delete", "create"]


def test_restore_conflicting_with_a_new_unique_value(client):
    first = create(client, "customer", name="A", mobile="13812345678")
    client.delete(f"{API}/customer/{first['id']}")
    create(client, "customer", name="B", mobile="13812345678")
    error = is_error(client.post(f"{API}/recycle_bin/customer/{first['id']}/restore"), 409, "unique_violation")
    assert error["details"] == {"mobile": ["already used by another record"]}
    assert [r["id"] for r in client.get(f"{API}/recycle_bin?entity=customer").get_json()["data"]] == [first["id"]]


def test_recycle_bin_needs_a_known_entity(client):
    is_error(client.get(f"{API}/recycle_bin"), 400, "invalid_parameter")
    is_error(client.get(f"{API}/recycle_bin?entity=nothing"), 404, "unknown_entity")


def test_purge_removes_deleted_records_for_good(client, rt):
    keep = create(client, "product", name="Keep")
    old = create(client, "product", name="Old")
    client.delete(f"{API}/product/{old['id']}")
    assert rt.records.purge() == {}  # within recycle_bin_days
    assert rt.records.purge(dt.timedelta(days=0)) == {"product": 1}
    assert client.get(f"{API}/recycle_bin?entity=product").get_json()["data"] == []
    is_error(client.post(f"{API}/recycle_bin/product/{old['id']}/restore"), 404)
    with rt.engine.connect() as conn:
        table = rt.tables.entities["product"]
        assert list(conn.execute(sa.select(table.c.id)).scalars()) == [keep["id"]]


# ---------------------------------------------------------------- references on delete

def test_delete_refused_while_a_restrict_ref_points_at_it(client):
    customer = create(client, "customer", name="A")
    order = create(client, "order", customer=customer["id"], ordered_at="2026-01-01T10:00:00Z")
    error = is_error(client.delete(f"{API}/customer/{customer['id']}"), 409, "referenced")
    assert error["message"] == ("cannot delete: 1 order refer to it through 'customer'; "
                                "delete or re-assign them first")
    assert error["details"] == {"references": {"order": 1}}  # a count: ids outside your scope are not yours to learn
    assert client.get(f"{API}/customer/{customer['id']}").status_code == 200
    client.delete(f"{API}/order/{order['id']}")
    assert client.delete(f"{API}/customer/{customer['id']}").status_code == 204  # a deleted order does not count


def test_set_null_clears_the_ref(client):
    boss = create(client, "customer", name="Boss")
    fan = create(client, "customer", name="Fan", referrer=boss["id"])
    assert client.delete(f"{API}/customer/{boss['id']}").status_code == 204
    data = client.get(f"{API}/customer/{fan['id']}").get_json()["data"]
    assert data["referrer"] is None and data["version"] == 2
    history = client.get(f"{API}/customer/{fan['id']}/history").get_json()["data"]
    assert history[0]["changes"] == {"referrer": [boss["id"], None]}


def test_cascade_deletes_children(client):
    customer = create(client, "customer", name="A")
    contracts = [create(client, "contract", customer=customer["id"])["id"] for _ in range(2)]
    other = create(client, "contract")
    assert client.delete(f"{API}/customer/{customer['id']}").status_code == 204
    assert ids(client.get(f"{API}/contract")) == [other["id"]]
    binned = client.get(f"{API}/recycle_bin?entity=contract").get_json()["data"]
    assert sorted(r["id"] for r in binned) == contracts


# ---------------------------------------------------------------- audit trail

def test_history_has_who_when_field_old_new(client, rt):
    create(client, "customer", name="A", age=30)
    client.patch(f"{API}/customer/1", json={"age": 31, "level": "gold"}, headers=OVERWRITE)
    rt.records.update("customer", 1, {"name": "B"}, Actor(7, "alice", access=rt.permissions.access(["admin"])))
    history = client.get(f"{API}/customer/1/history").get_json()["data"]
    assert [h["action"] for h in history] == ["update", "update", "create"]
    assert history[0]["actor"] == "alice" and history[0]["actor_id"] == 7
    assert history[0]["changes"] == {"name": ["A", "B"]}
    assert history[1]["actor"] == "admin"
    assert history[1]["changes"] == {"age": [30, 31], "level": ["bronze", "gold"]}
    assert history[2]["changes"]["name"] == [None, "A"] and history[2]["changes"]["age"] == [None, 30]
    for item in history:
        moment = dt.datetime.fromisoformat(item["at"])
        assert abs(dt.datetime.now(dt.UTC) - moment) < dt.timedelta(minutes=5)


def test_actor_is_recorded_on_the_record(rt):
    admin = rt.permissions.access(["admin"])
    record = rt.records.create("customer", {"name": "A"}, Actor(7, "alice", team_id=3, access=admin))
    assert (record["created_by"], record["owner_id"], record["team_id"]) == (7, 7, 3)
    updated = rt.records.update("customer", record["id"], {"age": 3}, Actor(8, "bob", access=admin))
    assert (updated["created_by"], updated["updated_by"]) == (7, 8)


# ---------------------------------------------------------------- bulk create

def test_bulk_create_is_all_or_none(client):
    response = client.post(f"{API}/customer/_bulk", json=[{"name": "A"}, {"name": "B", "age": -1}, {"nme": "C"}])
    error = is_error(response, 422, "validation_failed")
    assert error["message"] == "2 record(s) have invalid values"
    assert error["details"] == {"1": {"age": ["must be at least 0"]},
                                "2": {"nme": ["unknown field (did you mean 'name'?)"], "name": ["is required"]}}
    assert ids(client.get(f"{API}/customer")) == []

    error = is_error(client.post(f"{API}/customer/_bulk", json=[{"name": "A", "mobile": "13812345678"},
                                                                {"name": "B", "mobile": "13812345678"}]),
                     409, "unique_violation")
    assert ids(client.get(f"{API}/customer")) == []

    created = client.post(f"{API}/customer/_bulk", json={"data": [{"name": "A"}, {"name": "B"}]})
    assert created.status_code == 201
    assert [r["name"] for r in created.get_json()["data"]] == ["A", "B"]
    assert sorted(ids(client.get(f"{API}/customer"))) == [r["id"] for r in created.get_json()["data"]]


def test_bulk_create_refs_are_checked_per_record(client):
    customer = create(client, "customer", name="A")
    error = is_error(client.post(f"{API}/order/_bulk", json=[
        {"customer": customer["id"], "ordered_at": "2026-01-01T10:00:00Z"},
        {"customer": 999, "ordered_at": "2026-01-01T10:00:00Z"}]), 409)
    assert error["details"] == {"1": {"customer": ["Customer 999 does not exist"]}}
    assert ids(client.get(f"{API}/order")) == []


def test_bulk_create_bad_bodies(client):
    is_error(client.post(f"{API}/customer/_bulk", json=[]), 400, "invalid_body")
    is_error(client.post(f"{API}/customer/_bulk", json={"name": "A"}), 400, "invalid_body")
    is_error(client.post(f"{API}/customer/_bulk", json=[{"name": "A"}] * 1001), 400, "too_many_records")
    error = is_error(client.post(f"{API}/customer/_bulk", json=[{"name": "A"}, 5]), 422)
    assert error["details"] == {"1": {"_body": ["must be a JSON object"]}}


def test_service_refuses_bad_bulk_like_the_api(rt):
    with pytest.raises(ValidationFailed) as failed:
        rt.records.create_many("product", [{"name": "A"}, {"name": None}], SYSTEM)
    assert failed.value.details == {"1": {"name": ["is required"]}}


# ---------------------------------------------------------------- many-to-many

def test_link_and_unlink_many_to_many_with_audit(client):
    customer = create(client, "customer", name="A")
    products = [create(client, "product", name=f"P{i}")["id"] for i in range(3)]
    linked = client.post(f"{API}/customer/{customer['id']}/favourites", json={"ids": products[:2]})
    assert linked.status_code == 200 and linked.get_json() == {"data": {"ids": products[:2]}}
    again = client.post(f"{API}/customer/{customer['id']}/favourites", json={"ids": [products[1], products[2]]})
    assert again.get_json()["data"]["ids"] == products
    assert sorted(ids(client.get(f"{API}/customer/{customer['id']}/favourites"))) == products

    assert client.delete(f"{API}/customer/{customer['id']}/favourites/{products[0]}").status_code == 204
    assert sorted(ids(client.get(f"{API}/customer/{customer['id']}/favourites"))) == products[1:]
    is_error(client.delete(f"{API}/customer/{customer['id']}/favourites/{products[0]}"), 404)

    history = client.get(f"{API}/customer/{customer['id']}/history").get_json()["data"]
    assert [h["changes"] for h in history[:3]] == [
        {"favourites": [products, products[1:]]},
        {"favourites": [products[:2], products]},
        {"favourites": [[], products[:2]]},
    ]
    assert client.get(f"{API}/customer/{customer['id']}").get_json()["data"]["version"] == 1


def test_link_refuses_unknown_records_and_relations(client):
    customer = create(client, "customer", name="A")
    error = is_error(client.post(f"{API}/customer/{customer['id']}/favourites", json={"ids": [5]}), 409,
                     "reference_not_found")
    assert error["details"] == {"ids": ["product 5 does not exist"]}
    is_error(client.post(f"{API}/customer/{customer['id']}/favourites", json={"ids": ["1"]}), 400, "invalid_body")
    is_error(client.post(f"{API}/customer/{customer['id']}/favourites", json=[1]), 400, "invalid_body")
    is_error(client.post(f"{API}/customer/{customer['id']}/nothing", json={"ids": [1]}), 404, "not_found")
    is_error(client.post(f"{API}/customer/{customer['id']}/orders", json={"ids": [1]}), 404, "unknown_relation")
    is_error(client.post(f"{API}/customer/99/favourites", json={"ids": []}), 404, "not_found")
    is_error(client.get(f"{API}/customer/{customer['id']}/nothing"), 404, "not_found")


def test_deleted_product_disappears_from_related_list(client):
    customer = create(client, "customer", name="A")
    products = [create(client, "product", name=f"P{i}")["id"] for i in range(2)]
    client.post(f"{API}/customer/{customer['id']}/favourites", json={"ids": products})
    client.delete(f"{API}/product/{products[0]}")
    assert ids(client.get(f"{API}/customer/{customer['id']}/favourites")) == [products[1]]


def test_sqlite_stores_utc_text_and_scaled_integers(tmp_path):
    """The storage format on SQLite: UTC text SQLAlchemy's DateTime would write
    (so sorting and comparing text is chronological), money as scaled integers."""
    import datetime as dt
    from decimal import Decimal

    import sqlalchemy as sa

    from crmkit.sqltypes import ExactDecimal, UTCDateTime

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'types.sqlite3'}")
    table = sa.Table("t", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("at", UTCDateTime), sa.Column("amount", ExactDecimal(18, 2)))
    table.metadata.create_all(engine)
    shanghai = dt.timezone(dt.timedelta(hours=8))
    moments = [dt.datetime(2026, 1, 31, 9, 30, tzinfo=shanghai), dt.datetime(2026, 1, 31, 1, 30, 0, 5),
               None]
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"at": m, "amount": a} for m, a in zip(moments, ["12.5", 0, None])])
        raw = conn.exec_driver_sql("SELECT at, amount FROM t ORDER BY id").all()
        assert raw == [("2026-01-31 01:30:00.000000", 1250), ("2026-01-31 01:30:00.000005", 0), (None, None)]
        rows = conn.execute(sa.select(table.c.at, table.c.amount).order_by(table.c.id)).all()
        later = conn.execute(sa.select(table.c.id).where(table.c.at > moments[0])).scalars().all()
    engine.dispose()
    assert rows[0] == (dt.datetime(2026, 1, 31, 1, 30, tzinfo=dt.UTC), Decimal("12.50"))
    assert str(rows[0][1]) == "12.50" and str(rows[1][1]) == "0.00"
    assert rows[1][0] == dt.datetime(2026, 1, 31, 1, 30, 0, 5, tzinfo=dt.UTC) and rows[2] == (None, None)
    assert later == [2]


def test_a_cleared_json_value_is_no_value(client):
    """Leaving a multi_enum or json field out and clearing it with null are the
    same: the isnull filter finds both (None is SQL NULL, not JSON 'null')."""
    left_out = create(client, "customer", name="A")
    cleared = create(client, "customer", name="B", tags=["vip"], extra={"a": 1})
    assert client.patch(f"{API}/customer/{cleared['id']}", json={"tags": None, "extra": None,
                                                               "version": 1}).status_code == 200
    assert ids(client.get(f"{API}/customer?tags__isnull=true&sort=id")) == [left_out["id"], cleared["id"]]
    assert ids(client.get(f"{API}/customer?extra__isnull=true&sort=id")) == [left_out["id"], cleared["id"]]


def test_fields_named_like_statement_parameters_update_normally(make_app, tmp_path):
    from conftest import make_config

    config = make_config(tmp_path / "config", {"app.yaml": "app: shop\n", "entities/link.yaml": """
        entity: link
        fields:
          record_id: {type: integer}
          old_version: {type: integer}
    """})
    client = make_app(config).test_client()
    created = create(client, "link", record_id=5, old_version=6)
    patched = client.patch(f"{API}/link/{created['id']}", json={"record_id": 7, "old_version": 8, "version": 1})
    assert patched.status_code == 200, patched.get_json()
    assert (patched.get_json()["data"]["record_id"], patched.get_json()["data"]["old_version"]) == (7, 8)
    assert client.get(f"{API}/link/{created['id']}").get_json()["data"]["record_id"] == 7
