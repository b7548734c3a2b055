"""Browser tests: the app served on a free localhost port in a thread (an
SQLite file), Debian's Chromium driven by Playwright, pages logged in through
the real login form, axe-core accessibility checks and screenshots.

Without Chromium (``make browsers`` installs it) the tests are skipped with
one reason; with CRMKIT_REQUIRE_SERVICES set (CI) they fail instead. Playwright
is never asked to download a browser of its own.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from conftest import QUICK_HASHER, REQUIRE_SERVICES, ROOT, SAMPLE_CONFIG, token_for
from crmkit import identity, seed
from crmkit.app import create_app
from crmkit.settings import Settings

CHROMIUM = os.environ.get("CRMKIT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
NO_BROWSER = "Chromium not installed: run `make browsers` (apt-get install chromium) for the browser tests"
PASSWORD = "correct horse battery"
#: Screenshots go to docs/screenshots with CRMKIT_SCREENSHOTS=1 (`make screenshots`), else to a temporary folder.
SCREENSHOTS = ROOT / "docs" / "screenshots"
LANGUAGES = ("zh", "en")
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

#: How much demo data the live server has (``crmkit seed --size``): 60 customers, 6 opportunities...
DEMO_SIZE = 60
#: Who can log in: user name -> roles.
USERS = {"ann": ["admin"], "sam": ["service_rep"]}


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.browser)


@dataclass
class LiveServer:
    url: str
    app: Flask


@pytest.fixture(scope="session")
def live_server(tmp_path_factory) -> Iterator[LiveServer]:
    """The sample retail CRM served at http://127.0.0.1:PORT by werkzeug in a
    thread, with a little demo data (``crmkit seed``: the demo organisation and
    a few dozen records, so that pages and screenshots are not empty)."""
    root = tmp_path_factory.mktemp("browser")
    settings = Settings(database_url=f"sqlite:///{root / 'crm.sqlite3'}", instance_dir=root / "instance")
    app = create_app(SAMPLE_CONFIG, settings)
    with pytest.MonkeyPatch.context() as patch:  # passwords hashed the quick way, as in every test
        patch.setattr(identity, "_hasher", QUICK_HASHER)
        for username, roles in USERS.items():
            token_for(app, username, tuple(roles), password=PASSWORD)
        seed.seed(app.extensions["crmkit"], size=DEMO_SIZE)
    server = make_server("127.0.0.1", 0, _buffered(app), threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(f"http://127.0.0.1:{server.server_port}", app)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        app.extensions["crmkit"].engine.dispose()


def _buffered(app: Flask):
    """The app with each response read whole (and closed) before it is sent:
    werkzeug's server never closes a response whose client went away while it
    was written (a browser drops its favicon request), and the open static
    file would fail a later test with a ResourceWarning."""

    def serve(environ, start_response):
        answer = app(environ, start_response)
        try:
            return [b"".join(answer)]
        finally:
            if hasattr(answer, "close"):
                answer.close()

    return serve


@pytest.fixture(scope="session")
def chromium():
    """Debian's Chromium, launched headless once for the session."""
    missing = NO_BROWSER if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)) else None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "Playwright not installed: run `make install`"
    if missing:
        if REQUIRE_SERVICES:
            pytest.fail(f"CRMKIT_REQUIRE_SERVICES is set: {missing}")
        pytest.skip(missing)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def context(chromium, live_server):
    """A fresh browser profile (no cookies) at desktop size, used by people
    who have not chosen a language yet (a test that switched language left
    it kept on the user, and logging in would bring it back)."""
    rt = live_server.app.extensions["crmkit"]
    with rt.engine.begin() as conn:
        conn.execute(rt.tables.users.update().values(language=None))
    context = chromium.new_context(base_url=live_server.url, viewport=DESKTOP, locale="zh-CN",
                                   timezone_id="Asia/Shanghai")
    context.set_default_timeout(10_000)
    yield context
    context.close()


@pytest.fixture
def page(context):
    """A page whose console errors (a refused script or style shows up there
    as a Content-Security-Policy violation) and script errors fail the test."""
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.problems = problems  # type: ignore[attr-defined]  # read by tests that expect an error
    yield page
    assert not problems, f"errors in the browser console: {problems}"


def log_in(page, username: str = "ann", password: str = PASSWORD) -> None:
    """Through the real login form, as a person would."""
    page.goto("/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/app/")


@pytest.fixture
def logged_in(page):
    """A page of a logged-in admin, on the home page: ``logged_in(user)`` for another user."""

    def as_user(username: str = "ann"):
        log_in(page, username)
        return page

    return as_user


def serious_violations(page) -> list[dict]:
    """axe-core's serious and critical accessibility violations of the page as it is now."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]


def assert_accessible(page) -> None:
    found = serious_violations(page)
    report = "\n".join(f"{v['id']} ({v['impact']}): {v['help']} — "
                       + "; ".join(n["html"][:120] for n in v["nodes"][:3]) for v in found)
    assert not found, f"{page.url}:\n{report}"


@pytest.fixture
def screenshot(live_server, tmp_path) -> Callable:
    """``screenshot(page, name)``: the page as it is, once per language, as
    ``<name>-<lang>.png`` (the language is switched through its cookie and
    the page reloaded; then the language is put back as it was). Written to
    docs/screenshots when CRMKIT_SCREENSHOTS=1."""
    folder = SCREENSHOTS if os.environ.get("CRMKIT_SCREENSHOTS") == "1" else tmp_path

    def take(page, name: str, *, full_page: bool = False) -> list[Path]:
        made = []
        before = [c for c in page.context.cookies() if c["name"] == "crmkit_lang"]
        for language in LANGUAGES:
            page.context.add_cookies([{"name": "crmkit_lang", "value": language, "url": live_server.url}])
            page.reload()
            page.wait_for_load_state("networkidle")
            page.evaluate("window.scrollTo(0, 0)")  # a reload keeps the scroll position
            path = folder / f"{name}-{language}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(path), full_page=full_page)
            made.append(path)
        # The page goes on in the language it was in (the test after the picture expects it).
        page.context.clear_cookies(name="crmkit_lang")
        if before:
            page.context.add_cookies(before)
        page.reload()
        return made

    return take
