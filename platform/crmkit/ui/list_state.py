"""What a list URL says (crmkit.ui.lists): the screen's arguments beside the
query builder's list grammar, the links that change one of them, and the
state a list page is in (its view, filters, columns, scope tab)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote_plus

from ..metadata.spec import EntitySpec, ViewSpec
from ..permissions import Access, EntityAccess
from ..runtime import Runtime
from .i18n import locale
from .navigation import view_offered

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
