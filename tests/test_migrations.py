"""Safe migrations: the plan shows what changes, additive changes apply,
changes that lose data are refused unless allowed, and then backed up first."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from conftest import MINI_FILES, make_config
from crmkit.errors import Conflict
from crmkit.migrations import MigrationRefused
from crmkit.permissions import SYSTEM

APP = "app: shop\n"
CUSTOMER = """
    entity: customer
    fields:
      name: {type: string, max_length: 100}
      age: {type: integer}
"""
NOTE = """
    entity: note
    fields:
      text: {type: text}
      customer: {type: ref, to: customer}
"""


@pytest.fixture
def config(tmp_path):
    return make_config(tmp_path / "config", {"app.yaml": APP, "entities/customer.yaml": CUSTOMER})


def descriptions(plan) -> list[tuple[str, bool]]:
    return [(c.description, c.destructive) for c in plan.changes]


def columns(rt, table: str) -> set[str]:
    with rt.engine.connect() as conn:
        return {c["name"] for c in sa.inspect(conn).get_columns(table)}


def rows(rt, sql: str) -> list[tuple]:
    with rt.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql))]


def test_fresh_database_plan_lists_tables_then_is_empty(make_runtime, config):
    rt = make_runtime(config)
    plan = rt.plan()
    assert ("add table customer", False) in descriptions(plan)
    assert ("add table crmkit_audit", False) in descriptions(plan)
    assert not plan.destructive
    migration, backup = rt.migrate()
    assert backup is None and descriptions(migration) == descriptions(plan)
    assert rt.plan().empty
    assert {"id", "version", "created_at", "name", "age", "deleted_at"} <= columns(rt, "customer")


EVERYTHING = {
    "app.yaml": APP,
    "entities/customer.yaml": """
        entity: customer
        owned: true
        fields:
          name: {type: string, required: true, max_length: 50}
          notes: {type: text}
          age: {type: integer, index: true}
          ratio: {type: decimal, precision: 10, scale: 3}
          spent: {type: money}
          vip: {type: boolean}
          birthday: {type: date}
          seen: {type: datetime}
          email: {type: email, unique: true}
          mobile: {type: phone, unique: true}
          site: {type: url}
          level: {type: enum, options: [a, b]}
          stars: {type: enum, options: [1, 2, 3]}
          tags: {type: multi_enum, options: [x, y]}
          data: {type: json}
          region: {type: region}
          code: {type: autonumber, pattern: "C{seq:5}"}
          referrer: {type: ref, to: customer, on_delete: set_null}
          company: {type: ref, to: company}
        indexes:
          - {fields: [level, age]}
          - {fields: [name, birthday], unique: true}
        list: {sort: "-seen,name"}
        relations:
          friends: {kind: many_to_many, entity: customer}
          products: {kind: many_to_many, entity: product}
    """,
    "entities/company.yaml": """
        entity: company
        fields:
          name: {type: string}
          main_contact: {type: ref, to: customer}
    """,
    "entities/product.yaml": """
        entity: product
        fields:
          title: {type: string}
        list: {sort: title}
    """,
}


def test_no_spurious_differences_after_apply(make_runtime, tmp_path):
    config = make_config(tmp_path / "config", EVERYTHING)
    rt = make_runtime(config)
    rt.migrate()
    assert descriptions(rt.plan()) == []
    again = make_runtime(config)  # a restart reads the database afresh
    assert descriptions(again.plan()) == []


def test_mini_config_has_no_spurious_differences(make_runtime, tmp_path):
    config = make_config(tmp_path / "config", MINI_FILES)
    make_runtime(config).migrate()
    assert descriptions(make_runtime(config).plan()) == []


def test_adding_a_field_adds_a_column_and_keeps_rows(make_runtime, config):
    rt = make_runtime(config)
    rt.migrate()
    record = rt.records.create("customer", {"name": "张三", "age": 30}, SYSTEM)
    make_config(config, {"entities/customer.yaml": CUSTOMER + "      nickname: {type: string, max_length: 30}\n"})
    rt = make_runtime(config)
    plan = rt.plan()
    assert descriptions(plan) == [("add column customer.nickname (VARCHAR(30))", False)]
    _, backup = rt.migrate()
    assert backup is None
    assert rt.plan().empty
    assert rows(rt, "SELECT id, name, age, nickname FROM customer") == [(record["id"], "张三", 30, None)]
    updated = rt.records.update("customer", record["id"], {"nickname": "小张"}, SYSTEM)
    assert updated["nickname"] == "小张"


def test_removing_a_field_is_refused_then_backed_up(make_runtime, config, settings):
    rt = make_runtime(config)
    rt.migrate()
    first = rt.records.create("customer", {"name": "张三", "age": 30}, SYSTEM)
    second = rt.records.create("customer", {"name": "李四", "age": 41}, SYSTEM)
    make_config(config, {"entities/customer.yaml": CUSTOMER.replace("      age: {type: integer}\n", "")})
    rt = make_runtime(config)
    plan = rt.plan()
    assert descriptions(plan) == [("remove column customer.age (its data)", True)]
    assert "! remove column customer.age" in plan.describe()
    with pytest.raises(MigrationRefused) as refused:
        rt.migrate()
    assert "--allow-data-loss" in str(refused.value)
    assert rows(rt, "SELECT age FROM customer ORDER BY id") == [(30,), (41,)]
    assert not settings.backup_dir.exists()

    _, backup = rt.migrate(allow_data_loss=True)
    assert backup is not None and backup.parent == settings.backup_dir
    lines = (backup / "customer.age.jsonl").read_text(encoding="utf-8").splitlines()
    assert sorted(json.loads(line)["age"] for line in lines) == [30, 41]
    assert {json.loads(line)["id"] for line in lines} == {first["id"], second["id"]}
    assert "remove column customer.age" in (backup / "PLAN.txt").read_text(encoding="utf-8")
    assert "age" not in columns(rt, "customer")
    assert rows(rt, "SELECT name FROM customer ORDER BY id") == [("张三",), ("李四",)]
    assert rt.plan().empty


def test_narrowing_a_string_is_destructive_widening_is_not(make_runtime, config):
    rt = make_runtime(config)
    rt.migrate()
    rt.records.create("customer", {"name": "Zhang San Feng"}, SYSTEM)
    make_config(config, {"entities/customer.yaml": CUSTOMER.replace("max_length: 100", "max_length: 200")})
    rt = make_runtime(config)
    assert descriptions(rt.plan()) == [("widen type of customer.name: VARCHAR(100) -> VARCHAR(200)", False)]
    assert rt.migrate()[1] is None
    assert rt.plan().empty

    make_config(config, {"entities/customer.yaml": CUSTOMER.replace("max_length: 100", "max_length: 5")})
    rt = make_runtime(config)
    assert descriptions(rt.plan()) == [("change (narrowing) type of customer.name: VARCHAR(200) -> VARCHAR(5)", True)]
    with pytest.raises(MigrationRefused):
        rt.migrate()
    assert rows(rt, "SELECT name FROM customer") == [("Zhang San Feng",)]
    _, backup = rt.migrate(allow_data_loss=True)
    saved = [json.loads(line) for line in (backup / "customer.name.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [item["name"] for item in saved] == ["Zhang San Feng"]
    assert rows(rt, "SELECT name FROM customer") == [("Zhang",)]  # cut to fit, the same on every database
    assert rt.plan().empty


def test_a_type_change_on_an_empty_column_loses_nothing(make_runtime, config):
    make_runtime(config).migrate()
    make_config(config, {"entities/customer.yaml": CUSTOMER.replace("age: {type: integer}", "age: {type: date}")})
    rt = make_runtime(config)
    plan = rt.plan()
    assert descriptions(plan) == [("change type of customer.age: BIGINT -> DATE", False)]
    assert rt.migrate()[1] is None
    assert rt.plan().empty


def _retype(config, make_runtime, old: str, new: str, values: list):
    """A customer.code field of type ``old`` holding ``values``; then the config says ``new``."""
    make_config(config, {"entities/customer.yaml": CUSTOMER + f"      code: {old}\n"})
    rt = make_runtime(config)
    rt.migrate()
    for value in values:
        rt.records.create("customer", {"name": "x", "code": value}, SYSTEM)
    make_config(config, {"entities/customer.yaml": CUSTOMER + f"      code: {new}\n"})
    return make_runtime(config)


def test_text_to_integer_converts_the_numbers_and_refuses_the_rest(make_runtime, config):
    rt = _retype(config, make_runtime, "{type: string, max_length: 20}", "{type: integer}",
                 ["12", "-3", "007", "twelve", None])
    plan = rt.plan()
    [change] = plan.changes
    assert change.destructive
    assert change.detail() == ("change type of customer.code: VARCHAR(20) -> BIGINT: "
                               "2 values convert, 2 do not (cleared after a backup)")
    assert "customer: code: VARCHAR(20) -> BIGINT (2 values convert, 2 do not" in plan.summary()
    with pytest.raises(MigrationRefused):
        rt.migrate()
    assert rows(rt, "SELECT code FROM customer ORDER BY id") == [("12",), ("-3",), ("007",), ("twelve",), (None,)]

    migration, backup = rt.migrate(allow_data_loss=True)
    assert migration.changes[0].conversion.failed == 2
    saved = [json.loads(line) for line in (backup / "customer.code.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [item["code"] for item in saved] == ["12", "-3", "007", "twelve", None]
    assert rows(rt, "SELECT code FROM customer ORDER BY id") == [(12,), (-3,), (None,), (None,), (None,)]
    assert make_runtime(config).plan().empty
    assert rt.records.update("customer", 1, {"code": 13}, SYSTEM)["code"] == 13


def test_a_type_change_whose_values_all_convert_needs_no_permission(make_runtime, config):
    rt = _retype(config, make_runtime, "{type: string, max_length: 20}", "{type: money}", ["12.5", "0", "1999.99"])
    [change] = rt.plan().changes
    assert not change.destructive
    assert change.conversion.describe() == "3 values convert"
    _, backup = rt.migrate()
    assert backup is None
    with rt.engine.connect() as conn:
        table = rt.tables.entities["customer"]
        stored = [row.code for row in conn.execute(sa.select(table.c.code).order_by(table.c.id))]
    assert [str(value) for value in stored] == ["12.50", "0.00", "1999.99"]
    assert make_runtime(config).plan().empty


@pytest.mark.parametrize(("old", "new", "values", "kept"), [
    ("{type: integer}", "{type: string, max_length: 10}", [30, -1], ["30", "-1"]),
    ("{type: string}", "{type: date}", ["2026-01-31"], ["2026-01-31"]),
    ("{type: string}", "{type: boolean}", ["true", "0"], [True, False]),
    ("{type: string}", "{type: decimal, scale: 2}", ["7", "-0.5"], ["7.00", "-0.50"]),
])
def test_values_that_convert_keep_their_meaning(make_runtime, config, old, new, values, kept):
    rt = _retype(config, make_runtime, old, new, values)
    assert not rt.plan().destructive
    rt.migrate()
    with rt.engine.connect() as conn:
        table = rt.tables.entities["customer"]
        stored = [row.code for row in conn.execute(sa.select(table.c.code).order_by(table.c.id))]
    assert [value if isinstance(value, (bool, str)) else str(value) for value in stored] == kept


@pytest.mark.parametrize(("old", "new", "value"), [
    ("{type: string}", "{type: money}", "12.345"),          # would be rounded
    ("{type: string}", "{type: integer}", "1e3"),
    ("{type: string}", "{type: date}", "31/01/2026"),
    ("{type: string}", "{type: integer}", "7.50"),  # the fraction would be lost
    ("{type: integer}", "{type: date}", 30),
    ("{type: string}", "{type: decimal, precision: 5, scale: 2}", "123456"),  # too many digits
])
def test_values_that_do_not_convert_are_refused(make_runtime, config, old, new, value):
    rt = _retype(config, make_runtime, old, new, [value])
    [change] = rt.plan().changes
    assert change.destructive and change.conversion.failed == 1
    with pytest.raises(MigrationRefused):
        rt.migrate()
    rt.migrate(allow_data_loss=True)
    assert rows(rt, "SELECT code FROM customer") == [(None,)]


def test_removing_an_entity_is_refused_then_backed_up(make_runtime, config):
    make_config(config, {"entities/note.yaml": NOTE})
    rt = make_runtime(config)
    rt.migrate()
    customer = rt.records.create("customer", {"name": "王五"}, SYSTEM)
    note = rt.records.create("note", {"text": "回访：满意", "customer": customer["id"]}, SYSTEM)
    (config / "entities/note.yaml").unlink()
    rt = make_runtime(config)
    plan = rt.plan()
    assert ("remove table note (its data)", True) in descriptions(plan)
    with pytest.raises(MigrationRefused):
        rt.migrate()
    assert rows(rt, "SELECT text FROM note") == [("回访：满意",)]
    _, backup = rt.migrate(allow_data_loss=True)
    saved = [json.loads(line) for line in (backup / "note.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(s["id"], s["text"], s["customer_id"]) for s in saved] == [(note["id"], "回访：满意", customer["id"])]
    with rt.engine.connect() as conn:
        assert not sa.inspect(conn).has_table("note")
    assert rt.plan().empty
    assert rows(rt, "SELECT name FROM customer") == [("王五",)]


def test_adding_a_unique_field(make_runtime, config):
    rt = make_runtime(config)
    rt.migrate()
    rt.records.create("customer", {"name": "A"}, SYSTEM)
    rt.records.create("customer", {"name": "B"}, SYSTEM)
    make_config(config, {"entities/customer.yaml": CUSTOMER + "      card_no: {type: string, unique: true}\n"})
    rt = make_runtime(config)
    assert descriptions(rt.plan()) == [
        ("add column customer.card_no (VARCHAR(255))", False),
        ("add unique index uq_customer_card_no on customer", False),
    ]
    rt.migrate()
    assert rt.plan().empty
    rt.records.update("customer", 1, {"card_no": "C-1"}, SYSTEM)
    with pytest.raises(Conflict) as conflict:
        rt.records.update("customer", 2, {"card_no": "C-1"}, SYSTEM)
    assert conflict.value.code == "unique_violation"
    assert conflict.value.details == {"card_no": ["already used by another record"]}


def test_adding_an_index(make_runtime, config):
    make_runtime(config).migrate()
    make_config(config, {"entities/customer.yaml": CUSTOMER.replace("age: {type: integer}",
                                                                    "age: {type: integer, index: true}")})
    rt = make_runtime(config)
    assert descriptions(rt.plan()) == [("add index ix_customer_age_live on customer", False)]
    rt.migrate()
    assert rt.plan().empty


def index_definitions(rt, table: str) -> dict[str, str]:
    """Index name -> its definition as the database reports it (CREATE INDEX ... [WHERE ...])."""
    with rt.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            query = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :t AND sql IS NOT NULL"
        else:
            query = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = :t AND schemaname = current_schema()"
        return {name: sql for name, sql in conn.execute(sa.text(query), {"t": table})}


def test_indexes_hold_live_records_only_and_replace_full_ones_on_migration(make_runtime, config):
    """A database made before indexes were partial gets the partial ones, its
    old full indexes removed; afterwards the plan is empty (no spurious diff)."""
    rt = make_runtime(config)
    rt.migrate()
    indexes = index_definitions(rt, "customer")
    live = {name for name, sql in indexes.items() if name.endswith("_live")}
    assert {"ix_customer_created_at_live", "ix_customer_updated_at_live", "ix_customer_created_by_sort_live"} <= live
    assert all("deleted_at IS NULL" in indexes[name].replace("(", "").replace(")", "") for name in live)
    assert "deleted_at IS NOT NULL" in indexes["ix_customer_deleted_at"].replace("(", "").replace(")", "")
    with rt.engine.begin() as conn:  # as the previous version made them
        for name in ("ix_customer_created_at_live", "ix_customer_updated_at_live"):
            conn.execute(sa.text(f"DROP INDEX {name}"))
        conn.execute(sa.text("CREATE INDEX ix_customer_created_at ON customer (created_at)"))
        conn.execute(sa.text("CREATE INDEX ix_customer_updated_at ON customer (updated_at)"))
    assert sorted(descriptions(rt.plan())) == [
        ("add index ix_customer_created_at_live on customer", False),
        ("add index ix_customer_updated_at_live on customer", False),
        ("remove index ix_customer_created_at on customer", False),
        ("remove index ix_customer_updated_at on customer", False)]
    rt.migrate()
    assert rt.plan().empty
    assert set(index_definitions(rt, "customer")) == set(indexes)


def test_app_refuses_to_start_with_a_destructive_change_pending(make_app, make_runtime, config):
    app = make_app(config)
    app.test_client().post("/api/v1/customer", json={"name": "张三", "age": 30})
    make_config(config, {"entities/customer.yaml": CUSTOMER.replace("      age: {type: integer}\n", "")})
    with pytest.raises(MigrationRefused) as refused:
        make_app(config)
    message = str(refused.value)
    assert "crmkit migrate" in message and "remove column customer.age" in message
    assert rows(make_runtime(config), "SELECT name, age FROM customer") == [("张三", 30)]


def test_app_applies_additive_changes_on_start(make_app, config):
    make_app(config)
    make_config(config, {"entities/note.yaml": NOTE})
    client = make_app(config).test_client()
    response = client.post("/api/v1/note", json={"text": "hello"})
    assert response.status_code == 201
