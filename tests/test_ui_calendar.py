"""The calendar (/app/<entity>/calendar, views of kind calendar): month and
week grids by a date or datetime field in the app's timezone (Asia/Shanghai,
UTC+8, in the sample), within each role's scope, the user's own records
first, and rescheduling by drag as an update with the version."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import pytest

from crmkit.permissions import SYSTEM
from test_ui_board import BROWSER, HTMX, XSS, World, build_world


@pytest.fixture(scope="module")
def world(module_database_url, tmp_path_factory) -> Iterator[World]:
    made = build_world(module_database_url, tmp_path_factory.mktemp("calendar"))
    records = made.rt.records

    def follow_up(owner: str, name: str, at: str, **values) -> None:
        made.ids[name] = records.create("activity", {
            "subject": name, "content": "call", "next_follow_up_at": at, "customer": made.ids[f"{owner}-customer"],
            **values}, made.actors[owner])["id"]

    # Shanghai is UTC+8: 16:30 UTC on 30 November is half past midnight on 1 December there.
    follow_up("rex", "REX-LATE-NOV", "2026-11-30T15:59:00Z", next_step="REX-SECRET-STEP")
    follow_up("rex", "REX-EARLY-DEC", "2026-11-30T16:30:00Z")
    follow_up("rex", f"REX-XSS {XSS}", "2026-12-10T02:00:00Z")
    follow_up("rex", "REX-JANUARY", "2027-01-15T02:00:00Z")
    follow_up("rob", "ROB-DEC", "2026-12-10T01:00:00Z")
    mia = made.actors["mia"]
    customer = records.create("customer", {"name": "MIA-CUSTOMER"}, mia)["id"]
    made.ids["MIA-DEC"] = records.create("activity", {
        "subject": "MIA-DEC", "content": "call", "next_follow_up_at": "2026-12-10T03:00:00Z", "customer": customer},
        mia)["id"]
    yield made
    made.rt.engine.dispose()


def days(html: str) -> dict[str, list[str]]:
    """Subjects by day (ISO date) of the grid."""
    found = {}
    for day, body in re.findall(r'<ul class="calendar-items" data-date="([0-9-]+)">(.*?)</ul>', html, re.S):
        links = re.findall(r'<a href="/app/activity/\d+">(?:<time>[0-9:]+</time> )?([^<]*)</a>', body)
        found[day] = [title.split(" ")[0] for title in links]
    return found


def where(html: str) -> dict[str, str]:
    return {subject: day for day, subjects in days(html).items() for subject in subjects}


MONTH = "/app/activity/calendar?mode=month&date=2026-12-05"


def test_a_month_is_whole_weeks_from_monday_in_the_apps_timezone(world):
    html = world.get(MONTH, "rex")
    grid = list(days(html))
    assert grid[0] == "2026-11-30" and grid[-1] == "2027-01-03" and len(grid) == 35
    placed = where(html)
    assert placed["REX-LATE-NOV"] == "2026-11-30"  # 23:59 in Shanghai
    assert placed["REX-EARLY-DEC"] == "2026-12-01"  # 00:30 in Shanghai, still 30 November in UTC
    assert "REX-JANUARY" not in placed  # after the grid
    assert "<time>00:30</time> REX-EARLY-DEC" in html
    assert "2026年12月" in html


def test_a_week_shows_seven_days_and_only_their_records(world):
    html = world.get("/app/activity/calendar?mode=week&date=2026-12-02", "rex")
    assert list(days(html)) == [f"2026-{m}" for m in
                                ("11-30", "12-01", "12-02", "12-03", "12-04", "12-05", "12-06")]
    assert set(where(html)) == {"REX-LATE-NOV", "REX-EARLY-DEC"}
    november = world.get("/app/activity/calendar?mode=week&date=2026-11-29", "rex")
    assert where(november) == {}  # 15:59 UTC on the 30th is not on the 29th anywhere near Shanghai


@pytest.mark.parametrize(("user", "expected"), [
    ("rex", {"REX-LATE-NOV", "REX-EARLY-DEC", "REX-XSS"}),
    ("rob", {"ROB-DEC"}),
    ("mia", {"REX-LATE-NOV", "REX-EARLY-DEC", "REX-XSS", "MIA-DEC"}),
    ("ann", {"REX-LATE-NOV", "REX-EARLY-DEC", "REX-XSS", "ROB-DEC", "MIA-DEC"}),
    ("fin", {"REX-LATE-NOV", "REX-EARLY-DEC", "REX-XSS", "ROB-DEC", "MIA-DEC"}),
    ("sam", set()),
])
def test_each_role_sees_the_records_of_its_scope(world, user, expected):
    html = world.get(MONTH, user)
    assert set(where(html)) == expected


def test_hidden_fields_never_show_and_roles_without_update_cannot_drag(world):
    assert "REX-SECRET-STEP" in world.get(MONTH, "rex")
    finance = world.get(MONTH, "fin")  # finance reads every follow-up, never their next step
    assert "REX-SECRET-STEP" not in finance
    assert "movable" not in finance
    assert "movable" not in world.get(MONTH, "ana")


def test_the_users_own_records_come_first_in_a_day(world):
    mia = days(world.get(MONTH, "mia"))["2026-12-10"]
    assert mia[0] == "MIA-DEC" and "REX-XSS" in mia
    rex = world.get(MONTH, "rex")
    assert f'class="calendar-item card-own movable" data-id="{world.ids["REX-EARLY-DEC"]}"' in rex


def test_payloads_in_titles_render_inert(world):
    html = world.get(MONTH, "ann")
    assert "<img src=x" not in html and "<script>alert" not in html and "&lt;img src=x" in html


def test_a_calendar_needs_a_calendar_view_the_user_may_read(world):
    world.get("/app/opportunity/calendar", "ann", 404)
    world.get("/app/activity/calendar?view=opportunity_board", "ann", 404)
    world.get("/app/return_visit/calendar", "mark", 404)
    world.get("/app/return_visit/calendar?mode=week", "sam")
    world.get("/app/activity/calendar?date=not-a-date", "rex", 404)


def reschedule(world: World, user: str, name: str, day: str, version: int | None = None):
    record = world.record("activity", name)
    return world.app.test_client(user=user).post(
        f"/app/activity/calendar/{world.ids[name]}/move",
        data={"date": day, "version": str(record["version"] if version is None else version)}, headers=HTMX)


def moment(world: World, name: str) -> dt.datetime:
    value = world.record("activity", name)["next_follow_up_at"]
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def test_dragging_to_another_day_keeps_the_local_time_of_day(world):
    response = reschedule(world, "rex", "REX-EARLY-DEC", "2026-12-03")
    assert response.status_code == 200
    assert response.headers["X-Crmkit-Version"] == "2"
    assert moment(world, "REX-EARLY-DEC") == dt.datetime(2026, 12, 2, 16, 30, tzinfo=dt.UTC)  # 00:30 on the 3rd
    assert where(world.get(MONTH, "rex"))["REX-EARLY-DEC"] == "2026-12-03"


def test_a_stale_version_is_refused_and_changes_nothing(world):
    before = world.record("activity", "REX-LATE-NOV")
    response = reschedule(world, "rex", "REX-LATE-NOV", "2026-12-04", version=before["version"] + 5)
    assert response.status_code == 409
    assert "其他人刚刚修改了这条记录" in response.get_data(as_text=True)
    assert world.record("activity", "REX-LATE-NOV") == before


def test_rescheduling_is_refused_outside_the_update_scope(world):
    before = world.record("activity", "ROB-DEC")
    assert reschedule(world, "rex", "ROB-DEC", "2026-12-11").status_code == 404
    assert reschedule(world, "fin", "ROB-DEC", "2026-12-11").status_code == 403
    assert reschedule(world, "rob", "ROB-DEC", "someday").status_code == 400
    assert world.record("activity", "ROB-DEC") == before


def test_rescheduling_a_date_field_and_without_script(world):
    sam = world.actors["sam"]
    visit = world.rt.records.create("return_visit", {"customer": world.ids["rex-customer"],
                                                     "planned_on": "2026-12-01"}, sam)
    client = world.app.test_client(user="sam")
    html = client.get("/app/return_visit/calendar?date=2026-12-01", headers=BROWSER).get_data(as_text=True)
    assert f'data-id="{visit["id"]}"' in html and "movable" in html
    response = client.post(f"/app/return_visit/calendar/{visit['id']}/move",
                           data={"date": "2026-12-08", "version": "1", "view": "return_visit_calendar"},
                           headers=BROWSER)
    assert response.status_code == 303 and response.location.startswith("/app/return_visit/calendar")
    with world.rt.engine.connect() as conn:
        row = world.rt.queries.fetch(conn, world.rt.spec.entities["return_visit"], visit["id"], actor=SYSTEM)
    assert row["planned_on"] == dt.date(2026, 12, 8)


def test_each_movable_record_has_a_small_form_to_reschedule_it_without_script(world):
    html = world.get(MONTH, "rob")
    record = world.ids["ROB-DEC"]
    form = re.search(rf'<form method="post" action="/app/activity/calendar/{record}/move">(.*?)</form>', html, re.S)
    assert form, "a form for the day, the drag's endpoint"
    fields = dict(re.findall(r'<input (?:id="[^"]+" )?type="(?:hidden|date)" name="([a-z_]+)" value="([^"]*)"',
                             form.group(1)))
    assert fields["date"] == "2026-12-10" and fields["view"] == "follow_up_calendar" and "csrf_token" in fields
    version = world.record("activity", "ROB-DEC")["version"]
    assert fields["version"] == str(version) and fields["mode"] == "month"
    assert f'<label for="reschedule-{record}">' in form.group(1)
    assert "calendar-reschedule" not in world.get(MONTH, "fin")  # may read, not change: no form
    response = world.app.test_client(user="rob").post(
        f"/app/activity/calendar/{record}/move", headers=BROWSER,
        data={**fields, "date": "2026-12-12"})
    assert response.status_code == 303
    assert where(world.get(MONTH, "rob"))["ROB-DEC"] == "2026-12-12"
