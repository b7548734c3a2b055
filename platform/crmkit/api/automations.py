"""The automations' run log in the API: ``GET /api/v1/automations/runs``.

Admins read every run (filters such as ``automation=wake_sleeping``,
``entity=customer``, ``status=failed``, in the grammar of lists); anyone else
reads the runs of one record they may read (``entity=E&record_id=N``), as the
record's timeline shows them: each action's name and how it ended, without
the lines and errors, which may quote values of fields hidden from them."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Response, request

from ..automations.runs import outline
from ..errors import BadRequest, Forbidden, NotFound
from ..permissions import ADMIN_ROLE
from ..query import Within
from . import api
from .http import current_actor, page_response, parse_whole_number, runtime


@api.get("/automations/runs")
def automation_runs() -> Response:
    rt = runtime()
    actor = current_actor()
    access = rt.permissions.of(actor)
    log = rt.automations.log
    source = log.source
    args = list(request.args.items(multi=True))
    within = None
    admin = access.system or ADMIN_ROLE in access.roles
    if not admin:
        entity_name, record_text = request.args.get("entity"), request.args.get("record_id")
        if entity_name is None or record_text is None:
            raise Forbidden("only admins read every automation run: give entity and record_id of a record "
                            "you may read", code="forbidden")
        entity = rt.spec.entities.get(entity_name)
        if entity is None:
            raise BadRequest(f"unknown entity '{entity_name[:40]}'", {"entity": ["unknown entity"]},
                             code="invalid_filter")
        record_id = parse_whole_number("record_id", record_text)
        with rt.engine.connect() as conn:
            if rt.queries.fetch(conn, entity, record_id, actor=actor, columns=("id",)) is None:
                raise NotFound(f"{entity.name} {record_id} not found")
        table = log.table

        def build() -> sa.ColumnElement[bool]:
            return sa.and_(table.c.entity == sa.bindparam("_entity", type_=sa.String()),
                           table.c.record_id == sa.bindparam("_record_id", type_=sa.Integer()))

        within = Within("automation_runs", build, {"_entity": entity.name, "_record_id": record_id})
        args = [(k, v) for k, v in args if k not in ("entity", "record_id")]
    list_request = rt.queries.parse_list(source, args, access)
    with rt.engine.connect() as conn:
        page = rt.queries.page(conn, source, list_request, actor=actor, within=within)
    return page_response(source, page, list_request.fields, None if admin else _outlined)


def _outlined(item: dict) -> dict:
    if "results" in item:
        item["results"] = outline(item["results"])
    if "error" in item:
        item["error"] = None
    return item
