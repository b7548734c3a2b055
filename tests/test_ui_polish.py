"""Polish of the business screens (issue 8's follow-ups): ref pickers as list
filters, filter chips and cards naming records and people, one path for a
view's filters, a view the user may not use refused, the forbidden page,
the quick-add's moment prefilled, money's symbol, tags on board cards, the
search URL reserved, the calendar's form without JavaScript."""

from __future__ import annotations

import datetime as dt
import html as html_module
import re
from zoneinfo import ZoneInfo

import pytest

from conftest import SAMPLE_CONFIG, as_test_app, make_config, token_for
from crmkit.app import create_app
from crmkit.permissions import SYSTEM
from crmkit.settings import Settings
from test_ui_shell import BROWSER


@pytest.fixture(scope="module")
def world(module_database_url, tmp_path_factory):
    """The sample CRM: a sales team (two reps, their manager), an admin at
    head office; customers and opportunities of each rep."""
    root = tmp_path_factory.mktemp("polish")
    app = as_test_app(create_app(SAMPLE_CONFIG, Settings(database_url=module_database_url,
                                                         instance_dir=root / "instance")))
    rt = app.extensions["crmkit"]
    hq = rt.directory.create_team({"name": "hq", "label": "总部"}, SYSTEM)["id"]
    sales = rt.directory.create_team({"name": "sales", "label": "销售部", "parent_id": hq}, SYSTEM)["id"]
    ids: dict[str, int] = {"hq": hq, "sales": sales}
    for name, role, team in (("rep_a", "sales_rep", sales), ("rep_b", "sales_rep", sales),
                             ("manager", "sales_manager", sales), ("boss", "admin", hq), ("ana", "analyst", hq)):
        token_for(app, name, (role,), team_id=team, display_name=f"{name} 的名字")
        ids[name] = rt.directory.user(name)["id"]
    for name, owner in (("alpha", "rep_a"), ("beta", "rep_b")):
        ids[name] = rt.records.create("customer", {"name": f"{name}客户", "owner_id": ids[owner]}, SYSTEM)["id"]
        ids[f"deal_{name}"] = rt.records.create("opportunity", {"name": f"{name}商机", "customer": ids[name],
                                                                "amount": "1280", "owner_id": ids[owner]},
                                                SYSTEM)["id"]
    app.extensions["test_ids"] = ids
    yield app
    rt.engine.dispose()


def get(app, path: str, user: str = "boss", status: int = 200) -> str:
    response = app.test_client(user=user).get(path, headers=BROWSER)
    assert response.status_code == status, (path, response.status_code, response.get_data(as_text=True)[:600])
    return response.get_data(as_text=True)


def chips(html: str) -> list[str]:
    found = re.search(r'<ul class="filter-chips"[^>]*>(.*?)</ul>', html, re.S)
    items = re.findall(r"<li>(.*?) <a ", found.group(1), re.S) if found else []
    return [html_module.unescape(" ".join(item.split())) for item in items]


def select(html: str, name: str) -> str:
    found = re.search(rf'<select id="filter-{name}"[^>]*>.*?</select>', html, re.S)
    return found.group(0) if found else ""


# ---------------------------------------------------------------- 1. ref filters are pickers

def test_ref_owner_and_team_filters_are_pickers_that_ask_the_server(world):
    html = get(world, "/app/opportunity")
    customer, owner, team = select(html, "customer"), select(html, "owner_id"), select(html, "team_id")
    assert 'class="ref-picker" data-options-url="/app/customer/_options"' in customer
    assert 'data-options-url="/app/user/_options"' in owner and 'data-options-url="/app/team/_options"' in team
    # Never a whole table in the page: nothing but "any" until something is chosen.
    assert "alpha客户" not in customer and "rep_a 的名字" not in owner
    assert "tom-select.complete.min.js" in html and "forms.js" in html
    # Without JavaScript, the title search stands in for the picker.
    assert 'name="customer.name__contains"' in html


def test_a_chosen_ref_filter_keeps_its_choice_by_title(world):
    ids = world.extensions["test_ids"]
    html = get(world, f"/app/opportunity?customer={ids['alpha']}&owner_id={ids['rep_a']}")
    assert f'<option value="{ids["alpha"]}" selected>alpha客户</option>' in select(html, "customer")
    assert f'<option value="{ids["rep_a"]}" selected>rep_a 的名字</option>' in select(html, "owner_id")
    assert "alpha商机" in html and "beta商机" not in html


def test_the_pickers_answers_are_within_the_users_scope(world):
    answer = world.test_client(user="rep_a").get("/app/customer/_options?q=客户").get_json()
    assert [option["text"] for option in answer["data"]] == ["alpha客户"]


# ---------------------------------------------------------------- 2. chips name what they filter by

def test_chips_show_names_of_people_teams_and_records(world):
    ids = world.extensions["test_ids"]
    html = get(world, f"/app/opportunity?owner_id={ids['rep_a']}&team_id={ids['sales']}&customer={ids['alpha']}"
                      "&lang=en")
    assert chips(html) == ["Owner = rep_a 的名字", "Team = 销售部", "Customer = alpha客户"]


def test_a_chip_never_shows_a_title_the_user_may_not_read(world):
    ids = world.extensions["test_ids"]
    html = get(world, f"/app/opportunity?customer={ids['beta']}&lang=en", "rep_a")
    assert chips(html) == [f"Customer = #{ids['beta']}"]
    assert "beta客户" not in html


# ---------------------------------------------------------------- 4. a view's filters: one path

def test_the_urls_filter_replaces_the_views_own(world):
    """hot_leads is ``score__gte: 80``; the URL's ``score__gte=50`` replaces it
    (applied once, by the query builder, not ANDed with a second copy)."""
    rt = world.extensions["crmkit"]
    for name, score in (("warm-lead", 60), ("hot-lead", 90), ("cold-lead", 10)):
        rt.records.create("lead", {"name": name, "score": score}, SYSTEM)
    html = get(world, "/app/lead?view=hot_leads")
    assert "hot-lead" in html and "warm-lead" not in html
    html = get(world, "/app/lead?view=hot_leads&score__gte=50")
    assert "hot-lead" in html and "warm-lead" in html and "cold-lead" not in html
    export = world.test_client(user="boss").get("/api/v1/lead/_export?view=hot_leads&score__gte=50&lang=en")
    text = export.get_data(as_text=True)
    assert "warm-lead" in text and "cold-lead" not in text


def test_the_list_asks_the_query_builder_for_the_view_once(world):
    from crmkit.ui.list_state import read_state

    rt = world.extensions["crmkit"]
    access = rt.permissions.of(SYSTEM)
    entity = rt.spec.entities["lead"]
    with world.test_request_context("/app/lead"):
        state = read_state(rt, entity, access.entity("lead"), access, [("view", "hot_leads")])
        request = rt.queries.parse_list(entity, state.query, access)
    assert sorted(str(f) for f in request.filters) == sorted(set(str(f) for f in request.filters))
    assert len(request.filters) == 2  # status and score: each once


# ---------------------------------------------------------------- 5. a view that is not the user's

def test_a_bookmarked_view_of_other_roles_is_refused_not_the_whole_list(world):
    html = get(world, "/app/customer?view=hot_leads&lang=en", "rep_a", status=403)  # a view of leads
    assert "hot_leads" in html and "not one you may use" in html
    assert 'id="r' not in html  # no rows: not the whole list
    html = get(world, "/app/customer?view=no_such_view", "rep_a", status=403)
    assert "no_such_view" in html and 'id="r' not in html
    assert "alpha客户" in get(world, "/app/customer", "rep_a")


# ---------------------------------------------------------------- 3. and 9. cards and related lists

VISITS = {
    "app.yaml": """
        app: visits
        label: {en: Visits, zh: 上门}
    """,
    "entities/client.yaml": """
        entity: client
        label: {en: Client, zh: 客户}
        title: name
        owned: true
        fields:
          name: {type: string, required: true}
        relations:
          visits: {kind: one_to_many, entity: visit, field: client}
    """,
    "entities/visit.yaml": """
        entity: visit
        label: {en: Visit, zh: 上门}
        title: subject
        owned: true
        fields:
          subject: {type: string, required: true}
          client: {type: ref, to: client}
          engineer: {type: ref, to: user}
          crew: {type: ref, to: team}
          stage:
            type: enum
            default: planned
            options: [planned, done]
          planned_on: {type: date}
        list: {columns: [subject, engineer, crew, owner_id, team_id]}
    """,
    "workflows/visit.yaml": """
        workflow: visit_stage
        entity: visit
        field: stage
        states: [planned, done]
        initial: planned
        transitions:
          - {name: finish, from: planned, to: done}
    """,
    "views.yaml": """
        views:
          visit_board:
            entity: visit
            label: {en: Visit board, zh: 上门看板}
            kind: board
            group_by: stage
            columns: [engineer, crew, owner_id, team_id]
          my_visit_board:
            entity: visit
            label: {en: My visits, zh: 我的上门}
            kind: board
            group_by: stage
            where: "owner_id == me()"
          my_visit_calendar:
            entity: visit
            label: {en: My visit calendar, zh: 我的上门日历}
            kind: calendar
            date_field: planned_on
            where: "owner_id == me()"
    """,
    "tags.yaml": """
        tags:
          urgent: {entity: visit, label: {en: Urgent, zh: 加急}, color: red, use: Visit today}
          far_away: {entity: visit, label: {en: Far away, zh: 路远}, color: blue, use: Plan the trip}
    """,
}


@pytest.fixture(scope="module")
def visits(tmp_path_factory):
    """Visits with an engineer (a user), a crew (a team), an owner and a team, some tagged."""
    root = tmp_path_factory.mktemp("visits")
    config = make_config(root / "config", VISITS)
    app = as_test_app(create_app(config, Settings(database_url=f"sqlite:///{root / 'crm.sqlite3'}",
                                                  instance_dir=root / "instance")))
    rt = app.extensions["crmkit"]
    crew = rt.directory.create_team({"name": "crew", "label": "维修一组"}, SYSTEM)["id"]
    token_for(app, "ann", ("admin",), team_id=crew, display_name="安妮")
    token_for(app, "eng", ("admin",), team_id=crew, display_name="工程师老王")
    ann, eng = (rt.directory.user(name)["id"] for name in ("ann", "eng"))
    client = rt.records.create("client", {"name": "王府井店", "owner_id": ann}, SYSTEM)["id"]
    ids = {}
    for n in range(12):
        ids[n] = rt.records.create("visit", {"subject": f"visit-{n}", "client": client, "engineer": eng,
                                             "crew": crew, "owner_id": ann, "planned_on": "2026-12-03"},
                                   SYSTEM)["id"]
    rt.records.create("visit", {"subject": "engs-own-visit", "client": client, "owner_id": eng,
                                "planned_on": "2026-12-03"}, SYSTEM)
    for n in range(6, 12):
        rt.records.transition("visit", ids[n], "finish", {}, SYSTEM)
    rt.records.tagging.add("visit", ids[0], "urgent", SYSTEM)
    rt.records.tagging.add("visit", ids[9], "urgent", SYSTEM)
    rt.records.tagging.add("visit", ids[0], "far_away", SYSTEM)
    rt.records.tagging.add("visit", ids[5], "urgent", SYSTEM)
    app.extensions["test_ids"] = {"client": client, "crew": crew, "ann": ann, "eng": eng}
    yield app
    rt.engine.dispose()


def card_html(html: str, subject: str) -> str:
    start = html.index(f">{subject}</a>")
    return html[html.rindex("<li", 0, start):html.index("</li>", start)]


def test_board_cards_name_users_and_teams(visits):
    html = get(visits, "/app/visit/board?lang=en", "ann")
    card = card_html(html, "visit-3")
    assert "工程师老王" in card and "维修一组" in card and "安妮" in card
    assert "#" not in re.sub(r"<[^>]+>", "", card)


def test_board_cards_show_their_tags(visits):
    html = get(visits, "/app/visit/board?lang=en", "ann")
    first, sixth, plain = card_html(html, "visit-0"), card_html(html, "visit-5"), card_html(html, "visit-3")
    assert "Urgent" in first and "Far away" in first and "Urgent" in sixth
    assert "Urgent" in card_html(html, "visit-9")  # in the other column
    assert "Urgent" not in plain and "Far away" not in plain


def test_a_board_reads_names_and_tags_once_not_per_card_or_column(visits):
    """The queries of a board do not grow with its cards: names and tags are
    read once for the board."""
    from sqlalchemy import event

    rt = visits.extensions["crmkit"]
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(rt.engine, "before_cursor_execute", count)
    try:
        get(visits, "/app/visit/board?lang=en", "ann")
    finally:
        event.remove(rt.engine, "before_cursor_execute", count)
    lookups = ("SELECT crmkit_user.id, crmkit_user.username, crmkit_user.display_name \n", "SELECT crmkit_team.id")
    names = [s for s in statements if s.startswith(lookups)]
    tags = [s for s in statements if "FROM crmkit_record_tags" in s]
    assert len(names) == 2, names  # the users' names, the teams' names: once each, for both columns' cards
    assert len(tags) == 1, tags


def test_related_lists_name_users_and_teams(visits):
    ids = visits.extensions["test_ids"]
    html = get(visits, f"/app/client/{ids['client']}/related/visits?lang=en", "ann")
    assert "工程师老王" in html and "维修一组" in html and "安妮" in html
    rows = html[html.index("<table"):html.index("</table>")]
    assert "工程师老王" in rows and "维修一组" in rows and not re.search(r">#\d+<", rows)


# ---------------------------------------------------------------- 6. the forbidden page

def test_the_forbidden_page_says_what_was_refused_in_the_shell(world):
    html = get(world, "/app/product/new", "rep_a", status=403)
    assert "<h1>没有权限</h1>" in html and "你的角色不允许你新建产品。" in html
    assert '<header class="topbar">' in html and '<nav class="sidebar"' in html  # in the shell
    assert '<a href="/app/">' in html  # a way home
    html = get(world, "/app/product/new?lang=en", "rep_a", status=403)
    assert "<h1>Not allowed</h1>" in html and "Your role does not allow you to create a Product." in html
    assert "Something went wrong" not in html


def test_the_forbidden_page_for_a_change_names_it(world):
    ids = world.extensions["test_ids"]
    html = get(world, f"/app/customer/{ids['alpha']}/edit?lang=en", "ana", status=403)
    assert "Your role does not allow you to change this Customer." in html


# ---------------------------------------------------------------- 7. the quick-add's moment

def test_the_quick_add_prefills_now_in_the_apps_timezone(world):
    ids = world.extensions["test_ids"]
    before = dt.datetime.now(ZoneInfo("Asia/Shanghai")).replace(second=0, microsecond=0)
    html = get(world, f"/app/customer/{ids['alpha']}/timeline", "rep_a")
    after = dt.datetime.now(ZoneInfo("Asia/Shanghai"))
    found = re.search(r'<input[^>]*name="occurred_at"[^>]*>', html)
    assert found, "the quick-add asks for the moment"
    value = re.search(r'value="([^"]*)"', found.group(0)).group(1)
    shown = dt.datetime.fromisoformat(value).replace(tzinfo=ZoneInfo("Asia/Shanghai"))
    assert before <= shown <= after


# ---------------------------------------------------------------- 10. the screens' own URLs are reserved

def test_every_page_beside_an_entitys_is_a_reserved_entity_name(world):
    """/app/search, /app/language, /api/v1/openapi.json…: a fixed first part of
    a URL where an entity's name goes would make an entity of that name
    unreachable, so the checker refuses it as an entity name."""
    from crmkit.metadata.spec import RESERVED_ENTITY_NAMES

    fixed = set()
    for rule in world.url_map.iter_rules():
        for prefix in ("/app/", "/api/v1/"):
            if rule.rule.startswith(prefix):
                first = rule.rule[len(prefix):].split("/")[0].split(".")[0]
                if first and "<" not in first:
                    fixed.add(first)
    assert "search" in fixed
    assert fixed <= RESERVED_ENTITY_NAMES, fixed - RESERVED_ENTITY_NAMES



def test_a_board_and_a_calendar_apply_their_views_where(visits):
    """A view's ``where`` is a segment wherever the view is shown (through the
    query builder's ``view=``), not on lists only."""
    board = get(visits, "/app/visit/board?view=my_visit_board&lang=en", "ann")
    assert "visit-3" in board and "engs-own-visit" not in board
    assert "engs-own-visit" in get(visits, "/app/visit/board?view=visit_board&lang=en", "ann")
    calendar = get(visits, "/app/visit/calendar?view=my_visit_calendar&date=2026-12-03&lang=en", "ann")
    assert "visit-3" in calendar and "engs-own-visit" not in calendar
    calendar = get(visits, "/app/visit/calendar?view=my_visit_calendar&date=2026-12-03&lang=en", "eng")
    assert "engs-own-visit" in calendar and "visit-3" not in calendar
