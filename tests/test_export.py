"""The CSV export is for people: headers and values as labels in their
language, references by title, regions by name, money as plain numbers,
moments in the app's timezone, and no cell a spreadsheet would run."""

from __future__ import annotations

import csv
import io

import pytest

from conftest import MINI_FILES, as_test_app, is_error, make_config
from crmkit.app import create_app
from crmkit.permissions import SYSTEM
from crmkit.settings import Settings

API = "/api/v1"

ROLES_YAML = """
    roles:
      clerk:
        label: {en: Clerk, zh: 文员}
        entities:
          order: {read: all, export: all}
          customer: {read: own}
"""


@pytest.fixture(scope="module")
def app(module_database_url, tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    files = {**MINI_FILES, "roles.yaml": ROLES_YAML}
    files["entities/customer.yaml"] = files["entities/customer.yaml"].replace(
        "level: {type: enum, options: [bronze, silver, gold], default: bronze}",
        "level: {type: enum, options: [{value: bronze, label: {en: Bronze, zh: 铜牌}}, "
        "{value: silver, label: {en: Silver, zh: 银牌}}, {value: gold, label: {en: Gold, zh: 金牌}}], default: bronze}")
    files["entities/customer.yaml"] = files["entities/customer.yaml"].replace(
        "balance: {type: money}", "balance: {type: money, label: {en: Balance, zh: 余额}}")
    config = make_config(root / "config", files)
    app = as_test_app(create_app(config, Settings(database_url=module_database_url, instance_dir=root / "instance")))
    rt = app.extensions["crmkit"]
    alice = rt.records.create("customer", {
        "name": "张三", "level": "gold", "active": True, "region": "440106", "balance": "-1280.50",
        "tags": ["vip", "new"], "last_seen": "2026-01-31T01:30:00Z", "notes": "=HYPERLINK(1)",
        "website": "https://example.com"}, SYSTEM)
    rt.records.create("customer", {"name": "+cmd", "active": False, "notes": "@SUM(A1)"}, SYSTEM)
    rt.records.create("order", {"customer": alice["id"], "total": "10.00",
                                "ordered_at": "2026-02-01T16:00:00Z"}, SYSTEM)
    yield app
    rt.engine.dispose()


def rows(response) -> list[list[str]]:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/csv"
    text = response.get_data(as_text=True)
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:])))


def by_header(table: list[list[str]]) -> list[dict[str, str]]:
    return [dict(zip(table[0], row)) for row in table[1:]]


def test_headers_and_values_in_chinese_by_default(app):
    table = rows(app.test_client().get(f"{API}/customer/_export?sort=id"))
    first = by_header(table)[0]
    assert table[0][:3] == ["编号", "版本", "创建时间"] and "姓名" in table[0] and "余额" in table[0]
    assert first["姓名"] == "张三"
    assert first["Level"] == "金牌"  # the field has no Chinese label: its English one; the option has both
    assert first["Active"] == "是" and by_header(table)[1]["Active"] == "否"
    assert first["Region"] == "广东省广州市天河区"
    assert first["余额"] == "-1280.50"  # a plain number: not quoted, no currency sign
    assert first["Tags"] == "Vip、New"  # options without labels: their humanised names
    assert first["Last seen"] == "2026-01-31 09:30:00"  # Asia/Shanghai


@pytest.mark.parametrize("how", [{"query": "lang=en"}, {"headers": {"Accept-Language": "en-GB,en;q=0.8,zh;q=0.5"}}])
def test_english_when_asked(app, how):
    query = how.get("query", "")
    response = app.test_client().get(f"{API}/customer/_export?sort=id&{query}", headers=how.get("headers", {}))
    assert response.headers["Content-Language"] == "en"
    table = rows(response)
    first = by_header(table)[0]
    assert table[0][:2] == ["ID", "Version"] and "Name" in table[0] and "Balance" in table[0]
    assert first["Level"] == "Gold" and first["Active"] == "Yes" and first["Name"] == "张三"


def test_cells_a_spreadsheet_would_run_are_quoted(app):
    records = by_header(rows(app.test_client().get(f"{API}/customer/_export?sort=id&lang=en")))
    assert records[0]["Notes"] == "'=HYPERLINK(1)"
    assert records[1]["Name"] == "'+cmd" and records[1]["Notes"] == "'@SUM(A1)"
    assert records[0]["Balance"] == "-1280.50"  # a number is not a formula


def test_references_by_title_where_the_caller_may_read_them(app):
    rt = app.extensions["crmkit"]
    admin = by_header(rows(app.test_client().get(f"{API}/order/_export?lang=en")))
    assert admin[0]["Customer"] == "张三" and admin[0]["Total"] == "10.00"
    assert admin[0]["Ordered at"] == "2026-02-02 00:00:00"
    rt.directory.create_user({"username": "clerk", "roles": ["clerk"]}, SYSTEM)
    clerk = by_header(rows(app.test_client(user="clerk").get(f"{API}/order/_export?lang=en")))
    assert clerk[0]["Customer"] == "1"  # not theirs to read: the id


def test_export_parameters(app):
    client = app.test_client()
    is_error(client.get(f"{API}/customer/_export?lang=fr"), 400, "invalid_parameter")
    is_error(client.get(f"{API}/customer/_export?format=pdf"), 400, "invalid_parameter")
    is_error(client.get(f"{API}/customer/_export?limit=5"), 400, "invalid_parameter")
    assert rows(client.get(f"{API}/customer/_export?fields=name&lang=en"))[0] == ["ID", "Version", "Name"]
    assert len(rows(client.get(f"{API}/customer/_export?level=gold"))) == 2


def sheet(response) -> tuple[list[list], object]:
    """The rows of an XLSX export, read back with openpyxl (another library than the writer)."""
    import openpyxl

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    book = openpyxl.load_workbook(io.BytesIO(response.get_data()))
    try:
        return [[cell.value for cell in row] for row in book.active.iter_rows()], book.active
    finally:
        book.close()


def test_xlsx_has_labels_typed_cells_and_a_number_format_for_money(app):
    import datetime as dt
    from decimal import Decimal

    table, worksheet = sheet(app.test_client().get(f"{API}/customer/_export?format=xlsx&sort=id"))
    header = table[0]
    first = dict(zip(header, table[1]))
    assert header[:3] == ["编号", "版本", "创建时间"] and "姓名" in header and "余额" in header
    assert first["Level"] == "金牌" and first["Region"] == "广东省广州市天河区" and first["Active"] == "是"
    assert first["余额"] == -1280.5 and isinstance(first["余额"], float)  # a number a spreadsheet sums
    assert Decimal(str(first["余额"])) == Decimal("-1280.5")
    column = header.index("余额") + 1
    assert worksheet.cell(row=2, column=column).number_format == "#,##0.00"
    assert first["Last seen"] == dt.datetime(2026, 1, 31, 9, 30)  # the app's timezone, a date cell
    assert first["Tags"] == "Vip、New"
    assert worksheet.freeze_panes == "A2"


def test_xlsx_neutralises_formulas_and_speaks_english_when_asked(app):
    table, _ = sheet(app.test_client().get(f"{API}/customer/_export?format=xlsx&sort=id&lang=en"))
    records = [dict(zip(table[0], row)) for row in table[1:]]
    assert table[0][:2] == ["ID", "Version"] and "Balance" in table[0]
    assert records[0]["Notes"] == "'=HYPERLINK(1)" and records[0]["Level"] == "Gold"
    assert records[1]["Name"] == "'+cmd" and records[1]["Notes"] == "'@SUM(A1)"


def test_xlsx_exports_exactly_the_filter_and_the_chosen_fields_in_their_order(app):
    table, _ = sheet(app.test_client().get(f"{API}/customer/_export?format=xlsx&level=gold&fields=level,name&lang=en"))
    assert table[0] == ["ID", "Version", "Level", "Name"]
    assert [row[3] for row in table[1:]] == ["张三"]


def test_an_export_is_audited_with_its_query(app):
    import sqlalchemy as sa

    rt = app.extensions["crmkit"]
    sheet(app.test_client().get(f"{API}/customer/_export?format=xlsx&level=gold"))
    with rt.engine.connect() as conn:
        entry = conn.execute(sa.select(rt.tables.audit).where(rt.tables.audit.c.action == "export")
                             .order_by(rt.tables.audit.c.id.desc())).mappings().first()
    assert entry["changes"] == {"rows": 1, "query": [["level", "gold"]]}


def test_labels_of_the_formatting_module():
    from crmkit.ui.display import choose_locale, label_object

    assert label_object({"en": "Won", "zh": "赢单"}, "win") == {"en": "Won", "zh": "赢单"}
    assert label_object("Won", "win") == {"en": "Won", "zh": "Won"}
    assert label_object(None, "close_won") == {"en": "Close won"}
    assert choose_locale(None, ["fr", "en-US"], ("zh", "en")) == "en"
    assert choose_locale(None, [], ("zh", "en")) == "zh"
    assert choose_locale("xx", [], ("zh", "en")) is None
