"""The list grammar: list query parameters (``?field__op=value``, ``sort``,
``fields``, ``limit``, ``cursor``, ``count``, ``q``, ``tag``, ``view``) parsed
into a ``ListRequest``, every mistake a 400 naming the parameter; and the
cursor's text (the sort values of a page's last row)."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import BadRequest
from ..expressions import Checked
from ..fieldtypes import MAX_ID, FieldType, FieldValueError, whole_number
from ..metadata.builtin_entities import DIRECTORY_FIELDS
from ..metadata.problems import did_you_mean
from ..metadata.spec import DIRECTORY_ENTITIES, ID_OPERATORS, EntitySpec, FieldSpec
from ..permissions import Access, EntityAccess
from .scopes import DataScopes
from .sources import LIVE, Source

OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "contains", "startswith", "isnull", "within")
LIST_PARAMETERS = frozenset({"limit", "cursor", "sort", "fields", "count", "q", "tag", "view"})
#: The tag parameters of a list: with the tag (each one given), with any of, with none of.
TAG_PARAMETERS = {"tag": "in", "tag__in": "in", "tag__nin": "nin"}
MAX_IN_VALUES = 500


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


def _bool_param(name: str, text: str) -> bool:
    """true or false, as the OpenAPI document's boolean parameters are written."""
    if text == "true":
        return True
    if text == "false":
        return False
    raise BadRequest(f"{name} must be true or false", {name: [f"'{text}' is not true or false"]},
                     code="invalid_parameter")


class ListGrammar(DataScopes):
    """List parameters -> ``ListRequest``; cursors to and from text."""

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

    def _cursor(self, sort: list[tuple[FieldSpec, bool]], values: list[Any],
                text: frozenset[str] = frozenset()) -> str:
        dumped = [self.field_types[f.type].dump(f, value) if value is not None and f.column not in text else value
                  for (f, _), value in zip(sort, values)]
        signature = ",".join(("-" if d else "") + f.name for f, d in sort)
        raw = json.dumps([signature, dumped], separators=(",", ":"), default=str).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")


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
