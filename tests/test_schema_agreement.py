"""The fast loader of the records service and the generated marshmallow schemas
(which describe the API in OpenAPI and serve plugins) must accept and reject
the same bodies, with the same values."""

import datetime as dt
from decimal import Decimal
from types import MappingProxyType

import marshmallow as ma
from hypothesis import given, settings
from hypothesis import strategies as st

from crmkit.fieldtypes import BUILTIN_TYPES
from crmkit.metadata.spec import EntitySpec, FieldSpec, ListSpec, Option
from crmkit.serialization import EntitySchemas

TYPES = {t.name: t for t in BUILTIN_TYPES}
L = MappingProxyType({"en": "x"})


def _entity() -> EntitySpec:
    fields = {
        "name": FieldSpec("name", "string", L, required=True, max_length=10),
        "age": FieldSpec("age", "integer", L, min=0, max=150),
        "amount": FieldSpec("amount", "money", L, min=0),
        "born": FieldSpec("born", "date", L),
        "seen": FieldSpec("seen", "datetime", L),
        "level": FieldSpec("level", "enum", L, options=(Option("a", L), Option("b", L))),
        "tags": FieldSpec("tags", "multi_enum", L, options=(Option("x", L), Option("y", L))),
        "mobile": FieldSpec("mobile", "phone", L),
        "total": FieldSpec("total", "money", L, readonly=True),
    }
    return EntitySpec("thing", L, L, "name", False, MappingProxyType(fields), list=ListSpec((), ("-id",)))


SCHEMAS = EntitySchemas(_entity(), TYPES, dt.UTC)
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-10**20, 10**20), st.text(max_size=15),
    st.decimals(allow_nan=False, allow_infinity=False, places=3, min_value=-10**6, max_value=10**6),
    st.sampled_from(["a", "b", "x", "2026-01-31", "2026-01-31T10:00:00+08:00", "13812345678", "12.345", "1e3"]),
    st.lists(st.sampled_from(["x", "y", "z"]), max_size=3),
)
BODIES = st.dictionaries(st.sampled_from(["name", "age", "amount", "born", "seen", "level", "tags", "mobile", "other"]),
                         VALUES, max_size=6)


def _marshmallow(body: dict, partial: bool):
    schema = SCHEMAS.update if partial else SCHEMAS.create
    try:
        return schema.load(body), set()
    except ma.ValidationError as exc:
        return None, set(exc.messages)


@settings(max_examples=400, deadline=None)
@given(BODIES, st.booleans())
def test_fast_loader_agrees_with_marshmallow_schema(body, partial):
    values, errors = SCHEMAS.load(body, partial=partial)
    expected, expected_errors = _marshmallow(body, partial)
    assert set(errors) == expected_errors
    if not errors:
        assert values == expected


def test_readonly_field_is_refused_for_users_and_accepted_from_the_system():
    _, errors = SCHEMAS.load({"name": "a", "total": "1.00"}, partial=False)
    assert errors == {"total": ["is read-only"]}
    values, errors = SCHEMAS.load({"name": "a", "total": "1.00"}, partial=False, system=True)
    assert errors == {} and values["total"] == Decimal("1.00")
