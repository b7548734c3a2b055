"""What every console view shares: the admin-only check, the shell around
each page, the list grammar of the API (filters, sort, cursor) for every
list, and errors of the services shown to the person who caused them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

import wtforms
from flask import current_app, flash, g, request
from flask_admin import AdminIndexView, BaseView, expose
from flask_admin.model import BaseModelView
from flask_babel import gettext as _
from flask_babel import lazy_gettext

from ...api.http import current_actor
from ...errors import CrmError, Forbidden
from ...permissions import Access, Actor
from ...query import ListRequest, Page, Source
from ...runtime import Runtime
from ...sqltypes import UTCDateTime

#: The console's sections (endpoint, label), in the menu's order; the data views follow.
SECTIONS = (("crmkit_admin_users.index_view", lazy_gettext("Users")),
            ("crmkit_admin_teams.index_view", lazy_gettext("Teams")),
            ("crmkit_admin_tokens.index_view", lazy_gettext("API tokens")),
            ("crmkit_admin_audit.index_view", lazy_gettext("Audit trail")),
            ("crmkit_admin_recycle_bin.index_view", lazy_gettext("Recycle bin")))


def runtime() -> Runtime:
    return current_app.extensions["crmkit"]


def actor() -> Actor:
    return current_actor()


def access() -> Access:
    return runtime().permissions.of(current_actor())


def shell_context() -> dict[str, Any]:
    """What the console's layout needs: the app, the user, the CSRF token of
    their session (forms carry it), the sections and the entities' data views."""
    rt = runtime()
    readable = [entity for entity in rt.spec.entities.values() if access().entity(entity.name).allows("read")]
    return {"spec": rt.spec, "actor": actor(), "csrf_token": g.get("crmkit_csrf", ""), "is_admin": True,
            "console_sections": SECTIONS, "console_entities": readable}


class ConsoleMixin:
    """Admin role only (the gate in crmkit.ui.admin answers first; this is the
    second lock), the shell around every page, our messages."""

    def is_accessible(self) -> bool:
        from . import is_console_admin

        return is_console_admin()

    def inaccessible_callback(self, name: Any, **kwargs: Any) -> Any:
        from . import forbidden_page

        return forbidden_page()

    def render(self, template: str, **kwargs: Any) -> str:
        return super().render(template, **shell_context(), **kwargs)  # type: ignore[misc]


class ConsoleView(ConsoleMixin, BaseView):
    """A console page that is not a model view (tokens, audit trail, recycle bin)."""


class ConsoleHome(ConsoleMixin, AdminIndexView):
    def __init__(self, url: str) -> None:
        super().__init__(name=lazy_gettext("Admin console"), endpoint="crmkit_admin", url=url,
                         template="admin/index.html")
        self.static_folder = None  # Flask-Admin's Bootstrap and jQuery files: our pages use our own

    @expose()
    def index(self) -> str:
        return self.render("admin/index.html")


# ---------------------------------------------------------------- errors

def report(error: CrmError) -> dict[str, list[str]]:
    """Flash a service's refusal or complaint; returns its errors per field
    (to show next to the inputs). A refusal is audited as the API's are."""
    if isinstance(error, Forbidden):
        if error.denial:
            runtime().audit.denial(error.denial)
        flash(_("Refused: %(reason)s", reason=error.message), "error")
    else:
        flash(_("Not saved: %(reason)s", reason=error.message), "error")
    details = error.details if isinstance(error.details, Mapping) else {}
    return {str(k): [str(m) for m in (v if isinstance(v, list) else [v])] for k, v in details.items()}


# ---------------------------------------------------------------- lists

#: Query parameters of a console page that are not the list's (the API's grammar is the rest).
PAGE_PARAMETERS = frozenset({"entity", "user"})


def list_args(extra: Iterable[tuple[str, str]] = (), skip: Iterable[str] = ()) -> list[tuple[str, str]]:
    """The list parameters of this request (empty values dropped: an empty
    filter input means no filter), plus ``extra``."""
    skipped = PAGE_PARAMETERS | set(skip)
    args = [(k, v) for k, v in request.args.items(multi=True) if k not in skipped and v != ""]
    return args + list(extra)


def read_page(source: Source, args: list[tuple[str, str]], *,
              run: Any = None) -> tuple[Page | None, ListRequest | None]:
    """A page of a list through the query builder, within the admin's scope;
    a mistake in the parameters is flashed and gives no page."""
    rt = runtime()
    try:
        list_request = rt.queries.parse_list(source, args, access())
        with rt.engine.connect() as conn:
            if run is not None:
                return run(conn, list_request), list_request
            return rt.queries.page(conn, source, list_request, actor=actor()), list_request
    except CrmError as exc:
        flash(_("The list could not be read: %(reason)s", reason=exc.message), "error")
        return None, None


def next_url(page: Page | None) -> str | None:
    """This page's URL with the next page's cursor."""
    if page is None or not page.next:
        return None
    args = [(k, v) for k, v in request.args.items(multi=True) if k != "cursor"] + [("cursor", page.next)]
    return f"{request.path}?{urlencode(args)}"


def first_url() -> str | None:
    """This page's URL without a cursor (when on a later page)."""
    if "cursor" not in request.args:
        return None
    args = [(k, v) for k, v in request.args.items(multi=True) if k != "cursor"]
    return request.path + (f"?{urlencode(args)}" if args else "")


def sort_url(name: str, current: list[tuple[Any, bool]]) -> str:
    """This page sorted by a column (again: the other way), from the first page."""
    descending = bool(current) and current[0][0].name == name and not current[0][1]
    args = [(k, v) for k, v in request.args.items(multi=True) if k not in ("cursor", "sort")]
    args.append(("sort", ("-" if descending else "") + name))
    return f"{request.path}?{urlencode(args)}"


# ---------------------------------------------------------------- model views

class Submitted:
    """A submitted form as the services take it: ``data`` by field name
    (what a model view's create_model and update_model are given)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data


class ServiceModelView(ConsoleMixin, BaseModelView):
    """A Flask-Admin model view whose rows come from the query builder and
    whose writes go to a service (never to a table). Subclasses name the
    columns and implement get_list, get_one, create_model, update_model and
    delete_model with the acting user; those raise the service's CrmError,
    which the pages show."""

    column_list: Any = ("id",)
    can_view_details = True
    # Flask-Admin's mass delete and exports would bypass the pages' checks and
    # messages: deleting is one record at a time here, exports are the API's.
    action_disallowed_list = ["delete"]
    can_export = False

    def __init__(self, name: Any, endpoint: str, url: str) -> None:
        super().__init__(dict, name=name, endpoint=endpoint, url=url)

    # Flask-Admin's routes these pages do not use (mass actions, AJAX edits and
    # lookups, exports, its delete form): not routed, so nothing reaches the
    # services past the pages' own checks and messages. (A plain method
    # replaces an exposed one and takes its route away.)
    def action_view(self) -> Any:
        raise NotImplementedError

    def ajax_lookup(self) -> Any:
        raise NotImplementedError

    def ajax_update(self) -> Any:
        raise NotImplementedError

    def export(self, export_type: str) -> Any:
        raise NotImplementedError

    def delete_view(self) -> Any:
        raise NotImplementedError

    def get_pk_value(self, model: Any) -> Any:
        return model["id"]

    def scaffold_list_columns(self) -> list[str]:
        return list(self.column_list)

    def scaffold_sortable_columns(self) -> dict[str, str]:
        return {}

    def init_search(self) -> bool:
        return False

    def scaffold_filters(self, name: Any) -> None:
        return None

    def scaffold_form(self) -> type[wtforms.Form]:
        # The pages render their inputs from the spec and the access of the
        # user; the services validate (one set of rules, the API's).
        return wtforms.Form

    def get_list(self, page: int | None, sort_field: Any, sort_desc: bool, search: Any, filters: Any,
                 page_size: int | None = None) -> tuple[int | None, list[Any]]:
        """Flask-Admin's list contract (numbered pages): the first page only;
        the console's lists page by cursor (index_view)."""
        found, _request = read_page(self.source(), [("limit", str(page_size or self.page_size))])
        return None, page_rows(self.source(), found)

    def source(self) -> Source:
        raise NotImplementedError


def page_rows(source: Source, page: Page | None) -> list[dict[str, Any]]:
    """A page's rows by column, moments as datetimes (SQLite lists read them
    as their API text), ready for the display filters."""
    if page is None:
        return []
    moments = [c for c in page.columns if isinstance(source.table.c[c].type, UTCDateTime)]
    rows = page.mappings()
    for row in rows:
        for column in moments:
            if isinstance(row[column], str):
                row[column] = dt.datetime.fromisoformat(row[column].replace("Z", "+00:00"))
    return rows
