"""Who may come in: API tokens, browser login and sessions, CSRF, the login
throttle, the audit of it all, and what the database keeps of secrets."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import threading
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from argon2 import Type

from conftest import MINI_FILES, PRODUCTION_HASHER, as_test_app, is_error, make_config, token_for
from crmkit import identity
from crmkit.identity import ADDRESS_FAILURES, THROTTLE_FAILURES, THROTTLE_LOCK, THROTTLE_WINDOW
from crmkit.permissions import SYSTEM
from crmkit.settings import from_environment

API = "/api/v1"
PASSWORD = "correct horse battery"
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
#: A sample value for every variable part of a route; a new route with a new one fails the walk below.
SAMPLE_ARGUMENTS = {"entity_name": "customer", "record_id": "1", "relation": "favourites", "other_id": "1",
                    "user_id": "1", "token_id": "1", "team_id": "1", "name": "upgrade",
                    "state": "bronze", "field_name": "region", "tag": "vip"}
SAMPLE_ARGUMENTS.update(view_id="1")  # a saved view of a list (crmkit.ui.lists)
SAMPLE_ARGUMENTS.update(approval_id="1", verb="approve")  # an approval of a workflow move (crmkit.approvals)
SAMPLE_ARGUMENTS.update(job_id="1")  # a job of the queue (crmkit.jobs)
SAMPLE_ARGUMENTS.update(notification_id="1")  # an in-app notification (crmkit.messaging)

@pytest.fixture
def app(make_app, tmp_path):
    files = {**MINI_FILES, "app.yaml": MINI_FILES["app.yaml"] + "    public: [/api/v1/regions]\n"}
    return make_app(make_config(tmp_path / "config", files))


@pytest.fixture
def rt(app):
    return app.extensions["crmkit"]


@pytest.fixture
def ann(rt):
    """A user who logs in with a password."""
    return rt.directory.create_user({"username": "ann", "password": PASSWORD, "roles": ["admin"]}, SYSTEM)


def browser(app, address: str | None = None, headers: dict | None = None):
    """A client with no API token: it has only what it logs in with. It comes
    from ``address`` and sends ``headers`` with every request."""
    client = app.test_client(user=None)
    if address:
        client.environ_base["REMOTE_ADDR"] = address
    for name, value in (headers or {}).items():
        client.environ_base["HTTP_" + name.upper().replace("-", "_")] = value
    return client


def log_in(client, username="ann", password=PASSWORD, **extra):
    return client.post("/login", data={"username": username, "password": password, **extra})


def log_in_json(client, username="ann", password=PASSWORD):
    response = client.post("/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["data"]["csrf_token"]


def session_cookie(response) -> SimpleCookie:
    """The crmkit_session Set-Cookie header of a response, parsed."""
    headers = [h for h in response.headers.getlist("Set-Cookie") if h.startswith("crmkit_session=")]
    assert len(headers) == 1, response.headers
    cookie = SimpleCookie()
    cookie.load(headers[0])
    return cookie


def cookie_value(response) -> str:
    return session_cookie(response)["crmkit_session"].value


def with_cookie(app, value: str):
    client = browser(app)
    client.set_cookie("crmkit_session", value)
    return client


def error_message(response) -> str:
    found = re.search(r'<p class="error"[^>]*>(.*?)</p>', response.get_data(as_text=True), re.S)
    assert found, response.get_data(as_text=True)
    return found.group(1).strip()


def rows(rt, table: str, **where) -> list[dict]:
    t = rt.tables.metadata.tables[table]
    with rt.engine.connect() as conn:
        query = sa.select(t).where(*(t.c[k] == v for k, v in where.items())).order_by(*t.primary_key)
        return [dict(r) for r in conn.execute(query).mappings()]


def shift_throttle(rt, by: dt.timedelta) -> None:
    """Move the throttle's clock: its rows now look ``by`` older."""
    table = rt.tables.login_failures
    with rt.engine.begin() as conn:
        for row in rows(rt, "crmkit_login_failure"):
            conn.execute(table.update().where(table.c.key == row["key"]).values(
                first_at=row["first_at"] - by, locked_until=row["locked_until"] - by if row["locked_until"] else None))


def audit(rt, action: str, **where) -> list[dict]:
    return rows(rt, "crmkit_audit", entity="crmkit_user", action=action, **where)


# ---------------------------------------------------------------- what needs credentials

def api_requests(app):
    """(method, path) of every API route, with sample arguments."""
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith((API + "/", "/app/")):
            continue
        unknown = rule.arguments - SAMPLE_ARGUMENTS.keys()
        assert not unknown, f"add a sample value for {unknown} ({rule.rule})"
        path = rule.rule
        for name in rule.arguments:
            path = re.sub(rf"<(?:[^<>]*:)?{name}>", SAMPLE_ARGUMENTS[name], path)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield method, path


def test_every_api_route_needs_credentials(app):
    client = browser(app)
    walked = list(api_requests(app))
    assert len(walked) >= 15 and ("GET", API + "/customer/1") in walked and ("DELETE", API + "/customer/1") in walked
    for method, path in walked:
        if path == API + "/regions":
            continue  # public in this config: see below
        response = client.open(path, method=method, json={} if method in ("POST", "PATCH") else None)
        is_error(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"].startswith("Bearer"), (method, path)


def test_health_login_and_static_files_stay_open(app):
    client = browser(app)
    assert client.get("/healthz").get_json()["status"] == "ok"
    assert client.get("/login").status_code == 200
    with client.get("/static/login.css") as response:
        assert response.status_code == 200 and response.mimetype == "text/css"


def test_a_path_the_config_lists_as_public_is_open_and_only_that_one(app):
    client = browser(app)
    response = client.get(API + "/regions")
    assert response.status_code == 200 and response.get_json()["data"]
    assert client.get(API + "/regions", headers={"Authorization": "Bearer crm_nonsense"}).status_code == 200
    is_error(client.get(API + "/regions/x"), 401)
    is_error(client.get(API + "/customer"), 401)


def test_without_public_list_regions_need_credentials(make_app, mini_config):
    is_error(browser(make_app(mini_config)).get(API + "/regions"), 401, "unauthorized")


@pytest.mark.parametrize("path", ["/", "/?lang=zh&x=1", API + "/docs", API + "/docs?lang=zh&x=1"])
def test_screens_send_a_browser_to_the_login_page(app, path):
    response = browser(app).get(path, headers=BROWSER)
    assert response.status_code == 302
    target = urlsplit(response.location)
    assert target.path == "/login" and not target.netloc
    assert parse_qs(target.query)["next"] == [path]


def test_an_api_client_without_a_token_gets_json_not_a_redirect(app):
    for accept in (None, "application/json", "*/*"):
        headers = {"Accept": accept} if accept else {}
        is_error(browser(app).get(API + "/docs", headers=headers), 401)
        is_error(browser(app).get(API + "/customer", headers=headers), 401)
    is_error(browser(app).post(API + "/customer", json={}, headers=BROWSER), 401)


# ---------------------------------------------------------------- API tokens

def test_a_valid_token_works_and_its_use_is_recorded(app, rt):
    user = rt.directory.create_user({"username": "bob", "roles": ["admin"]}, SYSTEM)
    new = rt.directory.create_token(user["id"], "laptop", SYSTEM)
    assert rt.directory.tokens(user["id"], SYSTEM)[0]["last_used_at"] is None
    client = browser(app)
    assert client.get(API + "/customer", headers={"Authorization": f"Bearer {new.token}"}).status_code == 200
    assert client.get(API + "/customer", headers={"Authorization": f"bearer  {new.token} "}).status_code == 200
    used = rt.directory.tokens(user["id"], SYSTEM)[0]["last_used_at"]
    assert used is not None and dt.datetime.now(dt.UTC) - used < dt.timedelta(minutes=1)


@pytest.mark.parametrize("header", [
    "Basic YWRtaW46YWRtaW4=", "Token {token}", "Bearer", "Bearer ", "{token}", "Bearer crm_unknown",
    "Bearer {token}x", "Bearer " + "crm_" + "a" * 200,
])
def test_a_malformed_or_unknown_token_gets_401(app, header):
    token = token_for(app)
    response = browser(app).get(API + "/customer", headers={"Authorization": header.format(token=token)})
    is_error(response, 401, "invalid_token")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_revoked_token_gets_401(app, rt):
    user = rt.directory.create_user({"username": "bob", "roles": ["admin"]}, SYSTEM)
    new = rt.directory.create_token(user["id"], "laptop", SYSTEM)
    client = browser(app, headers={"Authorization": f"Bearer {new.token}"})
    assert client.get(API + "/customer").status_code == 200
    rt.directory.revoke_token(user["id"], new.id, SYSTEM)
    is_error(client.get(API + "/customer"), 401, "invalid_token")


def test_an_expired_token_gets_401(app, rt):
    user = rt.directory.create_user({"username": "bob", "roles": ["admin"]}, SYSTEM)
    new = rt.directory.create_token(user["id"], "laptop", SYSTEM, expires_days=30)
    client = browser(app, headers={"Authorization": f"Bearer {new.token}"})
    assert client.get(API + "/customer").status_code == 200
    tokens = rt.tables.tokens
    with rt.engine.begin() as conn:
        conn.execute(tokens.update().where(tokens.c.id == new.id)
                     .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
    is_error(client.get(API + "/customer"), 401, "invalid_token")


def test_the_token_of_a_deactivated_user_gets_401(app, rt):
    user = rt.directory.create_user({"username": "bob", "roles": ["admin"]}, SYSTEM)
    new = rt.directory.create_token(user["id"], "laptop", SYSTEM)
    client = browser(app, headers={"Authorization": f"Bearer {new.token}"})
    assert client.get(API + "/customer").status_code == 200
    rt.directory.update_user(user["id"], {"active": False}, SYSTEM)
    is_error(client.get(API + "/customer"), 401, "invalid_token")
    rt.directory.update_user(user["id"], {"active": True}, SYSTEM)
    assert client.get(API + "/customer").status_code == 200


def test_bearer_requests_need_no_csrf_token(app):
    client = app.test_client()
    created = client.post(API + "/customer", json={"name": "amy"})
    assert created.status_code == 201, created.get_json()
    record = created.get_json()["data"]
    url = f"{API}/customer/{record['id']}"
    assert client.patch(url, json={"name": "amy2", "version": record["version"]}).status_code == 200
    assert client.delete(url).status_code in (200, 204)


# ---------------------------------------------------------------- the login form

def test_wrong_password_and_unknown_user_look_the_same(app, ann):
    wrong = log_in(browser(app), "ann", "not the password")
    unknown = log_in(browser(app), "nobody", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert error_message(wrong) == error_message(unknown) != ""
    assert "crmkit_session" not in str(wrong.headers) + str(unknown.headers)
    wrong = browser(app).post("/login", json={"username": "ann", "password": "not the password"})
    unknown = browser(app).post("/login", json={"username": "nobody", "password": "not the password"})
    assert is_error(wrong, 401, "login_failed") == is_error(unknown, 401, "login_failed")


def test_a_user_without_a_password_or_deactivated_cannot_log_in(app, rt, ann):
    rt.directory.create_user({"username": "tokenonly", "roles": ["admin"]}, SYSTEM)
    assert log_in(browser(app), "tokenonly", "").status_code == 401
    assert log_in(browser(app), "tokenonly", PASSWORD).status_code == 401
    rt.directory.update_user(ann["id"], {"active": False}, SYSTEM)
    assert log_in(browser(app)).status_code == 401


def test_login_sets_a_session_cookie_the_browser_keeps_to_itself(app, ann):
    response = log_in(browser(app))
    assert response.status_code == 303 and response.location == "/"
    morsel = session_cookie(response)["crmkit_session"]
    assert morsel.value and morsel["httponly"] and morsel["path"] == "/"
    assert morsel["samesite"] == "Lax"
    assert not morsel["secure"]  # plain HTTP: a Secure cookie would never come back


def test_over_https_the_session_cookie_is_secure(app, ann):
    response = browser(app).post("/login", data={"username": "ann", "password": PASSWORD},
                                 base_url="https://localhost")
    assert response.status_code == 303
    morsel = session_cookie(response)["crmkit_session"]
    assert morsel["secure"] and morsel["httponly"] and morsel["samesite"] == "Lax"


def test_the_user_name_is_matched_without_case(app, ann):
    assert log_in(browser(app), "ANN").status_code == 303


def test_a_session_works_for_the_api_and_the_screens(app, ann):
    client = browser(app)
    log_in(client)
    assert client.get(API + "/customer").status_code == 200
    assert client.get(API + "/docs", headers=BROWSER).status_code == 200


def test_every_login_gets_a_new_session_and_ends_the_old_one(app, rt, ann):
    client = browser(app)
    first = cookie_value(log_in(client))
    second = cookie_value(log_in(client))  # the client sends the first cookie along
    assert first != second
    assert len(rows(rt, "crmkit_session", user_id=ann["id"])) == 1
    is_error(with_cookie(app, first).get(API + "/customer"), 401)
    assert with_cookie(app, second).get(API + "/customer").status_code == 200


def test_logging_in_with_a_cookie_someone_planted_does_not_keep_it(app, ann):
    client = with_cookie(app, "planted-by-an-attacker")
    assert cookie_value(log_in(client)) != "planted-by-an-attacker"


@pytest.mark.parametrize("target", [
    "/api/v1/customer?limit=5&sort=name", "/api/v1/docs#customer", "/", "/app/customer/7",
])
def test_login_follows_a_local_next(app, ann, target):
    assert log_in(browser(app), next=target).location == target


@pytest.mark.parametrize("target", [
    "//evil.example", "//evil.example/api/v1", "http://evil.example", "https://evil.example/",
    "/\\evil.example", "\\\\evil.example", "/\\/evil.example", "javascript:alert(1)", "evil.example",
    "/\t/evil.example", "/\n/evil.example", "/x\r\nSet-Cookie: a=b", " //evil.example", "", "///evil.example",
])
def test_login_ignores_a_next_that_leaves_the_site(app, ann, target):
    response = log_in(browser(app), next=target)
    assert response.status_code == 303
    assert response.location == "/"
    page = browser(app).get("/login", query_string={"next": target}).get_data(as_text=True)
    assert 'name="next" value="/"' in page


def test_the_next_of_the_login_page_is_kept_in_the_form(app, ann):
    page = browser(app).get("/login", query_string={"next": "/api/v1/docs?a=1&b=2"}).get_data(as_text=True)
    assert 'name="next" value="/api/v1/docs?a=1&amp;b=2"' in page


def test_a_failed_login_keeps_next_and_the_user_name(app, ann):
    response = log_in(browser(app), "ann", "wrong password", next="/api/v1/docs")
    page = response.get_data(as_text=True)
    assert 'name="next" value="/api/v1/docs"' in page and 'value="ann"' in page


def test_json_login_answers_the_user_and_a_csrf_token(app, ann):
    client = browser(app)
    response = client.post("/login", json={"username": "ann", "password": PASSWORD})
    data = response.get_json()["data"]
    assert data["user"] == {"id": ann["id"], "username": "ann", "display_name": "ann"}
    assert len(data["csrf_token"]) >= 32
    assert session_cookie(response)["crmkit_session"]["httponly"]


@pytest.mark.parametrize("body", [{}, {"username": 1, "password": 2}, {"username": None}, [], "x"])
def test_json_login_with_a_strange_body_is_refused_cleanly(app, ann, body):
    response = browser(app).post("/login", json=body)
    is_error(response, 401, "login_failed")


# ---------------------------------------------------------------- the login page

def test_the_login_page_speaks_chinese_and_english_and_runs_no_script(app):
    response = browser(app).get("/login")
    page = response.get_data(as_text=True)
    assert response.mimetype == "text/html"
    for text in ("迷你CRM", "用户名", "User name", "密码", "Password", "登录", "Log in"):
        assert text in page, text
    assert "/static/login.css" in page and 'class="error"' not in page
    assert "<script" not in page.lower() and not re.search(r"\son[a-z]+=", page) and "style=" not in page
    assert "script-src" not in response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"


def test_a_failed_login_says_why_in_both_languages(app, ann):
    message = error_message(log_in(browser(app), "ann", "wrong password"))
    assert "用户名或密码错误" in message and "wrong user name or password" in message
    fail(browser(app), times=THROTTLE_FAILURES - 1)
    message = error_message(log_in(browser(app)))
    assert "秒后再试" in message and "try again in" in message


@pytest.mark.parametrize("field", ["username", "next"])
def test_what_the_login_page_echoes_is_escaped(app, field):
    evil = '"><script>alert(1)</script>'
    form = {"username": "x", "password": "wrong password", "next": "/", field: evil}
    page = browser(app).post("/login", data=form).get_data(as_text=True)
    assert "<script>" not in page
    if field == "username":
        assert 'value="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in page
    page = browser(app).get("/login", query_string={"next": "/" + evil}).get_data(as_text=True)
    assert "<script>" not in page and "&lt;script&gt;" in page


# ---------------------------------------------------------------- CSRF

def test_with_a_session_reading_needs_no_csrf_token(app, ann):
    client = browser(app)
    log_in_json(client)
    assert client.get(API + "/customer").status_code == 200
    assert client.head(API + "/customer").status_code == 200


def test_with_a_session_changes_need_the_csrf_token(app, rt, ann):
    client = browser(app)
    csrf = log_in_json(client)
    other = log_in_json(browser(app))  # another session's token is no good either
    for headers in ({}, {"X-CSRF-Token": "wrong"}, {"X-CSRF-Token": ""}, {"X-CSRF-Token": other},
                    {"X-CSRF-Token": csrf[:-1]}):
        is_error(client.post(API + "/customer", json={"name": "amy"}, headers=headers), 403, "csrf_failed")
    created = client.post(API + "/customer", json={"name": "amy"}, headers={"X-CSRF-Token": csrf})
    assert created.status_code == 201, created.get_json()
    record = created.get_json()["data"]
    url = f"{API}/customer/{record['id']}"
    change = {"name": "amy2", "version": record["version"]}
    is_error(client.patch(url, json=change), 403, "csrf_failed")
    is_error(client.patch(url, json=change, headers={"X-CSRF-Token": other}), 403, "csrf_failed")
    is_error(client.delete(url), 403, "csrf_failed")
    is_error(client.delete(url, headers={"X-CSRF-Token": "x"}), 403, "csrf_failed")
    assert client.get(url).get_json()["data"]["name"] == "amy"
    assert client.patch(url, json=change, headers={"X-CSRF-Token": csrf}).status_code == 200
    assert client.delete(url, headers={"X-CSRF-Token": csrf}).status_code in (200, 204)
    is_error(client.get(url), 404)


def test_a_form_post_carries_the_csrf_token_as_a_field(app, ann):
    client = browser(app)
    csrf = log_in_json(client)
    assert client.post("/logout", data={"csrf_token": "wrong"}).status_code == 403
    assert client.get(API + "/customer").status_code == 200
    response = client.post("/logout", data={"csrf_token": csrf})
    assert response.status_code == 303 and response.location == "/login"
    is_error(client.get(API + "/customer"), 401)


# ---------------------------------------------------------------- ending sessions

def test_logout_ends_the_session_on_the_server(app, rt, ann):
    client = browser(app)
    csrf = log_in_json(client)
    cookie = client.get_cookie("crmkit_session").value
    response = client.post("/logout", json={}, headers={"X-CSRF-Token": csrf})
    assert response.status_code == 204
    assert "crmkit_session=;" in response.headers["Set-Cookie"]  # the browser forgets it
    assert rows(rt, "crmkit_session", user_id=ann["id"]) == []
    replay = with_cookie(app, cookie)  # someone who kept a copy
    is_error(replay.get(API + "/customer"), 401)
    assert replay.get("/", headers=BROWSER).status_code == 302


def test_changing_the_password_ends_the_users_sessions(app, rt, ann):
    client = browser(app)
    log_in(client)
    bystander = browser(app)
    rt.directory.create_user({"username": "bea", "password": PASSWORD, "roles": ["admin"]}, SYSTEM)
    log_in(bystander, "bea")
    rt.directory.update_user(ann["id"], {"password": "a brand new password"}, SYSTEM)
    is_error(client.get(API + "/customer"), 401)
    assert bystander.get(API + "/customer").status_code == 200
    assert log_in(browser(app)).status_code == 401
    assert log_in(browser(app), password="a brand new password").status_code == 303


def test_users_change_their_own_password_and_profile_without_a_grant(app, rt, ann):
    rt.directory.create_user({"username": "cal", "password": PASSWORD, "roles": []}, SYSTEM)
    cal = app.test_client(user="cal")  # a role that grants nothing
    error = is_error(cal.post(API + "/me/password", json={"current_password": "wrong", "new_password": "x" * 9}), 422)
    assert error["details"] == {"current_password": ["is wrong"]}
    error = is_error(cal.post(API + "/me/password", json={"current_password": PASSWORD}), 422)
    assert error["details"] == {"new_password": ["at least 8 characters"]}
    assert cal.post(API + "/me/password", json={"current_password": PASSWORD,
                                                 "new_password": "a brand new password"}).status_code == 204
    assert log_in(browser(app), "cal", "a brand new password").status_code == 303
    assert cal.patch(API + "/me", json={"display_name": "Cal"}).get_json()["data"]["display_name"] == "Cal"
    error = is_error(cal.patch(API + "/me", json={"roles": ["admin"]}), 422)
    assert error["message"] == "you can change only display_name, email, mobile here"


def test_other_changes_of_the_user_keep_the_session(app, rt, ann):
    client = browser(app)
    log_in(client)
    rt.directory.update_user(ann["id"], {"display_name": "Ann Lee"}, SYSTEM)
    assert client.get(API + "/customer").status_code == 200


def test_deactivating_the_user_ends_their_sessions(app, rt, ann):
    client = browser(app)
    log_in(client)
    rt.directory.update_user(ann["id"], {"active": False}, SYSTEM)
    assert rows(rt, "crmkit_session", user_id=ann["id"]) == []
    is_error(client.get(API + "/customer"), 401)


def test_an_expired_session_is_refused(app, rt, ann):
    client = browser(app)
    log_in(client)
    with rt.engine.begin() as conn:
        conn.execute(rt.tables.sessions.update().values(
            expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
    is_error(client.get(API + "/customer"), 401)


def test_a_session_in_use_is_extended(app, rt, ann):
    client = browser(app)
    log_in(client)
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    with rt.engine.begin() as conn:
        conn.execute(rt.tables.sessions.update().values(
            last_seen_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5), expires_at=soon))
    assert client.get(API + "/customer").status_code == 200
    [session] = rows(rt, "crmkit_session", user_id=ann["id"])
    assert session["expires_at"] > soon + dt.timedelta(days=13)


# ---------------------------------------------------------------- throttling

def fail(client, username="ann", times=1):
    for _ in range(times):
        assert log_in(client, username, "wrong password").status_code == 401


def test_five_wrong_passwords_lock_the_user_name(app, ann):
    fail(browser(app, address="198.51.100.1"), times=THROTTLE_FAILURES)
    other_address = browser(app, address="198.51.100.2")
    response = log_in(other_address)  # the right password, from elsewhere
    assert response.status_code == 429
    assert 0 < int(response.headers["Retry-After"]) <= THROTTLE_LOCK.total_seconds() + 1
    assert "crmkit_session" not in str(response.headers)
    assert "try again" in error_message(response)
    response = other_address.post("/login", json={"username": "ann", "password": PASSWORD})
    assert is_error(response, 429)["details"]["retry_after"] == int(response.headers["Retry-After"])
    assert log_in(other_address, "ANN ").status_code == 429  # the same name, written differently


def test_four_wrong_passwords_do_not(app, ann):
    fail(browser(app), times=THROTTLE_FAILURES - 1)
    assert log_in(browser(app)).status_code == 303


def test_many_user_names_from_one_address_lock_the_address(app, ann):
    attacker = browser(app, address="203.0.113.7")
    for n in range(ADDRESS_FAILURES - 1):
        fail(attacker, f"guess{n}")
    assert log_in(attacker).status_code == 303  # an office behind one address is not locked out at once
    fail(attacker, "one more")  # the twentieth
    assert log_in(attacker).status_code == 429
    assert log_in(browser(app, address="203.0.113.8")).status_code == 303


def test_a_successful_login_resets_the_count_for_the_user_name(app, ann):
    def client(n):  # a new address each time, so only the user name's count matters
        return browser(app, address=f"192.0.2.{n}")

    for n in range(THROTTLE_FAILURES - 1):
        fail(client(n))
    assert log_in(client(10)).status_code == 303
    for n in range(THROTTLE_FAILURES - 1):
        fail(client(20 + n))
    assert log_in(client(30)).status_code == 303


def test_the_lock_ends_after_the_lock_time(app, rt, ann):
    fail(browser(app), times=THROTTLE_FAILURES)
    shift_throttle(rt, THROTTLE_LOCK - dt.timedelta(seconds=10))
    assert log_in(browser(app)).status_code == 429
    shift_throttle(rt, dt.timedelta(seconds=11))
    assert log_in(browser(app)).status_code == 303


def test_failures_further_apart_than_the_window_do_not_add_up(app, rt, ann):
    fail(browser(app), times=THROTTLE_FAILURES - 1)
    shift_throttle(rt, THROTTLE_WINDOW + dt.timedelta(seconds=1))
    fail(browser(app), times=THROTTLE_FAILURES - 1)
    assert log_in(browser(app)).status_code == 303


def test_failures_at_the_same_time_are_all_counted(app, rt, ann):
    """Guesses sent in parallel (many gunicorn workers) must not slip past the count."""
    from concurrent.futures import ThreadPoolExecutor

    attempts = 3 * THROTTLE_FAILURES
    start = threading.Barrier(attempts)

    def guess(n: int) -> int:
        client = browser(app, address=f"192.0.2.{n}")
        start.wait()
        return log_in(client, "ann", f"guess {n}").status_code

    with ThreadPoolExecutor(attempts) as pool:
        statuses = list(pool.map(guess, range(attempts)))
    assert set(statuses) <= {401, 429}, statuses
    [row] = rows(rt, "crmkit_login_failure", key="user:ann")
    assert row["failures"] == statuses.count(401) and row["locked_until"] is not None
    assert len(audit(rt, "login_failed")) == statuses.count(401)
    assert log_in(browser(app)).status_code == 429


# ---------------------------------------------------------------- audit

def recent(row) -> bool:
    return dt.timedelta(0) <= dt.datetime.now(dt.UTC) - row["at"] < dt.timedelta(minutes=1)


def test_logins_and_failed_logins_are_audited(app, rt, ann):
    log_in(browser(app, address="198.51.100.9"))
    fail(browser(app))
    fail(browser(app), "nobody")
    [login] = audit(rt, "login")
    assert login["record_id"] == ann["id"] and login["actor_id"] == ann["id"] and login["actor"] == "ann"
    assert login["changes"]["address"] == "198.51.100.9" and recent(login)
    known, unknown = audit(rt, "login_failed")
    assert known["record_id"] == ann["id"] and known["actor"] == "ann" and recent(known)
    assert known["changes"]["username"] == "ann"
    assert unknown["record_id"] == 0 and unknown["actor_id"] is None and recent(unknown)
    assert unknown["changes"]["username"] == "nobody"


def test_token_and_role_changes_are_audited_with_who_did_them(app, rt, ann):
    admin = rt.directory.actor(ann)
    bob = rt.directory.create_user({"username": "bob", "roles": []}, admin)
    new = rt.directory.create_token(bob["id"], "laptop", admin)
    rt.directory.revoke_token(bob["id"], new.id, admin)
    rt.directory.update_user(bob["id"], {"roles": ["admin"]}, admin)
    for action in ("user_created", "token_created", "token_revoked", "roles_changed"):
        [row] = audit(rt, action, record_id=bob["id"])
        assert (row["actor_id"], row["actor"]) == (ann["id"], "ann"), action
        assert recent(row), action
    assert audit(rt, "token_created")[0]["changes"] == {"token_id": new.id, "name": "laptop"}
    assert audit(rt, "roles_changed")[0]["changes"] == {"roles": [[], ["admin"]]}


# ---------------------------------------------------------------- secrets at rest

def dump_database(rt) -> str:
    metadata = sa.MetaData()
    metadata.reflect(rt.engine)
    with rt.engine.connect() as conn:
        return "\n".join(repr(tuple(row)) for table in metadata.sorted_tables
                         for row in conn.execute(sa.select(table)))


def test_the_database_keeps_no_password_token_or_session_in_clear(app, rt, ann):
    client = browser(app)
    log_in(client)
    cookie = client.get_cookie("crmkit_session").value
    new = rt.directory.create_token(ann["id"], "laptop", SYSTEM)
    assert browser(app).get(API + "/customer", headers={"Authorization": f"Bearer {new.token}"}).status_code == 200
    dump = dump_database(rt)
    assert "crmkit_token" in str(sa.inspect(rt.engine).get_table_names())
    assert ann["username"] in dump and hashlib.sha256(new.token.encode()).hexdigest() in dump  # the dump works
    for secret in (PASSWORD, new.token, new.token[4:], cookie):
        assert secret not in dump
    [user] = rows(rt, "crmkit_user", id=ann["id"])
    assert user["password_hash"].startswith("$argon2id$")
    assert user["password_hash"] != identity._hasher.hash(PASSWORD)  # salted
    [token] = rows(rt, "crmkit_token", id=new.id)
    assert token["digest"] == hashlib.sha256(new.token.encode()).hexdigest()
    [session] = rows(rt, "crmkit_session", user_id=ann["id"])
    assert session["digest"] == hashlib.sha256(cookie.encode()).hexdigest()


def test_passwords_are_hashed_with_argon2id_at_least_as_hard_as_owasp_asks():
    assert PRODUCTION_HASHER.type is Type.ID
    assert PRODUCTION_HASHER.memory_cost >= 19 * 1024 and PRODUCTION_HASHER.time_cost >= 2
    assert PRODUCTION_HASHER.hash(PASSWORD).startswith("$argon2id$")


# ---------------------------------------------------------------- behind a proxy

def test_trust_proxy_comes_from_the_environment():
    assert from_environment({"CRMKIT_INSTANCE": "/tmp/x"}).trust_proxy == 0
    assert from_environment({"CRMKIT_INSTANCE": "/tmp/x", "CRMKIT_TRUST_PROXY": "2"}).trust_proxy == 2
    for bad in ("-1", "yes", "1.5"):
        with pytest.raises(RuntimeError, match="CRMKIT_TRUST_PROXY"):
            from_environment({"CRMKIT_INSTANCE": "/tmp/x", "CRMKIT_TRUST_PROXY": bad})


FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.50"}


@pytest.fixture
def proxied_app(settings, engines, tmp_path):
    """An app on the test's database trusting that many proxies in front of it."""
    from dataclasses import replace

    from crmkit.app import create_app

    def make(proxies: int):
        config = make_config(tmp_path / f"config{proxies}", MINI_FILES)
        app = as_test_app(create_app(config, replace(settings, trust_proxy=proxies)))
        engines.add(app.extensions["crmkit"])
        app.extensions["crmkit"].directory.create_user({"username": "ann", "password": PASSWORD,
                                                         "roles": ["admin"]}, SYSTEM)
        return app

    return make


def throttled_addresses(app) -> set[str]:
    return {r["key"] for r in rows(app.extensions["crmkit"], "crmkit_login_failure") if r["key"].startswith("ip:")}


def test_behind_a_trusted_proxy_https_and_the_client_address_come_from_its_headers(proxied_app):
    app = proxied_app(1)
    response = log_in(browser(app, headers=FORWARDED))
    assert response.status_code == 303
    assert session_cookie(response)["crmkit_session"]["secure"]
    fail(browser(app, headers=FORWARDED))
    assert throttled_addresses(app) == {"ip:203.0.113.50"}
    assert audit(app.extensions["crmkit"], "login")[0]["changes"]["address"] == "203.0.113.50"


def test_a_client_cannot_forge_its_address_past_the_trusted_proxy(proxied_app):
    app = proxied_app(1)
    forged = {"X-Forwarded-For": "10.9.9.9, 203.0.113.50"}  # the proxy appends the address it saw
    for n in range(ADDRESS_FAILURES):
        fail(browser(app, headers={"X-Forwarded-For": f"10.0.0.{n}, 203.0.113.50"}), f"guess{n}")
    assert throttled_addresses(app) == {"ip:203.0.113.50"}
    assert log_in(browser(app, headers=forged)).status_code == 429


def test_without_trust_forwarded_headers_are_ignored(proxied_app):
    app = proxied_app(0)
    response = log_in(browser(app, headers=FORWARDED))
    assert response.status_code == 303
    assert not session_cookie(response)["crmkit_session"]["secure"]
    fail(browser(app, headers=FORWARDED))
    assert throttled_addresses(app) == {"ip:127.0.0.1"}


def test_logout_without_a_session_goes_back_to_the_login_page(app):
    response = app.test_client(user=None).post("/logout")
    assert response.status_code == 303 and response.headers["Location"] == "/login"
