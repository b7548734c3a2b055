"""Approvals on the screens: asking for a move that needs approval from the
record page, the approver's queue linked from the navigation, approve and
reject with a comment (POST forms with the session's CSRF token), the panel
on the record page and the approval's events on the timeline, in both languages."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

import pytest

from conftest import make_config, token_for
from test_approvals import FILES, PEOPLE

BROWSER = {"Accept": "text/html"}
PASSWORD = "correct horse battery"


@pytest.fixture
def app(make_app, tmp_path: Path):
    app = make_app(make_config(tmp_path / "config", FILES))
    for name, (roles, superior) in PEOPLE.items():
        token_for(app, name, roles, password=PASSWORD, **({"superior_id": superior} if superior else {}))
    return app


def log_in(app, username: str, language: str = "en"):
    client = app.test_client(user=None)
    response = client.post("/login", data={"username": username, "password": PASSWORD})
    assert response.status_code == 303, response.get_data(as_text=True)
    client.post("/app/language", data={"lang": language, "next": "/app/",
                                       "csrf_token": _csrf(client)})
    return client, _csrf(client)


def _csrf(client) -> str:
    html = client.get("/app/", headers=BROWSER).get_data(as_text=True)
    return re.search(r'<meta name="csrf-token" content="([^"]+)">', html).group(1)


def page(client, path: str) -> str:
    response = client.get(path, headers=BROWSER)
    assert response.status_code == 200, (path, response.status_code)
    return unescape(response.get_data(as_text=True))


def text_of(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def new_deal(app, **values) -> int:
    response = app.test_client(user="rep").post("/api/v1/deal", json={"name": "茶园合同", **values})
    assert response.status_code == 201
    return response.get_json()["data"]["id"]


def asked_on_the_record_page(app, deal: int) -> tuple:
    rep, csrf = log_in(app, "rep")
    moves = page(rep, f"/app/deal/{deal}")
    moves = moves[moves.index('<section class="record-moves"'):]
    assert f'/app/deal/{deal}/transitions/approve"' in moves and "Needs approval" in moves
    response = rep.post(f"/app/deal/{deal}/transitions/approve", data={"csrf_token": csrf, "version": "1"},
                        headers=BROWSER)
    assert response.status_code == 303 and response.location.endswith(f"/app/deal/{deal}#approvals")
    return rep, csrf


def test_a_move_asked_on_the_record_page_waits_in_the_approvers_queue(app):
    deal = new_deal(app, amount="100.00")
    rep, csrf = asked_on_the_record_page(app, deal)
    shown = text_of(page(rep, f"/app/deal/{deal}"))
    assert "Sent for approval: Approve." in shown and "Awaiting approval" in shown
    assert "Withdraw the request" in shown and "Reject" not in shown  # the requester does not decide
    assert "'approve' is awaiting approval" in shown  # the moves wait too: the state is locked
    assert f'action="/app/deal/{deal}/transitions/archive"' not in page(rep, f"/app/deal/{deal}")
    assert 'href="/app/approvals"' not in page(rep, "/app/")  # nothing waits for the rep

    boss, boss_csrf = log_in(app, "boss")
    home = page(boss, "/app/")
    assert re.search(r'href="/app/approvals"[^>]*>Approvals <span class="nav-count"[^>]*>1</span>', home), home
    queue = page(boss, "/app/approvals")
    assert f'href="/app/deal/{deal}"' in queue and "Waiting for your decision" in queue
    form = queue[queue.index('action="/app/approvals/'):]
    form = form[:form.index("</form>")]
    assert f'name="csrf_token" value="{boss_csrf}"' in form and 'formaction="/app/approvals/' in form
    approval = int(re.search(r"/app/approvals/(\d+)/approve", queue).group(1))

    assert boss.post(f"/app/approvals/{approval}/approve", data={"comment": "同意"},
                     headers=BROWSER).status_code == 403  # no CSRF token: refused
    response = boss.post(f"/app/approvals/{approval}/approve",
                         data={"csrf_token": boss_csrf, "comment": "价格合理", "next": f"/app/deal/{deal}"},
                         headers=BROWSER)
    assert response.status_code == 303 and response.location.endswith(f"/app/deal/{deal}")
    assert app.test_client().get(f"/api/v1/deal/{deal}").get_json()["data"]["stage"] == "approved"
    shown = text_of(page(boss, f"/app/deal/{deal}"))
    assert "Approved." in shown
    timeline = text_of(page(boss, f"/app/deal/{deal}/timeline"))
    assert "boss approved: Approve" in timeline and "价格合理" in timeline
    assert "rep asked for approval: Approve" in timeline
    assert 'href="/app/approvals"' not in page(boss, "/app/")  # the queue is empty again


def test_a_rejection_asks_for_its_reason_and_shows_it_on_the_record(app):
    deal = new_deal(app, amount="100.00")
    asked_on_the_record_page(app, deal)
    boss, csrf = log_in(app, "boss")
    approval = int(re.search(r"/app/approvals/(\d+)/reject", page(boss, f"/app/deal/{deal}")).group(1))
    response = boss.post(f"/app/approvals/{approval}/reject", data={"csrf_token": csrf, "next": f"/app/deal/{deal}"},
                         headers=BROWSER)
    assert response.status_code == 303
    assert "Not done: say why you reject it" in text_of(page(boss, f"/app/deal/{deal}"))
    boss.post(f"/app/approvals/{approval}/reject", data={"csrf_token": csrf, "comment": "<b>预算不足</b>",
                                                         "next": f"/app/deal/{deal}"}, headers=BROWSER)
    html = app.test_client(user="rep").get(f"/app/deal/{deal}?lang=en", headers=BROWSER).get_data(as_text=True)
    assert "Rejected" in html and "&lt;b&gt;预算不足&lt;/b&gt;" in html and "<b>预算不足" not in html
    assert app.test_client().get(f"/api/v1/deal/{deal}").get_json()["data"]["stage"] == "draft"


def test_the_screens_speak_chinese(app):
    deal = new_deal(app, amount="100.00", discount="40")
    asked_on_the_record_page(app, deal)
    boss, _ = log_in(app, "boss", "zh")
    queue = text_of(page(boss, "/app/approvals"))
    assert "待我审批" in queue and "同意" in queue and "驳回" in queue
    assert "会签：全部同意" in queue  # the board's step
    assert "审批" in page(boss, "/app/")


def test_someone_else_cannot_decide_through_the_screens(app):
    deal = new_deal(app, amount="100.00")
    asked_on_the_record_page(app, deal)
    fin, csrf = log_in(app, "fin1")
    html = page(fin, f"/app/deal/{deal}")
    approval = int(re.search(r'id="approval-(\d+)"', html).group(1))
    assert "/approve" not in html  # no buttons for someone who is not an approver
    fin.post(f"/app/approvals/{approval}/approve", data={"csrf_token": csrf, "next": f"/app/deal/{deal}"},
             headers=BROWSER)
    assert "Not done: you are not an approver" in text_of(page(fin, f"/app/deal/{deal}"))
    assert fin.post(f"/app/approvals/{approval}/shout", data={"csrf_token": csrf}).status_code == 404
    assert app.test_client().get(f"/api/v1/deal/{deal}").get_json()["data"]["stage"] == "draft"


def test_a_bulk_move_sends_each_record_for_approval(app):
    deals = [new_deal(app, amount="100.00") for _ in range(2)]
    rep, csrf = log_in(app, "rep")
    response = rep.post("/app/deal/bulk", data={"csrf_token": csrf, "action": "transition", "transition": "approve",
                                                "id": [str(d) for d in deals], "next": "/app/deal"},
                        headers=BROWSER)
    assert response.status_code == 303
    assert "2 sent for approval." in text_of(page(rep, "/app/deal?lang=en"))
    assert len(app.test_client(user="boss").get("/api/v1/approvals?mine=pending").get_json()["data"]) == 2
    assert {app.test_client().get(f"/api/v1/deal/{d}").get_json()["data"]["stage"] for d in deals} == {"draft"}
