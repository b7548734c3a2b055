"""The login page and the shell in a real browser: getting in and out, the
language switch, the keyboard, htmx under the Content-Security-Policy, and
accessibility (axe-core: no serious or critical violation)."""

from __future__ import annotations

from playwright.sync_api import expect

from .conftest import PHONE, assert_accessible, log_in


def test_the_login_page_is_accessible_and_bilingual(page, screenshot):
    page.goto("/login")
    assert page.title() == "登录 Log in · 零售客户管理"
    assert page.locator("label[for=username]").inner_text() == "用户名 User name"
    assert page.evaluate("document.scripts.length") == 0
    assert_accessible(page)
    screenshot(page, "login")


def test_a_wrong_password_is_said_in_both_languages(page):
    page.goto("/login")
    page.fill("#username", "ann")
    page.fill("#password", "not the password")
    page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_have_text("用户名或密码错误 · wrong user name or password")
    page.wait_for_function("document.activeElement === document.getElementById('password')", timeout=5000)
    # the failed login answered 401: the browser reports that one failed request, nothing else
    assert all("401" in problem for problem in page.problems)
    page.problems.clear()
    assert_accessible(page)


def test_logging_in_through_the_form_lands_on_the_home_page(logged_in):
    page = logged_in()
    expect(page.get_by_role("heading", level=1)).to_have_text("欢迎，ann")
    navigation = page.get_by_role("navigation", name="主导航")
    assert navigation.get_by_role("heading").all_inner_texts() == ["销售", "订单", "合同回款", "服务", "营销"]
    assert navigation.get_by_role("link").all_inner_texts()[:4] == ["首页", "线索", "客户", "联系人"]
    assert len(navigation.get_by_role("link").all_inner_texts()) == 1 + 17
    assert_accessible(page)


def test_a_user_sees_only_the_entities_their_roles_may_read(logged_in):
    page = logged_in("sam")  # a service rep: no leads, no money records, no campaigns
    navigation = page.get_by_role("navigation", name="主导航")
    assert navigation.get_by_role("heading").all_inner_texts() == ["销售", "订单", "合同回款", "服务"]
    links = navigation.get_by_role("link").all_inner_texts()
    assert "客户" in links and "工单" in links and not {"线索", "回款计划", "发票", "市场活动"} & set(links)
    assert page.get_by_role("link", name="API 参考").count() == 0


def test_htmx_runs_under_the_policy_without_a_style_element_of_its_own(logged_in):
    page = logged_in()
    assert page.evaluate("typeof htmx") == "object"
    assert page.evaluate("htmx.version") == "2.0.11"
    assert page.evaluate("htmx.config.includeIndicatorStyles") is False
    assert page.evaluate("document.querySelectorAll('style').length") == 0


def test_ctrl_k_jumps_to_the_search_box_and_enter_searches(logged_in):
    page = logged_in()
    page.keyboard.press("Control+K")
    assert page.evaluate("document.activeElement.id") == "global-search"
    page.keyboard.type("张三")
    page.keyboard.press("Enter")
    page.wait_for_url("**/app/search?q=*")
    expect(page.locator("main")).to_contain_text("没有找到与“张三”相关的记录。")


def test_the_skip_link_takes_the_keyboard_to_the_content(logged_in):
    page = logged_in()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"


def test_the_language_switch_changes_every_page_and_is_remembered(logged_in, context):
    page = logged_in()
    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Welcome, ann")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.get_by_role("link", name="Customers", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Customers")
    other = context.new_page()  # the choice is the browser's, not the tab's
    other.goto("/app/")
    expect(other.get_by_role("heading", level=1)).to_have_text("Welcome, ann")
    page.get_by_role("button", name="中文").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("客户")


def test_htmx_requests_carry_the_csrf_token_and_others_are_refused(logged_in):
    page = logged_in()
    status = page.evaluate("""async () => {
        const form = new FormData(); form.append("lang", "en"); form.append("next", "/app/");
        return (await fetch("/app/language", {method: "POST", body: form, redirect: "manual"})).status;
    }""")
    assert status == 403  # a request without the token: refused
    page.problems.clear()  # the browser logs that refusal
    page.evaluate("""() => htmx.ajax("POST", "/app/language", {values: {lang: "en", next: "/app/"}, swap: "none"})""")
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_have_text("Welcome, ann")


def test_an_htmx_request_after_the_session_ended_goes_to_the_login_page(logged_in, context):
    page = logged_in()
    context.clear_cookies()
    page.evaluate("""() => htmx.ajax("GET", "/app/customer", {target: "#main"})""")
    page.wait_for_url("**/login?next=/app/")
    page.problems.clear()  # the 401 that sent it there
    expect(page.locator("#username")).to_be_visible()


def test_logging_out_ends_the_session(logged_in):
    page = logged_in()
    page.get_by_role("button", name="退出登录").click()
    page.wait_for_url("**/login")
    page.goto("/app/")
    page.wait_for_url("**/login?next=/app/")


def test_the_shell_is_usable_on_a_phone(logged_in):
    page = logged_in()
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert page.locator("#global-search").is_visible()
    assert page.get_by_role("link", name="客户", exact=True).is_visible()
    assert_accessible(page)


def test_an_unknown_page_is_a_page_of_the_shell(logged_in):
    page = logged_in()
    response = page.goto("/app/nothing")
    assert response.status == 404
    page.problems.clear()  # the 404 itself
    expect(page.get_by_role("heading", level=1)).to_have_text("未找到")
    assert_accessible(page)


def test_the_login_page_keeps_working_after_logout_in_english(page):
    page.goto("/login?lang=en")
    assert page.locator("label[for=username]").inner_text() == "User name 用户名"
    log_in(page)
    expect(page.get_by_role("heading", level=1)).to_have_text("Welcome, ann")


def test_the_vendored_picker_and_drag_libraries_run_under_the_policy(logged_in):
    """Tom Select and SortableJS are there for the screens to come: they must
    work without inline styles or eval, or the policy would have to loosen."""
    page = logged_in()
    page.add_style_tag(url="/static/vendor/tom-select-2.6.2/tom-select.min.css")
    page.add_script_tag(url="/static/vendor/tom-select-2.6.2/tom-select.complete.min.js")
    page.add_script_tag(url="/static/vendor/sortable-1.15.7/Sortable.min.js")
    page.evaluate("""() => {
        const main = document.getElementById("main");
        const label = document.createElement("label"); label.htmlFor = "picker"; label.textContent = "客户";
        const select = document.createElement("select"); select.id = "picker";
        for (const [value, text] of [["1", "张三"], ["2", "李四"], ["3", "王五"]]) {
            select.add(new Option(text, value));
        }
        const list = document.createElement("ul"); list.id = "cards";
        for (const text of ["a", "b", "c"]) {
            const item = document.createElement("li"); item.textContent = text; list.append(item);
        }
        main.append(label, select, list);
        new TomSelect(select, {create: false, plugins: ["dropdown_input"]});
        Sortable.create(list, {animation: 150});
    }""")
    items = page.locator("#cards li")
    items.nth(0).drag_to(items.nth(2))
    expect(page.locator("#cards li").first).not_to_have_text("a")
    page.locator(".ts-control").click()
    page.keyboard.type("李")
    page.get_by_role("listbox").get_by_role("option", name="李四").click()
    assert page.evaluate("document.getElementById('picker').value") == "2"
