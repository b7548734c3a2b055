"""The record page (/app/<entity>/<id>) over the sample config's roles: a
record outside the reader's scope does not exist for them, hidden fields never
reach the HTML (page, related lists, timeline), masked ones are masked, and
only the actions the role may take on this record show; workflow moves,
sharing, the timeline and the quick-add of a follow-up work through the
records service; stored script payloads render inert."""

from __future__ import annotations

import datetime as dt
import re
from html import unescape

import pytest
import sqlalchemy as sa

from conftest import MINI_FILES, SAMPLE_CONFIG, as_test_app, make_config, token_for
from crmkit.app import create_app
from crmkit.permissions import SYSTEM
from crmkit.settings import Settings

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
HTMX = {**BROWSER, "HX-Request": "true"}
PASSWORD = "correct horse battery"
ROLES = ("admin", "sales_manager", "sales_rep", "service_rep", "marketer", "analyst", "executive", "finance")
SECRET_NOTE = "SECRET-NOTE-7731"
SECRET_FOLLOW_UP = "SECRET-FOLLOW-UP-5519"
SECRET_COST = "98765.43"
MOBILE = "13812345678"


# ---------------------------------------------------------------- the world

class World:
    """The sample app with a user per role (sales people in one team, service
    in another) and records of the rep: a customer, an opportunity, a follow-up."""

    def __init__(self, app) -> None:
        self.app = app
        rt = app.extensions["crmkit"]
        sales = rt.directory.create_team({"name": "sales"}, SYSTEM)["id"]
        service = rt.directory.create_team({"name": "service"}, SYSTEM)["id"]
        for role in ROLES:
            team = service if role == "service_rep" else sales
            token_for(app, role, (role,), team_id=team, password=PASSWORD)
        token_for(app, "rep2", ("sales_rep",), team_id=service, password=PASSWORD)
        token_for(app, "service2", ("service_rep",), team_id=sales, password=PASSWORD)
        rep = app.test_client(user="sales_rep")
        self.customer = created(rep, "customer", name="王小明", mobile=MOBILE, email="wang@example.com",
                                notes=SECRET_NOTE, wechat_id="wxm_01")
        self.opportunity = created(rep, "opportunity", name="年度采购", customer=self.customer)
        self.follow_up = created(rep, "activity", customer=self.customer, subject="首次电话",
                                 content=SECRET_FOLLOW_UP, method="call")
        self.ticket = created(rep, "ticket", subject="退货咨询", customer=self.customer)
        admin = app.test_client()
        category = created(admin, "product_category", name="咖啡")
        self.category = category
        created(admin, "product", name="挂耳咖啡", category=category, price="59.00", cost=SECRET_COST,
                unit="box")
        self.stranger = created(app.test_client(user="rep2"), "customer", name="别人的客户")


def created(client, entity: str, **data) -> int:
    response = client.post(f"/api/v1/{entity}", json=data)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()["data"]["id"]


@pytest.fixture(scope="module")
def world(module_database_url, tmp_path_factory):
    root = tmp_path_factory.mktemp("record")
    app = as_test_app(create_app(SAMPLE_CONFIG, Settings(database_url=module_database_url,
                                                         instance_dir=root / "instance")))
    yield World(app)
    app.extensions["crmkit"].engine.dispose()


def get(app, user: str, path: str, *, htmx: bool = False, status: int = 200) -> str:
    response = app.test_client(user=user).get(path, headers=HTMX if htmx else BROWSER)
    assert response.status_code == status, (user, path, response.status_code, response.get_data(as_text=True)[:800])
    assert response.mimetype == "text/html"
    return response.get_data(as_text=True)


def crawl(app, user: str, path: str) -> str:
    """The page and every fragment it loads (related lists, timeline), with their 'more' pages."""
    html = get(app, user, path)
    seen, pages = {path}, [html]
    queue = re.findall(r'hx-get="([^"]+)"', html)
    while queue:
        url = unescape(queue.pop())
        if url in seen or "/transitions/" in url:
            continue
        seen.add(url)
        fragment = get(app, user, url, htmx=True)
        pages.append(fragment)
        queue.extend(re.findall(r'hx-get="([^"]+)"', fragment))
    return "\n".join(pages)


def text_of(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", html))


# ---------------------------------------------------------------- scope

READS_REPS_CUSTOMER = {"admin": True, "sales_manager": True, "sales_rep": True, "service_rep": True,
                       "marketer": True, "analyst": True, "executive": True, "finance": True, "rep2": False}


@pytest.mark.parametrize("user", list(READS_REPS_CUSTOMER))
def test_the_record_page_shows_only_records_within_the_readers_scope(world, user):
    path = f"/app/customer/{world.customer}"
    if READS_REPS_CUSTOMER[user]:
        assert "王小明" in get(world.app, user, path)
    else:
        html = get(world.app, user, path, status=404)
        assert "王小明" not in html and "不存在" in html
        for part in ("/timeline", "/related/activities", "/transitions/x"):
            get(world.app, user, path + part, htmx=True, status=404)


def test_a_stranger_record_is_404_for_the_rep_and_an_unknown_entity_too(world):
    get(world.app, "sales_rep", f"/app/customer/{world.stranger}", status=404)
    get(world.app, "sales_rep", "/app/nothing/1", status=404)
    get(world.app, "sales_rep", "/app/customer/99999", status=404)
    get(world.app, "service_rep", f"/app/opportunity/{world.opportunity}", status=404)  # read own only


# ---------------------------------------------------------------- field rules

@pytest.mark.parametrize("role", ROLES)
def test_hidden_fields_never_reach_the_html_and_masked_ones_are_masked(world, role):
    app = world.app
    customer = crawl(app, role, f"/app/customer/{world.customer}")
    ea = app.extensions["crmkit"].permissions.access([role]).entity("customer")
    activity = app.extensions["crmkit"].permissions.access([role]).entity("activity")
    if "notes" not in ea.visible:
        assert SECRET_NOTE not in customer
    if "content" not in activity.visible:
        assert SECRET_FOLLOW_UP not in customer
    masked = dict(ea.masked)
    if "mobile" in masked:
        assert MOBILE not in customer and "138****5678" in customer
        assert "wang@example.com" not in customer
    else:
        assert MOBILE in customer
    products = crawl(app, role, f"/app/product_category/{world.category}")
    product_access = app.extensions["crmkit"].permissions.access([role]).entity("product")
    if "cost" not in product_access.visible:
        assert SECRET_COST not in products and "98,765.43" not in products


def test_finance_sees_the_customer_but_not_the_sales_notes_anywhere(world):
    html = crawl(world.app, "finance", f"/app/customer/{world.customer}")
    assert "王小明" in html and "首次电话" in html  # the follow-up is on the timeline, without its content
    assert SECRET_NOTE not in html and SECRET_FOLLOW_UP not in html


def test_a_hidden_fields_changes_never_show_on_the_timeline(world):
    rep = world.app.test_client(user="sales_rep")
    customer = created(rep, "customer", name="改备注的客户", notes="old-secret-1")
    response = rep.patch(f"/api/v1/customer/{customer}", json={"notes": "new-secret-2", "wechat_id": "wx_new"},
                         headers={"If-Match": "*"})
    assert response.status_code == 200, response.get_data(as_text=True)
    timeline = get(world.app, "finance", f"/app/customer/{customer}/timeline", htmx=True)
    assert "wx_new" in timeline  # the other change shows
    assert "secret" not in timeline
    assert "new-secret-2" in get(world.app, "sales_rep", f"/app/customer/{customer}/timeline", htmx=True)


def test_a_masked_fields_changes_show_masked_on_the_timeline(world):
    rep = world.app.test_client(user="sales_rep")
    customer = created(rep, "customer", name="换手机的客户", mobile="13900001111")
    rep.patch(f"/api/v1/customer/{customer}", json={"mobile": "13900002222"}, headers={"If-Match": "*"})
    timeline = get(world.app, "marketer", f"/app/customer/{customer}/timeline", htmx=True)
    assert "13900001111" not in timeline and "13900002222" not in timeline
    assert "139****1111" in timeline and "139****2222" in timeline


def test_service_sees_the_customers_money_masked(world):
    html = get(world.app, "service_rep", f"/app/customer/{world.customer}")
    section = html[html.index("累计消费"):]
    assert re.match(r"累计消费( <small class=\"help\">[^<]*</small>)?</dt>\s*"
                    r"<dd class=\"type-money\"><span class=\"masked\">\*\*\*</span>", section)


# ---------------------------------------------------------------- buttons

#: On the rep's customer: (edit, delete, share) per role.
CUSTOMER_ACTIONS = {
    "admin": (True, True, True), "sales_manager": (True, True, True), "sales_rep": (True, False, True),
    "service_rep": (True, False, True), "marketer": (False, False, False), "analyst": (False, False, False),
    "executive": (False, False, False), "finance": (False, False, False),
}


@pytest.mark.parametrize("role", ROLES)
def test_only_the_actions_the_role_may_take_on_the_record_show(world, role):
    edit, delete, share = CUSTOMER_ACTIONS[role]
    base = f"/app/customer/{world.customer}"
    html = get(world.app, role, base)
    assert (f'href="{base}/edit"' in html) is edit
    assert (f'action="{base}/delete"' in html) is delete
    assert (f'href="{base}/share"' in html) is share
    if share:
        assert f'action="{base}/collaborators"' in get(world.app, role, f"{base}/share", htmx=True)
    else:
        get(world.app, role, f"{base}/share", htmx=True, status=403)
    assert 'id="collaborators"' in html  # who it is shared with: anyone who reads it sees that


@pytest.mark.parametrize("role", ROLES)
def test_workflow_buttons_only_for_roles_that_move_records(world, role):
    html = get(world.app, role, f"/app/opportunity/{world.opportunity}",
               status=404 if role == "service_rep" else 200)
    if role == "service_rep":
        return
    moves = role in ("admin", "sales_manager", "sales_rep")
    assert ("/transitions/analyse_needs" in html) is moves
    assert ('class="record-moves"' in html) is moves


def test_a_move_outside_the_transition_scope_shows_disabled_with_the_reason(world):
    # The rep's ticket is read by every service rep; only the rep's team... is not service: no move.
    html = get(world.app, "service_rep", f"/app/ticket/{world.ticket}")
    buttons = re.findall(r"<button type=\"button\" class=\"secondary outline\" disabled[^>]*>([^<]+)</button>", html)
    assert "开始处理" in buttons
    assert "your role does not allow you to move this record" in html
    assert "/transitions/start\"" not in html.replace('aria-describedby="move-start-why"', "")


def test_a_condition_blocked_move_shows_disabled_with_its_condition(world):
    rep = world.app.test_client(user="sales_rep")
    opportunity = created(rep, "opportunity", name="零元商机", customer=world.customer)
    for name, body in (("analyse_needs", {}), ("propose", {"amount": "0"}),
                       ("negotiate", {"expected_close_date": "2026-12-31"})):
        response = rep.post(f"/api/v1/opportunity/{opportunity}/transitions/{name}", json=body)
        assert response.status_code == 200, response.get_data(as_text=True)
    html = get(world.app, "sales_rep", f"/app/opportunity/{opportunity}")
    assert re.search(r'disabled aria-describedby="move-win-why">赢单</button>\s*<small class="move-reason" '
                     r'id="move-win-why">&#39;win&#39; needs: amount &gt; 0</small>', html)
    assert f'action="/app/opportunity/{opportunity}/transitions/revise_proposal"' in html


# ---------------------------------------------------------------- moves

def test_a_move_is_a_post_through_the_records_service(world):
    rep = world.app.test_client(user="sales_rep")
    opportunity = created(rep, "opportunity", name="推进的商机", customer=world.customer)
    base = f"/app/opportunity/{opportunity}"
    response = rep.post(base + "/transitions/analyse_needs", data={"version": "1"}, headers=BROWSER)
    assert response.status_code == 303 and response.location == base
    assert rep.get(f"/api/v1/opportunity/{opportunity}").get_json()["data"]["stage"] == "needs_analysis"
    html = get(world.app, "sales_rep", base)
    assert "需求分析" in html and "/transitions/propose" in html
    timeline = get(world.app, "sales_rep", base + "/timeline", htmx=True)
    assert "entry-moved" in timeline and "验证客户" in timeline and "需求分析" in timeline


def test_a_move_with_required_fields_asks_for_them_in_a_dialog(world):
    rep = world.app.test_client(user="sales_rep")
    opportunity = created(rep, "opportunity", name="丢单的商机", customer=world.customer)
    base = f"/app/opportunity/{opportunity}"
    page = get(world.app, "sales_rep", base)
    assert f'hx-get="{base}/transitions/lose" hx-target="#record-dialog"' in page
    dialog = get(world.app, "sales_rep", base + "/transitions/lose", htmx=True)
    assert dialog.startswith("<dialog open") and '<label for="move-lost_reason">' in dialog
    assert 'name="lost_reason" required' in dialog
    # Without the field: asked again, with the reason; nothing changed.
    response = rep.post(base + "/transitions/lose", data={"lost_reason": ""}, headers=HTMX)
    assert response.status_code == 200 and "lost_reason" in response.get_data(as_text=True)
    assert 'class="field-error"' in response.get_data(as_text=True)
    assert rep.get(f"/api/v1/opportunity/{opportunity}").get_json()["data"]["stage"] == "qualification"
    response = rep.post(base + "/transitions/lose", data={"lost_reason": "price"}, headers=HTMX)
    # A whole-page load (a 303 would be followed by the request and the page swapped into the dialog).
    assert response.status_code == 204 and response.headers["HX-Redirect"] == base
    data = rep.get(f"/api/v1/opportunity/{opportunity}").get_json()["data"]
    assert (data["stage"], data["lost_reason"]) == ("lost", "price")
    # Without JavaScript: the dialog is a page; a bad value gets 422 with the form again.
    assert "<dialog open" in get(world.app, "sales_rep", f"/app/opportunity/{world.opportunity}/transitions/lose")
    response = rep.post(f"/app/opportunity/{world.opportunity}/transitions/lose", data={"lost_reason": "bogus"},
                        headers=BROWSER)
    assert response.status_code == 422 and "<dialog open" in response.get_data(as_text=True)
    assert 'aria-invalid="true"' in response.get_data(as_text=True)


def test_a_refused_move_says_why_and_changes_nothing(world):
    analyst = world.app.test_client(user="analyst")
    response = analyst.post(f"/app/opportunity/{world.opportunity}/transitions/analyse_needs", headers=BROWSER)
    assert response.status_code == 303
    page = analyst.get(response.location, headers=BROWSER).get_data(as_text=True)
    assert "message-error" in page
    rep = world.app.test_client(user="sales_rep")
    assert rep.get(f"/api/v1/opportunity/{world.opportunity}").get_json()["data"]["stage"] == "qualification"


# ---------------------------------------------------------------- delete

def test_delete_goes_to_the_recycle_bin_and_back_to_the_list(world):
    manager = world.app.test_client(user="sales_manager")
    rep = world.app.test_client(user="sales_rep")
    customer = created(rep, "customer", name="要删除的客户")
    response = manager.post(f"/app/customer/{customer}/delete", data={"version": "1"}, headers=BROWSER)
    assert response.status_code == 303 and response.location == "/app/customer"
    get(world.app, "sales_manager", f"/app/customer/{customer}", status=404)
    assert rep.get(f"/api/v1/customer/{customer}").status_code == 404
    # A role without delete: refused, nothing deleted.
    other = created(rep, "customer", name="不能删的客户")
    response = rep.post(f"/app/customer/{other}/delete", headers=BROWSER)
    assert response.status_code == 303 and response.location == f"/app/customer/{other}"
    assert rep.get(f"/api/v1/customer/{other}").status_code == 200


# ---------------------------------------------------------------- sharing

def log_in(app, username: str):
    client = app.test_client(user=None)
    response = client.post("/login", data={"username": username, "password": PASSWORD})
    assert response.status_code == 303, response.get_data(as_text=True)
    html = client.get("/app/", headers=BROWSER).get_data(as_text=True)
    return client, re.search(r'<meta name="csrf-token" content="([^"]+)">', html).group(1)


def test_share_and_unshare_with_a_user_picker_and_the_csrf_token(world):
    rep = world.app.test_client(user="sales_rep")
    customer = created(rep, "customer", name="共享的客户")
    base = f"/app/customer/{customer}"
    get(world.app, "rep2", base, status=404)
    browser, csrf = log_in(world.app, "sales_rep")
    page = browser.get(base + "/share", headers=BROWSER).get_data(as_text=True)
    rep2 = world.app.extensions["crmkit"].directory.user("rep2")["id"]
    me = world.app.extensions["crmkit"].directory.user("sales_rep")["id"]
    assert f'<option value="{rep2}">rep2</option>' in page
    assert f'<option value="{me}">' not in page  # the owner has it already
    form = page[page.index('<form method="post" action="/app/customer'):]
    assert f'name="csrf_token" value="{csrf}"' in form[:form.index("</form>")]
    assert browser.post(base + "/collaborators", data={"user_id": rep2, "access": "read"}).status_code == 403
    response = browser.post(base + "/collaborators", data={"user_id": rep2, "access": "read", "csrf_token": csrf})
    assert response.status_code == 303 and response.location == base + "#collaborators"
    page = browser.get(base, headers=BROWSER).get_data(as_text=True)
    assert re.search(r'<span class="who">rep2</span>\s*<span class="access">只读</span>', page)
    shared = get(world.app, "rep2", base)  # a collaborator reads it, and may not share it on
    assert "共享的客户" in shared and f'href="{base}/share"' not in shared
    assert f'action="{base}/edit"' not in shared and f'href="{base}/edit"' not in shared
    timeline = get(world.app, "sales_rep", base + "/timeline", htmx=True)
    assert "entry-shared" in timeline and "rep2" in timeline
    response = browser.post(f"{base}/collaborators/{rep2}/remove", data={"csrf_token": csrf})
    assert response.status_code == 303
    get(world.app, "rep2", base, status=404)
    assert "entry-unshared" in get(world.app, "sales_rep", base + "/timeline", htmx=True)


def test_every_form_of_the_page_carries_the_sessions_csrf_token(world):
    rep = world.app.test_client(user="sales_rep")
    opportunity = created(rep, "opportunity", name="表单商机", customer=world.customer)
    browser, csrf = log_in(world.app, "sales_manager")
    page = browser.get(f"/app/opportunity/{opportunity}", headers=BROWSER).get_data(as_text=True)
    forms = re.findall(r'<form method="post".*?</form>', page, re.S)
    assert len(forms) >= 4  # delete, two moves, the quick-add
    for form in forms:
        assert f'<input type="hidden" name="csrf_token" value="{csrf}">' in form, form
    response = browser.post(f"/app/opportunity/{opportunity}/delete", data={"version": "1"})
    assert response.status_code == 403
    response = browser.post(f"/app/opportunity/{opportunity}/delete", data={"version": "1", "csrf_token": csrf})
    assert response.status_code == 303


def test_write_access_lets_the_collaborator_edit(world):
    rep = world.app.test_client(user="sales_rep")
    customer = created(rep, "customer", name="可写共享的客户")
    rep2 = world.app.extensions["crmkit"].directory.user("rep2")["id"]
    response = rep.post(f"/app/customer/{customer}/collaborators", data={"user_id": rep2, "access": "write"})
    assert response.status_code == 303
    html = get(world.app, "rep2", f"/app/customer/{customer}")
    assert f'href="/app/customer/{customer}/edit"' in html and "读写" in html


def test_a_record_shared_with_a_role_that_reads_none_of_its_kind_shows(world):
    rep = world.app.test_client(user="sales_rep")
    contract = created(rep, "contract", name="共享合同", customer=world.customer, amount="1000.00")
    get(world.app, "marketer", f"/app/contract/{contract}", status=404)  # marketers read no contracts
    marketer = world.app.extensions["crmkit"].directory.user("marketer")["id"]
    assert rep.post(f"/app/contract/{contract}/collaborators", data={"user_id": marketer}).status_code == 303
    html = get(world.app, "marketer", f"/app/contract/{contract}")
    # Their roles give them no field of contracts: the API's GET shows only id and version too.
    assert f"合同 #{contract}</h1>" in html and "共享合同" not in html


def test_a_reader_who_may_not_share_is_refused(world):
    response = world.app.test_client(user="analyst").post(
        f"/app/customer/{world.customer}/collaborators", data={"user_id": "1", "access": "read"}, headers=BROWSER)
    assert response.status_code == 303
    assert world.app.test_client().get(f"/api/v1/customer/{world.customer}/collaborators").get_json()["data"] == []


# ---------------------------------------------------------------- related lists

def test_related_lists_are_lazy_paged_and_offer_add_prefilled(world):
    rep = world.app.test_client(user="sales_rep")
    customer = created(rep, "customer", name="多联系人的客户")
    for n in range(13):
        created(rep, "contact", name=f"联系人{n:02d}", customer=customer)
    base = f"/app/customer/{customer}"
    page = get(world.app, "sales_rep", base)
    assert f'hx-get="{base}/related/contacts" hx-trigger="revealed"' in page
    assert f'href="/app/contact/new?customer={customer}"' in page
    assert f'href="/app/order/new?customer={customer}"' not in page  # a rep creates no orders
    first = get(world.app, "sales_rep", f"{base}/related/contacts", htmx=True)
    names = re.findall(r"联系人\d\d", first)
    assert len(names) == 10
    more = unescape(re.search(r'hx-get="([^"]+cursor=[^"]+)"', first).group(1))
    rest = get(world.app, "sales_rep", more, htmx=True)
    assert rest.lstrip().startswith("<tr>") and len(re.findall(r"联系人\d\d", rest)) == 3
    assert set(names) | set(re.findall(r"联系人\d\d", rest)) == {f"联系人{n:02d}" for n in range(13)}
    assert "cursor=" not in rest
    whole = get(world.app, "sales_rep", f"{base}/related/contacts")  # without JavaScript: a page
    assert "<!doctype html>" in whole and "联系人" in whole


def test_related_lists_of_entities_the_role_cannot_read_are_left_out(world):
    page = get(world.app, "service_rep", f"/app/customer/{world.customer}")
    assert "/related/tickets" in page and "/related/opportunities" in page  # own opportunities only
    assert "/related/contracts" in page
    page = get(world.app, "marketer", f"/app/customer/{world.customer}")
    assert "/related/tickets" not in page and "/related/contracts" not in page


# ---------------------------------------------------------------- timeline

def test_the_timeline_is_newest_first_and_paged(world):
    rep = world.app.test_client(user="sales_rep")
    customer = created(rep, "customer", name="时间线客户")
    start = dt.datetime(2026, 1, 1, 9, 0)
    for n in range(15):
        created(rep, "activity", customer=customer, subject=f"跟进{n:02d}", content="内容",
                occurred_at=(start + dt.timedelta(days=n)).isoformat() + "+08:00")
    for n in range(4):
        response = rep.patch(f"/api/v1/customer/{customer}", json={"wechat_id": f"wx{n}"}, headers={"If-Match": "*"})
        assert response.status_code == 200
    url, moments, subjects, pages = f"/app/customer/{customer}/timeline", [], [], 0
    while url:
        html = get(world.app, "sales_rep", url, htmx=True)
        pages += 1
        moments += [dt.datetime.fromisoformat(m) for m in re.findall(r'<time datetime="([^"]+)"', html)]
        subjects += re.findall(r"跟进\d\d", html)
        found = re.search(r'<li class="timeline-more">\s*<a href="([^"]+)"', html)
        url = unescape(found.group(1)) if found else None
    assert pages == 2  # 15 follow-ups + 4 changes + the creation, 10 a page
    assert len(moments) == 20 and moments == sorted(moments, reverse=True)
    assert subjects == [f"跟进{n:02d}" for n in range(14, -1, -1)]
    whole = get(world.app, "sales_rep", f"/app/customer/{customer}/timeline")
    assert "<!doctype html>" in whole and 'class="timeline-more"' in whole


def test_a_malformed_timeline_cursor_is_a_clear_400(world):
    html = get(world.app, "sales_rep", f"/app/customer/{world.customer}/timeline?cursor=!!", htmx=True, status=400)
    assert "首次电话" not in html


def test_quick_add_of_a_follow_up_lands_on_the_timeline(world):
    rep = world.app.test_client(user="sales_rep")
    customer = created(rep, "customer", name="快速跟进的客户")
    base = f"/app/customer/{customer}"
    page = get(world.app, "sales_rep", base)
    assert f'hx-post="{base}/activities"' in page and '<label for="quick-content">' in page
    assert '<option value="call" selected>' in page  # the config's default
    response = rep.post(base + "/activities", data={"method": "visit", "content": "上门拜访了", "subject": "拜访"},
                        headers=HTMX)
    assert response.status_code == 200 and response.headers["HX-Trigger"] == "crmkit:timeline-changed"
    added = rep.get(f"/api/v1/customer/{customer}/activities").get_json()["data"]
    assert [(a["subject"], a["method"], a["customer"], a["content"]) for a in added] == [
        ("拜访", "visit", customer, "上门拜访了")]
    timeline = get(world.app, "sales_rep", base + "/timeline", htmx=True)
    assert timeline.index("拜访") < timeline.index("entry-created")
    # A missing required field: the form again with the reason, what was typed kept.
    response = rep.post(base + "/activities", data={"subject": "没写内容"}, headers=HTMX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and 'class="field-error"' in html and 'value="没写内容"' in html
    response = rep.post(base + "/activities", data={"subject": "没写内容"}, headers=BROWSER)
    assert response.status_code == 422
    response = rep.post(base + "/activities", data={"content": "无脚本"}, headers=BROWSER)
    assert response.status_code == 303 and response.location == base + "#timeline"


@pytest.mark.parametrize("role", ["analyst", "executive", "finance"])
def test_roles_that_create_no_follow_ups_get_no_quick_add(world, role):
    base = f"/app/customer/{world.customer}"
    assert "quick-add" not in get(world.app, role, base)
    response = world.app.test_client(user=role).post(base + "/activities", data={"content": "x"}, headers=BROWSER)
    assert response.status_code == 404


# ---------------------------------------------------------------- script payloads

PAYLOADS = ("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>')


@pytest.fixture
def mini_app(make_app, tmp_path):
    return make_app(make_config(tmp_path / "config", MINI_FILES))


def test_stored_script_payloads_render_inert_everywhere_on_the_page(mini_app):
    admin = mini_app.test_client()
    customer = created(admin, "customer", name=PAYLOADS[0][:20], notes=PAYLOADS[1], email="x@example.com",
                       website="https://example.com/?q=%22%3E%3Cscript%3E")
    response = admin.post("/api/v1/customer", json={"name": "bad url", "website": "javascript:alert(1)"})
    assert response.status_code == 422  # the API refuses it; what the database may hold anyway is tested below
    created(admin, "order", customer=customer, total="1.00", ordered_at="2026-01-01T00:00:00+08:00")
    admin.patch(f"/api/v1/customer/{customer}", json={"notes": PAYLOADS[0], "name": PAYLOADS[1][:20]},
                headers={"If-Match": "*"})
    rt = mini_app.extensions["crmkit"]
    with rt.engine.begin() as conn:  # a value from elsewhere (an old import): still never a script link
        table = rt.tables.entities["customer"]
        conn.execute(sa.update(table).where(table.c.id == customer).values(website="JaVaScRiPt:alert(1)"))
    referrer = created(admin, "customer", name="referred", referrer=customer)
    for path in (f"/app/customer/{customer}", f"/app/customer/{referrer}"):
        html = crawl(mini_app, "admin", path)
        assert "<script>alert" not in html and "<img src=x" not in html
        assert not re.search(r'href="\s*javascript:', html, re.I)
        assert "onerror=alert(1)>" not in html.replace("onerror=alert(1)&gt;", "")
    page = get(mini_app, "admin", f"/app/customer/{customer}")
    assert "JaVaScRiPt:alert(1)" in page  # shown as text, not as a link
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_urls_link_only_to_web_pages(mini_app):
    admin = mini_app.test_client()
    customer = created(admin, "customer", name="网址", website="https://example.com/shop")
    html = get(mini_app, "admin", f"/app/customer/{customer}")
    assert '<a href="https://example.com/shop" rel="noopener noreferrer nofollow" target="_blank">' in html


def test_the_page_works_in_english_with_labels_and_formatted_values(mini_app):
    admin = mini_app.test_client()
    customer = created(admin, "customer", name="Ann", balance="1280.5", birthday="2026-01-31", level="gold",
                       tags=["vip"], active=True)
    html = get(mini_app, "admin", f"/app/customer/{customer}?lang=en")
    assert "¥1,280.50" in html and "Jan 31, 2026" in html and "Gold" in html and "Vip" in html
    assert "About this record" in html


def test_config_timeline_key_is_checked(tmp_path):
    from crmkit.loading import load_config
    from crmkit.metadata.problems import ConfigError

    files = dict(MINI_FILES)
    files["entities/order.yaml"] = MINI_FILES["entities/order.yaml"] + "    timeline: total\n"
    with pytest.raises(ConfigError) as error:
        load_config(make_config(tmp_path / "bad", files))
    assert "timeline field 'total' is not a date or datetime field" in str(error.value)
    files["entities/order.yaml"] = MINI_FILES["entities/order.yaml"] + "    timeline: ordered_on\n"
    with pytest.raises(ConfigError) as error:
        load_config(make_config(tmp_path / "bad2", files))
    assert "timeline field 'ordered_on' is not a field of order" in str(error.value)
    files["entities/order.yaml"] = MINI_FILES["entities/order.yaml"] + "    timeline: ordered_at\n"
    spec, _pm, _types = load_config(make_config(tmp_path / "good", files))
    assert spec.entities["order"].timeline == "ordered_at"


def test_orders_marked_as_timeline_show_on_their_customer(make_app, tmp_path):
    files = dict(MINI_FILES)
    files["entities/order.yaml"] = MINI_FILES["entities/order.yaml"] + "    timeline: ordered_at\n"
    app = make_app(make_config(tmp_path / "config", files))
    admin = app.test_client()
    customer = created(admin, "customer", name="Ann")
    created(admin, "order", customer=customer, total="9.90", ordered_at="2026-03-01T10:00:00+08:00")
    timeline = get(app, "admin", f"/app/customer/{customer}/timeline", htmx=True)
    assert "entry-activity" in timeline and "¥9.90" in timeline
    assert f'hx-post="/app/customer/{customer}/activities"' in get(app, "admin", f"/app/customer/{customer}")


def test_the_pages_behind_the_panels_are_headed_by_the_records_title(world):
    """The related list's and the timeline's pages (without JavaScript) name the
    record as its page does: by its title, not by its kind and id."""
    base = f"/app/customer/{world.customer}"
    for path in (f"{base}/related/contacts", f"{base}/timeline"):
        html = get(world.app, "sales_rep", path)
        crumbs = re.search(r'<nav class="breadcrumb".*?</nav>', html, re.S).group(0)
        assert f'<a href="{base}">王小明</a>' in crumbs and f"#{world.customer}" not in crumbs
        get(world.app, "rep2", path, status=404)  # a record the reader may not read: still none
