"""The API reference page (/api/v1/docs): the caller's OpenAPI document, browsable."""

from __future__ import annotations

from flask import Blueprint, render_template

from ..api.http import current_actor, runtime
from ..api.openapi import document

bp = Blueprint("crmkit_docs", __name__)


@bp.get("/api/v1/docs")
def api_docs():
    rt = runtime()
    access = rt.permissions.of(current_actor())
    return render_template("api_docs.html", spec=rt.spec, doc=document(rt, access), types=rt.field_types,
                           access=access)
