"""Every page tells the browser to run only this site's scripts and styles,
and no template or static script of ours needs anything looser."""

from __future__ import annotations

import json
import re

import pytest

from conftest import MINI_FILES, ROOT, make_config, token_for
from crmkit.permissions import SYSTEM
from crmkit.ui.login import LOGIN_PAGE_POLICY
from crmkit.ui.security import PAGE_POLICY, redirect_to

BROWSER = {"Accept": "text/html"}
PASSWORD = "correct horse battery"
TEMPLATES = sorted((ROOT / "ui" / "templates").rglob("*.html"))
OWN_SCRIPTS = sorted(p for p in (ROOT / "ui" / "static").glob("*.js"))


def directives(policy: str) -> dict[str, str]:
    return {part.split()[0]: " ".join(part.split()[1:]) for part in policy.split(";") if part.strip()}


def test_the_page_policy_is_strict():
    policy = directives(PAGE_POLICY)
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == policy["style-src"] == policy["connect-src"] == "'self'"
    assert policy["img-src"] == "'self' data:"
    assert policy["form-action"] == "'self'"
    assert policy["frame-ancestors"] == policy["base-uri"] == "'none'"
    assert "unsafe" not in PAGE_POLICY and "unsafe" not in LOGIN_PAGE_POLICY
    assert "script-src" not in LOGIN_PAGE_POLICY and directives(LOGIN_PAGE_POLICY)["default-src"] == "'none'"


# ---------------------------------------------------------------- every page

#: A workflow and a calendar: the board's, the calendar's and the record page's move dialog are among the pages.
SCREEN_FILES = {
    "workflows/level.yaml": """
        workflow: customer_level
        entity: customer
        field: level
        states: [bronze, silver, gold]
        initial: bronze
        transitions:
          - {name: upgrade, from: bronze, to: silver, require: [email]}
    """,
    "views.yaml": """
        views:
          seen:
            entity: customer
            kind: calendar
            date_field: last_seen
    """,
}


@pytest.fixture
def app(make_app, tmp_path):
    app = make_app(make_config(tmp_path / "config", {**MINI_FILES, **SCREEN_FILES}))
    app.extensions["crmkit"].records.create("customer", {"name": "Ann <b>"}, SYSTEM)  # record 1
    return app


@pytest.fixture
def browser(app):
    """A client logged in through the login form, as a browser is."""
    token_for(app, "ann", ("admin",), password=PASSWORD)
    client = app.test_client(user=None)
    assert client.post("/login", data={"username": "ann", "password": PASSWORD}).status_code == 303
    return client


SAMPLE = {"entity_name": "customer", "state": "bronze", "record_id": "1", "relation": "orders", "name": "upgrade",
          "field_name": "region"}
#: GET routes of the screens that answer JSON, not a page (each tested where it is made).
JSON_ROUTES = {"crmkit_app.ref_options"}


def page_paths(app) -> list[str]:
    """Every GET route that serves a page (the API's JSON routes and static files aside)."""
    paths = []
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint == "static":
            continue
        if rule.rule.startswith("/api/") and rule.endpoint != "crmkit_docs.api_docs":
            continue
        if rule.rule in ("/healthz",) or rule.endpoint in JSON_ROUTES:
            continue
        unknown = rule.arguments - SAMPLE.keys()
        assert not unknown, f"add a sample value for {unknown} ({rule.rule})"
        paths.append(re.sub(r"<(?:[^<>]*:)?(\w+)>", lambda m: SAMPLE[m.group(1)], rule.rule))
    return sorted(paths)


def assert_strict_headers(response, path: str) -> None:
    headers = response.headers
    assert headers["Content-Security-Policy"] in (PAGE_POLICY, LOGIN_PAGE_POLICY), path
    assert headers["X-Content-Type-Options"] == "nosniff", path
    assert headers["Referrer-Policy"] == "same-origin", path
    assert headers["X-Frame-Options"] == "DENY", path
    assert headers["Cache-Control"] == "no-store", path


def assert_inert(html: str, where: str) -> None:
    """No inline script, style element, style attribute, event handler or javascript: URL."""
    for tag in re.findall(r"<script\b[^>]*>.*?</script>", html, re.S | re.I):
        assert re.fullmatch(r'<script src="[^"]+"( defer)?></script>', tag), (where, tag)
    assert not re.search(r"<style\b", html, re.I), where
    assert not re.search(r"\sstyle\s*=", html, re.I), where
    assert not re.search(r"\son[a-z]+\s*=", html, re.I), where
    assert "javascript:" not in html.lower(), where


def test_every_page_sends_the_strict_headers_and_is_inert(app, browser):
    app.test_client().post("/api/v1/customer", json={"name": "record 1"})  # the record of record_id
    paths = page_paths(app)
    assert {"/login", "/app/", "/app/search", "/app/customer", "/api/v1/docs"} <= set(paths)
    for path in paths:
        response = browser.get(path, headers=BROWSER, follow_redirects=True)
        assert response.status_code == 200 and response.mimetype == "text/html", path
        assert_strict_headers(response, path)
        html = response.get_data(as_text=True)
        assert_inert(html, path)
        assert all(src.startswith("/static/") for src in re.findall(r'<script src="([^"]+)"', html)), path


@pytest.mark.parametrize(("method", "path", "status"), [("GET", "/app/nothing", 404), ("PUT", "/app/", 405),
                                                      ("GET", "/nowhere", 404)])
def test_error_pages_send_the_strict_headers_too(app, method, path, status):
    response = app.test_client().open(path, method=method, headers=BROWSER)  # with a token: no CSRF token needed
    assert response.status_code == status and response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"] == PAGE_POLICY
    assert_inert(response.get_data(as_text=True), path)


def test_the_login_page_with_an_error_is_inert(app):
    response = app.test_client(user=None).post("/login", data={"username": "x", "password": "y"})
    assert response.status_code == 401
    assert response.headers["Content-Security-Policy"] == LOGIN_PAGE_POLICY
    assert_inert(response.get_data(as_text=True), "/login (failed)")


@pytest.mark.parametrize("template", TEMPLATES, ids=[t.name for t in TEMPLATES])
def test_no_template_has_inline_script_style_or_handlers(template):
    assert_inert(template.read_text(encoding="utf-8"), template.name)


@pytest.mark.parametrize("script", OWN_SCRIPTS, ids=[s.name for s in OWN_SCRIPTS])
def test_our_scripts_build_no_code_or_markup_from_strings(script):
    source = script.read_text(encoding="utf-8")
    for forbidden in ("eval(", "new Function", "innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
                      "setAttribute(\"style\"", "setAttribute('style'"):
        assert forbidden not in source, (script.name, forbidden)


# ---------------------------------------------------------------- htmx

def htmx_config(html: str) -> dict:
    found = re.search(r"<meta name=\"htmx-config\" content='([^']+)'>", html)
    assert found, html[:1000]
    return json.loads(found.group(1))


def test_htmx_is_configured_for_the_policy(browser):
    html = browser.get("/app/", headers=BROWSER).get_data(as_text=True)
    config = htmx_config(html)
    assert config["includeIndicatorStyles"] is False  # else htmx adds a <style> the policy refuses
    assert config["allowEval"] is False and config["allowScriptTags"] is False
    assert config["selfRequestsOnly"] is True
    assert config["historyCacheSize"] == 0  # no copies of pages with people's data in the browser's storage
    assert ".htmx-request .htmx-indicator" in (ROOT / "ui" / "static" / "crmkit.css").read_text(encoding="utf-8")


def test_htmx_requests_get_the_sessions_csrf_token(app, browser):
    html = browser.get("/app/", headers=BROWSER).get_data(as_text=True)
    token = re.search(r'<meta name="csrf-token" content="([^"]+)">', html).group(1)
    assert f'name="csrf_token" value="{token}"' in html  # the same one the forms carry
    script = (ROOT / "ui" / "static" / "crmkit.js").read_text(encoding="utf-8")
    assert 'event.detail.headers["X-CSRF-Token"] = csrfToken()' in script
    # what the script sends is what the server checks
    response = browser.post("/app/language", data={"lang": "en", "next": "/app/"},
                            headers={"X-CSRF-Token": token, "HX-Request": "true"})
    assert response.status_code == 303


# ---------------------------------------------------------------- redirects

@pytest.mark.parametrize(("target", "expected"), [
    ("/app/customer?x=1", "/app/customer?x=1"), ("/", "/"), (None, "/app/"), ("", "/app/"),
    ("https://evil.example/", "/app/"), ("//evil.example/x", "/app/"), ("/\\evil.example", "/app/"),
    ("javascript:alert(1)", "/app/"), ("/app/\r\nSet-Cookie: x=1", "/app/"), ("app/customer", "/app/")])
def test_redirects_stay_on_this_site(app, target, expected):
    with app.test_request_context():
        response = redirect_to(target)
    assert response.status_code == 303 and response.location == expected
