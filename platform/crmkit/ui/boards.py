"""The board (/app/<entity>/board): an entity's records in a column per state
of its workflow, a card per record; moving a card to another column is the
workflow's transition, made through the records service like the API's.

Which board: a view of ``kind: board`` in views.yaml grouped by the workflow's
field (its columns are the cards' fields, its ``total`` a number summed per
column, its filter and sort apply), else the workflow's states with the
list's columns. Each column is a page of the query builder (keyset, "more").
A card can be dragged (board.js) or moved with its buttons (no script needed)
to the states its user may move it to now: the moves of the workflow from the
card's state, in the user's transition scope, whose roles include theirs.
The service decides the rest; a refusal comes back with its reason, and a
move that needs fields asks for them first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from flask import abort, flash, make_response, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from ..api.http import current_actor
from ..approvals import ApprovalPending
from ..errors import BadRequest, CrmError, Forbidden
from ..metadata.spec import EntitySpec, ViewSpec
from ..permissions import Access, Actor
from ..query import ListRequest
from ..workflows import Transition, Workflow, blocker
from .cards import Card, build_cards, card_fields, in_scope, runtime
from .cells import Cells
from .forms import RecordForm, asks_refs
from .i18n import label, locale
from .navigation import view_offered
from .security import is_htmx, redirect_to
from .shell import bp
from .tags import page_tags

#: Cards per column and page.
COLUMN_SIZE = 20
#: The header of a move's answer that carries a message for the user (percent-encoded UTF-8).
NOTICE_HEADER = "X-Crmkit-Notice"


@dataclass(frozen=True)
class Board:
    """What a board shows: the entity, its workflow, and the view it follows (if any)."""

    entity: EntitySpec
    workflow: Workflow
    view: ViewSpec | None
    fields: tuple[str, ...]
    total: str | None

    @property
    def view_name(self) -> str:
        return self.view.name if self.view is not None else ""


def board_views(entity: EntitySpec, access: Access) -> list[ViewSpec]:
    """The board views of an entity its user's roles see, grouped by a
    workflow's field (and whose ``where`` reads only what they see)."""
    rt = runtime()
    fields = {wf.field for wf in rt.records.workflows.get(entity.name, ())}
    usable = rt.queries.tag_catalog.views(access, entity.name)
    return [v for v in rt.spec.views.values()
            if v.entity == entity.name and v.kind == "board" and v.group_by in fields
            and view_offered(v, access) and v.name in usable]


def find_board(entity_name: str, access: Access, view_name: str | None) -> Board:
    """The board to show (404: no such entity for the user, or no workflow)."""
    rt = runtime()
    entity = rt.spec.entities.get(entity_name)
    if entity is None or not access.entity(entity_name).allows("read"):
        abort(404)
    workflows = rt.records.workflows.get(entity.name, ())
    if not workflows:
        abort(404)
    views = board_views(entity, access)
    view = next((v for v in views if v.name == view_name), views[0] if views else None)
    if view_name and (view is None or view.name != view_name):
        abort(404)
    workflow = next((wf for wf in workflows if view is None or wf.field == view.group_by), workflows[0])
    total = view.total if view is not None else None
    return Board(entity, workflow, view, card_fields(entity, view, leave_out=(workflow.field,)), total)


def _request(board: Board, actor: Actor, state: str, cursor: str | None) -> ListRequest:
    """A column's list: the state, a page of cards, and the view (its filters,
    sort and ``where``, applied by the query builder as for a list; its
    filters on the workflow's field yield to the column's state)."""
    rt = runtime()
    args = [(board.workflow.field, state), ("limit", str(COLUMN_SIZE))]
    if board.view is not None:
        args.append(("view", board.view.name))
    if cursor:
        args.append(("cursor", cursor))
    try:
        return rt.queries.parse_list(board.entity, args, rt.permissions.of(actor))
    except BadRequest:
        # The view names what this user may not see (a hidden field in its sort
        # or filter): their column is the state's records in the list's order.
        plain = [(board.workflow.field, state), ("limit", str(COLUMN_SIZE))] + ([("cursor", cursor)] if cursor else [])
        return rt.queries.parse_list(board.entity, plain, rt.permissions.of(actor))


@dataclass
class Column:
    state: str
    label: str
    color: str | None
    cards: list[Card]
    next: str | None
    total: Any


def _moves(board: Board, access: Access, card: Card, movable: set[int]) -> dict[str, dict[str, Any]]:
    """The moves the user may try on a card: in their transition scope, from
    its state, not reserved to roles they lack. Required fields and conditions
    are the service's to check (a move that needs fields asks for them)."""
    if card.id not in movable:
        return {}
    moves: dict[str, dict[str, Any]] = {}
    state = card.values.get(board.workflow.field)
    for move in board.workflow.transitions:
        if not move.allows_from(state) or move.to == state or move.to in moves:
            continue
        blocked = blocker(move, access, card.values)
        if blocked is not None and blocked.reason == "roles":
            continue
        moves[move.to] = {"name": move.name, "label": label(move.label, move.name),
                          "missing": list(blocked.missing) if blocked is not None else []}
    return moves


def _movable(conn: sa.Connection, board: Board, actor: Actor, ids: list[int]) -> set[int]:
    """Those of the cards the user's transition scope covers."""
    return in_scope(conn, board.entity, actor, ids, "transition")


def _awaiting(conn: sa.Connection, board: Board, ids: list[int]) -> dict[int, str]:
    """Card id -> the label of its move awaiting approval (one read, and
    none at all for a workflow none of whose moves needs approval)."""
    if not ids or not any(m.spec.approval is not None for m in board.workflow.transitions):
        return {}
    t = runtime().records.approvals.table
    rows = conn.execute(sa.select(t.c.record_id, t.c.transition).where(
        t.c.entity == board.entity.name, t.c.workflow == board.workflow.name, t.c.status == "pending",
        t.c.record_id.in_(ids)))
    found = {}
    for record_id, name in rows:
        move = board.workflow.transition(name)
        found[record_id] = label(move.label, name) if move is not None else name
    return found


def read_columns(conn: sa.Connection, board: Board, actor: Actor, states: Sequence[str], cursor: str | None = None,
                 with_total: bool = True) -> list[Column]:
    """Columns of the board: a page of the query builder each; then, for the
    cards of all of them at once, one lookup per referenced entity (users,
    teams) for the titles and names, one read of the tags, one of the
    transition scope."""
    rt = runtime()
    access = rt.permissions.of(actor)
    ea = access.entity(board.entity.name)
    pages = []
    for state in states:
        request_ = _request(board, actor, state, cursor)
        pages.append((state, request_, rt.queries.page(conn, board.entity, request_, actor=actor)))
    cells = Cells(rt, actor)
    cells.load(conn, cells.refs_of(board.entity, ea, [row for _, _, page in pages for row in page.mappings()],
                                   only=board.fields))
    decks = [build_cards(conn, board.entity, page.mappings(), board.fields, ea, actor, cells) for _, _, page in pages]
    ids = [card.id for cards in decks for card in cards]
    movable = _movable(conn, board, actor, ids)
    awaiting = _awaiting(conn, board, ids)
    tags = page_tags(rt, conn, board.entity, ids, access, locale())
    field = board.entity.fields[board.workflow.field]
    columns = []
    for (state, request_, page), cards in zip(pages, decks, strict=True):
        for card in cards:
            card.pending = awaiting.get(card.id, "")
            # Awaiting approval: its state is locked until the approvers decide.
            card.moves = _moves(board, access, card, movable) if not card.pending else {}
            card.tags = tags.get(card.id, "")
        total = None
        if with_total and board.total is not None:
            request_.cursor = None
            total = rt.queries.total(conn, board.entity, request_, board.total, actor=actor)
        option = next((o for o in field.options if str(o.value) == state), None)
        columns.append(Column(state, label(option.label, state) if option else state,
                              option.color if option else None, cards, page.next, total))
    return columns


def read_column(conn: sa.Connection, board: Board, actor: Actor, state: str, cursor: str | None = None,
                with_total: bool = True) -> Column:
    return read_columns(conn, board, actor, [state], cursor, with_total)[0]


def read_board(board: Board, actor: Actor) -> list[Column]:
    rt = runtime()
    with rt.engine.connect() as conn:
        return read_columns(conn, board, actor, board.workflow.states)


def _context(board: Board, columns: list[Column]) -> dict[str, Any]:
    total_field = board.entity.fields.get(board.total or "")
    # Cards' links are built from these (url_for per card costs more than the card).
    record_base = url_for("crmkit_app.entity_list", entity_name=board.entity.name)
    return {"board": board, "entity": board.entity, "columns": columns, "total_field": total_field,
            "record_base": record_base, "board_base": record_base + "/board",
            "views": board_views(board.entity, runtime().permissions.of(current_actor())),
            "pickers": asks_refs(runtime(), board.entity)}



# ------------------------------------------------------------------ pages


@bp.get("/<entity_name>/board")
def board_page(entity_name: str):
    actor = current_actor()
    board = find_board(entity_name, runtime().permissions.of(actor), request.args.get("view"))
    return render_template("board.html", **_context(board, read_board(board, actor)))


@bp.get("/<entity_name>/board/column/<state>")
def board_column(entity_name: str, state: str):
    """More cards of a column (htmx appends them; without script, a page of them)."""
    actor = current_actor()
    board = find_board(entity_name, runtime().permissions.of(actor), request.args.get("view"))
    if state not in board.workflow.states:
        abort(404)
    try:
        with runtime().engine.connect() as conn:
            column = read_column(conn, board, actor, state, request.args.get("cursor"), with_total=False)
    except BadRequest:
        abort(404)
    template = "_board_cards.html" if is_htmx() else "board_column.html"
    return render_template(template, **_context(board, [column]), column=column)


def _move(board: Board, name: str) -> Transition:
    move = board.workflow.transition(name)
    if move is None:
        abort(404)
    return move


def _record(board: Board, actor: Actor, record_id: int) -> RecordForm:
    """The record's form, as the user may read it (404: they may not)."""
    rt = runtime()
    with rt.engine.connect() as conn:
        found = rt.queries.read_one(conn, board.entity, record_id, actor=actor)
    if found is None:
        abort(404)
    return RecordForm(rt, board.entity, actor, dict(found))


def _card(board: Board, form: RecordForm) -> Card:
    rt = runtime()
    assert form.row is not None
    with rt.engine.connect() as conn:
        card = build_cards(conn, board.entity, [form.row], board.fields, form.ea, form.actor)[0]
        card.moves = _moves(board, rt.permissions.of(form.actor), card,
                            _movable(conn, board, form.actor, [card.id]))
        card.tags = page_tags(rt, conn, board.entity, [card.id], rt.permissions.of(form.actor),
                              locale()).get(card.id, "")
    return card


def _dialog(board: Board, form: RecordForm, move: Transition, status: int) -> Response:
    """The small form a move's required fields are asked for in (the forms'
    widgets: what the record holds, or what was typed, and the errors beside it)."""
    card = _card(board, form)
    widgets = form.widgets(move.require, prefix="move")
    for w in widgets:
        w.required = w.kind != "readonly"
    shown = {w.name for w in widgets}
    labels = {name: f.label for name, f in board.entity.fields.items()}
    unplaced = {name: problems for name, problems in form.errors.items() if name not in shown}
    context = {**_context(board, []), "card": card, "move": move, "widgets": widgets, "unplaced": unplaced,
               "labels": labels}
    template = "_move_dialog.html" if is_htmx() else "board_move.html"
    response = make_response(render_template(template, **context), status)
    response.headers["X-Crmkit-Dialog"] = "1"
    return response


@bp.get("/<entity_name>/board/<int:record_id>/move/<name>")
def move_dialog(entity_name: str, record_id: int, name: str):
    actor = current_actor()
    board = find_board(entity_name, runtime().permissions.of(actor), request.args.get("view"))
    move = _move(board, name)
    return _dialog(board, _record(board, actor, record_id), move, 200)


def refusal_text(exc: CrmError, move: Transition) -> str:
    """Why the service refused a move, in the user's language."""
    code = exc.code
    if code == "condition_failed":
        return _("“%(move)s” is not possible yet: it needs %(condition)s", move=label(move.label, move.name),
                 condition=move.when or "")
    if code == "forbidden":
        return _("Your role does not allow you to make the move “%(move)s” on this record",
                 move=label(move.label, move.name))
    if code == "stale_version":
        return _("Someone else changed this record meanwhile; the board shows it as it is now")
    if code == "invalid_transition":
        return _("The record is no longer where you moved it from; the board shows it as it is now")
    if code == "unsupported_condition":
        return _("“%(move)s” has a condition that cannot be checked yet", move=label(move.label, move.name))
    return _("The move “%(move)s” was refused: %(reason)s", move=label(move.label, move.name), reason=exc.message)


@bp.post("/<entity_name>/board/<int:record_id>/move")
def move_card(entity_name: str, record_id: int):
    """Make a move (a workflow transition through the records service)."""
    rt = runtime()
    actor = current_actor()
    board = find_board(entity_name, rt.permissions.of(actor), request.form.get("view"))
    move = _move(board, request.form.get("transition", ""))
    version_text = request.form.get("version", "")
    version = int(version_text) if version_text.isdigit() else None
    form = _record(board, actor, record_id)
    asked = [n for n in move.require if n in form.editable]
    form.take(request.form, asked)
    values = form.data(asked)
    if form.errors:  # text no value comes from: asked again, before the service is
        return _dialog(board, form, move, 422)
    back = url_for("crmkit_app.board_page", entity_name=entity_name, view=board.view_name or None)
    try:
        moved = rt.records.transition(entity_name, record_id, move.name, values, actor, version=version)
    except CrmError as exc:
        if exc.code in ("fields_required", "validation_failed", "reference_not_found") or (
                exc.status == 422 and any(n in request.form for n in move.require)):
            form.refused(exc)
            return _dialog(board, form, move, 422)
        if exc.status == 404:
            abort(404)
        if isinstance(exc, Forbidden) and exc.denial:  # refused actions are audited, as the API's are
            rt.audit.denial(exc.denial)
        reason = refusal_text(exc, move)
        if is_htmx():
            response = make_response(render_template("_board_refusal.html", reason=reason), exc.status)
            return response
        flash(reason, "error")
        return redirect_to(back)
    if isinstance(moved, ApprovalPending):  # the card stays in its column, marked as awaiting approval
        sent = _("Sent for approval: %(move)s.", move=label(move.label, move.name))
        if is_htmx():
            response = make_response(render_template("_board_columns.html",
                                                      **_context(board, read_board(board, actor))))
            response.headers[NOTICE_HEADER] = quote(sent)  # board.js says it (a header is Latin-1: quoted)
            return response
        flash(sent, "success")
        return redirect_to(back)
    if is_htmx():
        return render_template("_board_columns.html", **_context(board, read_board(board, actor)))
    flash(_("Moved to “%(state)s”", state=_state_label(board, move.to)), "success")
    return redirect_to(back)


def _state_label(board: Board, state: str) -> str:
    field = board.entity.fields[board.workflow.field]
    option = next((o for o in field.options if str(o.value) == state), None)
    return label(option.label, state) if option else state
