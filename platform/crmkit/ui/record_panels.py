"""The panels the record page loads after it (crmkit.ui.record): its related
lists (a page of the records that refer to this one) and its timeline, with
the quick-add of a follow-up; read through the query builder, written through
the records service, loaded by htmx (or whole, without JavaScript)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flask import abort, flash, render_template, request
from werkzeug.wrappers import Response

from ..api.http import current_actor
from ..errors import CrmError, NotFound
from ..metadata.spec import EntitySpec, label_text
from .cells import Cell, Cells
from .formfields import Widget
from .i18n import gettext, locale
from .record import (
    RELATED_COLUMNS,
    RELATED_PAGE,
    _back,
    _entity,
    _failed,
    _fresh_inputs,
    _quick_form,
    _quick_widgets,
    _record_url,
    _runtime,
    record_title,
)
from .security import is_htmx
from .shell import bp
from .timeline import Timeline, quick_add

# ------------------------------------------------------------------ related lists

@dataclass
class RelatedRow:
    title: Cell
    cells: list[Cell]


@bp.get("/<entity_name>/<int:record_id>/related/<relation>")
def related_list(entity_name: str, record_id: int, relation: str):
    """A page of a related list: the table (htmx), its next rows (htmx with a
    cursor), or a whole page (without JavaScript)."""
    entity = _entity(entity_name)
    rt = _runtime()
    rel = entity.relations.get(relation)
    if rel is None or rel.entity not in rt.spec.entities:
        abort(404)
    actor = current_actor()
    access = rt.permissions.of(actor)
    other = rt.spec.entities[rel.entity]
    oea = access.entity(other.name)
    if not oea.allows("read"):
        abort(404)
    via = rel.field or entity.name if rel.kind == "one_to_many" else None
    names = [n for n in other.list.columns if n in oea.visible and n not in (via, other.title)][:RELATED_COLUMNS]
    columns = [other.fields[n] for n in names]
    cursor = request.args.get("cursor")
    args = [("limit", str(RELATED_PAGE))] + ([("cursor", cursor)] if cursor else [])
    cells = Cells(rt, actor)
    try:
        with rt.engine.connect() as conn:
            list_request = rt.queries.parse_list(other, args, access)
            page = rt.queries.related_page(conn, entity, record_id, rel, list_request, actor=actor)
            rows = page.mappings()
            cells.load(conn, cells.refs_of(other, oea, rows))
            record = None if is_htmx() else record_title(rt, conn, entity, record_id, cells)
    except NotFound:
        abort(404)
    except CrmError as exc:
        abort(400, _failed(exc))
    title_field = other.fields[other.title]
    out = []
    for row in rows:
        title = cells.title(other, oea, row)
        out.append(RelatedRow(Cell(title.text or f"#{row['id']}", f"/app/{other.name}/{row['id']}", title.masked),
                              [cells.cell(f, row.get(f.column), oea) for f in columns]))
    language = locale()
    label = label_text(rel.label, language, "") or label_text(other.plural, language, other.name)
    here = _record_url(entity, record_id, f"/related/{rel.name}")
    more = f"{here}?{urlencode({'cursor': page.next})}" if page.next else None
    context = {"entity": entity, "record_id": record_id, "other": other, "label": label, "rows": out,
               "columns": [label_text(f.label, language, f.name) for f in columns],
               "title_label": label_text(title_field.label, language, other.title), "more": more, "here": here}
    if is_htmx():
        return render_template("_record_related_rows.html" if cursor else "_record_related.html", **context)
    return render_template("record_related.html", record_title=record, **context)


# ------------------------------------------------------------------ the timeline

def _timeline_context(entity: EntitySpec, record_id: int, cursor: str | None) -> dict[str, Any]:
    rt = _runtime()
    actor = current_actor()
    cells = Cells(rt, actor)
    timeline = Timeline(rt, entity, record_id, actor, cells)
    try:
        with rt.engine.connect() as conn:
            entries, after = timeline.read(conn, cursor)
            title = None if is_htmx() else record_title(rt, conn, entity, record_id, cells)
    except NotFound:
        abort(404)
    except CrmError as exc:
        abort(400, _failed(exc))
    here = _record_url(entity, record_id, "/timeline")
    return {"entity": entity, "record_id": record_id, "record_title": title, "entries": entries, "here": here,
            "more": f"{here}?{urlencode({'cursor': after})}" if after else None}


@bp.get("/<entity_name>/<int:record_id>/timeline")
def timeline_page(entity_name: str, record_id: int):
    """The timeline: the section (htmx), its next entries (htmx with a cursor),
    or a whole page with the quick-add form (without JavaScript)."""
    entity = _entity(entity_name)
    cursor = request.args.get("cursor")
    context = _timeline_context(entity, record_id, cursor)
    if is_htmx():
        return render_template("_record_timeline_entries.html" if cursor else "_record_timeline.html", **context)
    return _timeline_full(entity, record_id, context)


def _timeline_full(entity: EntitySpec, record_id: int, context: dict[str, Any], status: int = 200,
                   quick_inputs: list[Widget] | None = None, error: str | None = None):
    rt = _runtime()
    adding = quick_add(rt, entity, rt.permissions.of(current_actor()))
    if quick_inputs is None:
        quick_inputs = _fresh_inputs(rt, adding)
    return render_template("record_timeline.html", quick=adding, quick_inputs=quick_inputs if adding else [],
                           quick_error=error, **context), status


@bp.post("/<entity_name>/<int:record_id>/activities")
def add_activity(entity_name: str, record_id: int):
    """The quick-add of a follow-up: created through the records service with
    this record as its reference; the timeline is shown again, newest first."""
    entity = _entity(entity_name)
    rt = _runtime()
    actor = current_actor()
    adding = quick_add(rt, entity, rt.permissions.of(actor))
    if adding is None:
        abort(404)
    source, fields = adding
    form = _quick_form(rt, source, actor)
    names = [f.name for f in fields]
    form.take(request.form, names)
    data = form.data(names)
    data[source.ref.name] = record_id
    error = gettext("Please correct the fields marked below.") if form.errors else None
    if not form.errors:
        try:
            rt.records.create(source.entity.name, data, actor)
        except CrmError as exc:
            details = exc.details if isinstance(exc.details, dict) else {}
            if source.ref.name in details:  # the record itself is refused: gone, or not the reader's to refer to
                abort(404)
            form.refused(exc)
            error = _failed(exc)
    if error is not None:  # the form again, with what was typed and why
        quick_inputs = _quick_widgets(form, fields)
        if is_htmx():
            return render_template("_record_quick_add.html", entity=entity, record_id=record_id, quick=adding,
                                   quick_inputs=quick_inputs, quick_error=error)
        return _timeline_full(entity, record_id, _timeline_context(entity, record_id, None), 422, quick_inputs,
                              error)
    if is_htmx():
        response = Response(render_template("_record_quick_add.html", entity=entity, record_id=record_id,
                                            quick=adding, quick_saved=True,
                                            quick_inputs=_fresh_inputs(rt, adding)),
                            mimetype="text/html")
        response.headers["HX-Trigger"] = "crmkit:timeline-changed"
        return response
    flash(gettext("%(what)s added.", what=label_text(source.entity.label, locale(), source.entity.name)), "success")
    return _back(entity, record_id, "#timeline")
