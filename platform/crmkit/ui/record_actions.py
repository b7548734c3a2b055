"""What a reader does on the record page (crmkit.ui.record): delete, make a
workflow move (with the dialog for the fields it requires), share and
unshare. Every write goes through the records service."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, render_template, request
from werkzeug.wrappers import Response

from ..api.http import current_actor
from ..approvals import ApprovalPending
from ..errors import CrmError, NotFound
from ..metadata.spec import EntitySpec, label_text
from ..permissions import Actor
from ..runtime import Runtime
from ..workflows import Transition
from .forms import RecordForm
from .i18n import gettext, locale
from .record import (
    _back,
    _entity,
    _failed,
    _may,
    _picker_users,
    _record_url,
    _runtime,
    _transition,
)
from .security import done, is_htmx
from .shell import bp, refuse

# ------------------------------------------------------------------ writes

@bp.post("/<entity_name>/<int:record_id>/delete")
def delete_record(entity_name: str, record_id: int):
    entity = _entity(entity_name)
    rt = _runtime()
    version = request.form.get("version", "")
    try:
        rt.records.delete(entity.name, record_id, current_actor(),
                          version=int(version) if version.isdigit() else None)
    except NotFound:
        abort(404)
    except CrmError as exc:
        flash(gettext("Not deleted: %(reason)s", reason=_failed(exc)), "error")
        return _back(entity, record_id)
    flash(gettext("%(what)s deleted. It is in the recycle bin.", what=label_text(entity.label, locale(), entity.name)),
          "success")
    return done(f"/app/{entity.name}")


def _move_form(rt: Runtime, entity: EntitySpec, record_id: int, actor: Actor) -> RecordForm:
    """The record's form, for the fields a move asks (404: the reader may not read it)."""
    with rt.engine.connect() as conn:
        row = rt.queries.read_one(conn, entity, record_id, actor=actor)
    if row is None:
        abort(404)
    return RecordForm(rt, entity, actor, dict(row))


def _asked(form: RecordForm, move: Transition) -> list[str]:
    """The fields a move requires that the reader may fill in (the dialog's inputs)."""
    return [n for n in move.require if n in form.editable]


@bp.get("/<entity_name>/<int:record_id>/transitions/<name>")
def transition_dialog(entity_name: str, record_id: int, name: str):
    """The small dialog of a move that requires fields: the inputs, filled with the record's values."""
    entity = _entity(entity_name)
    rt = _runtime()
    move = _transition(rt, entity, name)
    form = _move_form(rt, entity, record_id, current_actor())
    return _dialog(form, move, form.row["version"] if form.row else None)


def _dialog(form: RecordForm, move: Transition, version: Any, error: str | None = None,
            status: int = 200) -> tuple[str, int]:
    entity = form.entity
    fields = form.widgets(_asked(form, move), prefix="move")
    for w in fields:
        w.required = True
    context = {"entity": entity, "record_id": form.row["id"] if form.row else None, "move": move,
               "move_label": label_text(move.label, locale(), move.name), "fields": fields, "version": version,
               "error": error, "pickers": any(w.kind == "ref" for w in fields)}
    template = "_record_transition.html" if is_htmx() else "record_transition.html"
    return render_template(template, **context), status


@bp.post("/<entity_name>/<int:record_id>/transitions/<name>")
def make_transition(entity_name: str, record_id: int, name: str):
    entity = _entity(entity_name)
    rt = _runtime()
    move = _transition(rt, entity, name)
    actor = current_actor()
    form = _move_form(rt, entity, record_id, actor)
    asked = _asked(form, move)
    form.take(request.form, asked)
    data = form.data(asked)
    version = request.form.get("version", "")
    if form.errors:  # text no value comes from: asked again, before the service is
        return _dialog(form, move, version, gettext("Please correct the fields marked below."),
                       200 if is_htmx() else 422)
    try:
        moved = rt.records.transition(entity.name, record_id, name, data, actor,
                                      version=int(version) if version.isdigit() else None)
    except NotFound:
        abort(404)
    except CrmError as exc:
        details = exc.details if isinstance(exc.details, dict) else {}
        if any(n in details for n in asked):  # ask again, with what was typed and why
            form.refused(exc)
            return _dialog(form, move, version, _failed(exc), 200 if is_htmx() else 422)
        flash(gettext("The move was not made: %(reason)s", reason=_failed(exc)), "error")
        return _htmx_back(entity, record_id)
    if isinstance(moved, ApprovalPending):
        flash(gettext("Sent for approval: %(move)s.", move=label_text(move.label, locale(), move.name)), "success")
        return _htmx_back(entity, record_id, "#approvals")
    flash(gettext("Done: %(move)s.", move=label_text(move.label, locale(), move.name)), "success")
    return _htmx_back(entity, record_id)


def _htmx_back(entity: EntitySpec, record_id: int, anchor: str = "") -> Response:
    """Back to the record page: a redirect, or for htmx a whole-page redirect."""
    return done(_record_url(entity, record_id) + anchor)


@bp.get("/<entity_name>/<int:record_id>/share")
def share_form(entity_name: str, record_id: int):
    """The share form (loaded when asked for): active users the reader may
    read, but the owner and those it is shared with already."""
    entity = _entity(entity_name)
    rt = _runtime()
    actor = current_actor()
    ea = rt.permissions.of(actor).entity(entity.name)
    with rt.engine.connect() as conn:
        row = rt.queries.read_one(conn, entity, record_id, actor=actor, fields=frozenset({"owner_id"}))
        if row is None:
            abort(404)
        if not entity.owned or not _may(rt, conn, entity, record_id, actor, ea, "share"):
            refuse(gettext("share this %(entity)s", entity=label_text(entity.label, locale(), entity.name)))
        users = _picker_users(rt, conn, actor)
    shared = {c["user_id"] for c in rt.records.sharing.collaborators(entity.name, record_id, actor)}
    shared.add(row.get("owner_id"))
    context = {"entity": entity, "record_id": record_id, "users": [(i, n) for i, n in users if i not in shared]}
    return render_template("_record_share.html" if is_htmx() else "record_share.html", **context)


@bp.post("/<entity_name>/<int:record_id>/collaborators")
def share_record(entity_name: str, record_id: int):
    entity = _entity(entity_name)
    rt = _runtime()
    user = request.form.get("user_id", "")
    try:
        rt.records.sharing.share(entity.name, record_id, int(user) if user.isdigit() else user,
                                 request.form.get("access", "read"), current_actor())
    except NotFound:
        abort(404)
    except CrmError as exc:
        flash(gettext("Not shared: %(reason)s", reason=_failed(exc)), "error")
        return _htmx_back(entity, record_id, "#collaborators")
    flash(gettext("Shared."), "success")
    return _htmx_back(entity, record_id, "#collaborators")


@bp.post("/<entity_name>/<int:record_id>/collaborators/<int:user_id>/remove")
def unshare_record(entity_name: str, record_id: int, user_id: int):
    entity = _entity(entity_name)
    rt = _runtime()
    try:
        rt.records.sharing.unshare(entity.name, record_id, user_id, current_actor())
    except NotFound:
        abort(404)
    except CrmError as exc:
        flash(gettext("Not unshared: %(reason)s", reason=_failed(exc)), "error")
        return _htmx_back(entity, record_id, "#collaborators")
    flash(gettext("No longer shared."), "success")
    return _htmx_back(entity, record_id, "#collaborators")
