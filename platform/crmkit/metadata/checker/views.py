"""The checks of views documents (columns, sort, filters, the layout keys of
boards and calendars, roles) into ViewSpecs; the filter checks also serve
an entity's ``due.filter``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ..builtin_entities import DIRECTORY_FIELDS
from ..loader import Document
from ..problems import ProblemList, did_you_mean, shown
from ..spec import DIRECTORY_ENTITIES, ID_OPERATORS, EntitySpec, FieldSpec, ViewSpec
from .entities import _Known
from .naming import _as_label, _defined_once, _filter_text


@dataclass
class _References:
    """How the checks of views and tags resolve the names they use."""

    known: _Known
    entity: Callable[..., EntitySpec | None]
    field: Callable[..., None]
    roles: set[str]
    problems: ProblemList


def _build_views(docs: list[Document], refs: _References, types: Mapping[str, Any]) -> dict[str, ViewSpec]:
    views: dict[str, ViewSpec] = {}
    seen: dict[str, Document] = {}
    for doc in docs:
        for name, raw in doc.data["views"].items():
            if not _defined_once(doc, "view", name, seen, refs.problems):
                continue
            path = ("views", name)
            entity = refs.entity(doc, path + ("entity",), raw["entity"])
            for j, column in enumerate(raw.get("columns", ())):
                refs.field(doc, path + ("columns", j), entity, column)
            kind = raw.get("kind", "list")
            if "group_by" in raw:
                refs.field(doc, path + ("group_by",), entity, raw["group_by"])
            elif kind == "board":
                refs.problems.add(doc, path + ("kind",),
                                  "a board needs group_by: the field whose values make its columns")
            _check_layout_keys(doc, path, entity, raw, kind, refs)
            for j, role in enumerate(raw.get("roles", ())):
                if role not in refs.roles:
                    refs.problems.add(doc, path + ("roles", j), f"unknown role '{role}'",
                                      did_you_mean(role, refs.roles))
            views[name] = ViewSpec(
                name=name, entity=raw["entity"], label=_as_label(raw.get("label"), name), kind=kind,
                filter=MappingProxyType(_view_filter(doc, path, entity, raw.get("filter", {}), refs, types)),
                where=raw.get("where"), sort=_view_sort(doc, path, entity, raw.get("sort"), refs, types),
                columns=tuple(raw.get("columns", ())), group_by=raw.get("group_by"),
                roles=tuple(raw.get("roles", ())), source=doc.file,
                total=raw.get("total"), date_field=raw.get("date_field"),
            )
    return views


#: The field types a board's total may sum, and those a calendar may place records by.
TOTAL_TYPES = ("money", "integer", "decimal")
DATE_TYPES = ("date", "datetime")


def _check_layout_keys(doc: Document, path: tuple, entity: EntitySpec | None, raw: Mapping[str, Any], kind: str,
                       refs: _References) -> None:
    """A board's total (a number field) and a calendar's date_field (a date or
    datetime field, required): each only on its kind of view."""
    for key, wanted, types_ in (("total", "board", TOTAL_TYPES), ("date_field", "calendar", DATE_TYPES)):
        if key not in raw:
            if kind == wanted == "calendar":
                refs.problems.add(doc, path + ("kind",), "a calendar needs date_field: the date or datetime field "
                                  "that places its records")
            continue
        if kind != wanted:
            refs.problems.add(doc, path + (key,), f"{key} applies to a view of kind {wanted}, not {kind}", key=True)
            continue
        refs.field(doc, path + (key,), entity, raw[key])
        f = entity.fields.get(raw[key]) if entity is not None else None
        if f is not None and f.type not in types_:
            refs.problems.add(doc, path + (key,), f"{key} must name a {' or '.join(types_)} field, "
                              f"not {f.type} field '{f.name}'")


def _view_sort(doc: Document, path: tuple, entity: EntitySpec | None, text: str | None, refs: _References,
               types: Mapping[str, Any]) -> tuple[str, ...]:
    """The sort keys of a view (``-created_at,name``), each a sortable field."""
    if text is None:
        return ()
    keys = tuple(key.strip() for key in text.split(","))
    for key in keys:
        name = key.lstrip("-+")
        if not name:
            refs.problems.add(doc, path + ("sort",), f"empty sort key in '{shown(text)}'")
        elif entity is not None and not refs.known.has_field(entity, name):
            refs.problems.add(doc, path + ("sort",), f"cannot sort by unknown field '{shown(name)}'",
                              did_you_mean(name, entity.fields))
        elif entity is not None and name in entity.fields and not types[entity.fields[name].type].sortable:
            refs.problems.add(doc, path + ("sort",), f"cannot sort by {entity.fields[name].type} field '{name}'")
    return keys


def _view_filter(doc: Document, path: tuple, entity: EntitySpec | None, raw: Mapping[str, Any], refs: _References,
                 types: Mapping[str, Any]) -> dict[str, str]:
    """A view's filters as the API's query text, each naming a field (or a
    field through a ref: ``customer.level``) and an operator it supports."""
    filters: dict[str, str] = {}
    for key, value in raw.items():
        at = path + ("filter", key)
        name, _, op = key.partition("__")
        ref_name, dot, target_name = name.partition(".")
        refs.field(doc, at, entity, ref_name, key=True)
        f = entity.fields.get(ref_name) if entity is not None else None
        if f is not None and dot:
            target = _filter_target(doc, at, f, target_name, refs)
            f = target
        if f is not None:
            operators = ID_OPERATORS if f.name == "id" else types[f.type].operators
            if (op or "eq") not in operators:
                refs.problems.add(doc, at, f"operator '{shown(op)}' does not apply to {f.type} field '{f.name}'",
                                  f"{f.type} fields support: {', '.join(operators)}", key=True)
        text = _filter_text(value)
        if text is None:
            refs.problems.add(doc, at, "a filter value is one value or a list of values "
                              "(for a missing value: field__isnull: true)")
            continue
        filters[key] = text
    return filters


def _filter_target(doc: Document, at: tuple, via: FieldSpec, name: str, refs: _References) -> FieldSpec | None:
    """The field a dotted filter names through the ref ``via`` (None: reported, or cannot tell)."""
    if via.type != "ref":
        refs.problems.add(doc, at, f"'{via.name}' is not a ref field: only refs are followed with '.'", key=True)
        return None
    if via.to in DIRECTORY_ENTITIES:
        fields = DIRECTORY_FIELDS[via.to]
        if name not in fields:
            refs.problems.add(doc, at, f"a filter through {via.name} names a field of the platform's {via.to}s: "
                              f"{', '.join(fields)}", did_you_mean(name, fields), key=True)
        return fields.get(name)
    target = refs.known.entities.get(via.to or "")
    if target is None:
        return None
    refs.field(doc, at, target, name, key=True)
    return target.fields.get(name)
