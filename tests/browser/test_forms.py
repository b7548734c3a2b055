"""Record forms in a real browser: a sales rep creates a customer, is told
what is wrong beside the field, picks a referrer by typing, a region through
the cascading picker, and lands on the new record; a condition shows a
section as the input changes; the page is accessible and fits a phone."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from conftest import token_for

from .conftest import PASSWORD, PHONE, assert_accessible, log_in

REP = "rosa"


def rep_with_a_customer(live_server, name: str) -> int:
    """The rep (made once) and a customer of hers to refer to; returns its id."""
    app = live_server.app
    rt = app.extensions["crmkit"]
    token_for(app, REP, ("sales_rep",), password=PASSWORD, display_name="Rosa")
    actor = rt.directory.actor(rt.directory.user(REP))
    return rt.records.create("customer", {"name": name}, actor)["id"]


def htmx_settled(page) -> None:
    """Wait until htmx has no request, swap or settle under way."""
    expect(page.locator(".htmx-request, .htmx-swapping, .htmx-settling, .htmx-added")).to_have_count(0)


def test_a_rep_creates_a_customer_after_a_validation_error(page, live_server):
    referrer = rep_with_a_customer(live_server, "推荐人老王")
    log_in(page, REP)
    page.goto("/app/customer/new")
    expect(page.get_by_role("heading", level=1)).to_have_text("新建客户")
    page.get_by_label("客户名称").fill("浏览器客户")
    page.get_by_label("手机").fill("12345")
    page.get_by_role("button", name="保存").click()
    error = page.locator("#f-mobile-error")
    expect(error).to_have_text("请输入手机号：以 1 开头的 11 位数字。")
    page.problems.clear()  # the 422 answer is logged by the browser
    expect(page.get_by_label("客户名称")).to_have_value("浏览器客户")
    assert page.locator("#f-mobile").get_attribute("aria-invalid") == "true"
    # focus moves once htmx has settled the swapped form: wait for it (a bare read raced it under load)
    page.wait_for_function("['f-mobile', 'form-errors'].includes(document.activeElement.id)", timeout=5000)
    assert_accessible(page)

    # the referrer: typed, found by the server, chosen
    page.locator("#f-referrer-ts-control").focus()
    page.keyboard.type("老王")
    page.get_by_role("option", name="推荐人老王").click()
    assert page.evaluate("document.getElementById('f-referrer').value") == str(referrer)

    # the region: each select box filled by the server when the one above changes
    page.locator("#f-region-province").select_option("440000")
    expect(page.locator("#f-region-city")).to_be_enabled()
    htmx_settled(page)  # the new boxes listen for a change once htmx has processed them
    page.locator("#f-region-city").select_option("440100")
    expect(page.locator("#f-region-district")).to_be_enabled()
    htmx_settled(page)
    page.locator("#f-region-district").select_option("440106")

    page.get_by_label("手机").fill("13912345678")
    page.get_by_role("button", name="保存").click()
    page.wait_for_url(re.compile(r".*/app/customer/\d+$"))
    page.problems.clear()  # the record page comes with another part of the screens
    record_id = int(page.url.rsplit("/", 1)[1])
    rt = live_server.app.extensions["crmkit"]
    with rt.engine.connect() as conn:
        row = rt.queries.fetch(conn, rt.spec.entities["customer"], record_id,
                               actor=rt.directory.actor(rt.directory.user(REP)))
    assert row is not None
    assert (row["name"], row["mobile"], row["referrer_id"], row["region"]) == (
        "浏览器客户", "13912345678", referrer, "440106")


def test_a_section_appears_when_its_condition_starts_to_hold(page, live_server):
    rep_with_a_customer(live_server, "另一位客户")
    log_in(page, REP)
    page.goto("/app/customer/new")
    expect(page.get_by_label("公司名称")).to_have_count(0)
    page.get_by_label("客户名称").fill("某公司")
    page.get_by_label("客户类型").focus()
    page.get_by_label("客户类型").select_option("company")
    expect(page.get_by_label("公司名称")).to_be_visible()
    expect(page.get_by_role("group", name="企业信息")).to_be_visible()
    expect(page.get_by_label("客户名称")).to_have_value("某公司")  # the rest of the form untouched
    page.wait_for_function("document.activeElement.id === 'f-customer_type'", timeout=5000)  # kept across the swap
    page.get_by_label("客户类型").select_option("person")
    expect(page.get_by_label("公司名称")).to_have_count(0)
    assert_accessible(page)


def test_the_form_fits_a_phone(page, live_server):
    rep_with_a_customer(live_server, "手机上的客户")
    log_in(page, REP)
    page.set_viewport_size(PHONE)
    page.goto("/app/customer/new")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert page.get_by_label("客户名称").is_visible()
    assert page.get_by_role("button", name="保存").is_visible()
    assert_accessible(page)
