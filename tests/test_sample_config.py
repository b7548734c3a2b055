"""The flagship sample config, sample_configs/retail_crm: it checks, migrates
cleanly, seeds valid demo data and serves it."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from conftest import SAMPLE_CONFIG, is_error
from crmkit.cli import cli
from crmkit.loading import load_config as load
from crmkit.seed import seed

REQUIRED_ENTITIES = {"lead", "customer", "contact", "opportunity", "product", "order", "order_line", "contract",
                     "receivable_plan", "payment", "invoice", "ticket", "activity", "campaign", "feedback"}


@pytest.fixture(scope="module")
def sample_spec():
    spec, _pm, _types = load(SAMPLE_CONFIG)
    return spec


def test_sample_config_checks():
    result = CliRunner().invoke(cli, ["check", str(SAMPLE_CONFIG)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{SAMPLE_CONFIG}: OK (")


def test_sample_config_has_the_retail_entities_in_both_languages(sample_spec):
    assert REQUIRED_ENTITIES <= set(sample_spec.entities)
    for entity in sample_spec.entities.values():
        assert entity.label.get("en") and entity.label.get("zh"), entity.name
        for f in entity.user_fields:
            assert f.label.get("zh"), f"{entity.name}.{f.name} has no Chinese label"


def test_sample_workflows_govern_enum_fields(sample_spec):
    workflows = sample_spec.workflows
    assert workflows, "the sample config should show a workflow"
    for workflow in workflows:
        field = sample_spec.entities[workflow.entity].fields[workflow.field]
        assert field.type == "enum"
        assert set(workflow.states) <= {str(v) for v in field.option_values}


def test_sample_migrates_without_spurious_differences(make_runtime):
    rt = make_runtime(SAMPLE_CONFIG)
    plan = rt.plan()
    assert not plan.destructive
    assert {f"add table {name}" for name in REQUIRED_ENTITIES} <= {c.description for c in plan.changes}
    rt.migrate()
    assert rt.plan().empty
    assert make_runtime(SAMPLE_CONFIG).plan().empty


def test_sample_seeds_and_serves(make_app):
    app = make_app(SAMPLE_CONFIG)
    rt = app.extensions["crmkit"]
    counts = seed(rt, size=12, random_seed=3)
    assert counts["customer"] == 12
    assert all(n >= 1 for n in counts.values()), counts
    client = app.test_client()
    listed = client.get("/api/v1/customer?count=true&limit=5").get_json()
    assert listed["count"] == 12 and len(listed["data"]) == 5 and listed["next"]
    customer = listed["data"][0]
    whole = client.get(f"/api/v1/customer/{customer['id']}").get_json()["data"]
    assert {name: whole[name] for name in customer} == customer  # a list item leaves out fields without a value
    assert all(whole[name] in (None, []) for name in whole.keys() - customer.keys())
    orders = client.get("/api/v1/order?count=true").get_json()
    assert orders["count"] == counts["order"]
    is_error(client.get("/api/v1/customer?nme=x"), 400, "invalid_filter")
    assert client.get("/api/v1/docs").status_code == 200
    pooled = client.get("/api/v1/customer?count=true&owner_id__isnull=true").get_json()
    assert pooled["count"] >= 1, "the demo's pool (公海) has customers in it"
