"""Tags on the screens (issue 9 section 3, issue 8): chips on the list's rows
and the record page, the list's tag filter (tag=, tag__nin=) and segments'
tabs, manual tags put on and taken off from the record page under the update
permission (rule tags never), tag changes on the timeline, and a tag whose
rule reads a field hidden from a role never reaching that role's HTML."""

from __future__ import annotations

import re
from html import unescape

import pytest

from conftest import as_test_app, make_config, token_for
from crmkit.app import create_app
from crmkit.settings import Settings
from crmkit.ui.tags import colour_class

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
HTMX = {**BROWSER, "HX-Request": "true"}
PASSWORD = "correct horse battery"
#: The label of the tag whose rule reads credit_score, hidden from the rep.
TRUSTED = "可信客户TRUST"
TRUSTED_EN = "Trusted payer TRUST"
XSS_LABEL = "<script>alert('tag')</script>"
XSS_USE = '"><img src=x onerror=alert(1)>'

FILES = {
    "app.yaml": """
        app: shop
        timezone: Asia/Shanghai
    """,
    "entities/customer.yaml": """
        entity: customer
        label: {en: Customer, zh: 客户}
        plural: {en: Customers, zh: 客户}
        title: name
        owned: true
        fields:
          name: {type: string, required: true}
          level: {type: enum, options: [a, b, c], default: b, index: true}
          credit_score: {type: integer}
        relations:
          orders: {kind: one_to_many, entity: order, field: customer}
        list: {columns: [name, level], sort: "name", search: [name]}
    """,
    "entities/order.yaml": """
        entity: order
        label: {en: Order, zh: 订单}
        owned: true
        fields:
          customer: {type: ref, to: customer, required: true}
          total: {type: money, min: 0}
          status: {type: enum, options: [paid, refunded], default: paid}
          ordered_at: {type: datetime, required: true}
    """,
    "tags.yaml": f"""
        tags:
          loyal:
            entity: customer
            label: {{en: Loyal, zh: 忠实客户}}
            color: gold
            group: {{en: Purchases, zh: 消费}}
            rule: "count(orders where status = 'paid' and total >= 100) >= 2"
            use: Two paid orders of 100 or more; thanked with a coupon.
          trusted:
            entity: customer
            label: {{en: "{TRUSTED_EN}", zh: "{TRUSTED}"}}
            color: blue
            group: {{en: Value, zh: 价值}}
            rule: "credit_score > 700"
            use: Good credit; may pay on account.
          vegetarian:
            entity: customer
            label: {{en: "Diet: vegetarian", zh: 素食}}
            color: green
            group: {{en: Preferences, zh: 偏好}}
            use: Set by hand after a conversation.
          odd:
            entity: customer
            label: {{en: Odd colour, zh: 怪色}}
            color: "#ff00ff"
            use: A colour outside the set.
          xss:
            entity: customer
            label: {{en: "{XSS_LABEL}", zh: "{XSS_LABEL}"}}
            color: red
            use: '{XSS_USE}'
    """,
    "views.yaml": """
        views:
          good_credit:
            entity: customer
            label: {en: Good credit, zh: 信用好}
            where: "credit_score > 700"
          level_a:
            entity: customer
            label: {en: Level A, zh: A级客户}
            where: "level = 'a'"
    """,
    "roles.yaml": """
        roles:
          manager:
            entities:
              customer: {read: all, create: true, update: all}
              order: {read: all, create: true, update: all}
          rep:
            entities:
              customer: {read: all, create: true, update: own}
              order: {read: own, create: true}
            fields:
              customer.credit_score: hidden
          viewer:
            entities:
              customer: {read: all}
              order: {read: all}
    """,
}


class World:
    def __init__(self, app) -> None:
        self.app = app
        for user, role, name in (("mgr", "manager", "Wang"), ("rep", "rep", "Li"), ("viewer", "viewer", "Zhao")):
            token_for(app, user, (role,), display_name=name, password=PASSWORD)
        admin = app.test_client()
        self.trusted = created(admin, "customer", name="Alice 信用", credit_score=800, level="a")
        self.plain = created(admin, "customer", name="Bob 普通", credit_score=500)
        self.reps = created(app.test_client(user="rep"), "customer", name="Carol 销售的")
        assert admin.post(f"/api/v1/customer/{self.plain}/tags/vegetarian").status_code == 200


def created(client, entity: str, **data) -> int:
    response = client.post(f"/api/v1/{entity}", json=data)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()["data"]["id"]


@pytest.fixture(scope="module")
def world(module_database_url, tmp_path_factory):
    root = tmp_path_factory.mktemp("tagui")
    config = make_config(root / "config", FILES)
    app = as_test_app(create_app(config, Settings(database_url=module_database_url, instance_dir=root / "instance")))
    yield World(app)
    app.extensions["crmkit"].engine.dispose()


def get(app, user: str, path: str, *, htmx: bool = False, status: int = 200) -> str:
    response = app.test_client(user=user).get(path, headers=HTMX if htmx else BROWSER)
    assert response.status_code == status, (user, path, response.status_code, response.get_data(as_text=True)[:800])
    return response.get_data(as_text=True)


def tags_of(app, record_id: int) -> list[str]:
    return app.test_client().get(f"/api/v1/customer/{record_id}").get_json()["data"]["tags"]


def row_of(html: str, record_id: int) -> str:
    match = re.search(rf'<tr><td[^>]*>(?:(?!</tr>).)*?id="r{record_id}".*?</tr>', html, re.S)
    assert match, html[:2000]
    return match.group(0)


def log_in(app, username: str):
    client = app.test_client(user=None)
    response = client.post("/login", data={"username": username, "password": PASSWORD})
    assert response.status_code == 303, response.get_data(as_text=True)
    html = client.get("/app/", headers=BROWSER).get_data(as_text=True)
    return client, re.search(r'<meta name="csrf-token" content="([^"]+)">', html).group(1)


# ---------------------------------------------------------------- colours

def test_tag_colours_become_a_fixed_set_of_classes():
    assert colour_class("red") == "tag-red" and colour_class("Grey") == "tag-gray"
    assert colour_class("yellow") == "tag-gold"
    assert colour_class("#ff00ff") == "tag-plain" and colour_class(None) == "tag-plain"
    assert colour_class('red" onmouseover="x') == "tag-plain"


# ---------------------------------------------------------------- the list

def test_the_list_shows_each_records_tags_as_coloured_chips(world):
    html = get(world.app, "mgr", "/app/customer")
    trusted = row_of(html, world.trusted)
    assert f'<span class="chip tag tag-blue" title="Good credit; may pay on account.">{TRUSTED}</span>' in trusted
    plain = row_of(html, world.plain)
    assert '<span class="chip tag tag-green" title="Set by hand after a conversation.">素食</span>' in plain
    assert TRUSTED not in plain
    assert " style=" not in html


def test_the_lists_tags_are_read_in_one_query_for_the_page(world):
    import sqlalchemy as sa

    rt = world.app.extensions["crmkit"]
    statements: list[str] = []

    def seen(conn, cursor, statement, *args):
        statements.append(statement)

    sa.event.listen(rt.engine, "before_cursor_execute", seen)
    try:
        get(world.app, "mgr", "/app/customer")
    finally:
        sa.event.remove(rt.engine, "before_cursor_execute", seen)
    assert sum("crmkit_record_tags" in s for s in statements) == 1, statements


def test_the_tag_filter_offers_the_visible_tags_by_group(world):
    html = get(world.app, "mgr", "/app/customer")
    panel = html[html.index('class="tag-filter"'):]
    panel = panel[:panel.index("</form>")]
    assert "<legend>消费</legend>" in panel and "<legend>偏好</legend>" in panel
    assert 'name="tag" value="vegetarian"' in panel and 'name="tag__nin" value="vegetarian"' in panel
    assert 'name="tag" value="trusted"' in panel


def test_filter_by_tag_and_by_tag_nin(world):
    html = get(world.app, "mgr", "/app/customer?tag=vegetarian")
    assert f'id="r{world.plain}"' in html and f'id="r{world.trusted}"' not in html
    assert 'name="tag" value="vegetarian" checked' in html
    chips = html[html.index('class="filter-chips"'):]
    chips = chips[:chips.index("</ul>")]
    assert "标签：素食" in chips and 'href="/app/customer"' in chips  # removing it shows the whole list
    html = get(world.app, "mgr", "/app/customer?tag__nin=vegetarian")
    assert f'id="r{world.plain}"' not in html and f'id="r{world.trusted}"' in html
    assert 'name="tag__nin" value="vegetarian" checked' in html
    assert "不含标签：素食" in html
    html = get(world.app, "mgr", "/app/customer?tag__nin=vegetarian&tag=trusted&lang=en")
    assert f'id="r{world.trusted}"' in html and f'id="r{world.reps}"' not in html
    assert f"Tagged {TRUSTED_EN}" in html and "Not tagged Diet: vegetarian" in html


def test_the_htmx_fragment_of_a_tag_filter(world):
    response = world.app.test_client(user="mgr").get("/app/customer?tag=vegetarian",
                                                     headers={**HTMX, "HX-Target": "list-results"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and f'id="r{world.plain}"' in html and "<html" not in html


def test_a_rule_tag_reading_a_hidden_field_never_reaches_the_roles_html(world):
    for path in ("/app/customer", "/app/customer?lang=en", f"/app/customer/{world.trusted}",
                 f"/app/customer/{world.trusted}?lang=en", f"/app/customer/{world.trusted}/timeline",
                 f"/app/customer/{world.reps}"):
        html = get(world.app, "rep", path)
        assert TRUSTED not in html and TRUSTED_EN not in html and 'value="trusted"' not in html, path
        assert "信用好" not in html and "Good credit" not in html  # the view reading credit_score: no tab
    html = get(world.app, "rep", "/app/customer?tag=trusted", status=400)
    assert TRUSTED not in html and f'id="r{world.trusted}"' not in html
    refused = get(world.app, "rep", "/app/customer?view=good_credit", status=403)  # not theirs: refused
    assert "good_credit" in refused and 'id="r' not in refused and TRUSTED not in refused
    # The manager sees it.
    assert TRUSTED in get(world.app, "mgr", f"/app/customer/{world.trusted}")


def test_segments_are_tabs_and_their_where_applies(world):
    html = get(world.app, "mgr", "/app/customer")
    assert 'href="/app/customer?view=good_credit"' in html and 'href="/app/customer?view=level_a"' in html
    html = get(world.app, "mgr", "/app/customer?view=good_credit")
    assert f'id="r{world.trusted}"' in html and f'id="r{world.plain}"' not in html
    assert re.search(r'href="/app/customer\?view=good_credit" aria-current="page"', html)
    html = get(world.app, "rep", "/app/customer?view=level_a")
    assert f'id="r{world.trusted}"' in html and f'id="r{world.plain}"' not in html
    html = get(world.app, "mgr", "/app/customer?view=level_a&tag=vegetarian")
    assert f'id="r{world.trusted}"' not in html and f'id="r{world.plain}"' not in html


# ---------------------------------------------------------------- the record page

def section(html: str) -> str:
    start = html.index('<section class="record-tags"')
    return html[start:html.index("</section>", start)]


def test_the_record_page_shows_chips_and_marks_rule_tags(world):
    html = section(get(world.app, "mgr", f"/app/customer/{world.trusted}"))
    assert f'<span class="chip tag tag-blue" title="Good credit; may pay on account.">{TRUSTED} ' in html
    assert "tag-by-rule" in html and "/tags/trusted/remove" not in html  # a rule tag: no remove button
    assert f'action="/app/customer/{world.trusted}/tags"' in html
    assert '<option value="vegetarian">素食</option>' in html
    assert '<option value="trusted">' not in html and '<option value="loyal">' not in html  # rule tags
    assert "<optgroup label=\"偏好\">" in html
    english = section(get(world.app, "mgr", f"/app/customer/{world.plain}?lang=en"))
    assert "Diet: vegetarian" in english and "by rule" not in english
    assert f"/app/customer/{world.plain}/tags/vegetarian/remove" in english


def test_a_role_without_update_has_no_add_or_remove(world):
    for user, record in (("viewer", world.plain), ("rep", world.plain), ("viewer", world.trusted)):
        html = get(world.app, user, f"/app/customer/{record}")
        tags = section(html) if 'class="record-tags"' in html else ""
        assert "<form" not in tags and "/tags" not in tags, (user, tags)
    assert "素食" in section(get(world.app, "viewer", f"/app/customer/{world.plain}"))
    # Posting anyway changes nothing.
    client = world.app.test_client(user="viewer")
    response = client.post(f"/app/customer/{world.plain}/tags/vegetarian/remove", headers=BROWSER)
    assert response.status_code == 303
    assert "vegetarian" in tags_of(world.app, world.plain)
    response = client.post(f"/app/customer/{world.trusted}/tags", data={"tag": "vegetarian"}, headers=BROWSER)
    assert response.status_code == 303 and "vegetarian" not in tags_of(world.app, world.trusted)
    # The rep may update their own customer: the form shows.
    html = section(get(world.app, "rep", f"/app/customer/{world.reps}"))
    assert '<option value="vegetarian">' in html


def test_add_and_remove_a_manual_tag_and_the_timeline_says_so(world):
    client = world.app.test_client(user="mgr")
    base = f"/app/customer/{world.reps}"
    response = client.post(base + "/tags", data={"tag": "vegetarian"}, headers=BROWSER)
    assert response.status_code == 303 and response.location == base + "#record-tags"
    assert tags_of(world.app, world.reps) == ["vegetarian"]
    response = client.post(base + "/tags/vegetarian/remove", headers=HTMX)
    assert response.status_code == 200
    fragment = response.get_data(as_text=True)
    assert fragment.startswith('<section class="record-tags" id="record-tags"') and "<html" not in fragment
    assert '<option value="vegetarian">' in fragment and "tag-chips" not in fragment
    assert tags_of(world.app, world.reps) == []
    timeline = get(world.app, "mgr", base + "/timeline?lang=en")
    assert "Diet: vegetarian added by mgr" in timeline and "Diet: vegetarian removed by mgr" in timeline
    timeline = get(world.app, "rep", base + "/timeline")
    assert "mgr 添加了标签「素食」" in timeline and "mgr 移除了标签「素食」" in timeline


def test_a_rule_tag_cannot_be_removed_by_hand_and_its_changes_read_as_by_rule(world):
    client = world.app.test_client(user="mgr")
    base = f"/app/customer/{world.trusted}"
    response = client.post(base + "/tags/trusted/remove", headers=HTMX)
    assert response.status_code == 200
    assert "由规则设置" in response.get_data(as_text=True)
    assert "trusted" in tags_of(world.app, world.trusted)
    response = client.post(base + "/tags", data={"tag": "loyal"}, headers=BROWSER)
    assert response.status_code == 303 and "loyal" not in tags_of(world.app, world.trusted)
    timeline = get(world.app, "mgr", base + "/timeline?lang=en")
    assert f"{TRUSTED_EN} added by rule" in timeline
    other = created(world.app.test_client(), "customer", name="Dora", credit_score=900)
    assert world.app.test_client().patch(f"/api/v1/customer/{other}", json={"credit_score": 100},
                                         headers={"If-Match": "*"}).status_code == 200
    timeline = get(world.app, "mgr", f"/app/customer/{other}/timeline")
    assert f"规则移除了标签「{TRUSTED}」" in timeline and f"规则添加了标签「{TRUSTED}」" in timeline
    assert TRUSTED not in get(world.app, "rep", f"/app/customer/{other}/timeline")


def test_an_unknown_tag_is_a_message_not_a_500(world):
    client = world.app.test_client(user="mgr")
    response = client.post(f"/app/customer/{world.plain}/tags", data={"tag": "nothing"}, headers=HTMX)
    assert response.status_code == 200 and "没有这个标签" in response.get_data(as_text=True)
    response = client.post(f"/app/customer/{world.plain}/tags", data={}, headers=BROWSER)
    assert response.status_code == 303
    assert client.post("/app/customer/999999/tags", data={"tag": "vegetarian"}, headers=BROWSER).status_code in (
        303, 404)
    assert client.post(f"/app/nothing/{world.plain}/tags", data={"tag": "x"}).status_code == 404


def test_a_label_with_markup_is_inert(world):
    client = world.app.test_client(user="mgr")
    response = client.post(f"/app/customer/{world.plain}/tags", data={"tag": "xss"}, headers=BROWSER)
    assert response.status_code == 303 and "xss" in tags_of(world.app, world.plain)
    pages = [get(world.app, "mgr", f"/app/customer/{world.plain}"), get(world.app, "mgr", "/app/customer"),
             get(world.app, "mgr", f"/app/customer/{world.plain}/timeline"),
             get(world.app, "mgr", "/app/customer?tag=xss"),
             get(world.app, "viewer", f"/app/customer/{world.plain}")]
    for html in pages:
        assert XSS_LABEL not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(" in html
    assert XSS_LABEL in unescape(pages[0])
    assert client.post(f"/app/customer/{world.plain}/tags/xss/remove", headers=BROWSER).status_code == 303


def test_an_unknown_colour_is_the_plain_chip(world):
    client = world.app.test_client(user="mgr")
    assert client.post(f"/app/customer/{world.trusted}/tags", data={"tag": "odd"}).status_code == 303
    html = section(get(world.app, "mgr", f"/app/customer/{world.trusted}"))
    assert '<span class="chip tag tag-plain" title="A colour outside the set.">怪色</span>' in html
    assert "#ff00ff" not in get(world.app, "mgr", "/app/customer")
    assert client.post(f"/app/customer/{world.trusted}/tags/odd/remove").status_code == 303


def test_the_tag_forms_need_the_csrf_token(world):
    browser, csrf = log_in(world.app, "mgr")
    base = f"/app/customer/{world.trusted}"
    html = section(browser.get(base, headers=BROWSER).get_data(as_text=True))
    forms = re.findall(r"<form method=\"post\".*?</form>", html, re.S)
    assert forms
    for form in forms:
        assert f'<input type="hidden" name="csrf_token" value="{csrf}">' in form
    assert browser.post(base + "/tags", data={"tag": "vegetarian"}).status_code == 403
    assert "vegetarian" not in tags_of(world.app, world.trusted)
    response = browser.post(base + "/tags", data={"tag": "vegetarian", "csrf_token": csrf})
    assert response.status_code == 303 and "vegetarian" in tags_of(world.app, world.trusted)
    assert browser.post(base + "/tags/vegetarian/remove").status_code == 403
    assert browser.post(base + "/tags/vegetarian/remove", data={"csrf_token": csrf}).status_code == 303
    assert "vegetarian" not in tags_of(world.app, world.trusted)
