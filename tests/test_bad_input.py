"""Hostile input on every kind of parameter answers a 4xx in the one error
shape, quickly: numbers no field can hold (huge exponents, thousands of
digits, digits that are not ASCII), NUL characters, in bodies, filters,
cursors, If-Match, path ids and the people and audit parameters.

A number like 1e999999999 once froze a worker holding the GIL: a thread or a
signal cannot interrupt that, so each batch of requests runs in a forked
child that is killed when one answer takes longer than ANSWER_SECONDS."""

from __future__ import annotations

import base64
import json
import multiprocessing
from urllib.parse import quote

import pytest

from conftest import MINI_FILES, OVERWRITE, as_test_app, make_config
from crmkit.app import create_app
from crmkit.permissions import SYSTEM
from crmkit.settings import Settings

API = "/api/v1"
ANSWER_SECONDS = 5

MEASURE_YAML = """
    entity: measure
    label: {en: Measure, zh: 测量}
    title: label
    fields:
      label: {type: string, max_length: 20}
      amount: {type: integer, min: 0}
      ratio: {type: decimal, precision: 10, scale: 4}
      price: {type: money}
      flag: {type: boolean}
      day: {type: date}
      moment: {type: datetime}
      grade: {type: enum, options: [1, 2, 3]}
      kind: {type: enum, options: [a, b]}
      kinds: {type: multi_enum, options: [a, b]}
      place: {type: region}
      buyer: {type: ref, to: customer}
      data: {type: json}
      body: {type: text}
      phone: {type: phone}
    list: {sort: "-id"}
"""

HUGE_DIGITS = "9" * 5000
#: Beyond what a body may hold at all (refused as the JSON is read) ...
ABSURD_NUMBERS = ["1e999999999", "-1e999999999", "1e-999999999", "1E+9999999999999999999", "1e-9999999999999999999",
                  HUGE_DIGITS, "-" + HUGE_DIGITS, "0." + "0" * 5000 + "1", HUGE_DIGITS + ".5", "1" * 4300]
#: ... and within that, but beyond any field (refused by the field).
LARGE_NUMBERS = ["1e999", "-1e999", "9" * 999, "1e-999", "-" + "9" * 999 + ".5"]
NUMERIC_FIELDS = ["amount", "ratio", "price", "grade", "buyer", "place", "data", "label", "flag"]
TEXT_VALUES = ["\x00", "a\x00b", HUGE_DIGITS, "1e999999999", "²", "١٢", "9" * 30, "-" + HUGE_DIGITS, "1e-999999999"]


@pytest.fixture(scope="module")
def app(module_database_url, tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_input")
    config = make_config(root / "config", {**MINI_FILES, "entities/measure.yaml": MEASURE_YAML})
    app = as_test_app(create_app(config, Settings(database_url=module_database_url, instance_dir=root / "instance")))
    rt = app.extensions["crmkit"]
    rt.records.create("customer", {"name": "alice"}, SYSTEM)
    rt.records.create("measure", {"label": "one", "amount": 1, "ratio": "0.5", "price": "1.00"}, SYSTEM)
    app.test_client().get(f"{API}/me")  # the admin's token exists before any fork
    yield app
    rt.engine.dispose()


def _serve(app, requests, pipe) -> None:
    """In the forked child: answer each request, send (status, body) back."""
    app.extensions["crmkit"].engine.dispose(close=False)  # the parent's connections stay the parent's
    client = app.test_client()
    for method, url, kwargs in requests:
        response = client.open(url, method=method, **kwargs)
        pipe.send((response.status_code, response.mimetype, response.get_data(as_text=True)))
    pipe.close()


def answers(app, requests: list[tuple[str, str, dict]]) -> list[tuple[int, dict]]:
    """(status, JSON body) of each request, each within ANSWER_SECONDS or the test fails."""
    context = multiprocessing.get_context("fork")
    parent, child = context.Pipe(duplex=False)
    process = context.Process(target=_serve, args=(app, requests, child), daemon=True)
    process.start()
    child.close()
    results = []
    try:
        for method, url, _ in requests:
            if not parent.poll(ANSWER_SECONDS):
                pytest.fail(f"{method} {url[:120]} did not answer within {ANSWER_SECONDS} s")
            status, mimetype, text = parent.recv()
            assert mimetype == "application/json", (method, url[:120], status, text[:300])
            results.append((status, json.loads(text)))
    finally:
        process.kill()
        process.join()
        parent.close()
    return results


def all_refused(app, requests: list[tuple[str, str, dict]]) -> None:
    """Every request gets a 4xx with the one error shape."""
    for (method, url, kwargs), (status, body) in zip(requests, answers(app, requests)):
        where = f"{method} {url[:100]} {str(kwargs)[:100]}"
        assert 400 <= status < 500, (where, status, body)
        assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), (where, body)
        assert len(body["error"]["message"]) < 500, (where, body)  # a huge value is not echoed whole


def raw(text: str, **headers) -> dict:
    return {"data": text, "content_type": "application/json", "headers": headers}


# ---------------------------------------------------------------- bodies

@pytest.mark.parametrize("field", NUMERIC_FIELDS)
def test_numbers_no_field_can_hold_in_bodies(app, field):
    requests = []
    for literal in ABSURD_NUMBERS + LARGE_NUMBERS:
        if field == "data" and literal == "1e-999":
            continue  # a JSON field holds it: 0.0
        body = f'{{"label": "x", "{field}": {literal}}}' if field != "label" else f'{{"label": {literal}}}'
        requests += [("POST", f"{API}/measure", raw(body)),
                     ("PATCH", f"{API}/measure/1", raw(body, **OVERWRITE)),
                     ("POST", f"{API}/measure/_bulk", raw(f"[{body}]"))]
        if field not in ("label", "data"):  # the same as text: any text is a fair label or JSON value
            requests.append(("POST", f"{API}/measure", raw(json.dumps({"label": "x", field: literal}))))
    all_refused(app, requests)


def test_numbers_no_field_can_hold_in_other_bodies(app):
    requests = []
    for literal in ABSURD_NUMBERS + LARGE_NUMBERS:
        requests += [
            ("POST", f"{API}/customer/1/favourites", raw(f'{{"ids": [{literal}]}}')),
            ("POST", f"{API}/customer/1/collaborators", raw(f'{{"user_id": {literal}, "access": "read"}}')),
            ("POST", f"{API}/me/tokens", raw(f'{{"name": "t", "expires_days": {literal}}}')),
            ("PATCH", f"{API}/measure/1", raw(f'{{"label": "x", "version": {literal}}}')),
            ("PATCH", f"{API}/customer/1", raw(f'{{"owner_id": {literal}}}', **OVERWRITE)),
            ("POST", f"{API}/teams", raw(f'{{"name": "t{len(requests)}", "parent_id": {literal}}}')),
        ]
    all_refused(app, requests)


# ---------------------------------------------------------------- filters and cursors

TEXTUAL = ("label", "body", "phone", "buyer.name")


@pytest.mark.parametrize("field", ["id", "label", "amount", "ratio", "price", "flag", "day", "moment", "grade", "kind",
                                   "kinds", "place", "buyer", "body", "phone", "created_by", "buyer.name"])
def test_hostile_filter_values(app, field):
    requests = []
    for op in ("", "__gt", "__in", "__ne", "__contains", "__within", "__isnull"):
        for value in TEXT_VALUES:
            if field in TEXTUAL and op not in ("__within", "__isnull") and "\x00" not in value:
                continue  # any text is a fair filter on a text field
            requests.append(("GET", f"{API}/measure?{field}{op}={quote(value)}", {}))
    all_refused(app, requests)


def _cursor(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def test_hostile_cursors(app):
    cursors = [
        ("-id", base64.urlsafe_b64encode(b'["-id", [' + HUGE_DIGITS.encode() + b"]]").decode()),
        ("-id", base64.urlsafe_b64encode(b'["-id", [1e999999999]]').decode()),
        ("-id", base64.urlsafe_b64encode(b'["-id", [1E+9999999999999999999]]').decode()),
        ("-id", base64.urlsafe_b64encode(b"[" * 100_000).decode()),
        ("ratio", _cursor(["ratio,-id", ["1e999999999", 1]])),
        ("price", _cursor(["price,-id", [HUGE_DIGITS, 1]])),
        ("amount", _cursor(["amount,-id", [10**400, 1]])),
        ("moment", _cursor(["moment,-id", ["9" * 5000, 1]])),
        ("-id", _cursor(["-id", ["\x00"]])),
        ("-id", "\x00"),
        ("-id", "%" * 5000),
    ]
    requests = []
    for sort, cursor in cursors:
        requests.append(("GET", f"{API}/measure?sort={quote(sort)}&cursor={quote(cursor)}", {}))
        requests.append(("GET", f"{API}/customer/1/orders?cursor={quote(cursor)}", {}))
    all_refused(app, requests)


# ---------------------------------------------------------------- headers and paths

def test_hostile_if_match(app):
    requests = []
    for value in (HUGE_DIGITS, f'"{HUGE_DIGITS}"', '"²"', '"1e999999999"', '"-1"', '"0"', '"2147483648"', "\t",
                  'W/"' + "1" * 11 + '"', '"1",*'):
        requests += [("PATCH", f"{API}/measure/1", {"json": {"label": "x"}, "headers": {"If-Match": value}}),
                     ("DELETE", f"{API}/measure/1", {"headers": {"If-Match": value}}),
                     ("POST", f"{API}/measure/1/transitions/x", {"headers": {"If-Match": value}})]
    all_refused(app, requests)


@pytest.mark.parametrize("record_id", [HUGE_DIGITS, "²", "١", "0", "-1", "1e5", "2147483648", "%00", quote("\u00a0")])
def test_hostile_path_ids(app, record_id):
    requests = [
        ("GET", f"{API}/measure/{record_id}", {}),
        ("PATCH", f"{API}/measure/{record_id}", {"json": {"version": 1}}),
        ("DELETE", f"{API}/measure/{record_id}", {}),
        ("GET", f"{API}/measure/{record_id}/history", {}),
        ("GET", f"{API}/measure/{record_id}/transitions", {}),
        ("GET", f"{API}/customer/{record_id}/orders", {}),
        ("GET", f"{API}/customer/{record_id}/collaborators", {}),
        ("DELETE", f"{API}/customer/1/collaborators/{record_id}", {}),
        ("DELETE", f"{API}/customer/1/favourites/{record_id}", {}),
        ("POST", f"{API}/recycle_bin/measure/{record_id}/restore", {}),
        ("GET", f"{API}/users/{record_id}", {}),
        ("PATCH", f"{API}/users/{record_id}", {"json": {"display_name": "x"}}),
        ("GET", f"{API}/users/{record_id}/tokens", {}),
        ("DELETE", f"{API}/users/1/tokens/{record_id}", {}),
        ("DELETE", f"{API}/me/tokens/{record_id}", {}),
        ("GET", f"{API}/teams/{record_id}", {}),
        ("PATCH", f"{API}/teams/{record_id}", {"json": {"label": "x"}}),
    ]
    all_refused(app, requests)


# ---------------------------------------------------------------- people, audit and the rest

@pytest.mark.parametrize("value", TEXT_VALUES + ["-5", " 7", "+3"])
def test_hostile_people_and_audit_parameters(app, value):
    requests = [
        ("GET", f"{API}/users?team_id={quote(value)}", {}),
        ("GET", f"{API}/audit?record_id={quote(value)}", {}),
        ("GET", f"{API}/audit?actor_id={quote(value)}", {}),
        ("GET", f"{API}/audit?before={quote(value)}", {}),
    ]
    if "\x00" in value:  # any text is a fair value of these otherwise
        requests += [(method, url, {}) for method, url in [
            ("GET", f"{API}/audit?entity={quote(value)}"), ("GET", f"{API}/audit?action={quote(value)}"),
            ("GET", f"{API}/users?q={quote(value)}"), ("GET", f"{API}/users?active={quote(value)}"),
            ("GET", f"{API}/regions?parent={quote(value)}"), ("GET", f"{API}/recycle_bin?entity={quote(value)}"),
            ("GET", f"{API}/measure/_export?label={quote(value)}"), ("GET", f"{API}/measure/1?fields={quote(value)}"),
            ("GET", f"{API}/teams?x={quote(value)}")]]
    all_refused(app, requests)


def test_nul_in_a_parameter_name(app):
    all_refused(app, [("GET", f"{API}/audit?{quote(chr(0))}=1", {}), ("GET", f"{API}/measure?a{quote(chr(0))}=1", {})])
