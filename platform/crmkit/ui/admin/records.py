"""Records in the console: a data view of every entity, the recycle bin and
the audit trail. Reads through the query builder within the admin's scope
and field rules (hidden fields never reach the page, masked ones are
masked); writes through the records service."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

from flask import flash, redirect, request
from flask_admin import expose
from flask_babel import get_timezone, lazy_gettext
from flask_babel import gettext as _

from ...errors import CrmError
from ...fieldtypes import MAX_ID, FieldValueError, whole_number
from ...metadata.spec import EntitySpec, FieldSpec
from ...permissions import EntityAccess, audit_changes
from ...query import Page, Source
from ..display import field_value
from ..i18n import locale
from ..security import redirect_to
from .base import (
    ConsoleView,
    ServiceModelView,
    Submitted,
    access,
    actor,
    first_url,
    list_args,
    next_url,
    page_rows,
    read_page,
    report,
    runtime,
    sort_url,
)

#: Columns of a data list when the entity's list names none.
DEFAULT_COLUMNS = 6


class Cell:
    """A value as the page shows it: text, and the record it links to (refs)."""

    def __init__(self, text: str, link: str | None = None) -> None:
        self.text = text
        self.link = link


def entity_reader(entity: EntitySpec) -> EntityAccess:
    return access().entity(entity.name)


def present(entity: EntitySpec, fields: list[FieldSpec], rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Cell]]:
    """Rows as cells in the user's language: values formatted as on every
    screen, masked fields masked, refs by the title of the record (if the
    admin may read it) linking to it."""
    rt = runtime()
    ea = entity_reader(entity)
    masks = dict(ea.masked)
    titles: dict[str, dict[int, Any]] = {}
    with rt.engine.connect() as conn:
        for f in fields:
            if f.type == "ref" and f.to is not None and f.to in rt.spec.entities and f.name not in masks:
                ids = {row[f.column] for row in rows if row.get(f.column)}
                titles[f.name] = rt.queries.titles(conn, f.to, ids, actor()) if ids else {}
    language, zone = locale(), get_timezone()
    out = []
    for row in rows:
        cells = {}
        for f in fields:
            value = row.get(f.column)
            if f.name in masks:
                cells[f.name] = Cell("" if value is None else masks[f.name](rt.field_types[f.type].dump(f, value)))
            elif f.type == "ref" and value is not None and f.to in rt.spec.entities:
                title = titles.get(f.name, {}).get(value)
                cells[f.name] = Cell(f"{title} (#{value})" if title is not None else f"#{value}",
                                     f"/admin/data/{f.to}/details/?id={value}")
            elif f.type == "json":
                cells[f.name] = Cell("" if value is None else json.dumps(value, ensure_ascii=False, default=str))
            else:
                cells[f.name] = Cell(field_value(f, value, language, zone))
        out.append(cells)
    return out


def form_value(f: FieldSpec, value: Any) -> Any:
    """A stored value as an input holds it."""
    if value is None:
        return ""
    if f.type == "datetime":
        return value.astimezone(get_timezone()).strftime("%Y-%m-%dT%H:%M")
    if f.type == "date":
        return value.isoformat()
    if f.type == "boolean":
        return "true" if value else "false"
    if f.type == "json":
        return json.dumps(value, ensure_ascii=False, default=str)
    if f.type == "multi_enum":
        return [str(v) for v in value]
    return str(value)


def parse_input(f: FieldSpec, form: Mapping[str, Any]) -> Any:
    """A field's input as the records service takes it (as a JSON body
    would carry it); FieldValueError names what is wrong."""
    rt = runtime()
    ftype = rt.field_types[f.type]
    if f.type == "multi_enum":
        return [ftype.parse_text(f, v, rt.records.tz) for v in form.getlist(f.name)]  # type: ignore[attr-defined]
    text = (form.get(f.name) or "").strip()
    if not text:
        return None
    if f.type in ("integer", "ref"):
        return whole_number(text, MAX_ID if f.type == "ref" else 2**63 - 1)
    if f.type in ("decimal", "money"):
        try:
            return Decimal(text.replace(",", ""))
        except InvalidOperation:
            raise FieldValueError("must be a number") from None
    if f.type == "boolean":
        return text == "true"
    if f.type == "enum":
        return ftype.parse_text(f, text, rt.records.tz)
    if f.type == "json":
        try:
            return json.loads(text)
        except ValueError:
            raise FieldValueError("must be JSON") from None
    if f.type == "datetime":
        try:
            return dt.datetime.fromisoformat(text)
        except ValueError:
            raise FieldValueError("must be a date and time") from None
    return text


class RecordView(ServiceModelView):
    """The records of one entity: list (search, filters, sort, cursor pages),
    details, create, edit, delete (to the recycle bin)."""

    list_template = "admin/records/list.html"
    create_template = edit_template = "admin/records/form.html"
    details_template = "admin/records/details.html"

    def __init__(self, entity: EntitySpec) -> None:
        self.entity = entity
        self.column_list = ("id", *(entity.list.columns or [f.name for f in entity.user_fields][:DEFAULT_COLUMNS]))
        super().__init__(entity.name, f"crmkit_admin_data_{entity.name}", f"/admin/data/{entity.name}")

    def source(self) -> Source:
        return runtime().queries.sources[self.entity.name]

    def is_accessible(self) -> bool:
        return super().is_accessible() and entity_reader(self.entity).allows("read")

    # The model view's contract, on the query builder and the records service.
    def get_one(self, id: Any) -> Any:
        rt = runtime()
        try:
            record_id = int(id)
        except ValueError:
            return None
        if not 0 < record_id <= MAX_ID:
            return None
        with rt.engine.connect() as conn:
            return rt.queries.read_one(conn, self.entity, record_id, actor=actor())

    def create_model(self, form: Any) -> Any:
        return runtime().records.create(self.entity.name, form.data, actor())

    def update_model(self, form: Any, model: Any) -> Any:
        return runtime().records.update(self.entity.name, model["id"], form.data, actor(),
                                        version=form.data.pop("version", None))

    def delete_model(self, model: Any) -> bool:
        runtime().records.delete(self.entity.name, model["id"], actor(), version=model["version"])
        return True

    # What the admin sees of the entity.
    def visible_fields(self) -> list[FieldSpec]:
        ea = entity_reader(self.entity)
        return [f for f in self.entity.fields.values() if f.name in ea.visible]

    def list_fields(self) -> list[FieldSpec]:
        ea = entity_reader(self.entity)
        return [self.entity.fields[n] for n in self.column_list if n in ea.visible]

    def input_fields(self, creating: bool) -> list[tuple[FieldSpec, bool]]:
        """The form's fields with whether each can be written: the admin's
        field rules; system fields, auto-numbers and (on edit) workflow states
        are shown read-only."""
        ea = entity_reader(self.entity)
        workflow = {wf.field for wf in runtime().records.workflows.get(self.entity.name, ())}
        out = []
        for f in self.entity.user_fields:
            if f.name not in ea.visible:
                continue
            writable = (f.name in ea.writable and f.type != "autonumber" and not f.readonly
                        and (creating or f.name not in workflow))
            out.append((f, writable))
        return out

    # Pages.
    @expose("/")
    def index_view(self) -> Any:
        rt = runtime()
        if "filter_field" in request.args:  # the filter form: field and value become field=value
            args = [(k, v) for k, v in request.args.items(multi=True)
                    if k not in ("filter_field", "filter_value", "cursor")]
            if request.args.get("filter_value", ""):
                args.append((request.args["filter_field"], request.args["filter_value"]))
            return redirect(f"{request.path}?{urlencode(args)}", 303)
        page, list_request = read_page(self.source(), list_args())
        fields = self.list_fields()
        rows = page_rows(self.source(), page)
        ea = entity_reader(self.entity)
        filterable = [f for f in self.visible_fields() if f.name in ea.readable and f.type != "json"]
        return self.render(self.list_template, entity=self.entity, fields=fields, rows=rows,
                           cells=present(self.entity, fields, rows), next_url=next_url(page),
                           first_url=first_url(), args=request.args, filterable=filterable,
                           search=bool(self.entity.list.search),
                           sort_url=lambda name: sort_url(name, list_request.sort if list_request else []),
                           sort=list_request.sort if list_request else [],
                           can_create=ea.allows("create"), sortable={
                               f.name for f in fields if rt.field_types[f.type].sortable and f.name in ea.readable})

    @expose("/details/")
    def details_view(self) -> Any:
        record = self.get_one(request.args.get("id", ""))
        if record is None:
            return self._missing()
        fields = self.visible_fields()
        ea = entity_reader(self.entity)
        return self.render(self.details_template, entity=self.entity, record=record, fields=fields,
                           cells=present(self.entity, fields, [record])[0],
                           can_edit=ea.allows("update"), can_delete=ea.allows("delete"))

    def _missing(self) -> Any:
        flash(_("No such record, or it is in the recycle bin."), "error")
        return redirect(self.get_url(".index_view"), 303)

    def _parse(self, creating: bool) -> tuple[dict[str, Any], dict[str, list[str]]]:
        data: dict[str, Any] = {}
        errors: dict[str, list[str]] = {}
        for f, writable in self.input_fields(creating):
            if not writable:
                continue
            try:
                value = parse_input(f, request.form)
            except FieldValueError as exc:
                errors[f.name] = [str(exc)]
                continue
            if value is None and creating:
                continue
            data[f.name] = value
        return data, errors

    def _form(self, record: Any, errors: dict[str, list[str]], values: Any) -> Any:
        fields = self.input_fields(record is None)
        refs = [f for f, _writable in fields if f.type == "ref"]
        current = present(self.entity, refs, [record])[0] if record is not None and refs else {}
        return self.render(self.edit_template, entity=self.entity, record=record, errors=errors, values=values,
                           fields=fields, current=current)

    @expose("/new/", methods=("GET", "POST"))
    def create_view(self) -> Any:
        errors: dict[str, list[str]] = {}
        if request.method == "POST":
            data, errors = self._parse(creating=True)
            if errors:
                flash(_("Not saved: check the marked fields."), "error")
            else:
                try:
                    record = self.create_model(Submitted(data))
                except CrmError as exc:
                    errors = report(exc)
                else:
                    flash(_("The record was created."), "success")
                    return redirect(self.get_url(".details_view", id=record["id"]), 303)
        return self._form(None, errors, request.form)

    @expose("/edit/", methods=("GET", "POST"))
    def edit_view(self) -> Any:
        record = self.get_one(request.args.get("id", ""))
        if record is None:
            return self._missing()
        errors: dict[str, list[str]] = {}
        if request.method == "POST":
            data, errors = self._parse(creating=False)
            if errors:
                flash(_("Not saved: check the marked fields."), "error")
            else:
                try:
                    version = int(request.form.get("version", ""))
                except ValueError:
                    version = record["version"]
                try:
                    self.update_model(Submitted({**data, "version": version}), record)
                except CrmError as exc:
                    errors = report(exc)
                else:
                    flash(_("The record was saved."), "success")
                    return redirect(self.get_url(".details_view", id=record["id"]), 303)
            values: Any = request.form
        else:
            masks = dict(entity_reader(self.entity).masked)
            values = {f.name: masks[f.name](runtime().field_types[f.type].dump(f, record[f.column]))
                      if f.name in masks and record[f.column] is not None else form_value(f, record[f.column])
                      for f, _w in self.input_fields(False)}
        return self._form(record, errors, values)

    @expose("/delete/", methods=("POST",))
    def delete_view(self) -> Any:
        record = self.get_one(request.args.get("id", ""))
        if record is None:
            return self._missing()
        try:
            self.delete_model(record)
        except CrmError as exc:
            report(exc)
            return redirect(self.get_url(".details_view", id=record["id"]), 303)
        flash(_("The record was moved to the recycle bin."), "success")
        return redirect(self.get_url(".index_view"), 303)


# ---------------------------------------------------------------- recycle bin

class RecycleBinView(ConsoleView):
    """The records deleted of each entity (those the admin could delete):
    restore one, or purge it for good."""

    def __init__(self) -> None:
        super().__init__(name=lazy_gettext("Recycle bin"), endpoint="crmkit_admin_recycle_bin",
                         url="/admin/recycle_bin")

    def entities(self) -> list[EntitySpec]:
        return [e for e in runtime().spec.entities.values() if entity_reader(e).allows("delete")]

    @expose("/")
    def index_view(self) -> Any:
        rt = runtime()
        entities = self.entities()
        name = request.args.get("entity") or (entities[0].name if entities else "")
        entity = next((e for e in entities if e.name == name), None)
        rows: list[dict[str, Any]] = []
        cells: list[dict[str, Cell]] = []
        fields: list[FieldSpec] = []
        page: Page | None = None
        if entity is not None:
            source = rt.queries.binned[entity.name]
            page, _request = read_page(source, list_args(), run=lambda conn, lr: rt.queries.deleted_page(
                conn, entity, lr, actor=actor()))
            rows = page_rows(source, page)
            ea = entity_reader(entity)
            fields = [source.spec.fields[n] for n in ("id", *(entity.list.columns or (entity.title,)), "deleted_at")
                      if n in source.spec.fields and (n in ea.visible or n == "deleted_at")]
            cells = present(entity, fields, rows)
            names = deleters({row.get("deleted_by") for row in rows})
            for row, cell in zip(rows, cells):
                cell["deleted_by"] = Cell(names.get(row.get("deleted_by") or 0, ""))
        return self.render("admin/recycle_bin.html", entities=entities, entity=entity, rows=rows, cells=cells,
                           fields=fields, next_url=next_url(page), first_url=first_url())

    def _act(self, restore: bool) -> Any:
        rt = runtime()
        name = request.form.get("entity", "")
        back = redirect_to(request.form.get("next"), self.get_url(".index_view", entity=name))
        try:
            record_id = int(request.form.get("id", ""))
            if restore:
                rt.records.restore(name, record_id, actor())
            else:
                rt.records.purge_record(name, record_id, actor())
        except ValueError:
            flash(_("No such record."), "error")
        except CrmError as exc:
            report(exc)
        else:
            flash(_("The record was restored.") if restore else _("The record was deleted for good."), "success")
        return back

    @expose("/restore/", methods=("POST",))
    def restore_view(self) -> Any:
        return self._act(restore=True)

    @expose("/purge/", methods=("POST",))
    def purge_view(self) -> Any:
        return self._act(restore=False)


def deleters(ids: set[Any]) -> dict[int, str]:
    from .people import user_names

    return user_names({i for i in ids if isinstance(i, int)})


# ---------------------------------------------------------------- audit trail

#: The audit trail's filters on the page: (query parameter, its input).
AUDIT_FILTERS = ("actor", "entity", "action", "from", "to")


class AuditView(ConsoleView):
    """The audit trail, newest first: filter by user, entity, action and
    date; the values in it as the admin may see them (as the API shows them)."""

    def __init__(self) -> None:
        super().__init__(name=lazy_gettext("Audit trail"), endpoint="crmkit_admin_audit", url="/admin/audit")

    @expose("/")
    def index_view(self) -> Any:
        rt = runtime()
        args = list_args(skip=AUDIT_FILTERS)
        who = request.args.get("actor", "").strip()
        if who:
            args.append(("actor_id", who) if who.isascii() and who.isdigit() else ("actor", who))
        for key in ("entity", "action"):
            if request.args.get(key, "").strip():
                args.append((key, request.args[key].strip()))
        if request.args.get("from"):
            args.append(("at__gte", request.args["from"]))
        if request.args.get("to"):
            try:
                until = dt.date.fromisoformat(request.args["to"]) + dt.timedelta(days=1)
                args.append(("at__lt", until.isoformat()))
            except ValueError:
                args.append(("at__lt", request.args["to"]))  # the query builder names the mistake
        page, _request = read_page(rt.queries.platform["audit"], args)
        entries = page_rows(rt.queries.platform["audit"], page)
        ea = access()
        for entry in entries:
            entity = rt.spec.entities.get(entry.get("entity") or "")
            changes = entry.get("changes")
            if changes is not None and entity is not None:
                changes = audit_changes(ea, entity, changes)
            entry["changes_text"] = "" if changes is None else json.dumps(changes, ensure_ascii=False, default=str)
        actions = ("create", "update", "delete", "restore", "purge", "export", "denied", "login", "login_failed",
                   "user_created", "user_updated", "roles_changed", "team_created", "team_updated",
                   "token_created", "token_revoked")
        return self.render("admin/audit.html", entries=entries, next_url=next_url(page), first_url=first_url(),
                           args=request.args, entity_names=[*rt.spec.entities, "crmkit_user"], actions=actions)
