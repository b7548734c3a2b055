"""The jobs API, for admins: ``GET /api/v1/jobs`` (the list grammar of
``/audit``: ``status=dead``, ``task=...``, ``sort``, ``limit``, ``cursor``,
``count``), ``GET /api/v1/jobs/<id>`` and ``POST /api/v1/jobs/<id>/replay``
(a dead job, run again). Errors in the one JSON shape."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, request

from ..errors import Conflict, Forbidden, NotFound
from ..permissions import ADMIN_ROLE
from . import store

if TYPE_CHECKING:
    from ..query import Source
    from ..runtime import Runtime

blueprint = Blueprint("crmkit_jobs", __name__, url_prefix="/api/v1/jobs")


def job_source(rt: Runtime) -> Source:
    """The jobs as a list source (crmkit.jobs.source, made once per runtime)."""
    return rt.jobs.source


def _admin() -> tuple[Runtime, Any]:
    from ..api.http import current_actor, runtime

    rt = runtime()
    actor = current_actor()
    if not actor.system and ADMIN_ROLE not in rt.permissions.of(actor).roles:
        raise Forbidden("only an admin may see and replay jobs", code="forbidden")
    return rt, actor


@blueprint.get("")
def list_jobs() -> Response:
    """Jobs, newest first; ``status=dead`` is the dead-letter list."""
    from ..api.http import page_response

    rt, actor = _admin()
    source = job_source(rt)
    access = rt.permissions.of(actor)
    list_request = rt.queries.parse_list(source, request.args.items(multi=True), access)
    with rt.engine.connect() as conn:
        page = rt.queries.page(conn, source, list_request, actor=actor)
    return page_response(source, page, list_request.fields)


def _one(rt: Runtime, actor: Any, text: str) -> dict[str, Any]:
    """A job as the API shows it, read through the query builder as the list is."""
    from ..api.http import parse_record_id

    job_id = parse_record_id(text)
    source = job_source(rt)
    one = rt.queries.parse_list(source, [("id", str(job_id))], rt.permissions.of(actor))
    one.limit = 1
    with rt.engine.connect() as conn:
        page = rt.queries.page(conn, source, one, actor=actor)
    if not page.rows:
        raise NotFound(f"no job with id {job_id}")
    return rt.queries.row_dumper(source, page.columns, None)(page.rows[0])


@blueprint.get("/<job_id>")
def get_job(job_id: str) -> Response:
    from ..api.http import json_response

    rt, actor = _admin()
    return json_response({"data": _one(rt, actor, job_id)})


@blueprint.post("/<job_id>/replay")
def replay_job(job_id: str) -> Response:
    """Run a dead job again (its attempts from zero); 409 for a job that is not dead."""
    from ..api.http import json_response

    rt, actor = _admin()
    job = _one(rt, actor, job_id)
    if job["status"] != store.DEAD:
        raise Conflict(f"job {job['id']} is {job['status']}, not dead: only a dead job is replayed",
                       {"status": job["status"]})
    if not rt.jobs.replay(job["id"]):  # it changed in between
        raise Conflict(f"job {job['id']} is no longer dead")
    return json_response({"data": _one(rt, actor, str(job["id"]))})
