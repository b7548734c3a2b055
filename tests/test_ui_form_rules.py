"""Record forms under the entity's rules (crmkit.rules): a field shown and
required on condition, read-only while a condition held on the stored
record, formulas read-only, validation rules said beside their fields and
at the top in the user's language, the conditional fields re-rendered on
change, and a condition reading what the user cannot see leaking nothing."""

from __future__ import annotations

import re

import pytest

from conftest import MINI_FILES, SAMPLE_CONFIG, make_config
from test_ui_forms import HTMX, api_create, api_get, controls, form_data, get, post

DEAL = """
    entity: deal
    label: {en: Deal, zh: 交易}
    title: name
    fields:
      name: {type: string, required: true}
      status: {type: enum, options: [draft, paid, cancelled], default: draft}
      secret: {type: integer}
      cancel_reason: {type: string, visible_if: "status = 'cancelled'", required_if: "status = 'cancelled'",
                      label: {en: Cancel reason, zh: 取消原因}}
      note: {type: string, readonly_if: "status = 'paid'"}
      vip_note: {type: string, visible_if: "secret > 100", required_if: "secret > 100"}
      quantity: {type: integer}
      price: {type: money}
      amount: {type: money, formula: "quantity * price", label: {en: Amount, zh: 金额}}
      starts_on: {type: date}
      ends_on: {type: date}
      extra: {type: string}
    validate:
      - rule: "ends_on >= starts_on"
        message: {en: The deal ends before it starts, zh: 交易结束早于开始}
    form:
      - section: {en: Basics, zh: 基本}
        fields: [name, status, cancel_reason, note, vip_note]
      - section: {en: Money, zh: 金额}
        fields: [quantity, price, amount, starts_on, ends_on]
      - section: {en: Secret, zh: 机密}
        visible_if: "secret > 100"
        fields: [extra]
"""

ROLES = """
    roles:
      clerk:
        label: {en: Clerk, zh: 文员}
        entities:
          deal: {read: all, create: true, update: all}
        fields:
          deal.secret: hidden
"""


@pytest.fixture
def app(make_app, tmp_path):
    return make_app(make_config(tmp_path / "config", {**MINI_FILES, "roles.yaml": ROLES, "entities/deal.yaml": DEAL}))


@pytest.fixture
def retail(make_app):
    return make_app(SAMPLE_CONFIG)


def created(response) -> int:
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    return int(response.location.rsplit("/", 1)[1])


# ---------------------------------------------------------------- visible_if, required_if

def test_a_field_shows_and_is_required_only_while_its_condition_holds(app):
    html = get(app, "/app/deal/new")
    assert 'id="f-cancel_reason"' not in html and 'name="cancel_reason"' not in html
    assert '<div id="f-cancel_reason-slot" class="form-field field-absent" hidden></div>' in html
    assert controls(html)["f-status"]["hx-post"] == "/app/deal/_form"
    # a value sent for a hidden field is not sent on (and the server would clear it)
    deal = created(post(app, "/app/deal/new", form_data(html, name="甲", cancel_reason="x")))
    assert api_get(app, "deal", deal)["cancel_reason"] is None
    cancelled = get(app, "/app/deal/new?status=cancelled")
    found = controls(cancelled)["f-cancel_reason"]
    assert "required" in found and 'for="f-cancel_reason">取消原因<span class="required-mark"' in cancelled
    response = post(app, "/app/deal/new", form_data(cancelled, name="乙"))
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert re.search(r'id="f-cancel_reason-error" class="field-error">此字段为必填项。', page) or \
        "f-cancel_reason-error" in page
    assert 'value="乙"' in page  # the input is kept
    deal = created(post(app, "/app/deal/new", form_data(cancelled, name="乙", cancel_reason="太贵")))
    assert api_get(app, "deal", deal)["cancel_reason"] == "太贵"


def test_a_change_re_renders_the_conditional_fields_but_not_the_changed_input(app):
    html = get(app, "/app/deal/new")
    response = post(app, "/app/deal/_form", form_data(html, status="cancelled"),
                    headers={**HTMX, "HX-Trigger-Name": "status"})
    assert response.status_code == 200
    part = response.get_data(as_text=True)
    assert re.search(r'<div id="f-cancel_reason-slot" class="form-field field-text" hx-swap-oob="true">', part)
    assert 'name="cancel_reason"' in part and " required" in part
    assert 'id="f-status"' not in part and 'id="f-name"' not in part  # the changed input keeps its focus
    part = post(app, "/app/deal/_form", form_data(html, status="draft", cancel_reason="typed"),
                headers={**HTMX, "HX-Trigger-Name": "status"}).get_data(as_text=True)
    assert '<div id="f-cancel_reason-slot" class="form-field field-absent" hidden hx-swap-oob="true"></div>' in part


# ---------------------------------------------------------------- readonly_if, formulas

def test_a_field_is_read_only_while_its_condition_holds_on_the_stored_record(app):
    draft = api_create(app, "deal", {"name": "草稿", "note": "可改"})
    found = controls(get(app, f"/app/deal/{draft['id']}/edit"))
    assert found["f-note"].get("name") == "note" and "readonly" not in found["f-note"]
    paid = api_create(app, "deal", {"name": "已付", "status": "paid", "note": "定稿"})
    html = get(app, f"/app/deal/{paid['id']}/edit")
    found = controls(html)
    assert "readonly" in found["f-note"] and "name" not in found["f-note"] and found["f-note"]["value"] == "定稿"
    # typing "draft" into the status does not free it: readonly_if reads the record as stored
    assert "note" not in controls(get(app, f"/app/deal/{paid['id']}/edit?status=draft"))["f-note"].get("name", "")
    assert "f-note" not in {w for w in re.findall(r'id="(f-[a-z_]+)-slot"', html)}
    response = post(app, f"/app/deal/{paid['id']}/edit", form_data(html, status="draft", name="已付2"))
    assert response.status_code == 303
    assert api_get(app, "deal", paid["id"])["note"] == "定稿"


def test_a_formula_is_read_only_computed_when_saved_and_shown_after(app):
    html = get(app, "/app/deal/new")
    found = controls(html)["f-amount"]
    assert "readonly" in found and "name" not in found and found["value"] == "保存后自动计算"
    deal = created(post(app, "/app/deal/new", form_data(html, name="丙", quantity="3", price="2.50")))
    found = controls(get(app, f"/app/deal/{deal}/edit"))["f-amount"]
    assert "readonly" in found and "7.50" in found["value"]


# ---------------------------------------------------------------- validation rules

def test_a_broken_rule_is_said_beside_its_fields_and_at_the_top_keeping_the_input(app):
    html = get(app, "/app/deal/new")
    response = post(app, "/app/deal/new", form_data(html, name="丁", starts_on="2026-06-01", ends_on="2026-05-01"))
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert '<small id="f-starts_on-error" class="field-error">交易结束早于开始</small>' in page
    assert '<small id="f-ends_on-error" class="field-error">交易结束早于开始</small>' in page
    top = page[page.index('id="form-errors"'):page.index("</div>", page.index('id="form-errors"'))]
    assert "交易结束早于开始" in top and "_rules" not in page and "The deal ends" not in page
    assert controls(page)["f-ends_on"]["value"] == "2026-05-01" and 'value="丁"' in page
    english = post(app, "/app/deal/new", form_data(html, name="丁", starts_on="2026-06-01", ends_on="2026-05-01"),
                   headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert '<small id="f-ends_on-error" class="field-error">The deal ends before it starts</small>' in english


def test_the_sample_contract_rule_fails_in_the_form(retail):
    customer = api_create(retail, "customer", {"name": "合同客户"})
    html = get(retail, f"/app/contract/new?customer={customer['id']}")
    response = post(retail, "/app/contract/new", form_data(html, name="年度合同", amount="1000.00",
                                                           start_on="2026-06-01", end_on="2026-05-01"))
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert '<small id="f-end_on-error" class="field-error">合同到期日期早于开始日期</small>' in page
    assert "合同到期日期早于开始日期" in page[page.index('id="form-errors"'):]
    assert controls(page)["f-start_on"]["value"] == "2026-06-01"
    found = controls(html)["f-received_amount"]
    assert "readonly" in found and found["value"] == "保存后自动计算"


# ---------------------------------------------------------------- the sample's lost reason

def test_the_sample_lost_reason_shows_and_is_required_only_for_a_lost_opportunity(retail):
    customer = api_create(retail, "customer", {"name": "商机客户"})
    html = get(retail, "/app/opportunity/new")
    assert 'id="f-lost_reason"' not in html and "输单信息" not in html
    deal = api_create(retail, "opportunity", {"name": "大单", "customer": customer["id"]})
    assert 'id="f-lost_reason"' not in get(retail, f"/app/opportunity/{deal['id']}/edit")
    client = retail.test_client()
    lost = client.post(f"/api/v1/opportunity/{deal['id']}/transitions/lose", json={"lost_reason": "price"})
    assert lost.status_code == 200, lost.get_data(as_text=True)
    html = get(retail, f"/app/opportunity/{deal['id']}/edit")
    found = controls(html)["f-lost_reason"]
    assert "required" in found and "输单信息" in html
    response = post(retail, f"/app/opportunity/{deal['id']}/edit", form_data(html, lost_reason=""))
    assert response.status_code == 422
    assert 'id="f-lost_reason-error" class="field-error">此字段为必填项。' in response.get_data(as_text=True)
    assert api_get(retail, "opportunity", deal["id"])["lost_reason"] == "price"
    assert post(retail, f"/app/opportunity/{deal['id']}/edit",
                form_data(html, lost_reason="competitor")).status_code == 303
    assert api_get(retail, "opportunity", deal["id"])["lost_reason"] == "competitor"


# ---------------------------------------------------------------- no leak

def test_a_rule_reading_a_field_the_user_cannot_see_tells_them_nothing(app):
    low = api_create(app, "deal", {"name": "低", "secret": 7})
    high = api_create(app, "deal", {"name": "高", "secret": 1000, "vip_note": "贵宾"})
    pages = {}
    for deal in (low, high):
        html = get(app, f"/app/deal/{deal['id']}/edit", "carl", ("clerk",))
        assert 'id="f-secret"' not in html and "1000" not in html
        found = controls(html)
        # shown, not required by its rule, whatever the hidden value: the page is the same for both
        assert found["f-vip_note"].get("name") == "vip_note" and "required" not in found["f-vip_note"]
        assert "hx-post" not in found["f-name"] and 'id="f-vip_note-slot"' not in html
        assert "机密" in html  # the section on the hidden field shows, its fields under their rules
        pages[deal["id"]] = re.sub(r'value="[^"]*"|value=\'[^\']*\'|\d+|贵宾|低|高', "", html)
    low_page, high_page = pages[low["id"]].splitlines(), pages[high["id"]].splitlines()
    assert [a for a, b in zip(low_page, high_page) if a != b] == [] and len(low_page) == len(high_page)
    # the admin, who sees the field, gets the rule judged
    assert 'id="f-vip_note"' not in get(app, f"/app/deal/{low['id']}/edit")
    assert "required" in controls(get(app, f"/app/deal/{high['id']}/edit"))["f-vip_note"]
