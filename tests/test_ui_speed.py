"""What the screens do to be quick, and that it changes nothing they show:
the shell kept per roles and language holds nothing of one user, the kept
list page gets each request's own rows, token and page links, a list's
column rules and batch escaping write what one value at a time wrote, the
record page asks its may-they questions in one read and keeps its related
lists' frame with the record's own id put in, and a ref picker's search is
one read along an index. (The figures are bench/ui_list.py and
bench/ui_record.py: a test here checks behaviour and statement counts, not time.)"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from html import escape

import pytest
import sqlalchemy as sa

from conftest import MINI_FILES, SAMPLE_CONFIG, as_test_app, make_config, token_for
from crmkit.app import create_app
from crmkit.metadata.spec import FieldSpec, Option
from crmkit.settings import Settings
from crmkit.ui import display, list_rows
from test_ui_record import BROWSER, World, created, get
from test_ui_shell import ROLES_YAML, log_in


@pytest.fixture
def app(make_app, tmp_path):
    return make_app(make_config(tmp_path / "config", {**MINI_FILES, "roles.yaml": ROLES_YAML}))


@pytest.fixture(scope="module")
def world(module_database_url, tmp_path_factory):
    """The sample app with a user per role and records of a rep (test_ui_record's world)."""
    root = tmp_path_factory.mktemp("speed")
    app = as_test_app(create_app(SAMPLE_CONFIG, Settings(database_url=module_database_url,
                                                         instance_dir=root / "instance")))
    yield World(app)
    app.extensions["crmkit"].engine.dispose()


def statements(engine):
    """The statements run while the block runs (BEGIN and the like left out)."""
    seen: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")):
            seen.append((statement, parameters))

    class Recorder:
        def __enter__(self):
            sa.event.listen(engine, "before_cursor_execute", record)
            return seen

        def __exit__(self, *exc):
            sa.event.remove(engine, "before_cursor_execute", record)

    return Recorder()


# ---------------------------------------------------------------- the kept shell

def test_the_kept_shell_gives_each_user_their_own_name_and_token(app):
    ann, ann_csrf = log_in(app, "ann")
    bob, bob_csrf = log_in(app, "bob")  # the same roles: the same kept top bar and menu
    assert ann_csrf != bob_csrf
    for client, me, mine, other, theirs in ((ann, "ann", ann_csrf, "bob", bob_csrf),
                                           (bob, "bob", bob_csrf, "ann", ann_csrf)):
        for path in ("/app/", "/app/customer", "/app/customer"):
            html = client.get(path, headers=BROWSER).get_data(as_text=True)
            top = re.search(r'<header class="topbar">.*?</header>', html, re.S).group(0)
            assert f'<span class="who" title="当前用户：{me}">{me}</span>' in top
            assert top.count(f'name="csrf_token" value="{mine}"') == 2  # the language switch and logout
            assert theirs not in html and f">{other}<" not in html


def test_the_kept_shell_escapes_what_it_puts_in(app):
    client = app.test_client()
    html = client.get('/app/search?q=<b>"q"%26', headers=BROWSER).get_data(as_text=True)
    top = re.search(r'<header class="topbar">.*?</header>', html, re.S).group(0)
    assert "<b>" not in html
    assert 'value="&lt;b&gt;&#34;q&#34;&amp;"' in top  # the search box keeps the search, escaped
    assert 'name="next" value="/app/search?q=&lt;b&gt;&#34;q&#34;%26"' in top  # and the language switch the page
    again = client.get("/app/search?q=plain", headers=BROWSER).get_data(as_text=True)
    assert 'value="plain"' in again and "&lt;b&gt;" not in again


def test_the_kept_shell_follows_the_page_the_language_and_the_roles(app):
    token_for(app, "cleo", ("clerk",))
    clerk = app.test_client(user="cleo")
    admin = app.test_client()
    gold = admin.get("/app/customer?level=gold", headers=BROWSER).get_data(as_text=True)
    silver = admin.get("/app/customer?level=silver", headers=BROWSER).get_data(as_text=True)
    assert 'name="next" value="/app/customer?level=gold"' in gold
    assert 'name="next" value="/app/customer?level=silver"' in silver
    assert re.search(r'href="/app/customer" aria-current="page"', gold)
    home = admin.get("/app/", headers=BROWSER).get_data(as_text=True)
    assert 'href="/app/" aria-current="page"' in home and 'href="/app/customer" aria-current' not in home
    english = admin.get("/app/?lang=en", headers=BROWSER).get_data(as_text=True)
    assert "Log out" in english and "退出登录" not in english and "退出登录" in home
    mine = clerk.get("/app/order", headers=BROWSER).get_data(as_text=True)
    nav = re.search(r'<nav class="sidebar".*?</nav>', mine, re.S).group(0)
    assert "/app/order" in nav and "/app/customer" not in nav  # the clerk's menu, not the admin's
    assert "/admin/" not in mine and "/admin/" in home


# ---------------------------------------------------------------- the list's cells

VALUES = {
    "money": [Decimal("0"), Decimal("1234567.5"), Decimal("-0.005"), 12, "88.10"],
    "integer": [0, 7, -1234567],
    "decimal": [Decimal("3.14159"), Decimal("1E+2"), 2.5],
    "enum": ["a", "gone"],
    "multi_enum": [["a", "b"], ["b", "gone"]],
    "boolean": [True, False],
    "region": ["440106", "999999"],
    "date": [dt.date(2026, 1, 31)],
    "datetime": [dt.datetime(2026, 11, 30, 16, 20, tzinfo=dt.UTC), dt.datetime(2026, 1, 1)],
    "json": [{"k": "值"}],
    "string": ["王<b>&", 42],
}


@pytest.mark.parametrize("language", ["zh", "en"])
@pytest.mark.parametrize("kind", sorted(VALUES))
def test_a_columns_rule_writes_what_field_value_writes(kind, language):
    options = (Option("a", {"en": "Apple", "zh": "苹果"}), Option("b", {"en": "B&B", "zh": "B&B"})) \
        if kind in ("enum", "multi_enum") else ()
    f = FieldSpec("x", kind, {"en": "X", "zh": "X"}, options=options)
    rule = display.value_rule(f, language, "Asia/Shanghai")
    for value in VALUES[kind]:
        assert rule(value) == display.field_value(f, value, language, "Asia/Shanghai"), value


def test_texts_escaped_at_once_are_escaped_as_one_by_one():
    texts = ["", "王<b>", 'a "quoted" & \'single\'', "plain", "x\x00y", ""]
    assert list_rows.escape_texts(texts) == [escape(t) for t in texts]  # one holds the joint: one by one
    assert list_rows.escape_texts(texts[:4]) == [escape(t) for t in texts[:4]]
    assert list_rows.escape_texts([]) == []


# ---------------------------------------------------------------- the record page

def test_the_record_page_asks_its_may_they_questions_in_one_read(world):
    rt = world.app.extensions["crmkit"]
    path = f"/app/opportunity/{world.opportunity}"
    get(world.app, "sales_rep", path)
    with statements(rt.engine) as seen:
        get(world.app, "sales_rep", path)
    reads = [s for s, _ in seen if re.search(r"\bFROM opportunity\b", s)]
    # read_one; update, delete, share, transition in one; the moves' read (their scope is the one above)
    assert len(reads) == 3, "\n".join(reads)
    assert not any("crmkit_share.user_id, crmkit_user.username" in s and "opportunity" in s for s in reads)
    with statements(rt.engine) as seen:
        get(world.app, "admin", path)
    assert len([s for s, _ in seen if re.search(r"\bFROM opportunity\b", s)]) == 2  # read_one, the moves' read


def test_the_record_page_reads_a_records_approvals_once(world):
    """A contract's approvals are both shown on its page and what locks its
    moves: read once for both."""
    rt = world.app.extensions["crmkit"]
    contract = created(world.app.test_client(user="sales_rep"), "contract", name="年度框架合同",
                       customer=world.customer, amount="1200.00")
    path = f"/app/contract/{contract}"
    html = get(world.app, "sales_rep", path)
    assert "提交审批" in html  # the move that asks for approval
    with statements(rt.engine) as seen:
        get(world.app, "sales_rep", path)
    of_record = [s for s, _ in seen if re.search(r"\bFROM crmkit_approval\s+WHERE crmkit_approval.entity\b", s)]
    assert len(of_record) == 1, "\n".join(of_record)


def test_within_says_what_fetch_says_action_by_action(world):
    rt = world.app.extensions["crmkit"]
    entity = rt.spec.entities["customer"]
    actions = ("read", "update", "delete", "share", "transition")
    with rt.engine.connect() as conn:
        for user in ("sales_rep", "rep2", "sales_manager", "service_rep", "admin"):
            actor = rt.directory.actor(rt.directory.user(user))
            for record_id in (world.customer, world.stranger):
                expected = {a: rt.queries.fetch(conn, entity, record_id, actor=actor, actions=(a,)) is not None
                            for a in actions}
                assert rt.queries.within(conn, entity, record_id, actor=actor, actions=actions) == expected, user


# ---------------------------------------------------------------- the ref picker

def test_a_ref_pickers_search_is_one_read_along_the_lists_index(world):
    rt = world.app.extensions["crmkit"]
    client = world.app.test_client(user="sales_rep")
    with statements(rt.engine) as seen:
        response = client.get("/app/customer/_options?q=王")
    assert response.status_code == 200 and response.get_json()["data"]
    reads = [(s, p) for s, p in seen if re.search(r"\bFROM customer\b", s)]
    assert len(reads) == 1 and "LIMIT" in reads[0][0], seen
    if rt.engine.dialect.name == "sqlite":
        with rt.engine.connect() as conn:
            rows = [tuple(row) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + reads[0][0], reads[0][1])]
        plan = " ".join(str(row) for row in rows)
        assert "USING INDEX" in plan, plan
        # In index order: no sort of the matches. A rep's customers are their own and the
        # pool's (crmkit.pool), read as two ordered, limited branches (UNION ALL), whose
        # merge sorts at most a page of each; inside a branch nothing is sorted.
        branches = {row[0] for row in rows if str(row[3]).startswith("CO-ROUTINE")}
        inside = {row[0] for row in rows if row[1] in branches} | branches
        sorts = [row for row in rows if "TEMP B-TREE" in str(row[3])]
        assert not [row for row in sorts if row[1] in inside or not branches], plan


# ---------------------------------------------------------------- what a later page downloads

def test_vendored_libraries_are_kept_by_the_browser_and_our_own_files_revalidated(app):
    client = app.test_client(user=None)
    with client.get("/static/vendor/htmx-2.0.11/htmx.min.js") as vendored:
        assert vendored.status_code == 200
        # its folder names the version: a new version is a new URL
        assert vendored.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    with client.get("/static/crmkit.css") as own:
        assert own.status_code == 200 and "immutable" not in own.headers.get("Cache-Control", "")
    page = app.test_client().get("/app/customer", headers=BROWSER)
    assert page.headers["Cache-Control"] == "no-store"  # pages carry people's data: never kept


def test_a_list_whose_ref_filter_is_in_force_keeps_no_panel(app):
    """The picker of a ref filter in force shows its record's title as this user
    may read it: records' data, so those panels are rendered each time."""
    rt = app.extensions["crmkit"]
    token_for(app, "dora", ("admin",), display_name="Dora Chen")
    dora = rt.directory.user("dora")["id"]
    client = app.test_client()
    html = client.get(f"/app/customer?owner_id={dora}", headers=BROWSER).get_data(as_text=True)
    panels = re.search(r'<form class="list-filters".*?</form>', html, re.S).group(0)
    assert f'<option value="{dora}" selected>Dora Chen</option>' in panels
    kept = app.extensions["crmkit_kept_parts"]._parts
    assert not [key for key in kept if key[0] == "list-tools" and ("owner_id", str(dora)) in key[-1]]
    client.get("/app/customer", headers=BROWSER)
    assert [key for key in kept if key[0] == "list-tools"]  # without one, they are kept


# ---------------------------------------------------------------- the kept list page

def test_the_kept_list_page_gives_each_request_its_own_rows_token_and_page_links(app):
    """The list page's content is kept per roles, language and list (crmkit.ui.lists.list_part):
    the rows, the user's token and the URLs of the page they are on are each request's own."""
    admin = app.test_client()
    for n in range(3):
        assert admin.post("/api/v1/customer", json={"name": f"客户{n}<b>"}).status_code == 201
    ann, ann_csrf = log_in(app, "ann")
    bob, bob_csrf = log_in(app, "bob")  # the same roles, but each their own "Mine" link
    ids = {name: app.extensions["crmkit"].directory.user(name)["id"] for name in ("ann", "bob")}
    kept = app.extensions["crmkit_kept_parts"]._parts
    first = {}
    for client, me, mine, theirs in ((ann, "ann", ann_csrf, bob_csrf), (bob, "bob", bob_csrf, ann_csrf),
                                     (ann, "ann", ann_csrf, bob_csrf)):
        html = client.get("/app/customer?limit=2", headers=BROWSER).get_data(as_text=True)
        bulk = re.search(r'<form class="bulk".*?</form>', html, re.S).group(0)
        assert f'name="csrf_token" value="{mine}"' in bulk and theirs not in html
        assert 'name="next" value="/app/customer?limit=2"' in bulk
        assert "客户2&lt;b&gt;" in bulk and "客户1&lt;b&gt;" in bulk and "客户0" not in bulk
        assert f'owner_id={ids[me]}">我的<' in html
        first[me] = re.search(r'<main .*?</main>', html, re.S).group(0).replace(mine, "")
    assert first["ann"].replace(f'owner_id={ids["ann"]}"', "") == first["bob"].replace(f'owner_id={ids["bob"]}"', "")
    assert len([key for key in kept if key[0] == "list"]) == 2  # ann's kept for her second visit
    cursor = re.search(r'<a rel="next" href="/app/customer\?limit=2&amp;cursor=([^"&]+)"', first["ann"]).group(1)
    second = ann.get(f"/app/customer?limit=2&cursor={cursor}", headers=BROWSER).get_data(as_text=True)
    bulk = re.search(r'<form class="bulk".*?</form>', second, re.S).group(0)
    assert "客户0&lt;b&gt;" in bulk and "客户1" not in bulk and 'rel="next"' not in second
    assert f'name="next" value="/app/customer?limit=2&amp;cursor={cursor}"' in bulk  # this page's own URL
    assert ">首页<" in second or "First page" in second
    assert admin.post("/api/v1/customer", json={"name": "新客户"}).status_code == 201
    again = ann.get("/app/customer?limit=2", headers=BROWSER).get_data(as_text=True)
    assert "新客户" in again and "客户1&lt;b&gt;" not in again  # the rows are read each time
    lists = [key for key in kept if key[0] == "list"]
    searched = ann.get("/app/customer?q=%3Cb%3E", headers=BROWSER).get_data(as_text=True)
    assert 'value="&lt;b&gt;"' in searched and "客户2&lt;b&gt;" in searched
    assert [key for key in kept if key[0] == "list"] == lists  # a search's list is not kept


def test_the_kept_related_lists_of_a_record_page_carry_the_records_own_id(world):
    rep = world.app.test_client(user="sales_rep")
    ids = [created(rep, "customer", name=f"相关{n}") for n in range(2)]
    for record_id in ids + ids[:1]:
        html = get(world.app, "sales_rep", f"/app/customer/{record_id}")
        assert f'hx-get="/app/customer/{record_id}/related/contacts"' in html
        assert f'href="/app/contact/new?customer={record_id}"' in html
        assert html.count("/related/") == html.count(f"/app/customer/{record_id}/related/")
    kept = world.app.extensions["crmkit_kept_parts"]._parts
    assert [key for key in kept if key[:2] == ("record-related", "customer")]



def test_the_shells_counts_are_one_read_and_each_users_own(world):
    """The bell's unread count and the approvals badge are one statement per
    page (not a connection each), the user a parameter: each user gets theirs."""
    from crmkit.messaging.store import Origin

    rt = world.app.extensions["crmkit"]
    with rt.engine.connect() as conn:
        users = rt.tables.users
        ids = dict(conn.execute(sa.select(users.c.username, users.c.id)
                                .where(users.c.username.in_(("sales_rep", "rep2")))).all())
    for n in range(3):
        rt.messaging.store.notify(key=f"speed-{n}", user_id=ids["sales_rep"], recipient="sales_rep",
                                  title={"en": "Call back", "zh": "回电"}, body={"en": "", "zh": ""},
                                  language="en", origin=Origin(None, None, None))
    bell = re.compile(r'<span class="bell-count">(\d+)</span>')
    with statements(rt.engine) as seen:
        html = get(world.app, "sales_rep", "/app/")
    counts = [s for s, _ in seen if "crmkit_notification" in s or "crmkit_approval_approver" in s]
    assert len(counts) == 1 and "crmkit_notification" in counts[0] and "crmkit_approval_approver" in counts[0]
    assert bell.findall(html) == [str(rt.messaging.store.unread_count(ids["sales_rep"]))] != ["0"]
    assert bell.findall(get(world.app, "rep2", "/app/")) == [str(rt.messaging.store.unread_count(ids["rep2"]))]
