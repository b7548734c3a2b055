"""The customer pool on the screens (the sample config's customers): the
record page's claim and release, the list's pool tab and claim buttons, CSRF,
and who is offered what."""

from __future__ import annotations

import re
from html import unescape

import pytest

from conftest import SAMPLE_CONFIG, as_test_app, token_for
from crmkit.app import create_app
from crmkit.permissions import SYSTEM
from crmkit.settings import Settings

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def app(module_database_url, tmp_path_factory):
    root = tmp_path_factory.mktemp("pool_ui")
    app = as_test_app(create_app(SAMPLE_CONFIG, Settings(database_url=module_database_url,
                                                         instance_dir=root / "instance")))
    team = app.extensions["crmkit"].directory.create_team({"name": "sales"}, SYSTEM)["id"]
    for name, role in (("rep1", "sales_rep"), ("rep2", "sales_rep"), ("mkt", "marketer")):
        token_for(app, name, (role,), team_id=team, password=PASSWORD)
    yield app
    app.extensions["crmkit"].engine.dispose()


def pooled(app, name: str) -> int:
    response = app.test_client().post("/api/v1/customer", json={"name": name, "owner_id": None})
    assert response.status_code == 201, response.get_json()
    return int(response.get_json()["data"]["id"])


def owner_of(app, record_id: int):
    return app.test_client().get(f"/api/v1/customer/{record_id}").get_json()["data"]["owner_id"]


def user_id(app, name: str) -> int:
    return int(app.extensions["crmkit"].directory.user(name)["id"])


def log_in(app, username: str, language: str = "zh"):
    client = app.test_client(user=None)
    response = client.post("/login", data={"username": username, "password": PASSWORD})
    assert response.status_code == 303, response.get_data(as_text=True)
    client.set_cookie("crmkit_lang", language)
    html = client.get("/app/", headers=BROWSER).get_data(as_text=True)
    return client, re.search(r'<meta name="csrf-token" content="([^"]+)">', html).group(1)


def page(client, path: str) -> str:
    response = client.get(path, headers=BROWSER)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return response.get_data(as_text=True)


def test_claim_and_release_on_the_record_page(app):
    record = pooled(app, "公海客户甲")
    base = f"/app/customer/{record}"
    browser, csrf = log_in(app, "rep1")
    html = page(browser, base)
    form = re.search(r'<form method="post" action="' + base + r'/claim".*?</form>', html, re.S)
    assert form is not None, html
    assert f'name="csrf_token" value="{csrf}"' in form.group(0)
    assert "公海中" in html and ">认领<" in form.group(0)
    assert browser.post(base + "/claim", headers=BROWSER).status_code == 403  # no CSRF token
    assert owner_of(app, record) is None
    response = browser.post(base + "/claim", data={"csrf_token": csrf}, headers=BROWSER)
    assert response.status_code == 303 and response.location == base
    assert owner_of(app, record) == user_id(app, "rep1")
    html = page(browser, base)
    assert "已认领客户：现在归你跟进。" in unescape(html)
    assert f'action="{base}/claim"' not in html and f'action="{base}/release"' in html
    assert "退回公海" in html
    response = browser.post(base + "/release", data={"csrf_token": csrf}, headers=BROWSER)
    assert response.status_code == 303
    assert owner_of(app, record) is None
    html = unescape(page(browser, base))  # still readable: it is in the pool
    assert "客户已退回公海。" in html
    response = browser.post(base + "/claim", data={"csrf_token": csrf}, headers=BROWSER)
    assert response.status_code == 303
    assert "未认领：" in unescape(page(browser, base)) and owner_of(app, record) is None  # the cool-down


def test_the_list_has_a_pool_tab_and_claim_buttons_for_pool_rows(app):
    record = pooled(app, "公海客户乙")
    mine = app.test_client(user="rep2").post("/api/v1/customer", json={"name": "自己的客户"}).get_json()["data"]["id"]
    browser, csrf = log_in(app, "rep2", "en")
    html = page(browser, "/app/customer")
    assert 'href="/app/customer?owner_id__isnull=true"' in html and ">Pool<" in html
    assert f'formaction="/app/customer/{record}/claim"' in html
    assert f'formaction="/app/customer/{mine}/claim"' not in html
    assert '<th scope="col" class="claim">' in html
    pool_only = page(browser, "/app/customer?owner_id__isnull=true")
    assert f'/app/customer/{mine}"' not in pool_only and f'/app/customer/{record}"' in pool_only
    # The button submits the list's form (its CSRF token and its "next") to the claim.
    response = browser.post(f"/app/customer/{record}/claim", data={"csrf_token": csrf, "next": "/app/customer"},
                            headers=BROWSER)
    assert response.status_code == 303 and response.location == "/app/customer"
    assert owner_of(app, record) == user_id(app, "rep2")
    assert "Customer claimed: it is yours now." in unescape(page(browser, "/app/customer"))


def test_who_may_not_claim_gets_no_button(app):
    record = pooled(app, "公海客户丙")
    browser, _csrf = log_in(app, "mkt")  # marketing reads every customer but may not update one
    html = page(browser, f"/app/customer/{record}")
    assert "/claim" not in html and "/release" not in html
    listing = page(browser, "/app/customer")
    assert "/claim" not in listing and 'class="claim"' not in listing
    theirs = app.test_client(user="rep1").post("/api/v1/customer", json={"name": "甲的客户"}).get_json()["data"]["id"]
    browser, _csrf = log_in(app, "rep2")
    assert browser.get(f"/app/customer/{theirs}", headers=BROWSER).status_code == 404
