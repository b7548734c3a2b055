"""List statements: a ``ListRequest`` as SQL within the caller's data scope
(filters, search, tags, segments, the columns they may see), keyset paging
(order, the rows after a cursor), counts, sums and exports. Statements are
built once per shape and kept; a request binds its values as parameters."""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..errors import BadRequest
from ..expressions import Context, to_sql
from ..metadata.spec import DIRECTORY_ENTITIES, EntitySpec, FieldSpec
from ..permissions import ALWAYS_VISIBLE, POOL, Access, Actor, EntityAccess, scope_params, share_for
from ..sqltypes import UTCDateTime, UTCDateTimeText
from ..tagging import tag_condition
from .grammar import Filter, ListGrammar, ListRequest
from .sources import DELETED, LIVE, NOT_NULL, Source

#: Statements kept at most (per shape); past this the cache starts afresh.
MAX_STATEMENTS = 1024
#: LIKE patterns are escaped with this character (as SQLAlchemy's autoescape does).
ESCAPE = "/"


@dataclass(frozen=True)
class Within:
    """A condition every row of a list meets besides the request's (the
    records related to one record, the entries of one record's history). The
    condition is built once per ``key``, its values bound as ``params``."""

    key: Hashable
    build: Callable[[], sa.ColumnElement[bool]]
    params: Mapping[str, Any]


@dataclass
class Page:
    """One page of a list: rows as tuples of ``columns`` (only the columns of
    fields the caller may see, and the sort's), the next page's cursor, and the
    total count when asked for."""

    rows: Sequence[Sequence[Any]]
    columns: tuple[str, ...]
    next: str | None
    count: int | None

    def mappings(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row)) for row in self.rows]


def _like(text: str) -> str:
    """Text matched literally by LIKE (``%`` and ``_`` are not wildcards)."""
    return text.replace(ESCAPE, ESCAPE * 2).replace("%", ESCAPE + "%").replace("_", ESCAPE + "_")


class Statements(ListGrammar):
    """Lists as SQL: pages, counts, sums and exports."""

    def _cached(self, key: Hashable, build: Callable[[], Any], fresh: bool = False) -> Any:
        if fresh:  # a segment binds now() and today() into its statement: built for each request
            return build()
        found = self._statements.get(key)
        if found is None:
            if len(self._statements) >= MAX_STATEMENTS:
                self._statements.clear()
            found = self._statements[key] = build()
        return found

    def columns(self, source: EntitySpec | Source, ea: EntityAccess, fields: frozenset[str] | None = None,
                sort: Iterable[tuple[FieldSpec, bool]] = ()) -> tuple[str, ...]:
        """The columns a read selects, in spec order: those of the fields the
        caller sees (of ``fields`` when given), and those the sort needs for
        the cursor. Hidden fields are never read from the database."""
        spec = self.source(source).spec
        names = ea.visible if fields is None else fields & ea.visible
        needed = {f.name for f, _ in sort} | set(ALWAYS_VISIBLE)  # a record is addressed by them, whoever reads
        return tuple(f.column for f in spec.fields.values() if f.name in names or f.name in needed)

    def _text_columns(self, source: Source, columns: Iterable[str]) -> frozenset[str]:
        """Those of the columns a list reads as their API text (timestamps on SQLite)."""
        if self.dialect != "sqlite":
            return frozenset()
        return frozenset(c for c in columns if isinstance(source.table.c[c].type, UTCDateTime))

    def _selected(self, source: Source, columns: tuple[str, ...]) -> list[sa.ColumnElement[Any]]:
        text = self._text_columns(source, columns)
        return [sa.type_coerce(source.table.c[c], UTCDateTimeText()).label(c) if c in text else source.table.c[c]
                for c in columns]

    def _rows(self, source: Source) -> list[sa.ColumnElement[bool]]:
        if source.rows == LIVE:
            return [source.table.c.deleted_at.is_(None)]
        if source.rows == DELETED:
            return [source.table.c.deleted_at.is_not(None)]
        return []

    def _shape(self, source: Source, request: ListRequest, access: Access, action: str, shared: bool,
               within: Within | None) -> tuple[Any, ...]:
        """What makes a list's statement differ from another's (its values do not)."""
        filters = tuple((f.field.name, f.op, f.value if f.op == "isnull" else None,
                         None if f.via is None else (f.via.name, access.entity(f.via.to or "").scope("read")))
                        for f in request.filters)
        kinds = access.entity(source.guard).scope(action) if source.guard is not None else None
        tags = tuple((op, len(names)) for op, names in request.tags)
        return (source.key, filters, request.search_fields if request.search else (), kinds, action, shared,
                None if within is None else within.key, tags)

    def _conditions(self, source: Source, request: ListRequest, actor: Actor,
                    within: Within | None) -> list[sa.ColumnElement[bool]]:
        """What every row of the list meets (no scope, no cursor), values as parameters."""
        table = source.table
        conditions = self._rows(source)
        if within is not None:
            conditions.append(within.build())
        for n, flt in enumerate(request.filters):
            conditions.append(self.condition(source, flt, actor, f"_f{n}"))
        if request.search:
            text = sa.bindparam("_q", type_=sa.String())
            conditions.append(sa.or_(*(table.c[source.spec.fields[n].column].icontains(text, escape=ESCAPE)
                                       for n in request.search_fields)))
        for n, (op, _names) in enumerate(request.tags):
            conditions.append(tag_condition(self.tables, table, source.spec.name, op, f"_t{n}"))
        if request.where is not None:  # a segment: within the caller's scope of every record it reads
            context = Context.at(self.spec.timezone, user_id=actor.id)
            conditions.append(to_sql(request.where, self.tables, dialect=self.dialect, context=context,
                                     scope=lambda entity: self.scope(entity, actor), table=table))
        return conditions

    def _params(self, request: ListRequest, actor: Actor, within: Within | None) -> dict[str, Any]:
        params: dict[str, Any] = scope_params(actor)
        for n, flt in enumerate(request.filters):
            if flt.op != "isnull":
                params[f"_f{n}"] = self._value(flt)
        if request.search:
            params["_q"] = _like(request.search)
        params.update((f"_t{n}", list(names)) for n, (_op, names) in enumerate(request.tags))
        if request.cursor is not None:
            params.update((f"_k{n}", value) for n, value in enumerate(request.cursor))
        if within is not None:
            params.update(within.params)
        return params

    def _value(self, flt: Filter) -> Any:
        if flt.field.type == "multi_enum":  # contains: the list holds the option
            return json.dumps([flt.value]) if self.dialect == "postgresql" else flt.value
        if flt.op in ("contains", "startswith"):
            return _like(flt.value)
        if flt.op == "within":
            from .. import regions

            return _like(regions.prefix(flt.value))
        return flt.value

    def condition(self, source: EntitySpec | Source, flt: Filter, actor: Actor, name: str) -> sa.ColumnElement[bool]:
        """A filter as SQL, its value the parameter ``name``."""
        source = self.source(source)
        if flt.via is not None:  # among the referenced records the actor may read
            to = flt.via.to or ""
            target = self.scopes.table(to)  # an entity's, or the users' or teams' table
            inner = sa.select(target.c.id).where(self._predicate(target, flt, name))
            if to not in DIRECTORY_ENTITIES:  # users and teams are disabled, never deleted
                inner = inner.where(target.c.deleted_at.is_(None))
            scope = self.scope(to, actor)
            if scope is not None:
                inner = inner.where(scope)
            return source.table.c[flt.via.column].in_(inner)
        return self._predicate(source.table, flt, name)

    def _predicate(self, table: sa.Table, flt: Filter, name: str) -> sa.ColumnElement[bool]:
        column = table.c[flt.field.column]
        op = flt.op
        if op == "isnull":
            return column.is_(None) if flt.value else column.is_not(None)
        if flt.field.type == "multi_enum":  # contains: the list holds the option
            return self._json_contains(column, name)
        if op in ("in", "nin"):
            values: sa.BindParameter[Any] = sa.bindparam(name, expanding=True)
            return column.in_(values) if op == "in" else sa.or_(column.not_in(values), column.is_(None))
        value: sa.BindParameter[Any] = sa.bindparam(name)
        if op == "eq":
            return column == value
        if op == "ne":
            return sa.or_(column != value, column.is_(None))
        if op == "gt":
            return column > value
        if op == "gte":
            return column >= value
        if op == "lt":
            return column < value
        if op == "lte":
            return column <= value
        text = sa.bindparam(name, type_=sa.String())
        if op == "contains":
            return column.icontains(text, escape=ESCAPE)
        if op == "startswith":
            return column.istartswith(text, escape=ESCAPE)
        if op == "within":
            return column.startswith(text, escape=ESCAPE)
        raise BadRequest(f"unknown operator {op}")

    def _json_contains(self, column: sa.Column[Any], name: str) -> sa.ColumnElement[bool]:
        if self.dialect == "postgresql":
            contains: sa.ColumnElement[bool] = column.op("@>")(sa.cast(sa.bindparam(name, type_=sa.String()),
                                                                       column.type))
            return contains
        each = sa.func.json_each(column).table_valued("value")
        return sa.exists(sa.select(1).select_from(each).where(each.c.value == sa.bindparam(name)))

    def page_statement(self, conn: sa.Connection, source: EntitySpec | Source, request: ListRequest, *, actor: Actor,
                       action: str = "read", within: Within | None = None) -> tuple[sa.Select[Any], dict[str, Any]]:
        """The statement of a list page and its parameters (to run or explain)."""
        query, params, _columns = self._page_query(conn, self.source(source), request, actor, action, within)
        return query, params

    def _page_query(self, conn: sa.Connection, source: Source, request: ListRequest, actor: Actor, action: str,
                    within: Within | None) -> tuple[sa.Select[Any], dict[str, Any], tuple[str, ...]]:
        """The statement of a list page, its parameters and the columns it
        selects: one database round trip. For a user with records shared with them, the page is the union
        of two ordered, limited branches (their scope; shared and outside it):
        one predicate with an OR would make the database sort every record in
        scope to return one page."""
        access = self.permissions.of(actor)
        shared = action == "read" and source.shareable and self.has_shares(conn, source.guard or "", actor)
        columns = self.columns(source, self.reader(source, access), request.fields, request.sort)
        sort = tuple((f.name, descending) for f, descending in request.sort)
        cursor = None if request.cursor is None else tuple(value is None for value in request.cursor)
        key = ("page", self._shape(source, request, access, action, shared, within), columns, sort, cursor)

        def build() -> sa.Select[Any]:
            table = source.table
            conditions = self._conditions(source, request, actor, within)
            selected = self._selected(source, columns)
            scope = self._scope(source, actor, action, shares=False)
            kinds = access.entity(source.guard).scope(action) if source.guard is not None else frozenset()
            if POOL in kinds and len(kinds) > 1 and "owner_id" in table.c:
                # The pool (crmkit.pool) as a branch of its own, disjoint from the rest of the scope (an
                # owner is never NULL): two index ranges read in order, not every record sorted.
                rest = self.scopes.predicate(source.guard or "", kinds - {POOL})
                branches = [sa.select(*selected).where(*conditions, *(() if rest is None else (rest,))),
                            sa.select(*selected).where(*conditions, table.c.owner_id.is_(None))]
            else:
                branches = [sa.select(*selected).where(*conditions, *(() if scope is None else (scope,)))]
            if shared:  # disjoint from the first branch (NULL counts as outside)
                outside = () if scope is None else (sa.not_(sa.func.coalesce(scope, sa.false())),)
                branches.append(sa.select(*selected).where(
                    *conditions, self.scopes.shared(source.guard or "", share_for(action) or "read"), *outside))
            limited = []
            for branch in branches:
                if request.cursor is not None:
                    branch = branch.where(self._after(table, request.sort, request.cursor, source.not_null))
                limited.append(branch.order_by(*self._order(table, request.sort, source.not_null))
                               .limit(sa.bindparam("_limit", type_=sa.Integer())))
            if len(limited) == 1:
                return limited[0]
            both = sa.union_all(*(sa.select(branch.subquery()) for branch in limited)).subquery()
            return (sa.select(both).order_by(*self._order(both, request.sort, source.not_null))
                    .limit(sa.bindparam("_limit", type_=sa.Integer())))

        params = self._params(request, actor, within)
        params["_limit"] = request.limit + 1
        return self._cached(key, build, request.where is not None), params, columns

    def page(self, conn: sa.Connection, source: EntitySpec | Source, request: ListRequest, *, actor: Actor,
             action: str = "read", within: Within | None = None) -> Page:
        """A page of a list within the actor's scope for the action, the count
        of the whole list when asked for."""
        source = self.source(source)
        query, params, columns = self._page_query(conn, source, request, actor, action, within)
        rows = conn.execute(query, params).all()
        next_cursor = None
        if len(rows) > request.limit:
            rows = rows[: request.limit]
            last = rows[-1]
            next_cursor = self._cursor(request.sort, [last[columns.index(f.column)] for f, _ in request.sort],
                                       self._text_columns(source, columns))
        total = None
        if request.count:
            total = conn.execute(self._count_statement(source, request, actor, action, within), params).scalar_one()
        return Page(rows, columns, next_cursor, total)

    def _count_statement(self, source: Source, request: ListRequest, actor: Actor, action: str,
                         within: Within | None) -> sa.Select[Any]:
        """How many rows the list has (every page): one COUNT, which the
        partial indexes of live records can answer without the table."""
        access = self.permissions.of(actor)
        key = ("count", self._shape(source, request, access, action, False, within))

        def build() -> sa.Select[Any]:
            scope = self._scope(source, actor, action, shares=source.shareable)
            conditions = self._conditions(source, request, actor, within)
            if scope is not None:
                conditions.append(scope)
            return sa.select(sa.func.count()).select_from(source.table).where(*conditions)

        query: sa.Select[Any] = self._cached(key, build, request.where is not None)
        return query

    def total(self, conn: sa.Connection, entity: EntitySpec, request: ListRequest, name: str, *,
              actor: Actor) -> Any:
        """The sum of a number field over the whole list (every page) within the
        actor's read scope: a board column's amount. None when the field is not
        readable for the actor (a masked or hidden amount is not summed for them)."""
        source = self.source(entity)
        access = self.permissions.of(actor)
        if name not in self.reader(source, access).readable:
            return None
        column = source.table.c[source.spec.fields[name].column]
        key = ("total", name, self._shape(source, request, access, "read", False, None))

        def build() -> sa.Select[Any]:
            conditions = self._conditions(source, request, actor, None)
            scope = self._scope(source, actor, "read", shares=source.shareable)
            if scope is not None:
                conditions.append(scope)
            return sa.select(sa.func.sum(column)).where(*conditions)

        found = conn.execute(self._cached(key, build), self._params(request, actor, None)).scalar_one()
        return found if found is not None else 0

    def export_statement(self, entity: EntitySpec, request: ListRequest, actor: Actor,
                         limit: int) -> tuple[sa.Select[Any], dict[str, Any]]:
        """The records of a list request within the actor's export scope, in the
        list's order, without pages: the statement and its parameters."""
        source = self.source(entity)
        access = self.permissions.of(actor)
        columns = self.columns(source, self.reader(source, access), request.fields)
        sort = tuple((f.name, descending) for f, descending in request.sort)
        key = ("export", self._shape(source, request, access, "export", False, None), columns, sort)

        def build() -> sa.Select[Any]:
            table = source.table
            conditions = self._conditions(source, request, actor, None)
            scope = self._scope(source, actor, "export", shares=True)
            if scope is not None:
                conditions.append(scope)
            # Stored values (not API text): an export formats them for people.
            return (sa.select(*(table.c[c] for c in columns)).where(*conditions)
                    .order_by(*self._order(table, request.sort, source.not_null))
                    .limit(sa.bindparam("_limit", type_=sa.Integer())))

        params = self._params(request, actor, None)
        params["_limit"] = limit
        return self._cached(key, build, request.where is not None), params

    def _order(self, table: sa.FromClause, sort: Sequence[tuple[FieldSpec, bool]],
               not_null: frozenset[str] = NOT_NULL) -> list[sa.ColumnElement[Any]]:
        order: list[sa.ColumnElement[Any]] = []
        for f, descending in sort:
            column = table.c[f.column]
            if f.name in not_null:
                order.append(column.desc() if descending else column.asc())
            else:  # NULLs last in both directions, on every database
                order.append(column.is_(None).asc())
                order.append(column.desc() if descending else column.asc())
        return order

    def _after(self, table: sa.FromClause, sort: Sequence[tuple[FieldSpec, bool]], values: list[Any],
               not_null: frozenset[str] = NOT_NULL) -> sa.ColumnElement[bool]:
        """Rows after the cursor's (its values are the parameters ``_k0``, ``_k1``...;
        which of them are NULL is part of the statement)."""
        columns = [table.c[f.column] for f, _ in sort]
        keys = [sa.bindparam(f"_k{n}", type_=column.type) for n, column in enumerate(columns)]
        directions = {d for _, d in sort}
        if all(f.name in not_null for f, _ in sort) and len(directions) == 1:
            left, right = sa.tuple_(*columns), sa.tuple_(*keys)
            return left < right if directions == {True} else left > right
        clauses = []
        for i, ((f, descending), column, value) in enumerate(zip(sort, columns, values)):
            equal_prefix = [(c.is_(None) if v is None else c == k)
                            for c, v, k in zip(columns[:i], values[:i], keys[:i])]
            if value is None:
                continue  # nothing sorts after NULL on this key (NULLs last)
            beyond = column < keys[i] if descending else column > keys[i]
            if f.name not in not_null:
                beyond = sa.or_(beyond, column.is_(None))
            clauses.append(sa.and_(*equal_prefix, beyond))
        return sa.or_(*clauses) if clauses else sa.false()
