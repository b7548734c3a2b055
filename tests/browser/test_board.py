"""The board, the calendar and the home page in a real browser: a rep drags
opportunities across the board (one move allowed, one refused that snaps
back with its reason, one that asks for its required field first), and a
manager sees the team's board; accessibility checked with axe-core."""

from __future__ import annotations

import datetime as dt

import pytest
from playwright.sync_api import expect

from conftest import token_for
from crmkit.errors import NotFound
from crmkit.permissions import SYSTEM

from .conftest import PASSWORD, assert_accessible, log_in


@pytest.fixture
def sales(live_server):
    """A sales team: rae (a rep) and max (their manager), with rae's opportunities."""
    app = live_server.app
    rt = app.extensions["crmkit"]
    directory = rt.directory
    try:
        team = directory.team("browser_sales")["id"]
    except NotFound:
        team = directory.create_team({"name": "browser_sales"}, SYSTEM)["id"]
    token_for(app, "rae", ("sales_rep",), password=PASSWORD, team_id=team)
    token_for(app, "max", ("sales_manager",), password=PASSWORD, team_id=team)
    rae = directory.actor(directory.user("rae"))
    records = rt.records
    stamp = dt.datetime.now().strftime("%H%M%S%f")
    customer = records.create("customer", {"name": f"客户 {stamp}"}, rae)["id"]
    names = {key: f"{key}-{stamp}" for key in ("open", "zero", "lose")}
    ids = {key: records.create("opportunity", {"name": name, "customer": customer, "amount": "1200"}, rae)["id"]
           for key, name in names.items() if key != "zero"}
    ids["zero"] = records.create("opportunity", {"name": names["zero"], "customer": customer, "amount": "0",
                                                 "expected_close_date": "2026-12-31"}, rae)["id"]
    for move in ("analyse_needs", "propose", "negotiate"):
        records.transition("opportunity", ids["zero"], move, {}, rae)

    def stage(key: str) -> str:
        with rt.engine.connect() as conn:
            return rt.queries.fetch(conn, rt.spec.entities["opportunity"], ids[key], actor=SYSTEM)["stage"]

    return names, ids, stage


def card(page, name: str):
    return page.locator("li.card", has=page.get_by_role("link", name=name))


def drag(page, source, target) -> None:
    """Press on the card, move over the column in steps (as a hand does), let go."""
    expect(source).to_be_visible()
    source.scroll_into_view_if_needed()
    box, goal = source.bounding_box(), target.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + 8)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 + 5, box["y"] + 12, steps=3)
    x, y = goal["x"] + goal["width"] / 2, goal["y"] + min(goal["height"] / 2, 30)
    page.mouse.move(x, y, steps=12)
    page.wait_for_timeout(150)  # SortableJS notices where the pointer is every 50 ms
    page.mouse.move(x + 2, y + 2)
    page.wait_for_timeout(150)
    page.mouse.up()


def column(page, state: str):
    return page.locator(f'ol.board-cards[data-state="{state}"]')


def test_a_rep_drags_an_opportunity_forward_and_a_refused_move_snaps_back(page, sales):
    names, ids, stage = sales
    page.set_viewport_size({"width": 2200, "height": 900})  # every column in view: a drag is a straight line
    log_in(page, "rae")
    page.goto("/app/opportunity/board")
    expect(page.get_by_role("heading", level=1)).to_have_text("销售漏斗看板")
    expect(column(page, "qualification").get_by_role("link", name=names["open"])).to_be_visible()

    # Allowed: qualification -> needs analysis.
    drag(page, card(page, names["open"]), column(page, "needs_analysis"))
    moved = column(page, "needs_analysis").locator("li.card", has=page.get_by_role("link", name=names["open"]))
    expect(moved).to_have_attribute("data-version", "2")  # the board as the server answered it
    assert stage("open") == "needs_analysis"

    # Refused by the workflow's condition (win needs amount > 0): back in its column, with the reason.
    drag(page, card(page, names["zero"]), column(page, "won"))
    expect(page.locator("#messages")).to_contain_text("amount > 0")
    expect(column(page, "negotiation").get_by_role("link", name=names["zero"])).to_be_visible()
    expect(column(page, "won").get_by_role("link", name=names["zero"])).to_have_count(0)
    assert stage("zero") == "negotiation"
    page.problems.clear()  # the refusal is a 409 the console reports

    # A move with a required field asks for it in a dialog first.
    drag(page, card(page, names["lose"]), column(page, "lost"))
    dialog = page.locator("#move-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_label("输单原因").select_option("price")
    dialog.get_by_role("button", name="移动").click()
    lost = column(page, "lost").locator("li.card", has=page.get_by_role("link", name=names["lose"]))
    expect(lost).to_have_attribute("data-version", "2")
    assert stage("lose") == "lost"
    assert_accessible(page)


def test_a_manager_sees_the_teams_board_and_the_home_page(page, sales):
    names, _ids, _stage = sales
    log_in(page, "max")
    expect(page.get_by_role("heading", name="今日到期与已逾期")).to_be_visible()
    assert_accessible(page)
    page.goto("/app/opportunity/board")
    expect(page.get_by_role("link", name=names["zero"])).to_be_visible()
    expect(card(page, names["zero"]).locator(".drag-handle")).to_have_count(1)
    page.goto("/app/activity/calendar")
    expect(page.locator(".calendar-grid")).to_be_visible()
    assert_accessible(page)


def test_a_dropped_contract_goes_for_approval_stays_marked_and_says_so(page, sales, live_server):
    rt = live_server.app.extensions["crmkit"]
    directory = rt.directory
    team = directory.team("browser_sales")["id"]
    token_for(live_server.app, "ria", ("sales_rep",), password=PASSWORD, team_id=team, superior_id="max")
    ria = directory.actor(directory.user("ria"))
    stamp = dt.datetime.now().strftime("%H%M%S%f")
    customer = rt.records.create("customer", {"name": f"合同客户 {stamp}"}, ria)["id"]
    name = f"合同-{stamp}"
    contract = rt.records.create("contract", {"name": name, "customer": customer, "amount": "8000"}, ria)["id"]
    page.set_viewport_size({"width": 2200, "height": 900})
    log_in(page, "ria")
    page.goto("/app/contract/board")
    contract_card = page.locator("li.card", has_text=name)  # titled by its number, named in a field
    drag(page, contract_card, column(page, "approved"))
    expect(page.locator("#messages")).to_contain_text("已提交审批：提交审批。")
    marked = column(page, "draft").locator("li.card", has_text=name)
    expect(marked).to_contain_text("待审批：提交审批")
    expect(marked).to_have_class("card card-own card-pending")
    with rt.engine.connect() as conn:
        row = rt.queries.fetch(conn, rt.spec.entities["contract"], contract, actor=SYSTEM)
    assert row["approval_status"] == "draft"
    assert_accessible(page)
