"""Approvals of workflow moves: a move with ``approval:`` waits for its
approvers (或签 any one, 会签 all), up the requester's reporting chain, with
steps skipped by their conditions; the record is locked while it waits; the
move is made once, on the last approval; everything lands in its history."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import APP_YAML, is_error, make_config, token_for
from crmkit.loading import load_config
from crmkit.messaging.store import notification_json
from crmkit.metadata.problems import ConfigError

DEAL_YAML = """
    entity: deal
    label: {en: Deal, zh: 交易}
    title: name
    owned: true
    fields:
      name: {type: string, required: true}
      amount: {type: money}
      discount: {type: decimal, precision: 5, scale: 2}
      note: {type: string}
      secret: {type: string}
      stage: {type: enum, options: [draft, approved, archived]}
"""

WORKFLOW_YAML = """
    workflow: deal_approval
    entity: deal
    field: stage
    states: [draft, approved, archived]
    transitions:
      - name: approve
        label: {en: Approve, zh: 审批通过}
        from: draft
        to: approved
        require: [amount]
        approval:
          mode: any
          steps:
            - {superior: 1, label: {en: Manager, zh: 直属上级}}
            - {role: finance, when: "amount > 50000"}
            - {role: board, mode: all, when: "discount > 30"}
      - {name: escalate, from: draft, to: approved, approval: {steps: [{superior: 2}]}}
      - {name: review, from: draft, to: approved, approval: {steps: [{role: reviewer}]}}
      - {name: fast, from: draft, to: approved, approval: {steps: [{role: finance, when: "amount > 1000000"}]}}
      - {name: peer, from: draft, to: approved, approval: {steps: [{role: manager}]}}
      - {name: archive, from: draft, to: archived}
      - {name: reopen, from: [approved, archived], to: draft}
"""

ROLES_YAML = """
    roles:
      rep:
        entities:
          deal: {read: own, create: true, update: own, transition: own}
          user: {read: all}
        fields: {deal.secret: hidden}
      manager:
        entities:
          deal: {read: subordinates, update: subordinates, transition: subordinates}
          user: {read: all}
      finance:
        entities:
          deal: {read: all}
          user: {read: all}
        fields: {deal.secret: hidden}
      board:
        label: {en: Board, zh: 董事会}
        entities:
          deal: {read: all}
      reviewer:
        entities:
          deal: {read: own}
"""

FILES = {"app.yaml": APP_YAML, "entities/deal.yaml": DEAL_YAML, "workflows/deal.yaml": WORKFLOW_YAML,
         "roles.yaml": ROLES_YAML}

#: user -> (roles, superior)
PEOPLE = {"bigboss": (("manager",), None), "boss": (("manager",), "bigboss"), "rep": (("rep",), "boss"),
          "loner": (("rep",), None), "fin1": (("finance",), None), "fin2": (("finance",), None),
          "b1": (("board",), None), "b2": (("board",), None), "rev": (("reviewer",), None)}


@pytest.fixture
def app(make_app, tmp_path: Path):
    app = make_app(make_config(tmp_path / "config", FILES))
    for name, (roles, superior) in PEOPLE.items():
        token_for(app, name, roles, **({"superior_id": superior} if superior else {}))
    return app


def client(app, user: str):
    return app.test_client(user=user)


def new_deal(app, user: str = "rep", **values) -> dict:
    response = client(app, user).post("/api/v1/deal", json={"name": "茶园合同", **values})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["data"]


def ask(app, deal: dict, move: str = "approve", user: str = "rep", **body):
    return client(app, user).post(f"/api/v1/deal/{deal['id']}/transitions/{move}", json=body)


def requested(app, deal: dict, move: str = "approve", user: str = "rep", **body) -> dict:
    response = ask(app, deal, move, user, **body)
    assert response.status_code == 202, response.get_json()
    assert response.headers["Location"].endswith(f"/api/v1/approvals/{response.get_json()['data']['id']}")
    return response.get_json()["data"]


def decide(app, approval: dict, user: str, verb: str = "approve", comment: str | None = None):
    body = {"comment": comment} if comment is not None else None
    return client(app, user).post(f"/api/v1/approvals/{approval['id']}/{verb}", json=body)


def approved_by(app, approval: dict, user: str, comment: str | None = None) -> dict:
    response = decide(app, approval, user, "approve", comment)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]


def stage(app, deal: dict, user: str = "admin") -> str:
    return client(app, user).get(f"/api/v1/deal/{deal['id']}").get_json()["data"]["stage"]


def queue(app, user: str) -> list[int]:
    response = client(app, user).get("/api/v1/approvals?mine=pending")
    assert response.status_code == 200, response.get_json()
    return [a["id"] for a in response.get_json()["data"]]


# ---------------------------------------------------------------- the config

def test_approval_steps_are_typed_in_the_spec(tmp_path):
    spec, _pm, _types = load_config(make_config(tmp_path / "config", FILES))
    move = next(m for m in spec.workflows[0].transitions if m.name == "approve")
    assert move.approval is not None and move.approval.mode == "any"
    manager, finance, board = move.approval.steps
    assert (manager.superior, manager.role, manager.mode, dict(manager.label)) == (1, None, "any",
                                                                                    {"en": "Manager", "zh": "直属上级"})
    assert (finance.role, finance.mode, finance.condition.text) == ("finance", "any", "amount > 50000")
    assert (board.role, board.mode) == ("board", "all")
    assert board.label is None  # named after its role when the approval is asked for


def test_a_step_is_named_by_its_label_its_role_or_its_depth(app):
    approval = requested(app, new_deal(app, amount="10.00", discount="40"))
    assert [s["label"] for s in approval["steps"]] == [{"en": "Manager", "zh": "直属上级"}, {"en": "Finance"},
                                                        {"en": "Board", "zh": "董事会"}]
    approval = requested(app, new_deal(app, amount="10.00"), "escalate")
    assert approval["steps"][0]["label"] == {"en": "Superior 2", "zh": "第2级上级"}


@pytest.mark.parametrize(("step", "message"), [
    ("{role: finanse}", "unknown role 'finanse' (did you mean 'finance'?)"),
    ("{superior: 0}", "superior must be 1 to 5, not 0"),
    ("{superior: 9}", "superior must be 1 to 5, not 9"),
    ("{role: finance, superior: 1}", "names its approvers by 'role' or by 'superior'"),
    ("{label: nobody}", "names its approvers by 'role' or by 'superior'"),
    ('{role: finance, when: "amont > 5"}', "deal has no field 'amont'"),
    ("{role: finance, mode: some}", "some"),
])
def test_crmkit_check_locates_a_bad_approval_step(tmp_path, step, message):
    workflow = WORKFLOW_YAML.replace("{role: finance, when: \"amount > 50000\"}", step)
    config = make_config(tmp_path / "config", {**FILES, "workflows/deal.yaml": workflow})
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    text = str(caught.value)
    assert message in text, text
    assert "workflows/deal.yaml:15:" in text, text  # the line of the step


# ---------------------------------------------------------------- requests and decisions

def test_a_move_with_approval_waits_for_it_up_the_reporting_chain(app):
    deal = new_deal(app, amount="80000.00")
    approval = requested(app, deal)
    assert (approval["status"], approval["step"], approval["transition"]) == ("pending", 0, "approve")
    assert [s["status"] for s in approval["steps"]] == ["active", "waiting", "skipped"]
    assert [p["username"] for p in approval["steps"][0]["approvers"]] == ["boss"]
    assert sorted(p["username"] for p in approval["steps"][1]["approvers"]) == ["fin1", "fin2"]
    assert stage(app, deal) == "draft"
    assert queue(app, "boss") == [approval["id"]] and queue(app, "fin1") == [] and queue(app, "bigboss") == []

    is_error(decide(app, approval, "fin1"), 403, "not_an_approver")  # not their step yet
    is_error(decide(app, approval, "bigboss"), 403, "not_an_approver")  # the 2nd superior is not asked
    after = approved_by(app, approval, "boss", "价格合理")
    assert (after["status"], after["step"]) == ("pending", 1)
    assert stage(app, deal) == "draft"
    assert queue(app, "boss") == [] and queue(app, "fin1") == queue(app, "fin2") == [approval["id"]]

    done = approved_by(app, approval, "fin2")  # 或签: one of finance is enough
    assert (done["status"], done["step"], done["decided_at"] is not None) == ("approved", None, True)
    assert stage(app, deal) == "approved"
    assert queue(app, "fin1") == []
    is_error(decide(app, approval, "fin1"), 409, "approval_decided")


def test_a_step_whose_condition_is_false_is_skipped(app):
    deal = new_deal(app, amount="1000.00")
    approval = requested(app, deal)
    assert [s["status"] for s in approval["steps"]] == ["active", "skipped", "skipped"]
    assert approved_by(app, approval, "boss")["status"] == "approved"
    assert stage(app, deal) == "approved"


def test_a_move_whose_steps_are_all_skipped_is_made_at_once(app):
    deal = new_deal(app, amount="1000.00")
    response = ask(app, deal, "fast")
    assert response.status_code == 200 and response.get_json()["data"]["stage"] == "approved"


def test_all_approvers_of_a_countersign_step_must_approve(app):
    deal = new_deal(app, amount="1000.00", discount="40")
    approval = requested(app, deal)
    approved_by(app, approval, "boss")
    assert queue(app, "b1") == queue(app, "b2") == [approval["id"]]
    after = approved_by(app, approval, "b1")
    assert (after["status"], after["step"]) == ("pending", 2)  # 会签: b2 still to approve
    assert stage(app, deal) == "draft" and queue(app, "b1") == []
    is_error(decide(app, approval, "b1"), 409, "approval_decided")
    assert approved_by(app, approval, "b2")["status"] == "approved"
    assert stage(app, deal) == "approved"


def test_the_nth_superior_decides_and_a_missing_one_refuses_the_request(app):
    deal = new_deal(app, amount="10.00")
    approval = requested(app, deal, "escalate")
    assert [p["username"] for p in approval["steps"][0]["approvers"]] == ["bigboss"]
    assert approved_by(app, approval, "bigboss")["status"] == "approved"

    alone = new_deal(app, "loner", amount="10.00")
    error = is_error(ask(app, alone, "approve", "loner"), 409, "no_approver")
    assert "superior" in error["message"]
    assert stage(app, alone) == "draft"


def test_nobody_approves_their_own_request(app):
    deal = new_deal(app, amount="10.00")
    approval = requested(app, deal, "peer", "boss")  # managers approve; the boss asks
    assert [p["username"] for p in approval["steps"][0]["approvers"]] == ["bigboss"]
    is_error(decide(app, approval, "boss"), 403, "not_an_approver")


def test_approvers_are_only_those_who_can_read_the_record(app):
    deal = new_deal(app, amount="10.00")  # reviewers read their own deals only
    error = is_error(ask(app, deal, "review"), 409, "no_approver")
    assert "can read" in error["message"]


def test_a_rejection_needs_a_reason_and_leaves_the_record_where_it_was(app):
    deal = new_deal(app, amount="60000.00")
    approval = requested(app, deal)
    approved_by(app, approval, "boss")
    is_error(decide(app, approval, "fin1", "reject"), 422, "validation_failed")
    response = decide(app, approval, "fin1", "reject", "预算不足")
    assert response.status_code == 200
    rejected = response.get_json()["data"]
    assert (rejected["status"], rejected["reason"]) == ("rejected", "预算不足")
    assert [s["status"] for s in rejected["steps"]] == ["approved", "rejected", "skipped"]
    assert stage(app, deal) == "draft"
    assert queue(app, "fin2") == []
    is_error(decide(app, approval, "fin2"), 409, "approval_decided")
    again = requested(app, deal)  # asked again once the record is free
    assert again["id"] != approval["id"]


def test_the_record_is_locked_against_the_moves_fields_while_pending(app):
    deal = new_deal(app, amount="60000.00", discount="10")
    approval = requested(app, deal)
    rep = client(app, "rep")
    for field, value in (("amount", "1.00"), ("discount", "50")):  # required, and read by a step's condition
        error = is_error(rep.patch(f"/api/v1/deal/{deal['id']}", json={field: value},
                                   headers={"If-Match": "*"}), 409, "approval_pending")
        assert field in error["details"]
    same = rep.patch(f"/api/v1/deal/{deal['id']}", json={"amount": "60000.00", "note": "改备注"},
                     headers={"If-Match": "*"})
    assert same.status_code == 200  # an unchanged value and another field are fine
    is_error(ask(app, deal), 409, "approval_pending")  # a second request of the move
    is_error(ask(app, deal, "escalate"), 409, "approval_pending")  # or of another move of the workflow
    is_error(ask(app, deal, "archive"), 409, "approval_pending")  # a move without approval changes the state
    moves = {m["name"]: m for m in rep.get(f"/api/v1/deal/{deal['id']}/transitions").get_json()["data"]}
    assert moves["archive"]["allowed"] is False and moves["approve"]["pending_approval"] == approval["id"]
    assert moves["approve"]["approval"] is True and moves["archive"]["approval"] is False

    assert decide(app, approval, "rep", "cancel", "客户改主意").status_code == 200  # withdrawn by the requester
    assert rep.patch(f"/api/v1/deal/{deal['id']}", json={"amount": "1.00"},
                     headers={"If-Match": "*"}).status_code == 200


def test_deleting_the_record_withdraws_its_pending_approval(app):
    deal = new_deal(app, amount="10.00")
    approval = requested(app, deal)
    assert client(app, "admin").delete(f"/api/v1/deal/{deal['id']}", headers={"If-Match": "*"}).status_code == 204
    assert queue(app, "boss") == []
    assert client(app, "admin").post(f"/api/v1/recycle_bin/deal/{deal['id']}/restore").status_code == 200
    found = client(app, "boss").get(f"/api/v1/approvals/{approval['id']}").get_json()["data"]
    assert (found["status"], found["reason"]) == ("cancelled", "the record was deleted")
    assert requested(app, deal)["id"] != approval["id"]  # the restored record can be asked for again


def test_only_the_designated_approvers_may_decide(app):
    deal = new_deal(app, amount="10.00")
    approval = requested(app, deal)
    for user in ("rep", "fin1", "b1", "admin"):
        is_error(decide(app, approval, user), 403, "not_an_approver")
        is_error(decide(app, approval, user, "reject", "no"), 403, "not_an_approver")
    is_error(decide(app, approval, "boss", "cancel"), 403, "not_the_requester")
    is_error(decide(app, approval, "rev"), 404)  # cannot read the record: no such approval for them
    assert client(app, "rev").get(f"/api/v1/approvals/{approval['id']}").status_code == 404
    assert client(app, "rev").get("/api/v1/approvals?mine=requested").get_json()["data"] == []
    assert stage(app, deal) == "draft"


def test_an_approval_shows_the_values_asked_for_as_the_reader_may_see_them(app):
    deal = new_deal(app)
    approval = requested(app, deal, amount="70000.00")  # the required field sent with the request
    assert approval["values"] == {"amount": "70000.00"}
    assert stage(app, deal) == "draft"
    assert client(app, "rep").get(f"/api/v1/deal/{deal['id']}").get_json()["data"]["amount"] is None
    approved_by(app, approval, "boss")
    approved_by(app, approval, "fin1")  # finance was asked: the amount sent is above 50000
    moved = client(app, "admin").get(f"/api/v1/deal/{deal['id']}").get_json()["data"]
    assert (moved["stage"], moved["amount"]) == ("approved", "70000.00")


def test_everything_lands_in_the_records_history(app):
    deal = new_deal(app, amount="60000.00")
    approval = requested(app, deal)
    approved_by(app, approval, "boss", "同意")
    approved_by(app, approval, "fin1")
    history = client(app, "admin").get(f"/api/v1/deal/{deal['id']}/history?limit=20").get_json()["data"]
    events = [(h["action"], h["actor"], (h["changes"] or {}).get("_approval", {}).get("event")) for h in history]
    assert events[:4] == [("update", "rep", None), ("approval", "fin1", "approved"),
                          ("approval", "boss", "approved"), ("approval", "rep", "requested")]
    assert history[0]["changes"]["stage"] == ["draft", "approved"]  # moved on the requester's behalf
    assert history[2]["changes"]["_approval"]["comment"] == "同意"


def test_bad_requests_to_the_approval_routes_are_clear(app):
    deal = new_deal(app, amount="10.00")
    approval = requested(app, deal)
    boss = client(app, "boss")
    is_error(boss.get("/api/v1/approvals?mine=everything"), 400, "invalid_parameter")
    is_error(boss.get("/api/v1/approvals?limit=0"), 400, "invalid_parameter")
    is_error(boss.get("/api/v1/approvals?entity=nope"), 400, "invalid_parameter")
    is_error(boss.get("/api/v1/approvals/99999"), 404)
    is_error(boss.post(f"/api/v1/approvals/{approval['id']}/approve", json={"comment": 5}), 422)
    is_error(boss.post(f"/api/v1/approvals/{approval['id']}/approve", json={"verdict": "ok"}), 400, "invalid_body")
    is_error(app.test_client(user=None).get("/api/v1/approvals?mine=pending"), 401)


def test_the_approvals_list_pages(app):
    made = []
    for _ in range(3):
        made.append(requested(app, new_deal(app, amount="10.00"))["id"])
    boss = client(app, "boss")
    first = boss.get("/api/v1/approvals?mine=pending&limit=2").get_json()
    assert [a["id"] for a in first["data"]] == made[::-1][:2] and first["next"]
    second = boss.get(first["next_url"]).get_json()
    assert [a["id"] for a in second["data"]] == made[:1] and second["next"] is None
    mine = client(app, "rep").get("/api/v1/approvals?mine=requested").get_json()["data"]
    assert [a["id"] for a in mine] == made[::-1]


# ---------------------------------------------------------------- concurrency

def test_two_approvers_at_once_in_an_any_step_make_the_move_once(app):
    deal = new_deal(app, amount="60000.00")
    approval = requested(app, deal)
    approved_by(app, approval, "boss")
    token_for(app, "fin1")
    token_for(app, "fin2")
    barrier = threading.Barrier(2)
    statuses: dict[str, int] = {}

    def approve(user: str) -> None:
        c = client(app, user)
        barrier.wait()
        statuses[user] = c.post(f"/api/v1/approvals/{approval['id']}/approve").status_code

    threads = [threading.Thread(target=approve, args=(user,)) for user in ("fin1", "fin2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses.values()) == [200, 409], statuses
    record = client(app, "admin").get(f"/api/v1/deal/{deal['id']}").get_json()["data"]
    assert (record["stage"], record["version"]) == ("approved", deal["version"] + 1)
    history = client(app, "admin").get(f"/api/v1/deal/{deal['id']}/history?action=update").get_json()["data"]
    assert len(history) == 1  # one move
    decided = client(app, "admin").get(f"/api/v1/approvals/{approval['id']}").get_json()["data"]
    assert [p["decision"] for p in decided["steps"][1]["approvers"]].count("approved") == 1


def test_two_requests_at_once_make_one_approval(app):
    deal = new_deal(app, amount="10.00")
    barrier = threading.Barrier(2)
    statuses: list[int] = []
    token_for(app, "rep")

    def request() -> None:
        c = client(app, "rep")
        barrier.wait()
        statuses.append(c.post(f"/api/v1/deal/{deal['id']}/transitions/approve", json={}).status_code)

    threads = [threading.Thread(target=request) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [202, 409]
    assert len(queue(app, "boss")) == 1


# ---------------------------------------------------------------- the sample config

def test_the_sample_configs_contract_approval_by_amount(make_app):
    from conftest import SAMPLE_CONFIG
    from crmkit.permissions import SYSTEM

    app = make_app(SAMPLE_CONFIG)
    directory = app.extensions["crmkit"].directory
    sales = directory.create_team({"name": "sales"}, SYSTEM)["id"]
    token_for(app, "ceo", ("executive",))
    token_for(app, "manager", ("sales_manager",), team_id=sales, superior_id="ceo", email="manager@example.com",
              display_name="王经理")
    token_for(app, "seller", ("sales_rep",), team_id=sales, superior_id="manager")
    token_for(app, "cashier", ("finance",))
    seller = client(app, "seller")
    customer = seller.post("/api/v1/customer", json={"name": "张三"}).get_json()["data"]["id"]

    def contract(amount: str, discount: str = "0") -> dict:
        response = seller.post("/api/v1/contract", json={"name": "年度合同", "customer": customer, "amount": amount,
                                                         "discount": discount})
        assert response.status_code == 201, response.get_json()  # a big discount is a draft like any other
        return response.get_json()["data"]

    def submitted(record: dict) -> dict:
        response = seller.post(f"/api/v1/contract/{record['id']}/transitions/approve", json={})
        assert response.status_code == 202, response.get_json()
        return response.get_json()["data"]

    def status(record: dict) -> str:
        return client(app, "admin").get(f"/api/v1/contract/{record['id']}").get_json()["data"]["approval_status"]

    small = submitted(contract("8000.00"))
    assert [s["status"] for s in small["steps"]] == ["active", "skipped", "skipped"]
    approved_by(app, small, "manager")
    assert status(small) == "approved"

    big = contract("80000.00")
    approval = submitted(big)
    assert [s["status"] for s in approval["steps"]] == ["active", "waiting", "skipped"]
    approved_by(app, approval, "manager")
    is_error(client(app, "seller").patch(f"/api/v1/contract/{big['id']}", json={"amount": "1.00"},
                                         headers={"If-Match": "*"}), 409, "approval_pending")
    approved_by(app, approval, "cashier")
    assert status(big) == "approved"

    # The approvers are mailed (no SMTP server here: recorded as not sent) and told in the app.
    rt = app.extensions["crmkit"]
    rt.jobs.run_pending()
    messages = rt.messaging.store.messages
    with rt.engine.connect() as conn:
        mails = conn.execute(sa.select(messages).where(messages.c.channel == "email")).mappings().all()
    assert [(m["recipient"], m["automation"]) for m in mails] == [("manager@example.com", "contract_approval_mail")] * 2
    assert mails[0]["subject"].startswith("合同待审批：") and "年度合同" in mails[0]["subject"]
    assert "seller 提交了合同" in mails[0]["body"] and "请您审批（直属上级审批）" in mails[0]["body"]
    assert "/app/approvals" in mails[0]["body"]

    discounted = submitted(contract("9000.00", "35"))
    assert [s["status"] for s in discounted["steps"]] == ["active", "skipped", "waiting"]
    approved_by(app, discounted, "manager")
    rejected = decide(app, discounted, "ceo", "reject", "折扣过高")
    assert rejected.status_code == 200 and status(discounted) == "draft"


# ---------------------------------------------------------------- who hears of it

def runtime_of(app):
    return app.extensions["crmkit"]


def notices(app, user: str, language: str = "en") -> list[dict]:
    """The user's in-app notifications, newest first, after the queued jobs ran."""
    rt = runtime_of(app)
    rt.jobs.run_pending()
    users = rt.tables.users
    with rt.engine.connect() as conn:
        user_id = conn.execute(sa.select(users.c.id).where(users.c.username == user)).scalar_one()
    return [notification_json(row, language) for row in rt.messaging.store.notifications_of(user_id)]


def test_each_approver_of_an_opened_step_hears_of_it_in_the_app(app):
    approval = requested(app, new_deal(app, amount="80000.00"))
    (boss,) = notices(app, "boss")
    assert boss["title"] == "Approval requested: Approve – 茶园合同"
    assert boss["body"] == "rep asks for your approval: Approve of Deal 茶园合同 (Manager)."
    assert notices(app, "boss", "zh")[0]["title"] == "待您审批：审批通过｜茶园合同"
    assert notices(app, "fin1") == [] and notices(app, "rep") == []  # not their step yet, nothing decided
    page = client(app, "boss").get("/app/notifications").get_data(as_text=True)
    assert 'href="/app/approvals"' in page and "前往审批" in page  # the app's language: zh

    approved_by(app, approval, "boss")
    assert [n["body"] for n in notices(app, "fin1")] == [
        "rep asks for your approval: Approve of Deal 茶园合同 (Finance)."]
    assert len(notices(app, "fin2")) == 1 and len(notices(app, "boss")) == 1
    approved_by(app, approval, "fin1")
    (told,) = notices(app, "rep")
    assert told["title"] == "Your request was approved: Approve – 茶园合同"
    assert told["body"] == "fin1 approved Approve of Deal 茶园合同"
    assert notices(app, "rep", "zh")[0]["body"] == "fin1 已通过您提交的交易「茶园合同」的「审批通过」"
    assert runtime_of(app).jobs.run_pending() == 0  # nothing left, nothing sent twice


def test_the_requester_hears_of_a_rejection_with_its_reason(app):
    approval = requested(app, new_deal(app, amount="10.00"))
    assert decide(app, approval, "boss", "reject", "折扣太高").status_code == 200
    (told,) = notices(app, "rep")
    assert told["title"] == "Your request was rejected: Approve – 茶园合同"
    assert told["body"] == "boss rejected Approve of Deal 茶园合同: 折扣太高"
    assert notices(app, "rep", "zh")[0]["title"] == "审批已驳回：审批通过｜茶园合同"


def test_a_withdrawn_request_tells_nobody_more(app):
    approval = requested(app, new_deal(app, amount="10.00"))
    assert client(app, "rep").post(f"/api/v1/approvals/{approval['id']}/cancel").status_code == 200
    assert len(notices(app, "boss")) == 1 and notices(app, "rep") == []


REMINDED = WORKFLOW_YAML.replace("        approval:\n          mode: any\n",
                                 "        approval:\n          mode: any\n          remind_after: 24h\n")


def test_a_step_still_undecided_is_reminded_once_per_period(make_app, tmp_path):
    from crmkit.jobs.schedules import collect
    from crmkit.messaging.approval_notices import REMIND_TASK

    app = make_app(make_config(tmp_path / "config", {**FILES, "workflows/deal.yaml": REMINDED}))
    for name, (roles, superior) in PEOPLE.items():
        token_for(app, name, roles, **({"superior_id": superior} if superior else {}))
    rt = runtime_of(app)
    assert "approvals:remind" in [s.name for s in collect(rt)]
    move = next(m for m in rt.spec.workflows[0].transitions if m.name == "approve")
    assert move.approval.remind_after == dt.timedelta(hours=24)
    approval = requested(app, new_deal(app, amount="80000.00"))
    other = requested(app, new_deal(app, amount="10.00"), "escalate")  # no remind_after on this move

    def sweep_at(hours_ago: float) -> list[str]:
        t = rt.records.approvals.table
        with rt.engine.begin() as conn:
            conn.execute(t.update().values(requested_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours_ago)))
        rt.jobs.enqueue(REMIND_TASK, {})
        return [n["title"] for n in notices(app, "boss")]

    assert sweep_at(23) == ["Approval requested: Approve – 茶园合同"]
    reminded = sweep_at(25)
    assert reminded[0] == "Reminder: Approve – 茶园合同 awaits your approval" and len(reminded) == 2
    assert len(sweep_at(30)) == 2  # the same period: not again
    assert len(sweep_at(49)) == 3  # a second period
    assert len(notices(app, "bigboss")) == 1  # asked, never reminded
    approved_by(app, approval, "boss")
    assert notices(app, "fin1")[0]["title"].startswith("Approval requested")
    assert other["status"] == "pending"


APPROVAL_AUTOMATIONS = """
    automations:
      ask_approvers:
        trigger: {approval_requested: deal_approval.approve}
        do:
          - notify:
              to: approvers
              title: "Please look at {{ name }}"
              body: "{{ approval.requester }} asks: {{ approval.transition }} ({{ approval.step }})"
      rejected:
        trigger: {approval_decided: deal_approval, outcome: rejected}
        when: "amount > 5"
        do:
          - notify:
              to: [requester, owner]
              body: "{{ approval.outcome }} by {{ approval.decided_by }}: {{ approval.comment }}"
      any_decision:
        trigger: {approval_decided: deal_approval.approve}
        do:
          - notify: {to: {role: board}, body: "{{ approval.outcome }}"}
"""


def test_automations_wait_for_approvals_and_reach_their_approvers(make_app, tmp_path):
    app = make_app(make_config(tmp_path / "config", {**FILES, "automations/approvals.yaml": APPROVAL_AUTOMATIONS}))
    for name, (roles, superior) in PEOPLE.items():
        token_for(app, name, roles, **({"superior_id": superior} if superior else {}))
    approval = requested(app, new_deal(app, amount="80000.00"))
    bodies = [n["body"] for n in notices(app, "boss")]
    assert "rep asks: Approve (Manager)" in bodies and len(bodies) == 2  # the automation's, and the default one
    approved_by(app, approval, "boss")
    assert "rep asks: Approve (Finance)" in [n["body"] for n in notices(app, "fin2")]
    assert decide(app, approval, "fin1", "reject", "太贵").status_code == 200
    assert [n["body"] for n in notices(app, "rep")][:1] == ["rejected by fin1: 太贵"]
    assert [n["body"] for n in notices(app, "b1")] == ["rejected"]
    runs = runtime_of(app).automations.log.table
    with runtime_of(app).engine.connect() as conn:
        triggers = sorted(conn.execute(sa.select(runs.c.trigger)).scalars())
    assert triggers == ["approval_decided: deal_approval (rejected)", "approval_decided: deal_approval.approve",
                        "approval_requested: deal_approval.approve", "approval_requested: deal_approval.approve"]


@pytest.mark.parametrize(("automation", "message"), [
    ("trigger: {approval_requested: deal_approval.archive}",
     "move 'archive' of workflow 'deal_approval' needs no approval"),
    ("trigger: {approval_decided: deal_aproval}", "unknown workflow 'deal_aproval'"),
    ("trigger: {approval_decided: deal_approval, outcome: approve}",
     "'approve' is not one of approved, rejected (did you mean 'approved'?)"),
    ("trigger: {approval_requested: deal_approval, outcome: approved}", "outcome applies to an approval_decided"),
])
def test_a_bad_approval_trigger_is_a_located_problem(tmp_path, automation, message):
    files = {**FILES, "automations/a.yaml": f"""
        automations:
          a:
            {automation}
            do: [{{notify: {{to: approvers, body: hi}}}}]
    """}
    with pytest.raises(ConfigError) as caught:
        load_config(make_config(tmp_path / "config", files))
    assert message in str(caught.value), str(caught.value)
    assert "automations/a.yaml:3:" in str(caught.value)  # the trigger's line


def test_an_unknown_approval_variable_is_a_problem(tmp_path):
    files = {**FILES, "automations/a.yaml": """
        automations:
          a:
            trigger: {approval_decided: deal_approval}
            do: [{notify: {to: requester, body: "{{ approval.comentt }}"}}]
    """}
    with pytest.raises(ConfigError) as caught:
        load_config(make_config(tmp_path / "config", files))
    assert "unknown variable 'approval.comentt' (did you mean 'comment'?)" in str(caught.value)
