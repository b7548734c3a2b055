"""The controls of a list page (crmkit.ui.lists): sortable column headers,
filters per field type, filter chips, scope and view tabs, the bulk bar and
the tools (columns, saved views, exports)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace

import sqlalchemy as sa
from flask import current_app, g, render_template
from markupsafe import Markup

from ..metadata.spec import DIRECTORY_ENTITIES, EntitySpec, FieldSpec
from ..permissions import POOL, Access, Actor, EntityAccess
from ..query import ListRequest
from ..runtime import Runtime
from ..saved_views import SavedView, SavedViews
from . import display
from .fragments import fill, kept_parts, mark
from .i18n import gettext
from .list_rows import (
    _ids,
    ref_target,
)
from .list_state import (
    OPERATOR_SIGNS,
    PAGING_ARGS,
    REF_OPERATORS,
    ListState,
    _url,
    list_views,
)
from .shell import _runtime
from .tags import TAG_ARGS, tag_filter

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
