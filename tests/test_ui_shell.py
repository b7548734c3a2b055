"""The shell of the business screens (/app/...): who sees which menu, the top
bar, the home page, and how a browser gets in and out."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import flash, redirect

from conftest import MINI_FILES, make_config, token_for

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
PASSWORD = "correct horse battery"

ROLES_YAML = """
    roles:
      clerk:
        label: {en: Order clerk, zh: 订单员}
        entities:
          order: {read: all, create: true}
          product: {read: all}
      visitor:
        label: {en: Visitor, zh: 访客}
        entities: {}
"""


@pytest.fixture
def app(make_app, tmp_path):
    return make_app(make_config(tmp_path / "config", {**MINI_FILES, "roles.yaml": ROLES_YAML}))


def page(app, path: str = "/app/", user: str = "admin", roles: tuple[str, ...] = ("admin",), **kwargs) -> str:
    token_for(app, user, roles)
    response = app.test_client(user=user).get(path, headers=BROWSER, **kwargs)
    assert response.status_code == 200, (path, response.status_code, response.get_data(as_text=True)[:500])
    assert response.mimetype == "text/html"
    return response.get_data(as_text=True)


def nav_links(html: str) -> list[str]:
    nav = re.search(r'<nav class="sidebar".*?</nav>', html, re.S)
    assert nav, html
    return re.findall(r'href="/app/([a-z_]*)"', nav.group(0))


def nav_headings(html: str) -> list[str]:
    nav = re.search(r'<nav class="sidebar".*?</nav>', html, re.S)
    assert nav
    return re.findall(r'<h2 class="nav-group">(.*?)</h2>', nav.group(0))


def log_in(app, username: str = "ann", roles: tuple[str, ...] = ("admin",)):
    """A browser that logged in through the form; returns (client, csrf token)."""
    token_for(app, username, roles, password=PASSWORD)
    client = app.test_client(user=None)
    response = client.post("/login", data={"username": username, "password": PASSWORD})
    assert response.status_code == 303, response.get_data(as_text=True)
    html = client.get("/app/", headers=BROWSER).get_data(as_text=True)
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
    assert csrf, html
    return client, csrf.group(1)


# ---------------------------------------------------------------- getting in

def test_after_login_the_root_goes_to_the_home_page(app):
    client, _ = log_in(app)
    response = client.get("/", headers=BROWSER)
    assert response.status_code == 302 and response.location == "/app/"
    assert "欢迎，ann" in client.get("/app/", headers=BROWSER).get_data(as_text=True)


@pytest.mark.parametrize("path", ["/app/", "/app/customer", "/app/search?q=x"])
def test_a_browser_without_a_session_is_sent_to_the_login_page_and_back(app, path):
    response = app.test_client(user=None).get(path, headers=BROWSER)
    assert response.status_code == 302
    target = urlsplit(response.location)
    assert target.path == "/login" and parse_qs(target.query)["next"] == [path]


def test_an_htmx_request_whose_session_ended_sends_the_whole_page_to_login(app):
    response = app.test_client(user=None).get("/app/customer", headers={
        "HX-Request": "true", "HX-Current-URL": "http://localhost/app/customer?level=gold"})
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "unauthorized"
    assert response.headers["HX-Redirect"] == "/login?next=/app/customer%3Flevel%3Dgold"


def test_an_htmx_redirect_never_leaves_the_site(app):
    response = app.test_client(user=None).get("/app/", headers={
        "HX-Request": "true", "HX-Current-URL": "https://evil.example//evil.example/x"})
    assert response.headers["HX-Redirect"] == "/login?next=/"


# ---------------------------------------------------------------- the top bar

def test_the_top_bar_shows_the_app_the_user_and_a_logout_form_with_the_csrf_token(app):
    client, csrf = log_in(app)
    html = client.get("/app/", headers=BROWSER).get_data(as_text=True)
    assert '<a class="brand" href="/app/">迷你CRM</a>' in html
    assert '<span class="who" title="当前用户：ann">ann</span>' in html
    logout = re.search(r'<form class="logout" method="post" action="/logout">(.*?)</form>', html, re.S)
    assert logout and f'name="csrf_token" value="{csrf}"' in logout.group(1)
    response = client.post("/logout", data={"csrf_token": csrf})
    assert response.status_code == 303 and response.location == "/login"
    assert client.get("/app/", headers=BROWSER).status_code == 302


def test_the_search_box_is_labelled_and_has_its_shortcut(app):
    html = page(app)
    assert '<form class="global-search" role="search" method="get" action="/app/search">' in html
    assert '<label for="global-search" class="visually-hidden">搜索</label>' in html
    assert 'aria-keyshortcuts="Control+K"' in html


def test_the_search_page_echoes_the_query_inert(app):
    html = page(app, "/app/search", query_string={"q": '"><script>alert(1)</script>'})
    assert "<script>alert" not in html
    assert "&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "没有找到" in html  # the global search itself: tests/test_ui_lists.py


def test_only_admins_get_the_link_to_the_api_reference(app):
    assert 'href="/api/v1/docs"' in page(app)
    assert 'href="/api/v1/docs"' not in page(app, user="carl", roles=("clerk",))


# ---------------------------------------------------------------- navigation

def test_the_menu_lists_only_what_the_users_roles_may_read(app):
    assert nav_links(page(app)) == ["", "contract", "customer", "order", "product"]
    assert nav_links(page(app, user="carl", roles=("clerk",))) == ["", "order", "product"]


def test_a_user_who_may_read_nothing_is_told_whom_to_ask(app):
    html = page(app, user="vera", roles=("visitor",))
    assert nav_links(html) == [""]
    assert "您的角色暂时没有可查看的记录，请联系管理员开通权限。" in html


def test_the_menu_shows_labels_in_the_users_language(app):
    assert "<a href=\"/app/customer\">客户</a>" in page(app)
    assert "<a href=\"/app/customer\">Customers</a>" in page(app, query_string={"lang": "en"})


MENU_APP = MINI_FILES["app.yaml"] + """
    menu:
      - group: {en: Sales, zh: 销售}
        entities: [customer, contract]
      - entities: [product]
"""


def test_the_apps_menu_orders_and_groups_the_entities_and_the_rest_follow(make_app, tmp_path):
    app = make_app(make_config(tmp_path / "config", {**MINI_FILES, "app.yaml": MENU_APP, "roles.yaml": ROLES_YAML}))
    html = page(app)
    assert nav_links(html) == ["", "customer", "contract", "product", "order"]
    assert nav_headings(html) == ["销售", "更多"]
    # a group the user can read nothing of is left out; so is the heading of the rest when it is all there is
    clerk = page(app, user="carl", roles=("clerk",), query_string={"lang": "en"})
    assert nav_links(clerk) == ["", "product", "order"] and nav_headings(clerk) == ["More"]


@pytest.mark.parametrize(("menu", "message", "where"), [
    ("[{entities: [customer, custmer]}]", "unknown entity 'custmer'", (4, 30)),
    ("[{group: A, entities: [order]}, {entities: [product, order]}]", "entity 'order' is already in the menu", (4, 60)),
])
def test_a_menu_naming_an_entity_wrongly_is_a_config_problem_at_its_place(tmp_path, menu, message, where):
    from crmkit.loading import load_config
    from crmkit.metadata.problems import ConfigError

    app_yaml = MINI_FILES["app.yaml"] + f"    menu: {menu}\n"
    config = make_config(tmp_path / "config", {**MINI_FILES, "app.yaml": app_yaml})
    with pytest.raises(ConfigError) as info:
        load_config(config)
    [problem] = info.value.problems
    assert problem.message == message and problem.file.endswith("app.yaml") and (problem.line, problem.column) == where
    if "unknown" in message:
        assert "customer" in problem.hint


def test_the_current_page_is_marked_in_the_menu(app):
    html = page(app, "/app/customer")
    assert '<a href="/app/customer" aria-current="page">' in html
    assert html.count('aria-current="page"') == 1


def test_an_entity_the_user_may_not_read_is_not_found(app):
    token_for(app, "carl", ("clerk",))
    client = app.test_client(user="carl")
    for path in ("/app/customer", "/app/nothing"):
        response = client.get(path, headers=BROWSER)
        assert response.status_code == 404 and "该页面不存在，或您无权查看。" in response.get_data(as_text=True)
    assert client.get("/app/order", headers=BROWSER).status_code == 200


# ---------------------------------------------------------------- home and messages

def test_the_home_page_says_what_will_be_there(app):
    html = page(app)
    assert "<title>首页 · 迷你CRM</title>" in html
    assert "今日到期与已逾期" in html and "我最近的记录" in html and "共享给我的" in html


def test_a_flashed_message_shows_once_on_the_next_page(app):
    @app.get("/app/test-flash")
    def flash_and_go():
        flash("已保存 <b>", "success")
        return redirect("/app/")

    client, _ = log_in(app)
    client.get("/app/test-flash")
    html = client.get("/app/", headers=BROWSER).get_data(as_text=True)
    assert '<p class="message message-success">已保存 &lt;b&gt;</p>' in html
    assert "已保存" not in client.get("/app/", headers=BROWSER).get_data(as_text=True)


def test_the_message_area_carries_the_words_for_failed_requests(app):
    html = page(app, query_string={"lang": "en"})
    assert 'data-request-failed="The request failed. Please try again."' in html
    assert 'role="status" aria-live="polite"' in html
