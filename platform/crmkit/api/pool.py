"""The pool routes (crmkit.pool): claim a record from its entity's pool,
release one back to it. Both answer the record as the caller now sees it."""

from __future__ import annotations

from flask import Response

from . import api
from .http import current_actor, entity_or_404, parse_record_id, record_response, runtime


@api.post("/<entity:entity_name>/<rid:record_id>/claim")
def claim_record(entity_name: str, record_id: str) -> Response:
    """Take a record of the pool: the caller becomes its owner (409 when it
    has an owner, within the cool-down, or past the claim limit)."""
    rt = runtime()
    entity = entity_or_404(entity_name)
    actor = current_actor()
    rid = parse_record_id(record_id)
    rt.records.pool.claim(entity.name, rid, actor)
    return _as_read(entity_name, rid)


@api.post("/<entity:entity_name>/<rid:record_id>/release")
def release_record(entity_name: str, record_id: str) -> Response:
    """Give a record back to the pool (its owner, or whoever may reassign it)."""
    rt = runtime()
    entity = entity_or_404(entity_name)
    rid = parse_record_id(record_id)
    rt.records.pool.release(entity.name, rid, current_actor())
    return _as_read(entity_name, rid)


def _as_read(entity_name: str, record_id: int) -> Response:
    """The record as the caller may read it now (a released record is still
    theirs to read, as part of the pool)."""
    rt = runtime()
    entity = entity_or_404(entity_name)
    with rt.engine.connect() as conn:
        row = rt.queries.read_one(conn, entity, record_id, actor=current_actor())
    if row is None:  # released by someone who may reassign it but not claim it: done, nothing to show
        return Response(status=204)
    return record_response(entity, row)
