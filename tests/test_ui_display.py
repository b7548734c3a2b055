"""Values as people read them: money, numbers, dates in the app's timezone,
choices and regions, in Chinese and English."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from flask import render_template_string

from conftest import token_for
from crmkit.metadata.spec import FieldSpec, Option
from crmkit.ui import display

SHANGHAI = ZoneInfo("Asia/Shanghai")
UTC = dt.UTC


@pytest.mark.parametrize(("value", "language", "currency", "expected"), [
    (Decimal("1280"), "zh", None, "¥1,280.00"),
    (Decimal("1280"), "en", None, "¥1,280.00"),  # the currency's usual symbol in both languages, not CN¥
    (Decimal("-0.5"), "zh", "CNY", "-¥0.50"),
    (Decimal("1234567.89"), "en", "USD", "$1,234,567.89"),
    (Decimal("99.9"), "zh", "USD", "$99.90"),
    (Decimal("99.9"), "en", "EUR", "€99.90"),
    (Decimal("99.9"), "zh", "HKD", "HK$99.90"),
    (0, "zh", None, "¥0.00"),
])
def test_money_in_the_currencys_symbol_and_digits(value, language, currency, expected):
    assert display.money(value, language, currency) == expected


@pytest.mark.parametrize("currency", ["CNY", "USD", "EUR", "JPY", "HKD", "GBP"])
def test_an_amount_reads_the_same_in_both_languages(currency):
    assert display.money(Decimal("-1280.5"), "zh", currency) == display.money(Decimal("-1280.5"), "en", currency)
    assert display.money(1280.5, "zh", currency) == display.money(1280.5, "en", currency)  # Babel's own path


def test_numbers_are_grouped_and_keep_every_significant_digit():
    assert display.number(1234567, "zh") == "1,234,567"
    assert display.number(Decimal("1234.5678"), "en") == "1,234.5678"
    assert display.number(Decimal("0.10"), "en") == "0.1"  # trailing zeros of the stored scale say nothing


def test_dates_in_each_language():
    day = dt.date(2026, 11, 30)
    assert display.date(day, "zh") == "2026年11月30日"
    assert display.date(day, "en") == "Nov 30, 2026"
    with pytest.raises(TypeError):
        display.date(dt.datetime(2026, 11, 30, tzinfo=UTC), "zh")


def test_moments_are_shown_in_the_apps_timezone():
    stored = dt.datetime(2026, 11, 30, 8, 20, tzinfo=UTC)  # 16:20 in Shanghai
    assert display.moment(stored, "zh", SHANGHAI) == "2026年11月30日 16:20"
    assert display.moment(stored, "en", "Asia/Shanghai") == "Nov 30, 2026, 4:20\u202fPM"
    assert display.moment(stored, "en", "America/New_York") == "Nov 30, 2026, 3:20\u202fAM"
    late = dt.datetime(2026, 11, 30, 17, 0, tzinfo=UTC)  # already the next day in Shanghai
    assert display.moment(late, "zh", SHANGHAI) == "2026年12月1日 01:00"


def test_a_moment_without_an_offset_is_taken_as_utc_as_it_is_stored():
    assert display.moment(dt.datetime(2026, 11, 30, 8, 20), "zh", SHANGHAI) == "2026年11月30日 16:20"


LEVEL = FieldSpec("level", "enum", {"en": "Level"}, options=(
    Option("gold", {"en": "Gold", "zh": "金卡"}), Option("silver", {"en": "Silver"})))
TAGS = FieldSpec("tags", "multi_enum", {"en": "Tags"}, options=(
    Option("vip", {"en": "VIP", "zh": "贵宾"}), Option("new", {"en": "New", "zh": "新客"})))


@pytest.mark.parametrize(("field", "value", "language", "expected"), [
    (LEVEL, "gold", "zh", "金卡"),
    (LEVEL, "gold", "en", "Gold"),
    (LEVEL, "silver", "zh", "Silver"),  # no Chinese label: the English one
    (LEVEL, "retired", "zh", "retired"),  # a value no longer among the options: as it is
    (TAGS, ["vip", "new"], "zh", "贵宾、新客"),
    (TAGS, ["vip", "new"], "en", "VIP, New"),
    (FieldSpec("active", "boolean", {}), True, "zh", "是"),
    (FieldSpec("active", "boolean", {}), False, "zh", "否"),
    (FieldSpec("active", "boolean", {}), False, "en", "No"),
    (FieldSpec("region", "region", {}), "440106", "zh", "广东省广州市天河区"),
    (FieldSpec("region", "region", {}), "990000", "zh", "990000"),
    (FieldSpec("total", "money", {}, currency="USD"), Decimal("5"), "en", "$5.00"),
    (FieldSpec("age", "integer", {}), 12345, "en", "12,345"),
    (FieldSpec("day", "date", {}), dt.date(2026, 1, 2), "zh", "2026年1月2日"),
    (FieldSpec("at", "datetime", {}), dt.datetime(2026, 1, 2, 3, 4, tzinfo=UTC), "zh", "2026年1月2日 11:04"),
    (FieldSpec("name", "string", {}), "<b>张三</b>", "zh", "<b>张三</b>"),  # text as typed: templates escape it
    (FieldSpec("name", "string", {}), None, "zh", ""),
    (FieldSpec("name", "string", {}), "", "en", ""),
])
def test_a_fields_value_as_a_person_reads_it(app, field, value, language, expected):
    with app.test_request_context():  # booleans come from the message catalogs
        assert display.field_value(field, value, language, SHANGHAI) == expected


def test_templates_format_in_the_requests_language_and_the_apps_timezone(app):
    token_for(app)
    template = "{{ amount|money }} · {{ n|number }} · {{ day|date }} · {{ at|moment }} · {{ v|field_value(field) }}"
    values = {"amount": Decimal("1280"), "n": 1234.5, "day": dt.date(2026, 11, 30),
              "at": dt.datetime(2026, 11, 30, 8, 20, tzinfo=UTC), "v": "gold", "field": LEVEL}
    with app.test_request_context("/app/", headers={"Accept-Language": "zh-CN"}):
        assert render_template_string(template, **values) == \
            "¥1,280.00 · 1,234.5 · 2026年11月30日 · 2026年11月30日 16:20 · 金卡"
    with app.test_request_context("/app/?lang=en"):
        assert render_template_string(template, **values) == \
            "¥1,280.00 · 1,234.5 · Nov 30, 2026 · Nov 30, 2026, 4:20\u202fPM · Gold"


# ---------------------------------------------------------------- one rule for screens and exports

def test_the_quick_money_and_number_rules_are_babels():
    import random

    from babel.numbers import format_currency, format_decimal, get_currency_symbol

    rng = random.Random(8)
    for _ in range(400):
        value = Decimal(rng.randint(-10**12, 10**12)).scaleb(-rng.randint(0, 6))
        for language in ("zh", "en"):
            for currency in ("CNY", "USD", "JPY", "EUR"):
                babel = format_currency(value, currency, locale=language).replace(
                    get_currency_symbol(currency, language), display.usual_symbol(currency), 1)
                assert display.money(value, language, currency) == babel
            assert display.number(value, language) == format_decimal(value, locale=language,
                                                                     decimal_quantization=False)


@pytest.mark.parametrize(("field", "value", "expected"), [
    (FieldSpec("total", "money", {}), Decimal("-1280.50"), Decimal("-1280.50")),
    (FieldSpec("total", "money", {}), Decimal("1E+2"), Decimal("100")),
    (FieldSpec("age", "integer", {}), 42, 42),
    (FieldSpec("day", "date", {}), dt.date(2026, 1, 2), dt.date(2026, 1, 2)),
    (FieldSpec("at", "datetime", {}), dt.datetime(2026, 1, 31, 1, 30, 15, 999, tzinfo=UTC),
     dt.datetime(2026, 1, 31, 9, 30, 15)),
    (LEVEL, "gold", "金卡"),
    (TAGS, ["vip", "new"], "贵宾、新客"),
    (FieldSpec("region", "region", {}), "440106", "广东省广州市天河区"),
    (FieldSpec("extra", "json", {}), {"a": "甲"}, '{"a": "甲"}'),
    (FieldSpec("name", "string", {}), None, None),
])
def test_an_export_cell_keeps_numbers_and_dates_typed_and_words_as_on_screen(app, field, value, expected):
    with app.test_request_context():
        cell = display.cell_value(field, value, "zh", SHANGHAI)
    assert cell == expected and type(cell) is type(expected)


def test_an_english_reader_gets_a_humanised_name_rather_than_chinese():
    assert display.label({"zh": "姓名"}, "en", "Name") == "Name"
    assert display.label({"zh": "姓名"}, "zh", "Name") == "姓名"
    assert display.label({"zh": "姓名"}, "en") == "姓名"
