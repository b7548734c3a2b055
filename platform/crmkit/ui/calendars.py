"""The calendar (/app/<entity>/calendar): an entity's records on a month or
week grid by the date or datetime field a ``kind: calendar`` view names, in
the app's timezone, the user's own records first in each day.

The records of the shown range are one read of the query builder (a
date-range filter on the field, the view's filters, the user's scope).
Dragging a record to another day (calendar.js), or typing the day in the
record's small form (no script needed), reschedules it: an update of
the field through the records service, with the version the page showed, so
a change someone made meanwhile is refused, not overwritten. A moment keeps
its time of day.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_skeleton, get_day_names
from flask import abort, flash, make_response, render_template, request, url_for
from flask_babel import format_date
from flask_babel import gettext as _

from ..api.http import current_actor
from ..errors import BadRequest, CrmError, Forbidden
from ..metadata.spec import EntitySpec, FieldSpec, ViewSpec
from ..permissions import Access, Actor
from .cards import Card, build_cards, card_fields, in_scope, runtime, stored
from .i18n import locale
from .navigation import view_offered
from .security import is_htmx, redirect_to
from .shell import bp

MODES = ("month", "week")


@dataclass(frozen=True)
class Calendar:
    entity: EntitySpec
    view: ViewSpec
    field: FieldSpec
    fields: tuple[str, ...]


@dataclass
class Day:
    date: dt.date
    inside: bool
    today: bool
    items: list[tuple[Card, str]]  # a card and its time of day ('' for a date)


def calendar_views(entity: EntitySpec, access: Access) -> list[ViewSpec]:
    """The calendar views of an entity its user's roles see (whose ``where`` reads only what they see)."""
    rt = runtime()
    usable = rt.queries.tag_catalog.views(access, entity.name)
    return [v for v in rt.spec.views.values()
            if v.entity == entity.name and v.kind == "calendar" and v.date_field in entity.fields
            and view_offered(v, access) and v.name in usable]


def find_calendar(entity_name: str, access: Access, view_name: str | None) -> Calendar:
    rt = runtime()
    entity = rt.spec.entities.get(entity_name)
    if entity is None or not access.entity(entity_name).allows("read"):
        abort(404)
    views = calendar_views(entity, access)
    view = next((v for v in views if v.name == view_name), None if view_name else (views[0] if views else None))
    if view is None or view.date_field is None:
        abort(404)
    f = entity.fields[view.date_field]
    if f.name not in access.entity(entity.name).readable:  # a hidden or masked date places nothing
        abort(404)
    return Calendar(entity, view, f, card_fields(entity, view, leave_out=(f.name,), count=2))


def grid_range(mode: str, anchor: dt.date) -> tuple[dt.date, dt.date, dt.date]:
    """(first day shown, the day after the last, the first day of the period):
    whole weeks from Monday."""
    if mode == "week":
        start = anchor - dt.timedelta(days=anchor.weekday())
        return start, start + dt.timedelta(days=7), start
    first = anchor.replace(day=1)
    following = (first + dt.timedelta(days=32)).replace(day=1)
    start = first - dt.timedelta(days=first.weekday())
    end = following + dt.timedelta(days=(7 - following.weekday()) % 7)
    return start, end, first


def _bound(f: FieldSpec, day: dt.date, zone: ZoneInfo) -> str:
    """A day's start as a filter value: the date, or midnight in the app's timezone."""
    if f.type == "date":
        return day.isoformat()
    return dt.datetime.combine(day, dt.time(), zone).isoformat()


def local_day(value: Any, zone: ZoneInfo) -> dt.date:
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).astimezone(zone).date()
    return value


def read_calendar(calendar: Calendar, actor: Actor, start: dt.date, end: dt.date) -> tuple[dict[dt.date, list], bool]:
    """The records of the range by day (the user's own first, then by time),
    and whether there were more than one read shows."""
    rt = runtime()
    zone = ZoneInfo(rt.spec.timezone)
    access = rt.permissions.of(actor)
    ea = access.entity(calendar.entity.name)
    f = calendar.field
    limit = min(rt.spec.max_page_size, 200)
    # The view (its filters and ``where``) is the query builder's to apply, as for a list.
    args = [("view", calendar.view.name), (f"{f.name}__gte", _bound(f, start, zone)),
            (f"{f.name}__lt", _bound(f, end, zone)), ("sort", f.name), ("limit", str(limit))]
    try:
        list_request = rt.queries.parse_list(calendar.entity, args, access)
    except BadRequest:  # the view filters on what this user may not see
        abort(404)
    with rt.engine.connect() as conn:
        page = rt.queries.page(conn, calendar.entity, list_request, actor=actor)
        rows = page.mappings()
        cards = build_cards(conn, calendar.entity, rows, calendar.fields, ea, actor)
        movable = (in_scope(conn, calendar.entity, actor, [c.id for c in cards], "update")
                   if f.name in ea.writable else set())
    days: dict[dt.date, list] = {}
    for card in cards:
        value = stored(f, card.values.get(f.name))
        if value is None:
            continue
        card.moves = {"reschedule": {}} if card.id in movable else {}
        time_text = ""
        if isinstance(value, dt.datetime):
            local = (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).astimezone(zone)
            time_text = local.strftime("%H:%M")
        days.setdefault(local_day(value, zone), []).append((card, time_text))
    for items in days.values():
        items.sort(key=lambda item: (not item[0].own, item[1]))
    return days, page.next is not None


def _anchor(text: str | None, zone: ZoneInfo) -> dt.date:
    if text:
        try:
            return dt.date.fromisoformat(text[:10])
        except ValueError:
            abort(404)
    return dt.datetime.now(zone).date()


@bp.get("/<entity_name>/calendar")
def calendar_page(entity_name: str):
    rt = runtime()
    actor = current_actor()
    access = rt.permissions.of(actor)
    calendar = find_calendar(entity_name, access, request.args.get("view"))
    zone = ZoneInfo(rt.spec.timezone)
    mode = request.args.get("mode", "month")
    if mode not in MODES:
        mode = "month"
    anchor = _anchor(request.args.get("date"), zone)
    start, end, first = grid_range(mode, anchor)
    days, more = read_calendar(calendar, actor, start, end)
    today = dt.datetime.now(zone).date()
    grid = [Day(start + dt.timedelta(days=n), mode == "week" or (start + dt.timedelta(days=n)).month == first.month,
                start + dt.timedelta(days=n) == today, days.get(start + dt.timedelta(days=n), []))
            for n in range((end - start).days)]
    if mode == "week":
        previous, following = anchor - dt.timedelta(days=7), anchor + dt.timedelta(days=7)
        heading = _("Week of %(date)s", date=format_date(start, "medium"))
    else:
        previous = (first - dt.timedelta(days=1)).replace(day=1)
        following = (first + dt.timedelta(days=32)).replace(day=1)
        heading = format_skeleton("yMMMM", first, locale=locale())
    weekdays = [get_day_names("abbreviated", locale=locale())[n] for n in range(7)]
    return render_template("calendar.html", calendar=calendar, entity=calendar.entity, grid=grid, mode=mode,
                           heading=heading, previous=previous, following=following, today=today, more=more,
                           weekdays=weekdays, anchor=anchor, views=calendar_views(calendar.entity, access))


def _new_value(calendar: Calendar, old: Any, day: dt.date) -> str:
    """The field's value on another day: a date, or the same time of day on that day."""
    if calendar.field.type == "date" or old is None:
        if calendar.field.type == "date":
            return day.isoformat()
        zone = ZoneInfo(runtime().spec.timezone)
        return dt.datetime.combine(day, dt.time(9), zone).isoformat()
    zone = ZoneInfo(runtime().spec.timezone)
    local = (old if old.tzinfo else old.replace(tzinfo=dt.UTC)).astimezone(zone)
    return dt.datetime.combine(day, local.time(), zone).isoformat()


def reschedule_refusal(exc: CrmError) -> str:
    if exc.code == "stale_version":
        return _("Someone else changed this record meanwhile; reload the calendar and try again")
    if isinstance(exc, Forbidden):
        return _("Your role does not allow you to change this record")
    return _("The record could not be rescheduled: %(reason)s", reason=exc.message)


@bp.post("/<entity_name>/calendar/<int:record_id>/move")
def reschedule(entity_name: str, record_id: int):
    """Move a record to another day (an update of the calendar's field)."""
    rt = runtime()
    actor = current_actor()
    calendar = find_calendar(entity_name, rt.permissions.of(actor), request.form.get("view"))
    htmx = is_htmx()
    back = url_for("crmkit_app.calendar_page", entity_name=entity_name, view=calendar.view.name,
                   date=request.form.get("date") or None, mode=request.form.get("mode") or None)
    try:
        day = dt.date.fromisoformat(request.form.get("date", ""))
    except ValueError:
        return make_response(render_template("_board_refusal.html", reason=_("Choose a day to move the record to")),
                             400)
    version_text = request.form.get("version", "")
    version = int(version_text) if version_text.isdigit() else None
    with rt.engine.connect() as conn:
        row = rt.queries.read_one(conn, calendar.entity, record_id, actor=actor)
    if row is None:
        abort(404)
    old = stored(calendar.field, row[calendar.field.column])
    try:
        record = rt.records.update(entity_name, record_id, {calendar.field.name: _new_value(calendar, old, day)},
                                   actor, version=version)
    except CrmError as exc:
        if exc.status == 404:
            abort(404)
        if isinstance(exc, Forbidden) and exc.denial:
            rt.audit.denial(exc.denial)
        reason = reschedule_refusal(exc)
        if htmx:
            return make_response(render_template("_board_refusal.html", reason=reason), exc.status)
        flash(reason, "error")
        return redirect_to(back)
    if htmx:
        response = make_response(render_template("_board_refusal.html", reason=_("Rescheduled")), 200)
        response.headers["X-Crmkit-Version"] = str(record["version"])
        return response
    flash(_("Rescheduled"), "success")
    return redirect_to(back)
