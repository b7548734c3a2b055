"""The API about itself and shared reference data: the OpenAPI document and
the names of region codes. (The docs page that shows the document is a screen:
crmkit.ui.docs.)"""

from __future__ import annotations

from flask import request

from .. import regions as region_data
from ..errors import NotFound
from . import api
from .http import current_actor, json_response, runtime


@api.get("/regions")
def list_regions():
    parent = request.args.get("parent") or None
    if parent is not None and region_data.get(parent) is None:
        raise NotFound(f"no region with code '{parent}'", code="unknown_region")
    data = [{"code": r.code, "name": r.name, "level": r.level} for r in region_data.children(parent)]
    return json_response({"data": data})


@api.get("/openapi.json")
def openapi_document():
    from .openapi import document

    rt = runtime()
    return json_response(document(rt, rt.permissions.of(current_actor())))
