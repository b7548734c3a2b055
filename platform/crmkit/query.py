"""The query builder: every read goes through here.

It turns list parameters (filters, search, sort, cursor, sparse fields, count)
into SQL, within the caller's data scope, selecting only the columns of the
fields the caller may see. One grammar serves every list: an entity's records,
the records related to one record, the recycle bin, a record's history, users,
teams and the audit trail (each a ``Source``: a table described by a spec).
Lists of records never show records in the recycle bin, except the bin itself.
Keyset pagination: the cursor carries the sort values of the last row, so page
2,000 costs what page one does.

Statements are built once per shape (the filters and their operators, the
sort, a cursor or none, the scope, the columns) and kept; a request binds its
values as parameters. Building a statement costs more than running a page.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import json
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import sqlalchemy as sa

from .errors import BadRequest, NotFound
from .expressions import Checked, Context, to_sql
from .fieldtypes import MAX_ID, FieldType, FieldValueError, whole_number
from .metadata import builtin_entities
from .metadata.builtin_entities import DIRECTORY_FIELDS
from .metadata.problems import did_you_mean
from .metadata.spec import (
    DIRECTORY_ENTITIES,
    ID_OPERATORS,
    AppSpec,
    EntitySpec,
    FieldSpec,
    RelationSpec,
)
from .permissions import (
    ALWAYS_VISIBLE,
    POOL,
    SYSTEM_ENTITIES,
    Access,
    Actor,
    EntityAccess,
    Permissions,
    ScopeSQL,
    scope_params,
    share_for,
)
from .serialization import compile_row_dumper
from .sqltypes import UTCDateTime, UTCDateTimeText
from .tables import Tables
from .tagging import TagCatalog, tag_condition

OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "contains", "startswith", "isnull", "within")
LIST_PARAMETERS = frozenset({"limit", "cursor", "sort", "fields", "count", "q", "tag", "view"})
#: The tag parameters of a list: with the tag (each one given), with any of, with none of.
TAG_PARAMETERS = {"tag": "in", "tag__in": "in", "tag__nin": "nin"}
MAX_IN_VALUES = 500
#: Columns that are never NULL, so keyset comparisons need no NULL handling.
NOT_NULL = frozenset({"id", "version", "created_at", "updated_at"})
#: Which rows a source shows: live records, records in the recycle bin, or every row (platform tables).
LIVE, DELETED, ALL = "live", "deleted", "all"
#: Statements kept at most (per shape); past this the cache starts afresh.
MAX_STATEMENTS = 1024
#: LIKE patterns are escaped with this character (as SQLAlchemy's autoescape does).
ESCAPE = "/"


@dataclass(frozen=True, eq=False)
class Source:
    """What a list reads: the rows of one table, described by a spec (its
    fields and their columns, default sort, search fields and page size)."""

    key: str
    spec: EntitySpec
    table: sa.Table
    #: Whose roles and data scopes apply: an entity, ``user``, ``team``,
    #: ``audit``, or None (a record's history: reading the record is the check).
    guard: str | None
    rows: str = LIVE
    #: Fields outside the field rules: whoever may list the source sees them.
    open_fields: frozenset[str] = frozenset()
    not_null: frozenset[str] = NOT_NULL

    @property
    def shareable(self) -> bool:
        """Whether records of the source can be shared with collaborators."""
        return self.rows == LIVE and self.guard is not None and self.guard not in SYSTEM_ENTITIES


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
    cursor: list[Any] | None = None
    fields: frozenset[str] | None = None
    count: bool = False
    search: str | None = None
    search_fields: tuple[str, ...] = ()
    #: Tag filters: ("in", names): with one of them; ("nin", names): with none.
    tags: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    #: A segment (a view's ``where``), checked against the caller's access.
    where: Checked | None = None


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


def _bool_param(name: str, text: str) -> bool:
    """true or false, as the OpenAPI document's boolean parameters are written."""
    if text == "true":
        return True
    if text == "false":
        return False
    raise BadRequest(f"{name} must be true or false", {name: [f"'{text}' is not true or false"]},
                     code="invalid_parameter")


def _like(text: str) -> str:
    """Text matched literally by LIKE (``%`` and ``_`` are not wildcards)."""
    return text.replace(ESCAPE, ESCAPE * 2).replace("%", ESCAPE + "%").replace("_", ESCAPE + "_")


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
        self._fetch_statements: dict[tuple[Any, ...], sa.Select[Any]] = {}
        self._statements: dict[Hashable, Any] = {}
        self._dumpers: dict[Hashable, Callable[[Sequence[Any]], dict[str, Any]]] = {}
        #: The live records of each entity, and those in its recycle bin.
        self.sources = {name: Source(name, entity, tables.entities[name], name)
                        for name, entity in spec.entities.items()}
        self.binned = {name: self._bin_source(entity) for name, entity in spec.entities.items()}
        platform = {"user": (builtin_entities.user_spec(self.permissions.roles), tables.users),
                    "team": (builtin_entities.team_spec(), tables.teams),
                    "audit": (builtin_entities.audit_spec(), tables.audit)}
        #: Users, teams and the audit trail: no field rules, every row (users stay when disabled).
        self.platform = {name: Source(name, s, table, name, ALL, frozenset(s.fields), NOT_NULL | {"at"})
                         for name, (s, table) in platform.items()}
        history = builtin_entities.history_spec()
        #: The config's tags and who sees which (crmkit.tagging).
        self.tag_catalog = TagCatalog(spec)
        self.history = Source(builtin_entities.HISTORY, history, tables.audit, None, ALL, frozenset(history.fields),
                              NOT_NULL | {"at"})

    def _bin_source(self, entity: EntitySpec) -> Source:
        """The recycle bin of an entity: its fields plus when and by whom each
        record was deleted, newest deletion first."""
        label = {"en": "Deleted at", "zh": "删除时间"}
        deleted = {"deleted_at": FieldSpec("deleted_at", "datetime", label, readonly=True, system=True),
                   "deleted_by": FieldSpec("deleted_by", "integer", {"en": "Deleted by", "zh": "删除人"},
                                           readonly=True, system=True)}
        spec = dataclasses.replace(entity, fields={**entity.fields, **deleted},
                                   list=dataclasses.replace(entity.list, sort=("-deleted_at",)))
        return Source(f"{entity.name}:deleted", spec, self.tables.entities[entity.name], entity.name, DELETED,
                      frozenset(deleted), NOT_NULL | {"deleted_at"})

    def source(self, what: EntitySpec | Source) -> Source:
        """The live records of an entity (a source is its own)."""
        return what if isinstance(what, Source) else self.sources[what.name]

    def reader(self, source: EntitySpec | Source, access: Access) -> EntityAccess:
        """What a caller with this access sees of a source's fields (the field
        rules of its entity, plus the fields no rule covers)."""
        source = self.source(source)
        ea = access.entity(source.guard) if source.guard is not None else EntityAccess(source.spec.name)
        if not source.open_fields:
            return ea
        return dataclasses.replace(ea, visible=ea.visible | source.open_fields,
                                   readable=ea.readable | source.open_fields)

    # -------------------------------------------------------------- scopes

    def scope(self, entity_name: str, actor: Actor, action: str = "read", *,
              shares: bool = True) -> sa.ColumnElement[bool] | None:
        """The actor's data scope for an action on an entity, as a predicate
        (None: every record), with the actor's ids as bound parameters
        (execute with ``scope_params(actor)``). ``shares=False`` leaves out the
        records shared with the actor (for one who has none: see has_shares)."""
        ea = self.permissions.of(actor).entity(entity_name)
        if action == "share":  # sharing a record: the update scope of the roles, not of shares
            return self.scopes.predicate(entity_name, ea.scope("update"))
        if entity_name in SYSTEM_ENTITIES:
            return self.scopes.predicate(entity_name, ea.scope(action))
        return self.scopes.predicate(entity_name, ea.scope(action), share_for(action) if shares else None)

    def has_shares(self, conn: sa.Connection, entity_name: str, actor: Actor) -> bool:
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

    def parse_list(self, source: EntitySpec | Source, args: Iterable[tuple[str, str]], access: Access) -> ListRequest:
        """Parse list query parameters; every mistake is a 400 naming the parameter.

        Fields the caller may not see do not exist for them: naming one in
        fields, sort or a filter is the same 400 as a field that does not
        exist. Masked fields are shown but cannot be filtered, sorted or
        searched on (that would reveal them)."""
        ea = self.reader(source, access)
        entity = self.source(source).spec
        request = ListRequest(limit=entity.list.page_size)
        sort_text = None
        cursor_text = None
        args = list(args)
        view_names = [value for key, value in args if key == "view"]
        if view_names:
            args, sort_text = self._view(source, entity, view_names, args, access, request)
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
            elif key in TAG_PARAMETERS and self._tagged(source):
                names = [value] if key == "tag" else value.split(",")
                request.tags.append((TAG_PARAMETERS[key],
                                     tuple(self.tag_catalog.named(access, entity, names, key))))
            elif key == "view":
                continue
            else:
                request.filters.append(self.parse_filter(entity, key, value, access, ea))
        request.sort = self._sort(entity, sort_text, ea)
        if cursor_text is not None:
            request.cursor = self._decode_cursor(entity, request.sort, cursor_text)
        if request.search:
            request.search_fields = tuple(n for n in entity.list.search if n in ea.readable)
            if not request.search_fields:
                raise BadRequest(f"{entity.name} has no search fields (list.search in its config)",
                                 {"q": ["search is not configured for this entity"]}, code="invalid_parameter")
        return request

    def _tagged(self, source: EntitySpec | Source) -> bool:
        """Whether a list's rows are an entity's live records (which have tags)."""
        found = self.source(source)
        return found.rows == LIVE and found.guard == found.spec.name and found.spec.name in self.spec.entities

    def _view(self, source: EntitySpec | Source, entity: EntitySpec, names: list[str], args: list[tuple[str, str]],
              access: Access, request: ListRequest) -> tuple[list[tuple[str, str]], str | None]:
        """A saved view's filters, sort and ``where`` (a segment) applied for
        the caller: the filters and the condition checked against their access,
        as if they had written them. Returns the arguments with the view's
        filters first (but on the fields the caller filters themselves: theirs
        replace the view's), and the sort (the caller's own, else the view's)."""
        view = self.spec.views.get(names[0])
        usable = self.tag_catalog.views(access, entity.name)
        if len(names) > 1 or view is None or view.entity != entity.name or self.source(source).rows != LIVE:
            raise BadRequest(f"unknown view '{names[0][:40]}'",
                             {"view": [f"unknown view '{names[0][:40]}'{_hint(names[0], usable)}"]},
                             code="invalid_parameter")
        if view.name not in usable:  # for other roles, or its where reads what the caller may not see
            raise BadRequest(f"view '{view.name}' cannot be shown to you",
                             {"view": ["the view is not for your role, or reads what your role may not see"]},
                             code="invalid_parameter")
        sort_text = next((value for key, value in args if key == "sort"), None)
        if sort_text is None and view.sort:
            sort_text = ",".join(view.sort)
        request.where = usable[view.name]
        rest = [(key, value) for key, value in args if key != "sort"]
        own = {key.partition("__")[0] for key, _ in rest}  # the caller's filters on a field replace the view's
        return [(key, value) for key, value in view.filter.items() if key.partition("__")[0] not in own] + rest, \
            sort_text

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

    def fields_param(self, entity: EntitySpec, text: str, ea: EntityAccess) -> frozenset[str]:
        return self._fields(entity, text, ea)

    def _fields(self, entity: EntitySpec, text: str, ea: EntityAccess) -> frozenset[str]:
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
        result: list[tuple[FieldSpec, bool]] = []
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

    def parse_filter(self, entity: EntitySpec, key: str, text: str, access: Access,
                     ea: EntityAccess | None = None) -> Filter:
        """One filter (``field__op=value``) on the entity, or of a source whose
        fields the caller sees as ``ea`` says."""
        name, _, op = key.partition("__")
        if "__" in op:
            op = "?" + op
        op = op or "eq"
        via = None
        target_fields = entity.fields
        ea = ea if ea is not None else access.entity(entity.name)
        if "." in name:
            ref_name, _, name = name.partition(".")
            via = entity.fields.get(ref_name) if ref_name in ea.readable else None
            if via is None or via.type != "ref":
                raise BadRequest(f"'{ref_name}' is not a reference field of {entity.name}",
                                 {key: [f"'{ref_name}' is not a ref field{_hint(ref_name, ea.visible)}"]},
                                 code="invalid_filter")
            target_fields, ea = self._ref_target(via, access)
        f = target_fields.get(name) if name in ea.visible else None
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
        allowed = ftype.operators if f.name != "id" else ID_OPERATORS
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

    def _ref_target(self, via: FieldSpec, access: Access) -> tuple[Mapping[str, FieldSpec], EntityAccess]:
        """The fields a filter through the ref ``via`` may name, and the caller's
        access to them. Through a ref to the platform's users or teams: their
        directory fields, for a caller who may read users (or teams)."""
        to = via.to or ""
        if to in DIRECTORY_ENTITIES:
            fields = DIRECTORY_FIELDS[to]
            names = frozenset(fields) if access.allows(to, "read") else frozenset()
            return fields, EntityAccess(to, visible=names, readable=names)
        return self.spec.entities[to].fields, access.entity(to)

    def _parse_value(self, f: FieldSpec, ftype: FieldType, text: str) -> Any:
        if f.name == "id" or f.system and f.type == "integer" or f.type == "ref":
            # Ids (and the system's integer columns: owners, teams, actors) are never negative.
            message = f"must be the id of a {f.to}" if f.type == "ref" else "must be a whole number"
            if text.startswith("-"):
                raise FieldValueError(message)
            return whole_number(text, MAX_ID, message)
        if f.type in ("string", "text", "email", "phone", "url", "autonumber"):
            return text  # filter values are matched as given, not validated as input
        return ftype.parse_text(_unbounded(f), text, self.tz)

    # -------------------------------------------------------------- cursors

    def encode_cursor(self, sort: list[tuple[FieldSpec, bool]], row: Mapping[str, Any]) -> str:
        """The cursor of the page after this row (a mapping by column)."""
        return self._cursor(sort, [row[f.column] for f, _ in sort])

    def _decode_cursor(self, entity: EntitySpec, sort: list[tuple[FieldSpec, bool]], text: str) -> list[Any]:
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
        parsed: list[Any] = []
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
            from . import regions

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

    def _scope(self, source: Source, actor: Actor, action: str, shares: bool) -> sa.ColumnElement[bool] | None:
        if source.guard is None:
            return None
        return self.scope(source.guard, actor, action, shares=shares)

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

    def shared_with(self, conn: sa.Connection, actor: Actor, limit: int) -> list[tuple[str, int]]:
        """The records most recently shared with the actor, newest share first:
        (entity, id) pairs of live records they may read (titles() gives their titles)."""
        if actor.id is None:
            return []
        shares = self.tables.shares
        rows = conn.execute(sa.select(shares.c.entity, shares.c.record_id).where(shares.c.user_id == actor.id)
                            .order_by(shares.c.created_at.desc()).limit(limit * 2)).all()
        found: list[tuple[str, int]] = []
        by_entity: dict[str, set[int]] = {}
        for entity_name, record_id in rows:
            if entity_name in self.spec.entities:
                by_entity.setdefault(entity_name, set()).add(record_id)
        readable = {name: self.existing_ids(conn, name, ids, actor) for name, ids in by_entity.items()}
        for entity_name, record_id in rows:
            if record_id in readable.get(entity_name, ()) and len(found) < limit:
                found.append((entity_name, record_id))
        return found

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

    def _cursor(self, sort: list[tuple[FieldSpec, bool]], values: list[Any],
                text: frozenset[str] = frozenset()) -> str:
        dumped = [self.field_types[f.type].dump(f, value) if value is not None and f.column not in text else value
                  for (f, _), value in zip(sort, values)]
        signature = ",".join(("-" if d else "") + f.name for f, d in sort)
        raw = json.dumps([signature, dumped], separators=(",", ":"), default=str).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    # -------------------------------------------------------------- one record

    def fetch(self, conn: sa.Connection, entity: EntitySpec, record_id: int, *, actor: Actor,
              actions: tuple[str, ...] = ("read",), for_update: bool = False, deleted: bool = False,
              columns: tuple[str, ...] | None = None) -> sa.RowMapping | None:
        """The record, if it is within the actor's scope of every one of the
        actions (every column, or only ``columns``)."""
        lock = for_update and conn.dialect.name == "postgresql"
        scopes = tuple(self.scope(entity.name, actor, action) for action in actions)
        key = (entity.name, deleted, lock, scopes, columns)
        query = self._fetch_statements.get(key)
        if query is None:  # built once per entity, kind and scope: the one read of every get and write
            table = self.table(entity)
            condition = table.c.deleted_at.is_not(None) if deleted else table.c.deleted_at.is_(None)
            selected = [table] if columns is None else [table.c[c] for c in columns]
            query = sa.select(*selected).where(table.c.id == sa.bindparam("_record_id"), condition,
                                               *(s for s in scopes if s is not None))
            if lock:
                query = query.with_for_update()
            self._fetch_statements[key] = query
        params = scope_params(actor)
        params["_record_id"] = record_id
        return conn.execute(query, params).mappings().first()

    def within(self, conn: sa.Connection, entity: EntitySpec, record_id: int, *, actor: Actor,
               actions: tuple[str, ...]) -> dict[str, bool]:
        """Whether a live record is within the actor's scope of each action,
        in one read (``fetch`` with each action alone says the same, a read
        each: a record page asks for four). An action whose scope is every
        record costs no read."""
        scopes = {action: self.scope(entity.name, actor, action) for action in actions}
        asked = tuple(action for action, scope in scopes.items() if scope is not None)
        found = {action: True for action, scope in scopes.items() if scope is None}
        if asked:
            key = ("within", entity.name, asked, tuple(scopes[a] for a in asked))
            query = self._fetch_statements.get(key)
            if query is None:
                table = self.table(entity)
                query = sa.select(*(sa.case((cast(sa.ColumnElement[bool], scopes[a]), True), else_=False).label(a)
                                    for a in asked)).where(table.c.id == sa.bindparam("_record_id"),
                                                           table.c.deleted_at.is_(None))
                self._fetch_statements[key] = query
            params = scope_params(actor)
            params["_record_id"] = record_id
            row = conn.execute(query, params).first()
            found.update((a, bool(row is not None and row[n])) for n, a in enumerate(asked))
        return found

    def read_one(self, conn: sa.Connection, entity: EntitySpec, record_id: int, *, actor: Actor,
                 fields: frozenset[str] | None = None) -> sa.RowMapping | None:
        """A record as the actor may read it: only the columns of the fields
        they see (of ``fields``, when given)."""
        columns = self.columns(entity, self.permissions.of(actor).entity(entity.name), fields)
        return self.fetch(conn, entity, record_id, actor=actor, columns=columns)

    def titles(self, conn: sa.Connection, entity_name: str, ids: set[int], actor: Actor) -> dict[int, Any]:
        """The titles (stored values of the title field) of those of the ids that
        are live records the actor may read, when the title is readable for them."""
        entity = self.spec.entities[entity_name]
        title = entity.fields.get(entity.title)
        if title is None or not ids or title.name not in self.permissions.of(actor).entity(entity_name).readable:
            return {}
        scope = self.scope(entity_name, actor)
        key = ("titles", entity_name, scope)
        query = self._fetch_statements.get(key)
        if query is None:  # built once per entity and scope (a record page asks for several titles)
            table = self.table(entity)
            conditions = [table.c.id.in_(sa.bindparam("_ids", expanding=True)), self.live(entity)]
            if scope is not None:
                conditions.append(scope)
            query = self._fetch_statements[key] = sa.select(table.c.id, table.c[title.column]).where(*conditions)
        found: dict[int, Any] = {}
        id_list = sorted(ids)
        params: dict[str, Any] = dict(scope_params(actor))
        for start in range(0, len(id_list), 900):
            params["_ids"] = id_list[start:start + 900]
            found.update((row[0], row[1]) for row in conn.execute(query, params))
        return found

    def existing_ids(self, conn: sa.Connection, entity_name: str, ids: set[int], actor: Actor) -> set[int]:
        """Those of the ids that are live records the actor may read; for the
        platform's users and teams (refs to user or team), active users and
        teams within the actor's read scope of them."""
        table = self.scopes.table(entity_name)
        live: sa.ColumnElement[bool]
        if entity_name == "user":
            live = table.c.active.is_(True)
        elif entity_name == "team":
            live = sa.true()
        else:
            live = table.c.deleted_at.is_(None)
        scope = self.scope(entity_name, actor)
        found: set[int] = set()
        id_list = sorted(ids)
        for start in range(0, len(id_list), 900):
            chunk = id_list[start:start + 900]
            query = sa.select(table.c.id).where(table.c.id.in_(chunk), live)
            if scope is not None:
                query = query.where(scope)
            found.update(conn.execute(query, scope_params(actor)).scalars())
        return found

    # -------------------------------------------------------------- the other lists

    def relation(self, entity: EntitySpec, name: str) -> RelationSpec:
        rel = entity.relations.get(name)
        if rel is None:
            raise NotFound(f"{entity.name} has no relation '{name}'", code="unknown_relation")
        return rel

    def related_page(self, conn: sa.Connection, entity: EntitySpec, record_id: int, relation: RelationSpec,
                     request: ListRequest, *, actor: Actor) -> Page:
        """The records related to one record through a relation (a page of the
        other entity's list, within the actor's scope of it). A record the
        actor cannot read has no related records for them: 404."""
        if self.fetch(conn, entity, record_id, actor=actor, columns=("id",)) is None:
            raise NotFound(f"{entity.name} {record_id} not found")
        other = self.sources[relation.entity]

        def build() -> sa.ColumnElement[bool]:
            parent = sa.bindparam("_parent_id", type_=sa.Integer())
            if relation.kind == "one_to_many":
                via = other.spec.fields[relation.field or entity.name]
                return other.table.c[via.column] == parent
            left, right = self.tables.link_columns(entity.name, relation.name)
            return other.table.c.id.in_(sa.select(right).where(left == parent))

        within = Within(("related", entity.name, relation.name), build, {"_parent_id": record_id})
        return self.page(conn, other, request, actor=actor, within=within)

    def deleted_page(self, conn: sa.Connection, entity: EntitySpec, request: ListRequest, *, actor: Actor) -> Page:
        """A page of an entity's recycle bin (parse the request with
        ``binned[entity]``): the records the actor could delete, which they may restore."""
        return self.page(conn, self.binned[entity.name], request, actor=actor, action="delete")

    def history_page(self, conn: sa.Connection, entity: EntitySpec, record_id: int, request: ListRequest, *,
                     actor: Actor) -> Page:
        """A page of a record's history (parse the request with ``history``):
        its audit entries, refusals left out, if the actor may read the record
        (404 otherwise). The values in them are the caller's to filter
        (permissions.audit_changes)."""
        if self.fetch(conn, entity, record_id, actor=actor, columns=("id",)) is None:
            raise NotFound(f"{entity.name} {record_id} not found")
        audit = self.tables.audit

        def build() -> sa.ColumnElement[bool]:
            return sa.and_(audit.c.entity == sa.bindparam("_entity", type_=sa.String()),
                           audit.c.record_id == sa.bindparam("_record_id", type_=sa.Integer()),
                           audit.c.action != "denied")

        within = Within("history", build, {"_entity": entity.name, "_record_id": record_id})
        return self.page(conn, self.history, request, actor=actor, within=within)

    # -------------------------------------------------------------- JSON

    def row_dumper(self, source: EntitySpec | Source, columns: tuple[str, ...], only: frozenset[str] | None,
                   sparse: bool = False) -> Callable[[Sequence[Any]], dict[str, Any]]:
        """rows of these columns -> JSON-ready dicts of the fields in ``only``
        (every field read, when None); ``sparse`` leaves out fields without a
        value, except those named in ``only``."""
        source = self.source(source)
        key = (source.key, columns, only, sparse)
        dump = self._dumpers.get(key)
        if dump is None:
            if len(self._dumpers) >= MAX_STATEMENTS:
                self._dumpers.clear()
            dump = self._dumpers[key] = compile_row_dumper(source.spec, self.field_types, columns, only,
                                                           sparse=sparse, ready=self._text_columns(source, columns))
        return dump


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


def _hint(name: str, names: Iterable[str]) -> str:
    hint = did_you_mean(name, names)
    return f" ({hint})" if hint else ""
