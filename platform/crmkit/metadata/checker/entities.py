"""The checks of entity documents: fields (types, keys, defaults), the system
fields, indexes, relations, assignment, pools and due dates, into an
EntitySpec each; what the config declares (``_Known``); refs and relations
that cross entities."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..loader import Document
from ..problems import ProblemList, did_you_mean, shown
from ..spec import (
    DIRECTORY_ENTITIES,
    QUERY_PARAMETERS,
    RESERVED_ENTITY_NAMES,
    RESERVED_FIELD_NAMES,
    RESERVED_RELATION_NAMES,
    SYSTEM_FIELDS,
    AssignmentSpec,
    DueSpec,
    EntitySpec,
    FieldSpec,
    IndexSpec,
    ListSpec,
    Option,
    PoolSpec,
    RelationSpec,
    SectionSpec,
)
from .naming import _IDENTIFIER, _as_label, _filter_text

INDEX_NAME_LIMIT = 60


class _EntityBuilder:
    """Turns one entity document into an EntitySpec, reporting what is wrong."""

    def __init__(self, doc: Document, types: Mapping[str, Any], problems: ProblemList) -> None:
        self.doc = doc
        self.data = doc.data
        self.types = types
        self.problems = problems
        self.name: str = doc.data["entity"]

    def report(self, path: tuple, message: str, hint: str = "", key: bool = False) -> None:
        self.problems.add(self.doc, path, message, hint, key=key)

    def field_spec(self, name: str, raw: dict) -> FieldSpec | None:
        path = ("fields", name)
        if name in RESERVED_FIELD_NAMES:
            what = ("a system field every record has" if name in SYSTEM_FIELDS
                    else "a query parameter of the API" if name in QUERY_PARAMETERS else "added by owned: true")
            self.report(path, f"'{name}' is a reserved name ({what}); choose another", key=True)
            return None
        type_name = raw["type"]
        ftype = self.types.get(type_name)
        if ftype is None:
            self.report(path + ("type",), f"unknown field type '{type_name}'", did_you_mean(type_name, self.types))
            return None
        allowed = _COMMON_KEYS | ftype.keys
        ok = True
        for key in raw:
            if key not in allowed:
                self.report(path + (key,), f"'{key}' does not apply to a {type_name} field", key=True)
                ok = False
        options = tuple(
            Option(o["value"], _as_label(o.get("label"), str(o["value"])), o.get("color"))
            if isinstance(o, dict) else Option(o, _as_label(None, str(o)))
            for o in raw.get("options", ())
        )
        spec = FieldSpec(
            name=name, type=type_name, label=_as_label(raw.get("label"), name),
            help=_as_label(raw["help"], "") if "help" in raw else None,
            required=bool(raw.get("required", False)), unique=bool(raw.get("unique", False)),
            index=bool(raw.get("index", False)), readonly=bool(raw.get("readonly", False)),
            default=raw.get("default"), min=raw.get("min"), max=raw.get("max"),
            max_length=raw.get("max_length"), min_length=raw.get("min_length"),
            pattern=raw.get("pattern"), options=options, to=raw.get("to"),
            on_delete=raw.get("on_delete", "restrict"),
            precision=raw.get("precision"), scale=raw.get("scale"), currency=raw.get("currency"),
            mobile_only=bool(raw.get("mobile_only", False)), level=raw.get("level", "district"),
        )

        def type_report(message: str, key: str) -> None:
            self.report(path + (key,), message)

        ftype.check(spec, type_report)
        if type_name == "ref" and not spec.to:
            self.report(path + ("type",), "a ref field needs 'to': the entity it refers to")
            ok = False
        if spec.default is not None and ok:
            self.check_default(spec, ftype)
        if spec.required and spec.default is None and spec.readonly and type_name != "autonumber":
            self.report(path + ("readonly",), "a required readonly field needs a default: nobody could set it")
        if spec.on_delete == "set_null" and spec.required:
            self.report(path + ("on_delete",), "on_delete: set_null cannot apply to a required field")
        return spec if ok else None

    def check_default(self, spec: FieldSpec, ftype: Any) -> None:
        if spec.type == "date" and spec.default == "today" or spec.type == "datetime" and spec.default == "now":
            return
        if spec.type in ("autonumber", "ref"):
            self.report(("fields", spec.name, "default"), f"a {spec.type} field cannot have a default")
            return
        try:
            ftype.coerce(spec, spec.default)
        except ValueError as exc:
            hint = did_you_mean(spec.default, [str(v) for v in spec.option_values]) if spec.options else ""
            value, reason = shown(repr(spec.default)), str(exc)
            # Some types' messages start with the value already ("'999999' is not a known region code").
            text = f"default {reason}" if reason.startswith(repr(spec.default)) else f"default {value} {reason}"
            self.report(("fields", spec.name, "default"), text, hint)

    def build(self) -> EntitySpec:
        data = self.data
        fields: dict[str, FieldSpec] = {}
        for name, raw in data["fields"].items():
            spec = self.field_spec(name, raw)
            if spec is not None:
                fields[name] = spec
        system = _system_fields(bool(data.get("owned")))
        all_names = set(fields) | set(system)
        # A field with problems of its own is still declared: layouts naming it are not wrong too.
        declared = set(data["fields"])
        known = all_names | declared

        title = data.get("title")
        if title is None:
            title = next((f.name for f in fields.values() if f.type in ("string", "autonumber")), "id")
        elif title not in fields and title not in declared:
            self.report(("title",), f"title field '{title}' is not a field of {self.name}", did_you_mean(title, fields))

        indexes = []
        for i, raw in enumerate(data.get("indexes", ())):
            names = tuple(raw["fields"])
            for j, fname in enumerate(names):
                if fname not in known:
                    self.report(("indexes", i, "fields", j), f"index on unknown field '{fname}'",
                                did_you_mean(fname, all_names))
            index_name = raw.get("name") or f"ix_{self.name}_{'_'.join(names)}"
            indexes.append(IndexSpec(index_name[:INDEX_NAME_LIMIT], names, bool(raw.get("unique", False))))

        list_raw = data.get("list", {})
        sort_text = list_raw.get("sort", "-id")
        sort = tuple(sort_text.split(","))
        listed = known - {"deleted_at", "deleted_by"}
        for key in ("columns", "search"):
            for j, fname in enumerate(list_raw.get(key, ())):
                if fname not in listed:
                    self.report(("list", key, j), f"unknown field '{fname}' in list {key}", did_you_mean(fname, listed))
        for fname in list_raw.get("search", ()):
            f = fields.get(fname)
            if f is not None and f.type not in ("string", "text", "email", "phone", "autonumber", "url"):
                self.report(("list", "search"), f"cannot search {f.type} field '{fname}': only text-like fields")
        for key in sort:
            fname = key.lstrip("-")
            if fname not in listed:
                self.report(("list", "sort"), f"unknown field '{fname}' in list sort", did_you_mean(fname, listed))
            elif fname in fields and not self.types[fields[fname].type].sortable:
                self.report(("list", "sort"), f"cannot sort by {fields[fname].type} field '{fname}'")
        columns = tuple(list_raw.get("columns") or [f for f in fields][:6])

        form = []
        placed: dict[str, int] = {}
        for i, section in enumerate(data.get("form", ())):
            for j, fname in enumerate(section["fields"]):
                if fname not in fields and fname not in declared:
                    self.report(("form", i, "fields", j), f"unknown field '{fname}' in form layout",
                                did_you_mean(fname, fields))
                elif fname in placed:
                    self.report(("form", i, "fields", j),
                                f"field '{fname}' is already in form section {placed[fname] + 1}")
                else:
                    placed[fname] = i
            form.append(SectionSpec(_as_label(section["section"], "") if "section" in section else None,
                                    tuple(section["fields"]), section.get("visible_if"), section.get("columns", 2)))
        if not form:
            form.append(SectionSpec(None, tuple(f for f in fields)))

        relations = {}
        for rname, raw in data.get("relations", {}).items():
            if rname in fields:
                self.report(("relations", rname), f"relation '{rname}' has the name of a field", key=True)
            elif rname in RESERVED_RELATION_NAMES:
                self.report(("relations", rname), f"'{rname}' is a reserved name: /api/v1/{self.name}/<id>/{rname} "
                            "is the platform's", key=True)
            relations[rname] = RelationSpec(rname, raw["kind"], raw["entity"], raw.get("field"),
                                            _as_label(raw["label"], rname) if "label" in raw else None)

        merged = dict(system)
        merged.update(fields)
        timeline = data.get("timeline")
        if timeline is not None and (timeline not in merged or merged[timeline].type not in ("date", "datetime")):
            if timeline in merged:
                self.report(("timeline",), f"timeline field '{timeline}' is not a date or datetime field")
            elif timeline not in declared:  # a declared field with problems of its own is reported already
                self.report(("timeline",), f"timeline field '{timeline}' is not a field of {self.name}",
                            did_you_mean(timeline, merged))
            timeline = None
        due = self.due(data.get("due"), merged, declared)
        assignment, pool = self.assignment(data.get("assignment"), merged), self.pool(data.get("pool"))
        return EntitySpec(
            name=self.name, label=_as_label(data.get("label"), self.name),
            plural=_as_label(data.get("plural", data.get("label")), self.name),
            title=title if title in merged else "id", owned=bool(data.get("owned")),
            fields=MappingProxyType(merged), indexes=tuple(indexes),
            relations=MappingProxyType(relations),
            list=ListSpec(columns, sort, tuple(list_raw.get("search", ())), list_raw.get("page_size", 50)),
            form=tuple(form), description=data.get("description", ""), source=self.doc.file,
            timeline=timeline, due=due, assignment=assignment, pool=pool,
        )

    def assignment(self, raw: Any, fields: Mapping[str, FieldSpec]) -> AssignmentSpec | None:
        """``assignment``: an owned entity's rule for new records' owners
        (role names are checked against roles.yaml with the whole spec)."""
        if raw is None:
            return None
        if not self.doc.data.get("owned"):
            self.report(("assignment",), f"assignment needs owned: true on {self.name} (records without owners "
                        "cannot be assigned)", key=True)
        if "role" not in raw and "team" not in raw:
            self.report(("assignment",), "assignment needs a role or a team to pick its candidates from", key=True)
        route = raw.get("route") or {}
        route_field = route.get("field")
        if route_field is not None and route_field not in fields:
            self.report(("assignment", "route", "field"), f"unknown field '{route_field}' in assignment route",
                        did_you_mean(route_field, fields))
        return AssignmentSpec(raw["strategy"], raw.get("role"), raw.get("team"), raw.get("on", "create"),
                              raw.get("keep_own", True), route_field,
                              MappingProxyType({str(k): v for k, v in route.get("teams", {}).items()}))

    def pool(self, raw: Any) -> PoolSpec | None:
        """``pool``: the entity's pool of unowned records (its return_when is
        compiled with the whole spec, by crmkit.pool)."""
        if raw is None:
            return None
        if not self.doc.data.get("owned"):
            self.report(("pool",), f"a pool needs owned: true on {self.name} (the pool is the records without "
                        "an owner)", key=True)
        return PoolSpec(raw.get("claim_limit"), raw.get("cooldown_days", 0), raw.get("return_after_days"),
                        raw.get("return_when"))

    def due(self, raw: Any, fields: Mapping[str, FieldSpec], declared: set[str]) -> DueSpec | None:
        """``due: FIELD`` or ``{field, filter}``: a date or datetime field (the
        filter's names are checked with the other documents' references)."""
        if raw is None:
            return None
        name, path = (raw, ("due",)) if isinstance(raw, str) else (raw["field"], ("due", "field"))
        f = fields.get(name)
        if f is None:
            if name not in declared:
                self.report(path, f"due names unknown field '{name}'", did_you_mean(name, fields))
            return None
        if f.type not in ("date", "datetime"):
            self.report(path, f"due must name a date or datetime field, not {f.type} field '{name}'")
            return None
        texts = {key: _filter_text(value) for key, value in (raw.get("filter") or {}).items()
                 } if isinstance(raw, dict) else {}
        return DueSpec(name, MappingProxyType({k: t for k, t in texts.items() if t is not None}))


_COMMON_KEYS = frozenset({"type", "label", "help", "required", "unique", "index", "readonly", "default",
                          "formula", "required_if", "visible_if", "readonly_if"})


def _system_fields(owned: bool) -> dict[str, FieldSpec]:
    def system(name: str, type_name: str, en: str, zh: str, readonly: bool = False, index: bool = False) -> FieldSpec:
        return FieldSpec(name, type_name, MappingProxyType({"en": en, "zh": zh}), system=True, readonly=readonly,
                         index=index)

    fields = [
        system("id", "integer", "ID", "编号", readonly=True),
        system("version", "integer", "Version", "版本", readonly=True),
        system("created_at", "datetime", "Created at", "创建时间", readonly=True, index=True),
        system("updated_at", "datetime", "Updated at", "更新时间", readonly=True, index=True),
        system("created_by", "integer", "Created by", "创建人", readonly=True),
        system("updated_by", "integer", "Updated by", "修改人", readonly=True),
    ]
    if owned:
        fields += [system("owner_id", "integer", "Owner", "负责人", index=True),
                   system("team_id", "integer", "Team", "所属部门", index=True)]
    return {f.name: f for f in fields}


@dataclass
class _Known:
    """What the config declares, for resolving the names other documents use.

    An entity or field written down is declared even when it has problems of
    its own (a broken entity document, a field of an unknown type): the one
    mistake is reported where it is, not again wherever the name is used."""

    entities: dict[str, EntitySpec] = field(default_factory=dict)
    #: Field names written in each built entity's file, the broken ones too.
    fields: dict[str, frozenset[str]] = field(default_factory=dict)
    #: Entities whose document is broken: their names resolve, nothing is checked against them.
    broken: set[str] = field(default_factory=set)

    def declares(self, entity: str) -> bool:
        return entity in self.entities or entity in self.broken

    def has_field(self, entity: EntitySpec, name: str) -> bool:
        return name in entity.fields or name in self.fields.get(entity.name, ())


def _declare_broken_entities(docs: list[Document], known: _Known) -> None:
    """A broken entity document still declares its entity (when its name is one)."""
    for doc in docs:
        name = doc.data.get("entity")
        if (isinstance(name, str) and _IDENTIFIER.match(name) and not known.declares(name)
                and name not in RESERVED_ENTITY_NAMES and not name.startswith("crmkit")):
            known.broken.add(name)


def _check_cross_references(known: _Known, docs: dict[str, Document], problems: ProblemList) -> None:
    entities = known.entities
    for entity in entities.values():
        doc = docs[entity.name]
        for f in entity.user_fields:
            if f.type != "ref" or f.to is None or known.declares(f.to):
                continue
            if f.to in DIRECTORY_ENTITIES:
                if "on_delete" in doc.data["fields"][f.name]:
                    problems.add(doc, ("fields", f.name, "on_delete"), f"on_delete does not apply to a ref to {f.to}: "
                                 "the platform's users and teams are disabled, never deleted", key=True)
                continue
            problems.add(doc, ("fields", f.name, "to"), f"ref to unknown entity '{f.to}'",
                         did_you_mean(f.to, [*entities, *known.broken]))
        for rel in entity.relations.values():
            other = entities.get(rel.entity)
            if other is None:
                if rel.entity in DIRECTORY_ENTITIES:
                    problems.add(doc, ("relations", rel.name, "entity"), f"a relation links entities of the config, "
                                 f"not the platform's {rel.entity}s: add a ref field to {rel.entity} instead")
                elif rel.entity not in known.broken:
                    problems.add(doc, ("relations", rel.name, "entity"), f"relation to unknown entity '{rel.entity}'",
                                 did_you_mean(rel.entity, entities))
                continue
            if rel.kind == "one_to_many":
                via = rel.field or entity.name
                target = other.fields.get(via)
                if target is None and known.has_field(other, via):
                    continue  # declared, with a problem of its own
                if target is None:
                    refs = [f.name for f in other.user_fields if f.type == "ref" and f.to == entity.name]
                    hint = (f"{other.name} refers here through: {', '.join(refs)}" if refs
                            else f"add a ref field to {entity.name} on {other.name}")
                    problems.add(doc, ("relations", rel.name), f"{other.name} has no field '{via}' for this relation",
                                 hint)
                elif target.type != "ref" or target.to != entity.name:
                    problems.add(doc, ("relations", rel.name, "field"),
                                 f"{other.name}.{via} is not a ref to {entity.name}")
            elif rel.field:
                problems.add(doc, ("relations", rel.name, "field"), "'field' applies only to one_to_many relations",
                             key=True)
