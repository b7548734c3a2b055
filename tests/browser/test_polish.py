"""The screens' polish in a real browser: a list's ref filter is the forms'
picker (typed, answered by the server, chosen, applied), and the sample's
board fits a 1280 px screen without scrolling sideways."""

from __future__ import annotations

import datetime as dt
import re

from playwright.sync_api import expect

from crmkit.permissions import SYSTEM

from .conftest import assert_accessible


def test_a_ref_filter_is_a_picker_that_asks_the_server(logged_in, live_server):
    records = live_server.app.extensions["crmkit"].records
    stamp = dt.datetime.now().strftime("%H%M%S%f")
    customer = records.create("customer", {"name": f"筛选客户{stamp}"}, SYSTEM)["id"]
    records.create("opportunity", {"name": f"筛选商机{stamp}", "customer": customer, "amount": "100"}, SYSTEM)
    page = logged_in()
    page.goto(f"{live_server.url}/app/opportunity")
    page.locator("summary", has_text="筛选").first.click()
    page.locator("#filter-customer-ts-control").focus()
    page.keyboard.type(stamp)
    page.get_by_role("option", name=f"筛选客户{stamp}").click()
    page.get_by_role("button", name="应用筛选").click()
    page.wait_for_url(re.compile(rf".*[?&]customer={customer}(&|$)"))
    expect(page.locator(".list-table tbody tr")).to_have_count(1)
    expect(page.locator(".filter-chips")).to_contain_text(f"客户 = 筛选客户{stamp}")
    # The choice stays in the picker, by its title.
    page.locator("summary", has_text="筛选").first.click()
    expect(page.locator(".filter-ref .ts-control .item").first).to_have_text(f"筛选客户{stamp}")
    assert_accessible(page)


def test_the_sample_board_fits_a_1280_px_screen(logged_in, live_server):
    page = logged_in()
    page.goto(f"{live_server.url}/app/opportunity/board")
    columns = page.locator(".board-column")
    expect(columns.first).to_be_visible()
    assert columns.count() == 7  # the sample's stages
    sideways = page.evaluate("""() => {
        const board = document.querySelector('.board-columns');
        return {board: board.scrollWidth - board.clientWidth,
                page: document.documentElement.scrollWidth - document.documentElement.clientWidth};
    }""")
    assert sideways == {"board": 0, "page": 0}
    widths = [box["width"] for box in (columns.nth(n).bounding_box() for n in range(7))]
    assert min(widths) >= 130  # a card stays readable
    assert_accessible(page)
