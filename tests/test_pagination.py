"""Keyset pagination: pages cover every record exactly once in the requested
order; limits, cursors, counts, next_url and sparse fields."""

from __future__ import annotations

import base64
import functools
import json
import random
from decimal import Decimal
from urllib.parse import quote

import pytest

from conftest import is_error
from crmkit.permissions import SYSTEM

API = "/api/v1"
SIZE = 45


@pytest.fixture(scope="module")
def data(module_app):
    """45 customers: ties on age and level, missing ages/balances/birthdays, and
    all created in one bulk write (so created_at ties too)."""
    rng = random.Random(7)
    items = []
    for i in range(SIZE):
        item = {"name": "".join(rng.choice("abcdefghij") for _ in range(3)) + f"{i:02d}"[::-1],
                "level": rng.choice(["bronze", "silver", "gold"])}
        if rng.random() < 0.7:
            item["age"] = rng.randint(20, 26)
        if rng.random() < 0.6:
            item["balance"] = str(Decimal(rng.randint(0, 8)) * 10)
        if rng.random() < 0.5:
            item["birthday"] = f"1990-01-{rng.randint(1, 5):02d}"
        items.append(item)
    rt = module_app.extensions["crmkit"]
    rows = rt.records.create_many("customer", items, SYSTEM)
    records = {row["id"]: rt.schemas["customer"].dump(row) for row in rows}
    return module_app.test_client(), records


def expected_order(records: dict, sort: str) -> list[int]:
    """The order the API promises: by each key (NULLs last either way), then by id
    in the direction of the last key."""
    keys = [(k.lstrip("-"), k.startswith("-")) for k in sort.split(",")]
    if not any(name == "id" for name, _ in keys):
        keys.append(("id", keys[-1][1]))

    def value(record, name):
        v = record[name]
        return Decimal(v) if name == "balance" and v is not None else v

    def compare(a, b) -> int:
        for name, descending in keys:
            x, y = value(a, name), value(b, name)
            if x == y:
                continue
            if x is None or y is None:
                return 1 if x is None else -1  # NULLs last
            result = -1 if x < y else 1
            return -result if descending else result
        return 0

    return [r["id"] for r in sorted(records.values(), key=functools.cmp_to_key(compare))]


def walk(client, url: str) -> tuple[list[int], int]:
    seen, pages = [], 0
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        seen += [item["id"] for item in body["data"]]
        pages += 1
        url = body["next_url"]
        assert (body["next"] is None) == (url is None)
        assert pages <= SIZE + 1
    return seen, pages


@pytest.mark.parametrize("sort", [
    "id", "-id", "age", "-age", "name", "-name", "age,name", "-age,name", "level,-age", "-level,age,-balance",
    "balance", "-balance", "birthday,-id", "-birthday,-balance", "created_at", "-created_at", "-updated_at,level",
])
@pytest.mark.parametrize("limit", [1, 7, 100])
def test_pages_cover_every_record_once_in_order(data, sort, limit):
    client, records = data
    seen, pages = walk(client, f"{API}/customer?sort={sort}&limit={limit}")
    assert seen == expected_order(records, sort)
    assert pages == -(-SIZE // limit)


def test_default_sort_is_the_configured_one(data):
    client, records = data
    seen, _ = walk(client, f"{API}/customer?limit=10")
    assert seen == expected_order(records, "-created_at")


def test_pages_with_a_filter(data):
    client, records = data
    seen, _ = walk(client, f"{API}/customer?level=gold&sort=-age&limit=4")
    gold = {i: r for i, r in records.items() if r["level"] == "gold"}
    assert seen == expected_order(gold, "-age")


def test_limit_edges(data, module_app):
    client, _ = data
    maximum = module_app.extensions["crmkit"].spec.max_page_size
    assert maximum == 100
    one = client.get(f"{API}/customer?limit=1").get_json()
    assert len(one["data"]) == 1 and one["next"]
    assert len(client.get(f"{API}/customer?limit={maximum}").get_json()["data"]) == SIZE
    for bad in (str(maximum + 1), "0", "-1", "x", "1.5", ""):
        error = is_error(client.get(f"{API}/customer?limit={bad}"), 400, "invalid_parameter")
        assert "limit" in error["details"]
    assert is_error(client.get(f"{API}/customer?limit={maximum + 1}"), 400)["message"] == \
        f"limit must be between 1 and {maximum}"


def test_last_page_has_no_next(data):
    client, _ = data
    body = client.get(f"{API}/customer?limit={SIZE}").get_json()
    assert len(body["data"]) == SIZE and body["next"] is None and body["next_url"] is None


def _cursor(payload) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def test_malformed_cursors(data):
    client, _ = data
    good = client.get(f"{API}/customer?sort=age&limit=2").get_json()["next"]
    for bad in ("zzz", "!!!", good[:-3], _cursor("x"), _cursor(["age,id", [1]]), _cursor(["age,id", ["x", 1]]),
                _cursor(["age,id", [1, "2"]]), _cursor(["age,id", [True, 1]]), _cursor({"a": 1}),
                quote(base64.b64encode(b"\xff\xfe").decode())):
        error = is_error(client.get(f"{API}/customer?sort=age&limit=2&cursor={bad}"), 400, "invalid_cursor")
        assert error["details"] == {"cursor": ["malformed or from a different sort"]}


def test_cursor_from_another_sort(data):
    client, _ = data
    cursor = client.get(f"{API}/customer?sort=age&limit=2").get_json()["next"]
    is_error(client.get(f"{API}/customer?sort=-age&limit=2&cursor={cursor}"), 400, "invalid_cursor")
    is_error(client.get(f"{API}/customer?sort=name&limit=2&cursor={cursor}"), 400, "invalid_cursor")
    assert client.get(f"{API}/customer?sort=age&limit=2&cursor={cursor}").status_code == 200


def test_count(data):
    client, records = data
    body = client.get(f"{API}/customer?count=true&limit=3").get_json()
    assert body["count"] == SIZE and len(body["data"]) == 3
    second = client.get(body["next_url"]).get_json()
    assert second["count"] == SIZE  # the count does not depend on the page
    gold = sum(1 for r in records.values() if r["level"] == "gold")
    assert client.get(f"{API}/customer?level=gold&count=true").get_json()["count"] == gold
    assert "count" not in client.get(f"{API}/customer?count=false").get_json()
    is_error(client.get(f"{API}/customer?count=maybe"), 400, "invalid_parameter")


def test_next_url_keeps_the_query(data):
    client, _ = data
    first = client.get(f"{API}/customer?level=silver&sort=age&limit=2&fields=name,age").get_json()
    assert first["next_url"].startswith(f"{API}/customer?")
    assert "level=silver" in first["next_url"] and "fields=name%2Cage" in first["next_url"]
    second = client.get(first["next_url"]).get_json()
    assert all(set(item) == {"id", "version", "name", "age"} for item in second["data"])
    assert not {i["id"] for i in first["data"]} & {i["id"] for i in second["data"]}


def test_sparse_fields(data):
    client, records = data
    body = client.get(f"{API}/customer?fields=name,level&limit=5").get_json()
    assert all(set(item) == {"id", "version", "name", "level"} for item in body["data"])
    for item in body["data"]:
        assert item["name"] == records[item["id"]]["name"]
    error = is_error(client.get(f"{API}/customer?fields=name,nmae"), 400, "invalid_parameter")
    assert error["details"] == {"fields": ["unknown field 'nmae' (did you mean 'name'?)"]}


@pytest.mark.parametrize("sort, message", [
    ("nme", "cannot sort by unknown field 'nme'"),
    ("tags", "cannot sort by multi_enum field 'tags'"),
    ("-notes", "cannot sort by text field 'notes'"),
    ("extra", "cannot sort by json field 'extra'"),
])
def test_bad_sort(data, sort, message):
    client, _ = data
    error = is_error(client.get(f"{API}/customer?sort={sort}"), 400, "invalid_sort")
    assert error["message"] == message


def test_a_field_named_twice_in_sort_sorts_by_its_first_mention(data):
    client, _ = data
    once = client.get(f"{API}/customer?sort=age&limit=100").get_json()["data"]
    assert client.get(f"{API}/customer?sort=age,-age&limit=100").get_json()["data"] == once


def test_related_list_pages(data, module_app):
    client, records = data
    rt = module_app.extensions["crmkit"]
    owner, other = sorted(records)[:2]
    orders = rt.records.create_many("order", [
        {"customer": owner if i != 3 else other, "total": f"{i}.00", "ordered_at": f"2026-01-0{i + 1}T10:00:00Z"}
        for i in range(7)], SYSTEM)
    mine = [o["id"] for o in orders if o["customer_id"] == owner]
    seen, pages = walk(client, f"{API}/customer/{owner}/orders?sort=-total&limit=2")
    assert seen == sorted(mine, reverse=True) and pages == 3
    body = client.get(f"{API}/customer/{owner}/orders?count=true&total__gte=3&limit=1").get_json()
    assert body["count"] == 3 and len(body["data"]) == 1
    is_error(client.get(f"{API}/customer/{owner}/orders?limit=0"), 400, "invalid_parameter")
    is_error(client.get(f"{API}/customer/{owner}/orders?cursor=zzz"), 400, "invalid_cursor")
