"""Bad input always gets a 4xx with the one JSON error shape, never a 500:
{"error": {"code", "message", ["details"]}}."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import OVERWRITE, as_test_app, is_error
from crmkit.app import create_app
from crmkit.permissions import SYSTEM
from crmkit.settings import Settings

API = "/api/v1"


@pytest.fixture(scope="module")
def client(module_app):
    rt = module_app.extensions["crmkit"]
    rt.records.create("customer", {"name": "alice", "mobile": "13812345678"}, SYSTEM)
    rt.records.create("product", {"name": "beans"}, SYSTEM)
    return module_app.test_client()


def post_raw(client, url: str, data, content_type: str = "application/json"):
    return client.post(url, data=data, content_type=content_type)


# ---------------------------------------------------------------- bodies

@pytest.mark.parametrize("data, message", [
    ("{bad", "the body is not valid JSON at line 1 column 2"),
    ("", "the body is not valid JSON at line 1 column 1"),
    ('{"name": "a",}', "the body is not valid JSON at line 1 column 14"),
    (b'{"name": "\xff"}', "the body is not valid JSON"),
    ("[" * 100_000, "the body is not valid JSON: nested too deeply"),
])
def test_non_json_body(client, data, message):
    error = is_error(post_raw(client, f"{API}/customer", data), 400, "invalid_json")
    assert error["message"] == message


@pytest.mark.parametrize("data", ['{"age": ' + "9" * 5000 + "}", '{"age": 1e999999999}', '{"age": 1e-1001}',
                                  '{"balance": 0.' + "1" * 1001 + "}"])
def test_numbers_no_field_can_take_are_refused_as_the_body_is_read(client, data):
    error = is_error(post_raw(client, f"{API}/customer", data), 400, "number_out_of_range")
    assert error["message"].startswith("the body holds a number no field can take")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
def test_wrong_content_type(client, content_type):
    error = is_error(post_raw(client, f"{API}/customer", '{"name": "a"}', content_type), 415,
                     "unsupported_media_type")
    assert error["message"] == "send the body as JSON with Content-Type: application/json"
    is_error(client.patch(f"{API}/customer/1", data='{"name": "a"}', content_type=content_type), 415)


def test_json_suffix_content_type_is_accepted(client):
    assert post_raw(client, f"{API}/product", '{"name": "tea"}', "application/merge-patch+json").status_code == 201


def test_missing_content_type(client):
    is_error(client.post(f"{API}/customer", data='{"name": "a"}'), 415, "unsupported_media_type")


@pytest.mark.parametrize("body", [[{"name": "a"}], "a name", 42, None, True])
def test_body_that_is_not_an_object(client, body):
    text = json.dumps(body)
    error = is_error(post_raw(client, f"{API}/customer", text), 422, "validation_failed")
    assert error["details"] == {"_body": ["must be a JSON object"]}
    error = is_error(client.patch(f"{API}/customer/1", data=text, content_type="application/json",
                                  headers=OVERWRITE), 422)
    assert error["details"] == {"_body": ["must be a JSON object"]}


@pytest.mark.parametrize("body, field, message", [
    ({"name": "a", "age": 10**400}, "age", "is too large"),
    ({"name": "a", "balance": 1e999}, "balance", "must be a finite number"),
    ({"name": "a", "balance": "1e999999"}, "balance", "must be a number like 12.50"),
    ({"name": "a", "balance": 1e300}, "balance", "is too large"),
    ({"name": "a", "age": 1e300}, "age", "is too large"),
    ({"name": "a", "balance": "1" * 40}, "balance", "is too large"),
    ({"name": "a", "referrer": 10**18}, "referrer", "must be the id of a customer"),
    ({"name": "a\u0000b"}, "name", "must not contain NUL characters"),
    ({"name": "a", "notes": "\u0000"}, "notes", "must not contain NUL characters"),
    ({"name": "a", "extra": {"k": "\u0000"}}, "extra", "must not contain NUL characters"),
    ({"name": "a", "last_seen": "9999-12-31T23:59:59-12:00"}, "last_seen", "is out of range"),
    ({"name": "a", "last_seen": "0001-01-01T00:00:00+08:00"}, "last_seen", "is out of range"),
    ({"name": "a", "region": 10**40}, "region", "must be a 6-digit region code like 440106"),
])
def test_extreme_values(client, body, field, message):
    error = is_error(client.post(f"{API}/customer", json=body), 422, "validation_failed")
    assert error["details"] == {field: [message]}


@pytest.mark.parametrize("raw, field", [
    ('{"name": "a", "extra": NaN}', "extra"),
    ('{"name": "a", "extra": [Infinity]}', "extra"),
    ('{"name": "\\ud800"}', "name"),
    ('{"name": "a", "extra": {"\\udfff": 1}}', "extra"),
])
def test_values_no_database_can_store(client, raw, field):
    error = is_error(post_raw(client, f"{API}/customer", raw), 422, "validation_failed")
    assert list(error["details"]) == [field]


def test_unknown_field_with_a_lone_surrogate_is_echoed_safely(client):
    response = post_raw(client, f"{API}/customer", '{"name": "a", "\\ud800x": 1}')
    error = is_error(response, 422, "validation_failed")
    assert list(error["details"]) == ["\ud800x"]


def test_oversized_body(mini_config, database_url, tmp_path, engines):
    app = as_test_app(create_app(mini_config, Settings(database_url, tmp_path / "instance", max_body_bytes=1000)))
    engines.add(app.extensions["crmkit"])
    client = app.test_client()
    error = is_error(client.post(f"{API}/customer", json={"name": "a", "notes": "x" * 2000}), 413, "body_too_large")
    assert error["message"] == "the request body is too large"
    assert client.post(f"{API}/customer", json={"name": "a", "notes": "x" * 100}).status_code == 201


# ---------------------------------------------------------------- URLs and methods

@pytest.mark.parametrize("method, url", [
    ("get", f"{API}/nothing"),
    ("post", f"{API}/nothing"),
    ("get", f"{API}/nothing/1"),
    ("patch", f"{API}/nothing/1"),
    ("delete", f"{API}/nothing/1"),
    ("get", f"{API}/nothing/1/history"),
    ("post", f"{API}/nothing/_bulk"),
])
def test_unknown_entity(client, method, url):
    kwargs = {"json": {}} if method in ("post", "patch") else {}
    error = is_error(getattr(client, method)(url, **kwargs), 404, "unknown_entity")
    assert error["message"] == "no entity named 'nothing'"


@pytest.mark.parametrize("url", [f"{API}/customer/1/orders/2/3/4", f"{API}/", f"{API}/customer/1/orders/x/y",
                                 f"{API}/customer/1/history/x/y"])
def test_unknown_route(client, url):
    error = is_error(client.get(url), 404, "not_found")
    assert error["message"] == "no such URL in the API; see /api/v1/docs"


@pytest.mark.parametrize("method, url", [
    ("put", f"{API}/customer/1"), ("delete", f"{API}/customer"), ("patch", f"{API}/customer"),
    ("put", f"{API}/customer"), ("delete", f"{API}/openapi.json"), ("delete", f"{API}/customer/1/history"),
])
def test_wrong_method(client, method, url):
    error = is_error(getattr(client, method)(url, json={}), 405, "method_not_allowed")
    assert error["message"] == f"method {method.upper()} is not allowed here"


@pytest.mark.parametrize("record_id", ["abc", "-1", "1.5", "0x1", "²", "१", "99999999999", "9" * 40, "2147483648"])
def test_id_that_is_not_a_number(client, record_id):
    is_error(client.get(f"{API}/customer/{record_id}"), 404, "not_found")
    is_error(client.patch(f"{API}/customer/{record_id}", json={"name": "x"}, headers=OVERWRITE), 404, "not_found")
    is_error(client.delete(f"{API}/customer/{record_id}"), 404, "not_found")
    is_error(client.get(f"{API}/customer/{record_id}/history"), 404, "not_found")
    is_error(client.post(f"{API}/recycle_bin/customer/{record_id}/restore"), 404, "not_found")
    is_error(client.delete(f"{API}/customer/1/favourites/{record_id}"), 404, "not_found")


def test_unknown_parameter_on_get(client):
    is_error(client.get(f"{API}/customer/1?bogus=1"), 400, "invalid_parameter")
    is_error(client.get(f"{API}/customer/1?fields=nope"), 400, "invalid_parameter")


@pytest.mark.parametrize("query, code", [
    ("name=a%00b", "invalid_parameter"),
    ("q=%00", "invalid_parameter"),
    ("id__gt=" + "9" * 30, "invalid_filter"),
    ("referrer=" + "9" * 30, "invalid_filter"),
    ("age__gt=" + "9" * 30, "invalid_filter"),
    ("balance__gt=1e999999", "invalid_filter"),
    ("birthday__gt=0000-01-01", "invalid_filter"),
    ("last_seen__lt=0001-01-01T00:00:00%2B08:00", "invalid_filter"),
])
def test_extreme_query_values(client, query, code):
    is_error(client.get(f"{API}/customer?{query}"), 400, code)


def test_link_ids_out_of_range(client):
    error = is_error(client.post(f"{API}/customer/1/favourites", json={"ids": [10**30, -1]}), 422)
    assert error["details"] == {"ids": ["must be from 1 to 2147483647"]}


def test_health(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok", "app": "mini"}


# ---------------------------------------------------------------- never a 500

FIELDS = ["name", "mobile", "email", "age", "balance", "birthday", "last_seen", "level", "tags", "region", "website",
          "active", "notes", "extra", "total_spent", "referrer", "code", "id", "version", "created_at", "nme"]
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
    | st.sampled_from(["2026-01-31", "2026-01-31T09:30:00+08:00", "13812345678", "440106", "gold", "vip", "1e5",
                       "12.345", "-0", "0001-01-01", "9999-12-31T23:59:59Z", "\u0000", "\ud800"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=2),
    max_leaves=5)
BODIES = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), VALUES, max_size=6)


def _checked(response) -> None:
    assert response.status_code < 500, response.get_data(as_text=True)
    if response.status_code >= 400:
        is_error(response, response.status_code)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=BODIES)
def test_random_bodies_never_give_500(client, body):
    text = json.dumps(body)
    _checked(post_raw(client, f"{API}/customer", text))
    _checked(client.patch(f"{API}/customer/1", data=text, content_type="application/json"))
    _checked(post_raw(client, f"{API}/customer/_bulk", json.dumps([body, body])))


OPS = ["", "__eq", "__ne", "__gt", "__gte", "__lt", "__lte", "__in", "__nin", "__contains", "__startswith",
       "__isnull", "__within", "__bogus"]
KEYS = (st.tuples(st.sampled_from(FIELDS + ["referrer.level", "referrer.nme", "sort", "limit", "cursor", "fields",
                                            "count", "q"]), st.sampled_from(OPS)).map("".join)
        | st.text(max_size=8))
PARAMS = st.lists(st.tuples(KEYS, st.text(max_size=15) | st.sampled_from(
    ["1", "-1", "0", "true", "gold", "vip", "440000", "2026-01-01", "age,-name", "x" * 30, "9" * 25, "1.005"])),
    max_size=4)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params=PARAMS)
def test_random_queries_never_give_500(client, params):
    query = urlencode(params)
    _checked(client.get(f"{API}/customer?{query}"))
    _checked(client.get(f"{API}/customer/1/orders?{query}"))
