"""Whatever a config's files hold, ``crmkit check`` answers with located
problems in bounded time: keys that are not names, nesting thousands deep,
alias bombs, huge files and values, binary junk. One mistake is reported once,
not again wherever the name it breaks is used."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conftest import make_config
from crmkit.loading import load_config as load
from crmkit.metadata import loader
from crmkit.metadata.problems import ConfigError, Problem

APP = "app: shop\n"
CUSTOMER = """\
entity: customer
title: name
fields:
  name: {type: string}
  level: {type: enum, options: [bronze, gold]}
  age: {type: integer}
"""
ORDER = """\
entity: order
fields:
  customer: {type: ref, to: customer}
  total: {type: money}
"""


def problems_of(tmp_path: Path, files: dict[str, str | bytes]) -> list[Problem]:
    texts = {name: text for name, text in files.items() if isinstance(text, str)}
    make_config(tmp_path, texts)
    for name, data in files.items():
        if isinstance(data, bytes):
            (tmp_path / name).write_bytes(data)
    with pytest.raises(ConfigError) as info:
        load(tmp_path)
    return info.value.problems


def only(tmp_path: Path, files: dict[str, str | bytes]) -> str:
    problems = problems_of(tmp_path, {"app.yaml": APP, "entities/customer.yaml": CUSTOMER, **files})
    assert len(problems) == 1, [str(p) for p in problems]
    return str(problems[0])


# ---------------------------------------------------------------- keys

@pytest.mark.parametrize("key, what", [
    ("1", "key 1 is a number, not a name (quote it if it is meant as text: '1')"),
    ("true", "key true is a boolean, not a name (quote it if it is meant as text: 'true')"),
    ("2026-01-01", "key 2026-01-01 is a date, not a name (quote it if it is meant as text: '2026-01-01')"),
    ("~", "a key is missing: every key must be a name"),
    ("[1, 2]", "a key must be a name, not a list"),
    ("{a: 1}", "a key must be a name, not a mapping"),
])
def test_a_key_that_is_not_text_is_located_in_every_kind_of_mapping(tmp_path, key, what):
    # views' filters, roles' field rules and entities, fields, relations, labels, options
    places = {
        "views.yaml": f"views:\n  gold:\n    entity: customer\n    filter: {{{key}: gold}}\n",
        "roles.yaml": f"roles:\n  rep:\n    fields: {{{key}: hidden}}\n",
        "tags.yaml": f"tags:\n  sleeping: {{entity: customer, label: {{{key}: x}}}}\n",
    }
    for name, text in places.items():
        line = text.count("\n")
        message = only(tmp_path / name, {name: text})
        assert message.startswith(f"{name}:{line}:") and message.endswith(what), message
    fields = CUSTOMER + f"  {key}: {{type: string}}\n"
    message = only(tmp_path / "fields", {"entities/customer.yaml": fields})
    assert message == f"entities/customer.yaml:7:3: {what}"


def test_a_key_of_roles_entities_that_is_not_text_is_not_an_unknown_entity(tmp_path):
    message = only(tmp_path, {"roles.yaml": "roles:\n  rep:\n    entities:\n      true: {read: all}\n"})
    assert message == ("roles.yaml:4:7: key true is a boolean, not a name "
                       "(quote it if it is meant as text: 'true')")


def test_a_quoted_number_is_a_name_and_a_leading_zero_keeps_a_number_text(tmp_path):
    make_config(tmp_path, {"app.yaml": APP, "entities/customer.yaml": CUSTOMER.replace(
        "options: [bronze, gold]", "options: [bronze, gold], label: {en: Level}")})
    load(tmp_path)
    problems = problems_of(tmp_path, {"roles.yaml": "roles:\n  rep:\n    fields: {'1': hidden, 0123: read}\n"})
    assert [str(p) for p in problems] == ["roles.yaml:3:14: unknown entity '1'",
                                          "roles.yaml:3:27: unknown entity '0123'"]


# ---------------------------------------------------------------- duplicates

def test_a_duplicate_key_says_where_the_first_one_is(tmp_path):
    message = only(tmp_path, {"entities/customer.yaml": CUSTOMER + "  level: {type: string}\n"})
    assert message == "entities/customer.yaml:7:3: duplicate key 'level' (first at line 5)"


def test_a_key_after_a_merge_overrides_it_and_is_no_duplicate(tmp_path):
    make_config(tmp_path, {"app.yaml": APP, "entities/customer.yaml": CUSTOMER, "views.yaml": """\
        views:
          gold: &gold {entity: customer, sort: name, columns: [name, level], filter: {level: gold}}
          gold_by_age: {<<: *gold, sort: "-age"}
    """})
    spec, _pm, _types = load(tmp_path)
    assert spec.views["gold_by_age"].sort == ("-age",)
    assert spec.views["gold_by_age"].columns == ("name", "level")
    assert spec.views["gold"].sort == ("name",)


# ---------------------------------------------------------------- limits

def assert_quick(seconds: float, started: float) -> None:
    assert time.perf_counter() - started < seconds


@pytest.mark.parametrize("depth", [40, 999, 5000, 200_000])
def test_deep_nesting_is_refused_quickly(tmp_path, depth):
    started = time.perf_counter()
    flow = "views:\n  x: " + "[" * depth + "]" * depth + "\n"
    message = only(tmp_path / "flow", {"views.yaml": flow})
    assert message.startswith("views.yaml:2:") and message.endswith("values are nested more than 32 levels deep")
    block = "views:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(min(depth, 900))) + "  " * 901 + "v\n"
    message = only(tmp_path / "block", {"views.yaml": block})
    assert message.endswith("values are nested more than 32 levels deep")
    assert_quick(5, started)


def test_deep_json_is_refused(tmp_path):
    for depth in (40, 5000):
        text = '{"views": {"x": ' + "[" * depth + "]" * depth + "}}"
        message = only(tmp_path / str(depth), {"views.json": text})
        assert message.startswith("views.json:1:") and message.endswith("nested more than 32 levels deep")


def test_an_alias_bomb_is_refused_before_it_is_built(tmp_path):
    bomb = "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 12))
    started = time.perf_counter()
    message = only(tmp_path, {"views.yaml": "l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n" + bomb + "views: {}\n"})
    assert message.startswith("views.yaml:") and message.endswith("aliases expand this document beyond 250,000 values")
    assert_quick(3, started)


def test_a_merge_key_bomb_is_refused(tmp_path):
    levels = ["m0: &m0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9, j: 10}\n"]
    for i in range(1, 12):
        levels.append(f"m{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * 10)}]}}\n")
    started = time.perf_counter()
    message = only(tmp_path, {"views.yaml": "".join(levels) + "views: {}\n"})
    assert message.endswith("aliases expand this document beyond 250,000 values")
    assert_quick(3, started)


def test_an_alias_of_its_own_container_is_refused(tmp_path):
    message = only(tmp_path, {"views.yaml": "views: &v {x: {entity: customer, roles: *v}}\n"})
    assert message.endswith("an alias refers to a value that contains it: a document cannot contain itself")


def test_a_few_aliases_are_fine(tmp_path):
    make_config(tmp_path, {"app.yaml": APP, "entities/customer.yaml": CUSTOMER, "views.yaml": """\
        views:
          gold: {entity: customer, columns: &columns [name, level, age]}
          all: {entity: customer, columns: *columns}
    """})
    spec, _pm, _types = load(tmp_path)
    assert spec.views["all"].columns == ("name", "level", "age")


def test_a_huge_file_is_refused_without_reading_it_all(tmp_path):
    size = loader.MAX_FILE_BYTES + 10
    message = only(tmp_path, {"views.yaml": "views: {}\n" + "#" * size})
    assert message == "views.yaml:1:1: file is larger than 2 MB: split it (one file per entity)"


def test_binary_junk_is_located(tmp_path):
    message = only(tmp_path, {"views.yaml": b"views:\n  x: \xff\xfe\x00junk\n"})
    assert message == "views.yaml:2:6: not UTF-8 text (invalid start byte)"
    message = only(tmp_path / "nul", {"views.yaml": "views:\n  x: a\x00b\n"})
    assert message == ("views.yaml:2:7: invalid YAML: character 0x0000 is not allowed "
                       "(binary data or a control character)")
    message = only(tmp_path / "bell", {"views.yaml": "views:\n  客户: {label: 客户\x07}\n"})
    assert message == ("views.yaml:2:17: invalid YAML: character 0x0007 is not allowed "
                       "(binary data or a control character)")


def test_a_huge_value_is_not_echoed_whole(tmp_path):
    huge = "x" * 100_000
    problems = problems_of(tmp_path, {"app.yaml": APP, "entities/customer.yaml": CUSTOMER, "views.yaml": (
        f"views:\n  {huge}: {{entity: {huge}, sort: {huge}, kind: {huge}}}\n  ok: {{entity: customer, sort: {huge}}}\n"
    )})
    assert problems
    for problem in problems:
        assert len(str(problem)) < 400, str(problem)[:500]


@pytest.mark.parametrize("view", ["{entity: 1, kind: 2, columns: 3}", "{entity: nope}", "{1: x}"])
def test_a_file_of_junk_gets_a_bounded_number_of_problems(tmp_path, view):
    junk = "views:\n" + "".join(f"  v{i}: {view}\n" for i in range(5000))
    started = time.perf_counter()
    problems = problems_of(tmp_path, {"app.yaml": APP, "entities/customer.yaml": CUSTOMER, "views.yaml": junk})
    assert len(problems) == 101
    assert str(problems[0]) == "views.yaml:1:1: more than 100 problems in this file: the rest are not listed"
    assert_quick(10, started)


def test_a_pipe_named_like_a_config_file_is_not_read(tmp_path):
    import os

    make_config(tmp_path, {"app.yaml": APP})
    os.mkfifo(tmp_path / "views.yaml")
    with pytest.raises(ConfigError) as info:
        load(tmp_path)
    assert [str(p) for p in info.value.problems] == ["views.yaml:1:1: not a regular file"]


# ---------------------------------------------------------------- one mistake, one problem

def test_an_unknown_key_in_an_entity_does_not_make_it_unknown_elsewhere(tmp_path):
    problems = problems_of(tmp_path, {
        "app.yaml": APP, "entities/customer.yaml": CUSTOMER + "titel: name\n", "entities/order.yaml": ORDER,
        "views.yaml": "views:\n  gold: {entity: customer, columns: [name, level], filter: {level: gold}}\n",
        "roles.yaml": "roles:\n  rep:\n    entities: {customer: {read: own}}\n    fields: {customer.age: hidden}\n",
        "tags.yaml": "tags:\n  vip: {entity: customer}\n",
        "workflows/level.yaml": ("workflow: level_flow\nentity: customer\nfield: level\nstates: [bronze, gold]\n"
                                 "transitions: [{from: bronze, to: gold}]\n"),
    })
    assert [str(p) for p in problems] == [
        "entities/customer.yaml:7:1: unknown key 'titel' (did you mean 'title'?)"]


def test_a_field_with_a_problem_is_still_declared_for_the_other_files(tmp_path):
    broken = CUSTOMER.replace("age: {type: integer}", "age: {type: integr}")
    problems = problems_of(tmp_path, {
        "app.yaml": APP, "entities/customer.yaml": broken, "entities/order.yaml": ORDER,
        "views.yaml": "views:\n  old: {entity: customer, columns: [name, age], sort: -age, filter: {age__gt: 3}}\n",
        "roles.yaml": "roles:\n  rep:\n    fields: {customer.age: hidden}\n",
        "workflows/level.yaml": ("workflow: level_flow\nentity: customer\nfield: level\nstates: [bronze, gold]\n"
                                 "transitions: [{from: bronze, to: gold, require: [age]}]\n"),
    })
    assert [str(p) for p in problems] == [
        "entities/customer.yaml:6:15: unknown field type 'integr' (did you mean 'integer'?)"]


def test_a_broken_entity_still_reports_names_that_are_not_declared_at_all(tmp_path):
    problems = problems_of(tmp_path, {
        "app.yaml": APP, "entities/customer.yaml": CUSTOMER + "titel: name\n",
        "entities/order.yaml": ORDER.replace("to: customer", "to: custmer"),
    })
    assert [str(p) for p in problems] == [
        "entities/customer.yaml:7:1: unknown key 'titel' (did you mean 'title'?)",
        "entities/order.yaml:3:29: ref to unknown entity 'custmer' (did you mean 'customer'?)"]


def test_a_broken_roles_document_still_declares_its_roles(tmp_path):
    problems = problems_of(tmp_path, {
        "app.yaml": APP, "entities/customer.yaml": CUSTOMER,
        "roles.yaml": "roles:\n  rep:\n    entities: {customer: {read: mine}}\n",
        "views.yaml": "views:\n  gold: {entity: customer, roles: [rep]}\n",
    })
    assert len(problems) == 1 and problems[0].file == "roles.yaml"


# ---------------------------------------------------------------- app, views and tags

def test_an_unknown_timezone_is_an_error(tmp_path):
    message = only(tmp_path, {"app.yaml": APP + "timezone: Asia/Shanghia\n"})
    assert message == "app.yaml:2:11: unknown timezone 'Asia/Shanghia' (did you mean 'Asia/Shanghai'?)"
    message = only(tmp_path / "path", {"app.yaml": APP + "timezone: ../../etc/passwd\n"})
    assert message.startswith("app.yaml:2:11: unknown timezone '../../etc/passwd'")


def test_the_timezone_reaches_the_spec(tmp_path):
    make_config(tmp_path, {"app.yaml": APP + "timezone: Europe/Paris\n", "entities/customer.yaml": CUSTOMER})
    assert load(tmp_path)[0].timezone == "Europe/Paris"


@pytest.mark.parametrize("sort, message", [
    ("nope", "views.yaml:2:31: cannot sort by unknown field 'nope'"),
    ("'name,-agee'", "views.yaml:2:31: cannot sort by unknown field 'agee' (did you mean 'age'?)"),
    ("'name,,age'", "views.yaml:2:31: empty sort key in 'name,,age'"),
])
def test_a_view_sorted_by_an_unknown_field_is_an_error(tmp_path, sort, message):
    assert only(tmp_path, {"views.yaml": f"views:\n  v: {{entity: customer, sort: {sort}}}\n"}) == message


def test_a_view_filter_names_an_operator_its_field_supports(tmp_path):
    text = "views:\n  v: {entity: customer, filter: {level__gt: gold}}\n"
    assert only(tmp_path, {"views.yaml": text}) == (
        "views.yaml:2:34: operator 'gt' does not apply to enum field 'level' "
        "(enum fields support: eq, ne, in, nin, isnull)")
    text = "views:\n  v: {entity: customer, filter: {level: {a: 1}}}\n"
    assert only(tmp_path / "2", {"views.yaml": text}).startswith("views.yaml:2:41: a filter value is one value")


def test_a_board_needs_group_by(tmp_path):
    text = "views:\n  v: {entity: customer, kind: board}\n"
    assert only(tmp_path, {"views.yaml": text}) == (
        "views.yaml:2:31: a board needs group_by: the field whose values make its columns")


def test_a_view_or_tag_defined_in_two_files(tmp_path):
    problems = problems_of(tmp_path, {
        "app.yaml": APP, "entities/customer.yaml": CUSTOMER,
        "views/a.yaml": "views:\n  v: {entity: customer}\n", "views/b.yaml": "views:\n  v: {entity: customer}\n",
        "tags/a.yaml": "tags:\n  t: {entity: customer}\n", "tags/b.yaml": "tags:\n  t: {entity: customer}\n"})
    assert [p.message for p in problems] == ["tag 't' is defined twice (also in tags/a.yaml)",
                                             "view 'v' is defined twice (also in views/a.yaml)"]


def test_views_tags_and_automations_are_typed_and_frozen(tmp_path):
    make_config(tmp_path, {"app.yaml": APP, "entities/customer.yaml": CUSTOMER, "views.yaml": """\
        views:
          gold:
            entity: customer
            label: {en: Gold, zh: 金卡}
            filter: {level__in: [gold, bronze], age__gte: 18, created_at__gte: 2026-01-01}
            where: "age > 3"
            sort: "-age,name"
            columns: [name, age]
          board: {entity: customer, kind: board, group_by: level}
    """, "tags.yaml": """\
        tags:
          vip: {entity: customer, label: VIP, color: gold, rule: "age > 60", use: Calls first}
          manual: {entity: customer}
    """, "automations.yaml": """\
        automations:
          greet: {entity: customer, trigger: {created: customer}, do: [{set: {level: gold}}]}
    """})
    spec = load(tmp_path)[0]
    gold = spec.views["gold"]
    assert (gold.entity, gold.kind, gold.where, gold.sort, gold.columns) == (
        "customer", "list", "age > 3", ("-age", "name"), ("name", "age"))
    assert dict(gold.filter) == {"level__in": "gold,bronze", "age__gte": "18", "created_at__gte": "2026-01-01"}
    assert gold.label["zh"] == "金卡" and gold.source == "views.yaml"
    assert (spec.views["board"].kind, spec.views["board"].group_by, spec.views["board"].roles) == ("board", "level", ())
    vip = spec.tags["vip"]
    assert (vip.entity, vip.color, vip.rule, vip.use, vip.label["en"]) == (
        "customer", "gold", "age > 60", "Calls first", "VIP")
    assert spec.tags["manual"].rule is None
    greet = spec.automations["greet"]
    assert (greet.trigger.kind, greet.entity, greet.actions[0].name) == ("created", "customer", "set")
    assert greet.actions[0].args["level"] == "gold"
    with pytest.raises(AttributeError):
        gold.sort = ()  # type: ignore[misc]
    with pytest.raises(TypeError):
        gold.filter["level"] = "x"  # type: ignore[index]
    with pytest.raises(TypeError):
        greet.actions[0].args["level"] = "x"  # type: ignore[index]


# ---------------------------------------------------------------- refs to users and teams

def test_refs_to_users_and_teams_are_fields_like_any_ref(tmp_path):
    make_config(tmp_path, {"app.yaml": APP, "entities/ticket.yaml": """\
        entity: ticket
        fields:
          engineer: {type: ref, to: user}
          desk: {type: ref, to: team}
    """, "views.yaml": """\
        views:
          east: {entity: ticket, filter: {engineer.team_id: 3, desk.name: east, engineer__in: [1, 2]}}
    """})
    spec = load(tmp_path)[0]
    fields = spec.entities["ticket"].fields
    assert (fields["engineer"].to, fields["engineer"].column, fields["desk"].to) == ("user", "engineer_id", "team")


def test_a_ref_to_users_has_no_on_delete_and_no_relation_links_users(tmp_path):
    problems = problems_of(tmp_path, {"app.yaml": APP, "entities/ticket.yaml": """\
        entity: ticket
        fields:
          engineer: {type: ref, to: user, on_delete: cascade}
        relations:
          people: {kind: many_to_many, entity: user}
    """})
    assert [str(p) for p in problems] == [
        "entities/ticket.yaml:3:35: on_delete does not apply to a ref to user: "
        "the platform's users and teams are disabled, never deleted",
        "entities/ticket.yaml:5:40: a relation links entities of the config, not the platform's users: "
        "add a ref field to user instead"]


def test_a_filter_through_a_user_ref_names_a_field_of_users(tmp_path):
    message = only(tmp_path, {"entities/ticket.yaml": "entity: ticket\nfields:\n  engineer: {type: ref, to: user}\n",
                              "views.yaml": "views:\n  v: {entity: ticket, filter: {engineer.password: x}}\n"})
    assert message.startswith("views.yaml:2:32: a filter through engineer names a field of the platform's users: "
                              "id, username, display_name")


def test_a_file_with_a_syntax_error_still_declares_its_entity(tmp_path):
    problems = problems_of(tmp_path, {
        "app.yaml": APP, "entities/customer.yaml": CUSTOMER + "  broken: {type: string\n",
        "entities/order.yaml": ORDER, "views.yaml": "views:\n  gold: {entity: customer, columns: [name]}\n"})
    assert [p.file for p in problems] == ["entities/customer.yaml"]
    assert problems[0].message.startswith("invalid YAML")


def test_a_document_refused_for_its_size_still_declares_its_entity(tmp_path):
    deep = CUSTOMER + "  notes: {type: json, default: " + "[" * 40 + "]" * 40 + "}\n"
    problems = problems_of(tmp_path, {
        "app.yaml": APP, "entities/customer.yaml": deep, "entities/order.yaml": ORDER})
    assert [p.message for p in problems] == ["values are nested more than 32 levels deep"]


def test_a_json_document_with_too_many_values_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(loader, "MAX_VALUES", 100)
    text = '{"views": {' + ", ".join(f'"v{i}": {{"entity": "customer"}}' for i in range(60)) + "}}"
    assert only(tmp_path, {"views.json": text}).endswith("this document holds more than 100 values")
    text = "views:\n" + "".join(f"  v{i}: {{entity: customer}}\n" for i in range(60))
    assert only(tmp_path / "yaml", {"views.yaml": text}).endswith("this document holds more than 100 values")


def test_a_value_that_cannot_be_built_is_located(tmp_path):
    fields = CUSTOMER + "  since: {type: date, min: 2026-02-31}\n"
    assert only(tmp_path, {"entities/customer.yaml": fields}) == (
        "entities/customer.yaml:7:28: 2026-02-31 is not a date (day is out of range for month)")
    assert only(tmp_path / "tag", {"views.yaml": "views: {x: !foo 1}\n"}) == (
        "views.yaml:1:12: could not determine a constructor for the tag '!foo'")


def test_control_characters_in_a_value_are_escaped_in_messages(tmp_path):
    message = only(tmp_path, {"app.yaml": 'app: shop\ntimezone: "Asia/\\e[2J\\0Shanghai"\n'})
    assert message.startswith("app.yaml:2:11: unknown timezone 'Asia/\\x1b[2J\\x00Shanghai'")
    assert message.isprintable()
