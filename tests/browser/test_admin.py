"""The admin console in Chromium: no script or style the policy refuses,
no serious accessibility violation, the confirm step of destructive posts,
usable on a phone."""

from __future__ import annotations

import pytest

from .conftest import assert_accessible

PAGES = ["/admin/", "/admin/users/", "/admin/users/new/", "/admin/teams/", "/admin/tokens/", "/admin/audit/",
         "/admin/recycle_bin/", "/admin/data/customer/", "/admin/data/customer/new/", "/admin/data/opportunity/"]


@pytest.mark.parametrize("path", PAGES)
def test_every_console_page_runs_under_the_policy_and_is_accessible(logged_in, path):
    page = logged_in()
    page.goto(path)
    page.wait_for_load_state("networkidle")
    assert page.locator("header.topbar").count() == 1
    assert_accessible(page)


def test_a_service_rep_is_refused_the_console(logged_in):
    page = logged_in("sam")
    response = page.goto("/admin/users/")
    assert response is not None and response.status == 403
    assert page.locator("h1").inner_text() == "仅限管理员"
    page.problems.remove("Failed to load resource: the server responded with a status of 403 (FORBIDDEN)")


def test_disabling_a_user_asks_first_and_cancelling_keeps_them(logged_in, live_server):
    from crmkit.permissions import SYSTEM

    directory = live_server.app.extensions["crmkit"].directory
    user = directory.create_user({"username": "browser_victim"}, SYSTEM)
    page = logged_in()
    page.goto(f"/admin/users/details/?id={user['id']}")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("text=停用用户")
    assert directory.user("browser_victim")["active"] is True
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("text=停用用户")
    page.wait_for_url("**/admin/users/details/**")
    assert directory.user("browser_victim")["active"] is False
    assert "已停用" in page.locator("#messages").inner_text()


def test_the_console_on_a_phone_and_in_both_languages(logged_in, screenshot):
    page = logged_in()
    page.goto("/admin/users/")
    screenshot(page, "admin-users")
    page.goto("/admin/data/customer/new/")
    screenshot(page, "admin-record-form", full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/admin/data/customer/new/")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390 + 1, width
