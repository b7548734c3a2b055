"""The query builder: every read of records goes through here.

It turns list parameters (filters, search, sort, cursor, sparse fields) into
one SQL statement on the entity's table, always excluding records in the
recycle bin. Keyset pagination: the cursor carries the sort values of the last
row, so page 2,000 costs what page one does.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from .errors import BadRequest
from .fieldtypes import MAX_ID, FieldType, FieldValueError, whole_number
from .metadata.problems import did_you_mean
from .metadata.spec import AppSpec, EntitySpec, FieldSpec
from .permissions import Access, EntityAccess, Permissions, ScopeSQL, scope_params, share_for
from .tables import Tables

OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "contains", "startswith", "isnull", "within")
LIST_PARAMETERS = frozenset({"limit", "cursor", "sort", "fields", "count", "q", "tag"})
MAX_IN_VALUES = 500
#: Columns that are never NULL, so keyset comparisons need no NULL handling.
NOT_NULL = frozenset({"id", "version", "created_at", "updated_at"})


@dataclass(frozen=True)
class Filter:
    field: FieldSpec
    op: str
    value: Any
    via: FieldSpec | None = None  # a ref field for dotted filters (customer.level=gold)


@dataclass
class ListRequest:
    filters: list[Filter] = field(default_factory=list)
    sort: list[tuple[FieldSpec, bool]] = field(default_factory=list)  # (field, descending)
    limit: int = 50
    cursor: list | None = None
    fields: frozenset | None = None
    count: bool = False
    search: str | None = None
    search_fields: tuple[str, ...] = ()


def _bool_param(name: str, text: str) -> bool:
    """true or false, as the OpenAPI document's boolean parameters are written."""
    if text == "true":
        return True
    if text == "false":
        return False
    raise BadRequest(f"{name} must be true or false", {name: [f"'{text}' is not true or false"]},
                     code="invalid_parameter")


class QueryBuilder:
    def __init__(self, spec: AppSpec, tables: Tables, field_types: Mapping[str, FieldType], tz: dt.tzinfo,
                 dialect: str = "sqlite", permissions: Permissions | None = None) -> None:
        self.spec = spec
        self.dialect = dialect
        self.tables = tables
        self.field_types = field_types
        self.tz = tz
        self.permissions = permissions or Permissions(spec, field_types)
        self.scopes = ScopeSQL(tables)
        self._fetch_statements: dict[tuple, sa.Select] = {}

    # -------------------------------------------------------------- scopes

    def scope(self, entity_name: str, actor, action: str = "read", *,
              shares: bool = True) -> sa.ColumnElement[bool] | None:
        """The actor's data scope for an action on an entity, as a predicate
        (None: every record), with the actor's ids as bound parameters
        (execute with ``scope_params(actor)``). ``shares=False`` leaves out the
        records shared with the actor (for one who has none: see has_shares)."""
        ea = self.permissions.of(actor).entity(entity_name)
        if action == "share":  # sharing a record: the update scope of the roles, not of shares
            return self.scopes.predicate(entity_name, ea.scope("update"))
        return self.scopes.predicate(entity_name, ea.scope(action), share_for(action) if shares else None)

    def has_shares(self, conn: sa.Connection, entity_name: str, actor) -> bool:
        """Whether any record of the entity is shared with the actor (one probe
        of the share table's key). A list leaves the share branch out of its
        scope otherwise: the OR would make the database sort every record in
        scope instead of reading the page in index order."""
        if actor.id is None or "all" in self.permissions.of(actor).entity(entity_name).scope("read"):
            return False
        shares = self.tables.shares
        return conn.execute(sa.select(shares.c.record_id).where(
            shares.c.entity == entity_name, shares.c.user_id == actor.id).limit(1)).first() is not None

    # -------------------------------------------------------------- parsing

    def parse_list(self, entity: EntitySpec, args: Iterable[tuple[str, str]], access: Access) -> ListRequest:
        """Parse list query parameters; every mistake is a 400 naming the parameter.

        Fields the caller may not see do not exist for them: naming one in
        fields, sort or a filter is the same 400 as a field that does not
        exist. Masked fields are shown but cannot be filtered, sorted or
        searched on (that would reveal them)."""
        ea = access.entity(entity.name)
        request = ListRequest(limit=entity.list.page_size)
        sort_text = None
        cursor_text = None
        for key, value in args:
            if "\x00" in value:  # no database can compare with it
                raise BadRequest(f"{key} must not contain NUL characters", {key: ["contains a NUL character"]},
                                 code="invalid_parameter")
            if key == "limit":
                request.limit = self._limit(value)
            elif key == "cursor":
                cursor_text = value
            elif key == "sort":
                sort_text = value
            elif key == "fields":
                request.fields = self._fields(entity, value, ea)
            elif key == "count":
                request.count = _bool_param("count", value)
            elif key == "q":
                request.search = value.strip() or None
            elif key == "tag":
                raise BadRequest("filtering by tag needs the tags module", {"tag": ["tags are not enabled"]},
                                 code="invalid_parameter")
            else:
                request.filters.append(self.parse_filter(entity, key, value, access))
        request.sort = self._sort(entity, sort_text, ea)
        if cursor_text is not None:
            request.cursor = self._decode_cursor(entity, request.sort, cursor_text)
        if request.search:
            request.search_fields = tuple(n for n in entity.list.search if n in ea.readable)
            if not request.search_fields:
                raise BadRequest(f"{entity.name} has no search fields (list.search in its config)",
                                 {"q": ["search is not configured for this entity"]}, code="invalid_parameter")
        return request

    def _limit(self, text: str) -> int:
        maximum = self.spec.max_page_size
        try:
            limit = whole_number(text)
        except FieldValueError:
            raise BadRequest("limit must be a whole number", {"limit": [f"'{text[:20]}' is not a whole number"]},
                             code="invalid_parameter") from None
        if limit < 1 or limit > maximum:
            raise BadRequest(f"limit must be between 1 and {maximum}", {"limit": [f"must be between 1 and {maximum}"]},
                             code="invalid_parameter")
        return limit

    def fields_param(self, entity: EntitySpec, text: str, ea: EntityAccess) -> frozenset:
        return self._fields(entity, text, ea)

    def _fields(self, entity: EntitySpec, text: str, ea: EntityAccess) -> frozenset:
        names = [n.strip() for n in text.split(",") if n.strip()]
        unknown = [n for n in names if n not in ea.visible]
        if unknown:
            raise BadRequest(f"unknown field '{unknown[0]}' in fields",
                             {"fields": [f"unknown field '{n}'{_hint(n, ea.visible)}" for n in unknown]},
                             code="invalid_parameter")
        return frozenset(names) | {"id", "version"}

    def _sort(self, entity: EntitySpec, text: str | None, ea: EntityAccess) -> list[tuple[FieldSpec, bool]]:
        if text is None:  # the configured order, without what the caller may not see
            keys = tuple(k for k in entity.list.sort if k.lstrip("-+") in ea.readable)
        else:
            keys = tuple(k.strip() for k in text.split(",") if k.strip())
        result = []
        for key in keys:
            descending = key.startswith("-")
            name = key.lstrip("-+")
            f = entity.fields.get(name) if name in ea.visible else None
            if f is None:
                raise BadRequest(f"cannot sort by unknown field '{name}'",
                                 {"sort": [f"unknown field '{name}'{_hint(name, ea.visible)}"]}, code="invalid_sort")
            if name not in ea.readable:
                raise BadRequest(f"cannot sort by masked field '{name}'", {"sort": [f"'{name}' is masked for you"]},
                                 code="invalid_sort")
            if not self.field_types[f.type].sortable:
                raise BadRequest(f"cannot sort by {f.type} field '{name}'", {"sort": [f"'{name}' is not sortable"]},
                                 code="invalid_sort")
            if not any(existing.name == name for existing, _ in result):  # a later mention adds nothing
                result.append((f, descending))
        if not any(f.name == "id" for f, _ in result):
            result.append((entity.fields["id"], result[-1][1] if result else True))
        return result

    def parse_filter(self, entity: EntitySpec, key: str, text: str, access: Access) -> Filter:
        name, _, op = key.partition("__")
        if "__" in op:
            op = "?" + op
        op = op or "eq"
        via = None
        target_entity = entity
        ea = access.entity(entity.name)
        if "." in name:
            ref_name, _, name = name.partition(".")
            via = entity.fields.get(ref_name) if ref_name in ea.readable else None
            if via is None or via.type != "ref":
                raise BadRequest(f"'{ref_name}' is not a reference field of {entity.name}",
                                 {key: [f"'{ref_name}' is not a ref field{_hint(ref_name, ea.visible)}"]},
                                 code="invalid_filter")
            target_entity = self.spec.entities[via.to]
            ea = access.entity(target_entity.name)
        f = target_entity.fields.get(name) if name in ea.visible else None
        if f is None:
            candidates = list(LIST_PARAMETERS) + list(ea.visible)
            raise BadRequest(f"unknown filter field '{name}'",
                             {key: [f"unknown field '{name}'{_hint(name, candidates)}"]}, code="invalid_filter")
        if name not in ea.readable:
            raise BadRequest(f"cannot filter on masked field '{name}'", {key: [f"'{name}' is masked for you"]},
                             code="invalid_filter")
        ftype = self.field_types[f.type]
        if op not in OPERATORS:
            raise BadRequest(f"unknown filter operator '{op}'",
                             {key: [f"unknown operator '{op}'; operators: {', '.join(OPERATORS)}"]},
                             code="invalid_filter")
        allowed = ftype.operators if f.name != "id" else ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin")
        if op not in allowed:
            raise BadRequest(f"operator '{op}' does not apply to {f.type} field '{name}'",
                             {key: [f"{f.type} fields support: {', '.join(allowed)}"]}, code="invalid_filter")
        try:
            if op == "isnull":
                value: Any = _bool_param(key, text)
            elif op in ("in", "nin"):
                parts = text.split(",")
                if "" in parts or len(parts) > MAX_IN_VALUES:
                    raise FieldValueError(f"needs 1 to {MAX_IN_VALUES} comma-separated values")
                value = [self._parse_value(f, ftype, p) for p in parts]
            elif op in ("contains", "startswith") and f.type not in ("multi_enum",):
                value = text
            elif op == "within":
                value = ftype.parse_text(f, text, self.tz)
            else:
                value = self._parse_value(f, ftype, text)
        except FieldValueError as exc:
            raise BadRequest(f"bad value for filter {key}: {exc}", {key: [str(exc)]}, code="invalid_filter") from None
        return Filter(f, op, value, via)

    def _parse_value(self, f: FieldSpec, ftype: FieldType, text: str) -> Any:
        if f.name == "id" or f.system and f.type == "integer":
            return whole_number(text, MAX_ID)
        if f.type == "ref":
            return whole_number(text, MAX_ID, f"must be the id of a {f.to}")
        if f.type in ("string", "text", "email", "phone", "url", "autonumber"):
            return text  # filter values are matched as given, not validated as input
        return ftype.parse_text(_unbounded(f), text, self.tz)

    # -------------------------------------------------------------- cursors

    def encode_cursor(self, sort: list[tuple[FieldSpec, bool]], row: Mapping) -> str:
        values = [self.field_types[f.type].dump(f, row[f.column]) if row[f.column] is not None else None
                  for f, _ in sort]
        signature = ",".join(("-" if d else "") + f.name for f, d in sort)
        raw = json.dumps([signature, values], separators=(",", ":"), default=str).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def _decode_cursor(self, entity: EntitySpec, sort: list[tuple[FieldSpec, bool]], text: str) -> list:
        bad = BadRequest("malformed cursor: pass the 'next' value of a previous page unchanged",
                         {"cursor": ["malformed or from a different sort"]}, code="invalid_cursor")
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            # Numbers bounded before conversion, as everywhere a client's number enters.
            signature, values = json.loads(raw, parse_int=lambda t: whole_number(t), parse_float=_refuse)
        except (binascii.Error, ValueError, TypeError, UnicodeDecodeError, RecursionError):
            raise bad from None
        expected = ",".join(("-" if d else "") + f.name for f, d in sort)
        if signature != expected or not isinstance(values, list) or len(values) != len(sort):
            raise bad
        parsed = []
        for (f, _), value in zip(sort, values):
            if value is None:
                parsed.append(None)
                continue
            try:
                if f.type in ("integer", "ref") or f.name == "id":
                    if isinstance(value, bool) or not isinstance(value, int):
                        raise FieldValueError("not an integer")
                    parsed.append(_id_sized(value) if f.type == "ref" or f.system else
                                  self.field_types[f.type].coerce(_unbounded(f), value, self.tz))
                else:
                    parsed.append(self.field_types[f.type].parse_text(_unbounded(f), str(value), self.tz))
            except (FieldValueError, ValueError):
                raise bad from None
        return parsed

    # -------------------------------------------------------------- SQL

    def table(self, entity: EntitySpec) -> sa.Table:
        return self.tables.entities[entity.name]

    def live(self, entity: EntitySpec) -> sa.ColumnElement[bool]:
        return self.table(entity).c.deleted_at.is_(None)

    def condition(self, entity: EntitySpec, flt: Filter, actor) -> sa.ColumnElement[bool]:
        if flt.via is not None:  # among the referenced records the actor may read
            target = self.spec.entities[flt.via.to]
            inner = sa.select(self.table(target).c.id).where(
                self.live(target), self._predicate(self.table(target), flt))
            scope = self.scope(target.name, actor)
            if scope is not None:
                inner = inner.where(scope)
            return self.table(entity).c[flt.via.column].in_(inner)
        return self._predicate(self.table(entity), flt)

    def _predicate(self, table: sa.Table, flt: Filter) -> sa.ColumnElement[bool]:
        column = table.c[flt.field.column]
        op, value = flt.op, flt.value
        if op == "isnull":
            return column.is_(None) if value else column.is_not(None)
        if flt.field.type == "multi_enum":  # contains: the list holds the option
            return self._json_contains(table, column, value)
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
        if op == "in":
            return column.in_(value)
        if op == "nin":
            return sa.or_(column.not_in(value), column.is_(None))
        if op == "contains":
            return column.icontains(value, autoescape=True)
        if op == "startswith":
            return column.istartswith(value, autoescape=True)
        if op == "within":
            from . import regions

            return column.startswith(regions.prefix(value), autoescape=True)
        raise BadRequest(f"unknown operator {op}")

    def _json_contains(self, table: sa.Table, column, value) -> sa.ColumnElement[bool]:
        if self.dialect == "postgresql":
            return column.op("@>")(sa.cast(sa.literal(json.dumps([value])), column.type))
        each = sa.func.json_each(column).table_valued("value")
        return sa.exists(sa.select(1).select_from(each).where(each.c.value == value))

    def select_list(self, entity: EntitySpec, request: ListRequest, actor, action: str = "read",
                    extra: Iterable = (), *, shares: bool = True) -> sa.Select:
        """The records of a list request within the actor's scope for the action
        (read, export): execute with ``scope_params(actor)``."""
        query = self._matching(entity, request, actor, extra)
        scope = self.scope(entity.name, actor, action, shares=shares)
        return query if scope is None else query.where(scope)

    def export_select(self, entity: EntitySpec, request: ListRequest, actor, limit: int) -> sa.Select:
        """The records of a list request within the actor's export scope, in the
        list's order, without pages (execute with ``scope_params(actor)``)."""
        return (self.select_list(entity, request, actor, "export")
                .order_by(*self._order(self.table(entity), request.sort)).limit(limit))

    def _matching(self, entity: EntitySpec, request: ListRequest, actor, extra: Iterable = ()) -> sa.Select:
        """The live records that match the request's filters and search (no scope)."""
        table = self.table(entity)
        query = sa.select(table).where(self.live(entity), *extra)
        for flt in request.filters:
            query = query.where(self.condition(entity, flt, actor))
        if request.search:
            query = query.where(sa.or_(*(table.c[entity.fields[n].column].icontains(request.search, autoescape=True)
                                          for n in request.search_fields)))
        return query

    def page(self, conn: sa.Connection, entity: EntitySpec, request: ListRequest, *, actor, action: str = "read",
             extra: Iterable = ()) -> tuple[list, str | None, int | None]:
        """(rows, next cursor, total count or None), within the actor's scope.

        For a user with records shared with them, the page is the union of two
        ordered, limited branches (their scope; shared and outside it): one
        predicate with an OR would make the database sort every record in
        scope to return one page."""
        extra = tuple(extra)
        table = self.table(entity)
        base = self.select_list(entity, request, actor, action, extra, shares=False)
        branches = [base]
        if action == "read" and self.has_shares(conn, entity.name, actor):
            scope = self.scope(entity.name, actor, action, shares=False)
            shared = self._matching(entity, request, actor, extra).where(
                self.scopes.shared(entity.name, share_for(action)))
            if scope is not None:  # disjoint from the first branch (NULL counts as outside)
                shared = shared.where(sa.not_(sa.func.coalesce(scope, sa.false())))
            branches.append(shared)
        params = scope_params(actor)
        limited = []
        for branch in branches:
            if request.cursor is not None:
                branch = branch.where(self._after(table, request.sort, request.cursor))
            limited.append(branch.order_by(*self._order(table, request.sort)).limit(request.limit + 1))
        if len(limited) == 1:
            query = limited[0]
        else:
            both = sa.union_all(*(sa.select(branch.subquery()) for branch in limited)).subquery()
            query = sa.select(both).order_by(*self._order(both, request.sort)).limit(request.limit + 1)
        rows = conn.execute(query, params).mappings().all()
        next_cursor = None
        if len(rows) > request.limit:
            rows = rows[: request.limit]
            next_cursor = self.encode_cursor(request.sort, rows[-1])
        total = None
        if request.count:
            total = sum(conn.execute(sa.select(sa.func.count()).select_from(branch.subquery()), params).scalar_one()
                        for branch in branches)
        return rows, next_cursor, total

    def _order(self, table: sa.Table, sort) -> list:
        order = []
        for f, descending in sort:
            column = table.c[f.column]
            if f.name in NOT_NULL:
                order.append(column.desc() if descending else column.asc())
            else:  # NULLs last in both directions, on every database
                order.append(column.is_(None).asc())
                order.append(column.desc() if descending else column.asc())
        return order

    def _after(self, table: sa.Table, sort, values: list) -> sa.ColumnElement[bool]:
        columns = [table.c[f.column] for f, _ in sort]
        directions = {d for _, d in sort}
        if all(f.name in NOT_NULL for f, _ in sort) and len(directions) == 1:
            left, right = sa.tuple_(*columns), sa.tuple_(*[sa.literal(v, c.type) for v, c in zip(values, columns)])
            return left < right if directions == {True} else left > right
        clauses = []
        for i, ((f, descending), column, value) in enumerate(zip(sort, columns, values)):
            equal_prefix = [
                (c.is_(None) if v is None else c == v) for c, v in zip(columns[:i], values[:i])
            ]
            if value is None:
                continue  # nothing sorts after NULL on this key (NULLs last)
            beyond = column < value if descending else column > value
            if f.name not in NOT_NULL:
                beyond = sa.or_(beyond, column.is_(None))
            clauses.append(sa.and_(*equal_prefix, beyond))
        return sa.or_(*clauses) if clauses else sa.false()

    def fetch(self, conn: sa.Connection, entity: EntitySpec, record_id: int, *, actor,
              actions: tuple[str, ...] = ("read",), for_update: bool = False, deleted: bool = False) -> Mapping | None:
        """The record, if it is within the actor's scope of every one of the actions."""
        lock = for_update and conn.dialect.name == "postgresql"
        scopes = tuple(self.scope(entity.name, actor, action) for action in actions)
        key = (entity.name, deleted, lock, scopes)
        query = self._fetch_statements.get(key)
        if query is None:  # built once per entity, kind and scope: the one read of every get and write
            table = self.table(entity)
            condition = table.c.deleted_at.is_not(None) if deleted else table.c.deleted_at.is_(None)
            query = sa.select(table).where(table.c.id == sa.bindparam("_record_id"), condition,
                                           *(s for s in scopes if s is not None))
            if lock:
                query = query.with_for_update()
            self._fetch_statements[key] = query
        params = scope_params(actor)
        params["_record_id"] = record_id
        return conn.execute(query, params).mappings().first()

    def titles(self, conn: sa.Connection, entity_name: str, ids: set[int], actor) -> dict[int, Any]:
        """The titles (stored values of the title field) of those of the ids that
        are live records the actor may read, when the title is readable for them."""
        entity = self.spec.entities[entity_name]
        title = entity.fields.get(entity.title)
        if title is None or not ids or title.name not in self.permissions.of(actor).entity(entity_name).readable:
            return {}
        table = self.table(entity)
        scope = self.scope(entity_name, actor)
        found: dict[int, Any] = {}
        id_list = sorted(ids)
        for start in range(0, len(id_list), 900):
            query = sa.select(table.c.id, table.c[title.column]).where(
                table.c.id.in_(id_list[start:start + 900]), self.live(entity))
            if scope is not None:
                query = query.where(scope)
            found.update((row[0], row[1]) for row in conn.execute(query, scope_params(actor)))
        return found

    def existing_ids(self, conn: sa.Connection, entity_name: str, ids: set[int], actor) -> set[int]:
        """Those of the ids that are live records the actor may read."""
        entity = self.spec.entities[entity_name]
        table = self.table(entity)
        scope = self.scope(entity_name, actor)
        found: set[int] = set()
        id_list = sorted(ids)
        for start in range(0, len(id_list), 900):
            chunk = id_list[start:start + 900]
            query = sa.select(table.c.id).where(table.c.id.in_(chunk), self.live(entity))
            if scope is not None:
                query = query.where(scope)
            found.update(conn.execute(query, scope_params(actor)).scalars())
        return found


def _refuse(text: str) -> Any:
    """Cursors hold whole numbers and strings only."""
    raise ValueError(f"unexpected number {text[:20]}")


def _id_sized(number: int) -> int:
    """Ids, refs and the system's integer columns are 32-bit."""
    if abs(number) > MAX_ID:
        raise FieldValueError("is out of range")
    return number


def _unbounded(f: FieldSpec) -> FieldSpec:
    """The field without min/max: filter and cursor values are compared with
    stored values (age__lt=200 is a fair question), not validated as input."""
    if f.min is None and f.max is None:
        return f
    return dataclasses.replace(f, min=None, max=None)


def _hint(name: str, names) -> str:
    hint = did_you_mean(name, names)
    return f" ({hint})" if hint else ""
