"""List filters: every operator on every kind of field, bad filters as one
400 error shape, and property tests that the API filters as Python would."""

from __future__ import annotations

import datetime as dt
import operator
import random
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import is_error
from crmkit import regions
from crmkit.fieldtypes import BUILTIN_TYPES, FieldValueError
from crmkit.metadata.spec import FieldSpec, Option
from crmkit.permissions import SYSTEM

API = "/api/v1"
UTC = dt.UTC

# Names sort alike under every collation: lower-case ASCII letters only.
CUSTOMERS = [
    {"name": "alice", "mobile": "13800000001", "email": "alice@example.com", "age": 30, "balance": "100.00",
     "birthday": "1990-01-01", "last_seen": "2026-01-01T10:00:00Z", "level": "gold", "tags": ["vip"],
     "region": "440106", "active": True, "website": "https://alice.example.com", "notes": "likes tea"},
    {"name": "bob", "mobile": "13900000002", "age": 25, "balance": "50.50", "birthday": "1995-06-15",
     "last_seen": "2026-02-01T10:00:00Z", "level": "silver", "tags": ["vip", "new"], "region": "440103",
     "active": False, "referrer": 1},
    {"name": "carol", "balance": "0.00", "level": "bronze", "tags": [], "region": "110101", "referrer": 1},
    {"name": "dave", "mobile": "13700000004", "age": 40, "birthday": "1980-12-31",
     "last_seen": "2026-03-01T10:00:00+08:00", "level": "gold", "tags": ["risk"], "region": "310101",
     "active": True, "notes": "100% sure_thing"},
    {"name": "erin", "age": 30, "balance": "1000.00", "level": "silver", "region": "440000"},
]
ORDERS = [
    {"customer": 1, "total": "10.00", "ordered_at": "2026-01-05T10:00:00Z"},
    {"customer": 2, "total": "20.00", "ordered_at": "2026-01-06T10:00:00Z"},
    {"customer": 4, "total": "30.00", "ordered_at": "2026-01-07T10:00:00Z"},
    {"customer": 1, "total": "40.00", "ordered_at": "2026-01-08T10:00:00Z"},
]


@pytest.fixture(scope="module")
def client(module_app):
    rt = module_app.extensions["crmkit"]
    created = [rt.records.create("customer", item, SYSTEM) for item in CUSTOMERS]
    assert [r["id"] for r in created] == [1, 2, 3, 4, 5]
    rt.records.create_many("order", ORDERS, SYSTEM)
    return module_app.test_client()


def found(client, query: str) -> list[int]:
    """Ids among the five customers above (the property tests below add more)."""
    response = client.get(f"{API}/customer?{query}&id__lte=5&limit=100")
    assert response.status_code == 200, response.get_json()
    return sorted(item["id"] for item in response.get_json()["data"])


@pytest.mark.parametrize("query, expected", [
    # string-like (name: string, mobile: phone, email, website: url)
    ("name=alice", [1]),
    ("name__eq=alice", [1]),
    ("name__ne=alice", [2, 3, 4, 5]),
    ("name__in=alice,bob,nobody", [1, 2]),
    ("name__nin=alice,bob", [3, 4, 5]),
    ("name__contains=AR", [3]),
    ("name__startswith=Da", [4]),
    ("name__gt=carol", [4, 5]),
    ("name__gte=carol", [3, 4, 5]),
    ("name__lt=bob", [1]),
    ("name__lte=bob", [1, 2]),
    ("mobile__startswith=139", [2]),
    ("mobile__gt=13800000000", [1, 2]),
    ("mobile__isnull=true", [3, 5]),
    ("mobile__isnull=false", [1, 2, 4]),
    ("email__contains=@example", [1]),
    ("website__startswith=https://", [1]),
    ("notes__contains=100%", [4]),   # % and _ are literal, not wildcards
    ("notes__contains=e_t", [4]),
    ("notes__contains=%", [4]),
    ("notes__isnull=true", [2, 3, 5]),
    # integer
    ("age=30", [1, 5]),
    ("age__ne=30", [2, 3, 4]),  # NULL is not 30
    ("age__gt=30", [4]),
    ("age__gte=30", [1, 4, 5]),
    ("age__lt=30", [2]),
    ("age__lte=30", [1, 2, 5]),
    ("age__in=25,40", [2, 4]),
    ("age__nin=25,40", [1, 3, 5]),
    ("age__isnull=true", [3]),
    ("age__isnull=false", [1, 2, 4, 5]),
    # money
    ("balance=100", [1]),
    ("balance=100.00", [1]),
    ("balance__ne=100", [2, 3, 4, 5]),
    ("balance__gt=50.5", [1, 5]),
    ("balance__gte=50.50", [1, 2, 5]),
    ("balance__lt=50.5", [3]),
    ("balance__lte=100", [1, 2, 3]),
    ("balance__in=0,1000", [3, 5]),
    ("balance__nin=0,1000", [1, 2, 4]),
    ("balance__isnull=true", [4]),
    # date
    ("birthday=1990-01-01", [1]),
    ("birthday__ne=1990-01-01", [2, 3, 4, 5]),
    ("birthday__gt=1985-01-01", [1, 2]),
    ("birthday__gte=1990-01-01", [1, 2]),
    ("birthday__lt=1990-01-01", [4]),
    ("birthday__lte=1990-01-01", [1, 4]),
    ("birthday__in=1990-01-01,1980-12-31", [1, 4]),
    ("birthday__nin=1990-01-01", [2, 3, 4, 5]),
    ("birthday__isnull=true", [3, 5]),
    # datetime (an offset is honoured; none means the app's timezone, Asia/Shanghai)
    ("last_seen=2026-01-01T10:00:00Z", [1]),
    ("last_seen=2026-01-01T18:00:00%2B08:00", [1]),
    ("last_seen__ne=2026-01-01T10:00:00Z", [2, 3, 4, 5]),
    ("last_seen__gt=2026-01-01T10:00:00Z", [2, 4]),
    ("last_seen__gte=2026-02-01T18:00:00%2B08:00", [2, 4]),
    ("last_seen__lt=2026-03-01T02:00:00Z", [1, 2]),
    ("last_seen__lte=2026-03-01T02:00:00Z", [1, 2, 4]),
    ("last_seen__in=2026-01-01T10:00:00Z,2026-02-01T10:00:00Z", [1, 2]),
    ("last_seen__nin=2026-01-01T10:00:00Z", [2, 3, 4, 5]),
    ("last_seen__isnull=true", [3, 5]),
    ("created_at__gte=2000-01-01T00:00:00Z", [1, 2, 3, 4, 5]),
    # enum
    ("level=gold", [1, 4]),
    ("level__ne=gold", [2, 3, 5]),
    ("level__in=gold,bronze", [1, 3, 4]),
    ("level__nin=gold,bronze", [2, 5]),
    ("level__isnull=false", [1, 2, 3, 4, 5]),
    # multi_enum
    ("tags__contains=vip", [1, 2]),
    ("tags__contains=risk", [4]),
    ("tags__contains=new", [2]),
    ("tags__isnull=true", [5]),
    # boolean
    ("active=true", [1, 4]),
    ("active=false", [2]),
    ("active__ne=true", [2, 3, 5]),
    ("active__isnull=true", [3, 5]),
    # ref, and dotted filters through a ref
    ("referrer=1", [2, 3]),
    ("referrer__ne=1", [1, 4, 5]),
    ("referrer__in=1,2", [2, 3]),
    ("referrer__nin=1", [1, 4, 5]),
    ("referrer__isnull=true", [1, 4, 5]),
    ("referrer.name=alice", [2, 3]),
    ("referrer.level__in=gold,silver", [2, 3]),
    # region: within a province or city includes everything inside it
    ("region=440106", [1]),
    ("region__within=440000", [1, 2, 5]),
    ("region__within=440100", [1, 2]),
    ("region__within=110000", [3]),
    ("region__in=110101,310101", [3, 4]),
    ("region__ne=440106", [2, 3, 4, 5]),
    # id, and several filters at once (all must hold)
    ("id__gt=3", [4, 5]),
    ("id__in=1,5", [1, 5]),
    ("level=gold&age__gt=30", [4]),
    ("age__gte=25&age__lte=30", [1, 2, 5]),
    ("q=ali", [1]),
])
def test_filter_operators(client, query, expected):
    assert found(client, query) == expected


@pytest.mark.parametrize("query, expected", [
    ("customer.level=gold", [1, 3, 4]),
    ("customer.name__startswith=b", [2]),
    ("customer.age__gte=30&total__gt=15", [3, 4]),
    ("customer=1", [1, 4]),
    ("customer.region__within=440000", [1, 2, 4]),
    ("total__gte=20&ordered_at__lt=2026-01-08T00:00:00Z", [2, 3]),
])
def test_filters_on_another_entity_through_its_ref(client, query, expected):
    response = client.get(f"{API}/order?{query}")
    assert sorted(item["id"] for item in response.get_json()["data"]) == expected


def test_filter_in_the_count(client):
    body = client.get(f"{API}/customer?level=gold&id__lte=5&count=true&limit=1").get_json()
    assert body["count"] == 2 and len(body["data"]) == 1


@pytest.mark.parametrize("query, code, message", [
    ("name__like=a", "invalid_filter", "unknown filter operator 'like'"),
    ("age__contains=3", "invalid_filter", "operator 'contains' does not apply to integer field 'age'"),
    ("level__gt=gold", "invalid_filter", "operator 'gt' does not apply to enum field 'level'"),
    ("tags=vip", "invalid_filter", "operator 'eq' does not apply to multi_enum field 'tags'"),
    ("extra=1", "invalid_filter", "operator 'eq' does not apply to json field 'extra'"),
    ("notes__gt=a", "invalid_filter", "operator 'gt' does not apply to text field 'notes'"),
    ("name__within=440000", "invalid_filter", "operator 'within' does not apply to string field 'name'"),
    ("age=abc", "invalid_filter", "bad value for filter age: must be a whole number"),
    ("age__in=1,x", "invalid_filter", "bad value for filter age__in: must be a whole number"),
    ("age__in=", "invalid_filter", "bad value for filter age__in: needs 1 to 500 comma-separated values"),
    ("balance__gt=1.234", "invalid_filter",
     "bad value for filter balance__gt: has more than 2 digits after the decimal point"),
    ("birthday=2026-02-30", "invalid_filter", "bad value for filter birthday: must be a date like 2026-01-31"),
    ("last_seen__gt=soon", "invalid_filter",
     "bad value for filter last_seen__gt: must be a date-time like 2026-01-31T09:30:00+08:00 "
     "or a date like 2026-01-31"),
    ("level=diamond", "invalid_filter", "bad value for filter level: must be one of: bronze, silver, gold"),
    ("tags__contains=bad", "invalid_filter", "bad value for filter tags__contains: must be one of: vip, new, risk"),
    ("region__within=999999", "invalid_filter",
     "bad value for filter region__within: '999999' is not a known region code"),
    ("referrer=abc", "invalid_filter", "bad value for filter referrer: must be the id of a customer"),
    ("active=maybe", "invalid_filter", "bad value for filter active: must be true or false"),
    ("age__isnull=maybe", "invalid_parameter", "age__isnull must be true or false"),
    ("id=abc", "invalid_filter", "bad value for filter id: must be a whole number"),
    ("nme=alice", "invalid_filter", "unknown filter field 'nme'"),
    ("name.level=gold", "invalid_filter", "'name' is not a reference field of customer"),
    ("referrer.nme=alice", "invalid_filter", "unknown filter field 'nme'"),
    ("age__gt__lt=3", "invalid_filter", "unknown filter operator '?gt__lt'"),
    ("tag=vip", "invalid_filter", "unknown tag 'vip'"),
    ("view=vip", "invalid_parameter", "unknown view 'vip'"),
])
def test_bad_filters_get_400(client, query, code, message):
    error = is_error(client.get(f"{API}/customer?{query}"), 400, code)
    assert error["message"] == message


def test_unknown_filter_field_has_a_hint(client):
    error = is_error(client.get(f"{API}/customer?nme=alice"), 400)
    assert error["details"] == {"nme": ["unknown field 'nme' (did you mean 'name'?)"]}


def test_too_many_in_values(client):
    values = ",".join(str(i) for i in range(501))
    is_error(client.get(f"{API}/customer?age__in={values}"), 400, "invalid_filter")
    assert client.get(f"{API}/customer?age__in={values[: values.index(',500')]}").status_code == 200


# ---------------------------------------------------------------- properties

MEASURE_FIELDS = {"age": int, "balance": Decimal, "birthday": dt.date}
OPS = ["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "isnull"]


def _python_filter(values: dict[int, object], op: str, operand) -> list[int]:
    """What a filter means, in Python: NULL matches only isnull, ne and nin."""
    compare = {"eq": operator.eq, "gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le,
               "in": lambda v, xs: v in xs}

    def keep(v) -> bool:
        if op == "isnull":
            return (v is None) == operand
        if op == "ne":
            return v is None or v != operand
        if op == "nin":
            return v is None or v not in operand
        return v is not None and compare[op](v, operand)

    return sorted(i for i, v in values.items() if keep(v))


def _text(value) -> str:
    return value.isoformat() if isinstance(value, dt.date) else str(value)


@pytest.fixture(scope="module")
def measured(module_app_measures):
    return module_app_measures


@pytest.fixture(scope="module")
def module_app_measures(module_app):
    """60 customers with random ages, balances and birthdays (some missing), in
    the module's app next to the fixed data above."""
    rt = module_app.extensions["crmkit"]
    rng = random.Random(20261123)
    items = []
    for i in range(60):
        item = {"name": f"m{i:03d}"}
        if rng.random() > 0.15:
            item["age"] = rng.randint(0, 12)
        if rng.random() > 0.15:
            item["balance"] = str(Decimal(rng.randint(-500, 500)) / 4)
        if rng.random() > 0.15:
            item["birthday"] = (dt.date(2000, 1, 1) + dt.timedelta(days=rng.randint(0, 20))).isoformat()
        items.append(item)
    created = rt.records.create_many("customer", items, SYSTEM)
    table = {}
    for row in created:
        table[row["id"]] = {"age": row["age"], "balance": row["balance"], "birthday": row["birthday"]}
    return module_app.test_client(), table


OPERANDS = {
    "age": st.integers(-1, 13),
    "balance": st.integers(-520, 520).map(lambda n: Decimal(n) / 4),
    "birthday": st.integers(-1, 21).map(lambda d: dt.date(2000, 1, 1) + dt.timedelta(days=d)),
}


@st.composite
def filters(draw):
    field = draw(st.sampled_from(sorted(OPERANDS)))
    op = draw(st.sampled_from(OPS))
    if op == "isnull":
        return field, op, draw(st.booleans())
    if op in ("in", "nin"):
        return field, op, draw(st.lists(OPERANDS[field], min_size=1, max_size=4))
    return field, op, draw(OPERANDS[field])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flt=filters())
def test_api_filters_agree_with_python(measured, flt):
    client, table = measured
    field, op, operand = flt
    if op == "isnull":
        text = "true" if operand else "false"
    elif op in ("in", "nin"):
        text = ",".join(_text(v) for v in operand)
    else:
        text = _text(operand)
    query = urlencode({f"{field}__{op}": text, "name__startswith": "m", "limit": 100})
    response = client.get(f"{API}/customer?{query}")
    assert response.status_code == 200, response.get_json()
    got = sorted(item["id"] for item in response.get_json()["data"])
    expected = _python_filter({i: row[field] for i, row in table.items()}, op, operand)
    assert got == expected, (field, op, operand)


# ---------------------------------------------------------------- coercion round trip

TYPES = {t.name: t for t in BUILTIN_TYPES}
LABEL = {"en": "x"}
UTC_TZ = dt.UTC


def spec(type_name: str, **kwargs) -> FieldSpec:
    return FieldSpec("f", type_name, LABEL, **kwargs)


OPTIONS = (Option("a", LABEL), Option("b", LABEL), Option("c", LABEL))
STORABLE = st.characters(exclude_characters="\x00", exclude_categories=("Cs",))  # what databases store
VALID = [
    (spec("string", max_length=20), st.text(STORABLE, max_size=20).map(str.strip)),
    (spec("text"), st.text(STORABLE, max_size=200)),
    (spec("integer"), st.integers(-(2**63) + 1, 2**63 - 1)),
    (spec("decimal"), st.decimals(min_value=-10**12, max_value=10**12, places=4, allow_nan=False)),
    (spec("money"), st.decimals(min_value=-10**14, max_value=10**14, places=2, allow_nan=False)),
    (spec("boolean"), st.booleans()),
    (spec("date"), st.dates()),
    (spec("datetime"), st.datetimes(timezones=st.just(UTC_TZ))),
    (spec("email"), st.from_regex(r"[a-z0-9._]{1,20}@[a-z0-9]{1,10}\.(com|cn)", fullmatch=True)),
    (spec("phone"), st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True)),
    (spec("url"), st.from_regex(r"https?://[a-z]{1,10}\.cn/[a-z0-9]{0,10}", fullmatch=True)),
    (spec("enum", options=OPTIONS), st.sampled_from(["a", "b", "c"])),
    (spec("multi_enum", options=OPTIONS), st.lists(st.sampled_from(["a", "b", "c"]), unique=True)),
    (spec("ref", to="customer"), st.integers(1, 2**31 - 1)),
    (spec("region"), st.sampled_from(sorted(regions.all_codes()))),
    (spec("json"), st.recursive(st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(STORABLE, max_size=5),
                                lambda children: st.lists(children, max_size=3)
                                | st.dictionaries(st.text(STORABLE, max_size=5), children, max_size=3),
                                max_leaves=8)),
]


@pytest.mark.parametrize("field, values", VALID, ids=[f.type for f, _ in VALID])
def test_coercion_round_trip(field, values):
    ftype = TYPES[field.type]

    @settings(max_examples=60, deadline=None)
    @given(values)
    def check(value):
        stored = ftype.coerce(field, value, UTC_TZ)
        dumped = ftype.dump(field, stored)
        assert ftype.coerce(field, dumped, UTC_TZ) == stored
        assert ftype.dump(field, ftype.coerce(field, dumped, UTC_TZ)) == dumped
        if field.type not in ("json", "multi_enum"):  # a query string carries one scalar
            assert ftype.parse_text(field, str(dumped).lower() if field.type == "boolean" else str(dumped),
                                    UTC_TZ) == stored

    check()


# Whatever a JSON body can hold (parse_float=Decimal), and what plugins may pass (floats).
JUNK = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.decimals(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
    | st.dates().map(str) | st.datetimes().map(str) | st.sampled_from(["440106", "13812345678", "a", "1e3"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=6)


@pytest.mark.parametrize("field, _values", VALID, ids=[f.type for f, _ in VALID])
def test_junk_is_refused_with_a_message_or_accepted(field, _values):
    ftype = TYPES[field.type]

    @settings(max_examples=80, deadline=None)
    @given(JUNK)
    def check(value):
        try:
            stored = ftype.coerce(field, value, UTC_TZ)
        except FieldValueError as exc:
            assert str(exc)
            return
        assert ftype.coerce(field, ftype.dump(field, stored), UTC_TZ) == stored

    check()
