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
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from flask import abort, flash, render_template, request
from flask_babel import get_timezone, gettext
from markupsafe import Markup

from .. import query as query_module
from ..api.http import current_actor
from ..errors import CrmError, Forbidden
from ..fieldtypes import MAX_ID
from ..metadata.spec import DIRECTORY_ENTITIES, EntitySpec, FieldSpec, ViewSpec
from ..permissions import POOL, Access, Actor, EntityAccess
from ..query import ListRequest, Page
from ..runtime import Runtime
from ..saved_views import SavedView, SavedViews
from . import display
from .cards import stored
from .i18n import locale
from .navigation import view_offered
from .pool import claimable
from .security import is_htmx, redirect_to
from .shell import _runtime, bp
from .tags import TAG_ARGS, chip_text, page_tags, tag_filter

#: Query arguments of the screen that are not list parameters.
SCREEN_ARGS = frozenset({"view", "lang"})
#: Arguments that say how to page, not which records: not filters.
PAGING_ARGS = frozenset({"cursor", "count", "limit"})
NOT_FILTERS = frozenset({"q", "sort", "fields", "view", "lang"}) | PAGING_ARGS
#: System fields that hold a user's or a team's id.
PEOPLE = {"owner_id": "user", "created_by": "user", "updated_by": "user", "team_id": "team"}
#: Columns of an entity whose list names none: its title and the next few fields.
DEFAULT_COLUMNS = 6
#: Hits per entity in the global search.
SEARCH_HITS = 5
#: Per-record messages of a bulk action kept for the next page (the rest are counted).
BULK_MESSAGES = 12
BULK_ACTIONS = ("assign", "transition", "delete", "export_csv", "export_xlsx")
#: How a filter's operator reads in a chip (the words are translated).
OPERATOR_SIGNS = {"eq": "=", "ne": "≠", "gt": ">", "gte": "≥", "lt": "<", "lte": "≤"}


# ------------------------------------------------------------------ what a list URL says

def _url(path: str, args: Iterable[tuple[str, str]]) -> str:
    query = urlencode(list(args))
    return f"{path}?{query}" if query else path


def _replace(args: Sequence[tuple[str, str]], drop: Iterable[str], *add: tuple[str, str]) -> list[tuple[str, str]]:
    dropped = set(drop)
    return [(k, v) for k, v in args if k not in dropped] + [pair for pair in add if pair[1] != ""]


@dataclass
class ListState:
    """A list URL understood: the arguments it shows, the saved view it names,
    the columns, and the arguments the query builder gets."""

    entity: EntitySpec
    #: The URL's own arguments (empty values left out, ``fields`` as one value).
    args: list[tuple[str, str]]
    view: ViewSpec | None
    columns: tuple[str, ...]
    #: What parse_list gets: the view's defaults, then the URL's arguments, and the columns as ``fields``.
    query: list[tuple[str, str]]

    @property
    def path(self) -> str:
        return f"/app/{self.entity.name}"

    def url(self, drop: Iterable[str] = (), *add: tuple[str, str]) -> str:
        return _url(self.path, _replace(self.args, drop, *add))

    def filters(self) -> list[tuple[str, str]]:
        return [(k, v) for k, v in self.args if k not in NOT_FILTERS]

    def export_url(self, kind: str) -> str:
        args = [(k, v) for k, v in self.query if k not in PAGING_ARGS]
        return _url(f"/api/v1/{self.entity.name}/_export", args + [("format", kind), ("lang", locale())])

    @property
    def searched(self) -> bool:
        return any(k == "q" for k, _ in self.args)

    @property
    def paged(self) -> bool:
        """Whether this is a page after the first."""
        return any(k == "cursor" for k, _ in self.args)


def default_columns(entity: EntitySpec, ea: EntityAccess) -> tuple[str, ...]:
    if entity.list.columns:
        return entity.list.columns
    names = [entity.title] + [n for n, f in entity.fields.items() if not f.system and f.type != "json"]
    return tuple(dict.fromkeys(n for n in names if n in ea.visible))[:DEFAULT_COLUMNS]


def list_views(rt: Runtime, entity: EntitySpec, access: Access) -> list[ViewSpec]:
    """The views of views.yaml that list this entity, for the user's roles."""
    usable = rt.queries.tag_catalog.views(access, entity.name)  # a where reading a hidden field is not theirs
    return [v for v in rt.spec.views.values()
            if v.entity == entity.name and v.kind == "list" and view_offered(v, access) and v.name in usable]


def read_state(rt: Runtime, entity: EntitySpec, ea: EntityAccess, access: Access,
               given: Iterable[tuple[str, str]]) -> ListState:
    args: list[tuple[str, str]] = []
    named: list[str] = []
    view_name = None
    for key, value in given:
        value = value.strip()
        if not value or key == "lang":
            continue
        if key == "fields":
            named += [n.strip() for n in value.split(",") if n.strip()]
        elif key == "view":
            view_name = value
        else:
            args.append((key, value))
    view = next((v for v in list_views(rt, entity, access) if v.name == view_name), None)
    keys = {k for k, _ in args}
    defaults: list[tuple[str, str]] = []
    if view is not None:
        defaults += [(k, v) for k, v in view.filter.items() if k not in keys]
        if view.sort and "sort" not in keys:
            defaults.append(("sort", ",".join(view.sort)))
    wanted = named or (view.columns if view is not None else ()) or default_columns(entity, ea)
    columns = tuple(n for n in dict.fromkeys(wanted) if n in ea.visible and n in entity.fields)
    columns = columns or default_columns(entity, ea)
    shown = list(args)
    if view is not None:
        shown.insert(0, ("view", view.name))
    if named:
        shown.append(("fields", ",".join(columns)))
    query = defaults + args
    if view is not None and "view" in query_module.LIST_PARAMETERS:  # segments: the view's own condition
        query.append(("view", view.name))
    query.append(("fields", ",".join(columns)))
    return ListState(entity, shown, view, columns, query)


# ------------------------------------------------------------------ cells

#: A cell of a row: its class attribute, its text, and the option labels of a
#: multi-option field (shown as chips). Tuples: a page has hundreds of cells.
Cell = tuple[str, str, tuple[str, ...]]
PLAIN, NUMBER, MASKED = "", ' class="number"', ' class="masked"'
EMPTY: Cell = (PLAIN, "", ())


@dataclass(slots=True)
class Row:
    id: int
    #: The first column's text (a link to the record).
    title: str
    cells: list[Cell]
    #: the record's tags as chips (HTML, crmkit.ui.tags)
    tags: str = ""
    #: the pool's claim column (crmkit.ui.pool): a button's words, "" for an empty cell, None for no column
    claim: str | None = None

    def html(self, path: str, pick: bool) -> Markup:
        """The row's cells as HTML: a box to choose it (``pick``, for the bulk
        actions), the first column as a link to the record (which labels the
        box), then ``<td class=...>text</td>`` with the text escaped and option
        labels as chips. Written here rather than in the template because a
        page has hundreds of cells, and escaping each value through Jinja's
        autoescape costs more than the rest of the page."""
        rid = self.id
        parts = [f'<td class="pick"><input type="checkbox" name="id" value="{rid}" aria-labelledby="r{rid}"></td>'
                 if pick else "", f'<td><a id="r{rid}" href="{escape(path)}/{rid}">{escape(self.title)}</a>'
                 + (f' <span class="row-tags">{self.tags}</span>' if self.tags else "") + "</td>"]
        for css, text, chips in self.cells:
            if chips:
                text_html = "".join(f'<span class="chip">{escape(chip)}</span>' for chip in chips)
            else:
                text_html = escape(text)
            parts.append(f"<td{css}>{text_html}</td>")
        if self.claim is not None:  # a button of the list's form, posted to the record's claim
            parts.append(f'<td class="claim"><button type="submit" class="secondary outline" formmethod="post" '
                         f'formaction="{escape(path)}/{rid}/claim" aria-describedby="r{rid}">{escape(self.claim)}'
                         '</button></td>' if self.claim else '<td class="claim"></td>')
        return Markup("".join(parts))


def _names_of(rt: Runtime, conn: sa.Connection, kind: str, ids: set[int], actor: Actor, access: Access,
              language: str) -> dict[int, str]:
    """Users' and teams' names, through the query builder (within the actor's read scope of them)."""
    if not ids or not access.allows(kind, "read"):
        return {}
    source = rt.queries.platform[kind]
    name = "display_name" if kind == "user" else "name"
    found: dict[int, str] = {}
    id_list = sorted(ids)
    for start in range(0, len(id_list), query_module.MAX_IN_VALUES):
        chunk = id_list[start:start + query_module.MAX_IN_VALUES]
        request_ = rt.queries.parse_list(source, [("id__in", ",".join(map(str, chunk))), ("fields", name),
                                                  ("limit", str(min(len(chunk), rt.spec.max_page_size)))], access)
        page = rt.queries.page(conn, source, request_, actor=actor)
        found.update((row["id"], row[name] or "") for row in page.mappings())
    return found


def titles(rt: Runtime, conn: sa.Connection, fields: Sequence[FieldSpec], rows: Sequence[Mapping[str, Any]],
           actor: Actor, access: Access, language: str) -> dict[str, dict[int, str]]:
    """For each reference (and owner, team) column, the titles of the records it
    names that the actor may read, as text."""
    out: dict[str, dict[int, str]] = {}
    tz = get_timezone()
    for f in fields:
        target = PEOPLE.get(f.name) if f.system else f.to if f.type == "ref" else None
        if target is None:
            continue
        ids = {row[f.column] for row in rows} - {None}
        if target in DIRECTORY_ENTITIES:
            out[f.name] = _names_of(rt, conn, target, ids, actor, access, language)
        elif target in rt.spec.entities:
            other = rt.spec.entities[target]
            title = other.fields.get(other.title)
            found = rt.queries.titles(conn, target, ids, actor)
            out[f.name] = {k: display.field_value(title, v, language, tz) if title else str(v)
                           for k, v in found.items()}
    return out


def cell_formatter(rt: Runtime, f: FieldSpec, ea: EntityAccess, names: dict[str, dict[int, str]],
                   language: str) -> Callable[[Any], Cell]:
    """value -> cell for one column, chosen once per page (a page has hundreds of cells)."""
    tz = rt.queries.tz
    masks = dict(ea.masked)
    if f.name in masks:
        mask, dump = masks[f.name], rt.field_types[f.type].dump
        return lambda value: (MASKED, mask(value if isinstance(value, str) else dump(f, value)), ())
    if f.name in names:
        found = names[f.name]
        return lambda value: (PLAIN, found.get(value, f"#{value}"), ())
    if f.type in ("enum", "multi_enum"):
        labels = display.option_labels(f, language)
        if f.type == "enum":
            return lambda value: (PLAIN, labels.get(value) or str(value), ())
        return lambda values: (PLAIN, "", tuple(labels.get(v) or str(v) for v in values))
    if f.type in ("money", "integer", "decimal"):
        return lambda value: (NUMBER, display.field_value(f, value, language, tz), ())
    if f.type == "datetime":
        return lambda value: (PLAIN, display.moment(stored(f, value), language, tz), ())
    return lambda value: (PLAIN, display.field_value(f, value, language, tz), ())


def rows_of(rt: Runtime, page: Page, fields: Sequence[FieldSpec], ea: EntityAccess, names: dict[str, dict[int, str]],
            language: str) -> list[Row]:
    columns = [(page.columns.index(f.column), cell_formatter(rt, f, ea, names, language)) for f in fields]
    at_id = page.columns.index("id")
    out = []
    for row in page.rows:
        cells = [EMPTY if row[i] is None or row[i] == "" else cell(row[i]) for i, cell in columns]
        out.append(Row(row[at_id], cells[0][1] or cells[0][2] and "、".join(cells[0][2]) or f"#{row[at_id]}",
                       cells[1:]))
    return out


# ------------------------------------------------------------------ controls

@dataclass
class Column:
    field: FieldSpec
    label: str
    sort: str | None = None  # aria-sort: ascending | descending
    sort_url: str | None = None


@dataclass
class Control:
    """A filter control: which field, how it is asked for, its inputs' names and values."""

    kind: str  # choice | boolean | range | dates | moments | text
    field: FieldSpec
    label: str
    names: tuple[str, ...]
    values: tuple[str, ...]
    options: tuple[tuple[str, str], ...] = ()


@dataclass
class Chip:
    text: str
    remove_url: str


@dataclass
class Tab:
    label: str
    url: str
    current: bool
    saved: SavedView | None = None


@dataclass
class Bulk:
    actions: tuple[str, ...]
    users: list[tuple[int, str]] = field(default_factory=list)
    moves: list[tuple[str, str]] = field(default_factory=list)


def columns_of(rt: Runtime, state: ListState, request_: ListRequest, ea: EntityAccess, language: str) -> list[Column]:
    primary = request_.sort[0] if request_.sort else None
    base = state.url(("sort", "cursor", "count"))
    base += "&sort=" if "?" in base else "?sort="
    out = []
    for name in state.columns:
        f = state.entity.fields[name]
        column = Column(f, display.field_label(f, language))
        if rt.field_types[f.type].sortable and name in ea.readable:
            current = primary is not None and primary[0].name == name
            descending = current and primary is not None and primary[1]
            column.sort = ("descending" if descending else "ascending") if current else None
            column.sort_url = base + (name if descending or not current else "-" + name)
        out.append(column)
    return out


def controls_of(rt: Runtime, state: ListState, ea: EntityAccess, access: Access, language: str) -> list[Control]:
    """Filters for the columns and the entity's choice fields the user may filter on."""
    entity = state.entity
    given = dict(state.args)
    names = list(state.columns) + [n for n, f in entity.fields.items() if f.type in ("enum", "boolean")]
    out = []
    for name in dict.fromkeys(names):
        f = entity.fields[name]
        if name not in ea.readable or f.name in PEOPLE or name == "id":
            continue
        label = display.field_label(f, language)
        kind = f.type
        if kind == "enum":
            options = tuple((str(o.value), display.choice(f, o.value, language)) for o in f.options)
            out.append(Control("choice", f, label, (name,), (given.get(name, ""),), options))
        elif kind == "multi_enum":
            options = tuple((str(o.value), display.choice(f, o.value, language)) for o in f.options)
            key = name + "__contains"
            out.append(Control("choice", f, label, (key,), (given.get(key, ""),), options))
        elif kind == "boolean":
            options = (("true", display.boolean(True, language)), ("false", display.boolean(False, language)))
            out.append(Control("choice", f, label, (name,), (given.get(name, ""),), options))
        elif kind in ("integer", "decimal", "money", "date"):
            keys = (name + "__gte", name + "__lte")
            out.append(Control("dates" if kind == "date" else "range", f, label, keys,
                               tuple(given.get(k, "") for k in keys)))
        elif kind == "datetime":
            keys = (name + "__gte", name + "__lt")
            out.append(Control("moments", f, label, keys, tuple(given.get(k, "") for k in keys)))
        elif kind == "ref" and f.to in rt.spec.entities:
            other = rt.spec.entities[f.to or ""]
            if other.title in access.entity(other.name).readable:
                key = f"{name}.{other.title}__contains"
                out.append(Control("text", f, label, (key,), (given.get(key, ""),)))
    return out


def owner_links(state: ListState, ea: EntityAccess, actor: Actor) -> list[Tab]:
    """Mine / my team / all, within the read scope (nothing to choose for a scope of one's own)."""
    if not state.entity.owned or actor.id is None:
        return []
    scope = ea.scope("read")
    if scope <= {"own"}:
        return []
    given = dict(state.args)
    drop = ("owner_id", "owner_id__isnull", "team_id", "cursor", "count")
    links = [Tab(gettext("Mine"), state.url(drop, ("owner_id", str(actor.id))),
                 given.get("owner_id") == str(actor.id) and "team_id" not in given)]
    if actor.team_id is not None and scope - {"own", "subordinates", POOL}:
        links.append(Tab(gettext("My team"), state.url(drop, ("team_id", str(actor.team_id))),
                         given.get("team_id") == str(actor.team_id) and "owner_id" not in given))
    links.append(Tab(gettext("All"), state.url(drop), not {"owner_id", "team_id", "owner_id__isnull"} & set(given)))
    if state.entity.pool is not None and (POOL in scope or "all" in scope):
        links.append(Tab(gettext("Pool"), state.url(drop, ("owner_id__isnull", "true")),
                         given.get("owner_id__isnull") == "true"))
    return links


def chips_of(state: ListState, language: str, tag_text: Callable[[str, str], str] | None = None) -> list[Chip]:
    """The filters in force, each with a link that removes it."""
    out = []
    fields = state.entity.fields
    words = {"contains": gettext("contains"), "startswith": gettext("starts with"), "in": gettext("is one of"),
             "nin": gettext("is none of"), "within": gettext("is within")}
    for key, value in state.filters():
        name, _, op = key.partition("__")
        base, _, through = name.partition(".")
        f = fields.get(base)
        label = display.field_label(f, language) if f is not None else base
        if f is not None and not through and f.type in ("enum", "multi_enum") and op in ("", "eq", "ne", "contains"):
            value = display.choice(f, value, language)
        elif f is not None and f.type == "boolean" and value in ("true", "false"):
            value = display.boolean(value == "true", language)
        if key in TAG_ARGS and tag_text is not None:
            text = tag_text(key, value)
        elif op == "isnull":
            emptiness = gettext("is empty") if value == "true" else gettext("is not empty")
            text = f"{label} {emptiness}"
        else:
            text = f"{label} {OPERATOR_SIGNS.get(op or 'eq') or words.get(op, op)} {value}"
        remaining = [(k, v) for k, v in state.args if k != key and k not in ("cursor", "count")]
        out.append(Chip(text, _url(state.path, remaining)))
    return out


def tabs_of(rt: Runtime, state: ListState, access: Access, mine: list[SavedView], language: str) -> list[Tab]:
    current = sorted((k, v) for k, v in state.args if k not in PAGING_ARGS)
    tabs = [Tab(gettext("All"), state.path, not current)]
    for view in list_views(rt, state.entity, access):
        tabs.append(Tab(display.label(view.label, language, view.name), _url(state.path, [("view", view.name)]),
                        state.view is not None and state.view.name == view.name
                        and current == sorted([("view", view.name)])))
    for saved in mine:
        tabs.append(Tab(saved.name, _url(state.path, saved.args()), sorted(saved.args()) == current, saved))
    return tabs


def bulk_of(rt: Runtime, entity: EntitySpec, ea: EntityAccess, access: Access, actor: Actor,
            conn: sa.Connection, language: str) -> Bulk:
    """The bulk actions the user's roles allow on this entity (a button for each, none else)."""
    actions = []
    users: list[tuple[int, str]] = []
    moves: list[tuple[str, str]] = []
    if entity.owned and ea.allows("assign") and access.allows("user", "read"):
        source = rt.queries.platform["user"]
        request_ = rt.queries.parse_list(source, [("active", "true"), ("fields", "display_name,username"),
                                                  ("sort", "display_name"), ("limit", str(rt.spec.max_page_size))],
                                         access)
        users = [(r["id"], r["display_name"] or r["username"])
                 for r in rt.queries.page(conn, source, request_, actor=actor).mappings()]
        actions.append("assign")
    if ea.allows("transition"):
        for workflow in rt.spec.workflows:
            if workflow.entity == entity.name:
                moves += [(m.name, display.label(m.label, language, m.name)) for m in workflow.transitions
                          if not m.roles or set(m.roles) & set(access.roles)]
        if moves:
            actions.append("transition")
    if ea.allows("delete"):
        actions.append("delete")
    if ea.allows("export"):
        actions += ["export_csv", "export_xlsx"]
    return Bulk(tuple(actions), users, moves)


def saved_views() -> SavedViews:
    rt = _runtime()
    return SavedViews(rt.engine, rt.tables.metadata)


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
    with rt.engine.connect() as conn:
        try:
            list_request = rt.queries.parse_list(entity, state.query, access)
            page = rt.queries.page(conn, entity, list_request, actor=actor)
        except CrmError as exc:  # a hand-edited URL: say what is wrong, keep the screen
            error = exc
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

    def tag_words(key: str, value: str) -> str:
        return chip_text(rt, access, entity, key, value, language)

    context = {
        "entity": entity, "state": state, "rows": rows, "page": page, "error": error, "bulk": bulk,
        "columns": columns_of(rt, state, list_request, ea, language), "chips": chips_of(state, language, tag_words),
        "may_create": ea.allows("create"), "may_export": ea.allows("export"),
        "searchable": any(n in ea.readable for n in entity.list.search),
        "query": dict(state.args).get("q", ""),
    }
    context.update(tabs=tabs_of(rt, state, access, mine, language), owner_links=owner_links(state, ea, actor),
                   controls=controls_of(rt, state, ea, access, language),
                   tag_filter=tag_filter(rt, access, entity, state.args, language),
                   choosable=[(f, display.field_label(f, language)) for n, f in entity.fields.items()
                              if n in ea.visible and f.type != "json"])
    if is_htmx() and request.headers.get("HX-Target") == "list-results":
        return render_template("_list_results.html", **context)  # htmx swaps 200s only: the error shows inline
    return render_template("list.html", **context), 400 if error is not None else 200


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
            abort(403)
        fields = request.form.get("fields", "")
        args = [("id__in", ",".join(map(str, ids)))] + ([("fields", fields)] if fields else [])
        return redirect_to(_url(f"/api/v1/{entity.name}/_export",
                                args + [("format", action.removeprefix("export_")), ("lang", locale())]))
    done, failed = 0, []
    for record_id in ids:
        try:
            if action == "delete":
                rt.records.delete(entity.name, record_id, actor)
            elif action == "assign":
                owner = request.form.get("owner_id", "")
                rt.records.update(entity.name, record_id,
                                  {"owner_id": int(owner) if owner.isascii() and owner.isdigit() else owner}, actor)
            else:
                rt.records.transition(entity.name, record_id, request.form.get("transition", ""), {}, actor)
            done += 1
        except CrmError as exc:
            if isinstance(exc, Forbidden) and exc.denial:
                rt.audit.denial(exc.denial)
            failed.append((record_id, exc.message))
    if done:
        flash(gettext("%(action)s: %(count)d done.", action=_action_label(action), count=done), "success")
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
