"""Polish of the business screens (issue 8's follow-ups): ref pickers as list
filters, filter chips and cards naming records and people, one path for a
view's filters, a view the user may not use refused, the forbidden page,
the quick-add's moment prefilled, money's symbol, tags on board cards, the
search URL reserved, the calendar's form without JavaScript."""

from __future__ import annotations


import html as html_module
import re


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
                             ("manager", "sales_manager", sales), ("boss", "admin", hq)):
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
    from crmkit.ui.lists import read_state

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
    html = get(world, "/app/customer?view=hot_leads", "rep_a", status=403)  # a view of leads
    assert "hot_leads" in html and "not one you may use" in html
    assert 'id="r' not in html  # no rows: not the whole list
    html = get(world, "/app/customer?view=no_such_view", "rep_a", status=403)
    assert "no_such_view" in html and 'id="r' not in html
    assert "alpha客户" in get(world, "/app/customer", "rep_a")
