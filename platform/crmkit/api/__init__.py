"""The generated REST API under /api/v1/ (contract in DESIGN.md).

The blueprint and its error handling; the routes live in ``records`` (entity
records), ``approvals`` (approvals of workflow moves), ``people`` (me, users,
teams, tokens, the audit trail) and ``meta`` (OpenAPI, docs, regions);
``http`` holds what they share.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import sqlalchemy as sa
from flask import Blueprint, Flask, request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BaseConverter

from ..errors import CrmError, Forbidden
from .http import API_PREFIX, api_error, error_response, json_response, refuse_nul_parameters, runtime, runtime_of

api = Blueprint("crmkit_api", __name__, url_prefix=API_PREFIX)
api.before_request(refuse_nul_parameters)


class RecordId(BaseConverter):
    """An id in a URL: digits (range checked by the route), so that
    /customer/_bulk is the bulk route's URL and nothing else's."""

    regex = "[0-9]+"


def _names(names: Iterable[str]) -> str:
    """A URL converter's pattern matching exactly these names (nothing, when none)."""
    return "(?:" + "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)) + ")" if names else "(?!)"


def init_app(app: Flask) -> None:
    from . import approvals, automations, meta, people, pool, records, tags  # noqa: F401 - their routes join the blueprint

    # The record routes match only the config's entities and relations, so a URL
    # is served by one rule: the Allow header of a 405 and of OPTIONS tells the truth.
    spec = runtime_of(app).spec
    entity = type("EntityName", (BaseConverter,), {"regex": _names(spec.entities)})
    relation = type("RelationName", (BaseConverter,),
                    {"regex": _names({r for e in spec.entities.values() for r in e.relations})})
    app.url_map.converters.update(entity=entity, relation=relation, rid=RecordId)
    app.register_blueprint(api)

    @app.errorhandler(CrmError)
    def crm_error(exc: CrmError):
        if isinstance(exc, Forbidden) and exc.denial:
            runtime().audit.denial(exc.denial)
        response = error_response(exc)
        if exc.status == 429 and isinstance(exc.details, dict):
            response.headers["Retry-After"] = str(exc.details.get("retry_after", 60))
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if request.path.startswith(API_PREFIX) or request.path == "/healthz":
            return api_error(exc)
        return exc

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        return api_error(exc)

    @app.get("/healthz")
    def healthz():
        rt = runtime()
        try:
            with rt.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError:
            return json_response({"status": "error", "database": "unreachable"}, 503)
        return json_response({"status": "ok", "app": rt.spec.name})

