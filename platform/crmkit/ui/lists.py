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
from functools import lru_cache
from html import escape
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote_plus

import sqlalchemy as sa
from flask import abort, current_app, flash, g, render_template, request
from flask_babel import get_timezone
from markupsafe import Markup

from .. import query as query_module
from ..api.http import current_actor
from ..approvals import ApprovalPending
from ..errors import CrmError, Forbidden
from ..fieldtypes import MAX_ID
from ..metadata.spec import DIRECTORY_ENTITIES, EntitySpec, FieldSpec, ViewSpec
from ..permissions import POOL, Access, Actor, EntityAccess
from ..query import ListRequest, Page
from ..runtime import Runtime
from ..saved_views import SavedView, SavedViews
from . import display
from .cards import stored
from .forms import DIRECTORY_TITLES
from .fragments import fill, kept_parts, mark
from .i18n import gettext, locale
from .navigation import view_offered
from .pool import claimable
from .security import is_htmx, redirect_to
from .shell import _runtime, bp, refuse
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
#: Operators of a filter whose value is ids (shown by the titles of the records they name).
REF_OPERATORS = frozenset({"", "eq", "ne", "in", "nin"})
#: How a filter's operator reads in a chip (the words are translated).
OPERATOR_SIGNS = {"eq": "=", "ne": "≠", "gt": ">", "gte": "≥", "lt": "<", "lte": "≤"}


# ------------------------------------------------------------------ what a list URL says

#: Text as a query string writes it (what urlencode does to each key and value), remembered:
#: a list page writes the same few arguments into a dozen links.
_quoted = lru_cache(maxsize=4096)(quote_plus)


def _url(path: str, args: Iterable[tuple[str, str]]) -> str:
    query = "&".join(f"{_quoted(str(k))}={_quoted(str(v))}" for k, v in args)
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
    #: What parse_list gets: the URL's arguments, the view (which it applies), and the columns as ``fields``.
    query: list[tuple[str, str]]
    #: A view the URL names that is not one of the user's (unknown, for other
    #: roles, or reading what they may not see): the list is refused, not shown whole.
    refused_view: str | None = None

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
    wanted = named or (view.columns if view is not None else ()) or default_columns(entity, ea)
    columns = tuple(n for n in dict.fromkeys(wanted) if n in ea.visible and n in entity.fields)
    columns = columns or default_columns(entity, ea)
    shown = list(args)
    if view is not None:
        shown.insert(0, ("view", view.name))
    if named:
        shown.append(("fields", ",".join(columns)))
    # The view's filters, sort and condition are the query builder's to apply
    # (``view=``, one path with the API's); the URL's own arguments override them.
    query = args + ([("view", view.name)] if view is not None else [])
    query.append(("fields", ",".join(columns)))
    refused = view_name if view_name is not None and view is None else None
    return ListState(entity, shown, view, columns, query, refused)


# ------------------------------------------------------------------ cells

#: A column's class attribute.
PLAIN, NUMBER, MASKED = "", ' class="number"', ' class="masked"'
#: A column: its class attribute, and value -> the cell's content as HTML
#: (escaped; option labels of a multi-option field as chips).
ColumnRule = tuple[str, Callable[[Any], str]]


@dataclass(slots=True)
class Row:
    id: int
    #: The first column's text as HTML (escaped: a link to the record).
    title: str
    #: The other columns' cells as HTML (``<td class=...>content</td>`` each).
    cells: str
    #: the record's tags as chips (HTML, crmkit.ui.tags)
    tags: str = ""
    #: the pool's claim column (crmkit.ui.pool): a button's words, "" for an empty cell, None for no column
    claim: str | None = None

    def html(self, path: str, pick: bool) -> Markup:
        """The row's cells as HTML: a box to choose it (``pick``, for the bulk
        actions), the first column as a link to the record (which labels the
        box), then the other cells. Written here rather than in the template
        because a page has hundreds of cells, and escaping each value through
        Jinja's autoescape costs more than the rest of the page."""
        return Markup(self._html(escape(path), pick))

    def _html(self, path_html: str, pick: bool) -> str:
        rid = self.id
        html = ((f'<td class="pick"><input type="checkbox" name="id" value="{rid}" aria-labelledby="r{rid}"></td>'
                 if pick else "") + f'<td><a id="r{rid}" href="{path_html}/{rid}">{self.title}</a>'
                + (f' <span class="row-tags">{self.tags}</span>' if self.tags else "") + "</td>" + self.cells)
        if self.claim is not None:  # a button of the list's form, posted to the record's claim
            html += (f'<td class="claim"><button type="submit" class="secondary outline" formmethod="post" '
                     f'formaction="{path_html}/{rid}/claim" aria-describedby="r{rid}">{escape(self.claim)}'
                     '</button></td>' if self.claim else '<td class="claim"></td>')
        return html


def table_rows(rows: Sequence[Row], path: str, pick: bool) -> Markup:
    """The ``<tr>`` of every row, one a line (as the template's loop wrote them)."""
    path_html = escape(path)
    return Markup("\n      ".join(f"<tr>{row._html(path_html, pick)}</tr>" for row in rows))


def _names_of(rt: Runtime, conn: sa.Connection, kind: str, ids: set[int], actor: Actor, access: Access,
              language: str) -> dict[int, str]:
    """Users' and teams' names, through the query builder (within the actor's read scope of them)."""
    if not ids or not access.allows(kind, "read"):
        return {}
    source = rt.queries.platform[kind]
    names = DIRECTORY_TITLES[kind]  # a user's display name, else user name; a team's label, else name
    found: dict[int, str] = {}
    id_list = sorted(ids)
    size = min(query_module.MAX_IN_VALUES, rt.spec.max_page_size)
    for start in range(0, len(id_list), size):
        chunk = id_list[start:start + size]
        request_ = rt.queries.parse_list(source, [("id__in", ",".join(map(str, chunk))),
                                                  ("fields", ",".join(names)), ("limit", str(len(chunk)))], access)
        page = rt.queries.page(conn, source, request_, actor=actor)
        found.update((row["id"], next((str(row[n]) for n in names if row.get(n)), "")) for row in page.mappings())
    return found


def titles(rt: Runtime, conn: sa.Connection, fields: Sequence[FieldSpec], rows: Sequence[Mapping[str, Any]],
           actor: Actor, access: Access, language: str) -> dict[str, dict[int, str]]:
    """For each reference (and owner, team) column, the titles of the records it
    names that the actor may read, as text."""
    out: dict[str, dict[int, str]] = {}
    for f in fields:
        target = ref_target(f)
        if target is None:
            continue
        ids = {row[f.column] for row in rows} - {None}
        out[f.name] = titles_of(rt, conn, target, ids, actor, access, language)
    return out


def ref_target(f: FieldSpec | None) -> str | None:
    """The entity (``user``, ``team``) a field's value is the id of, if any."""
    if f is None:
        return None
    return PEOPLE.get(f.name) if f.system else f.to if f.type == "ref" else None


def titles_of(rt: Runtime, conn: sa.Connection, target: str, ids: set[int], actor: Actor, access: Access,
              language: str) -> dict[int, str]:
    """The titles (users' and teams' names) of those of the records of
    ``target`` the actor may read, as text, in one query of the query builder
    (a title the actor may not read is left out)."""
    if not ids:
        return {}
    if target in DIRECTORY_ENTITIES:
        return _names_of(rt, conn, target, ids, actor, access, language)
    if target not in rt.spec.entities:
        return {}
    other = rt.spec.entities[target]
    title = other.fields.get(other.title)
    tz = get_timezone()
    found = rt.queries.titles(conn, target, ids, actor)
    return {k: display.field_value(title, v, language, tz) if title else str(v) for k, v in found.items()}


def filter_titles(rt: Runtime, conn: sa.Connection, state: ListState, actor: Actor, access: Access,
                  language: str) -> dict[tuple[str, int], str]:
    """(target, id) -> title of the records the list's filters on refs (and
    owner, team) name, read as the actor may read them: one query per target."""
    wanted: dict[str, set[int]] = {}
    for key, value in state.filters():
        name, _, op = key.partition("__")
        target = ref_target(state.entity.fields.get(name))
        if target is None or op not in REF_OPERATORS:
            continue
        wanted.setdefault(target, set()).update(_ids(value))
    return {(target, key): text for target, ids in wanted.items()
            for key, text in titles_of(rt, conn, target, ids, actor, access, language).items()}


def _ids(text: str) -> set[int]:
    return {int(part) for part in text.split(",")
            if part.strip().isascii() and part.strip().isdigit() and 0 < int(part) <= MAX_ID}


def cell_formatter(rt: Runtime, f: FieldSpec, ea: EntityAccess, names: dict[str, dict[int, str]],
                   language: str, *, title: bool = False) -> ColumnRule:
    """The rule of one column, chosen once per page (a page has hundreds of
    cells): its class, and value -> the cell's content: text, escaped later
    with the page's other texts at once (:func:`escape_texts`), but for the
    chips of a multi-option field, HTML already (its class marked with
    :data:`HTML_COLUMN`). ``title``: the first column, a
    link's text (a multi-option field's labels joined, not chips)."""
    tz = rt.queries.tz
    masks = dict(ea.masked)
    if f.name in masks:
        mask, dump = masks[f.name], rt.field_types[f.type].dump
        return MASKED, lambda value: mask(value if isinstance(value, str) else dump(f, value))
    if f.name in names:
        found = names[f.name]
        return PLAIN, lambda value: found.get(value, f"#{value}")
    if f.type in ("enum", "multi_enum"):
        labels = display.option_labels(f, language)

        def option(value: Any) -> str:
            return labels.get(value) or str(value)
        if f.type == "enum":
            return PLAIN, option
        if title:
            return PLAIN, lambda values: "、".join(option(v) for v in values)
        return HTML_COLUMN + PLAIN, lambda values: "".join(f'<span class="chip">{escape(option(v))}</span>'
                                                           for v in values)
    rule = display.value_rule(f, language, tz)
    if f.type in ("money", "integer", "decimal"):
        return NUMBER, rule
    if f.type == "datetime":
        return PLAIN, lambda value: rule(stored(f, value))
    return PLAIN, rule


#: Marks a column rule whose content is HTML already (not escaped with the page's texts).
HTML_COLUMN = "\x00"
#: What joins a page's texts to escape them at once (no text holds it, or they are escaped one by one).
_JOIN = "\x00"


def escape_texts(texts: list[str]) -> list[str]:
    """Texts escaped for HTML, in one call for the lot: a list page has
    hundreds, and escaping them one by one cost more than formatting them."""
    joined = _JOIN.join(texts)
    if joined.count(_JOIN) != len(texts) - 1:  # a text holds the joint itself
        return [escape(text) for text in texts]
    return escape(joined).split(_JOIN) if texts else []


def rows_of(rt: Runtime, page: Page, fields: Sequence[FieldSpec], ea: EntityAccess, names: dict[str, dict[int, str]],
            language: str) -> list[Row]:
    """The rows of a page: each column's rule chosen once, the texts escaped
    at once, each row's cells written by one format string."""
    at_id = page.columns.index("id")
    rules = [cell_formatter(rt, f, ea, names, language, title=n == 0) for n, f in enumerate(fields)]
    at = [page.columns.index(f.column) for f in fields]
    written = [(i, css.startswith(HTML_COLUMN), content) for i, (css, content) in zip(at, rules)]
    text_columns = [(i, content) for i, html, content in written if not html]
    texts: list[str] = []  # the title and the cells of every row that are text, in order
    for row in page.rows:
        texts += ["" if (value := row[i]) is None or value == "" else content(value) for i, content in text_columns]
    escaped = escape_texts(texts)
    row_cells = "".join(f"<td{css.removeprefix(HTML_COLUMN)}>{{}}</td>" for css, _ in rules[1:])
    width = len(text_columns)
    out = []
    if width == len(rules):  # text columns only: each row is a slice of the escaped texts
        for n, row in enumerate(page.rows):
            start = n * width
            out.append(Row(row[at_id], escaped[start] or f"#{row[at_id]}",
                           row_cells.format(*escaped[start + 1:start + width])))
        return out
    for n, row in enumerate(page.rows):
        mine = iter(escaped[n * width:(n + 1) * width])
        values = [next(mine) if not html else "" if (value := row[i]) is None or value == "" else content(value)
                  for i, html, content in written]
        out.append(Row(row[at_id], values[0] or f"#{row[at_id]}", row_cells.format(*values[1:])))
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

    kind: str  # choice | boolean | range | dates | moments | text | ref
    field: FieldSpec
    label: str
    names: tuple[str, ...]
    values: tuple[str, ...]
    options: tuple[tuple[str, str], ...] = ()
    #: A ref picker's: where it asks for the records matching what is typed.
    options_url: str = ""


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


def controls_of(rt: Runtime, state: ListState, ea: EntityAccess, access: Access, language: str,
                known: Mapping[tuple[str, int], str] | None = None) -> list[Control]:
    """Filters for the columns, the entity's choice fields and its owner and
    team the user may filter on. A ref (owner, team) is a picker that asks the
    server as the user types (``/app/<target>/_options``, as the forms'), its
    choice the one in force (``known``: its title, as the user may read it)."""
    entity = state.entity
    given = dict(state.args)
    known = known or {}
    names = list(state.columns) + [n for n, f in entity.fields.items() if f.type in ("enum", "boolean")]
    names += [n for n in ("owner_id", "team_id") if n in entity.fields]
    out = []
    for name in dict.fromkeys(names):
        f = entity.fields[name]
        if name not in ea.readable or name == "id":
            continue
        target = ref_target(f)
        if target is not None:
            picker = _ref_control(rt, f, target, given, access, language, known)
            if picker is not None:
                out.append(picker)
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
    return out


def _ref_control(rt: Runtime, f: FieldSpec, target: str, given: Mapping[str, str], access: Access, language: str,
                 known: Mapping[tuple[str, int], str]) -> Control | None:
    """A ref field's filter: a picker of the records of its target the user may
    read (none when they may read none). Without JavaScript, a text box
    searching the target's title (``field.title__contains``) stands in for it."""
    if target in DIRECTORY_ENTITIES:
        if not access.allows(target, "read"):
            return None
        text_key = ""
    elif target in rt.spec.entities and access.entity(target).allows("read"):
        other = rt.spec.entities[target]
        title_readable = other.title in access.entity(target).readable and other.title != "id"
        text_key = f"{f.name}.{other.title}__contains" if title_readable else ""
    else:
        return None
    current = given.get(f.name, "")
    options: tuple[tuple[str, str], ...] = ()
    if current:
        ids = _ids(current)
        options = ((current, known.get((target, next(iter(ids))), f"#{current}") if len(ids) == 1 else current),)
    names = (f.name, text_key) if text_key else (f.name,)
    return Control("ref", f, display.field_label(f, language), names,
                   (current, given.get(text_key, "") if text_key else ""), options, f"/app/{target}/_options")


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


def chips_of(state: ListState, language: str, tag_text: Callable[[str, str], str] | None = None,
             known: Mapping[tuple[str, int], str] | None = None) -> list[Chip]:
    """The filters in force, each with a link that removes it. A filter on a
    ref (owner, team) names the records by their titles (``known``: those the
    user may read; another is its id)."""
    out = []
    known = known or {}
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
        elif (target := ref_target(f)) is not None and not through and op in REF_OPERATORS:
            value = ", ".join(known.get((target, int(part)), f"#{part}") if _ids(part) else part
                              for part in (p.strip() for p in value.split(",")) if part)
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


def list_tools(rt: Runtime, state: ListState, ea: EntityAccess, access: Access, actor: Actor,
               language: str, known: Mapping[tuple[str, int], str] | None = None) -> Markup:
    """The list's panels (filters, columns, saving the view, export), kept
    rendered (crmkit.ui.fragments) per entity, language, roles and the list's
    arguments but its paging: what they show is the same for everyone with
    those. The user's anti-forgery token and the URL a saved view keeps
    (paging and all, as the form always sent) are put in per request. A ref
    filter in force shows its record's title as this user may read it
    (``known``): those panels are records' data, rendered each time, never kept."""
    entity = state.entity
    controls = controls_of(rt, state, ea, access, language, known)

    def render() -> str:
        return render_template(
            "_list_tools.html", entity=entity, state=state, actor=SimpleNamespace(id=actor.id is not None),
            csrf_token=mark("csrf"), save_query=mark("save_query"), may_export=ea.allows("export"),
            controls=controls, tag_filter=tag_filter(rt, access, entity, state.args, language),
            choosable=[(f, display.field_label(f, language)) for n, f in entity.fields.items()
                       if n in ea.visible and f.type != "json"])

    values = {"csrf": g.get("crmkit_csrf", ""), "save_query": state.url()}
    if any(c.kind == "ref" and c.options for c in controls):
        return fill(render(), values)
    key = ("list-tools", entity.name, language, access.roles, access.system, actor.id is not None,
           tuple((k, v) for k, v in state.args if k not in ("cursor", "count")))
    return fill(kept_parts().get(key, render), values)


def saved_views() -> SavedViews:
    """The app's saved views (one per runtime: it holds its read, built once)."""
    rt = _runtime()
    found: SavedViews | None = current_app.extensions.get("crmkit_saved_views")
    if found is None or found.engine is not rt.engine or found.table.metadata is not rt.tables.metadata:
        found = current_app.extensions["crmkit_saved_views"] = SavedViews(rt.engine, rt.tables.metadata)
    return found


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
