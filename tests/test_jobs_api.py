"""The jobs API (admins only): the dead-letter list and replay, in the list
grammar and the one error shape; and the job commands of the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import MINI_FILES, is_error, make_config, token_for
from crmkit.cli import cli
from crmkit.jobs import PermanentFailure, task


@task("api_test.ok")
def ok(runtime, payload):
    pass


@task("api_test.broken", max_attempts=1)
def broken(runtime, payload):
    raise PermanentFailure(f"template {payload['template']!r} does not exist")


#: A role that reads everything, the audit trail included, but is no admin.
ROLES_YAML = """
    roles:
      auditor:
        label: {en: Auditor, zh: 审计员}
        entities:
          customer: {read: all}
          user: {read: all}
          audit: {read: all}
"""


@pytest.fixture
def mini_config(tmp_path: Path) -> Path:
    return make_config(tmp_path / "config", {**MINI_FILES, "roles.yaml": ROLES_YAML})


@pytest.fixture
def jobs_app(make_app, mini_config: Path):
    app = make_app(mini_config)
    rt = app.extensions["crmkit"]
    rt.settings = rt.jobs.settings = type(rt.settings)(**{**rt.settings.__dict__, "jobs_backoff": 0.0})
    rt.jobs.enqueue("api_test.ok", {"n": 1})
    rt.jobs.enqueue("api_test.broken", {"template": "生日快乐"}, key="birthday:7")
    rt.jobs.enqueue("api_test.broken", {"template": "wake_up"})
    rt.jobs.run_pending()
    return app


def test_an_admin_lists_the_dead_letter_list(jobs_app):
    client = jobs_app.test_client()
    body = client.get("/api/v1/jobs?status=dead").get_json()
    assert [(job["task"], job["payload"]["template"]) for job in body["data"]] == [
        ("api_test.broken", "wake_up"), ("api_test.broken", "生日快乐")]  # newest first
    job = body["data"][1]
    assert job["status"] == "dead" and job["attempts"] == 1 and job["key"] == "birthday:7"
    assert "PermanentFailure: template '生日快乐' does not exist" in job["last_error"]
    assert body["next"] is None
    all_jobs = client.get("/api/v1/jobs?count=true&limit=1").get_json()
    assert all_jobs["count"] == 3 and all_jobs["next"] and len(all_jobs["data"]) == 1
    second = client.get(all_jobs["next_url"]).get_json()
    assert second["data"][0]["id"] < all_jobs["data"][0]["id"]
    assert [j["status"] for j in client.get("/api/v1/jobs?status=done").get_json()["data"]] == ["done"]
    assert len(client.get("/api/v1/jobs?task=api_test.broken&sort=id").get_json()["data"]) == 2


def test_an_admin_replays_a_dead_job(jobs_app):
    client = jobs_app.test_client()
    rt = jobs_app.extensions["crmkit"]
    dead = client.get("/api/v1/jobs?status=dead").get_json()["data"][0]
    replayed = client.post(f"/api/v1/jobs/{dead['id']}/replay")
    assert replayed.status_code == 200
    assert (replayed.get_json()["data"]["status"], replayed.get_json()["data"]["attempts"]) == ("pending", 0)
    error = is_error(client.post(f"/api/v1/jobs/{dead['id']}/replay"), 409, "conflict")
    assert error["message"] == f"job {dead['id']} is pending, not dead: only a dead job is replayed"
    assert rt.jobs.run_pending() == 1
    assert client.get(f"/api/v1/jobs/{dead['id']}").get_json()["data"]["attempts"] == 1


def test_jobs_are_for_admins_only(jobs_app):
    token_for(jobs_app, "wu", ("auditor",))
    rep = jobs_app.test_client(user="wu")
    is_error(rep.get("/api/v1/jobs"), 403, "forbidden")
    is_error(rep.post("/api/v1/jobs/1/replay"), 403, "forbidden")
    is_error(jobs_app.test_client(user=None).get("/api/v1/jobs"), 401)
    from crmkit.api.openapi import document

    rt = jobs_app.extensions["crmkit"]
    assert "/api/v1/jobs" in document(rt, rt.permissions.access(("admin",)))["paths"]
    assert "/api/v1/jobs" not in document(rt, rt.permissions.access(("auditor",)))["paths"]


def test_bad_job_requests_get_the_one_error_shape(jobs_app):
    client = jobs_app.test_client()
    error = is_error(client.get("/api/v1/jobs?status=zombie"), 400)
    assert "status" in str(error)
    is_error(client.get("/api/v1/jobs?sort=password"), 400)
    is_error(client.get("/api/v1/jobs/999999"), 404, "not_found")
    is_error(client.get("/api/v1/jobs/abc"), 404, "not_found")
    is_error(client.post("/api/v1/jobs/999999/replay"), 404, "not_found")
    is_error(client.delete("/api/v1/jobs/1"), 405)


# ---------------------------------------------------------------- the CLI

def test_the_cli_lists_replays_and_runs_jobs(jobs_app, mini_config, monkeypatch):
    rt = jobs_app.extensions["crmkit"]
    monkeypatch.setenv("CRMKIT_DATABASE_URL", rt.settings.database_url)
    monkeypatch.delenv("CRMKIT_REDIS_URL", raising=False)
    runner = CliRunner()
    listed = runner.invoke(cli, ["jobs", "list", "--dead", str(mini_config)])
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0].split() == ["id", "task", "status", "attempts", "created", "due", "/", "finished", "last",
                                "error"]
    assert len(lines) == 3 and all("api_test.broken" in line and "dead" in line for line in lines[1:])
    assert "does not exist" in lines[1]
    dead_id = lines[1].split()[0]
    replayed = runner.invoke(cli, ["jobs", "replay", dead_id, str(mini_config)])
    assert replayed.exit_code == 0 and f"Job {dead_id} (api_test.broken) queued again." in replayed.output
    again = runner.invoke(cli, ["jobs", "replay", dead_id, str(mini_config)])
    assert again.exit_code == 1 and f"error: job {dead_id} is pending, not dead" in again.output
    ran = runner.invoke(cli, ["jobs", "run", str(mini_config)])
    assert ran.exit_code == 0 and ran.output.startswith("Ran 1 job(s)")
    missing = runner.invoke(cli, ["jobs", "replay", "999", str(mini_config)])
    assert missing.exit_code == 1 and "error: no job 999" in missing.output
    bad = runner.invoke(cli, ["jobs", "list", "--dead", "--status", "done", str(mini_config)])
    assert bad.exit_code == 2
