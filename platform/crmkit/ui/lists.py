"""The list screen of an entity (/app/<entity>), its bulk actions and saved
views, and the global search (/app/search).

The list's URL grammar is the API's: the query string goes to the query
builder's ``parse_list`` as it is (filters ``field__op=value``, ``q``,
``sort``, ``limit``, ``cursor``, ``count``, ``fields`` as the columns), so a
list is shareable and bookmarkable and reads exactly what the API would.
The screen adds ``view`` (a view of views.yaml: its filters, sort and columns
are the defaults the URL's own arguments override). htmx swaps the results
(``_list_results.html``) for searches, sorts and pages; the full page renders
the same fragment, and every page works without JavaScript.

The routes are here; what a list URL says is crmkit.ui.list_state, the rows
crmkit.ui.list_rows and the controls (headers, filters, tabs, bulk bar,
tools) crmkit.ui.list_controls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flask import abort, flash, g, render_template, request
from flask_babel import get_timezone
from markupsafe import Markup

from ..api.http import current_actor
from ..approvals import ApprovalPending
from ..errors import CrmError, Forbidden
from ..fieldtypes import MAX_ID
from ..metadata.spec import EntitySpec
from ..permissions import Access, Actor, EntityAccess
from ..query import ListRequest, Page
from ..runtime import Runtime
from . import display
from .cards import stored
from .fragments import fill, kept_parts, mark
from .i18n import gettext, locale
from .list_controls import (
    Bulk,
    bulk_of,
    chips_of,
    columns_of,
    list_tools,
    owner_links,
    saved_views,
    tabs_of,
)
from .list_rows import (
    Row,
    filter_titles,
    rows_of,
    table_rows,
    titles,
)
from .list_state import (
    BULK_ACTIONS,
    BULK_MESSAGES,
    PAGING_ARGS,
    SEARCH_HITS,
    ListState,
    _url,
    read_state,
)
from .pool import claimable
from .security import is_htmx, redirect_to
from .shell import _runtime, bp, refuse
from .tags import chip_text, page_tags

# ------------------------------------------------------------------ routes

def _readable(entity_name: str) -> tuple[Runtime, EntitySpec, Actor, Access, EntityAccess]:
    rt = _runtime()
    entity = rt.spec.entities.get(entity_name)
    actor = current_actor()
    access = rt.permissions.of(actor)
    if entity is None or not access.entity(entity_name).allows("read"):
        abort(404)
    return rt, entity, actor, access, access.entity(entity_name)


@bp.get("/<entity_name>")
def entity_list(entity_name: str):
    """The list: columns, search, filters, sort, pages, views, bulk actions, export."""
    rt, entity, actor, access, ea = _readable(entity_name)
    language = locale()
    state = read_state(rt, entity, ea, access, request.args.items(multi=True))
    error = None
    page = Page((), (), None, None)
    list_request = ListRequest()
    rows: list[Row] = []
    status = 200
    with rt.engine.connect() as conn:
        try:
            if state.refused_view is not None:  # a bookmark of a view that is not the user's
                raise CrmError(gettext("the view “%(name)s” is not one you may use (it is for other roles, or it "
                                       "no longer exists)", name=state.refused_view[:40]), status=403)
            list_request = rt.queries.parse_list(entity, state.query, access)
            page = rt.queries.page(conn, entity, list_request, actor=actor)
        except CrmError as exc:  # a hand-edited URL: say what is wrong, keep the screen
            error, status = exc, (403 if exc.status == 403 else 400)
            list_request = rt.queries.parse_list(entity, [("fields", ",".join(state.columns))], access)
        fields = [entity.fields[n] for n in state.columns]
        if page.rows:
            names = titles(rt, conn, fields, page.mappings(), actor, access, language)
            rows = rows_of(rt, page, fields, ea, names, language)
            chips = page_tags(rt, conn, entity, [row.id for row in rows], access, language)
            for row in rows:
                row.tags = chips.get(row.id, "")
            pooled = claimable(rt, conn, entity, [row.id for row in rows], actor)
            if pooled is not None:
                claim_words = gettext("Claim")
                for row in rows:
                    row.claim = claim_words if row.id in pooled else ""
        bulk = bulk_of(rt, entity, ea, access, actor, conn, language) if rows else Bulk(())
        mine = saved_views().of(actor, entity.name, conn)
        known = filter_titles(rt, conn, state, actor, access, language)

    def tag_words(key: str, value: str) -> str:
        return chip_text(rt, access, entity, key, value, language)

    context = {
        "entity": entity, "state": state, "rows": rows, "page": page, "error": error, "bulk": bulk,
        "columns": columns_of(rt, state, list_request, ea, language),
        "chips": chips_of(state, language, tag_words, known),
        "may_create": ea.allows("create"), "may_export": ea.allows("export"),
        "searchable": any(n in ea.readable for n in entity.list.search),
        "query": dict(state.args).get("q", ""), "tabs": tabs_of(rt, state, access, mine, language),
        "owner_links": owner_links(state, ea, actor),
    }
    values = {"csrf": g.get("crmkit_csrf", ""), "here": state.url,
              "count_url": lambda: state.url(("count",), ("count", "true")),
              "next_url": lambda: state.url(("cursor",), ("cursor", page.next)) if page.next else "",
              "rows": lambda: table_rows(rows, state.path, bool(bulk.actions)),
              "tools": lambda: list_tools(rt, state, ea, access, actor, language, known)}
    if is_htmx() and request.headers.get("HX-Target") == "list-results":
        # htmx swaps 200s only: the error shows inline
        return list_part("_list_results.html", context, access, actor, language, values)
    return render_template("list.html", list_content=list_part("_list_page.html", context, access, actor, language,
                                                               values), **context), status


#: What a kept part of the list page holds in place of this request's own values (crmkit.ui.fragments).
LIST_MARKS = {"csrf_token": "csrf", "here_url": "here", "count_url": "count_url", "next_url": "next_url",
              "table_rows": "rows"}


def list_part(template: str, context: Mapping[str, Any], access: Access, actor: Actor, language: str,
              values: Mapping[str, Any]) -> Markup:
    """The list page's content (or its results, for htmx), kept rendered
    (crmkit.ui.fragments): a page has a few hundred template values around
    its rows, the same for everyone who asks for the same list with the same
    roles and language. The key holds everything the templates read but the
    marks: the list's arguments but its cursor, the page's tabs, links,
    chips, columns and bulk actions (each user's own saved views, names and
    titles among them: a part is shared only by requests that would render
    the same), whether there are rows, a next page, a count. The rows, the
    panels (kept on their own), this page's URLs and the user's token are put
    in per request, escaped. A search's list is not kept: searches are
    typed, each seldom asked for twice."""
    state: ListState = context["state"]
    page: Page = context["page"]
    rows: Sequence[Row] = context["rows"]
    bulk: Bulk = context["bulk"]
    error = context["error"]
    key = ("list", template, is_htmx(), request.script_root, state.entity.name, language, access.roles,
           access.system, actor.id is not None, state.view.name if state.view else None, state.columns,
           tuple((k, v) for k, v in state.args if k != "cursor"), state.paged, bool(rows),
           bool(rows) and rows[0].claim is not None, page.count, page.next is not None,
           None if error is None else str(error.message),
           bulk.actions, tuple(bulk.users), tuple(bulk.moves),
           tuple((c.field.name, c.label, c.sort, c.sort_url) for c in context["columns"]),
           tuple((c.text, c.remove_url) for c in context["chips"]),
           tuple((t.label, t.url, t.current, t.saved.id if t.saved else None) for t in context["tabs"]),
           tuple((t.label, t.url, t.current) for t in context["owner_links"]),
           context["may_create"], context["may_export"], context["searchable"])

    def render() -> str:
        marks = {name: mark(value) for name, value in LIST_MARKS.items()}
        return render_template(template, **context, **marks, list_tools=lambda: mark("tools"))

    if state.searched:  # typed as the user types: seldom asked for twice, it would only push the others out
        return fill(render(), values)
    return fill(kept_parts().get(key, render), values)


@bp.post("/<entity_name>/bulk")
def bulk_action(entity_name: str):
    """One action on the chosen records, each through the records service; a
    message per record says how it went."""
    rt, entity, actor, access, ea = _readable(entity_name)
    back = request.form.get("next") or f"/app/{entity.name}"
    action = request.form.get("action", "")
    ids = list(dict.fromkeys(int(i) for i in request.form.getlist("id")
                             if i.isascii() and i.isdigit() and 0 < int(i) <= MAX_ID))
    if len(ids) > rt.spec.max_page_size:  # a page's worth at a time, as the list shows them
        flash(gettext("At most %(count)d records at a time.", count=rt.spec.max_page_size), "error")
        return redirect_to(back)
    if action not in BULK_ACTIONS:
        flash(gettext("Choose an action."), "error")
        return redirect_to(back)
    if not ids:
        flash(gettext("Choose the records first: tick their boxes."), "warning")
        return redirect_to(back)
    if action == "assign" and not request.form.get("owner_id"):
        flash(gettext("Choose the new owner."), "warning")
        return redirect_to(back)
    if action == "transition" and not request.form.get("transition"):
        flash(gettext("Choose where to move the records."), "warning")
        return redirect_to(back)
    if action.startswith("export_"):
        if not ea.allows("export"):
            refuse(gettext("export %(entity)s", entity=display.label(entity.plural, locale(), entity.name)))
        fields = request.form.get("fields", "")
        args = [("id__in", ",".join(map(str, ids)))] + ([("fields", fields)] if fields else [])
        return redirect_to(_url(f"/api/v1/{entity.name}/_export",
                                args + [("format", action.removeprefix("export_")), ("lang", locale())]))
    done, asked, failed = 0, 0, []
    for record_id in ids:
        try:
            if action == "delete":
                rt.records.delete(entity.name, record_id, actor)
            elif action == "assign":
                owner = request.form.get("owner_id", "")
                rt.records.update(entity.name, record_id,
                                  {"owner_id": int(owner) if owner.isascii() and owner.isdigit() else owner}, actor)
            elif isinstance(rt.records.transition(entity.name, record_id, request.form.get("transition", ""), {},
                                                  actor), ApprovalPending):
                asked += 1
                continue
            done += 1
        except CrmError as exc:
            if isinstance(exc, Forbidden) and exc.denial:
                rt.audit.denial(exc.denial)
            failed.append((record_id, exc.message))
    if done:
        flash(gettext("%(action)s: %(count)d done.", action=_action_label(action), count=done), "success")
    if asked:
        flash(gettext("%(count)d sent for approval.", count=asked), "success")
    for record_id, message in failed[:BULK_MESSAGES]:
        flash(gettext("#%(id)d not changed: %(reason)s", id=record_id, reason=message[:200]), "error")
    if len(failed) > BULK_MESSAGES:
        flash(gettext("%(count)d more records were not changed.", count=len(failed) - BULK_MESSAGES), "error")
    return redirect_to(back)


def _action_label(action: str) -> str:
    return {"delete": gettext("Delete"), "assign": gettext("Assign"),
            "transition": gettext("Move")}.get(action, action)


@bp.post("/<entity_name>/views")
def save_view(entity_name: str):
    """Keep the list's current query under a name, for this user only."""
    rt, entity, actor, access, ea = _readable(entity_name)
    state = read_state(rt, entity, ea, access, _query_pairs(request.form.get("query", "")))
    args = [(k, v) for k, v in state.args if k not in PAGING_ARGS]
    try:
        saved_views().save(actor, entity.name, request.form.get("name", ""), args)
    except CrmError as exc:
        flash(gettext("The view was not saved: %(reason)s", reason=exc.message), "error")
        return redirect_to(state.url())
    flash(gettext("View saved."), "success")
    return redirect_to(_url(state.path, args))


@bp.post("/<entity_name>/views/<int:view_id>/delete")
def delete_view(entity_name: str, view_id: int):
    rt, entity, actor, access, ea = _readable(entity_name)
    try:
        saved_views().delete(actor, view_id)
    except CrmError:
        abort(404)
    flash(gettext("View deleted."), "success")
    return redirect_to(f"/app/{entity.name}")


def _query_pairs(text: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(text.partition("?")[2] if "?" in text else text, keep_blank_values=False)


# ------------------------------------------------------------------ global search

@dataclass
class Hit:
    url: str
    title: str
    detail: str


@dataclass
class HitGroup:
    entity: EntitySpec
    label: str
    hits: list[Hit]
    more_url: str | None


@bp.get("/search")
def search():
    """Every entity the user may read, searched over its list.search fields
    through the query builder: a few hits each, grouped by entity."""
    rt = _runtime()
    actor = current_actor()
    access = rt.permissions.of(actor)
    language = locale()
    tz = get_timezone()
    text = " ".join(request.args.get("q", "").split())[:200]
    groups: list[HitGroup] = []
    if text:
        with rt.engine.connect() as conn:
            for entity in rt.spec.entities.values():
                ea = access.entity(entity.name)
                fields = [n for n in entity.list.search if n in ea.readable]
                if not ea.allows("read") or not fields:
                    continue
                title = entity.fields.get(entity.title) if entity.title in ea.visible else None
                shown = ([title.name] if title else []) + fields
                list_request = rt.queries.parse_list(entity, [("q", text), ("limit", str(SEARCH_HITS)),
                                                              ("fields", ",".join(shown))], access)
                page = rt.queries.page(conn, entity, list_request, actor=actor)
                if not page.rows:
                    continue
                masks = dict(ea.masked)
                hits = []
                for row in page.mappings():
                    heading = f"#{row['id']}"
                    if title is not None and row.get(title.column) not in (None, ""):
                        value = row[title.column]
                        heading = masks[title.name](value) if title.name in masks else \
                            display.field_value(title, stored(title, value), language, tz)
                    others = [display.field_value(entity.fields[n], row.get(entity.fields[n].column), language, tz)
                              for n in fields if n != entity.title]
                    hits.append(Hit(f"/app/{entity.name}/{row['id']}", heading, " · ".join(o for o in others if o)))
                more = _url(f"/app/{entity.name}", [("q", text)]) if page.next else None
                groups.append(HitGroup(entity, display.label(entity.plural, language, entity.name), hits, more))
    return render_template("search.html", query=text, groups=groups)
