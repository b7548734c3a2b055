"""Forms to create and edit records: ``/app/<entity>/new`` and
``/app/<entity>/<id>/edit``, and the small endpoints their widgets ask: the
choices of a ref picker (``/app/<entity>/_options?q=``), a region picker's
select boxes, and the parts of a form shown only when a condition holds.

A form is generated from the entity's ``form:`` sections and its field types,
under the user's field rules: hidden fields are not in the page at all,
masked and read-only ones are shown and not editable. What the user sends
goes through the records service (the one door for writes); its errors come
back beside the fields they name, with what the user typed still in place.
The entity's rules (crmkit.rules) shape the form: a field whose
``visible_if`` is false is not drawn (nor sent), one whose ``required_if``
holds is required, one whose ``readonly_if`` held on the stored record is
read-only, a formula is read-only (on a new record: computed when saved), a
section shows while its ``visible_if`` holds. These are the compiled
conditions the records service enforces (``field_states``,
``sections_shown``), evaluated on the server over what the form holds as
the user: a condition reading anything they may not read (unmasked) is not
judged here (as if it were not there: nothing in the page depends on what
they cannot see; the server still enforces it). The conditional sections
and fields are re-rendered on change through htmx: there is no second copy
of the rules in JavaScript. A broken ``validate`` rule is said beside the
fields it reads and at the top, in the user's language.

Other screens draw fields the same way: ``RecordForm(rt, entity, actor,
row).widgets(names)`` (after ``prefill(args)`` or ``take(form)`` for what the
inputs hold) with the ``field`` macro of ``_widgets.html``, and read what was
sent with ``take(request.form)`` and ``data(names)``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from flask import abort, current_app, jsonify, make_response, render_template, request
from flask_babel import gettext
from werkzeug.wrappers import Response

from ..api.http import current_actor
from ..errors import BadRequest, Conflict, CrmError, Forbidden, NotFound, ValidationFailed
from ..expressions import Checked, SqlLoader
from ..fieldtypes import FieldValueError
from ..metadata.spec import DIRECTORY_ENTITIES, EntitySpec, FieldSpec, Label, SectionSpec, label_text
from ..permissions import Actor, EntityAccess, scope_params
from ..rules import FieldState, field_states, sections_shown
from ..runtime import Runtime
from . import display
from .formfields import WIDGETS, Widget, from_form, message, region_choice, region_from_form, to_text, to_value
from .i18n import locale
from .security import done
from .shell import bp, refuse

#: At most this many records answer a ref picker's search.
OPTIONS_LIMIT = 20
#: The start of the ids of a form's inputs (Widget.prefix), as a region picker is asked with it.
_PREFIX = re.compile(r"[a-z]{1,12}")
#: The fields that name a user or a team, for a picker's answers: shown, searched.
DIRECTORY_TITLES = {"user": ("display_name", "username"), "team": ("label", "name")}


def _runtime() -> Runtime:
    return current_app.extensions["crmkit"]


@dataclass
class Section:
    """A section of a form as the template draws it."""

    index: int
    label: Label | None
    columns: int
    widgets: list[Widget]
    #: shown only when its condition holds (re-rendered when a field it reads changes)
    conditional: bool
    visible: bool

    @property
    def id(self) -> str:
        return f"section-{self.index}"


class RecordForm:
    """The form of one record (a new one, when ``row`` is None) for one user:
    its sections, the text of each input, and the errors to show."""

    def __init__(self, rt: Runtime, entity: EntitySpec, actor: Actor, row: Mapping[str, Any] | None = None) -> None:
        self.rt = rt
        self.entity = entity
        self.actor = actor
        self.row = row
        self.ea: EntityAccess = rt.permissions.of(actor).entity(entity.name)
        self.tz = rt.records.tz
        workflow_fields = {wf.field for wf in rt.records.workflows.get(entity.name, ())}
        writable = rt.schemas[entity.name].writable
        #: The fields this user may fill in here (the state of a workflow moves only through its transitions).
        self.editable = frozenset(
            name for name in writable & self.ea.writable
            if name not in workflow_fields and entity.fields[name].type != "autonumber")
        self.layout = self._layout()
        #: What each editable input holds: the record's values, or the defaults
        #: of a new record (of every field the user may fill in: another screen
        #: may ask for one the form's sections leave out).
        self.initial = {f.name: self._stored_text(f) for f in entity.fields.values() if f.name in self.editable}
        self.text: dict[str, Any] = dict(self.initial)
        self.errors: dict[str, list[str]] = {}
        #: What was typed into a ref field's search box (a browser without
        #: JavaScript): its matches become the field's choices.
        self.searches: dict[str, str] = {}
        self._judged: tuple[dict[int, bool], dict[str, FieldState]] | None = None

    # ------------------------------------------------------------ layout

    def _layout(self) -> list[SectionSpec]:
        """The configured sections; fields a new record needs that none places
        come last (a form must be able to create a record); without a form,
        every field of the entity in one section."""
        fields = self.entity.fields
        if not self.entity.form:
            return [SectionSpec(None, tuple(f.name for f in self.entity.user_fields))]
        sections = [dataclasses.replace(s, fields=tuple(n for n in s.fields if n in fields)) for s in self.entity.form]
        placed = {n for s in sections for n in s.fields}
        missing = tuple(n for n in self.rt.schemas[self.entity.name].required if n not in placed)
        if missing:
            sections.append(SectionSpec(None, missing))
        return sections

    @property
    def carried(self) -> dict[str, Any]:
        """The initial text of the inputs the form's sections place (what an edit form carries back)."""
        placed = {name for section in self.layout for name in section.fields}
        return {name: text for name, text in self.initial.items() if name in placed}

    def _stored_text(self, f: FieldSpec) -> Any:
        if self.row is not None:
            return to_text(f, self.row.get(f.column), self.tz)
        return to_text(f, self.rt.field_types[f.type].default_value(f, self.tz), self.tz)

    # ------------------------------------------------------------ input

    def take(self, form: Any, names: Iterable[str] | None = None) -> None:
        """What the browser sent, for the editable fields it could send (or
        ``names``), and the text the inputs held when the form was opened
        (``_initial``: a change is what differs from it, not from a record
        someone saved meanwhile)."""
        if self.row is not None:
            self.initial.update(_initial(form.get("_initial"), self.initial))
        self._judged = None
        for name in names if names is not None else self.text:
            f = self.entity.fields[name]
            if name in form or (f.type == "region" and f"{name}__province" in form):
                self.text[name] = from_form(form, f)
            if f.type == "ref" and str(form.get(f"{name}__search") or "").strip():
                self.searches[name] = str(form.get(f"{name}__search")).strip()

    def prefill(self, args: Mapping[str, str]) -> None:
        """``?customer=12&level=a``: the text of inputs, as a form would send it."""
        for name in self.text:
            f = self.entity.fields[name]
            if name in args:
                self.text[name] = args.getlist(name) if f.type == "multi_enum" else args[name]  # type: ignore[attr-defined]
                self._judged = None

    def values(self) -> dict[str, Any]:
        """The record as the form holds it, by field name, typed as stored (for
        conditions): the stored values the user may read, what they typed over
        them; text no value comes from is None."""
        out: dict[str, Any] = {}
        if self.row is not None:
            out.update({f.name: self.row.get(f.column) for f in self.entity.fields.values()
                        if f.name in self.ea.readable})
            out["id"] = self.row.get("id")
        for name, text in self.text.items():
            f = self.entity.fields[name]
            try:
                value = to_value(f, text)
                out[name] = None if value is None else self.rt.field_types[f.type].coerce(f, value, self.tz)
            except (FieldValueError, ValueError, TypeError):
                out[name] = None
        return out

    # ------------------------------------------------------------ conditions

    def judged(self, condition: Checked) -> bool:
        """Whether the form may evaluate a compiled rule for this user: it reads
        only fields (and relations) they may read unmasked. One that reads
        more is not judged here (its field or section shows, required and
        changeable as without it), so the page says nothing of what they
        cannot see; the records service still enforces it."""
        access = self.rt.permissions.of(self.actor)
        for entity, name in condition.reads:
            spec = self.rt.spec.entities.get(entity)
            if not access.allows(entity, "read") or (
                    spec is not None and name in spec.fields and name not in access.entity(entity).readable):
                return False
        for entity, relation in condition.relations:
            spec = self.rt.spec.entities.get(entity)
            target = spec.relations.get(relation) if spec is not None else None
            if target is None or not access.allows(target.entity, "read"):
                return False
        return True

    def _conditions(self) -> list[Checked]:
        """The compiled conditions of the form's sections and fields (those it judges)."""
        found = [s.condition for s in self.layout if s.condition is not None]
        for f in self.entity.user_fields:
            found.extend(c for c in (f.visible_if, f.required_if, f.readonly_if) if c is not None)
        return [c for c in found if self.judged(c)]

    def judge(self) -> tuple[dict[int, bool], dict[str, FieldState]]:
        """Which conditional sections show and each field's state (shown,
        required, read-only), for what the form holds now: the compiled rules
        the records service enforces (crmkit.rules), evaluated as this user
        (related records in their read scope, ``me`` is them); ``readonly_if``
        on the record as stored. Cached until the input changes (``take``)."""
        if self._judged is not None:
            return self._judged
        rules = self.rt.records.rules
        values = self.values()
        with contextlib.ExitStack() as stack:
            loader = None
            if any(c.needs_rows for c in self._conditions()):
                conn = stack.enter_context(self.rt.engine.connect())
                loader = SqlLoader(conn, self.rt.tables, scope=lambda e: self.rt.queries.scope(e, self.actor),
                                   parameters=scope_params(self.actor))
            kw: dict[str, Any] = {"loader": loader, "judged": self.judged, "user_id": self.actor.id}
            shown = sections_shown(rules, self.entity.name, values, **kw) if self.entity.form else []
            states = field_states(rules, self.entity.name, values, self.ea, **kw)
            if self.row is not None and any(f.readonly_if is not None for f in self.entity.user_fields):
                stored = {f.name: self.row.get(f.column) for f in self.entity.fields.values()
                          if f.name in self.ea.readable}
                before = field_states(rules, self.entity.name, stored, self.ea, stored=True, **kw)
                states = {name: dataclasses.replace(state, readonly=state.readonly or before[name].readonly)
                          for name, state in states.items()}
        sections = {i: shown[i] for i, s in enumerate(self.layout) if s.condition is not None and i < len(shown)}
        self._judged = (sections, states)
        return self._judged

    def visibility(self) -> dict[int, bool]:
        """Whether each conditional section shows, for what the form holds now."""
        return self.judge()[0]

    def triggers(self) -> frozenset[str]:
        """The fields the form's conditions read: changing one re-renders the
        conditional sections and fields (``readonly_if`` is on the record as
        stored: no input changes it)."""
        names: set[str] = set()
        for rule in self._conditions():
            if any(rule is f.readonly_if for f in self.entity.user_fields):
                continue
            names.update(field for entity, field in rule.reads if entity == self.entity.name)
        return frozenset(names)

    def conditional(self, f: FieldSpec) -> bool:
        """Whether a field's showing or being required follows the input (its slot is re-rendered)."""
        return any(c is not None and self.judged(c) for c in (f.visible_if, f.required_if))

    def _usable(self, name: str) -> bool:
        """Whether the user fills this field in now (editable, shown and not read-only by the rules)."""
        state = self.judge()[1].get(name)
        return name in self.editable and (state is None or (state.visible and not state.readonly))

    def active(self, shown: Mapping[int, bool]) -> list[str]:
        """The editable fields of the sections that show (the others' inputs are not in the page)."""
        return [name for i, s in enumerate(self.layout) if shown.get(i, True)
                for name in s.fields if self._usable(name) and name in self.text]

    # ------------------------------------------------------------ the write

    def data(self, names: Iterable[str]) -> dict[str, Any]:
        """The values to send for these fields: every value of a new record;
        of a record, those the user changed. Text no value comes from is an
        error of its field (self.errors)."""
        data: dict[str, Any] = {}
        for name in names:
            text = self.text[name]
            if self.row is not None and text == self.initial.get(name):
                continue
            try:
                value = to_value(self.entity.fields[name], text)
            except FieldValueError as exc:
                self.errors[name] = [message(str(exc))]
                continue
            if value is not None or self.row is not None:
                data[name] = value
        return data

    def refused(self, exc: CrmError) -> None:
        """The records service's errors beside their fields (in the user's
        language). A broken ``validate`` rule (``details._rules``) is said at
        the top of the form and beside each field it reads, in the user's
        language (the rule carries its message in each)."""
        details = exc.details if isinstance(exc.details, dict) else {}
        found = details.get("_rules")
        rules: list[Any] = found if isinstance(found, list) else []
        said: set[str] = set()
        for rule in rules:
            if not isinstance(rule, dict):
                continue
            words = rule.get("message") if isinstance(rule.get("message"), dict) else {}
            english = label_text(words, "en", str(rule.get("rule") or exc.message))
            text = label_text(words, locale(), english)
            said.add(english)
            self.errors.setdefault("_form", []).append(text)
            for name in rule.get("fields") or ():
                if isinstance(name, str):
                    self.errors.setdefault(name, []).append(text)
        for name, problems in details.items():
            if name == "_rules" or (name == "_record" and rules):
                continue
            texts = problems if isinstance(problems, list) else [str(problems)]
            self.errors.setdefault(name, []).extend(message(str(t)) for t in texts if str(t) not in said)
            if not self.errors[name]:
                del self.errors[name]
        if not details:
            self.errors.setdefault("_form", []).append(exc.message)

    # ------------------------------------------------------------ drawing

    def sections(self, shown: Mapping[int, bool]) -> list[Section]:
        triggers = self.triggers()
        states = self.judge()[1]
        parts_url = f"/app/{self.entity.name}/_form" + (f"?record={self.row['id']}" if self.row else "")
        sections = []
        widgets: list[Widget] = []
        for index, spec in enumerate(self.layout):
            visible = shown.get(index, True)
            section_widgets = []
            for name in spec.fields if visible else ():
                f = self.entity.fields[name]
                state = states.get(name)
                if name not in self.ea.visible:
                    continue
                if state is not None and not state.visible:  # hidden by its condition: an empty slot
                    section_widgets.append(Widget(f, "absent", errors=self.errors.get(name, []), slot=True))
                    continue
                section_widgets.append(self.widget(f, state))
            for w in section_widgets:
                if w.name in triggers and w.kind not in ("readonly", "absent"):
                    w.trigger_url = parts_url
            widgets.extend(section_widgets)
            if visible and not section_widgets:
                continue
            sections.append(Section(index, spec.label, spec.columns, section_widgets, bool(spec.visible_if), visible))
        self._titles(widgets)
        return sections

    def widgets(self, names: Iterable[str], prefix: str = "f") -> list[Widget]:
        """The widgets of some fields (those the user may see), titles of refs
        read: for a screen that asks for a few fields outside a whole form
        (a quick-add, the fields a workflow move needs). ``prefix`` starts
        their ids, so two such forms can share a page."""
        found = [self.widget(self.entity.fields[n]) for n in names if n in self.entity.fields and n in self.ea.visible]
        for w in found:
            w.prefix = prefix
            if w.kind == "region" and prefix != "f":
                w.options_url += "?" + urlencode({"prefix": prefix})
        self._titles(found)
        return found

    def widget(self, f: FieldSpec, state: FieldState | None = None) -> Widget:
        """A field's widget, under the entity's rules for what the form holds
        (``state``; by default judged now): required when its ``required_if``
        holds, read-only when its ``readonly_if`` held on the stored record."""
        errors = self.errors.get(f.name, [])
        state = state or self.judge()[1].get(f.name)
        slot = self.conditional(f)
        if f.name not in self.editable or (state is not None and state.readonly):
            return Widget(f, "readonly", shown=self._shown(f), errors=errors, slot=slot)
        kind = WIDGETS.get(f.type, "text")
        w = Widget(f, kind, value=self.text.get(f.name, ""), required=state.required if state else f.required,
                   errors=errors, slot=slot)
        if f.type in ("enum", "multi_enum"):
            w.options = [(str(o.value), o.label) for o in f.options]
        elif f.type == "ref":
            w.options_url = f"/app/{f.to}/_options"
        elif f.type == "region":
            w.region = region_choice(str(w.value), f.level)
            w.options_url = f"/app/{self.entity.name}/_region/{f.name}"
        return w

    def _shown(self, f: FieldSpec) -> str:
        """A field the user cannot change here, as they may read it."""
        if self.row is None:
            if f.type == "autonumber":
                return gettext("Assigned when saved")
            if f.formula is not None:
                return gettext("Computed when saved")
            value = self.rt.field_types[f.type].default_value(f, self.tz)
            for wf in self.rt.records.workflows.get(self.entity.name, ()):
                if wf.field == f.name:
                    value = wf.spec.initial
        else:
            value = self.row.get(f.column)
        if value is None or value == "":
            return ""
        masks = dict(self.ea.masked)
        if f.name in masks:
            return masks[f.name](value)
        if f.type == "ref":
            return f"#{value}"  # a title replaces it when the user may read the record (_titles)
        return display.field_value(f, value, locale(), self.tz)

    def _titles(self, widgets: list[Widget]) -> None:
        """The titles of the records the ref fields name (one query per target
        entity), read as the user may read them: a record outside their scope
        keeps its id, and a prefilled one they may not read is left out."""
        wanted: dict[str, set[int]] = {}
        for w in widgets:
            if w.field.type != "ref" or not w.field.to:
                continue
            ref = w.value if w.kind == "ref" else (self.row.get(w.field.column) if self.row else None)
            if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit() and len(ref) <= 10):
                wanted.setdefault(w.field.to, set()).add(int(ref))
        searched = [w for w in widgets if w.kind == "ref" and w.name in self.searches and w.field.to]
        if not wanted and not searched:
            return
        with self.rt.engine.connect() as conn:
            found = {to: record_titles(self.rt, conn, to, ids, self.actor) for to, ids in wanted.items()}
            for w in searched:
                w.search = self.searches[w.name]
                w.options = [(str(key), text) for key, text in
                             search_records(self.rt, conn, w.field.to or "", w.search, self.actor)]
        for w in widgets:
            if w.field.type != "ref" or not w.field.to:
                continue
            names = found.get(w.field.to, {})
            if w.kind == "ref" and w.value:
                key = int(w.value) if str(w.value).isdigit() and len(str(w.value)) <= 10 else None
                if key in names:
                    w.title = names[key]
                elif self.row is not None and str(self.row.get(w.field.column)) == str(w.value):
                    w.title = f"#{w.value}"  # stored, outside the user's scope: the id, as the API shows it
                else:
                    w.value, w.title = "", ""  # a record they may not read is no choice of theirs
            elif w.kind == "readonly" and self.row is not None and self.row.get(w.field.column) in names:
                w.shown = names[self.row[w.field.column]]


def asks_refs(rt: Runtime, entity: EntitySpec) -> bool:
    """Whether a move of the entity's workflows asks for a ref field (its
    dialog's picker needs the page to load forms.js and Tom Select)."""
    return any(entity.fields[name].type == "ref" for wf in rt.records.workflows.get(entity.name, ())
               for move in wf.transitions for name in move.require if name in entity.fields)


def _initial(text: str | None, known: Mapping[str, Any]) -> dict[str, Any]:
    """The ``_initial`` an edit form carries back: its fields' texts when it was opened."""
    try:
        sent = json.loads(text) if text else {}
    except ValueError:
        return {}
    if not isinstance(sent, dict):
        return {}
    return {name: value for name, value in sent.items() if name in known and (
        isinstance(value, str) or isinstance(value, list) and all(isinstance(v, str) for v in value))}


def record_titles(rt: Runtime, conn: sa.Connection, to: str, ids: set[int], actor: Actor) -> dict[int, str]:
    """id -> title of those of the records the actor may read (users and teams by name)."""
    if to in DIRECTORY_ENTITIES:
        source = rt.queries.platform[to]
        access = rt.permissions.of(actor)
        if not access.allows(to, "read"):
            return {}
        request_ = rt.queries.parse_list(source, [("id__in", ",".join(str(i) for i in sorted(ids)[:500])),
                                                  ("limit", str(min(len(ids), rt.spec.max_page_size)))], access)
        page = rt.queries.page(conn, source, request_, actor=actor)
        return {row["id"]: _directory_title(to, row) for row in page.mappings()}
    return {key: "" if value is None else str(value) for key, value in rt.queries.titles(conn, to, ids, actor).items()}


def _directory_title(to: str, row: Mapping[str, Any]) -> str:
    return next((str(row[n]) for n in DIRECTORY_TITLES[to] if row.get(n)), f"#{row['id']}")


# ---------------------------------------------------------------- pages

def _create_what(entity: EntitySpec) -> str:
    return gettext("create a %(entity)s", entity=label_text(entity.label, locale(), entity.name))


def _update_what(entity: EntitySpec) -> str:
    return gettext("change this %(entity)s", entity=label_text(entity.label, locale(), entity.name))


def _entity(entity_name: str) -> EntitySpec:
    """An entity the user may read (404 for one they may not: it does not exist for them)."""
    rt = _runtime()
    entity = rt.spec.entities.get(entity_name)
    if entity is None or not rt.permissions.of(current_actor()).entity(entity_name).allows("read"):
        abort(404)
    return entity



def _render(form: RecordForm, status: int = 200, conflict: dict[str, Any] | None = None) -> Response:
    shown = form.visibility()
    entity = form.entity
    if form.row is None:
        action = f"/app/{entity.name}/new"
        cancel = f"/app/{entity.name}"
    else:
        action = f"/app/{entity.name}/{form.row['id']}/edit"
        cancel = f"/app/{entity.name}/{form.row['id']}"
    sections = form.sections(shown)
    placed = {w.name for s in sections for w in s.widgets if w.kind != "absent"}
    labels = {name: f.label for name, f in entity.fields.items()}
    unplaced = {name: problems for name, problems in form.errors.items() if name not in placed}
    html = render_template("form.html", entity=entity, form=form, sections=sections, action=action, cancel=cancel,
                           record=form.row, title=_title(form), unplaced=unplaced, labels=labels,
                           has_errors=bool(form.errors), conflict=conflict)
    return make_response(html, status)


def _title(form: RecordForm) -> str:
    if form.row is None:
        return ""
    title = form.entity.fields.get(form.entity.title)
    if title is not None and title.name in form.ea.readable and form.row.get(title.column) not in (None, ""):
        return str(form.row[title.column])
    return f"#{form.row['id']}"


@bp.route("/<entity_name>/new", methods=["GET", "POST"])
def new_record(entity_name: str):
    """A new record's form; ``?field=text`` fills inputs in (the record page's "add related")."""
    rt = _runtime()
    entity = _entity(entity_name)
    actor = current_actor()
    if not rt.permissions.of(actor).entity(entity.name).allows("create"):
        refuse(_create_what(entity))
    form = RecordForm(rt, entity, actor)
    if request.method == "GET":
        form.prefill(request.args)
        return _render(form)
    form.take(request.form)
    if request.form.get("_refresh"):
        return _render(form)
    data = form.data(form.active(form.visibility()))
    if form.errors:
        return _render(form, 422)
    try:
        row = rt.records.create(entity.name, data, actor)
    except (ValidationFailed, Conflict, BadRequest) as exc:
        form.refused(exc)
        return _render(form, 422)
    except Forbidden:
        refuse(_create_what(entity))
    return done(f"/app/{entity.name}/{row['id']}")


def _editable_row(rt: Runtime, entity: EntitySpec, record_id: int, actor: Actor) -> Mapping[str, Any]:
    """The record as the user may read it, if they may change it (404: they
    may not read it; 403: they may read it, not change it)."""
    with rt.engine.connect() as conn:
        row = rt.queries.read_one(conn, entity, record_id, actor=actor)
        if row is None:
            abort(404)
        if rt.queries.fetch(conn, entity, record_id, actor=actor, actions=("update",), columns=("id",)) is None:
            refuse(_update_what(entity))
    return dict(row)


@bp.route("/<entity_name>/<int:record_id>/edit", methods=["GET", "POST"])
def edit_record(entity_name: str, record_id: int):
    rt = _runtime()
    entity = _entity(entity_name)
    actor = current_actor()
    row = _editable_row(rt, entity, record_id, actor)
    form = RecordForm(rt, entity, actor, row)
    if request.method == "GET":
        return _render(form)
    form.take(request.form)
    if request.form.get("_refresh"):
        return _render(form)
    version = _version(request.form.get("_overwrite") or request.form.get("version"))
    data = form.data(form.active(form.visibility()))
    if form.errors:
        return _render(form, 422)
    try:
        rt.records.update(entity.name, record_id, data, actor, version=version)
    except Conflict as exc:
        if exc.code != "stale_version":
            form.refused(exc)
            return _render(form, 422)
        return _stale(rt, form, version)
    except (ValidationFailed, BadRequest) as exc:
        form.refused(exc)
        return _render(form, 422)
    except Forbidden:
        refuse(_update_what(entity))
    except NotFound:
        abort(404)
    return done(f"/app/{entity.name}/{record_id}")


def _version(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() and len(text) <= 10 else None


def _stale(rt: Runtime, form: RecordForm, version: int | None) -> Response:
    """409: someone saved the record after the user opened it. The form keeps
    what the user typed and says who changed it and when; the user reloads
    or saves over it (the version they now know of)."""
    assert form.row is not None
    entity, actor = form.entity, form.actor
    with rt.engine.connect() as conn:
        now = rt.queries.read_one(conn, entity, form.row["id"], actor=actor,
                                  fields=frozenset({"updated_by", "updated_at"}))
        if now is None:
            abort(404)
        who: int | None = now.get("updated_by")
        names = record_titles(rt, conn, "user", {who}, actor) if who is not None else {}
    at = now.get("updated_at")
    by = gettext("someone") if who is None else names.get(who, f"#{who}")
    conflict = {"by": by,
                "at": display.moment(at, locale(), rt.spec.timezone) if isinstance(at, dt.datetime) else "",
                "version": now["version"], "yours": version}
    form.row = {**form.row, "version": version}  # the form still carries the version the user saw
    return _render(form, 409, conflict)


# ---------------------------------------------------------------- fragments

@bp.post("/<entity_name>/_form")
def form_parts(entity_name: str):
    """The conditional sections and fields of a form for what it holds now
    (htmx swaps them in place, out of band: the field being changed keeps its focus)."""
    rt = _runtime()
    entity = _entity(entity_name)
    actor = current_actor()
    record = request.args.get("record", "")
    if record:
        if not record.isdigit() or len(record) > 10:
            abort(404)
        row: Mapping[str, Any] | None = _editable_row(rt, entity, int(record), actor)
    else:
        if not rt.permissions.of(actor).entity(entity.name).allows("create"):
            refuse(_create_what(entity))
        row = None
    form = RecordForm(rt, entity, actor, row)
    form.take(request.form)
    sections = form.sections(form.visibility())
    # The fields whose conditions follow the input, outside the sections drawn
    # whole; never the input being changed (it keeps its focus).
    changed = request.headers.get("HX-Trigger-Name", "")
    fields = [w for s in sections if not s.conditional for w in s.widgets
              if w.slot and w.name != changed and not changed.startswith(w.name + "__")]
    return render_template("_form_parts.html", sections=[s for s in sections if s.conditional], fields=fields)


@bp.get("/<entity_name>/_region/<field_name>")
def region_picker(entity_name: str, field_name: str):
    """A region picker's select boxes after one of them changed: the cities of
    the chosen province, the districts of the chosen city."""
    rt = _runtime()
    entity = _entity(entity_name)
    f = entity.fields.get(field_name)
    if f is None or f.type != "region" or field_name not in rt.permissions.of(current_actor()).entity(
            entity.name).visible:
        abort(404)
    code = region_from_form(request.args, f.name, f.level)
    prefix = request.args.get("prefix", "f")
    if not _PREFIX.fullmatch(prefix):
        abort(404)
    w = Widget(f, "region", value=code, required=f.required, region=region_choice(code, f.level),
               options_url=f"/app/{entity.name}/_region/{f.name}" + (f"?{urlencode({'prefix': prefix})}"
                                                                    if prefix != "f" else ""), prefix=prefix)
    return render_template("_region_picker.html", w=w)


@bp.get("/<entity_name>/_options")
def ref_options(entity_name: str):
    """A ref picker's answers: at most 20 records of the entity (or users, or
    teams) the user may read whose search fields contain ``q``, as
    ``{"data": [{"value": "12", "text": "title"}]}``: one query of the list
    grammar, in the list's order, never the whole table."""
    rt = _runtime()
    actor = current_actor()
    if entity_name in DIRECTORY_ENTITIES:
        if not rt.permissions.of(actor).allows(entity_name, "read"):
            abort(404)
    else:
        _entity(entity_name)
    with rt.engine.connect() as conn:
        found = search_records(rt, conn, entity_name, request.args.get("q", ""), actor)
    response = jsonify({"data": [{"value": str(key), "text": text} for key, text in found]})
    response.headers["Cache-Control"] = "no-store"
    return response


def search_records(rt: Runtime, conn: sa.Connection, to: str, text: str, actor: Actor) -> list[tuple[int, str]]:
    """(id, title) of at most OPTIONS_LIMIT records of ``to`` (an entity the
    actor may read, or users or teams) whose search fields (``list.search``;
    else the title) contain the text, in the list's order: one page of the
    list grammar, within the actor's read scope. Titles masked for the actor
    are masked; a title they may not see is the id."""
    access = rt.permissions.of(actor)
    if to in DIRECTORY_ENTITIES:
        source = rt.queries.platform[to]
        titles: tuple[str, ...] = DIRECTORY_TITLES[to]
    else:
        source = rt.queries.sources[to]
        titles = (source.spec.title,)
    spec = source.spec
    ea = rt.queries.reader(source, access)
    shown = [n for n in titles if n in ea.visible and n in spec.fields]
    query = text.strip()[:100].replace("\x00", "")
    args = [("limit", str(OPTIONS_LIMIT)), ("fields", ",".join(shown) or "id")]
    if to == "user":
        args.append(("active", "true"))
    if query:
        if any(n in ea.readable for n in spec.list.search):
            args.append(("q", query))
        elif shown and shown[0] in ea.readable and spec.fields[shown[0]].type in ("string", "text", "autonumber"):
            args.append((f"{shown[0]}__contains", query))
    try:
        list_request = rt.queries.parse_list(source, args, access)
    except BadRequest:
        return []
    page = rt.queries.page(conn, source, list_request, actor=actor)
    masks = dict(ea.masked)
    found = []
    for row in page.mappings():
        title = ""
        for name in shown:
            value = row.get(spec.fields[name].column)
            if value not in (None, ""):
                title = masks[name](value) if name in masks else str(value)
                break
        found.append((row["id"], title or f"#{row['id']}"))
    return found
