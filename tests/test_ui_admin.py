"""The admin console (/admin/): admins only, every write through the
services (checked, audited), refusals shown, payloads inert, the CSP kept."""

from __future__ import annotations

import re

import pytest

from conftest import MINI_FILES, SAMPLE_CONFIG, make_config, token_for
from crmkit.errors import NotFound
from crmkit.permissions import SYSTEM

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
PASSWORD = "correct horse battery"
XSS = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'

#: Every page of the console (the data views of the mini config's customer and order).
PAGES = ["/admin/", "/admin/users/", "/admin/users/new/", "/admin/users/details/?id=1", "/admin/users/edit/?id=1",
         "/admin/teams/", "/admin/teams/new/", "/admin/tokens/", "/admin/audit/", "/admin/recycle_bin/",
         "/admin/data/customer/", "/admin/data/customer/new/", "/admin/data/order/"]

ROLES_YAML = """
    roles:
      admin:
        label: {en: Administrator, zh: 管理员}
        entities:
          "*": {read: all, create: true, update: all, delete: all}
          user: {read: all, create: true, update: all}
          team: {read: all, create: true, update: all}
          audit: {read: all}
        fields:
          customer.notes: hidden
          customer.mobile: masked
      clerk:
        label: {en: Clerk, zh: 文员}
        entities:
          customer: {read: all, create: true}
          user: {read: all}
          team: {read: all}
"""


@pytest.fixture
def app(make_app, tmp_path):
    return make_app(make_config(tmp_path / "config", {**MINI_FILES, "roles.yaml": ROLES_YAML}))


def log_in(app, username: str = "root", roles: tuple[str, ...] = ("admin",)):
    """A browser session through the login form; returns (client, csrf token)."""
    token_for(app, username, roles, password=PASSWORD)
    client = app.test_client(user=None)
    response = client.post("/login", data={"username": username, "password": PASSWORD})
    assert response.status_code == 303, response.get_data(as_text=True)
    html = client.get("/admin/", headers=BROWSER).get_data(as_text=True)
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
    return client, csrf.group(1) if csrf else ""


def get(client, path: str, status: int = 200) -> str:
    response = client.get(path, headers=BROWSER)
    assert response.status_code == status, (path, response.status_code, response.get_data(as_text=True)[:800])
    return response.get_data(as_text=True)


def messages(html: str) -> list[str]:
    return re.findall(r'<p class="message message-(\w+)">(.*?)</p>', html, re.S)


def audit(rt, action: str) -> list[dict]:
    import sqlalchemy as sa

    table = rt.tables.audit
    with rt.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(table).where(table.c.action == action)).mappings()]


# ---------------------------------------------------------------- who gets in

def test_a_browser_without_a_session_is_sent_to_the_login_page(app):
    for path in ["/admin/", "/admin/users/", "/admin/data/customer/"]:
        response = app.test_client(user=None).get(path, headers=BROWSER)
        assert response.status_code == 302 and response.location.startswith("/login?next=/admin/")


def test_a_user_without_the_admin_role_gets_403_on_every_console_url(app):
    client, _csrf = log_in(app, "clara", ("clerk",))
    for path in [*PAGES, "/admin", "/admin/nothing-here", "/admin/static/admin/js/helpers.js"]:
        response = client.get(path, headers=BROWSER)
        assert response.status_code == 403, path
    response = client.post("/admin/users/new/", data={"csrf_token": _csrf, "username": "sneaky"})
    assert response.status_code == 403
    with pytest.raises(NotFound):
        app.extensions["crmkit"].directory.user("sneaky")


SAMPLE_ROLES = ["sales_manager", "sales_rep", "service_rep", "marketer", "analyst", "executive", "finance"]


@pytest.fixture
def sample_app(make_app):
    return make_app(SAMPLE_CONFIG)


def test_every_non_admin_role_of_the_sample_config_gets_403(sample_app):
    rt = sample_app.extensions["crmkit"]
    assert set(SAMPLE_ROLES) == set(rt.permissions.roles) - {"admin"}
    paths = ["/admin/", "/admin/users/", "/admin/teams/", "/admin/tokens/", "/admin/audit/", "/admin/recycle_bin/",
             *(f"/admin/data/{name}/" for name in rt.spec.entities)]
    for role in SAMPLE_ROLES:
        token_for(sample_app, f"user_{role}", (role,))
        client = sample_app.test_client(user=f"user_{role}")
        for path in paths:
            assert client.get(path, headers=BROWSER).status_code == 403, (role, path)
    token_for(sample_app, "boss", ("admin",))
    admin = sample_app.test_client(user="boss")
    for path in paths:
        get(admin, path)


def test_an_admin_with_the_assign_right_gives_roles(sample_app):
    rt = sample_app.extensions["crmkit"]
    client, csrf = log_in(sample_app, "boss", ("admin",))
    response = client.post("/admin/users/new/", data={"csrf_token": csrf, "username": "newrep",
                                                      "roles": ["sales_rep", "marketer"]})
    assert response.status_code == 303
    user = rt.directory.user("newrep")
    assert sorted(user["roles"]) == ["marketer", "sales_rep"]
    client.post(f"/admin/users/edit/?id={user['id']}", data={
        "csrf_token": csrf, "display_name": "newrep", "roles": ["sales_manager"], "team_id": "", "superior_id": ""})
    assert list(rt.directory.user("newrep")["roles"]) == ["sales_manager"]
    assert [e for e in audit(rt, "roles_changed") if e["record_id"] == user["id"]]


# ---------------------------------------------------------------- the page itself

def test_every_page_has_the_csp_the_top_bar_and_no_inline_script_or_style(app):
    client, csrf = log_in(app)
    for path in PAGES:
        response = client.get(path, headers=BROWSER)
        assert response.status_code == 200, path
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        html = response.get_data(as_text=True)
        assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == [], path
        assert " style=" not in html and "<style" not in html and not re.search(r"\son[a-z]+=", html), path
        assert "javascript:" not in html
        assert '<header class="topbar">' in html and "/api/v1/docs" in html
        for form in re.findall(r'<form[^>]*method="post".*?</form>', html, re.S):
            assert f'name="csrf_token" value="{csrf}"' in form, (path, form[:200])


def test_the_shell_links_admins_to_the_console_and_nobody_else(app):
    client, _csrf = log_in(app)
    assert 'href="/admin/"' in get(client, "/app/")
    clerk, _csrf = log_in(app, "clara", ("clerk",))
    assert 'href="/admin/"' not in get(clerk, "/app/")


def test_flask_admins_own_routes_are_not_a_way_around_the_pages(app):
    rt = app.extensions["crmkit"]
    client, csrf = log_in(app)
    user = rt.directory.create_user({"username": "victim"}, SYSTEM)
    record = rt.records.create("product", {"name": "Kept"}, SYSTEM)
    for path, target in (("/admin/users/action/", user), ("/admin/data/product/action/", record),
                         ("/admin/users/delete/", user)):
        response = client.post(path, data={"csrf_token": csrf, "action": "delete", "rowid": str(target["id"]),
                                           "id": str(target["id"])})
        assert response.status_code in (404, 405), path
    for path in ("/admin/users/export/csv/", "/admin/users/ajax/lookup/?name=x&query=a",
                 "/admin/static/admin/js/helpers.js"):
        assert client.get(path, headers=BROWSER).status_code == 404, path
    assert rt.directory.user("victim")["active"] is True
    assert "Kept" in get(client, "/admin/data/product/")


def test_a_post_without_the_csrf_token_is_refused(app):
    client, _csrf = log_in(app)
    response = client.post("/admin/teams/new/", data={"name": "north", "label": "North"})
    assert response.status_code == 403
    assert not [t for t in app.extensions["crmkit"].directory.teams() if t["name"] == "north"]


def test_the_console_speaks_the_users_language(app):
    client, _csrf = log_in(app)
    assert "用户" in get(client, "/admin/users/")
    english = get(client, "/admin/users/?lang=en")
    assert "Users" in english and "用户" not in english


# ---------------------------------------------------------------- users

def test_an_admin_creates_a_user_with_roles_team_and_superior_and_it_is_audited(app):
    rt = app.extensions["crmkit"]
    team = rt.directory.create_team({"name": "north", "label": "North"}, SYSTEM)
    client, csrf = log_in(app)
    response = client.post("/admin/users/new/", data={
        "csrf_token": csrf, "username": "wang", "display_name": "Wang Wei", "email": "wang@example.com",
        "password": PASSWORD, "team_id": str(team["id"]), "superior_id": "root"})
    assert response.status_code == 303, response.get_data(as_text=True)
    user = rt.directory.user("wang")
    assert list(user["roles"]) == [] and user["team_id"] == team["id"]
    assert user["superior_id"] == rt.directory.user("root")["id"]
    created = audit(rt, "user_created")
    assert any(e["record_id"] == user["id"] and e["actor"] == "root" for e in created)
    html = get(client, response.location)
    assert "Wang Wei" in html and "用户 wang 已创建" in html
    # The new user can log in with the password the admin set.
    assert app.test_client(user=None).post("/login", data={"username": "wang", "password": PASSWORD}
                                           ).status_code == 303


def test_a_bad_user_form_shows_the_directorys_errors_and_keeps_the_input(app):
    client, csrf = log_in(app)
    html = client.post("/admin/users/new/", data={"csrf_token": csrf, "username": "x", "display_name": "Kept"}
                       ).get_data(as_text=True)
    assert 'aria-invalid="true"' in html and 'value="Kept"' in html
    assert any(kind == "error" for kind, _text in messages(html))


def test_edit_disable_enable_and_reset_password_go_through_the_directory(app):
    rt = app.extensions["crmkit"]
    client, csrf = log_in(app)
    user = rt.directory.create_user({"username": "li", "password": PASSWORD}, SYSTEM)
    response = client.post(f"/admin/users/edit/?id={user['id']}", data={
        "csrf_token": csrf, "display_name": "Li Na", "roles": [], "team_id": "", "superior_id": ""})
    assert response.status_code == 303
    assert rt.directory.user("li")["display_name"] == "Li Na"
    client.post(f"/admin/users/active/?id={user['id']}", data={"csrf_token": csrf, "active": "false"})
    assert rt.directory.user("li")["active"] is False
    assert app.test_client(user=None).post("/login", data={"username": "li", "password": PASSWORD}
                                           ).status_code != 303
    client.post(f"/admin/users/active/?id={user['id']}", data={"csrf_token": csrf, "active": "true"})
    assert rt.directory.user("li")["active"] is True
    client.post(f"/admin/users/password/?id={user['id']}", data={"csrf_token": csrf, "password": "a new secret 1"})
    assert rt.directory.verify(user["id"], "a new secret 1")
    updates = [e for e in audit(rt, "user_updated") if e["record_id"] == user["id"]]
    assert {"display_name", "active", "password"} <= {key for e in updates for key in e["changes"]}


def test_giving_roles_without_the_assign_right_is_refused_and_shown(app):
    """The mini config's admin role may create and update users but not give them roles."""
    rt = app.extensions["crmkit"]
    client, csrf = log_in(app)
    user = rt.directory.create_user({"username": "zhao"}, SYSTEM)
    response = client.post(f"/admin/users/edit/?id={user['id']}", data={
        "csrf_token": csrf, "display_name": "zhao", "roles": ["admin"], "team_id": "", "superior_id": ""})
    assert response.status_code == 200
    shown = messages(response.get_data(as_text=True))
    assert shown and shown[0][0] == "error" and "拒绝" in shown[0][1]
    assert list(rt.directory.user("zhao")["roles"]) == []
    assert any(e["actor"] == "root" for e in audit(rt, "denied"))


def test_user_names_with_markup_render_inert(app):
    rt = app.extensions["crmkit"]
    client, _csrf = log_in(app)
    user = rt.directory.create_user({"username": "evil", "display_name": XSS}, SYSTEM)
    for path in ["/admin/users/", f"/admin/users/details/?id={user['id']}", f"/admin/users/edit/?id={user['id']}",
                 "/admin/audit/"]:
        html = get(client, path)
        assert "<script>alert(1)" not in html and "<img src=x" not in html, path


# ---------------------------------------------------------------- teams and tokens

def test_teams_are_created_and_moved_as_a_tree(app):
    rt = app.extensions["crmkit"]
    client, csrf = log_in(app)
    for name, parent in (("sales", ""), ("east", "sales")):
        parent_id = str(rt.directory.team(parent)["id"]) if parent else ""
        response = client.post("/admin/teams/new/", data={"csrf_token": csrf, "name": name, "label": name.title(),
                                                          "parent_id": parent_id})
        assert response.status_code == 303
    east, sales = rt.directory.team("east"), rt.directory.team("sales")
    assert east["parent_id"] == sales["id"]
    html = get(client, "/admin/teams/")
    assert re.search(r'class="depth-0">\s*<a[^>]*>Sales</a>.*class="depth-1">\s*<a[^>]*>East</a>', html, re.S)
    # A loop is refused by the directory and shown.
    html = client.post(f"/admin/teams/edit/?id={sales['id']}", data={
        "csrf_token": csrf, "label": "Sales", "parent_id": str(east["id"])}).get_data(as_text=True)
    assert messages(html)[0][0] == "error" and rt.directory.team("sales")["parent_id"] is None
    assert [e for e in audit(rt, "team_created")]


def test_tokens_are_listed_and_revoked_through_the_directory(app):
    rt = app.extensions["crmkit"]
    client, csrf = log_in(app)
    user = rt.directory.create_user({"username": "robot"}, SYSTEM)
    token = rt.directory.create_token(user["id"], "ERP sync", SYSTEM)
    html = get(client, "/admin/tokens/")
    assert "ERP sync" in html and token.token not in html and token.token[:8] in html
    response = client.post("/admin/tokens/revoke/", data={
        "csrf_token": csrf, "user_id": str(user["id"]), "token_id": str(token.id), "next": "/admin/tokens/"})
    assert response.status_code == 303 and response.location == "/admin/tokens/"
    assert rt.directory.actor_for_token(token.token) is None
    assert any(e["record_id"] == user["id"] for e in audit(rt, "token_revoked"))
    assert "ERP sync" in get(client, "/admin/tokens/?user=robot")


# ---------------------------------------------------------------- records

def test_records_are_created_edited_and_deleted_through_the_records_service(app):
    rt = app.extensions["crmkit"]
    client, csrf = log_in(app)
    response = client.post("/admin/data/customer/new/", data={
        "csrf_token": csrf, "name": "Acme", "level": "gold", "balance": "12.50", "tags": ["vip", "new"],
        "active": "true", "birthday": "2000-01-31", "last_seen": "2026-01-31T09:30"})
    assert response.status_code == 303, messages(response.get_data(as_text=True))
    record_id = int(response.location.rsplit("=", 1)[1])
    token = token_for(app, "root")
    api = app.test_client(user=None)
    body = api.get(f"/api/v1/customer/{record_id}", headers={"Authorization": f"Bearer {token}"}).get_json()["data"]
    assert body["name"] == "Acme" and body["tags"] == ["vip", "new"] and body["balance"] == "12.50"
    assert body["owner_id"] == rt.directory.user("root")["id"]
    assert get(client, response.location).count("Acme") >= 1
    response = client.post(f"/admin/data/customer/edit/?id={record_id}", data={
        "csrf_token": csrf, "version": "1", "name": "Acme Ltd", "level": "silver", "balance": "", "tags": []})
    assert response.status_code == 303, messages(response.get_data(as_text=True))
    body = api.get(f"/api/v1/customer/{record_id}", headers={"Authorization": f"Bearer {token}"}).get_json()["data"]
    assert body["name"] == "Acme Ltd" and body["version"] == 2 and body.get("balance") is None
    # A stale version is the records service's 409, shown.
    html = client.post(f"/admin/data/customer/edit/?id={record_id}", data={
        "csrf_token": csrf, "version": "1", "name": "Late"}).get_data(as_text=True)
    assert "error" in [kind for kind, _text in messages(html)] and 'value="Late"' in html
    assert {e["action"] for e in audit(rt, "update")} == {"update"}
    client.post(f"/admin/data/customer/delete/?id={record_id}", data={"csrf_token": csrf})
    assert api.get(f"/api/v1/customer/{record_id}", headers={"Authorization": f"Bearer {token}"}).status_code == 404
    assert [e for e in audit(rt, "delete") if e["record_id"] == record_id and e["actor"] == "root"]


def test_a_field_error_shows_next_to_the_field(app):
    client, csrf = log_in(app)
    html = client.post("/admin/data/customer/new/", data={"csrf_token": csrf, "name": "x" * 30, "age": "old"}
                       ).get_data(as_text=True)
    assert 'id="age-error"' in html
    html = client.post("/admin/data/customer/new/", data={"csrf_token": csrf, "name": "x" * 30}).get_data(as_text=True)
    assert 'id="name-error"' in html


def test_hidden_fields_never_reach_the_page_and_masked_ones_are_masked(app):
    rt = app.extensions["crmkit"]
    client, _csrf = log_in(app)
    record = rt.records.create("customer", {"name": "Hu", "notes": "secret-note-42", "mobile": "13812345678"},
                               SYSTEM)
    for path in ["/admin/data/customer/", f"/admin/data/customer/details/?id={record['id']}",
                 f"/admin/data/customer/edit/?id={record['id']}", "/admin/data/customer/new/", "/admin/audit/"]:
        html = get(client, path)
        assert "secret-note-42" not in html and "13812345678" not in html, path
        assert 'name="notes"' not in html
    assert "138****5678" in get(client, f"/admin/data/customer/details/?id={record['id']}")


def test_record_values_with_markup_render_inert(app):
    rt = app.extensions["crmkit"]
    client, _csrf = log_in(app)
    record = rt.records.create("customer", {"name": XSS[:20], "email": "a@b.cn", "notes": XSS}, SYSTEM)
    rt.records.create("order", {"customer": record["id"], "ordered_at": "2026-01-01T00:00:00Z"}, SYSTEM)
    for path in ["/admin/data/customer/", f"/admin/data/customer/details/?id={record['id']}",
                 f"/admin/data/customer/edit/?id={record['id']}", "/admin/data/order/", "/admin/audit/"]:
        html = get(client, path)
        assert "<script>alert" not in html, path


def test_lists_page_by_cursor_sort_search_and_filter(app):
    rt = app.extensions["crmkit"]
    client, _csrf = log_in(app)
    rt.records.create_many("customer", [{"name": f"c{n:03}", "level": "gold" if n % 2 else "bronze"}
                                        for n in range(60)], SYSTEM)
    html = get(client, "/admin/data/customer/?sort=name")
    assert "c000" in html and "c059" not in html
    following = re.search(r'<a href="([^"]+)" rel="next">', html).group(1).replace("&amp;", "&")
    assert "c059" in get(client, following)
    found = get(client, "/admin/data/customer/?q=c001")
    assert "c001" in found and "c002" not in found
    gold = get(client, "/admin/data/customer/?level=gold&sort=name")
    assert "c001" in gold and "c000" not in gold
    response = client.get("/admin/data/customer/?filter_field=level&filter_value=gold", headers=BROWSER)
    assert response.status_code == 303 and "level=gold" in response.location
    bad = get(client, "/admin/data/customer/?nonsense=1")
    assert messages(bad)[0][0] == "error"


# ---------------------------------------------------------------- recycle bin and audit

def test_the_recycle_bin_restores_and_purges_through_the_records_service(app):
    rt = app.extensions["crmkit"]
    client, csrf = log_in(app)
    keep = rt.records.create("product", {"name": "Keep me"}, SYSTEM)
    gone = rt.records.create("product", {"name": "Purge me"}, SYSTEM)
    for record in (keep, gone):
        rt.records.delete("product", record["id"], SYSTEM)
    html = get(client, "/admin/recycle_bin/?entity=product")
    assert "Keep me" in html and "Purge me" in html
    client.post("/admin/recycle_bin/restore/", data={"csrf_token": csrf, "entity": "product", "id": str(keep["id"])})
    client.post("/admin/recycle_bin/purge/", data={"csrf_token": csrf, "entity": "product", "id": str(gone["id"])})
    with rt.engine.connect() as conn:
        assert rt.queries.fetch(conn, rt.spec.entities["product"], keep["id"], actor=SYSTEM) is not None
        assert rt.queries.fetch(conn, rt.spec.entities["product"], gone["id"], actor=SYSTEM, deleted=True) is None
    assert [e for e in audit(rt, "purge") if e["record_id"] == gone["id"] and e["actor"] == "root"]
    assert [e for e in audit(rt, "restore") if e["record_id"] == keep["id"]]
    html = get(client, "/admin/recycle_bin/?entity=product")
    assert "Keep me" not in html and "Purge me" not in html


def test_the_audit_trail_filters_by_user_entity_action_and_date(app):
    rt = app.extensions["crmkit"]
    client, _csrf = log_in(app)
    rt.records.create("product", {"name": "Widget"}, SYSTEM)
    rt.records.create("customer", {"name": "Zed"}, SYSTEM)
    html = get(client, "/admin/audit/?entity=product&action=create")
    assert "Widget" in html and "Zed" not in html
    assert "Widget" not in get(client, "/admin/audit/?actor=root&entity=product")
    assert "Widget" in get(client, "/admin/audit/?actor=system&entity=product")
    assert "Widget" not in get(client, "/admin/audit/?entity=product&from=2000-01-01&to=2000-01-02")
    assert "Widget" in get(client, "/admin/audit/?entity=product&from=2000-01-01")


def test_a_reference_shows_the_title_of_the_record_it_names(app):
    rt = app.extensions["crmkit"]
    client, _csrf = log_in(app)
    customer = rt.records.create("customer", {"name": "Acme"}, SYSTEM)
    order = rt.records.create("order", {"customer": customer["id"], "ordered_at": "2026-01-01T00:00:00Z"}, SYSTEM)
    listed = get(client, "/admin/data/order/")
    assert f'<a href="/admin/data/customer/details/?id={customer["id"]}">Acme (#{customer["id"]})</a>' in listed
    assert f"当前：Acme (#{customer['id']})" in get(client, f"/admin/data/order/edit/?id={order['id']}")


def test_markup_in_a_record_renders_inert_on_every_console_page(app):
    rt = app.extensions["crmkit"]
    client, _csrf = log_in(app)
    product = rt.records.create("product", {"name": XSS, "sku": "x1"}, SYSTEM)
    binned = rt.records.create("product", {"name": XSS, "sku": "x2"}, SYSTEM)
    rt.records.delete("product", binned["id"], SYSTEM)
    for path in ["/admin/data/product/", f"/admin/data/product/details/?id={product['id']}",
                 f"/admin/data/product/edit/?id={product['id']}", "/admin/audit/?entity=product",
                 "/admin/recycle_bin/?entity=product"]:
        html = get(client, path)
        assert "<script>alert(1)" not in html and "<img src=x" not in html, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html or "\\u003cscript" in html or "&#34;" in html, path
