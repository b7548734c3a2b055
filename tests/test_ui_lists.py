"""The list screen (/app/<entity>): every role of the sample config sees its
scope and nothing hidden, masked values masked, buttons only for its actions;
search, filters, sort, pages, columns, views, bulk actions, export, the
global search; payloads stored through the API render inert."""

from __future__ import annotations

import html as html_module
import io
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from conftest import SAMPLE_CONFIG, as_test_app, token_for
from crmkit.app import create_app
from crmkit.permissions import SYSTEM
from crmkit.settings import Settings
from test_ui_shell import BROWSER, log_in

ROLES = ("admin", "sales_manager", "sales_rep", "service_rep", "marketer", "analyst", "executive", "finance")
MOBILES = {"alpha": "13811110001", "beta": "13822220002", "gamma": "13833330003"}
SECRET_NOTE = "note-only-sales-may-read"
PRODUCT_COST = "4321.98"
XSS = ('<script>alert("x")</script>', '"><img src=x onerror=alert(1)>')


@pytest.fixture(scope="module")
def app(module_database_url, tmp_path_factory):
    """The sample CRM with a sales team (two reps and their manager), someone
    at head office, a user of every other role, and customers of each rep."""
    root = tmp_path_factory.mktemp("lists")
    app = as_test_app(create_app(SAMPLE_CONFIG, Settings(database_url=module_database_url,
                                                         instance_dir=root / "instance")))
    rt = app.extensions["crmkit"]
    hq = rt.directory.create_team({"name": "hq"}, SYSTEM)["id"]
    sales = rt.directory.create_team({"name": "sales", "parent_id": hq}, SYSTEM)["id"]
    users = {"rep_a": ("sales_rep", sales), "rep_b": ("sales_rep", sales), "manager": ("sales_manager", sales),
             "boss": ("admin", hq)}
    users.update({role: (role, hq) for role in ROLES if role not in ("sales_rep", "sales_manager")})
    ids = {}
    for name, (role, team) in users.items():
        token_for(app, name, (role,), team_id=team, display_name=f"{name} 的名字")
        ids[name] = rt.directory.user(name)["id"]
    customers = {"alpha": "rep_a", "beta": "rep_b", "gamma": "boss"}
    for name, owner in customers.items():
        customer = rt.records.create("customer", {"name": f"{name}客户", "mobile": MOBILES[name], "level": "a",
                                                  "notes": SECRET_NOTE, "owner_id": ids[owner]}, SYSTEM)
        # total_spent is the sum of the paid orders (a formula, kept current by the rules)
        rt.records.create("order", {"customer": customer["id"], "status": "paid", "channel": "store",
                                    "paid_amount": "1280.00"}, SYSTEM)
    rt.records.create("product", {"name": "保温杯", "price": "99.00", "cost": PRODUCT_COST}, SYSTEM)
    app.extensions["test_user_ids"] = ids
    yield app
    rt.engine.dispose()


def page(app, path: str, user: str = "admin", status: int = 200, headers: dict | None = None) -> str:
    response = app.test_client(user=user).get(path, headers={**BROWSER, **(headers or {})})
    assert response.status_code == status, (path, response.status_code, response.get_data(as_text=True)[:800])
    assert response.mimetype == "text/html"
    return response.get_data(as_text=True)


def table(html: str) -> str:
    found = re.search(r'<table class="list-table">.*?</table>', html, re.S)
    return found.group(0) if found else ""


def headers_of(html: str) -> list[str]:
    return [h.strip() for h in re.findall(r'<th scope="col"[^>]*>(?:<a [^>]*>)?([^<]+)', table(html))]


def first_cells(html: str) -> list[str]:
    """The first column of each row (the links to the records)."""
    links = re.findall(r'<td><a id="r\d+" href="/app/[a-z_]+/\d+">(.*?)</a>', table(html))
    return [html_module.unescape(text) for text in links]


def bulk_buttons(html: str) -> set[str]:
    return set(re.findall(r'<button type="submit" name="action" value="([a-z_]+)"', html))


# ---------------------------------------------------------------- scopes and fields, per role

SEES = {"admin": {"alpha", "beta", "gamma"}, "sales_manager": {"alpha", "beta"}, "sales_rep": {"alpha"},
        "service_rep": {"alpha", "beta", "gamma"}, "marketer": {"alpha", "beta", "gamma"},
        "analyst": {"alpha", "beta", "gamma"}, "executive": {"alpha", "beta", "gamma"},
        "finance": {"alpha", "beta", "gamma"}}
USER_OF = {"sales_rep": "rep_a", "sales_manager": "manager"}


@pytest.mark.parametrize("role", ROLES)
def test_every_role_sees_exactly_its_scope_of_customers(app, role):
    html = page(app, "/app/customer?sort=name", USER_OF.get(role, role))
    assert set(first_cells(html)) == {f"{name}客户" for name in SEES[role]}
    for name in {"alpha", "beta", "gamma"} - SEES[role]:
        assert f"{name}客户" not in html and MOBILES[name] not in html


@pytest.mark.parametrize("role", ["marketer", "analyst"])
def test_masked_mobiles_are_masked_and_never_shown_whole(app, role):
    html = page(app, "/app/customer?sort=name", role)
    assert '<td class="masked">138****0001</td>' in table(html)
    assert not any(mobile in html for mobile in MOBILES.values())


def test_a_masked_column_cannot_be_sorted_or_filtered(app):
    html = page(app, "/app/customer", "marketer")
    assert 'sort=mobile' not in html and 'sort=-mobile' not in html
    error = page(app, "/app/customer?mobile=13811110001", "marketer", status=400)
    assert "masked" in error and "13811110001" not in table(error)


def test_service_rep_sees_total_spent_masked(app):
    html = page(app, "/app/customer", "service_rep")
    assert '<td class="masked">***</td>' in table(html) and "1,280.00" not in table(html)
    assert "¥1,280.00" in table(page(app, "/app/customer", "admin"))


def test_a_hidden_field_never_reaches_the_html_even_when_asked_for(app):
    html = page(app, "/app/customer?fields=name,notes", "finance")
    assert SECRET_NOTE not in html
    assert 'value="notes"' not in html  # not even among the columns to choose
    assert SECRET_NOTE in page(app, "/app/customer?fields=name,notes", "admin")
    product = page(app, "/app/product?fields=name,cost,price", "rep_a")
    assert PRODUCT_COST not in product and "4,321.98" not in product and "保温杯" in product


@pytest.mark.parametrize(("role", "buttons"), [
    ("admin", {"assign", "delete", "export_csv", "export_xlsx"}),
    ("sales_manager", {"assign", "delete", "export_csv", "export_xlsx"}),
    ("sales_rep", set()),
    ("service_rep", set()),
    ("marketer", {"export_csv", "export_xlsx"}),
    ("analyst", {"export_csv", "export_xlsx"}),
    ("executive", set()),
    ("finance", set()),
])
def test_bulk_buttons_only_for_the_actions_of_the_role(app, role, buttons):
    html = page(app, "/app/customer", USER_OF.get(role, role))
    assert bulk_buttons(html) == buttons
    assert ('name="id"' in html) == bool(buttons)
    exports = 'href="/api/v1/customer/_export' in html
    assert exports == ("export_csv" in buttons)
    assert ('href="/app/customer/new"' in html) == (role in ("admin", "sales_manager", "sales_rep"))


def test_workflow_moves_are_offered_to_those_who_may_move(app):
    rt = app.extensions["crmkit"]
    ids = app.extensions["test_user_ids"]
    customer = rt.records.create("customer", {"name": "商机客户", "level": "c", "owner_id": ids["rep_a"]}, SYSTEM)
    rt.records.create("opportunity", {"name": "大单", "customer": customer["id"], "owner_id": ids["rep_a"]}, SYSTEM)
    assert "transition" in bulk_buttons(page(app, "/app/opportunity", "rep_a"))
    assert "transition" not in bulk_buttons(page(app, "/app/opportunity", "executive"))
    assert 'value="analyse_needs">进入需求分析</option>' in page(app, "/app/opportunity", "rep_a")


def test_no_list_for_an_entity_the_role_cannot_read(app):
    page(app, "/app/payment", "service_rep", status=404)
    page(app, "/app/nothing_like_it", "admin", status=404)


# ---------------------------------------------------------------- columns and values

def test_columns_are_the_configured_ones_with_labels_and_formatted_values(app):
    html = page(app, "/app/customer?sort=name")
    headers = headers_of(html)
    assert headers[:3] == ["客户名称", "手机", "客户级别"]
    assert "<td>A 重点</td>" in table(html)  # the option's label
    assert '<td class="number">¥1,280.00</td>' in table(html)
    english = page(app, "/app/customer?sort=name&lang=en")
    assert "<td>A key</td>" in table(english) and "¥1,280.00" in english and ">Mobile" in english
    assert "CN¥" not in english


def test_the_first_column_links_to_the_record(app):
    html = page(app, "/app/customer?name=alpha客户")
    rid = first_id(app)
    assert f'<td><a id="r{rid}" href="/app/customer/{rid}">alpha客户</a></td>' in html
    assert f'<input type="checkbox" name="id" value="{rid}" aria-labelledby="r{rid}">' in html


def test_chosen_columns_in_their_order_and_owners_by_name(app):
    html = page(app, "/app/customer?fields=owner_id,name&sort=name")
    headers = headers_of(html)
    assert headers == ["负责人", "客户名称"]
    assert "rep_a 的名字" in table(html)


def test_references_show_their_records_titles_where_the_reader_may_read_them(app):
    rt = app.extensions["crmkit"]
    ids = app.extensions["test_user_ids"]
    beta = rt.records.create("customer", {"name": "引用客户", "level": "c", "owner_id": ids["rep_b"]}, SYSTEM)
    rt.records.create("opportunity", {"name": "引用商机", "customer": beta["id"], "owner_id": ids["rep_a"]}, SYSTEM)
    assert "<td>引用客户</td>" in table(page(app, "/app/opportunity?fields=name,customer&name=引用商机", "admin"))
    rep = table(page(app, "/app/opportunity?fields=name,customer&name=引用商机", "rep_a"))
    assert "引用商机" in rep and "引用客户" not in rep and f"<td>#{beta['id']}</td>" in rep  # not theirs to read


# ---------------------------------------------------------------- search, filters, sort, pages

def test_search_filters_the_list_and_the_htmx_request_gets_only_the_results(app):
    html = page(app, "/app/customer?q=beta")
    assert first_cells(html) == ["beta客户"]
    fragment = page(app, "/app/customer?q=beta", headers={"HX-Request": "true", "HX-Target": "list-results"})
    assert "<html" not in fragment and first_cells(fragment) == ["beta客户"]
    assert '<div id="list-state" hx-swap-oob="true">' in fragment
    search_box = re.search(r'<form class="list-search".*?</form>', html, re.S).group(0)
    assert 'hx-push-url="true"' in search_box and "delay:300ms" in search_box


def test_filters_by_choice_and_range_and_chips_that_remove_them(app):
    html = page(app, "/app/customer?level=a&total_spent__gte=1000&sort=name")
    assert len(first_cells(html)) == 3
    chips = re.findall(r'<li>(.*?) <a href="([^"]+)"', html)
    assert ("客户级别 = A 重点", "/app/customer?total_spent__gte=1000&amp;sort=name") in chips
    assert first_cells(page(app, "/app/customer?level=b")) == []
    assert "没有符合条件的客户" in page(app, "/app/customer?name=nobody")


def test_empty_filter_values_are_ignored(app):
    assert len(first_cells(page(app, "/app/customer?level=a&q=&total_spent__gte=&name__contains="))) == 3


def test_mine_my_team_all_within_the_scope(app):
    ids = app.extensions["test_user_ids"]
    html = page(app, "/app/customer", "manager")
    links = dict(re.findall(r'<a href="([^"]+)"[^>]*>(我的|本部门|全部)</a>', html.split('class="owner-links"')[1]))
    assert set(links.values()) == {"我的", "本部门", "全部"}
    rep_html = page(app, "/app/customer", "rep_a")
    # Own scope and the customer pool (公海): theirs, the pool's, or both.
    owner_links = rep_html.split('class="owner-links"')[1]
    links = dict(re.findall(r'<a href="([^"]+)"[^>]*>(我的|本部门|全部|公海)</a>', owner_links))
    assert set(links.values()) == {"我的", "全部", "公海"}
    assert 'class="owner-links"' not in page(app, "/app/opportunity", "rep_a")  # own scope: nothing to choose
    mine = page(app, f"/app/customer?owner_id={ids['rep_a']}&level=a", "admin")
    assert first_cells(mine) == ["alpha客户"]


def test_sort_by_clicking_a_header(app):
    html = page(app, "/app/customer?sort=name&level=a")
    assert first_cells(html) == ["alpha客户", "beta客户", "gamma客户"]
    header = re.search(r'<th scope="col" aria-sort="ascending"><a href="([^"]+)"', html)
    assert header and "sort=-name" in header.group(1)
    descending = page(app, html_module.unescape(header.group(1)))
    assert first_cells(descending) == ["gamma客户", "beta客户", "alpha客户"]
    assert 'aria-sort="descending"' in descending


def test_keyset_pages_and_a_count_only_when_asked(app):
    html = page(app, "/app/customer?sort=name&limit=2&level=a")
    assert first_cells(html) == ["alpha客户", "beta客户"]
    assert "条记录" not in html  # no count unless asked
    next_link = re.search(r'<a rel="next" href="([^"]+)"', html).group(1)
    second = page(app, html_module.unescape(next_link))
    assert first_cells(second) == ["gamma客户"] and 'rel="next"' not in second and "第一页" in second
    counted = page(app, "/app/customer?sort=name&limit=2&level=a&count=true")
    assert "3 条记录" in counted


def test_a_bad_url_says_what_is_wrong_without_a_traceback(app):
    html = page(app, "/app/customer?nosuchfield=1", status=400)
    assert "nosuchfield" in html and "Traceback" not in html
    assert "cursor" in page(app, "/app/customer?cursor=garbage", status=400)


def test_views_of_views_yaml_are_tabs_and_apply_their_filters_sort_and_columns(app):
    html = page(app, "/app/customer")
    assert '<a href="/app/customer?view=key_customers">重点客户</a>' in html
    view = page(app, "/app/customer?view=key_customers")
    assert 'aria-current="page">重点客户</a>' in view
    headers = headers_of(view)
    assert headers[:2] == ["客户名称", "手机"] and len(first_cells(view)) == 3
    missing = page(app, "/app/customer?view=customers_missing_mobile")
    assert not {"alpha客户", "beta客户", "gamma客户"} & set(first_cells(missing))  # each has a mobile
    assert headers_of(missing) == ["客户名称", "电话", "邮箱", "省市区", "创建时间"]


# ---------------------------------------------------------------- per-user views

def test_a_user_saves_a_view_and_only_they_see_it(app):
    client, csrf = log_in(app, "viewer", ("analyst",))
    response = client.post("/app/customer/views", data={
        "csrf_token": csrf, "name": "我的 A 类", "query": "/app/customer?level=a&sort=name&cursor=x"})
    assert response.status_code == 303 and response.location == "/app/customer?level=a&sort=name"
    html = client.get("/app/customer?level=a&sort=name", headers=BROWSER).get_data(as_text=True)
    assert 'aria-current="page">我的 A 类</a>' in html
    assert "我的 A 类" not in page(app, "/app/customer", "analyst")
    view_id = re.search(r'action="/app/customer/views/(\d+)/delete"', html).group(1)
    other, other_csrf = log_in(app, "viewer2", ("analyst",))
    assert other.post(f"/app/customer/views/{view_id}/delete", data={"csrf_token": other_csrf}).status_code == 404
    assert client.post(f"/app/customer/views/{view_id}/delete", data={"csrf_token": csrf}).status_code == 303
    assert "我的 A 类" not in client.get("/app/customer", headers=BROWSER).get_data(as_text=True)


def test_saving_a_view_needs_the_csrf_token(app):
    client, _ = log_in(app, "viewer", ("analyst",))
    assert client.post("/app/customer/views", data={"name": "x", "query": ""}).status_code == 403


# ---------------------------------------------------------------- bulk actions

def test_bulk_assign_and_delete_through_the_records_service_with_a_message_per_record(app):
    rt = app.extensions["crmkit"]
    ids = app.extensions["test_user_ids"]
    made = [rt.records.create("customer", {"name": f"批量{n}", "level": "c", "owner_id": ids["rep_a"]}, SYSTEM)["id"]
            for n in range(2)]
    outside = rt.records.create("customer", {"name": "总部的", "level": "c", "owner_id": ids["boss"]}, SYSTEM)["id"]
    client, csrf = log_in(app, "manager2", ("sales_manager",))
    rt.directory.update_user(rt.directory.user("manager2")["id"],
                             {"team_id": rt.directory.team("sales")["id"]}, SYSTEM)
    response = client.post("/app/customer/bulk", data={
        "csrf_token": csrf, "action": "assign", "owner_id": str(ids["rep_b"]), "id": [*map(str, made), str(outside)],
        "next": "/app/customer?sort=name"})
    assert response.status_code == 303 and response.location == "/app/customer?sort=name"
    html = client.get("/app/customer", headers=BROWSER).get_data(as_text=True)
    assert "2 条已完成" in html and f"#{outside}" in html  # outside the manager's scope: refused, said so
    with rt.engine.connect() as conn:
        owners = {rt.queries.fetch(conn, rt.spec.entities["customer"], i, actor=SYSTEM)["owner_id"] for i in made}
    assert owners == {ids["rep_b"]}
    response = client.post("/app/customer/bulk", data={"csrf_token": csrf, "action": "delete", "id": made})
    assert response.status_code == 303
    assert "批量0" not in page(app, "/app/customer", "admin")


def test_bulk_export_of_the_selection_goes_to_the_export_with_the_ids(app):
    client, csrf = log_in(app, "exporter", ("analyst",))
    response = client.post("/app/customer/bulk", data={"csrf_token": csrf, "action": "export_xlsx", "id": ["1", "2"],
                                                       "fields": "name,level"})
    target = urlsplit(response.location)
    assert response.status_code == 303 and target.path == "/api/v1/customer/_export"
    assert parse_qs(target.query) == {"id__in": ["1,2"], "fields": ["name,level"], "format": ["xlsx"], "lang": ["zh"]}


def test_bulk_action_the_role_lacks_is_refused_per_record(app):
    rt = app.extensions["crmkit"]
    client, csrf = log_in(app, "exec2", ("executive",))
    alpha = first_id(app)
    client.post("/app/customer/bulk", data={"csrf_token": csrf, "action": "delete", "id": [str(alpha)]})
    html = client.get("/app/customer", headers=BROWSER).get_data(as_text=True)
    assert f"#{alpha}" in html
    with rt.engine.connect() as conn:
        assert rt.queries.fetch(conn, rt.spec.entities["customer"], alpha, actor=SYSTEM) is not None


def first_id(app) -> int:
    rt = app.extensions["crmkit"]
    entity = rt.spec.entities["customer"]
    request = rt.queries.parse_list(entity, [("name", "alpha客户")], rt.permissions.of(SYSTEM))
    with rt.engine.connect() as conn:
        return rt.queries.page(conn, entity, request, actor=SYSTEM).mappings()[0]["id"]


# ---------------------------------------------------------------- export from the screen

def test_the_export_links_carry_exactly_the_lists_filter_and_columns(app):
    import openpyxl

    html = page(app, "/app/customer?view=key_customers&q=客户&sort=name", "analyst")
    link = html_module.unescape(re.search(r'<a href="(/api/v1/customer/_export[^"]+format=xlsx[^"]*)"', html).group(1))
    query = parse_qs(urlsplit(link).query)
    # The view's filter rides as the view (the query builder applies it, once), with the list's own arguments.
    assert query["view"] == ["key_customers"] and query["q"] == ["客户"] and query["sort"] == ["name"]
    assert "level" not in query
    response = app.test_client(user="analyst").get(link)
    assert response.status_code == 200
    book = openpyxl.load_workbook(io.BytesIO(response.get_data()))
    rows = [[c.value for c in row] for row in book.active.iter_rows()]
    book.close()
    assert rows[0][2:5] == ["客户名称", "手机", "会员等级"]
    assert [r[2] for r in rows[1:]] == ["alpha客户", "beta客户", "gamma客户"]
    assert rows[1][3] == "138****0001"  # masked in the file as on the screen


# ---------------------------------------------------------------- inert payloads

@pytest.mark.parametrize("payload", XSS)
def test_payloads_stored_through_the_api_render_inert(app, payload):
    client = app.test_client()
    created = client.post("/api/v1/customer", json={"name": payload[:100], "level": "c", "company": payload,
                                                    "wechat_id": payload[:64]})
    assert created.status_code == 201, created.get_json()
    record_id = created.get_json()["data"]["id"]
    for path in (f"/app/customer?id={record_id}&fields=name,company,wechat_id", "/app/search?q=" + payload[:20],
                 f"/app/customer?q={payload[:30]}"):
        html = page(app, path)
        assert "<script>alert" not in html and "<img src=x" not in html and "onerror=alert(1)>" not in html


# ---------------------------------------------------------------- global search

def test_global_search_groups_hits_by_entity_within_the_scope(app):
    html = page(app, "/app/search?q=客户", "rep_a")
    assert "alpha客户" in html and "beta客户" not in html
    assert re.search(r'<a href="/app/customer/\d+">alpha客户</a>', html)
    admin = page(app, "/app/search?q=保温", "admin")
    assert re.search(r'<h2 id="hits-product">产品</h2>', admin)


def test_global_search_shows_masked_values_masked(app):
    html = page(app, "/app/search?q=alpha", "analyst")
    assert "alpha客户" in html and MOBILES["alpha"] not in html
    assert "alpha客户" not in page(app, "/app/search?q=13811110001", "analyst")  # masked: not searched


def test_global_search_without_query_or_hits_says_what_to_do(app):
    assert "Ctrl K" in page(app, "/app/search")
    assert "没有找到" in page(app, "/app/search?q=zzzz-nothing")


# ---------------------------------------------------------------- empty states

def test_an_empty_list_says_what_to_do_next(app):
    html = page(app, "/app/campaign", "marketer")
    assert "还没有市场活动" in html and 'href="/app/campaign/new"' in html
    assert 'href="/app/campaign/new"' not in page(app, "/app/campaign", "executive")


def test_a_bad_search_in_the_htmx_fragment_shows_its_message_inline(app):
    fragment = page(app, "/app/customer?nosuchfield=1", headers={"HX-Request": "true", "HX-Target": "list-results"})
    assert 'role="alert"' in fragment and "nosuchfield" in fragment


def test_bulk_actions_take_a_page_of_records_at_a_time(app):
    client, csrf = log_in(app, "bulky", ("admin",))
    many = [str(n) for n in range(1, 203)]
    response = client.post("/app/customer/bulk", data={"csrf_token": csrf, "action": "delete", "id": many})
    assert response.status_code == 303
    assert "每次最多处理 200 条记录" in client.get("/app/customer", headers=BROWSER).get_data(as_text=True)


def test_bulk_actions_need_the_csrf_token(app):
    client, _ = log_in(app, "bulky", ("admin",))
    assert client.post("/app/customer/bulk", data={"action": "delete", "id": ["1"]}).status_code == 403
