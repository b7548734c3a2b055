"""The list screen in a real browser: search as you type swaps only the
results and keeps the URL, sorting by a header, choosing records for a bulk
action, a phone-sized screen, and accessibility (axe-core)."""

from __future__ import annotations

from playwright.sync_api import expect

from crmkit.permissions import SYSTEM

from .conftest import PHONE, assert_accessible


def _customers(live_server, *names: str) -> None:
    records = live_server.app.extensions["crmkit"].records
    for name in names:
        records.create("customer", {"name": name, "level": "a", "total_spent": "1280"}, SYSTEM)


def test_search_as_you_type_swaps_the_results_and_keeps_the_url(logged_in, live_server):
    _customers(live_server, "列表甲客户", "列表乙客户")
    page = logged_in()
    page.goto(f"{live_server.url}/app/customer")
    expect(page.get_by_role("heading", level=1)).to_have_text("客户")
    page.fill("#list-q", "列表乙")
    expect(page.locator(".list-table tbody tr")).to_have_count(1)
    expect(page.locator(".list-table tbody")).to_contain_text("列表乙客户")
    page.wait_for_url("**/app/customer?q=*")
    assert page.locator("h1").count() == 1  # the fragment was swapped in, not a page inside the page
    assert_accessible(page)


def test_sorting_by_a_header_and_choosing_every_record(logged_in, live_server):
    _customers(live_server, "排序客户一", "排序客户二")
    page = logged_in()
    page.goto(f"{live_server.url}/app/customer?q=排序客户")
    page.locator("th a", has_text="客户名称").click()
    expect(page.locator("th[aria-sort=ascending]")).to_contain_text("客户名称")
    page.locator("input.pick-all").check()
    assert page.locator("input[name=id]:checked").count() == 2


def test_the_list_is_usable_on_a_phone(logged_in, live_server):
    page = logged_in()
    page.set_viewport_size(PHONE)
    page.goto(f"{live_server.url}/app/customer")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"] + 1
