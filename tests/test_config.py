"""Loading and checking configs: every problem with its file, line, column,
message and hint; a good config gives an immutable spec."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from conftest import make_config
from crmkit.loading import load_config as load
from crmkit.metadata.problems import ConfigError, Problem

APP = "app: shop\n"
CUSTOMER = """\
entity: customer
fields:
  name: {type: string}
"""


def problems_of(tmp_path: Path, files: dict[str, str]) -> list[Problem]:
    make_config(tmp_path, files)
    with pytest.raises(ConfigError) as info:
        load(tmp_path)
    return info.value.problems


def only_problem(tmp_path: Path, files: dict[str, str]) -> Problem:
    problems = problems_of(tmp_path, files)
    assert len(problems) == 1, problems
    return problems[0]


def at(problem: Problem) -> tuple:
    return (problem.file, problem.line, problem.column)


def entity(extra_fields: str = "", rest: str = "") -> dict[str, str]:
    return {"app.yaml": APP, "entities/customer.yaml": CUSTOMER + extra_fields + rest}


# ---------------------------------------------------------------- syntax and structure

def test_yaml_syntax_error_has_line_and_column(tmp_path):
    problem = only_problem(tmp_path, {"app.yaml": APP, "entities/customer.yaml": (
        "entity: customer\n"
        "fields:\n"
        "  name: {type: string\n"
        "  age: {type: integer}\n")})
    assert at(problem) == ("entities/customer.yaml", 4, 6)
    assert problem.message == "invalid YAML: expected ',' or '}', but got ':'"


def test_json_file_is_checked_with_positions(tmp_path):
    problem = only_problem(tmp_path, {
        "app.yaml": APP,
        "entities/customer.json": '{"entity": "customer", "fields": {"name": {"type": "strng"}}}'})
    assert at(problem) == ("entities/customer.json", 1, 52)
    assert problem.message == "unknown field type 'strng'"


def test_unknown_top_level_key_suggests_the_right_one(tmp_path):
    problem = only_problem(tmp_path, {"app.yaml": "app: shop\nplugns: []\n"})
    assert at(problem) == ("app.yaml", 2, 1)
    assert problem.message == "unknown key 'plugns'"
    assert problem.hint == "did you mean 'plugins'?"


def test_unknown_key_in_entity_document(tmp_path):
    problem = only_problem(tmp_path, entity(rest="lable: Customer\n"))
    assert at(problem) == ("entities/customer.yaml", 4, 1)
    assert (problem.message, problem.hint) == ("unknown key 'lable'", "did you mean 'label'?")


def test_unknown_field_type_points_at_the_type(tmp_path):
    problem = only_problem(tmp_path, entity("  mobile:\n    type: strng\n"))
    assert at(problem) == ("entities/customer.yaml", 5, 11)
    assert problem.message == "unknown field type 'strng'"
    assert problem.hint == "did you mean 'string'?"
    assert str(problem) == ("entities/customer.yaml:5:11: unknown field type 'strng' "
                            "(did you mean 'string'?)")


def test_wrong_kind_of_value(tmp_path):
    problem = only_problem(tmp_path, entity("  vip: {type: boolean, required: 'yes'}\n"))
    assert at(problem) == ("entities/customer.yaml", 4, 34)
    assert problem.message == "expected a boolean, got a string"


def test_entity_name_must_be_snake_case(tmp_path):
    problem = only_problem(tmp_path, {"app.yaml": APP, "entities/customer.yaml": CUSTOMER.replace(
        "entity: customer", "entity: Customer")})
    assert at(problem) == ("entities/customer.yaml", 1, 9)
    assert problem.message.startswith("'Customer' is not a valid name: use snake_case")


def test_document_of_unknown_kind(tmp_path):
    problem = only_problem(tmp_path, {"app.yaml": APP, "notes.yaml": "foo: 1\n"})
    assert at(problem) == ("notes.yaml", 1, 1)
    assert problem.message.startswith("cannot tell what this document is: it is a mapping without any of the keys")


def test_label_with_a_bad_key(tmp_path):
    problem = only_problem(tmp_path, {"app.yaml": APP, "entities/customer.yaml": CUSTOMER.replace(
        "fields:", "label: {en: Customer, fr: Client}\nfields:")})
    assert at(problem) == ("entities/customer.yaml", 2, 8)
    assert problem.message == "a label is a string or a mapping with keys en and zh, not 'fr'"


def test_no_app_document(tmp_path):
    problem = only_problem(tmp_path, {"entities/customer.yaml": CUSTOMER})
    assert problem.message == "no app document found: add app.yaml with at least 'app: <name>'"


def test_two_app_documents(tmp_path):
    problem = only_problem(tmp_path, {"app.yaml": APP, "more/app2.yaml": "app: other\n",
                                      "entities/customer.yaml": CUSTOMER})
    assert at(problem) == ("more/app2.yaml", 1, 1)
    assert problem.message == "a second app document (the first is in app.yaml)"


def test_missing_config_directory(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(tmp_path / "nowhere")
    assert info.value.problems[0].message == "config directory not found"


# ---------------------------------------------------------------- entities and fields

def test_ref_to_unknown_entity_with_hint(tmp_path):
    problem = only_problem(tmp_path, entity("  referrer: {type: ref, to: custmer}\n"))
    assert at(problem) == ("entities/customer.yaml", 4, 29)
    assert (problem.message, problem.hint) == ("ref to unknown entity 'custmer'", "did you mean 'customer'?")


def test_ref_without_target(tmp_path):
    problem = only_problem(tmp_path, entity("  referrer: {type: ref}\n"))
    assert problem.message == "a ref field needs 'to': the entity it refers to"


@pytest.mark.parametrize("key, text, column, message", [
    ("columns", "list: {columns: [nme]}\n", 18, "unknown field 'nme' in list columns"),
    ("sort", "list: {sort: '-nam'}\n", 14, "unknown field 'nam' in list sort"),
    ("search", "list: {search: [nmae]}\n", 17, "unknown field 'nmae' in list search"),
    ("form", "form: [{fields: [nam]}]\n", 18, "unknown field 'nam' in form layout"),
])
def test_unknown_field_in_layouts(tmp_path, key, text, column, message):
    problem = only_problem(tmp_path, entity(rest=text))
    assert at(problem) == ("entities/customer.yaml", 4, column)
    assert (problem.message, problem.hint) == (message, "did you mean 'name'?")


def test_search_on_a_non_text_field(tmp_path):
    problem = only_problem(tmp_path, entity("  age: {type: integer}\n", "list: {search: [age]}\n"))
    assert problem.message == "cannot search integer field 'age': only text-like fields"


def test_field_placed_twice_in_form(tmp_path):
    problem = only_problem(tmp_path, entity(rest="form: [{fields: [name]}, {fields: [name]}]\n"))
    assert problem.message == "field 'name' is already in form section 1"


def test_duplicate_entity_in_two_files(tmp_path):
    problem = only_problem(tmp_path, {"app.yaml": APP, "entities/a.yaml": CUSTOMER, "entities/b.yaml": CUSTOMER})
    assert at(problem) == ("entities/b.yaml", 1, 9)
    assert problem.message == "entity 'customer' is defined twice (also in entities/a.yaml)"


@pytest.mark.parametrize("name, why", [
    ("id", "a system field every record has"),
    ("created_at", "a system field every record has"),
    ("owner", "added by owned: true"),
    ("limit", "a query parameter of the API"),
])
def test_reserved_field_names(tmp_path, name, why):
    problem = only_problem(tmp_path, entity(f"  {name}: {{type: string}}\n"))
    assert at(problem) == ("entities/customer.yaml", 4, 3)
    assert problem.message == f"'{name}' is a reserved name ({why}); choose another"


@pytest.mark.parametrize("name", ["openapi", "recycle_bin", "crmkit_audit", "search", "language"])
def test_reserved_entity_names(tmp_path, name):
    problem = only_problem(tmp_path, {"app.yaml": APP,
                                      "entities/x.yaml": CUSTOMER.replace("customer", name)})
    assert at(problem) == ("entities/x.yaml", 1, 9)
    assert problem.message == f"'{name}' is a reserved name (used by the platform's own URLs or tables)"


def test_index_on_missing_field(tmp_path):
    problem = only_problem(tmp_path, entity("  mobile: {type: phone}\n", "indexes: [{fields: [name, mobil]}]\n"))
    assert at(problem) == ("entities/customer.yaml", 5, 27)
    assert (problem.message, problem.hint) == ("index on unknown field 'mobil'", "did you mean 'mobile'?")


def test_enum_default_not_in_options(tmp_path):
    problem = only_problem(tmp_path, entity("  level: {type: enum, options: [bronze, gold], default: glod}\n"))
    assert at(problem) == ("entities/customer.yaml", 4, 57)
    assert problem.message == "default 'glod' must be one of: bronze, gold"
    assert problem.hint == "did you mean 'gold'?"


@pytest.mark.parametrize("pattern, message", [
    ("HT{YYYYMMDD}{sequence}", "bad sequence token {sequence}: write {seq} or {seq:6}"),
    ("HT{YYYY}", "the pattern needs exactly one {seq} or {seq:N} token"),
    ("HT{seq}{seq:4}", "the pattern needs exactly one {seq} or {seq:N} token"),
    ("HT{DAY}{seq:4}", "unknown token {DAY} in pattern; use"),
    ("HT}{seq:4}", "unbalanced braces in pattern"),
])
def test_bad_autonumber_pattern(tmp_path, pattern, message):
    problem = only_problem(tmp_path, entity(f"  number: {{type: autonumber, pattern: '{pattern}'}}\n"))
    assert at(problem) == ("entities/customer.yaml", 4, 39)
    assert problem.message.startswith(message)


def test_autonumber_needs_a_pattern(tmp_path):
    problem = only_problem(tmp_path, entity("  number: {type: autonumber}\n"))
    assert problem.message == "an autonumber field needs a pattern, e.g. HT{YYYYMMDD}{seq:6}"


def test_option_listed_twice(tmp_path):
    problem = only_problem(tmp_path, entity("  level: {type: enum, options: [a, b, a]}\n"))
    assert at(problem) == ("entities/customer.yaml", 4, 32)
    assert problem.message == "option 'a' is listed twice"


def test_key_not_applicable_to_the_type(tmp_path):
    problem = only_problem(tmp_path, entity("  nick: {type: string, options: [a]}\n"))
    assert at(problem) == ("entities/customer.yaml", 4, 24)
    assert problem.message == "'options' does not apply to a string field"


def test_min_length_greater_than_max_length(tmp_path):
    problem = only_problem(tmp_path, entity("  nick: {type: string, min_length: 10, max_length: 5}\n"))
    assert at(problem) == ("entities/customer.yaml", 4, 36)
    assert problem.message == "min_length is greater than max_length"


def test_bad_regex_pattern(tmp_path):
    problem = only_problem(tmp_path, entity("  code: {type: string, pattern: '[a-'}\n"))
    assert at(problem) == ("entities/customer.yaml", 4, 33)
    assert problem.message.startswith("invalid regular expression: unterminated character set")


def test_required_readonly_field_without_default(tmp_path):
    problem = only_problem(tmp_path, entity("  total: {type: money, required: true, readonly: true}\n"))
    assert problem.message == "a required readonly field needs a default: nobody could set it"


def test_set_null_on_required_ref(tmp_path):
    problem = only_problem(tmp_path, entity("  boss: {type: ref, to: customer, required: true, on_delete: set_null}\n"))
    assert problem.message == "on_delete: set_null cannot apply to a required field"


def test_relation_to_unknown_entity(tmp_path):
    problem = only_problem(tmp_path, entity(rest="relations: {orders: {kind: one_to_many, entity: ordr}}\n"))
    assert at(problem) == ("entities/customer.yaml", 4, 49)
    assert problem.message == "relation to unknown entity 'ordr'"


ORDER = """\
entity: order
fields:
  note: {type: string}
  buyer: {type: ref, to: customer}
"""


def test_one_to_many_field_that_is_not_a_ref_back(tmp_path):
    problem = only_problem(tmp_path, {
        "app.yaml": APP, "entities/order.yaml": ORDER,
        "entities/customer.yaml": CUSTOMER + "relations: {orders: {kind: one_to_many, entity: order, field: note}}\n"})
    assert at(problem) == ("entities/customer.yaml", 4, 63)
    assert problem.message == "order.note is not a ref to customer"


def test_one_to_many_without_field_names_the_refs_back(tmp_path):
    problem = only_problem(tmp_path, {
        "app.yaml": APP, "entities/order.yaml": ORDER,
        "entities/customer.yaml": CUSTOMER + "relations: {orders: {kind: one_to_many, entity: order}}\n"})
    assert problem.message == "order has no field 'customer' for this relation"
    assert problem.hint == "order refers here through: buyer"


# ---------------------------------------------------------------- other documents

ENUM_CUSTOMER = CUSTOMER + "  level: {type: enum, options: [bronze, gold]}\n  age: {type: integer}\n"


def test_workflow_state_not_an_option(tmp_path):
    problems = problems_of(tmp_path, {"app.yaml": APP, "entities/customer.yaml": ENUM_CUSTOMER,
                                     "workflows/level.yaml": """\
        workflow: level_flow
        entity: customer
        field: level
        states: [bronze, gold, platinum]
        transitions:
          - {from: bronze, to: gold}
          - {from: gold, to: diamond}
    """})
    assert [(at(p), p.message) for p in problems] == [
        (("workflows/level.yaml", 4, 24), "state 'platinum' is not an option of customer.level"),
        (("workflows/level.yaml", 7, 5), "unknown state 'diamond'"),
    ]


def test_workflow_on_a_non_enum_field(tmp_path):
    problem = only_problem(tmp_path, {"app.yaml": APP, "entities/customer.yaml": ENUM_CUSTOMER, "workflows/w.yaml": """\
        workflow: by_age
        entity: customer
        field: age
        states: [young]
        transitions: []
    """})
    assert at(problem) == ("workflows/w.yaml", 3, 8)
    assert problem.message == "workflow field customer.age must be an enum, not integer"


def test_workflow_requires_unknown_field(tmp_path):
    problem = only_problem(tmp_path, {"app.yaml": APP, "entities/customer.yaml": ENUM_CUSTOMER, "workflows/w.yaml": """\
        workflow: level_flow
        entity: customer
        field: level
        states: [bronze, gold]
        transitions:
          - {from: bronze, to: gold, require: [agee]}
    """})
    assert (problem.message, problem.hint) == ("customer has no field 'agee'", "did you mean 'age'?")


def test_view_with_unknown_column_and_entity(tmp_path):
    problems = problems_of(tmp_path, {"app.yaml": APP, "entities/customer.yaml": ENUM_CUSTOMER, "views.yaml": """\
        views:
          gold: {entity: customer, columns: [name, levle], filter: {level: gold, agee__gt: 3}}
          other: {entity: custmer}
    """})
    assert [(at(p), p.message, p.hint) for p in problems] == [
        (("views.yaml", 2, 44), "customer has no field 'levle'", "did you mean 'level'?"),
        (("views.yaml", 2, 74), "customer has no field 'agee'", "did you mean 'age'?"),
        (("views.yaml", 3, 19), "unknown entity 'custmer'", "did you mean 'customer'?"),
    ]


def test_roles_with_unknown_entity_and_field(tmp_path):
    problems = problems_of(tmp_path, {"app.yaml": APP, "entities/customer.yaml": ENUM_CUSTOMER, "roles.yaml": """\
        roles:
          sales_rep:
            entities: {customer: {read: own}, custmer: {read: all}}
            fields: {customer.nam: hidden}
    """})
    assert [(at(p), p.message, p.hint) for p in problems] == [
        (("roles.yaml", 3, 39), "unknown entity 'custmer'", "did you mean 'customer'?"),
        (("roles.yaml", 4, 14), "customer has no field 'nam'", "did you mean 'name'?"),
    ]


def test_roles_with_unknown_scope(tmp_path):
    problem = only_problem(tmp_path, {"app.yaml": APP, "entities/customer.yaml": CUSTOMER, "roles.yaml": """\
        roles:
          sales_rep:
            entities: {customer: {read: mine}}
    """})
    assert problem.file == "roles.yaml" and problem.line == 3
    assert "'mine' is not one of none, own, team, team_tree, subordinates, all" in problem.message


def test_roles_with_unknown_action_point_at_the_action(tmp_path):
    problem = only_problem(tmp_path, {"app.yaml": APP, "entities/customer.yaml": CUSTOMER, "roles.yaml": """\
        roles:
          sales_rep:
            entities: {customer: {reed: own}}
    """})
    assert at(problem) == ("roles.yaml", 3, 27)
    assert (problem.message, problem.hint) == ("unknown action 'reed'", "did you mean 'read'?")


def test_roles_may_name_users_and_teams_but_give_them_no_field_rules(tmp_path):
    problem = only_problem(tmp_path, {"app.yaml": APP, "entities/customer.yaml": CUSTOMER, "roles.yaml": """\
        roles:
          sales_rep:
            entities: {user: {read: all}, team: {read: all}}
            fields: {user.mobile: hidden}
    """})
    assert at(problem) == ("roles.yaml", 4, 14)
    assert problem.message == "no field rules apply to the platform's user records"


@pytest.mark.parametrize("name", ["id", "version"])
def test_roles_cannot_hide_id_or_version(tmp_path, name):
    problem = only_problem(tmp_path, {"app.yaml": APP, "entities/customer.yaml": CUSTOMER, "roles.yaml": f"""\
        roles:
          sales_rep:
            fields: {{customer.name: masked, customer.{name}: hidden}}
    """})
    assert at(problem) == ("roles.yaml", 3, 37)
    assert problem.message.startswith(
        f"customer.{name} cannot have a field rule: every record shows its id and version")


def test_role_named_system_is_reserved(tmp_path):
    problem = only_problem(tmp_path, {"app.yaml": APP, "entities/customer.yaml": CUSTOMER, "roles.yaml": """\
        roles:
          system:
            entities: {customer: {read: all}}
    """})
    assert at(problem) == ("roles.yaml", 2, 3)
    assert problem.message.startswith("'system' is a reserved role name")


def test_role_defined_in_two_files(tmp_path):
    problem = only_problem(tmp_path, {"app.yaml": APP, "entities/customer.yaml": CUSTOMER,
                                      "roles/sales.yaml": "roles:\n  sales_rep: {}\n",
                                      "roles/more.yaml": "roles:\n  analyst: {}\n  sales_rep: {}\n"})
    assert at(problem) in {("roles/sales.yaml", 2, 3), ("roles/more.yaml", 3, 3)}
    assert problem.message.startswith("role 'sales_rep' is defined twice (also in roles/")


def test_workflow_and_view_roles_must_be_defined(tmp_path):
    problems = problems_of(tmp_path, {"app.yaml": APP, "entities/customer.yaml": ENUM_CUSTOMER,
                                      "roles.yaml": "roles:\n  sales_rep: {}\n", "workflows/w.yaml": """\
        workflow: level_flow
        entity: customer
        field: level
        states: [bronze, gold]
        transitions:
          - {from: bronze, to: gold, roles: [admin, sales_rep, sales_mgr]}
    """, "views.yaml": """\
        views:
          gold: {entity: customer, roles: [sales_repp]}
    """})
    assert [(at(p), p.message, p.hint) for p in problems] == [
        (("views.yaml", 2, 36), "unknown role 'sales_repp'", "did you mean 'sales_rep'?"),
        (("workflows/w.yaml", 6, 56), "unknown role 'sales_mgr'", "did you mean 'sales_rep'?"),
    ]


def test_checker_knows_the_platform_entities_and_roles_of_the_access_module():
    from crmkit import permissions
    from crmkit.metadata import checker

    assert checker.PLATFORM_ENTITIES == permissions.SYSTEM_ENTITIES
    assert checker.ADMIN_ROLE == permissions.ADMIN_ROLE
    assert checker.ALWAYS_VISIBLE == permissions.ALWAYS_VISIBLE


def test_tag_for_unknown_entity(tmp_path):
    problem = only_problem(tmp_path, {"app.yaml": APP, "entities/customer.yaml": CUSTOMER, "tags.yaml": """\
        tags:
          sleeping: {entity: custmer, rule: "age > 3"}
    """})
    assert (problem.message, problem.hint) == ("unknown entity 'custmer'", "did you mean 'customer'?")


def test_plugin_enabled_but_not_installed(tmp_path):
    problem = only_problem(tmp_path, {"app.yaml": "app: shop\nplugins: [nosuchplugin]\n",
                                      "entities/customer.yaml": CUSTOMER})
    assert problem.file == "app.yaml"
    assert problem.message.startswith("plugin 'nosuchplugin' is enabled in the config but not installed")
    assert "pip install crmkit-nosuchplugin" in problem.message


def test_every_problem_is_reported_at_once(tmp_path):
    problems = problems_of(tmp_path, {
        "app.yaml": "app: shop\nplugns: []\n",
        "entities/customer.yaml": CUSTOMER + (
            "  mobile: {type: strng}\n"
            "  referrer: {type: ref, to: custmer}\n"
            "  id: {type: string}\n"
            "list: {columns: [nme]}\n"),
        "entities/order.yaml": "entity: order\nfields:\n  total: {type: money, min_length: 3}\n",
    })
    assert len(problems) == 6, problems
    assert [(p.file, p.line) for p in problems] == [
        ("app.yaml", 2), ("entities/customer.yaml", 4), ("entities/customer.yaml", 5),
        ("entities/customer.yaml", 6), ("entities/customer.yaml", 7), ("entities/order.yaml", 3)]
    text = str(ConfigError(problems))
    assert text.splitlines()[0] == "app.yaml:2:1: unknown key 'plugns' (did you mean 'plugins'?)"


# ---------------------------------------------------------------- YAML 1.1 traps and a good spec

def test_yaml_11_traps_stay_strings(tmp_path):
    make_config(tmp_path, {"app.yaml": APP, "entities/customer.yaml": """\
        entity: customer
        fields:
          name: {type: string}
          area_code: {type: string, default: 0138}
          answer: {type: enum, options: [yes, no, on, off, y, n], default: no}
          country: {type: enum, options: [CN, NO, SE], default: NO}
    """})
    spec, _pm, _types = load(tmp_path)
    fields = spec.entities["customer"].fields
    assert fields["area_code"].default == "0138"
    assert fields["answer"].option_values == ("yes", "no", "on", "off", "y", "n")
    assert fields["answer"].default == "no"
    assert fields["country"].option_values == ("CN", "NO", "SE")
    assert fields["country"].default == "NO"


GOOD = {
    "app.yaml": "app: shop\nlabel: {en: Shop, zh: 商店}\nrecycle_bin_days: 7\n",
    "entities/customer.yaml": """\
        entity: customer
        label: {en: Customer, zh: 客户}
        owned: true
        fields:
          name: {type: string, required: true, label: {zh: 姓名}}
          level: {type: enum, options: [{value: gold, label: {en: Gold, zh: 金卡}}, silver]}
        list: {columns: [name], sort: "-created_at,name"}
    """,
    "views.yaml": "views:\n  gold: {entity: customer, filter: {level: gold}}\n",
}


def test_good_config_gives_the_spec(tmp_path):
    make_config(tmp_path, GOOD)
    spec, _pm, _types = load(tmp_path)
    assert spec.name == "shop" and spec.recycle_bin_days == 7
    customer = spec.entities["customer"]
    assert customer.label["zh"] == "客户"
    assert [f.name for f in customer.user_fields] == ["name", "level"]
    assert {"id", "version", "created_at", "owner_id", "team_id"} <= set(customer.fields)
    assert customer.list.sort == ("-created_at", "name")
    assert customer.fields["level"].options[0].label["zh"] == "金卡"
    assert spec.views["gold"].filter["level"] == "gold"


def test_spec_is_immutable(tmp_path):
    make_config(tmp_path, GOOD)
    spec, _pm, _types = load(tmp_path)
    customer = spec.entities["customer"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        customer.fields["name"].required = False  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.entities["lead"] = customer  # type: ignore[index]
    with pytest.raises(TypeError):
        customer.fields["nick"] = customer.fields["name"]  # type: ignore[index]
    with pytest.raises(TypeError):
        customer.label["en"] = "Client"  # type: ignore[index]
    with pytest.raises(TypeError):
        spec.views["gold"].filter["level"] = "silver"  # type: ignore[index]
    with pytest.raises(AttributeError):
        customer.list.columns.append("level")  # type: ignore[attr-defined]


# ---------------------------------------------------------------- the fast YAML parse

TRICKY_YAML = """\
booleans: [true, True, FALSE, yes, no, on, off, y, n, Yes]
ints: [0, 7, -3, +4, 1_000, 0o17, 0x1f, 0138, 007, "12"]
floats: [1.5, -0.25, 1e3, 2.5E-2, .5, .inf, -.Inf, 1:20]
nulls: [~, null, Null, NULL, ]
dates: [2024-01-31, 2024-01-31T08:30:00Z, 2024-1-31]
empty:
"0123": leading zero key
nested: {a: [1, {b: yes}], "on": off}
"""


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value != value:
        return "nan"
    return value


def test_fast_parse_reads_yaml_like_ruamel_yaml_1_2():
    from ruamel.yaml import YAML

    from crmkit.metadata.loader import _MarkedConstructor, parse_fast

    reference = YAML(typ="rt", pure=True)
    reference.Constructor = _MarkedConstructor
    assert _plain(parse_fast(TRICKY_YAML)) == [_plain(reference.load(TRICKY_YAML))]
    data = parse_fast(TRICKY_YAML)[0]
    assert data["booleans"][:3] == [True, True, False] and data["booleans"][3:6] == ["yes", "no", "on"]
    assert data["ints"][:7] == [0, 7, -3, 4, 1000, 15, 31] and data["ints"][7:] == ["0138", "007", "12"]


def test_fast_parse_agrees_with_ruamel_yaml_on_the_sample_config():
    from ruamel.yaml import YAML

    from conftest import SAMPLE_CONFIG
    from crmkit.metadata.loader import _MarkedConstructor, parse_fast

    reference = YAML(typ="rt", pure=True)
    reference.Constructor = _MarkedConstructor
    for path in sorted(SAMPLE_CONFIG.rglob("*.yaml")):
        source = path.read_text(encoding="utf-8")
        assert _plain(parse_fast(source)) == _plain(list(reference.load_all(source))), path


def test_duplicate_key_is_an_error_with_its_position(tmp_path):
    problem = only_problem(tmp_path, {"app.yaml": APP, "entities/customer.yaml": (
        "entity: customer\n"
        "fields:\n"
        "  name: {type: string}\n"
        "  name: {type: text}\n")})
    assert problem.file == "entities/customer.yaml" and problem.line == 4
    assert "duplicate key" in problem.message and "name" in problem.message


def test_decimal_precision_beyond_18_digits_is_refused(tmp_path):
    problem = only_problem(tmp_path, entity("  amount: {type: decimal, precision: 30}\n"))
    assert problem.line == 4 and "18" in problem.message


def test_a_role_that_creates_must_be_able_to_fill_in_required_fields(tmp_path):
    required = CUSTOMER.replace("name: {type: string}", "name: {type: string, required: true}\n  mobile: {type: phone}")
    problem = only_problem(tmp_path, {"app.yaml": APP, "entities/customer.yaml": required, "roles.yaml": """
        roles:
          clerk:
            entities:
              customer: {read: own, create: true}
            fields:
              customer.name: read
              customer.mobile: hidden
    """})
    assert (problem.file, problem.line) == ("roles.yaml", 6)
    assert problem.message == ("clerk may create customer records but cannot fill in customer.name, "
                               "which is required (read for this role)")


def test_a_role_that_does_not_create_may_hide_required_fields(tmp_path):
    required = CUSTOMER.replace("name: {type: string}", "name: {type: string, required: true}")
    make_config(tmp_path, {"app.yaml": APP, "entities/customer.yaml": required, "roles.yaml": """
        roles:
          viewer:
            entities: {"*": {read: all, create: false}}
            fields: {customer.name: masked}
    """})
    load(tmp_path)


@pytest.mark.parametrize("name", ["history", "transitions", "collaborators"])
def test_relation_names_of_the_platforms_urls_are_reserved(tmp_path, name):
    problem = only_problem(tmp_path, {"app.yaml": APP, "entities/customer.yaml": f"""
        entity: customer
        fields:
          name: {{type: string}}
        relations:
          {name}: {{kind: many_to_many, entity: customer}}
    """})
    assert problem.message.startswith(f"'{name}' is a reserved name")
