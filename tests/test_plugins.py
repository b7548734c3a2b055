"""The plugin host: the example loyalty plugin end to end, broken plugins
named clearly, and the platform's own hooks (audit, auto-numbers)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import crmkit.hookspecs
import crmkit.loading
import crmkit.plugins
from conftest import is_error, make_config
from crmkit.hookspecs import hookimpl
from crmkit.loading import load_config as load
from crmkit.metadata.problems import ConfigError
from crmkit.records import RecordError

API = "/api/v1"

LOYALTY = {
    "app.yaml": "app: shop\nplugins: [loyalty]\n",
    "entities/customer.yaml": """
        entity: customer
        label: {en: Customer, zh: 客户}
        fields:
          name: {type: string, required: true}
          points: {type: integer, readonly: true}
    """,
}


@pytest.fixture
def loyalty(make_app, tmp_path):
    app = make_app(make_config(tmp_path / "config", LOYALTY))
    return app.test_client()


def customer_points(client, customer_id: int) -> int | None:
    return client.get(f"{API}/customer/{customer_id}").get_json()["data"]["points"]


def transactions(client) -> list[dict]:
    return client.get(f"{API}/points_transaction").get_json()["data"]


def test_plugin_contributes_its_entity(loyalty, tmp_path):
    spec, pm, _types = load(tmp_path / "config")
    assert spec.plugins == ("loyalty",)
    entity = spec.entities["points_transaction"]
    assert entity.source == "<plugin crmkit_loyalty>/entities/points_transaction.yaml"
    assert entity.label["zh"] == "积分流水"
    assert pm.get_plugin("loyalty") is not None
    assert "/api/v1/points_transaction" in loyalty.get(f"{API}/openapi.json").get_json()["paths"]


def test_earning_points_updates_the_customer_with_audit(loyalty):
    customer = loyalty.post(f"{API}/customer", json={"name": "张三"}).get_json()["data"]
    response = loyalty.post(f"{API}/points_transaction", json={"customer": customer["id"], "points": 100,
                                                               "reason": "purchase"})
    assert response.status_code == 201
    assert response.get_json()["data"]["occurred_at"].endswith("Z")  # default: now
    assert customer_points(loyalty, customer["id"]) == 100
    loyalty.post(f"{API}/points_transaction", json={"customer": customer["id"], "points": -30, "reason": "redeem"})
    assert customer_points(loyalty, customer["id"]) == 70
    history = loyalty.get(f"{API}/customer/{customer['id']}/history").get_json()["data"]
    assert [(h["action"], h["actor"], h["changes"]) for h in history[:2]] == [
        ("update", "system", {"points": [100, 70]}),
        ("update", "system", {"points": [None, 100]}),
    ]


def test_spending_more_than_the_balance_is_refused_and_nothing_written(loyalty):
    customer = loyalty.post(f"{API}/customer", json={"name": "张三"}).get_json()["data"]
    loyalty.post(f"{API}/points_transaction", json={"customer": customer["id"], "points": 100, "reason": "purchase"})
    error = is_error(loyalty.post(f"{API}/points_transaction", json={
        "customer": customer["id"], "points": -150, "reason": "redeem"}), 422, "refused")
    assert error["message"] == f"customer {customer['id']} has only 100 points"
    assert error["details"] == {"points": ["not enough points"]}
    assert customer_points(loyalty, customer["id"]) == 100
    assert [t["points"] for t in transactions(loyalty)] == [100]
    history = loyalty.get(f"{API}/customer/{customer['id']}/history").get_json()["data"]
    assert len(history) == 2  # create, one update: the refused write left no trace


def test_zero_points_are_refused(loyalty):
    customer = loyalty.post(f"{API}/customer", json={"name": "张三"}).get_json()["data"]
    error = is_error(loyalty.post(f"{API}/points_transaction", json={
        "customer": customer["id"], "points": 0, "reason": "adjust"}), 422, "refused")
    assert error["details"] == {"points": ["must not be 0"]}
    assert transactions(loyalty) == []
    assert customer_points(loyalty, customer["id"]) is None


def test_bulk_transactions_add_up(loyalty):
    customer = loyalty.post(f"{API}/customer", json={"name": "张三"}).get_json()["data"]
    response = loyalty.post(f"{API}/points_transaction/_bulk", json=[
        {"customer": customer["id"], "points": 10, "reason": "purchase"},
        {"customer": customer["id"], "points": 5, "reason": "birthday"}])
    assert response.status_code == 201
    assert customer_points(loyalty, customer["id"]) == 15
    is_error(loyalty.post(f"{API}/points_transaction/_bulk", json=[
        {"customer": customer["id"], "points": 10, "reason": "purchase"},
        {"customer": customer["id"], "points": -100, "reason": "redeem"}]), 422, "refused")
    assert customer_points(loyalty, customer["id"]) == 15
    assert len(transactions(loyalty)) == 2


def test_plugin_enabled_but_not_installed(tmp_path):
    make_config(tmp_path, {"app.yaml": "app: shop\nplugins: [loyalty, nosuch]\n",
                           "entities/customer.yaml": LOYALTY["entities/customer.yaml"]})
    with pytest.raises(ConfigError) as info:
        load(tmp_path)
    [problem] = info.value.problems
    assert problem.file == "app.yaml"
    assert problem.message == ("plugin 'nosuch' is enabled in the config but not installed "
                               "(installed plugins: loyalty); install its package, e.g. pip install crmkit-nosuch")


# ---------------------------------------------------------------- broken plugins, registered directly

class FakeEntryPoint:
    """Stands for an installed package's entry point."""

    def __init__(self, name: str, load):
        self.name = name
        self.value = f"tests_fake_{name}"
        self._load = load

    def load(self):
        return self._load()


@pytest.fixture
def installed(monkeypatch):
    """Install test-local plugins: name -> a callable returning the plugin object."""
    real = crmkit.plugins.available_plugins()
    extra: dict[str, FakeEntryPoint] = {}
    monkeypatch.setattr(crmkit.plugins, "available_plugins", lambda: {**real, **extra})

    def install(name: str, load) -> None:
        extra[name] = FakeEntryPoint(name, load)

    return install


def _config_with(tmp_path: Path, plugin: str) -> Path:
    return make_config(tmp_path / "config", {"app.yaml": f"app: shop\nplugins: [{plugin}]\n",
                                             "entities/customer.yaml": LOYALTY["entities/customer.yaml"]})


def problem_of(config: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load(config)
    [problem] = info.value.problems
    assert problem.file == "app.yaml"
    return problem.message


def test_plugin_that_fails_to_import(installed, tmp_path):
    def boom():
        raise ImportError("No module named 'crmkit_missing_dependency'")

    installed("broken", boom)
    assert problem_of(_config_with(tmp_path, "broken")) == (
        "plugin 'broken' failed to load from tests_fake_broken: "
        "ImportError: No module named 'crmkit_missing_dependency'")


def test_plugin_with_a_misspelled_hook(installed, tmp_path):
    class Typo:
        @hookimpl
        def record_before_creat(self, event):
            pass

    installed("typo", Typo)
    message = problem_of(_config_with(tmp_path, "typo"))
    assert message.startswith("plugin 'typo' is not a valid crmkit plugin:")
    assert "record_before_creat" in message


def test_plugin_whose_metadata_hook_raises(installed, tmp_path):
    class Broken:
        @hookimpl
        def crmkit_metadata_dirs(self):
            raise RuntimeError("metadata folder missing")

    installed("broken", Broken)
    assert problem_of(_config_with(tmp_path, "broken")) == (
        "plugin 'broken' failed in crmkit_metadata_dirs: RuntimeError: metadata folder missing")


def test_problems_in_a_plugins_metadata_name_the_plugin(installed, tmp_path):
    folder = make_config(tmp_path / "fancy" / "metadata", {"entities/gift.yaml": """
        entity: gift
        fields:
          name: {type: strng}
    """})

    class Fancy:
        @hookimpl
        def crmkit_metadata_dirs(self):
            return [str(folder)]

    installed("fancy", Fancy)
    with pytest.raises(ConfigError) as info:
        load(_config_with(tmp_path, "fancy"))
    [problem] = info.value.problems
    assert str(problem) == "<plugin fancy>/entities/gift.yaml:3:16: unknown field type 'strng' (did you mean 'string'?)"


def test_plugin_whose_app_hook_raises_stops_start_up(installed, tmp_path, make_app):
    class Broken:
        @hookimpl
        def crmkit_app_ready(self, app, spec):
            raise KeyError("blueprint")

    installed("broken", Broken)
    with pytest.raises(crmkit.plugins.PluginError) as info:
        make_app(_config_with(tmp_path, "broken"))
    assert str(info.value) == "plugin 'broken' failed in crmkit_app_ready: KeyError: 'blueprint'"


# ---------------------------------------------------------------- the hookspec version a plugin is built for

def built_for(version):
    class Plugin:
        crmkit_hookspec = version

        @hookimpl
        def crmkit_metadata_dirs(self):
            return []

    return Plugin()


def test_the_loyalty_plugin_declares_its_hookspec_version():
    import crmkit_loyalty

    assert crmkit_loyalty.crmkit_hookspec == crmkit.hookspecs.HOOKSPEC_VERSION


def test_a_plugin_built_for_a_newer_major_version_refuses_to_load(installed, tmp_path):
    installed("future", lambda: built_for("2.0"))
    assert problem_of(_config_with(tmp_path, "future")) == (
        "plugin 'future' is built for crmkit hookspec 2.0, newer than this crmkit's "
        f"{crmkit.hookspecs.HOOKSPEC_VERSION}: upgrade crmkit, "
        "or install a release of the plugin built for hookspec 1.x")


def test_a_plugin_built_for_an_older_major_version_refuses_to_load(installed, tmp_path, monkeypatch):
    monkeypatch.setattr(crmkit.hookspecs, "HOOKSPEC_VERSION", "2.1")
    installed("old", lambda: built_for("1.4"))
    assert problem_of(_config_with(tmp_path, "old")) == (
        "plugin 'old' is built for crmkit hookspec 1.4, older than this crmkit's 2.1 (hook signatures changed "
        "in 2.0): install a release of the plugin built for hookspec 2.x")


def test_a_plugin_built_for_an_older_minor_version_loads(installed, tmp_path, monkeypatch):
    monkeypatch.setattr(crmkit.hookspecs, "HOOKSPEC_VERSION", "1.3")
    installed("older", lambda: built_for("1.1"))
    spec, pm, _types = load(_config_with(tmp_path, "older"))
    assert pm.get_plugin("older") is not None


def test_a_plugin_without_a_declaration_is_taken_as_built_for_1_0(installed, tmp_path, monkeypatch):
    class Undeclared:
        @hookimpl
        def crmkit_metadata_dirs(self):
            return []

    installed("plain", Undeclared)
    assert load(_config_with(tmp_path, "plain"))[1].get_plugin("plain") is not None
    monkeypatch.setattr(crmkit.hookspecs, "HOOKSPEC_VERSION", "2.0")
    assert problem_of(_config_with(tmp_path / "again", "plain")).startswith(
        "plugin 'plain' is built for crmkit hookspec 1.0, older than this crmkit's 2.0")


def test_a_newer_minor_version_loads_unless_it_needs_hooks_this_crmkit_lacks(installed, tmp_path):
    installed("newer", lambda: built_for("1.5"))
    assert load(_config_with(tmp_path, "newer"))[1].get_plugin("newer") is not None

    class NeedsNewHooks:
        crmkit_hookspec = "1.5"

        @hookimpl
        def record_before_restore(self, event):
            pass

    installed("needy", NeedsNewHooks)
    message = problem_of(_config_with(tmp_path / "needy", "needy"))
    assert message.startswith("plugin 'needy' is not a valid crmkit plugin (it is built for hookspec 1.5; "
                              f"this crmkit has {crmkit.hookspecs.HOOKSPEC_VERSION}):")
    assert "record_before_restore" in message


def test_a_hookspec_declaration_that_is_not_a_version(installed, tmp_path):
    installed("odd", lambda: built_for(1.0))
    assert problem_of(_config_with(tmp_path, "odd")) == (
        "plugin 'odd' declares crmkit_hookspec = 1.0; expected the hookspec version it was built for, "
        f"such as \"{crmkit.hookspecs.HOOKSPEC_VERSION}\"")


# ---------------------------------------------------------------- field types

class Phoneticism:
    """A test-local plugin adding a field type."""

    crmkit_hookspec = "1.0"

    @hookimpl
    def crmkit_field_types(self):
        from crmkit.fieldtypes import StringType

        class PinyinType(StringType):
            name = "pinyin"

        return [PinyinType()]


def test_built_in_field_types_come_through_the_plugin_hook(installed, tmp_path):
    installed("pinyin", Phoneticism)
    _spec, pm, types = load(_config_with(tmp_path, "pinyin"))
    assert "crmkit.fieldtypes" in {name for name, _ in pm.list_name_plugin()}
    assert {"string", "money", "region", "pinyin"} <= set(types)
    pm.unregister(name="crmkit.fieldtypes")
    assert set(crmkit.loading.field_types(pm)) == {"pinyin"}


def test_two_plugins_may_not_define_one_field_type(installed, tmp_path):
    class Shadow:
        @hookimpl
        def crmkit_field_types(self):
            from crmkit.fieldtypes import TextType

            class Impostor(TextType):
                name = "string"

            return [Impostor()]

    installed("shadow", Shadow)
    assert problem_of(_config_with(tmp_path, "shadow")) == (
        "plugin 'shadow' defines field type 'string', which crmkit.fieldtypes already defines")


class Refuser:
    """A test-local plugin refusing customers named 'nobody'."""

    @hookimpl
    def record_before_create(self, event):
        if event.entity.name == "customer" and any(row.get("name") == "nobody" for row in event.rows):
            raise RecordError("nobody is not a customer", {"name": ["refused by the test plugin"]})


class Crasher:
    """A test-local plugin whose hook fails with an unexpected error."""

    @hookimpl
    def record_after_create(self, event):
        if event.entity.name == "customer":
            raise LookupError("crasher lost its table")


def test_hook_refusing_a_write(make_app, tmp_path):
    app = make_app(make_config(tmp_path / "config", LOYALTY))
    pm = app.extensions["crmkit"].pm
    pm.register(Refuser(), name="refuser")
    client = app.test_client()
    error = is_error(client.post(f"{API}/customer", json={"name": "nobody"}), 422, "refused")
    assert error == {"code": "refused", "message": "nobody is not a customer",
                     "details": {"name": ["refused by the test plugin"]}}
    assert client.post(f"{API}/customer", json={"name": "somebody"}).status_code == 201
    assert [c["name"] for c in client.get(f"{API}/customer").get_json()["data"]] == ["somebody"]


def test_hook_crashing_rolls_back_and_is_logged(make_app, tmp_path, caplog):
    app = make_app(make_config(tmp_path / "config", LOYALTY))
    app.extensions["crmkit"].pm.register(Crasher(), name="crasher")
    client = app.test_client()
    with caplog.at_level(logging.ERROR, logger=app.logger.name):
        response = client.post(f"{API}/customer", json={"name": "张三"})
    error = is_error(response, 500, "internal_error")
    assert error["message"] == "an unexpected error occurred; it has been logged"
    [record] = [r for r in caplog.records if r.exc_info]
    assert record.getMessage() == "unexpected error in POST /api/v1/customer"
    assert record.exc_info[0] is LookupError and "crasher lost its table" in str(record.exc_info[1])
    app.extensions["crmkit"].pm.unregister(name="crasher")
    assert client.get(f"{API}/customer").get_json()["data"] == []  # the insert was rolled back


def test_audit_and_autonumbers_are_internal_plugins(make_app, mini_config):
    app = make_app(mini_config)
    pm = app.extensions["crmkit"].pm
    assert {"crmkit.audit", "crmkit.autonumber"} <= {name for name, _ in pm.list_name_plugin()}
    client = app.test_client()
    pm.unregister(name="crmkit.audit")
    record = client.post(f"{API}/contract", json={}).get_json()["data"]
    assert client.get(f"{API}/contract/{record['id']}/history").get_json()["data"] == []
    assert record["number"].startswith("HT")
    pm.unregister(name="crmkit.autonumber")
    assert client.post(f"{API}/contract", json={}).get_json()["data"]["number"] is None
