"""The record page (/app/<entity>/<id>): a record's form sections as values,
its owner and history of writers, what the reader may do with it (edit,
delete, workflow moves, sharing), its related lists and its timeline.

Reads go through the query builder (``read_one``, ``related_page``,
``history_page``), writes through the records service (delete, transitions,
shares, the quick-add of a follow-up). Whether a button shows is asked of
the same places that decide the write: the reader's access and the query
builder's scopes (is this record within the scope of the action?), and the
records service's list of moves (the decision the API's transitions use).
A record the reader may not read does not exist for them: 404.

The page is here; its writes are crmkit.ui.record_actions, and its related
lists and timeline crmkit.ui.record_panels.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus

import sqlalchemy as sa
from flask import abort, current_app, g, render_template
from markupsafe import Markup, escape
from werkzeug.wrappers import Response

from ..api.http import current_actor
from ..errors import CrmError
from ..metadata.spec import EntitySpec, FieldSpec, RelationSpec, label_text
from ..permissions import Access, Actor, EntityAccess
from ..runtime import Runtime
from ..workflows import Transition, blocker
from .approvals import ApprovalCard, record_approvals
from .cells import EMPTY, Cell, Cells, html
from .formfields import Widget
from .forms import RecordForm, asks_refs
from .fragments import fill, kept_parts, mark
from .i18n import gettext, locale
from .pool import pool_action
from .security import redirect_to
from .shell import bp
from .tags import RecordTags, record_tags
from .timeline import ActivitySource, quick_add

RELATED_PAGE = 10
#: Columns of a related list besides its title.
RELATED_COLUMNS = 3
#: Users offered by the share form's picker.
PICKER_USERS = 200


bp.add_app_template_filter(html, "cell")


def _runtime() -> Runtime:
    return current_app.extensions["crmkit"]



def _entity(name: str) -> EntitySpec:
    """The entity (404 for a name the config lacks). Whether the reader sees
    a record of it is the query builder's to say (their roles' scope, or a share)."""
    entity = _runtime().spec.entities.get(name)
    if entity is None:
        abort(404)
    return entity


def _record_url(entity: EntitySpec, record_id: int, part: str = "") -> str:
    return f"/app/{entity.name}/{record_id}{part}"


def _back(entity: EntitySpec, record_id: int, anchor: str = "") -> Response:
    return redirect_to(_record_url(entity, record_id) + anchor)


def _failed(exc: CrmError) -> str:
    return exc.message if isinstance(exc.message, str) else str(exc)


# ------------------------------------------------------------------ the page

@dataclass
class Shown:
    """A field on the page: its label, help and value."""

    field: FieldSpec
    label: str
    help: str
    cell: Cell


@dataclass
class Section:
    label: str
    fields: list[Shown]
    columns: int = 2

    def html(self) -> Markup:
        """The section's fields as ``<div class="field"><dt>label</dt><dd>value</dd></div>``
        (escaped): written here, not in record.html, because a record shows dozens
        of fields and Jinja's per-value work cost more than the rest of the page."""
        return Markup("\n".join(
            f'        <div class="field">\n          <dt>{escape(shown.label)}'
            + (f' <small class="help">{escape(shown.help)}</small>' if shown.help else "")
            + f'</dt>\n          <dd class="type-{escape(shown.field.type)}">{html(shown.cell)}</dd>\n        </div>'
            for shown in self.fields))


@dataclass
class Related:
    relation: RelationSpec
    label: str
    #: the list's URL and its "Add" link's (HTML: the record's id may be a mark, crmkit.ui.fragments)
    url: Markup
    add_url: Markup | None
    #: the placeholder link's words (translated here: a template's _() costs ten times a call from Python)
    show: str = ""


@dataclass
class Move:
    name: str
    label: str
    allowed: bool
    reason: str | None
    #: the fields the move requires that the reader may fill in (asked in a dialog)
    asks: bool = False
    #: made once approved (crmkit.approvals): asking for it sends it for approval
    approval: bool = False


@dataclass(frozen=True)
class Allowed:
    """What the reader may do with this record (each within its scope)."""

    update: bool
    delete: bool
    share: bool


@dataclass
class RecordView:
    entity: EntitySpec
    record_id: int
    row: Mapping[str, Any]
    title: str
    sections: list[Section]
    info: list[tuple[str, Cell]]
    may: Allowed
    moves: list[Move] = field(default_factory=list)
    collaborators: list[dict[str, Any]] = field(default_factory=list)
    states: list[tuple[str, Cell]] = field(default_factory=list)
    #: the record's tags and those the reader may put on (None: no tags for this reader)
    tags: RecordTags | None = None
    #: its pending approvals, or its last decided one (crmkit.ui.approvals)
    approvals: list[ApprovalCard] = field(default_factory=list)
    #: what the reader may do with the entity's pool here: claim, release, or None (crmkit.ui.pool)
    pool: str | None = None


def _may(rt: Runtime, conn: sa.Connection, entity: EntitySpec, record_id: int, actor: Actor, ea: EntityAccess,
         action: str) -> bool:
    """Whether the record is within the reader's scope of the action (share:
    their roles' update scope, without shares), as the records service checks it."""
    granted = ea.scope("update" if action == "share" else action)
    if not granted:
        return False
    if granted == frozenset({"all"}):
        return True  # every live record, and this one is live (it was just read)
    return rt.queries.fetch(conn, entity, record_id, actor=actor, actions=(action,), columns=("id",)) is not None


def _may_all(rt: Runtime, conn: sa.Connection, entity: EntitySpec, record_id: int, actor: Actor,
             ea: EntityAccess, actions: tuple[str, ...]) -> dict[str, bool]:
    """:func:`_may` of several actions, the ones that need a read asked in one."""
    granted = {action: ea.scope("update" if action == "share" else action) for action in actions}
    every = frozenset({"all"})
    asked = tuple(action for action in actions if granted[action] and granted[action] != every)
    found = rt.queries.within(conn, entity, record_id, actor=actor, actions=asked) if asked else {}
    return {action: bool(granted[action]) and (granted[action] == every or found[action]) for action in actions}


def _sections(entity: EntitySpec, ea: EntityAccess, row: Mapping[str, Any], cells: Cells) -> list[Section]:
    language = locale()
    placed: set[str] = set()
    sections: list[Section] = []
    for spec in entity.form:
        placed.update(spec.fields)
        shown = [_shown(entity.fields[n], row, ea, cells, language) for n in spec.fields
                 if n in entity.fields and n in ea.visible]
        if not shown:
            continue
        if spec.visible_if and all(s.cell.empty for s in shown):
            continue  # a conditional section with nothing in it (its condition is the form's to evaluate)
        sections.append(Section(label_text(spec.label, language, ""), shown, spec.columns))
    rest = [_shown(f, row, ea, cells, language) for f in entity.user_fields
            if f.name not in placed and f.name in ea.visible]
    if rest:
        sections.append(Section(gettext("Other fields"), rest))
    return sections


def _shown(f: FieldSpec, row: Mapping[str, Any], ea: EntityAccess, cells: Cells, language: str) -> Shown:
    return Shown(f, label_text(f.label, language, f.name), label_text(f.help, language, ""),
                 cells.cell(f, row.get(f.column), ea))


def _info(entity: EntitySpec, ea: EntityAccess, row: Mapping[str, Any], cells: Cells) -> list[tuple[str, Cell]]:
    """Owner, team, who created and changed the record and when."""
    out = []
    fields = entity.fields
    for name, label in (("owner_id", gettext("Owner")), ("team_id", gettext("Team"))):
        if name in fields and name in ea.visible:
            out.append((label, cells.cell(fields[name], row.get(name), ea)))
    for who, when, label in (("created_by", "created_at", gettext("Created")),
                             ("updated_by", "updated_at", gettext("Last changed"))):
        if when in ea.visible and row.get(when) is not None:
            by = cells.cell(fields[who], row.get(who), ea) if who in ea.visible else EMPTY
            moment = cells.text(fields[when], row[when])
            out.append((label, Cell(gettext("%(when)s by %(who)s", when=moment, who=by.text) if not by.empty
                                    else moment, by.href)))
    return out


def untitled(entity: EntitySpec, record_id: int) -> str:
    """What names a record whose title the reader does not see (or that has none)."""
    return f"{label_text(entity.label, locale(), entity.name)} #{record_id}"


def record_title(rt: Runtime, conn: sa.Connection, entity: EntitySpec, record_id: int, cells: Cells) -> str:
    """The record's title as the record page shows it to the reader (the pages
    behind its panels are headed by it too): its title field read through the
    query builder, masked where their field rules say, a ref as its record's
    title; the entity's label and the id when they do not see it. A record
    the reader may not read does not exist for them: 404."""
    ea = cells.access.entity(entity.name)
    found = rt.queries.read_one(conn, entity, record_id, actor=cells.actor, fields=frozenset({entity.title}))
    if found is None:
        abort(404)
    row: Mapping[str, Any] = dict(found)
    cells.load(conn, cells.refs_of(entity, ea, [row], only=(entity.title,)))
    return cells.title(entity, ea, row).text or untitled(entity, record_id)


def record_view(rt: Runtime, entity: EntitySpec, record_id: int, actor: Actor) -> RecordView:
    access = rt.permissions.of(actor)
    ea = access.entity(entity.name)
    cells = Cells(rt, actor)
    with rt.engine.connect() as conn:
        found = rt.queries.read_one(conn, entity, record_id, actor=actor)
        if found is None:
            abort(404)
        row: Mapping[str, Any] = dict(found)
        asked = ("update", "delete") + (("share",) if entity.owned else ()) \
            + (("transition",) if rt.records.workflows.get(entity.name) else ())
        allowed = _may_all(rt, conn, entity, record_id, actor, ea, asked)
        may = Allowed(allowed["update"], allowed["delete"], allowed.get("share", False))
        in_scope = allowed.get("transition", False)
        cells.load(conn, cells.refs_of(entity, ea, [row]))
        tags = record_tags(rt, conn, entity, record_id, access, may.update)
        found_approvals = (rt.records.approvals.of_record(conn, entity.name, record_id, actor)
                           if entity.name in rt.records.approvals.lockable else [])
        approvals = record_approvals(rt, conn, found_approvals, actor)
        # The moves and the collaborators on this connection: the record, its scopes and its approvals were
        # read above, as the reader, and are not read again for the moves.
        listed = (rt.records.transitions(entity.name, record_id, actor, conn=conn, in_scope=in_scope,
                                         pending=found_approvals)
                  if rt.records.workflows.get(entity.name) and ea.allows("transition") else [])
        collaborators = rt.records.sharing.listed(conn, entity.name, record_id) if entity.owned else []
    title = cells.title(entity, ea, row).text or untitled(entity, record_id)
    view = RecordView(entity, record_id, row, title, _sections(entity, ea, row, cells), _info(entity, ea, row, cells),
                      may)
    view.tags = tags
    view.approvals = approvals
    view.pool = pool_action(rt, entity, row.get("owner_id"), actor) if "owner_id" in row else None
    view.states = [(label_text(entity.fields[wf.field].label, locale(), wf.field),
                    cells.cell(entity.fields[wf.field], row.get(wf.field), ea))
                   for wf in rt.records.workflows.get(entity.name, ()) if wf.field in ea.visible]
    if rt.records.workflows.get(entity.name) and ea.allows("transition"):  # no buttons for a role without moves
        view.moves = _moves(rt, entity, listed, actor, ea, in_scope)
    view.collaborators = collaborators
    return view


def _moves(rt: Runtime, entity: EntitySpec, listed_moves: list[dict[str, Any]], actor: Actor, ea: EntityAccess,
           in_scope: bool) -> list[Move]:
    """The moves from the record's state, as the API lists them: allowed, or
    not with the reason. A move blocked only by required fields the reader may
    fill in (their roles may make it, the record is in their transition scope)
    asks for them in a dialog instead."""
    language = locale()
    access = rt.permissions.of(actor)
    moves = []
    for listed in listed_moves:
        move = _transition(rt, entity, listed["name"])
        allowed = listed["allowed"]
        reason = listed["reason"]
        if not allowed and in_scope and listed["missing"] and all(n in ea.writable for n in listed["missing"]) \
                and listed["pending_approval"] is None:
            refused = blocker(move, access, dict.fromkeys(move.require, "filled"))  # the roles, once filled in
            if refused is None or refused.reason != "roles":
                allowed, reason = True, None
        asks = allowed and any(n in ea.writable for n in move.require)
        moves.append(Move(move.name, label_text(move.label, language, move.name), allowed, reason, asks,
                          move.spec.approval is not None))
    return moves


def _transition(rt: Runtime, entity: EntitySpec, name: str) -> Transition:
    """The entity's move of that name (404 when it has none)."""
    for workflow in rt.records.workflows.get(entity.name, ()):
        move = workflow.transition(name)
        if move is not None:
            return move
    abort(404)


def _picker_users(rt: Runtime, conn: sa.Connection, actor: Actor) -> list[tuple[int, str]]:
    """Active users the reader may read (the share form's picker), by name."""
    source = rt.queries.platform["user"]
    access = rt.permissions.of(actor)
    if not access.allows("user", "read"):
        return []
    request_ = rt.queries.parse_list(source, [("active", "true"), ("fields", "id,display_name,username"),
                                              ("sort", "display_name"),
                                              ("limit", str(min(PICKER_USERS, rt.spec.max_page_size)))], access)
    rows = rt.queries.page(conn, source, request_, actor=actor).mappings()
    return [(r["id"], r.get("display_name") or r.get("username") or f"#{r['id']}") for r in rows
            if r["id"] != actor.id]


def _related(rt: Runtime, entity: EntitySpec, record_id: int | Markup, access: Access) -> list[Related]:
    """The related lists the reader may read, with an "Add" link prefilled
    with this record where they may create the other record and set its ref
    (``record_id``: its id, or the mark of a kept part where it goes)."""
    out = []
    language = locale()
    rid = record_id if isinstance(record_id, Markup) else escape(str(record_id))
    for rel in entity.relations.values():
        other = rt.spec.entities.get(rel.entity)
        if other is None or not access.entity(other.name).allows("read"):
            continue
        oea = access.entity(other.name)
        add_url = None
        if rel.kind == "one_to_many":
            via = rel.field or entity.name
            if oea.allows("create") and via in oea.writable:
                add_url = Markup(f"/app/{escape(other.name)}/new?{escape(quote_plus(via))}=") + rid
        label = label_text(rel.label, language, "") or label_text(other.plural, language, other.name)
        url = Markup(f"/app/{escape(entity.name)}/") + rid + Markup(f"/related/{escape(rel.name)}")
        out.append(Related(rel, label, url, add_url, gettext("Show %(what)s", what=label)))
    return out


def _quick_form(rt: Runtime, source: ActivitySource, actor: Actor, shown: bool = False) -> RecordForm:
    """The quick-add's form of a new follow-up: the config's defaults. A
    ``now`` or ``today`` default is the moment of saving when nothing is sent
    for it; the form ``shown`` to the user has it filled in as the moment it
    is shown, in the app's timezone (to the minute, as a person types it),
    so they see the date that will be saved and may change it."""
    form = RecordForm(rt, source.entity, actor)
    here = dt.datetime.now(form.tz)
    for name in form.text:
        default = source.entity.fields[name].default
        if default in ("now", "today"):
            text = "" if not shown else here.strftime("%Y-%m-%dT%H:%M") if default == "now" else \
                here.date().isoformat()
            form.text[name] = form.initial[name] = text
    return form


def _quick_widgets(form: RecordForm, fields: list[FieldSpec]) -> list[Widget]:
    """The quick-add's inputs (ids ``quick-…``); a field its default fills in may be left empty."""
    widgets = form.widgets([f.name for f in fields], prefix="quick")
    for w in widgets:
        w.required = w.field.required and w.field.default is None
    return widgets


def _fresh_inputs(rt: Runtime, adding: tuple[ActivitySource, list[FieldSpec]] | None) -> list[Widget]:
    """The quick-add form's inputs before anything is typed (the config's defaults)."""
    if adding is None:
        return []
    return _quick_widgets(_quick_form(rt, adding[0], current_actor(), shown=True), adding[1])


def _render_page(view: RecordView) -> str:
    rt = _runtime()
    actor = current_actor()
    access = rt.permissions.of(actor)
    adding = quick_add(rt, view.entity, access)
    return render_template("record.html", view=view, entity=view.entity, quick=adding,
                           quick_form=lambda: _fresh_quick_form(rt, view, adding, actor, access),
                           related_sections=lambda: _related_sections(rt, view, access),
                           pickers=asks_refs(rt, view.entity))


def _related_sections(rt: Runtime, view: RecordView, access: Access) -> Markup:
    """The record's related lists (their headings, "Add" links and the
    placeholders htmx loads them into), kept rendered (crmkit.ui.fragments)
    per entity, language and roles: which lists show, and whether they may
    add to each, is their roles' to say; the record's id is put in."""
    key = ("record-related", view.entity.name, locale(), access.roles, access.system)

    def render() -> str:
        return render_template("_record_related_sections.html",
                               related=_related(rt, view.entity, mark("record_id"), access))

    return fill(kept_parts().get(key, render), {"record_id": view.record_id})


def _fresh_quick_form(rt: Runtime, view: RecordView, adding: tuple[ActivitySource, list[FieldSpec]] | None,
                      actor: Actor, access: Access) -> Markup:
    """The quick-add form before anything is typed, kept rendered (crmkit.ui.fragments)
    per entity, language, reader (its defaults and rules may read who they are) and
    day (and "today" in a rule); the record's id and the reader's token are put in."""
    key = ("quick-add", view.entity.name, locale(), access.roles, access.system, actor.id,
           dt.datetime.now(rt.queries.tz).date())

    def render() -> str:
        return render_template("_record_quick_add.html", entity=view.entity, record_id=mark("record_id"),
                               quick=adding, quick_inputs=_fresh_inputs(rt, adding), csrf_token=mark("csrf"))

    return fill(kept_parts().get(key, render), {"record_id": view.record_id, "csrf": g.get("crmkit_csrf", "")})


@bp.get("/<entity_name>/<int:record_id>")
def record_page(entity_name: str, record_id: int):
    entity = _entity(entity_name)
    return _render_page(record_view(_runtime(), entity, record_id, current_actor()))
