"""The tag routes: a manual tag put on or taken off a record, under the
entity's update permission; and the tags every record carries in the API."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from flask import Response

from ..metadata.spec import EntitySpec
from . import api
from .http import current_actor, entity_or_404, json_response, parse_record_id, runtime


@api.post("/<entity:entity_name>/<rid:record_id>/tags/<tag>")
def add_tag(entity_name: str, record_id: str, tag: str) -> Response:
    """Put a manual tag on the record; answers the record's tags."""
    rt = runtime()
    entity = entity_or_404(entity_name)
    names = rt.records.tagging.add(entity.name, parse_record_id(record_id), tag, current_actor())
    return json_response({"data": {"tags": names}})


@api.delete("/<entity:entity_name>/<rid:record_id>/tags/<tag>")
def remove_tag(entity_name: str, record_id: str, tag: str) -> Response:
    """Take a manual tag off the record; answers the record's tags."""
    rt = runtime()
    entity = entity_or_404(entity_name)
    names = rt.records.tagging.remove(entity.name, parse_record_id(record_id), tag, current_actor())
    return json_response({"data": {"tags": names}})


def with_tags(entity: EntitySpec, ids: Sequence[int]) -> Callable[[dict], dict]:
    """An item function adding ``tags`` (the names the caller sees) to records
    of an entity that has tags: one query for all of ``ids``."""
    rt = runtime()
    access = rt.permissions.of(current_actor())
    if not rt.queries.tag_catalog.by_entity.get(entity.name):
        return lambda item: item
    with rt.engine.connect() as conn:
        names = rt.records.tagging.names(conn, entity, ids, access)

    def add(item: dict) -> dict:
        if item.get("id") in names:
            item["tags"] = names[item["id"]]
        return item

    return add
