"""Assignment (issue 10 section 4): round-robin and least-loaded among active
users of a role or a team, routed by region; the entity's ``assignment``
block on create, and the automations' ``assign`` action; concurrent creates
never pick the same "next". On SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from conftest import SAMPLE_CONFIG, as_test_app, make_config, token_for
from crmkit.loading import load_config
from crmkit.metadata.problems import ConfigError
from crmkit.permissions import SYSTEM, Actor
from crmkit.pool_actions import AssignAction

FILES = {
    "app.yaml": "app: leads\n",
    "entities/lead.yaml": """
        entity: lead
        title: name
        owned: true
        fields:
          name: {type: string, required: true}
          region: {type: region}
        assignment:
          strategy: round_robin
          role: rep
          route: {field: region, teams: {"31": east, "44": south}}
    """,
    "entities/ticket.yaml": """
        entity: ticket
        title: subject
        owned: true
        fields:
          subject: {type: string, required: true}
        assignment: {strategy: least_loaded, role: agent, keep_own: false}
    """,
    "roles.yaml": """
        roles:
          rep:
            entities:
              lead: {read: own, create: true, update: own}
          agent:
            entities:
              ticket: {read: own, create: true, update: own}
          marketer:
            entities:
              lead: {read: all, create: true, import: true}
              ticket: {read: all, create: true}
    """,
}


@pytest.fixture
def crm(make_app, tmp_path: Path):
    app = as_test_app(make_app(make_config(tmp_path / "crm", FILES)))
    directory = app.extensions["crmkit"].directory
    sales = directory.create_team({"name": "sales", "label": "Sales"}, SYSTEM)
    for name in ("east", "south"):
        directory.create_team({"name": name, "label": name, "parent_id": sales["id"]}, SYSTEM)
    return app


def rt_of(app):
    return app.extensions["crmkit"]


def team_id(app, name: str) -> int:
    return rt_of(app).directory.team(name)["id"]


def add_user(app, name: str, role: str, team: str | None = None) -> int:
    fields = {"team_id": team_id(app, team)} if team else {}
    token_for(app, name, (role,), **fields)
    return rt_of(app).directory.user(name)["id"]


def create(app, entity: str, user: str = "mkt", **values) -> dict:
    response = app.test_client(user=user).post(f"/api/v1/{entity}", json=values)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["data"]


def test_round_robin_takes_each_active_rep_in_turn(crm):
    add_user(crm, "mkt", "marketer")
    reps = [add_user(crm, f"rep{i}", "rep", "east") for i in range(3)]
    owners = [create(crm, "lead", name=f"l{i}")["owner_id"] for i in range(7)]
    assert owners == reps * 2 + reps[:1]
    assert create(crm, "lead", name="x")["team_id"] == team_id(crm, "east")  # the team follows the owner
    # A disabled rep is skipped; the turn goes on from where it was.
    rt_of(crm).directory.update_user(reps[2], {"active": False}, SYSTEM)
    owners = [create(crm, "lead", name=f"m{i}")["owner_id"] for i in range(4)]
    assert owners == [reps[0], reps[1], reps[0], reps[1]]


def test_creator_who_is_a_candidate_keeps_the_record_and_named_owners_stay(crm):
    add_user(crm, "mkt", "marketer")
    rep0 = add_user(crm, "rep0", "rep")
    rep1 = add_user(crm, "rep1", "rep")
    assert create(crm, "lead", user="rep1", name="mine")["owner_id"] == rep1
    assert create(crm, "lead", name="next")["owner_id"] == rep0  # the rep's own lead did not take a turn
    admin = crm.test_client()
    named = admin.post("/api/v1/lead", json={"name": "named", "owner_id": rep0}).get_json()["data"]
    assert named["owner_id"] == rep0
    assert create(crm, "lead", name="then")["owner_id"] == rep1


def test_bulk_create_hands_out_in_turn(crm):
    add_user(crm, "mkt", "marketer")
    reps = [add_user(crm, f"rep{i}", "rep") for i in range(2)]
    response = crm.test_client(user="mkt").post("/api/v1/lead/_bulk", json=[{"name": f"b{i}"} for i in range(5)])
    assert response.status_code == 201, response.get_json()
    assert [row["owner_id"] for row in response.get_json()["data"]] == [reps[0], reps[1]] * 2 + [reps[0]]


def test_route_by_region_picks_the_regions_team(crm):
    add_user(crm, "mkt", "marketer")
    east = [add_user(crm, f"e{i}", "rep", "east") for i in range(2)]
    south = add_user(crm, "s0", "rep", "south")
    nowhere = add_user(crm, "n0", "rep")
    assert [create(crm, "lead", name="sh", region="310104")["owner_id"] for _ in range(3)] == [*east, east[0]]
    assert create(crm, "lead", name="gz", region="440106")["owner_id"] == south
    # No route matches Beijing: every rep is a candidate.
    assert create(crm, "lead", name="bj", region="110101")["owner_id"] in {*east, south, nowhere}


def test_no_candidate_leaves_the_creator_as_owner(crm):
    mkt = add_user(crm, "mkt", "marketer")
    assert create(crm, "lead", name="nobody")["owner_id"] == mkt


def test_least_loaded_fills_the_emptiest_agent(crm):
    add_user(crm, "mkt", "marketer")
    a, b, c = (add_user(crm, name, "agent") for name in ("ag_a", "ag_b", "ag_c"))
    admin = crm.test_client()
    for _ in range(3):
        admin.post("/api/v1/ticket", json={"subject": "old", "owner_id": a})
    admin.post("/api/v1/ticket", json={"subject": "old", "owner_id": b})
    owners = [create(crm, "ticket", subject=f"t{i}")["owner_id"] for i in range(5)]
    assert owners == [c, b, c, b, c]  # ties: the lowest id
    loads = Counter(row["owner_id"] for row in admin.get("/api/v1/ticket?limit=100").get_json()["data"])
    assert sorted(loads.values()) == [3, 3, 3]
    # keep_own: false: an agent's own ticket goes to whoever is least loaded too.
    assert create(crm, "ticket", user="ag_c", subject="mine")["owner_id"] == a


def test_concurrent_creates_never_pick_the_same_next(crm):
    add_user(crm, "mkt", "marketer")
    reps = [add_user(crm, f"rep{i}", "rep") for i in range(3)]
    client = crm.test_client(user="mkt")
    per_thread, threads_count = 4, 6
    barrier = threading.Barrier(threads_count)
    owners: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        barrier.wait()
        for _ in range(per_thread):
            response = client.post("/api/v1/lead", json={"name": "c"})
            assert response.status_code == 201, response.get_json()
            with lock:
                owners.append(response.get_json()["data"]["owner_id"])

    threads = [threading.Thread(target=work) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Counter(owners) == dict.fromkeys(reps, per_thread * threads_count // 3)


def test_assign_action_shares_the_turn_and_describes_without_writing(crm):
    add_user(crm, "mkt", "marketer")
    reps = [add_user(crm, f"rep{i}", "rep") for i in range(2)]
    rt = rt_of(crm)
    spec = rt.spec
    action = AssignAction()
    assert action.check({"strategy": "round_robin", "role": "rep"}, spec.entities["lead"], spec) == []
    assert "unknown role 'rpe'" in action.check({"role": "rpe"}, spec.entities["lead"], spec)[0]
    assert "round_robin or least_loaded" in action.check({"strategy": "random", "role": "rep"}, None, spec)[0]
    assert "needs a role or a team" in action.check({"strategy": "round_robin"}, None, spec)[0]
    lead = create(crm, "lead", name="first")  # rep0 by the entity's block
    table = rt.tables.entities["lead"]

    def record() -> dict:
        with rt.engine.connect() as conn:
            return dict(conn.execute(sa.select(table).where(table.c.id == lead["id"])).mappings().one())

    ctx = SimpleNamespace(runtime=rt, automation="reassign", entity=spec.entities["lead"], record=record(),
                          actor=Actor(None, "automation reassign", system=True), key="k", dry_run=True, depth=0)
    args = {"strategy": "round_robin", "role": "rep"}
    assert action.describe(ctx, args) == "would assign round-robin among 2 active user(s) of role rep"
    assert action.run(ctx, args).startswith("would")
    assert record()["owner_id"] == reps[0]
    ctx.dry_run = False
    assert action.run(ctx, args) == f"assigned to rep1 (user {reps[1]})"
    assert record()["owner_id"] == reps[1]
    assert action.run(ctx, args) == "assigned already (the same run, again)"  # a job re-run: key "k" is spent
    ctx.key = "k2"
    history = crm.test_client().get(f"/api/v1/lead/{lead['id']}/history").get_json()["data"]
    assert history[0]["actor"] == "automation reassign"
    assert history[0]["changes"]["owner_id"] == [reps[0], reps[1]]
    assert create(crm, "lead", name="next")["owner_id"] == reps[0]  # the block and the action share the turn
    ctx.record = record()
    assert "no active user of team nowhere" in action.run(ctx, {"team": "nowhere"})


def test_assignment_config_errors(tmp_path):
    bad = dict(FILES)
    bad["entities/lead.yaml"] = FILES["entities/lead.yaml"].replace("role: rep", "role: rpe").replace(
        "field: region", "field: regoin")
    with pytest.raises(ConfigError) as raised:
        load_config(make_config(tmp_path / "bad", bad))
    text = "\n".join(str(p) for p in raised.value.problems)
    assert "entities/lead.yaml:10:18: unknown field 'regoin' in assignment route" in text
    bad["entities/lead.yaml"] = FILES["entities/lead.yaml"].replace("role: rep", "role: rpe")
    with pytest.raises(ConfigError) as raised:
        load_config(make_config(tmp_path / "bad2", bad))
    assert "entities/lead.yaml:9:9: assignment names unknown role 'rpe' (did you mean 'rep'?)" in str(
        raised.value.problems[0])
    bad["entities/lead.yaml"] = FILES["entities/lead.yaml"].replace("        owned: true\n", "")
    with pytest.raises(ConfigError) as raised:
        load_config(make_config(tmp_path / "bad3", bad))
    assert "assignment needs owned: true on lead" in str(raised.value.problems[0])


def test_sample_config_hands_leads_to_sales_reps_in_turn(make_app):
    app = make_app(SAMPLE_CONFIG)
    directory = app.extensions["crmkit"].directory
    reps = [directory.create_user({"username": f"rep{i}", "roles": ["sales_rep"]}, SYSTEM)["id"] for i in range(2)]
    token_for(app, "mkt", ("marketer",))
    client = app.test_client(user="mkt")
    owners = [client.post("/api/v1/lead", json={"name": f"l{i}"}).get_json()["data"]["owner_id"] for i in range(3)]
    assert owners == [reps[0], reps[1], reps[0]]
