"""Automations (issue 10, section 1): every trigger and built-in action, the
``fields:`` filter, ``enabled: false``, loop protection, dry runs that write
nothing, the run log in the API and the timeline, and ``crmkit check`` of the
documents. Runs go through the real job queue (crmkit.jobs), drained in the
test's thread, in-process and on Redis (CRMKIT_TEST_REDIS_URL). On SQLite
and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from conftest import JOB_BACKENDS, is_error, make_config, redis_url_for_tests, token_for
from crmkit.automations import sweeps
from crmkit.automations.engine import MAX_DEPTH
from crmkit.cli import cli
from crmkit.database import write_transaction
from crmkit.loading import load_config
from crmkit.metadata.problems import ConfigError
from crmkit.permissions import SYSTEM

FILES = {
    "app.yaml": """
        app: shop
        timezone: Asia/Shanghai
    """,
    "entities/customer.yaml": """
        entity: customer
        label: {en: Customer, zh: 客户}
        title: name
        owned: true
        fields:
          name: {type: string, required: true}
          level: {type: enum, options: [bronze, silver, gold], default: bronze}
          lifecycle: {type: enum, options: [new, active, at_risk, lost], default: new}
          score: {type: integer}
          note: {type: text}
          mobile: {type: phone}
          last_order_at: {type: datetime}
          birthday: {type: date}
        relations:
          orders: {kind: one_to_many, entity: order, field: customer}
    """,
    "entities/order.yaml": """
        entity: order
        label: {en: Order, zh: 订单}
        owned: true
        fields:
          customer: {type: ref, to: customer, required: true}
          total: {type: money, min: 0}
          note: {type: string}
          stage: {type: enum, options: [open, paid, closed], default: open}
    """,
    "entities/task.yaml": """
        entity: task
        owned: true
        fields:
          subject: {type: string, required: true}
          customer: {type: ref, to: customer}
          due_on: {type: date}
    """,
    "workflows/order.yaml": """
        workflow: order_stage
        entity: order
        field: stage
        states: [open, paid, closed]
        transitions:
          - {name: pay, from: open, to: paid}
          - {name: close, from: paid, to: closed, when: "total > 0"}
    """,
    "tags.yaml": """
        tags:
          vip: {entity: customer}
          big: {entity: order}
          welcomed: {entity: customer}
          rich: {entity: customer, rule: "score >= 1000"}
    """,
    "roles.yaml": """
        roles:
          rep:
            entities: {customer: {read: own, create: true, update: own}, order: {read: own}}
    """,
    "automations/records.yaml": """
        automations:
          welcome:
            label: {en: Welcome, zh: 欢迎}
            trigger: {created: customer}
            do:
              - set: {lifecycle: active, note: "= 'welcome ' + name"}
              - tag: welcomed
          big_order:
            trigger: {created: order}
            when: "total >= 1000"
            do: [{tag: big}, {create: {entity: task, values: {subject: "= 'call about order ' + note",
                                                              customer: "= customer", due_on: "= today() + 3d"}}}]
          score_changed:
            trigger: {updated: customer, fields: [score]}
            do: [{create: {entity: task, values: {subject: score changed, customer: "= id"}}}]
          farewell:
            trigger: {deleted: customer}
            do: [{create: {entity: task, values: {subject: "= 'gone: ' + name"}}}]
          paid:
            trigger: {transition: order_stage.pay}
            do: [{set: {note: paid!}}, {transition: close}]
          any_move:
            trigger: {transition: order_stage}
            do: [{create: {entity: task, values: {subject: "= 'moved to ' + stage"}}}]
          vip_added:
            trigger: {tag_added: vip}
            do: [{set: {level: gold}}]
          vip_removed:
            trigger: {tag_removed: vip}
            do: [{set: {level: silver}}]
          rich_added:
            trigger: {tag_added: rich}
            do: [{tag: vip}]
          lost:
            trigger: {updated: customer, fields: [lifecycle]}
            when: "lifecycle = 'lost'"
            do: [{untag: welcomed}]
          switched_off:
            enabled: false
            trigger: {created: customer}
            do: [{set: {level: gold}}]
    """,
    "automations/time.yaml": """
        automations:
          nightly:
            trigger: {schedule: "0 2 * * *"}
            entity: customer
            when: "level = 'gold'"
            do: [{set: {lifecycle: at_risk}}]
          morning:
            trigger: {schedule: "0 8 * * 1-5"}
            do: [{create: {entity: task, values: {subject: "plan the day", due_on: "= today()"}}}]
          sleeping:
            trigger: {time: "90d after customer.last_order_at"}
            do: [{create: {entity: task, values: {subject: "= 'wake ' + name", customer: "= id"}}}]
          birthday_soon:
            trigger: {time: "3d before customer.birthday"}
            do: [{create: {entity: task, values: {subject: "= 'birthday ' + name", customer: "= id"}}}]
    """,
}

PASSWORD = "correct horse battery"
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}

LOOP = {
    "automations/loop.yaml": """
        automations:
          bump:
            trigger: {updated: customer, fields: [score]}
            do: [{set: {score: "= score + 1"}}]
    """,
}


@pytest.fixture(params=JOB_BACKENDS)
def shop(request, make_runtime, tmp_path: Path):
    """The shop on the test's database, its runs on the in-process queue (the
    database backend) or on Redis with RQ."""
    overrides: dict = {}
    if request.param == "redis":
        overrides.update(redis_url=redis_url_for_tests(), jobs_queue=f"crmkit-test-{uuid.uuid4().hex[:12]}")
    rt = make_runtime(make_config(tmp_path / "config", FILES), **overrides)
    rt.migrate()
    yield rt
    if request.param == "redis":
        rt.jobs.rq().delete_queue()
        rt.jobs.rq().queue.connection.connection_pool.disconnect()


def drain(rt) -> int:
    return rt.jobs.run_pending()


def runs(rt, **where) -> list[dict]:
    table = rt.automations.log.table
    query = sa.select(table).where(*(table.c[k] == v for k, v in where.items())).order_by(table.c.id)
    with rt.engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def tasks(rt) -> list[dict]:
    table = rt.tables.entities["task"]
    with rt.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(table).order_by(table.c.id)).mappings()]


def get(rt, entity: str, record_id: int) -> dict:
    with rt.engine.connect() as conn:
        return dict(rt.queries.fetch(conn, rt.spec.entities[entity], record_id, actor=SYSTEM))


def tags_of(rt, entity: str, record_id: int) -> list[str]:
    with rt.engine.connect() as conn:
        return rt.records.tagging.names(conn, rt.spec.entities[entity], [record_id],
                                        rt.permissions.everything)[record_id]


# ---------------------------------------------------------------- record triggers and actions

def test_created_runs_set_with_literals_and_expressions_and_tags(shop):
    c = shop.records.create("customer", {"name": "Li"}, SYSTEM)
    assert get(shop, "customer", c["id"])["lifecycle"] == "new"  # nothing runs inside the write
    drain(shop)
    stored = get(shop, "customer", c["id"])
    assert (stored["lifecycle"], stored["note"]) == ("active", "welcome Li")
    assert tags_of(shop, "customer", c["id"]) == ["welcomed"]
    [run] = runs(shop, automation="welcome")
    assert (run["status"], run["entity"], run["record_id"], run["trigger"]) == ("ok", "customer", c["id"],
                                                                               "created: customer")
    assert [r["action"] for r in run["results"]] == ["set", "tag"]
    assert not runs(shop, automation="switched_off")  # enabled: false


def test_a_bulk_create_enqueues_a_run_per_record_in_one_statement(shop, monkeypatch):
    from crmkit.automations import engine

    monkeypatch.setattr(engine, "BATCH", 2)  # five records: three statements
    inserts: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO CRMKIT_JOB"):
            inserts.append(statement)
    sa.event.listen(shop.engine, "before_cursor_execute", seen)
    try:
        created = shop.records.create_many("customer", [{"name": f"Li {n}"} for n in range(5)], SYSTEM)
    finally:
        sa.event.remove(shop.engine, "before_cursor_execute", seen)
    assert len(inserts) == 3, inserts
    drain(shop)
    assert sorted(r["record_id"] for r in runs(shop, automation="welcome", status="ok")) == \
        sorted(c["id"] for c in created)
    assert {get(shop, "customer", c["id"])["note"] for c in created} == {f"welcome Li {n}" for n in range(5)}


def test_an_automation_writes_as_the_system_audited_by_its_name(shop):
    c = shop.records.create("customer", {"name": "Li"}, SYSTEM)
    drain(shop)
    audit = shop.tables.audit
    with shop.engine.connect() as conn:
        actors = {(r.action, r.actor) for r in conn.execute(sa.select(audit).where(
            audit.c.entity == "customer", audit.c.record_id == c["id"]))}
    assert ("update", "automation welcome") in actors and ("tag_added", "automation welcome") in actors


def test_when_decides_at_run_time_and_create_reads_the_trigger_record(shop):
    c = shop.records.create("customer", {"name": "Li"}, SYSTEM)
    small = shop.records.create("order", {"customer": c["id"], "total": "10.00", "note": "A1"}, SYSTEM)
    big = shop.records.create("order", {"customer": c["id"], "total": "5000.00", "note": "B2"}, SYSTEM)
    drain(shop)
    assert tags_of(shop, "order", big["id"]) == ["big"] and tags_of(shop, "order", small["id"]) == []
    made = [t for t in tasks(shop) if t["subject"].startswith("call about")]
    assert [(t["subject"], t["customer_id"]) for t in made] == [("call about order B2", c["id"])]
    local_today = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()
    assert made[0]["due_on"] == local_today + dt.timedelta(days=3)
    assert made[0]["owner_id"] == big["owner_id"]
    statuses = {r["record_id"]: (r["status"], r["condition"]) for r in runs(shop, automation="big_order")}
    assert statuses == {small["id"]: ("skipped", False), big["id"]: ("ok", True)}


def test_updated_with_fields_fires_only_when_one_of_them_changed(shop):
    c = shop.records.create("customer", {"name": "Li"}, SYSTEM)
    drain(shop)
    shop.records.update("customer", c["id"], {"note": "x", "mobile": "13800000000"}, SYSTEM)
    assert drain(shop) == 0
    assert not runs(shop, automation="score_changed")
    shop.records.update("customer", c["id"], {"score": 5}, SYSTEM)
    drain(shop)
    assert [t["subject"] for t in tasks(shop)] == ["score changed"]
    shop.records.update("customer", c["id"], {"score": 5}, SYSTEM)  # no change: no event
    assert drain(shop) == 0


def test_deleted_runs_on_the_record_in_the_recycle_bin(shop):
    c = shop.records.create("customer", {"name": "Wang"}, SYSTEM)
    drain(shop)
    shop.records.delete("customer", c["id"], SYSTEM)
    drain(shop)
    assert [t["subject"] for t in tasks(shop)] == ["gone: Wang"]


def test_transition_triggers_a_move_by_name_or_any_move_and_the_transition_action(shop):
    c = shop.records.create("customer", {"name": "Li"}, SYSTEM)
    o = shop.records.create("order", {"customer": c["id"], "total": "20.00", "note": "n"}, SYSTEM)
    drain(shop)
    shop.records.update("order", o["id"], {"note": "changed"}, SYSTEM)  # an update, no move
    drain(shop)
    assert not runs(shop, automation="paid") and not runs(shop, automation="any_move")
    shop.records.transition("order", o["id"], "pay", {}, SYSTEM)
    drain(shop)
    stored = get(shop, "order", o["id"])
    assert (stored["stage"], stored["note"]) == ("closed", "paid!")  # set, then the close move
    [run] = runs(shop, automation="paid")
    assert run["results"][1]["result"] == "moved by 'close' to closed"
    # Both moves (pay by the user, close by the automation) are moves of the workflow.
    assert sorted(t["subject"] for t in tasks(shop)) == ["moved to closed", "moved to closed"]


def test_a_failing_action_stops_the_run_and_is_logged(shop):
    c = shop.records.create("customer", {"name": "Li"}, SYSTEM)
    o = shop.records.create("order", {"customer": c["id"], "total": "0.00", "note": "n"}, SYSTEM)
    drain(shop)
    shop.records.transition("order", o["id"], "pay", {}, SYSTEM)
    drain(shop)
    [run] = runs(shop, automation="paid")
    assert run["status"] == "failed" and run["error"].startswith("transition: ")
    assert get(shop, "order", o["id"])["stage"] == "paid"


def test_tag_added_and_removed_by_hand_and_by_rule(shop):
    c = shop.records.create("customer", {"name": "Li"}, SYSTEM)
    drain(shop)
    shop.records.tagging.add("customer", c["id"], "vip", SYSTEM)
    drain(shop)
    assert get(shop, "customer", c["id"])["level"] == "gold"
    shop.records.tagging.remove("customer", c["id"], "vip", SYSTEM)
    drain(shop)
    assert get(shop, "customer", c["id"])["level"] == "silver"
    d = shop.records.create("customer", {"name": "Zhao"}, SYSTEM)
    shop.records.update("customer", d["id"], {"score": 2000}, SYSTEM)  # the rule tag 'rich' goes on
    drain(shop)
    assert set(tags_of(shop, "customer", d["id"])) == {"rich", "vip", "welcomed"}
    assert get(shop, "customer", d["id"])["level"] == "gold"  # rich -> tag vip -> vip_added
    assert [r["depth"] for r in runs(shop, automation="vip_added", record_id=d["id"])] == [1]


def test_nothing_is_enqueued_when_the_write_rolls_back(shop):
    c = shop.records.create("customer", {"name": "Li"}, SYSTEM)
    drain(shop)
    with pytest.raises(RuntimeError), shop.engine.begin() as conn:
        shop.records.update("customer", c["id"], {"score": 3}, SYSTEM, conn=conn)
        raise RuntimeError("rolled back")
    assert drain(shop) == 0


# ---------------------------------------------------------------- loops

def test_an_automation_triggering_itself_stops_at_the_depth_limit(make_runtime, tmp_path):
    rt = make_runtime(make_config(tmp_path / "config", {**FILES, **LOOP}))
    rt.migrate()
    c = rt.records.create("customer", {"name": "Li"}, SYSTEM)
    drain(rt)
    rt.records.update("customer", c["id"], {"score": 0}, SYSTEM)
    for _ in range(MAX_DEPTH + 2):
        drain(rt)
    logged = sorted(runs(rt, automation="bump"), key=lambda r: r["depth"])
    assert [r["status"] for r in logged] == ["ok"] * MAX_DEPTH + ["stopped"]
    assert [r["depth"] for r in logged] == list(range(MAX_DEPTH + 1))
    assert "limit is 5" in logged[-1]["error"]
    assert get(rt, "customer", c["id"])["score"] == MAX_DEPTH


# ---------------------------------------------------------------- schedules and time

def test_a_schedule_acts_on_every_matching_record_once_per_tick(shop):
    gold = [shop.records.create("customer", {"name": f"g{i}"}, SYSTEM) for i in range(3)]
    other = shop.records.create("customer", {"name": "b"}, SYSTEM)
    drain(shop)
    for c in gold:
        shop.records.update("customer", c["id"], {"level": "gold"}, SYSTEM)
    tick = dt.datetime(2026, 11, 30, 18, 0, 5, tzinfo=dt.UTC)  # 02:00 in Shanghai
    assert sweeps.schedule(shop.automations, "nightly", tick) == 3
    assert sweeps.schedule(shop.automations, "nightly", tick + dt.timedelta(minutes=3)) == 0  # the same tick
    drain(shop)
    assert {get(shop, "customer", c["id"])["lifecycle"] for c in gold} == {"at_risk"}
    assert get(shop, "customer", other["id"])["lifecycle"] == "active"
    assert sweeps.schedule(shop.automations, "nightly", tick + dt.timedelta(days=1)) == 3  # the next tick


def test_a_schedule_enqueues_one_run_per_record_in_batches_once(shop, monkeypatch):
    monkeypatch.setattr(sweeps, "BATCH", 4)
    with write_transaction(shop.engine) as conn:  # 11 gold customers, written at once (the automations stay out)
        conn.execute(shop.tables.entities["customer"].insert(), [
            {"name": f"c{i}", "level": "gold", "lifecycle": "new", "created_at": dt.datetime.now(dt.UTC),
             "updated_at": dt.datetime.now(dt.UTC)} for i in range(11)])
    tick = dt.datetime(2026, 11, 30, 18, 0, 5, tzinfo=dt.UTC)
    assert sweeps.schedule(shop.automations, "nightly", tick) == 11  # three batches
    assert sweeps.schedule(shop.automations, "nightly", tick) == 0
    assert shop.jobs.counts()["pending"] == 11
    drain(shop)
    assert [r["status"] for r in runs(shop, automation="nightly")] == ["ok"] * 11
    assert {r["trigger"] for r in runs(shop, automation="nightly")} == {"schedule: 0 2 * * *"}
    assert sweeps.schedule(shop.automations, "nightly", tick) == 0


def test_a_schedule_without_entity_runs_once_per_tick(shop):
    monday = dt.datetime(2026, 11, 30, 0, 0, 30, tzinfo=dt.UTC)  # 08:00:30 in Shanghai, a Monday
    assert sweeps.schedule(shop.automations, "morning", monday) == 1
    assert sweeps.schedule(shop.automations, "morning", monday + dt.timedelta(minutes=20)) == 0
    drain(shop)
    [task] = tasks(shop)
    assert (task["subject"], task["owner_id"]) == ("plan the day", None)
    [run] = runs(shop, automation="morning")
    assert (run["entity"], run["record_id"], run["status"]) == (None, None, "ok")


def test_the_schedules_hook_offers_each_schedule_and_the_time_sweep(shop):
    from crmkit.jobs.schedules import collect

    names = {s.name: (s.cron, s.task) for s in collect(shop)}
    assert names["automation:nightly"] == ("0 2 * * *", "automation.schedule")
    assert names["automations:time"] == (sweeps.SWEEP_CRON, "automation.sweep")


def _age(rt, table: sa.Table, ids: list[int], days: int) -> None:
    with write_transaction(rt.engine) as conn:
        conn.execute(table.update().where(table.c.id.in_(ids))
                     .values(finished_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=days)))


def test_the_daily_retention_prunes_old_runs_and_done_jobs_and_keeps_dead_ones(shop):
    from crmkit.automations.engine import PRUNE_TASK
    from crmkit.jobs.schedules import collect

    assert {s.name: (s.cron, s.task) for s in collect(shop)}["automations:prune"] == ("40 3 * * *", PRUNE_TASK)
    for i in range(3):
        shop.records.create("customer", {"name": f"c{i}"}, SYSTEM)
    drain(shop)
    log, jobs = shop.automations.log.table, shop.jobs.table
    with shop.engine.connect() as conn:
        run_ids = list(conn.execute(sa.select(log.c.id).order_by(log.c.id)).scalars())
        job_ids = list(conn.execute(sa.select(jobs.c.id).where(jobs.c.status == "done").order_by(jobs.c.id))
                       .scalars())
    assert len(run_ids) >= 3 and len(job_ids) >= 3
    _age(shop, log, run_ids[:-1], 91)  # all but the last run: older than the 90 days kept
    _age(shop, jobs, job_ids[:-2], 91)  # all done jobs but the last two
    with write_transaction(shop.engine) as conn:  # a dead job, long dead
        conn.execute(jobs.update().where(jobs.c.id == job_ids[-1]).values(status="dead"))
    _age(shop, jobs, job_ids[-1:], 400)
    shop.jobs.enqueue(PRUNE_TASK, {})  # what the schedule fires
    drain(shop)
    with shop.engine.connect() as conn:
        assert list(conn.execute(sa.select(log.c.id).order_by(log.c.id)).scalars()) == run_ids[-1:]
        left = dict(conn.execute(sa.select(jobs.c.id, jobs.c.status).where(jobs.c.id.in_(job_ids))).all())
    assert left == {job_ids[-2]: "done", job_ids[-1]: "dead"}


def test_prune_command_and_the_keys_of_time_triggers_outlive_a_short_retention(shop, monkeypatch):
    for i in range(2):
        shop.records.create("customer", {"name": f"c{i}"}, SYSTEM)
    drain(shop)
    log, jobs = shop.automations.log.table, shop.jobs.table
    with shop.engine.connect() as conn:
        run_ids = list(conn.execute(sa.select(log.c.id).order_by(log.c.id)).scalars())
        job_ids = list(conn.execute(sa.select(jobs.c.id).order_by(jobs.c.id)).scalars())
    _age(shop, log, run_ids[:1], 5)
    _age(shop, jobs, job_ids[:1], 5)
    _age(shop, jobs, job_ids[1:], 9)
    monkeypatch.setenv("CRMKIT_DATABASE_URL", shop.engine.url.render_as_string(hide_password=False))
    result = CliRunner().invoke(cli, ["automations", "prune", "--older-than", "3d", shop.spec.config_dir])
    assert result.exit_code == 0, result.output
    # the run of 5 days ago goes; done jobs stay 8 days at least (the one of 5 days ago is kept)
    assert f"Deleted 1 automation run(s) and {len(job_ids) - 1} done job(s) older than 3 day(s)." in result.output
    with shop.engine.connect() as conn:
        assert list(conn.execute(sa.select(jobs.c.id).order_by(jobs.c.id)).scalars()) == job_ids[:1]
    result = CliRunner().invoke(cli, ["automations", "prune", "--older-than", "soon", shop.spec.config_dir])
    assert result.exit_code == 2 and "a number of days, e.g. 90d or 90, not 'soon'" in result.output
    result = CliRunner().invoke(cli, ["automations", "prune", shop.spec.config_dir])  # the setting: 90 days
    assert result.exit_code == 0 and "Deleted 0 automation run(s) and 0 done job(s) older than 90 day(s)." \
        in result.output


def test_a_time_trigger_fires_once_per_date_value_and_a_new_date_rearms_it(shop):
    now = dt.datetime.now(dt.UTC)
    c = shop.records.create("customer", {"name": "Li", "last_order_at": (now - dt.timedelta(days=91)).isoformat()},
                            SYSTEM)
    fresh = shop.records.create("customer", {"name": "New", "last_order_at": now.isoformat()}, SYSTEM)
    long_ago = shop.records.create("customer", {"name": "Old", "last_order_at": "2020-01-01T00:00:00Z"}, SYSTEM)
    drain(shop)
    assert sweeps.sweep(shop.automations, now) == 1
    assert sweeps.sweep(shop.automations, now + dt.timedelta(minutes=5)) == 0
    drain(shop)
    assert [t["subject"] for t in tasks(shop)] == ["wake Li"]
    shop.records.update("customer", c["id"], {"last_order_at": (now - dt.timedelta(days=92)).isoformat()}, SYSTEM)
    assert sweeps.sweep(shop.automations, now) == 1  # a new value: armed again
    drain(shop)
    assert [t["subject"] for t in tasks(shop)] == ["wake Li", "wake Li"]
    assert {r["record_id"] for r in runs(shop, automation="sleeping")} == {c["id"]}
    assert fresh["id"] != long_ago["id"]


def test_a_time_trigger_before_a_date_field(shop):
    now = dt.datetime(2026, 6, 1, 4, 0, tzinfo=dt.UTC)  # noon in Shanghai
    soon = shop.records.create("customer", {"name": "Soon", "birthday": "2026-06-04"}, SYSTEM)
    shop.records.create("customer", {"name": "Later", "birthday": "2026-06-05"}, SYSTEM)
    drain(shop)
    assert sweeps.sweep(shop.automations, now) == 1
    drain(shop)
    assert [(t["subject"], t["customer_id"]) for t in tasks(shop)] == [("birthday Soon", soon["id"])]


# ---------------------------------------------------------------- dry runs

def counts(rt) -> dict[str, int]:
    with rt.engine.connect() as conn:
        return {name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                for name, table in rt.tables.metadata.tables.items()}


def test_automations_test_command_shows_the_condition_and_actions_and_writes_nothing(shop, monkeypatch):
    c = shop.records.create("customer", {"name": "Li"}, SYSTEM)
    o = shop.records.create("order", {"customer": c["id"], "total": "5000.00", "note": "B2"}, SYSTEM)
    drain(shop)
    before = counts(shop)
    monkeypatch.setenv("CRMKIT_DATABASE_URL", shop.engine.url.render_as_string(hide_password=False))
    result = CliRunner().invoke(cli, ["automations", "test", "big_order", "--record", str(o["id"]),
                                      shop.spec.config_dir])
    assert result.exit_code == 0, result.output
    assert "condition: total >= 1000 → true" in result.output
    assert "1. tag: would put tag big on" in result.output
    assert "2. create: would create task with subject='call about order B2'" in result.output
    result = CliRunner().invoke(cli, ["automations", "test", "welcome", "--record", str(c["id"]),
                                      shop.spec.config_dir])
    assert "would set lifecycle: 'active' → 'active'; note:" in result.output, result.output
    assert counts(shop) == before
    result = CliRunner().invoke(cli, ["automations", "test", "welcom", "--record", "1", shop.spec.config_dir])
    assert result.exit_code == 1 and "no automation named 'welcom' (did you mean 'welcome'?)" in result.output
    result = CliRunner().invoke(cli, ["automations", "test", "welcome", "--record", "999", shop.spec.config_dir])
    assert result.exit_code == 1 and "customer 999 not found" in result.output
    assert counts(shop) == before


# ---------------------------------------------------------------- the run log in the API and the timeline

def test_run_log_api_for_admins_and_for_readers_of_the_record(make_app, tmp_path):
    app = make_app(make_config(tmp_path / "config", FILES))
    rt = app.extensions["crmkit"]
    admin = app.test_client()
    mine = admin.post("/api/v1/customer", json={"name": "Li"}).get_json()["data"]  # owned by admin
    token_for(app, "rep", ("rep",), password=PASSWORD)
    rep = app.test_client(user="rep")
    theirs = rep.post("/api/v1/customer", json={"name": "Rep's"}).get_json()["data"]
    drain(rt)
    body = admin.get("/api/v1/automations/runs?automation=welcome&sort=id").get_json()
    assert [r["record_id"] for r in body["data"]] == [mine["id"], theirs["id"]]
    assert body["data"][0]["results"][0]["action"] == "set"
    is_error(rep.get("/api/v1/automations/runs"), 403)
    is_error(rep.get(f"/api/v1/automations/runs?entity=customer&record_id={mine['id']}"), 404)
    own = rep.get(f"/api/v1/automations/runs?entity=customer&record_id={theirs['id']}&status=ok").get_json()
    assert [r["automation"] for r in own["data"]] == ["welcome"]
    # Not an admin: each action and how it ended, not its line (it may quote a field hidden from them).
    assert own["data"][0]["results"] == [{"action": "set", "status": "ok"}, {"action": "tag", "status": "ok"}]
    is_error(admin.get("/api/v1/automations/runs?status=nope"), 400)
    # The record's timeline shows its runs (in the reader's language).
    browser = app.test_client(user=None)
    assert browser.post("/login", data={"username": "rep", "password": PASSWORD}).status_code == 303
    html = browser.get(f"/app/customer/{theirs['id']}/timeline", headers=BROWSER).get_data(as_text=True)
    assert "自动化“欢迎”已运行" in html and "<dt>set</dt><dd><span>完成</span>" in html, html[-3000:]
    assert "lifecycle=" not in html
    assert "自动化“欢迎” 修改" in html  # the history names the automation that wrote, by its label
    token_for(app, "root", ("admin",), password=PASSWORD)
    browser = app.test_client(user=None)
    assert browser.post("/login", data={"username": "root", "password": PASSWORD}).status_code == 303
    html = browser.get(f"/app/customer/{theirs['id']}/timeline", headers=BROWSER).get_data(as_text=True)
    assert "set lifecycle=&#39;active&#39;" in html


# ---------------------------------------------------------------- crmkit check

def problems_of(tmp_path: Path, files: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(make_config(tmp_path / "bad", {**{k: v for k, v in FILES.items()
                                                      if not k.startswith("automations/")}, **files}))
    return [str(p) for p in caught.value.problems]


def test_check_locates_every_mistake(tmp_path):
    found = problems_of(tmp_path, {"automations.yaml": """
        automations:
          a:
            trigger: {created: custmer}
            do: [{set: {level: gold}}]
          b:
            trigger: {updated: customer, fields: [scor]}
            when: "scroe > 3"
            do: [{sett: {level: gold}}]
          c:
            trigger: {schedule: "61 * * * *"}
            do: [{create: {entity: task, values: {subject: x}}}]
          d:
            trigger: {time: "3h before customer.birthday"}
            do: [{set: {level: gold}}]
          e:
            trigger: {transition: order_stage.fly}
            do: [{set: {note: x}}]
          f:
            trigger: {tag_added: nosuch}
            do: [{set: {note: x}}]
          g:
            trigger: {created: customer}
            do:
              - set: {levl: gold, score: "= name + 1", lifecycle: nope}
              - tag: rich
              - transition: pay
              - create: {entity: order, values: {total: "= score *"}}
          h:
            trigger: {time: "3d after customer.name"}
            do: [{tag: vip}]
          i:
            trigger: {transition: order_stage}
            do: [{set: {stage: paid}}]
          j:
            trigger: {time: "3 days before customer.birthday"}
            do: [{tag: vip}]
          k:
            trigger: {deleted: customer}
            do:
              - create: {entity: task, values: {subject: "= 'gone: ' + name"}}
              - set: {level: gold}
              - tag: vip
              - untag: vip
              - transition: pay
              - assign: {user: admin}
              - return_to_pool: {}
    """})
    assert found == [
        "automations.yaml:3:24: unknown entity 'custmer' (did you mean 'customer'?)",
        "automations.yaml:6:43: customer has no field 'scor' (did you mean 'score'?)",
        "automations.yaml:7:12: customer has no field 'scroe' (did you mean 'score'?)",
        "automations.yaml:8:11: unknown action 'sett' (known actions: assign, create, notify, return_to_pool, "
        "send, set, tag, transition, untag, webhook) (did you mean 'set'?)",
        "automations.yaml:10:25: '61 * * * *' is not a valid cron line (minute 0-59, hour 0-23, day 1-31, "
        "month 1-12, weekday 0-6)",
        "automations.yaml:13:21: customer.birthday is a date: count whole days from it (e.g. '1d before "
        "customer.birthday')",
        "automations.yaml:16:27: workflow 'order_stage' has no move 'fly' (its moves: pay, close)",
        "automations.yaml:19:26: unknown tag 'nosuch'",
        "automations.yaml:24:14: customer has no field 'levl' (did you mean 'level'?)",
        "automations.yaml:24:14: customer.lifecycle must be one of: new, active, at_risk, lost: 'nope'",
        "automations.yaml:24:14: customer.score: cannot add a text and an integer in 'name + 1'",
        "automations.yaml:25:14: tag: 'rich' is set by its rule; only manual tags are put on and taken off",
        "automations.yaml:26:21: transition: unknown move 'pay' of customer (customer has no workflow)",
        "automations.yaml:27:17: create order: required field 'customer' has no value",
        "automations.yaml:27:17: order.total: the expression ends too early (expected a value: a field, a "
        "number, 'text', true, false, null or a function) in 'score *'",
        "automations.yaml:29:21: a time trigger counts from a date or datetime field, not string field 'name'",
        "automations.yaml:33:16: order.stage is the state of workflow 'order_stage': use the transition "
        "action to move it",
        "automations.yaml:35:21: '3 days before customer.birthday' is not a time: 'Nd, Nh or Nm before or after "
        "ENTITY.FIELD', e.g. '3d before contract.end_date', '4h after ticket.created_at'",
        *(f"automations.yaml:{line}:9: {action}: the trigger's record (deleted: customer) is in the recycle bin "
          "and cannot be changed; create a record or send a message instead, or use another trigger"
          for line, action in ((41, "set"), (42, "tag"), (43, "untag"), (44, "transition"), (45, "assign"),
                               (46, "return_to_pool"))),
    ]


def test_the_sample_config_checks_with_its_automations():
    spec, _pm, _types = load_config(Path(__file__).resolve().parent.parent / "sample_configs" / "retail_crm")
    assert len(spec.automations) >= 3
    assert {a.trigger.kind for a in spec.automations.values()} >= {"created", "schedule"}


def test_a_retried_run_does_not_create_or_set_twice(shop):
    c = shop.records.create("customer", {"name": "Li"}, SYSTEM)
    drain(shop)
    automation = shop.spec.automations["score_changed"]
    payload = shop.automations.payload(automation, "customer", c["id"], run="retried-run")
    shop.automations.run(payload)
    shop.automations.run(payload)  # the same job again (a worker died after the write)
    assert [t["subject"] for t in tasks(shop)] == ["score changed"]
    assert [r["results"][0]["result"] for r in runs(shop, automation="score_changed")] == [
        f"created task {tasks(shop)[0]['id']}", "created task before (the run was retried)"]


def test_untag_takes_a_manual_tag_off(shop):
    c = shop.records.create("customer", {"name": "Li"}, SYSTEM)
    drain(shop)
    assert tags_of(shop, "customer", c["id"]) == ["welcomed"]
    shop.records.update("customer", c["id"], {"lifecycle": "lost"}, SYSTEM)
    drain(shop)
    assert tags_of(shop, "customer", c["id"]) == []
    [run] = runs(shop, automation="lost", status="ok")
    assert run["results"] == [{"action": "untag", "result": "untagged welcomed"}]


def test_a_sweep_reads_only_what_came_or_was_written_since_the_last_one(shop, monkeypatch):
    monkeypatch.setattr(sweeps, "SLACK", dt.timedelta(0))  # no writes in flight here
    then = dt.datetime.now(dt.UTC)
    sleeping = shop.spec.automations["sleeping"]
    c = shop.records.create("customer", {"name": "Li", "last_order_at": (then - dt.timedelta(days=91)).isoformat()},
                            SYSTEM)
    later = shop.records.create("customer", {"name": "Wu", "last_order_at": (then - dt.timedelta(days=89)).isoformat()},
                                SYSTEM)
    drain(shop)
    now = dt.datetime.now(dt.UTC)
    assert [i for i, _ in sweeps.due(shop.automations, sleeping, now)] == [c["id"]]
    assert sweeps.sweep(shop.automations, now) == 1
    in_two_days = now + dt.timedelta(days=2)
    # Li's moment came before the last sweep and Li was not written since: not read again; Wu's came since.
    assert [i for i, _ in sweeps.due(shop.automations, sleeping, in_two_days)] == [later["id"]]
    shop.records.update("customer", c["id"], {"last_order_at": (then - dt.timedelta(days=90, hours=1)).isoformat()},
                        SYSTEM)
    assert sorted(i for i, _ in sweeps.due(shop.automations, sleeping, in_two_days)) == [c["id"], later["id"]]


def test_automations_list_command():
    result = CliRunner().invoke(cli, ["automations", "list", str(Path(__file__).resolve().parent.parent
                                                                   / "sample_configs" / "retail_crm")])
    assert result.exit_code == 0, result.output
    assert "big_order\n  on updated: order (paid_amount), if paid_amount >= 5000\n  do tag\n" in result.output


def test_the_sample_configs_automations_run(make_runtime):
    from conftest import SAMPLE_CONFIG

    rt = make_runtime(SAMPLE_CONFIG)
    rt.migrate()
    lead = rt.records.create("lead", {"name": "王五", "mobile": "13900001111"}, SYSTEM)
    drain(rt)
    stored = get(rt, "lead", lead["id"])
    assert stored["next_follow_up_at"] is not None  # lead_first_call: tomorrow
    [run] = runs(rt, automation="lead_first_call")
    assert (run["status"], run["condition"]) == ("ok", True)
    customer = rt.records.create("customer", {"name": "赵六", "mobile": "13900002222"}, SYSTEM)
    order = rt.records.create("order", {"customer": customer["id"]}, SYSTEM)
    rt.records.update("order", order["id"], {"paid_amount": "6000.00"}, SYSTEM)
    drain(rt)
    assert tags_of(rt, "order", order["id"]) == ["big_order"]


def test_the_sample_configs_service_level_escalates_an_open_ticket(make_runtime):
    """ticket_sla_4h and ticket_sla_8h of the sample config: a ticket still
    open 4 hours after it was opened goes to high priority and its owner is
    reminded; after 8 hours it is urgent and the owner's superior is told."""
    from conftest import SAMPLE_CONFIG

    rt = make_runtime(SAMPLE_CONFIG)
    rt.migrate()
    boss = rt.directory.create_user({"username": "boss", "roles": ["sales_manager"], "display_name": "王经理"}, SYSTEM)
    agent = rt.directory.create_user({"username": "agent", "roles": ["service_rep"], "display_name": "李客服",
                                      "superior_id": boss["id"]}, SYSTEM)
    customer = rt.records.create("customer", {"name": "赵六", "mobile": "13900002222"}, SYSTEM)
    ticket = rt.records.create("ticket", {"subject": "退货", "customer": customer["id"], "owner_id": agent["id"]},
                               SYSTEM)
    drain(rt)
    opened = dt.datetime.now(dt.UTC)
    assert sweeps.sweep(rt.automations, opened + dt.timedelta(hours=3)) == 0  # not yet
    sweeps.sweep(rt.automations, opened + dt.timedelta(hours=4, minutes=1))
    drain(rt)
    assert get(rt, "ticket", ticket["id"])["priority"] == "high"
    assert rt.messaging.store.unread_count(agent["id"]) == 1 and rt.messaging.store.unread_count(boss["id"]) == 0
    sweeps.sweep(rt.automations, opened + dt.timedelta(hours=8, minutes=1))
    drain(rt)
    assert get(rt, "ticket", ticket["id"])["priority"] == "urgent"
    assert rt.messaging.store.unread_count(boss["id"]) == 1
    [first] = runs(rt, automation="ticket_sla_4h", status="ok")
    [second] = runs(rt, automation="ticket_sla_8h", status="ok")
    assert first["record_id"] == second["record_id"] == ticket["id"]


def test_the_sample_configs_overdue_receivables_reach_finance_every_morning(make_runtime):
    from conftest import SAMPLE_CONFIG

    rt = make_runtime(SAMPLE_CONFIG)
    rt.migrate()
    finance = rt.directory.create_user({"username": "cfo", "roles": ["finance"], "display_name": "钱会计",
                                        "email": "cfo@example.com"}, SYSTEM)
    customer = rt.records.create("customer", {"name": "赵六", "mobile": "13900002222"}, SYSTEM)
    contract = rt.records.create("contract", {"name": "年度供货", "customer": customer["id"], "amount": "1000.00"},
                                 SYSTEM)
    today = dt.date.today()
    late = rt.records.create("receivable_plan", {"contract": contract["id"], "amount": "500.00",
                                                 "due_date": str(today - dt.timedelta(days=2))}, SYSTEM)
    rt.records.create("receivable_plan", {"contract": contract["id"], "instalment": 2,
                                          "due_date": str(today + dt.timedelta(days=30)), "amount": "500.00"}, SYSTEM)
    drain(rt)
    assert sweeps.schedule(rt.automations, "overdue_receivable_daily") == 1  # the late one, selected in SQL
    drain(rt)
    [run] = runs(rt, automation="overdue_receivable_daily")
    assert (run["record_id"], run["status"]) == (late["id"], "ok")
    [message] = rt.messaging.store.of_record("receivable_plan", late["id"])
    assert (message["channel"], message["recipient"], message["user_id"]) == ("email", "cfo@example.com", finance["id"])
    assert "回款逾期" in message["subject"] and "¥500.00" in message["body"]
    # no SMTP server is configured here: the message is kept as not sent, and nothing fails
    assert (message["status"], message["error"]) == ("not_sent", "no gateway")
