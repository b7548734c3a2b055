"""The board (/app/<entity>/board): a column per workflow state, cards within
each role's scope of the sample retail CRM, moves through the records service
(allowed, refused with the reason, required fields asked), money totals per
column, and card text rendered inert."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pytest

from conftest import MINI_FILES, SAMPLE_CONFIG, as_test_app, make_config, token_for
from crmkit.app import create_app
from crmkit.permissions import SYSTEM, Actor
from crmkit.settings import Settings
from crmkit.ui import boards

BROWSER = {"Accept": "text/html"}
HTMX = {"HX-Request": "true"}
XSS = '<img src=x onerror=alert(1)>"><script>alert(2)</script>'

#: The sample config's roles, a user of each (rex and rob are reps of two teams; mia manages rex's).
USERS = {"ann": ("admin",), "mia": ("sales_manager",), "rex": ("sales_rep",), "rob": ("sales_rep",),
         "sam": ("service_rep",), "mark": ("marketer",), "ana": ("analyst",), "eve": ("executive",),
         "fin": ("finance",), "mo": ("sales_rep",)}
TEAMS = {"mia": "east", "rex": "east", "rob": "west", "mo": "south"}


@dataclass
class World:
    """The sample app with a user per role and a few opportunities."""

    app: object
    actors: dict[str, Actor] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)

    @property
    def rt(self):
        return self.app.extensions["crmkit"]

    def get(self, path: str, user: str, status: int = 200, **kwargs) -> str:
        response = self.app.test_client(user=user).get(path, headers=BROWSER, **kwargs)
        assert response.status_code == status, (path, user, response.status_code, response.get_data(as_text=True))
        return response.get_data(as_text=True)

    def record(self, entity: str, name: str) -> dict:
        with self.rt.engine.connect() as conn:
            row = self.rt.queries.fetch(conn, self.rt.spec.entities[entity], self.ids[name], actor=SYSTEM)
        return dict(row)


def build_world(url: str, root: Path) -> World:
    app = as_test_app(create_app(SAMPLE_CONFIG, Settings(database_url=url, instance_dir=root / "instance")))
    world = World(app)
    directory = world.rt.directory
    teams = {name: directory.create_team({"name": name}, SYSTEM)["id"] for name in sorted(set(TEAMS.values()))}
    for user, roles in USERS.items():
        extra = {"team_id": teams[TEAMS[user]]} if user in TEAMS else {}
        token_for(app, user, roles, **extra)
        world.actors[user] = directory.actor(directory.user(user))
    records = world.rt.records
    for owner in ("rex", "rob"):
        customer = records.create("customer", {"name": f"{owner.upper()}-CUSTOMER {XSS}"}, world.actors[owner])
        world.ids[f"{owner}-customer"] = customer["id"]
    rex, rob = world.actors["rex"], world.actors["rob"]
    world.ids["rex-open"] = records.create("opportunity", {
        "name": f"REX-OPEN {XSS}", "customer": world.ids["rex-customer"], "amount": "1000",
        "notes": "REX-SECRET-NOTE"}, rex)["id"]
    world.ids["rob-open"] = records.create("opportunity", {
        "name": "ROB-OPEN", "customer": world.ids["rob-customer"], "amount": "500.5"}, rob)["id"]
    # One in negotiation with nothing to win yet (win needs amount > 0).
    deal = records.create("opportunity", {"name": "REX-ZERO", "customer": world.ids["rex-customer"], "amount": "0",
                                          "expected_close_date": "2026-12-31"}, rex)["id"]
    for move in ("analyse_needs", "propose", "negotiate"):
        records.transition("opportunity", deal, move, {}, rex)
    world.ids["rex-zero"] = deal
    return world


@pytest.fixture(scope="module")
def world(module_database_url, tmp_path_factory) -> Iterator[World]:
    made = build_world(module_database_url, tmp_path_factory.mktemp("board"))
    yield made
    made.rt.engine.dispose()


def cards(html: str) -> dict[str, list[str]]:
    """Card titles by column state."""
    found = {}
    for state, body in re.findall(r'<ol class="board-cards" data-state="([a-z_]+)"[^>]*>(.*?)</ol>', html, re.S):
        found[state] = re.findall(r'class="card-title"[^>]*>([^<]*)<', body)
    return found


def titles(html: str) -> set[str]:
    return {title.split(" ")[0] for column in cards(html).values() for title in column}


def card_html(html: str, record_id: int) -> str:
    return re.search(rf'<li class="card[^"]*" data-id="{record_id}".*?</li>', html, re.S).group(0)


def new_deal(world: World, name: str, owner: str = "mo", **values) -> int:
    data = {"name": name, "customer": world.ids["rex-customer"] if owner == "rex" else None, **values}
    actor = world.actors[owner]
    if data["customer"] is None:
        data["customer"] = world.rt.records.create("customer", {"name": f"{name} customer"}, actor)["id"]
    record = world.rt.records.create("opportunity", data, actor)
    world.ids[name] = record["id"]
    return record["id"]


def move(world: World, user: str, name: str, transition: str, *, version: int | None = None, htmx: bool = True,
         **values):
    record = world.record("opportunity", name)
    data = {"transition": transition, "version": str(version if version is not None else record["version"]),
            "view": "opportunity_board", **values}
    return world.app.test_client(user=user).post(f"/app/opportunity/board/{world.ids[name]}/move", data=data,
                                                 headers=HTMX if htmx else BROWSER)


# ---------------------------------------------------------------- reading


@pytest.mark.parametrize(("user", "expected"), [
    ("ann", {"REX-OPEN", "ROB-OPEN", "REX-ZERO"}),
    ("mia", {"REX-OPEN", "REX-ZERO"}),
    ("rex", {"REX-OPEN", "REX-ZERO"}),
    ("rob", {"ROB-OPEN"}),
    ("sam", set()),
    ("mark", {"REX-OPEN", "ROB-OPEN", "REX-ZERO"}),
    ("ana", {"REX-OPEN", "ROB-OPEN", "REX-ZERO"}),
    ("eve", {"REX-OPEN", "ROB-OPEN", "REX-ZERO"}),
    ("fin", {"REX-OPEN", "ROB-OPEN", "REX-ZERO"}),
])
def test_every_role_sees_the_cards_of_its_scope_and_no_other(world, user, expected):
    html = world.get("/app/opportunity/board", user)
    assert {t for t in titles(html) if t.startswith(("REX-", "ROB-"))} == expected  # others' are made by other tests
    assert list(cards(html)) == list(world.rt.spec.entities["opportunity"].fields["stage"].option_values)


def test_columns_are_the_workflow_states_with_their_labels(world):
    html = world.get("/app/opportunity/board", "rex")
    assert re.findall(r'<h2 id="column-[a-z_]+">([^<]+)</h2>', html) == [
        "验证客户", "需求分析", "方案报价", "谈判审核", "赢单", "输单", "无效"]
    assert "REX-OPEN" in cards(html)["qualification"][0] and "REX-ZERO" in cards(html)["negotiation"][0]


def test_cards_link_to_their_records_and_show_the_views_fields(world):
    html = world.get("/app/opportunity/board", "rex")
    assert f'href="/app/opportunity/{world.ids["rex-open"]}"' in html
    assert "¥1,000.00" in html and "商机金额" in html and "REX-CUSTOMER" in html


def test_hidden_field_values_never_reach_the_board(world):
    for user in USERS:
        assert "REX-SECRET-NOTE" not in world.get("/app/opportunity/board", user)


@pytest.mark.parametrize("user", ["mark", "ana", "eve", "fin", "sam"])
def test_roles_without_the_transition_action_get_no_handles_and_no_move_buttons(world, user):
    html = world.get("/app/opportunity/board", user)
    assert "card-movable" not in html and "drag-handle" not in html
    assert 'name="transition"' not in html and "/move" not in html and "data-moves" not in html


def test_a_rep_gets_the_moves_of_their_cards_from_each_state(world):
    html = world.get("/app/opportunity/board", "rex")
    card = card_html(html, world.ids["rex-open"])
    assert "card-movable" in card and "drag-handle" in card
    assert re.findall(r'name="transition" value="([a-z_]+)"', card) == ["analyse_needs", "invalidate"]
    assert "/move/lose" in card  # lose needs a reason: it is asked for first
    zero = card_html(html, world.ids["rex-zero"])
    assert re.findall(r'name="transition" value="([a-z_]+)"', zero) == ["revise_proposal", "win"]


def test_money_totals_per_column_within_the_scope(world):
    def totals(user):
        html = world.get("/app/opportunity/board", user)
        return dict(re.findall(r'<h2 id="column-([a-z_]+)">.*?<p class="board-total">.*?</span>([^<]+)</p>', html,
                               re.S))
    rex = totals("rex")
    assert rex["qualification"] == "¥1,000.00" and rex["negotiation"] == "¥0.00" and rex["won"] == "¥0.00"
    assert totals("mia")["qualification"] == "¥1,000.00"
    assert totals("rob")["qualification"] == "¥500.50"
    ann = world.get("/app/opportunity/board?lang=en", "ann")
    assert "¥1,500.50" in ann


def test_payloads_in_card_titles_and_fields_render_inert(world):
    for user in ("rex", "ann"):
        html = world.get("/app/opportunity/board", user)
        assert "<img src=x" not in html and "<script>alert" not in html
        assert "&lt;img src=x onerror=alert(1)&gt;&#34;&gt;&lt;script&gt;" in html


def test_an_entity_without_a_workflow_or_out_of_reach_has_no_board(world):
    world.get("/app/customer/board", "ann", 404)
    world.get("/app/nothing/board", "ann", 404)
    world.get("/app/campaign/board", "sam", 404)
    world.get("/app/opportunity/board?view=ticket_board", "ann", 404)
    world.get("/app/ticket/board", "sam")  # the ticket board, from views.yaml


def test_a_column_pages_with_more(world, monkeypatch):
    monkeypatch.setattr(boards, "COLUMN_SIZE", 1)
    for n in range(2):
        new_deal(world, f"MO-PAGE-{n}")
    html = world.get("/app/opportunity/board", "mo")
    first = cards(html)["qualification"]
    more = re.search(r'<li class="board-more"><a href="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert len(first) == 1
    response = world.app.test_client(user="mo").get(more, headers=HTMX)
    fragment = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in fragment
    second = re.findall(r'class="card-title"[^>]*>([^<]*)<', fragment)
    assert len(second) == 1 and second != first
    assert "<html" in world.get(more, "mo")  # without script: a page of its own
    world.get("/app/opportunity/board/column/nowhere", "mo", 404)


# ---------------------------------------------------------------- moving


def test_an_allowed_move_is_a_transition_and_answers_the_board(world):
    deal = new_deal(world, "MO-ALLOWED")
    response = move(world, "mo", "MO-ALLOWED", "analyse_needs")
    assert response.status_code == 200
    assert "MO-ALLOWED" in cards(response.get_data(as_text=True))["needs_analysis"][0]
    record = world.record("opportunity", "MO-ALLOWED")
    assert record["stage"] == "needs_analysis" and record["version"] == 2
    with world.rt.engine.connect() as conn:
        history = world.rt.queries.history_page(conn, world.rt.spec.entities["opportunity"], deal,
                                                world.rt.queries.parse_list(world.rt.queries.history, [],
                                                                            world.rt.permissions.of(SYSTEM)),
                                                actor=SYSTEM)
    assert len(history.rows) == 2  # created, then moved: through the records service and its audit


def test_a_move_without_script_redirects_back_with_a_message(world):
    new_deal(world, "MO-NOSCRIPT")
    response = move(world, "mo", "MO-NOSCRIPT", "invalidate", htmx=False)
    assert response.status_code == 303 and response.location.startswith("/app/opportunity/board")
    assert world.record("opportunity", "MO-NOSCRIPT")["stage"] == "invalid"


def test_a_refused_move_says_why_and_changes_nothing(world):
    before = world.record("opportunity", "rex-zero")
    response = move(world, "rex", "rex-zero", "win")
    assert response.status_code == 409
    text = response.get_data(as_text=True)
    assert 'role="alert"' in text and "amount &gt; 0" in text and "赢单" in text
    assert world.record("opportunity", "rex-zero") == before


def test_a_move_the_role_lacks_is_refused(world):
    before = world.record("opportunity", "rex-open")
    assert move(world, "ana", "rex-open", "analyse_needs").status_code == 403  # reads, may not move
    assert move(world, "rob", "rex-open", "analyse_needs").status_code == 404  # not in their scope at all
    assert move(world, "sam", "rex-open", "analyse_needs").status_code == 404
    assert world.record("opportunity", "rex-open") == before


def test_a_stale_card_is_refused(world):
    new_deal(world, "MO-STALE")
    response = move(world, "mo", "MO-STALE", "analyse_needs", version=7)
    assert response.status_code == 409 and "其他人刚刚修改了这条记录" in response.get_data(as_text=True)
    assert world.record("opportunity", "MO-STALE")["stage"] == "qualification"


def test_a_move_that_needs_fields_asks_for_them_then_moves(world):
    new_deal(world, "MO-LOSE")
    dialog = world.app.test_client(user="mo").get(
        f"/app/opportunity/board/{world.ids['MO-LOSE']}/move/lose?view=opportunity_board", headers=HTMX)
    assert dialog.status_code == 200 and dialog.headers["X-Crmkit-Dialog"] == "1"
    html = dialog.get_data(as_text=True)
    assert ('<label for="move-lost_reason">输单原因<span class="required-mark" aria-hidden="true">*</span></label>'
            in html)
    assert 'name="lost_reason" required' in html and '<option value="price">价格因素</option>' in html
    asked = move(world, "mo", "MO-LOSE", "lose")
    assert asked.status_code == 422 and asked.headers["X-Crmkit-Dialog"] == "1"
    assert 'aria-invalid="true"' in asked.get_data(as_text=True)
    assert world.record("opportunity", "MO-LOSE")["stage"] == "qualification"
    bad = move(world, "mo", "MO-LOSE", "lose", lost_reason="bored")
    assert bad.status_code == 422 and world.record("opportunity", "MO-LOSE")["stage"] == "qualification"
    done = move(world, "mo", "MO-LOSE", "lose", lost_reason="price")
    assert done.status_code == 200
    record = world.record("opportunity", "MO-LOSE")
    assert record["stage"] == "lost" and record["lost_reason"] == "price"


def test_required_amounts_are_taken_from_the_dialog(world):
    new_deal(world, "MO-PROPOSE")
    assert move(world, "mo", "MO-PROPOSE", "analyse_needs").status_code == 200
    assert move(world, "mo", "MO-PROPOSE", "propose").status_code == 422
    bad = move(world, "mo", "MO-PROPOSE", "propose", amount="两千")
    assert bad.status_code == 422 and 'id="move-amount-error"' in bad.get_data(as_text=True)
    assert world.record("opportunity", "MO-PROPOSE")["stage"] == "needs_analysis"
    # Read as the record forms read it (one rule): grouping commas are dropped.
    assert move(world, "mo", "MO-PROPOSE", "propose", amount="2,000.50").status_code == 200
    assert world.record("opportunity", "MO-PROPOSE")["amount"] == Decimal("2000.50")


def test_the_dialog_is_a_page_without_script(world):
    new_deal(world, "MO-PAGE-DIALOG")
    html = world.get(f"/app/opportunity/board/{world.ids['MO-PAGE-DIALOG']}/move/lose", "mo")
    assert "<html" in html and 'name="lost_reason"' in html and 'name="csrf_token"' in html
    world.get(f"/app/opportunity/board/{world.ids['MO-PAGE-DIALOG']}/move/fly", "mo", 404)
    world.get(f"/app/opportunity/board/{world.ids['MO-PAGE-DIALOG']}/move/lose", "rob", 404)


def test_a_browser_move_needs_the_csrf_token(world):
    from test_ui_shell import log_in

    client, csrf = log_in(world.app, "lou", ("sales_rep",))
    lou = world.rt.directory.actor(world.rt.directory.user("lou"))
    customer = world.rt.records.create("customer", {"name": "LOU customer"}, lou)
    deal = world.rt.records.create("opportunity", {"name": "LOU-DEAL", "customer": customer["id"]}, lou)
    path = f"/app/opportunity/board/{deal['id']}/move"
    assert client.post(path, data={"transition": "analyse_needs"}, headers=HTMX).status_code == 403
    assert client.post(path, data={"transition": "analyse_needs", "csrf_token": csrf}, headers=HTMX).status_code == 200
    html = client.get("/app/opportunity/board", headers=BROWSER).get_data(as_text=True)
    assert f'name="csrf_token" value="{csrf}"' in html


# ---------------------------------------------------------------- a config of its own

DEAL_FILES = {
    **MINI_FILES,
    "entities/deal.yaml": """
        entity: deal
        label: {en: Deal, zh: 交易}
        title: name
        owned: true
        fields:
          name: {type: string, required: true}
          secret: {type: string}
          phone: {type: phone}
          amount: {type: money}
          state: {type: enum, options: [open, done], default: open}
    """,
    "workflows/deal.yaml": """
        workflow: deal_state
        entity: deal
        field: state
        states: [open, done]
        initial: open
        transitions:
          - {name: finish, from: open, to: done, roles: [closer]}
    """,
    "views.yaml": """
        views:
          deals:
            entity: deal
            kind: board
            group_by: state
            columns: [secret, phone, amount]
            total: amount
    """,
    "roles.yaml": """
        roles:
          closer:
            entities: {deal: {read: all, transition: all}}
          watcher:
            entities: {deal: {read: all, transition: all}}
            fields: {deal.secret: hidden, deal.phone: masked, deal.amount: masked}
    """,
}


def test_hidden_fields_never_show_masked_ones_show_masked_and_masked_amounts_are_not_summed(make_app, tmp_path):
    app = make_app(make_config(tmp_path / "config", DEAL_FILES))
    rt = app.extensions["crmkit"]
    rt.records.create("deal", {"name": "D1", "secret": "TOP-SECRET-42", "phone": "13812345678", "amount": "99"},
                      SYSTEM)
    token_for(app, "cal", ("closer",))
    token_for(app, "wat", ("watcher",))
    closer = app.test_client(user="cal").get("/app/deal/board", headers=BROWSER).get_data(as_text=True)
    assert "TOP-SECRET-42" in closer and "13812345678" in closer and "¥99.00" in closer
    assert 'value="finish"' in closer
    watcher = app.test_client(user="wat").get("/app/deal/board", headers=BROWSER).get_data(as_text=True)
    assert "TOP-SECRET-42" not in watcher and "13812345678" not in watcher and "99" not in watcher.split("<main")[1]
    assert "138****5678" in watcher and "board-total" not in watcher
    # The watcher's transition scope covers the deal, but the move is the closer's alone: no handle, no button.
    assert "card-movable" not in watcher and 'value="finish"' not in watcher


# ---------------------------------------------------------------- a move that asks for a ref

REF_MOVE_FILES = {
    **MINI_FILES,
    "entities/deal.yaml": """
        entity: deal
        title: name
        owned: true
        fields:
          name: {type: string, required: true}
          buyer: {type: ref, to: customer}
          secret: {type: string}
          state: {type: enum, options: [open, done], default: open}
    """,
    "workflows/deal.yaml": """
        workflow: deal_state
        entity: deal
        field: state
        states: [open, done]
        initial: open
        transitions:
          - {name: finish, from: open, to: done, require: [buyer, secret]}
    """,
    "roles.yaml": """
        roles:
          closer:
            entities: {deal: {read: all, transition: all, update: all}, customer: {read: all}}
            fields: {deal.secret: hidden}
    """,
}


def test_a_move_asks_for_a_ref_with_the_forms_picker(make_app, tmp_path):
    app = make_app(make_config(tmp_path / "config", REF_MOVE_FILES))
    rt = app.extensions["crmkit"]

    def stored(key: int) -> dict:
        with rt.engine.connect() as conn:
            return dict(rt.queries.fetch(conn, rt.spec.entities["deal"], key, actor=SYSTEM))

    buyer = rt.records.create("customer", {"name": "买家甲"}, SYSTEM)["id"]
    deal = rt.records.create("deal", {"name": "D1", "secret": "TOP-SECRET-42"}, SYSTEM)["id"]
    token_for(app, "cal", ("closer",))
    client = app.test_client(user="cal")
    board = client.get("/app/deal/board", headers=BROWSER).get_data(as_text=True)
    assert "forms.js" in board and "tom-select" in board  # the dialog's picker works on the board
    dialog = client.get(f"/app/deal/board/{deal}/move/finish", headers=HTMX).get_data(as_text=True)
    assert 'class="ref-picker" data-options-url="/app/customer/_options"' in dialog
    assert '<label for="move-buyer">' in dialog and 'id="move-buyer" name="buyer"' in dialog
    assert "secret" not in dialog and "TOP-SECRET-42" not in dialog  # a hidden field is not asked for
    bad = client.post(f"/app/deal/board/{deal}/move", data={"transition": "finish", "buyer": "999999"},
                      headers=HTMX)
    assert bad.status_code == 422 and 'id="move-buyer-error"' in bad.get_data(as_text=True)
    assert stored(deal)["state"] == "open"
    done = client.post(f"/app/deal/board/{deal}/move", data={"transition": "finish", "buyer": str(buyer)},
                       headers=HTMX)
    assert done.status_code == 200
    column = rt.spec.entities["deal"].fields["buyer"].column
    assert (stored(deal)["state"], stored(deal)[column]) == ("done", buyer)


# ---------------------------------------------------------------- a move that needs approval

APPROVAL_MOVE_FILES = {
    **MINI_FILES,
    "entities/deal.yaml": """
        entity: deal
        title: name
        owned: true
        fields:
          name: {type: string, required: true}
          state: {type: enum, options: [open, signed, lost], default: open}
    """,
    "workflows/deal.yaml": """
        workflow: deal_state
        entity: deal
        field: state
        states: [open, signed, lost]
        initial: open
        transitions:
          - name: sign
            label: {en: Sign, zh: 签约}
            from: open
            to: signed
            approval: {steps: [{role: checker}]}
          - {name: lose, from: [open, signed], to: lost}
    """,
    "roles.yaml": """
        roles:
          seller:
            entities: {deal: {read: own, create: true, transition: own}}
          checker:
            entities: {deal: {read: all}}
    """,
}


def test_a_dropped_card_whose_move_needs_approval_stays_marked_and_says_so(make_app, tmp_path):
    app = make_app(make_config(tmp_path / "config", APPROVAL_MOVE_FILES))
    rt = app.extensions["crmkit"]
    token_for(app, "sel", ("seller",))
    token_for(app, "chk", ("checker",))
    seller = rt.directory.actor(rt.directory.user("sel"))
    deal = rt.records.create("deal", {"name": "D-APPROVE"}, seller)
    other = rt.records.create("deal", {"name": "D-OTHER"}, seller)

    browser = app.test_client(user="sel")  # one session: the flashed message

    def drop(record: dict, htmx: bool):
        return browser.post(f"/app/deal/board/{record['id']}/move", data={
            "transition": "sign", "version": str(record["version"])}, headers=HTMX if htmx else BROWSER)

    response = drop(deal, htmx=True)
    assert response.status_code == 200
    from urllib.parse import unquote
    assert unquote(response.headers["X-Crmkit-Notice"]) == "已提交审批：签约。"
    html = response.get_data(as_text=True)
    assert sorted(cards(html)["open"]) == ["D-APPROVE", "D-OTHER"] and cards(html)["signed"] == []
    marked = card_html(html, deal["id"])
    assert "card-pending" in marked and "待审批：签约" in marked
    assert "card-movable" not in marked and "data-moves" not in marked  # locked until decided
    assert "card-pending" not in card_html(html, other["id"]) and "card-movable" in card_html(html, other["id"])
    page = app.test_client(user="sel").get("/app/deal/board", headers=BROWSER).get_data(as_text=True)
    assert "待审批：签约" in card_html(page, deal["id"])

    # Without script: the same move of another card redirects back with the message, the card marked.
    response = drop(other, htmx=False)
    assert response.status_code == 303 and response.location.startswith("/app/deal/board")
    page = browser.get(response.location, headers=BROWSER).get_data(as_text=True)
    assert "已提交审批：签约。" in page and "card-pending" in card_html(page, other["id"])

    # Decided: the mark goes, the card moves.
    (approval,) = rt.records.approvals.listing(rt.directory.actor(rt.directory.user("chk")), mine="pending",
                                               record_id=deal["id"])[0]
    rt.records.approvals.approve(approval["id"], rt.directory.actor(rt.directory.user("chk")))
    page = app.test_client(user="sel").get("/app/deal/board", headers=BROWSER).get_data(as_text=True)
    assert cards(page)["signed"] == ["D-APPROVE"] and "card-pending" not in card_html(page, deal["id"])
