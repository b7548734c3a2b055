"""The region type: 省/市/区 as a 6-digit administrative code."""

from __future__ import annotations

import sqlalchemy as sa

from .. import regions
from ..sqltypes import UTC
from .base import FieldType, FieldValueError
from .grammars import REGION_CODE


class RegionType(FieldType):
    """省/市/区 as the 6-digit administrative code (440106 = 广东省广州市天河区)."""

    name = "region"
    keys = frozenset({"level"})
    operators: tuple[str, ...] = ("eq", "ne", "in", "nin", "isnull", "within")
    plain_dump = True

    def column_type(self, f):
        return sa.String(6)

    def coerce(self, f, value, tz=UTC):
        if not isinstance(value, str) or not REGION_CODE.fullmatch(value):
            raise FieldValueError("must be a 6-digit region code like 440106")
        code = value
        region = regions.get(code)
        if region is None:
            raise FieldValueError(f"'{code}' is not a known region code")
        if region.depth > regions.LEVELS.index(f.level or "district"):
            raise FieldValueError(f"must be a {f.level} or larger region")
        return code

    def json_schema(self, f):
        level = (f.level or "district").capitalize()
        return {"$ref": f"#/components/schemas/Region{level}", "examples": ["440106"],
                "description": "A 6-digit administrative division code (GB/T 2260); names at /api/v1/regions."}
