"""Record forms (/app/<entity>/new, /app/<entity>/<id>/edit): every field
type drawn and sent back, errors beside their fields with the input kept,
a stale version, the ref picker's answers, the region picker, conditional
sections, prefill from the query string, and who may see and change what."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
import sqlalchemy as sa
from werkzeug.datastructures import MultiDict

from conftest import MINI_FILES, OVERWRITE, SAMPLE_CONFIG, make_config, token_for

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
HTMX = {"HX-Request": "true"}
PASSWORD = "correct horse battery"
XSS = ('<script>alert(1)</script>', '"><img src=x onerror=alert(1)>', "javascript:alert(1)")

ROLES_YAML = """
    roles:
      clerk:
        label: {en: Clerk, zh: 文员}
        entities:
          customer: {read: own, create: true, update: own}
          order: {read: own, create: true, update: own}
          product: {read: all}
          user: {read: all}
        fields:
          customer.balance: hidden
          customer.email: masked
          customer.mobile: read
      reader:
        label: {en: Reader, zh: 只读}
        entities:
          customer: {read: all}
      nobody:
        label: {en: Nobody, zh: 无}
        entities: {}
"""

FORM_CUSTOMER = MINI_FILES["entities/customer.yaml"] + """
    form:
      - section: {en: Basics, zh: 基本}
        fields: [name, mobile, email, level, region, referrer, code]
      - section: {en: Gold members, zh: 金卡}
        visible_if: "level == 'gold'"
        fields: [balance, tags]
      - section: {en: More, zh: 更多}
        fields: [age, birthday, last_seen, website, active, notes, extra, total_spent]
"""

FILES = {**MINI_FILES, "roles.yaml": ROLES_YAML}


@pytest.fixture
def app(make_app, tmp_path):
    return make_app(make_config(tmp_path / "config", FILES))


@pytest.fixture
def sectioned(make_app, tmp_path):
    return make_app(make_config(tmp_path / "config", {**FILES, "entities/customer.yaml": FORM_CUSTOMER}))


def get(app, path: str, user: str = "admin", roles: tuple[str, ...] = ("admin",), status: int = 200, **kw):
    token_for(app, user, roles)
    response = app.test_client(user=user).get(path, headers=BROWSER, **kw)
    assert response.status_code == status, (path, response.status_code, response.get_data(as_text=True)[:800])
    return response.get_data(as_text=True)


def post(app, path: str, data, user: str = "admin", roles: tuple[str, ...] = ("admin",), headers=None):
    token_for(app, user, roles)
    data = MultiDict(data) if isinstance(data, list) else data
    return app.test_client(user=user).post(path, data=data, headers={**BROWSER, **(headers or {})})


def api_create(app, entity: str, data: dict, user: str = "admin", roles: tuple[str, ...] = ("admin",)) -> dict:
    token_for(app, user, roles)
    response = app.test_client(user=user).post(f"/api/v1/{entity}", json=data)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()["data"]


def api_get(app, entity: str, record_id: int) -> dict:
    return app.test_client().get(f"/api/v1/{entity}/{record_id}").get_json()["data"]


class FormReader(HTMLParser):
    """What a browser without JavaScript would send for the page's record
    form (inputs with a name, ticked boxes, chosen options, text areas), and
    the ids the labels point at."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pairs: list[tuple[str, str]] = []
        self.ids: set[str] = set()
        self.labelled: set[str] = set()
        self.controls: list[tuple[str, dict]] = []
        self._select: str | None = None
        self._option: dict | None = None
        self._chosen: str | None = None
        self._first: str | None = None
        self._textarea: str | None = None
        self._text = ""
        self._in_form = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and a.get("id") == "record-form":
            self._in_form = True
        if not self._in_form:
            return
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "label" and a.get("for"):
            self.labelled.add(a["for"])
        if tag in ("input", "select", "textarea"):
            self.controls.append((tag, a))
        name = a.get("name")
        if tag == "input" and name and "disabled" not in a:
            if a.get("type") in ("checkbox", "radio"):
                if "checked" in a:
                    self.pairs.append((name, a.get("value", "on")))
            elif a.get("type") != "submit":
                self.pairs.append((name, a.get("value", "")))
        elif tag == "select":
            self._select = name if "disabled" not in a else None
            self._chosen = self._first = None
        elif tag == "option" and self._select is not None:
            value = a.get("value", "")
            if self._first is None:
                self._first = value
            if "selected" in a:
                self._chosen = value
        elif tag == "textarea" and name:
            self._textarea, self._text = name, ""

    def handle_data(self, data):
        if self._textarea is not None:
            self._text += data

    def handle_endtag(self, tag):
        if tag == "form":
            self._in_form = False
        elif tag == "select" and self._select:
            chosen = self._chosen if self._chosen is not None else self._first
            self.pairs.append((self._select, chosen or ""))
            self._select = None
        elif tag == "textarea" and self._textarea:
            self.pairs.append((self._textarea, self._text.removeprefix("\n")))
            self._textarea = None


def read_form(html: str) -> FormReader:
    reader = FormReader()
    reader.feed(html)
    return reader


def form_data(html: str, **changes) -> list[tuple[str, str]]:
    """The form's submission with some fields' values replaced (a list: once per value)."""
    pairs = [(n, v) for n, v in read_form(html).pairs  # a multi_enum's empty marker stays, as a browser sends it
             if n not in changes or (isinstance(changes[n], list) and v == "")]
    for name, value in changes.items():
        for item in value if isinstance(value, list) else [value]:
            pairs.append((name, item))
    return pairs


def controls(html: str) -> dict[str, dict]:
    return {a["id"]: dict(a, tag=tag) for tag, a in read_form(html).controls if "id" in a}


def log_in(app, username: str = "ann", roles: tuple[str, ...] = ("admin",)):
    """A browser session through the login form: (client, csrf token)."""
    token_for(app, username, roles, password=PASSWORD)
    client = app.test_client(user=None)
    assert client.post("/login", data={"username": username, "password": PASSWORD}).status_code == 303
    html = client.get("/app/", headers=BROWSER).get_data(as_text=True)
    return client, re.search(r'<meta name="csrf-token" content="([^"]+)">', html).group(1)


# ---------------------------------------------------------------- every field type

def test_each_field_type_has_its_widget_and_every_input_a_label(app):
    html = get(app, "/app/customer/new")
    found = controls(html)
    assert found["f-name"]["type"] == "text" and "required" in found["f-name"] and found["f-name"]["maxlength"] == "20"
    assert found["f-mobile"]["type"] == "tel"
    assert found["f-email"]["type"] == "email"
    assert found["f-age"]["type"] == "number" and found["f-age"]["min"] == "0" and found["f-age"]["max"] == "150"
    assert found["f-balance"]["inputmode"] == "decimal"
    assert found["f-birthday"]["type"] == "date"
    assert found["f-last_seen"]["type"] == "datetime-local"
    assert found["f-level"]["tag"] == "select"
    assert {found[f"f-tags-{i}"]["type"] for i in (1, 2, 3)} == {"checkbox"}
    assert found["f-region-province"]["tag"] == "select" and "disabled" in found["f-region-city"]
    assert found["f-website"]["type"] == "url"
    assert found["f-active"]["type"] == "checkbox"
    assert found["f-notes"]["tag"] == "textarea" and found["f-extra"]["tag"] == "textarea"
    assert found["f-referrer"]["data-options-url"] == "/app/customer/_options"
    # read-only: the system computes it, the autonumber is given when saved; neither is sent
    assert "readonly" in found["f-total_spent"] and "name" not in found["f-total_spent"]
    assert "readonly" in found["f-code"] and found["f-code"]["value"] == "保存时自动生成"
    # every control is labelled (check boxes of a multi_enum by their own label, inside a legend'd fieldset)
    reader = read_form(html)
    unlabelled = {i for i in found if i not in reader.labelled and found[i].get("type") != "hidden"}
    assert not unlabelled
    assert '<span class="required-mark" aria-hidden="true">*</span>' in html
    assert 'name="csrf_token"' in html


def test_a_new_record_shows_the_defaults(app):
    found = controls(get(app, "/app/customer/new"))
    html = get(app, "/app/customer/new")
    assert re.search(r'<option value="bronze" selected>', html)
    assert found["f-name"]["value"] == ""


ALL_VALUES = {"name": "张三", "mobile": "13812345678", "email": "zs@example.com", "age": 30, "balance": "1280.50",
              "birthday": "1990-05-01", "last_seen": "2026-01-31T01:30:15Z", "level": "gold", "tags": ["vip", "risk"],
              "region": "440106", "website": "https://example.com/a", "active": True, "notes": "第一行\n第二行",
              "extra": {"a": [1, 2.5, "x"]}}


def test_every_field_type_round_trips_through_the_edit_form(app):
    record = api_create(app, "customer", ALL_VALUES)
    html = get(app, f"/app/customer/{record['id']}/edit")
    found = controls(html)
    assert found["f-last_seen"]["value"] == "2026-01-31T09:30:15"  # in the app's timezone, seconds kept
    assert found["f-birthday"]["value"] == "1990-05-01" and found["f-balance"]["value"] == "1280.50"
    assert "checked" in found["f-tags-1"] and "checked" in found["f-tags-3"] and "checked" not in found["f-tags-2"]
    assert "checked" in found["f-active"]
    assert re.search(r'<option value="440100" selected>广州市</option>', html)
    assert re.search(r'<option value="440106" selected>天河区</option>', html)
    # sent back unchanged: nothing changes, not even the version
    response = post(app, f"/app/customer/{record['id']}/edit", form_data(html))
    assert response.status_code == 303 and response.location == f"/app/customer/{record['id']}"
    assert api_get(app, "customer", record["id"])["version"] == record["version"]
    # every field changed through the form
    other = api_create(app, "customer", {"name": "李四"})
    changed = {"name": "王五", "mobile": "13900001111", "email": "ww@example.com", "age": "31", "balance": "1,999.9",
               "birthday": "1991-06-02", "last_seen": "2026-02-01T08:00", "level": "silver", "tags": ["new"],
               "region__province": "110000", "region__city": "110100", "region__district": "110105",
               "website": "https://example.org", "active": "false", "notes": "改了", "extra": '{"b": true}',
               "referrer": str(other["id"])}
    response = post(app, f"/app/customer/{record['id']}/edit", form_data(html, **changed))
    assert response.status_code == 303, response.get_data(as_text=True)
    stored = api_get(app, "customer", record["id"])
    assert {k: stored[k] for k in ("name", "mobile", "email", "age", "balance", "birthday", "last_seen", "level",
                                    "tags", "region", "website", "active", "notes", "extra", "referrer")} == {
        "name": "王五", "mobile": "13900001111", "email": "ww@example.com", "age": 31, "balance": "1999.90",
        "birthday": "1991-06-02", "last_seen": "2026-02-01T00:00:00Z", "level": "silver", "tags": ["new"],
        "region": "110105", "website": "https://example.org", "active": False, "notes": "改了",
        "extra": {"b": True}, "referrer": other["id"]}
    # and emptied
    html = get(app, f"/app/customer/{record['id']}/edit")
    assert re.search(rf'<option value="{other["id"]}" selected>李四</option>', html)
    empty = {"age": "", "balance": "", "birthday": "", "last_seen": "", "tags": [], "notes": "", "referrer": "",
             "region__province": "", "region__city": "", "region__district": ""}
    assert post(app, f"/app/customer/{record['id']}/edit", form_data(html, **empty)).status_code == 303
    stored = api_get(app, "customer", record["id"])
    assert [stored[k] for k in ("age", "balance", "birthday", "last_seen", "notes", "referrer", "region")] == [None] * 7
    assert stored["tags"] in (None, [])


def test_creating_through_the_form_lands_on_the_new_records_page(app):
    html = get(app, "/app/customer/new")
    response = post(app, "/app/customer/new", form_data(html, name="赵六", mobile="13700000000", tags=["vip"],
                                                        region__province="440000", region__city="440100"))
    assert response.status_code == 303
    record_id = int(re.fullmatch(r"/app/customer/(\d+)", response.location).group(1))
    stored = api_get(app, "customer", record_id)
    assert (stored["name"], stored["mobile"], stored["tags"], stored["region"], stored["level"]) == (
        "赵六", "13700000000", ["vip"], "440100", "bronze")
    assert stored["code"].startswith("KH")


def test_an_htmx_save_is_sent_to_the_record_page_as_a_whole_page(app):
    html = get(app, "/app/customer/new")
    response = post(app, "/app/customer/new", form_data(html, name="钱七"), headers=HTMX)
    assert response.status_code == 204 and re.fullmatch(r"/app/customer/\d+", response.headers["HX-Redirect"])


# ---------------------------------------------------------------- errors

def test_a_validation_error_keeps_the_input_and_shows_the_message_beside_the_field(app):
    html = get(app, "/app/customer/new")
    response = post(app, "/app/customer/new", form_data(html, name="孙八", mobile="12345", age="abc",
                                                        email="zs@example.com", notes="保留我", tags=["risk"]))
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    found = controls(page)
    assert found["f-name"]["value"] == "孙八" and found["f-email"]["value"] == "zs@example.com"
    assert found["f-mobile"]["value"] == "12345" and found["f-age"]["value"] == "abc"
    assert "checked" in found["f-tags-3"] and ">保留我</textarea>" in page
    assert found["f-age"]["aria-invalid"] == "true" and "f-age-error" in found["f-age"]["aria-describedby"]
    assert '<small id="f-age-error" class="field-error">请输入整数。</small>' in page
    assert 'id="form-errors"' in page and 'role="alert"' in page
    # the service's own check of the mobile, after the form's own checks pass
    response = post(app, "/app/customer/new", form_data(html, name="孙八", mobile="12345"))
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert ('<small id="f-mobile-error" class="field-error">请输入电话号码，例如 13812345678 或 010-12345678。'
            '</small>') in page
    assert controls(page)["f-mobile"]["aria-invalid"] == "true"


def test_an_error_is_in_english_for_an_english_user(app):
    html = get(app, "/app/customer/new")
    token_for(app)
    response = app.test_client().post("/app/customer/new?lang=en", data=MultiDict(form_data(html, name="", age="-1")),
                                      headers=BROWSER)
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "This field is required." in page and "Enter at least 0." in page


def test_an_htmx_submission_with_errors_answers_422_with_the_form(app):
    html = get(app, "/app/customer/new")
    response = post(app, "/app/customer/new", form_data(html, name="x", age="1.5"), headers=HTMX)
    assert response.status_code == 422 and 'id="record-form"' in response.get_data(as_text=True)


def test_a_unique_value_taken_by_another_record_is_said_beside_the_field(app):
    api_create(app, "customer", {"name": "甲", "mobile": "13800000001"})
    html = get(app, "/app/customer/new")
    response = post(app, "/app/customer/new", form_data(html, name="乙", mobile="13800000001"))
    assert response.status_code == 422
    assert '<small id="f-mobile-error" class="field-error">已有其他记录使用此值。</small>' in response.get_data(
        as_text=True)


def test_a_stale_version_says_who_changed_the_record_and_keeps_the_input(app):
    token_for(app, "bob", ("admin",), display_name="Bob Lee")
    record = api_create(app, "customer", {"name": "周九"})
    html = get(app, f"/app/customer/{record['id']}/edit")
    response = app.test_client(user="bob").patch(f"/api/v1/customer/{record['id']}", json={"notes": "bob was here"},
                                                  headers=OVERWRITE)
    assert response.status_code == 200
    response = post(app, f"/app/customer/{record['id']}/edit", form_data(html, name="周九九", age="40"))
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "您打开这条记录后，它已被修改。" in page and "Bob Lee 于 " in page
    found = controls(page)
    assert found["f-name"]["value"] == "周九九" and found["f-age"]["value"] == "40"
    assert f'<a href="/app/customer/{record["id"]}/edit" role="button"' in page  # reload
    assert 'name="version" value="1"' in page and 'name="_overwrite" value="2"' in page
    assert api_get(app, "customer", record["id"])["name"] == "周九"
    # saving again with the stale version still conflicts; "save over theirs" names the current one
    assert post(app, f"/app/customer/{record['id']}/edit", form_data(page)).status_code == 409
    response = post(app, f"/app/customer/{record['id']}/edit", form_data(page) + [("_overwrite", "2")])
    assert response.status_code == 303
    stored = api_get(app, "customer", record["id"])
    assert (stored["name"], stored["age"], stored["notes"]) == ("周九九", 40, "bob was here")


def test_a_refresh_without_javascript_redraws_the_form_and_saves_nothing(sectioned):
    html = get(sectioned, "/app/customer/new")
    response = post(sectioned, "/app/customer/new", form_data(html, name="吴十", level="gold", _refresh="1"))
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'id="f-balance"' in page and controls(page)["f-name"]["value"] == "吴十"
    assert sectioned.test_client().get("/api/v1/customer").get_json()["data"] == []


# ---------------------------------------------------------------- who may

def test_a_role_without_create_gets_403_and_one_without_read_404(app):
    get(app, "/app/customer/new", "rita", ("reader",), status=403)
    get(app, "/app/customer/new", "nick", ("nobody",), status=404)
    get(app, "/app/product/new", "carl", ("clerk",), status=403)
    assert post(app, "/app/customer/new", {"name": "x"}, "rita", ("reader",)).status_code == 403
    assert app.test_client(user="admin").get("/api/v1/customer").get_json()["data"] == []


def test_editing_needs_the_update_scope_and_another_users_record_does_not_exist(app):
    mine = api_create(app, "customer", {"name": "carl's"}, "carl", ("clerk",))
    theirs = api_create(app, "customer", {"name": "admin's"})
    get(app, f"/app/customer/{mine['id']}/edit", "carl", ("clerk",))
    get(app, f"/app/customer/{theirs['id']}/edit", "carl", ("clerk",), status=404)
    get(app, f"/app/customer/{mine['id']}/edit", "rita", ("reader",), status=403)
    get(app, "/app/customer/999999/edit", status=404)
    assert post(app, f"/app/customer/{theirs['id']}/edit", {"name": "x", "version": "1"}, "carl",
                ("clerk",)).status_code == 404
    assert api_get(app, "customer", theirs["id"])["name"] == "admin's"


def test_hidden_fields_are_never_in_the_form_and_masked_ones_are_masked_and_read_only(app):
    record = api_create(app, "customer", {"name": "carl's"}, "carl", ("clerk",))
    token_for(app)
    app.test_client().patch(f"/api/v1/customer/{record['id']}", headers=OVERWRITE,
                            json={"balance": "98765.43", "email": "secret.person@example.com",
                                  "mobile": "13812345678"})
    for path in ("/app/customer/new", f"/app/customer/{record['id']}/edit"):
        html = get(app, path, "carl", ("clerk",))
        assert "balance" not in html and "98765" not in html
        found = controls(html)
        assert "name" not in found["f-mobile"] and "readonly" in found["f-mobile"]
        assert "name" not in found["f-email"] and "readonly" in found["f-email"]
        assert "secret.person" not in html
    html = get(app, f"/app/customer/{record['id']}/edit", "carl", ("clerk",))
    assert controls(html)["f-email"]["value"] == "s***@example.com"
    assert controls(html)["f-mobile"]["value"] == "13812345678"
    # a masked or read-only field sent anyway is refused, not written
    response = post(app, f"/app/customer/{record['id']}/edit", form_data(html, email="x@example.com",
                                                                      balance="1"), "carl", ("clerk",))
    assert response.status_code == 303  # fields the form does not have are not the form's: ignored
    stored = api_get(app, "customer", record["id"])
    assert stored["email"] == "secret.person@example.com" and stored["balance"] == "98765.43"


def test_a_session_post_without_the_csrf_token_is_refused(app):
    client, csrf = log_in(app)
    html = client.get("/app/customer/new", headers=BROWSER).get_data(as_text=True)
    assert f'name="csrf_token" value="{csrf}"' in html
    assert client.post("/app/customer/new", data={"name": "x"}).status_code == 403
    response = client.post("/app/customer/new", data=MultiDict(form_data(html, name="有令牌")))
    assert response.status_code == 303


# ---------------------------------------------------------------- the ref picker

def statements(engine, table: str):
    """Count the statements that read ``table`` while the block runs."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    class Counter:
        def __enter__(self):
            sa.event.listen(engine, "before_cursor_execute", record)
            return seen

        def __exit__(self, *exc):
            sa.event.remove(engine, "before_cursor_execute", record)

    return Counter()


def test_the_picker_answers_only_readable_records_at_most_20_in_one_query(app):
    rt = app.extensions["crmkit"]
    for n in range(25):
        api_create(app, "customer", {"name": f"王{n:02d}"}, "carl", ("clerk",))
    api_create(app, "customer", {"name": "王 of admin"})
    token_for(app, "carl", ("clerk",))
    client = app.test_client(user="carl")
    with statements(rt.engine, "customer") as seen:
        response = client.get("/app/customer/_options?q=王")
    assert response.status_code == 200 and response.mimetype == "application/json"
    data = response.get_json()["data"]
    assert len(data) == 20 and all(d["text"].startswith("王") for d in data)
    assert "王 of admin" not in {d["text"] for d in data}
    reads = [s for s in seen if re.search(r'\bFROM "?customer"?\b', s)]
    assert len(reads) == 1 and "LIMIT" in reads[0], seen  # one read of at most a page, never the table
    assert all("crmkit_share" in s for s in seen if re.search(r"\bFROM\b", s) and s not in reads
               and "crmkit_user" not in s and "crmkit_session" not in s and "crmkit_token" not in s), seen
    narrow = client.get("/app/customer/_options?q=王07").get_json()["data"]
    assert [d["text"] for d in narrow] == ["王07"]
    assert client.get("/app/customer/_options?q=of admin").get_json()["data"] == []
    every = app.test_client().get("/app/customer/_options?q=admin").get_json()["data"]
    assert [d["text"] for d in every] == ["王 of admin"]


def test_without_javascript_a_ref_is_found_by_searching_and_updating_the_form(app):
    mine = api_create(app, "customer", {"name": "搜索我"}, "carl", ("clerk",))
    api_create(app, "customer", {"name": "搜索别人的"})
    html = get(app, "/app/order/new", "carl", ("clerk",))
    assert '<noscript>' in html and 'name="customer__search"' in html
    response = post(app, "/app/order/new", form_data(html, customer__search="搜索", _refresh="1"), "carl", ("clerk",))
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert f'<option value="{mine["id"]}">搜索我</option>' in page and "搜索别人的" not in page
    response = post(app, "/app/order/new", form_data(page, customer=str(mine["id"]), ordered_at="2026-01-31T09:30"),
                    "carl", ("clerk",))
    assert response.status_code == 303
    assert api_get(app, "order", int(response.location.rsplit("/", 1)[1]))["customer"] == mine["id"]


def test_the_picker_of_an_entity_one_may_not_read_does_not_exist(app):
    token_for(app, "rita", ("reader",))
    assert app.test_client(user="rita").get("/app/order/_options?q=x").status_code == 404
    assert app.test_client(user="rita").get("/app/user/_options?q=x").status_code == 404
    assert app.test_client(user="rita").get("/app/nothing/_options").status_code == 404


def test_the_picker_of_users_finds_active_users_by_name(app):
    token_for(app, "dora", ("clerk",), display_name="Dora Chen")
    response = app.test_client().get("/app/user/_options?q=Dora")
    assert response.get_json()["data"][0]["text"] == "Dora Chen"


def test_the_pickers_answers_carry_markup_inert_as_json(app):
    for payload in XSS:
        api_create(app, "customer", {"name": payload[:20]})
    response = app.test_client().get("/app/customer/_options?q=")
    assert response.mimetype == "application/json" and response.headers["X-Content-Type-Options"] == "nosniff"
    assert {d["text"] for d in response.get_json()["data"]} == {p[:20] for p in XSS}


def test_xss_payloads_in_every_field_type_render_inert_in_the_form(app):
    referrer = api_create(app, "customer", {"name": XSS[0][:20]})
    record = api_create(app, "customer", {
        "name": XSS[1][:20], "notes": "\n".join(XSS), "extra": {"x": XSS[1]}, "referrer": referrer["id"],
        "website": "https://example.com/?q=\"><script>alert(1)</script>"})
    html = get(app, f"/app/customer/{record['id']}/edit")
    assert "<script>alert" not in html and "<img src=x" not in html
    assert 'value="&#34;&gt;&lt;img' in html or 'value="&quot;&gt;&lt;img' in html
    assert "&lt;/textarea&gt;" not in html or "</textarea><script" not in html
    assert controls(html)["f-name"]["value"] == XSS[1][:20]
    reader = read_form(html)
    assert dict(reader.pairs)["notes"] == "\n".join(XSS)


# ---------------------------------------------------------------- region picker

def test_the_region_picker_offers_the_cities_of_the_chosen_province(app):
    html = get(app, "/app/customer/_region/region?region__province=440000")
    assert '<option value="440100">广州市</option>' in html
    assert '<option value="440000" selected>广东省</option>' in html
    assert 'name="region__district" disabled' in html
    html = get(app, "/app/customer/_region/region?region__province=440000&region__city=440100")
    assert '<option value="440106">天河区</option>' in html
    # a province changed after the city: the city of the other province is dropped
    html = get(app, "/app/customer/_region/region?region__province=110000&region__city=440100")
    assert '<option value="110100">市辖区</option>' in html and "selected>广州市" not in html
    get(app, "/app/customer/_region/name", status=404)
    get(app, "/app/customer/_region/region", "nick", ("nobody",), status=404)


def test_a_region_code_typed_without_javascript_is_taken(app):
    html = get(app, "/app/customer/new")
    response = post(app, "/app/customer/new", form_data(html, name="码", region="440106"))
    assert response.status_code == 303
    assert api_get(app, "customer", int(response.location.rsplit("/", 1)[1]))["region"] == "440106"
    response = post(app, "/app/customer/new", form_data(html, name="码", region="999999"))
    assert response.status_code == 422 and "请从列表中选择地区。" in response.get_data(as_text=True)


# ---------------------------------------------------------------- conditional sections

def test_a_section_shows_only_when_its_condition_holds_for_the_input(sectioned):
    html = get(sectioned, "/app/customer/new")
    assert '<div id="section-1" class="form-section-slot">\n</div>' in html
    assert 'id="f-balance"' not in html
    level = controls(html)["f-level"]
    assert level["hx-post"] == "/app/customer/_form" and level["hx-trigger"] == "change"
    response = post(sectioned, "/app/customer/_form", form_data(html, level="gold"), headers=HTMX)
    assert response.status_code == 200
    part = response.get_data(as_text=True)
    assert '<div id="section-1" class="form-section-slot" hx-swap-oob="true">' in part
    assert 'id="f-balance"' in part and "金卡" in part and 'id="f-name"' not in part
    part = post(sectioned, "/app/customer/_form", form_data(html, level="silver"), headers=HTMX).get_data(as_text=True)
    assert 'id="f-balance"' not in part and 'id="section-1"' in part
    # a section that does not show sends nothing
    response = post(sectioned, "/app/customer/new", form_data(html, name="条件", balance="5"))
    assert api_get(sectioned, "customer", int(response.location.rsplit("/", 1)[1]))["balance"] is None
    response = post(sectioned, "/app/customer/new", form_data(html, name="条件", level="gold", balance="5"))
    assert api_get(sectioned, "customer", int(response.location.rsplit("/", 1)[1]))["balance"] == "5.00"


def test_an_edit_form_evaluates_conditions_over_the_stored_record(sectioned):
    record = api_create(sectioned, "customer", {"name": "金", "level": "gold", "balance": "7"})
    html = get(sectioned, f"/app/customer/{record['id']}/edit")
    assert controls(html)["f-balance"]["value"] == "7.00"
    assert controls(html)["f-level"]["hx-post"] == f"/app/customer/_form?record={record['id']}"


# ---------------------------------------------------------------- prefill

def test_a_new_form_takes_its_inputs_from_the_query_string(app):
    customer = api_create(app, "customer", {"name": "预填客户"})
    html = get(app, f"/app/order/new?customer={customer['id']}&total=12.50&ordered_at=2026-01-31T09:30&bogus=1")
    assert re.search(rf'<option value="{customer["id"]}" selected>预填客户</option>', html)
    found = controls(html)
    assert found["f-total"]["value"] == "12.50" and found["f-ordered_at"]["value"] == "2026-01-31T09:30"
    html = get(app, "/app/customer/new?tags=vip&tags=new&level=gold&active=true&region=440106&total_spent=9")
    found = controls(html)
    assert "checked" in found["f-tags-1"] and "checked" in found["f-tags-2"] and "checked" in found["f-active"]
    assert re.search(r'<option value="gold" selected>', html) and 'selected>天河区' in html
    assert found["f-total_spent"]["value"] == "—"  # read-only: not the query's to fill


def test_a_prefilled_record_the_user_may_not_read_is_left_out(app):
    theirs = api_create(app, "customer", {"name": "别人的客户"})
    html = get(app, f"/app/order/new?customer={theirs['id']}", "carl", ("clerk",))
    assert "别人的客户" not in html and f'<option value="{theirs["id"]}"' not in html
    html = get(app, "/app/customer/new?balance=5", "carl", ("clerk",))
    assert 'name="balance"' not in html and 'id="f-balance"' not in html


# ---------------------------------------------------------------- the sample config

@pytest.fixture
def retail(make_app):
    return make_app(SAMPLE_CONFIG)


def test_the_sample_roles_get_the_forms_their_roles_allow(retail):
    customer = api_create(retail, "customer", {"name": "零售客户", "mobile": "13811112222"})
    cid = customer["id"]
    get(retail, "/app/customer/new", "rose", ("sales_rep",))
    get(retail, "/app/customer/new", "sam", ("service_rep",), status=403)
    get(retail, "/app/customer/new", "ana", ("analyst",), status=403)
    get(retail, "/app/customer/new", "mia", ("marketer",), status=403)
    get(retail, "/app/lead/new", "sam", ("service_rep",), status=404)
    get(retail, f"/app/customer/{cid}/edit", "rose", ("sales_rep",), status=404)  # not hers
    admin = controls(get(retail, f"/app/customer/{cid}/edit"))
    assert "name" in admin["f-level"] and "readonly" in admin["f-total_spent"]
    service = get(retail, f"/app/customer/{cid}/edit", "sam", ("service_rep",))
    found = controls(service)
    assert "readonly" in found["f-level"] and "name" in found["f-mobile"]  # commercial file read-only, contacts not
    assert found["f-total_spent"]["value"] == "***"  # masked for service (0.00 stored)
    get(retail, f"/app/customer/{cid}/edit", "ana", ("analyst",), status=403)
    finance = get(retail, "/app/receivable_plan/new", "fay", ("finance",))
    assert 'id="record-form"' in finance
    get(retail, f"/app/customer/{cid}/edit", "fay", ("finance",), status=403)


def test_the_sample_customer_form_has_its_sections_and_the_company_one_on_condition(retail):
    html = get(retail, "/app/customer/new", "rose", ("sales_rep",))
    for heading in ("基本信息", "客户分类", "会员信息", "消费与跟进", "备注"):
        assert f"<legend>{heading}</legend>" in html
    assert "企业信息" not in html and 'id="f-company"' not in html
    assert controls(html)["f-customer_type"]["hx-post"] == "/app/customer/_form"
    assert '<small id="f-baby_birthday-help" class="field-help">母婴客户按宝宝月龄分组</small>' in html
    part = post(retail, "/app/customer/_form", form_data(html, customer_type="company"), "rose", ("sales_rep",),
                headers=HTMX).get_data(as_text=True)
    assert "企业信息" in part and 'id="f-credit_code"' in part
    response = post(retail, "/app/customer/new", form_data(html, name="某公司", customer_type="company",
                                                           company="某某有限公司"), "rose", ("sales_rep",))
    assert response.status_code == 303
    stored = api_get(retail, "customer", int(response.location.rsplit("/", 1)[1]))
    assert stored["company"] == "某某有限公司" and stored["owner_id"] is not None


def test_a_workflow_state_is_shown_not_edited(retail):
    html = get(retail, "/app/opportunity/new", "rose", ("sales_rep",))
    found = controls(html)
    assert "readonly" in found["f-stage"] and "name" not in found["f-stage"]


def test_other_screens_draw_some_fields_with_the_same_widgets(app):
    from flask import render_template_string

    from crmkit.ui.forms import RecordForm

    rt = app.extensions["crmkit"]
    token_for(app, "carl", ("clerk",))
    actor = rt.directory.actor(rt.directory.user("carl"))
    with app.test_request_context("/app/customer/new"):
        widgets = RecordForm(rt, rt.spec.entities["customer"], actor).widgets(["name", "balance", "email", "nothing"])
        html = render_template_string(
            '{% from "_widgets.html" import field %}{% for w in ws %}{{ field(w) }}{% endfor %}', ws=widgets)
    assert [w.name for w in widgets] == ["name", "email"]
    assert 'id="f-name" name="name"' in html and "balance" not in html
    assert 'id="f-email" value=' in html  # masked for the clerk: read-only, never sent


def test_the_form_page_stays_within_the_page_weight_budget(retail):
    import gzip

    from test_ui_assets import BUDGET, STATIC, assets_of, gzipped_size

    html = get(retail, "/app/customer/new", "rose", ("sales_rep",))
    assets = assets_of(html)
    assert "forms.js" in assets and "vendor/tom-select-2.6.2/tom-select.complete.min.js" in assets
    total = sum(gzipped_size(STATIC / asset) for asset in assets) + len(gzip.compress(html.encode()))
    print(f"the customer form's first view: {total / 1024:.1f} KB compressed")
    assert total <= BUDGET, f"{total / 1024:.1f} KB"


# ---------------------------------------------------------------- every role of the sample, every entity

@pytest.fixture(scope="module")
def seeded(module_database_url, tmp_path_factory):
    """The sample config with a little demo data, for one module."""
    from conftest import as_test_app
    from crmkit.app import create_app
    from crmkit.seed import seed
    from crmkit.settings import Settings

    root = tmp_path_factory.mktemp("forms")
    app = as_test_app(create_app(SAMPLE_CONFIG, Settings(database_url=module_database_url, instance_dir=root)))
    seed(app.extensions["crmkit"], size=20, random_seed=5)
    yield app
    app.extensions["crmkit"].engine.dispose()


def test_every_role_of_the_sample_gets_forms_without_hidden_fields(seeded):
    rt = seeded.extensions["crmkit"]
    firsts = {}
    with rt.engine.connect() as conn:
        for name in rt.spec.entities:
            table = rt.tables.entities[name]
            firsts[name] = conn.execute(sa.select(table).where(table.c.deleted_at.is_(None))
                                        .order_by(table.c.id).limit(1)).mappings().first()
    for role in rt.spec.roles:
        user = f"matrix_{role}"
        access = rt.permissions.access([role])
        for name, entity in rt.spec.entities.items():
            ea = access.entity(name)
            hidden = [f for f in entity.fields.values() if f.name not in ea.visible]
            expected = 404 if not ea.allows("read") else 200 if ea.allows("create") else 403
            html = get(seeded, f"/app/{name}/new", user, (role,), status=expected)
            row = firsts[name]
            pages = [html]
            if row is not None:
                token_for(seeded, user, (role,))
                response = seeded.test_client(user=user).get(f"/app/{name}/{row['id']}/edit", headers=BROWSER)
                assert response.status_code in (200, 403, 404), (role, name, response.status_code)
                if not ea.allows("read"):
                    assert response.status_code == 404, (role, name)
                pages.append(response.get_data(as_text=True))
            for page in pages:
                for f in hidden:
                    assert f'id="f-{f.name}"' not in page and f'name="{f.name}"' not in page, (role, name, f.name)
                    value = row.get(f.column) if row is not None else None
                    if isinstance(value, str) and len(value) >= 6:
                        assert value not in page, (role, name, f.name)
