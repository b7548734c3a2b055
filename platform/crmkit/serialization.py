"""marshmallow schemas generated from the spec, and fast JSON dumping.

Loading (validation of a JSON body) goes through a marshmallow schema per
entity whose fields delegate to the field types, so the API, the OpenAPI
document and the records service agree on what a valid value is. Dumping a
stored row uses a per-entity function compiled once, with a fast path for
fields whose stored value is already JSON.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import marshmallow as ma

from .fieldtypes import FieldType, FieldValueError
from .metadata.spec import EntitySpec, FieldSpec, label_text


class SpecField(ma.fields.Field):
    """A marshmallow field backed by a crmkit field type."""

    def __init__(self, spec: FieldSpec, ftype: FieldType, tz: dt.tzinfo, **kwargs) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.ftype = ftype
        self.tz = tz

    def _deserialize(self, value, attr, data, **kwargs):
        if value is None:
            if self.spec.required:
                raise ma.ValidationError("is required")
            return None
        try:
            return self.ftype.coerce(self.spec, value, self.tz)
        except FieldValueError as exc:
            raise ma.ValidationError(str(exc)) from None

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else self.ftype.dump(self.spec, value)


class EntitySchemas:
    """The create and update schemas of one entity, and its dumper."""

    def __init__(self, entity: EntitySpec, field_types: Mapping[str, FieldType], tz: dt.tzinfo) -> None:
        self.entity = entity
        self.field_types = field_types
        writable: dict[str, ma.fields.Field] = {}
        readable: dict[str, ma.fields.Field] = {}
        for f in entity.fields.values():
            ftype = field_types[f.type]
            readable[f.name] = SpecField(f, ftype, tz, allow_none=True, dump_only=True,
                                         metadata={"spec": f})
            if not f.readonly and f.type != "autonumber" and not f.system:
                writable[f.name] = SpecField(f, ftype, tz, allow_none=not f.required, metadata={"spec": f},
                                             required=f.required and f.default is None)
        class_name = "".join(part.capitalize() for part in entity.name.split("_"))
        # The marshmallow schemas describe the API (OpenAPI) and serve plugins;
        # load() below applies the same field types on the hot path.
        self.create = ma.Schema.from_dict(writable, name=f"{class_name}Create")(unknown=ma.RAISE)
        self.update = ma.Schema.from_dict(writable, name=f"{class_name}Update")(unknown=ma.RAISE, partial=True)
        self.read = ma.Schema.from_dict(readable, name=class_name)()
        self.writable = frozenset(writable)
        self.required = tuple(name for name, fld in writable.items() if fld.required)
        self.tz = tz
        self.dump = _compile_dumper(entity, field_types)
        self._dumpers = lru_cache(maxsize=64)(lambda only: _compile_dumper(entity, field_types, only))
        # The audit trail of a creation needs the record's own fields only: not
        # its id and timestamps dumped for every record of a bulk load, to be dropped.
        self._dump_own = _compile_dumper(entity, field_types,
                                         frozenset(f.name for f in entity.fields.values() if not f.system))

    def dumper(self, only: frozenset | None) -> Callable[[Mapping], dict]:
        """A compiled dump of these fields only (every field: None)."""
        return self.dump if only is None else self._dumpers(only)

    def creation_changes(self, row: Mapping) -> dict:
        """The audit trail's changes of a record's creation: ``{field: [None, value]}``
        for every own field given a value (system fields and empty values left out)."""
        return {name: [None, value] for name, value in self._dump_own(row).items()
                if value is not None and value != []}

    def load(self, data: Any, *, partial: bool, system: bool = False,
             access=None) -> tuple[dict, dict[str, list[str]]]:
        """(values, errors) for a JSON body: coerced values by field name, or messages by field name.

        Read-only fields are refused unless the writer is the system. With the
        writer's ``access`` (EntityAccess), fields hidden from them are unknown
        (the same message as a field that does not exist), and fields their
        roles make read-only or masked are refused. This is
        the hot path of every write, so it applies the field types directly,
        exactly as the marshmallow schemas' fields do (a test holds them equal),
        without marshmallow's per-field machinery."""
        if not isinstance(data, dict):
            return {}, {"_body": ["must be a JSON object"]}
        errors: dict[str, list[str]] = {}
        values: dict[str, Any] = {}
        fields = self.entity.fields
        types = self.field_types
        tz = self.tz
        visible = access.visible if access is not None else None
        allowed = access.writable if access is not None else None
        for key, value in data.items():
            if key in ("id", "version"):
                continue
            f = fields.get(key)
            if f is None or visible is not None and key not in visible:
                candidates = self.writable if allowed is None else self.writable & allowed
                errors[key] = [f"unknown field{_hint(key, candidates)}"]
                continue
            if key not in self.writable and not (system and not f.system and f.type != "autonumber"):
                errors[key] = ["is computed by its formula: it cannot be set" if f.formula is not None
                               else "is read-only"]
                continue
            if allowed is not None and key not in allowed:
                errors[key] = ["is read-only for your role"]
                continue
            if value is None:
                if f.required:
                    errors[key] = ["is required"]
                else:
                    values[key] = None
                continue
            try:
                values[key] = types[f.type].coerce(f, value, tz)
            except FieldValueError as exc:
                errors[key] = [str(exc)]
        if not partial:
            for name in self.required:
                if name not in values and name not in errors:
                    errors[name] = ["is required"]
        return values, errors


def _hint(key: str, names) -> str:
    from .metadata.problems import did_you_mean

    hint = did_you_mean(key, names)
    return f" ({hint})" if hint else ""


def _compile_dumper(entity: EntitySpec, field_types: Mapping[str, FieldType],
                    only: frozenset | None = None) -> Callable[..., dict]:
    """row mapping (by column) -> JSON-ready dict (by field name), in spec order
    (only the fields named in ``only``, when given)."""
    steps = []
    for f in entity.fields.values():
        if only is not None and f.name not in only:
            continue
        ftype = field_types[f.type]
        steps.append((f.name, f.column, None if ftype.plain_dump else ftype.dump, f))
    steps_tuple = tuple(steps)

    # Every field: a function made from source, one dict display, no loop (the
    # hot path of every list page: rows x fields). Names are snake_case
    # identifiers (the schema says so) and are written with repr() all the same.
    namespace: dict[str, Any] = {}
    items = []
    for i, (name, column, convert, _spec) in enumerate(steps_tuple):
        if convert is None:
            items.append(f"{name!r}: row[{column!r}]")
        else:
            namespace[f"convert{i}"], namespace[f"spec{i}"] = convert, steps_tuple[i][3]
            items.append(f"{name!r}: None if (v{i} := row[{column!r}]) is None else convert{i}(spec{i}, v{i})")
    source = "def dump_all(row):\n    return {" + ",\n            ".join(items) + "}\n"
    exec(compile(source, f"<dump {entity.name}>", "exec"), namespace)
    dump_all = namespace["dump_all"]
    if only is not None:
        return dump_all

    def dump(row: Mapping, only: frozenset | None = None) -> dict:
        if only is None:
            return dump_all(row)
        out = {}
        for name, column, convert, spec in steps_tuple:
            if name in only:
                value = row[column]
                out[name] = value if convert is None or value is None else convert(spec, value)
        return out

    return dump


def compile_row_dumper(entity: EntitySpec, field_types: Mapping[str, FieldType], columns: tuple[str, ...],
                       only: frozenset | None = None, *, sparse: bool = False,
                       ready: frozenset[str] = frozenset()) -> Callable[[Sequence[Any]], dict]:
    """row tuple (of ``columns``, in that order) -> JSON-ready dict (by field
    name, in spec order) of the fields in ``only`` (every field read, when None).

    ``ready``: columns read as their JSON value already (timestamps on
    SQLite, see sqltypes.UTCDateTimeText). ``sparse``: fields without a value are left out (a page of a list is a
    third smaller); ``id``, ``version`` and the fields named in ``only`` are
    always there. Compiled from source like the mapping dumper: reading by
    position costs less than by column name, per value of every row of every page."""
    index = {column: n for n, column in enumerate(columns)}
    namespace: dict[str, Any] = {}
    always, optional = [], []
    for f in entity.fields.values():
        if f.column not in index or (only is not None and f.name not in only):
            continue
        ftype = field_types[f.type]
        n = index[f.column]
        plain = ftype.plain_dump or f.column in ready
        if not plain:
            namespace[f"convert{n}"], namespace[f"spec{n}"] = ftype.dump, f
        value = f"row[{n}]" if plain else f"convert{n}(spec{n}, v)"
        if sparse and only is None and f.name not in ("id", "version"):
            optional.append(f"    v = row[{n}]\n    if v is not None:\n        out[{f.name!r}] = {value}\n")
        elif plain:
            always.append(f"{f.name!r}: row[{n}]")
        else:
            always.append(f"{f.name!r}: None if (v := row[{n}]) is None else convert{n}(spec{n}, v)")
    source = ("def dump_row(row):\n    out = {" + ", ".join(always) + "}\n" + "".join(optional)
              + "    return out\n")
    exec(compile(source, f"<dump rows of {entity.name}>", "exec"), namespace)
    return namespace["dump_row"]


def field_label(f: FieldSpec, locale: str = "en") -> str:
    return label_text(f.label, locale, f.name)
