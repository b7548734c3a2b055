"""The home page (/app/): what needs the logged-in user: their records due
today and overdue (entities with ``due`` in the config), their newest
records, and the records others shared with them; nobody else's."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest

from conftest import MINI_FILES, make_config, token_for
from test_ui_board import BROWSER, World, build_world

ZONE = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def world(module_database_url, tmp_path_factory) -> Iterator[World]:
    made = build_world(module_database_url, tmp_path_factory.mktemp("home"))
    records = made.rt.records
    today = dt.datetime.now(ZONE).date()

    def at(days: int, hour: int = 12) -> str:
        return dt.datetime.combine(today + dt.timedelta(days=days), dt.time(hour), ZONE).isoformat()

    def follow_up(owner: str, name: str, when: str) -> None:
        made.ids[name] = records.create("activity", {
            "subject": name, "content": "call", "next_follow_up_at": when, "customer": made.ids[f"{owner}-customer"]},
            made.actors[owner])["id"]

    follow_up("rex", "REX-OVERDUE", at(-2))
    follow_up("rex", "REX-TODAY", at(0))
    follow_up("rex", "REX-TOMORROW", at(1, 0))
    follow_up("rob", "ROB-OVERDUE", at(-1))
    sam = made.actors["sam"]
    for name, planned, visited in (("visit-due", 0, None), ("visit-done", -1, at(-1)), ("visit-later", 3, None)):
        made.ids[name] = records.create("return_visit", {
            "customer": made.ids["rex-customer"], "planned_on": (today + dt.timedelta(days=planned)).isoformat(),
            "visited_at": visited}, sam)["id"]
    records.sharing.share("customer", made.ids["rob-customer"], made.actors["rex"].id, "read", made.actors["rob"])
    yield made
    made.rt.engine.dispose()


def widget(html: str, name: str) -> str:
    found = re.search(rf'<section class="widget widget-{name}".*?</section>', html, re.S)
    assert found, html
    return found.group(0)


def links(html: str) -> list[str]:
    return re.findall(r'<a href="(/app/[a-z_]+/\d+)">', html)


def test_due_lists_the_users_overdue_and_todays_follow_ups_oldest_first(world):
    html = world.get("/app/", "rex")
    due = widget(html, "due")
    assert links(due) == [f"/app/activity/{world.ids['REX-OVERDUE']}", f"/app/activity/{world.ids['REX-TODAY']}"]
    assert due.count('class="overdue"') == 1 and "已逾期" in due
    assert "今日到期与已逾期" in due


def test_due_is_only_the_users_own_even_for_a_manager_who_reads_more(world):
    assert "REX-" not in widget(world.get("/app/", "mia"), "due")
    rob = widget(world.get("/app/", "rob"), "due")
    assert "ROB-OVERDUE" in rob and "REX-" not in rob
    assert "ROB-OVERDUE" not in world.get("/app/", "rex")


def test_due_follows_the_configured_filter_of_open_records(world):
    due = widget(world.get("/app/", "sam"), "due")
    assert links(due) == [f"/app/return_visit/{world.ids['visit-due']}"]


def test_newest_records_are_the_users_own_newest_first(world):
    newest = widget(world.get("/app/", "rex"), "newest")
    shown = links(newest)
    assert shown[0] == f"/app/activity/{world.ids['REX-TOMORROW']}"
    assert f"/app/customer/{world.ids['rex-customer']}" in shown
    assert f"/app/customer/{world.ids['rob-customer']}" not in shown
    assert "<img src=x" not in newest and "&lt;img src=x onerror" in newest


def test_records_shared_with_the_user(world):
    shared = widget(world.get("/app/", "rex"), "shared")
    assert links(shared) == [f"/app/customer/{world.ids['rob-customer']}"]
    assert "ROB-CUSTOMER &lt;img" in shared
    assert "widget-empty" in widget(world.get("/app/", "rob"), "shared")


def test_a_user_with_nothing_yet_is_told_what_to_do_next(world):
    html = world.get("/app/?lang=en", "eve")
    assert "Nothing is due. Plan your next follow-ups" in html
    assert "You have no records yet. Open a list from the menu" in html
    assert "Nobody has shared a record with you yet" in html


def test_home_without_due_entities_or_access(make_app, tmp_path):
    roles = """
        roles:
          visitor:
            label: {en: Visitor, zh: 访客}
            entities: {}
    """
    app = make_app(make_config(tmp_path / "config", {**MINI_FILES, "roles.yaml": roles}))
    token_for(app, "vic", ("visitor",))
    response = app.test_client(user="vic").get("/app/", headers=BROWSER)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "欢迎，vic" in html and "暂无到期事项" in html
    assert "您的角色暂时没有可查看的记录" in html
