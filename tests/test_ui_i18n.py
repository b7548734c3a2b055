"""The screens speak Chinese and English: every platform string has a
translation in both catalogs, the compiled catalogs are current, and each
request gets the language its user chose, their browser prefers, or the app's
first one."""

from __future__ import annotations

import re
from http.cookies import SimpleCookie

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from conftest import MINI_FILES, ROOT, make_config, token_for
from crmkit.ui.i18n import LANGUAGE_COOKIE

BROWSER = {"Accept": "text/html"}
PASSWORD = "correct horse battery"
TRANSLATIONS = ROOT / "ui" / "translations"
LANGUAGES = ("zh", "en")
#: Where the platform's strings are, and how to read them (ui/babel.cfg, as `make translations` uses it).
SOURCES = (ROOT / "platform" / "crmkit" / "ui", ROOT / "ui" / "templates")
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "lazy_gettext": None}


def platform_strings() -> dict[str, str]:
    """Every string marked for translation in crmkit.ui's Python code and templates -> where."""
    with (ROOT / "ui" / "babel.cfg").open(encoding="utf-8") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    found: dict[str, str] = {}
    for source in SOURCES:
        for filename, lineno, message, _comments, _context in extract_from_dir(
                source, method_map, options_map, keywords=KEYWORDS):
            msgid = message[0] if isinstance(message, tuple) else message
            found.setdefault(msgid, f"{source.name}/{filename}:{lineno}")
    return found


def catalog(language: str):
    with (TRANSLATIONS / language / "LC_MESSAGES" / "messages.po").open("rb") as file:
        return read_po(file, locale=language)


def test_the_platform_has_strings_to_translate():
    strings = platform_strings()
    assert {"Log in", "Log out", "Search", "Yes", "No"} <= set(strings)  # from Python and templates alike


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_platform_string_has_a_translation(language):
    translated = {m.id if isinstance(m.id, str) else m.id[0]: m for m in catalog(language) if m.id}
    missing = [f"{where}: {msgid!r}" for msgid, where in platform_strings().items()
               if msgid not in translated or not all(translated[msgid].string if isinstance(
                   translated[msgid].string, tuple) else (translated[msgid].string,))
               or translated[msgid].fuzzy]
    assert not missing, (f"no {language} translation (run `make translations`, then translate in "
                         f"ui/translations/{language}/LC_MESSAGES/messages.po):\n" + "\n".join(missing))


@pytest.mark.parametrize("language", LANGUAGES)
def test_no_catalog_keeps_strings_the_platform_no_longer_has(language):
    strings = platform_strings()
    stale = [m.id for m in catalog(language) if m.id and (m.id if isinstance(m.id, str) else m.id[0]) not in strings]
    assert not stale, f"run `make translations` to drop them: {stale}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_translations_keep_their_placeholders(language):
    problems = [(message.id, [str(e) for e in errors]) for message, errors in catalog(language).check()]
    assert not problems
    for message in catalog(language):
        if message.id and isinstance(message.id, str):
            assert set(re.findall(r"%\((\w+)\)s", message.id)) == set(re.findall(r"%\((\w+)\)s", message.string)), \
                message.id


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_compiled_catalog_is_current(language):
    """make install (and the wheel's build hook) compile the .po files; a stale .mo shows old words."""
    mo = TRANSLATIONS / language / "LC_MESSAGES" / "messages.mo"
    assert mo.is_file(), "run `make install` to compile the message catalogs"
    with mo.open("rb") as file:
        compiled = {m.id: m.string for m in read_mo(file) if m.id}
    assert compiled == {m.id: m.string for m in catalog(language) if m.id and not m.fuzzy}, \
        "the .mo is older than the .po: run `make install`"


def test_the_translations_are_reached_through_the_package():
    link = ROOT / "platform" / "crmkit" / "ui" / "translations"
    assert link.is_symlink() and link.resolve() == TRANSLATIONS.resolve()


# ---------------------------------------------------------------- which language

@pytest.fixture
def app(make_app, mini_config):
    return make_app(mini_config)


def html_lang(response) -> str:
    found = re.search(r'<html lang="([^"]+)"', response.get_data(as_text=True))
    assert found, response.get_data(as_text=True)[:300]
    return found.group(1)


def shell(app, **headers):
    token_for(app)
    return app.test_client().get("/app/", headers={**BROWSER, **headers})


def test_without_a_choice_the_apps_first_language_is_used(app):
    assert html_lang(shell(app)) == "zh-CN"
    assert html_lang(shell(app, **{"Accept-Language": "fr-FR,fr;q=0.9"})) == "zh-CN"


@pytest.mark.parametrize(("accept", "expected"), [
    ("en-US,en;q=0.9", "en"), ("en-GB", "en"), ("zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"), ("zh-TW", "zh-CN"),
    ("fr;q=1.0, en;q=0.5", "en")])
def test_the_browsers_language_is_followed_when_the_app_offers_it(app, accept, expected):
    assert html_lang(shell(app, **{"Accept-Language": accept})) == expected


def test_the_remembered_choice_wins_over_the_browser(app):
    token_for(app)
    client = app.test_client()
    client.set_cookie(LANGUAGE_COOKIE, "en")
    assert html_lang(client.get("/app/", headers={**BROWSER, "Accept-Language": "zh-CN"})) == "en"
    client.set_cookie(LANGUAGE_COOKIE, "fr")  # not a language of the app: ignored
    assert html_lang(client.get("/app/", headers={**BROWSER, "Accept-Language": "zh-CN"})) == "zh-CN"


def test_lang_in_the_query_shows_one_page_in_that_language(app):
    token_for(app)
    client = app.test_client()
    response = client.get("/app/?lang=en", headers=BROWSER)
    assert html_lang(response) == "en" and "Welcome, admin" in response.get_data(as_text=True)
    assert "Set-Cookie" not in response.headers
    assert html_lang(client.get("/app/", headers=BROWSER)) == "zh-CN"


def test_an_app_in_one_language_has_no_switch(make_app, tmp_path):
    files = {**MINI_FILES, "app.yaml": MINI_FILES["app.yaml"] + "    locales: [en]\n"}
    app = make_app(make_config(tmp_path / "config", files))
    response = shell(app, **{"Accept-Language": "zh-CN"})
    assert html_lang(response) == "en"
    assert "language-switch" not in response.get_data(as_text=True)
    login = app.test_client(user=None).get("/login").get_data(as_text=True)
    assert "Log in" in login and "登录" not in login and 'class="second"' not in login


# ---------------------------------------------------------------- the switch

def logged_in(app):
    token_for(app, "ann", ("admin",), password=PASSWORD)
    client = app.test_client(user=None)
    client.post("/login", data={"username": "ann", "password": PASSWORD})
    html = client.get("/app/customer", headers=BROWSER).get_data(as_text=True)
    return client, re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_the_language_switch_is_a_form_that_works_without_script(app):
    client, csrf = logged_in(app)
    html = client.get("/app/customer?x=1", headers=BROWSER).get_data(as_text=True)
    form = re.search(r'<form class="language-switch" method="post" action="/app/language">(.*?)</form>', html, re.S)
    assert form, html
    assert f'name="csrf_token" value="{csrf}"' in form.group(1)
    assert 'name="next" value="/app/customer?x=1"' in form.group(1)
    assert re.search(r'<button type="submit" name="lang" value="en" lang="en"', form.group(1))


def test_choosing_a_language_is_remembered_and_returns_to_the_page(app):
    client, csrf = logged_in(app)
    response = client.post("/app/language", data={"lang": "en", "next": "/app/customer?x=1", "csrf_token": csrf})
    assert response.status_code == 303 and response.location == "/app/customer?x=1"
    cookie = SimpleCookie(response.headers["Set-Cookie"])[LANGUAGE_COOKIE]
    assert cookie.value == "en" and cookie["httponly"] and cookie["samesite"] == "Lax" and int(cookie["max-age"]) > 0
    assert html_lang(client.get("/app/", headers=BROWSER)) == "en"


def test_choosing_a_language_is_kept_on_the_user_for_their_messages(app):
    import sqlalchemy as sa

    client, csrf = logged_in(app)
    rt = app.extensions["crmkit"]
    users = rt.tables.users

    def chosen() -> list:
        with rt.engine.connect() as conn:
            return list(conn.execute(sa.select(users.c.language).where(users.c.username == "ann")).scalars())

    assert chosen() == [None]
    client.post("/app/language", data={"lang": "en", "next": "/app/", "csrf_token": csrf})
    assert chosen() == ["en"]
    client.post("/app/language", data={"lang": "fr", "next": "/app/", "csrf_token": csrf})
    assert chosen() == ["en"]  # not a language of the app: nothing changes
    client.post("/app/language", data={"lang": "zh", "next": "/app/", "csrf_token": csrf})
    assert chosen() == ["zh"]



def test_the_language_kept_on_the_user_follows_them_to_another_browser(app):
    client, csrf = logged_in(app)
    client.post("/app/language", data={"lang": "en", "next": "/app/", "csrf_token": csrf})
    elsewhere = app.test_client(user=None)
    elsewhere.set_cookie(LANGUAGE_COOKIE, "zh")  # the last person on this browser read Chinese
    response = elsewhere.post("/login", data={"username": "ann", "password": PASSWORD})
    assert response.status_code == 303
    assert html_lang(elsewhere.get("/app/", headers=BROWSER)) == "en"
    token_for(app, "bo", ("admin",), password=PASSWORD)  # never chose: the browser's language stays
    fresh = app.test_client(user=None)
    fresh.set_cookie(LANGUAGE_COOKIE, "en")
    fresh.post("/login", data={"username": "bo", "password": PASSWORD})
    assert html_lang(fresh.get("/app/", headers=BROWSER)) == "en"

@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example", "javascript:alert(1)", "", None])
def test_the_switch_returns_only_to_a_page_of_this_site(app, target):
    client, csrf = logged_in(app)
    form = {"lang": "en", "csrf_token": csrf, **({"next": target} if target is not None else {})}
    response = client.post("/app/language", data=form)
    assert response.status_code == 303 and response.location == "/app/"


def test_the_switch_needs_the_csrf_token_and_ignores_unknown_languages(app):
    client, csrf = logged_in(app)
    assert client.post("/app/language", data={"lang": "en", "next": "/app/"}).status_code == 403
    response = client.post("/app/language", data={"lang": "fr", "next": "/app/", "csrf_token": csrf})
    assert response.status_code == 303 and "Set-Cookie" not in response.headers


def test_the_login_page_is_in_the_visitors_language_with_the_other_beside_it(app):
    client = app.test_client(user=None)
    html = client.get("/login", headers={"Accept-Language": "en-US"}).get_data(as_text=True)
    assert '<label for="username">User name <span class="second" lang="zh-CN">用户名</span></label>' in html
    html = client.get("/login").get_data(as_text=True)
    assert '<label for="username">用户名 <span class="second" lang="en">User name</span></label>' in html


def test_choosing_a_language_on_the_login_page_is_remembered(app):
    client = app.test_client(user=None)
    html = client.get("/login?next=/app/customer").get_data(as_text=True)
    assert 'href="/login?lang=en&amp;next=/app/customer"' in html
    response = client.get("/login?lang=en&next=/app/customer")
    assert SimpleCookie(response.headers["Set-Cookie"])[LANGUAGE_COOKIE].value == "en"
    assert 'name="next" value="/app/customer"' in response.get_data(as_text=True)
    assert html_lang(client.get("/login")) == "en"
