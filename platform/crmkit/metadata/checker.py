"""Checking documents twice, structurally (JSON Schema) and semantically, into an AppSpec.

Every problem is collected with its file, line and column; nothing is raised
until the end, so ``crmkit check`` reports them all at once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from jsonschema.exceptions import ValidationError, best_match

from .builtin_entities import DIRECTORY_FIELDS
from .conditions import compile_rules
from .loader import Document
from .problems import MAX_MESSAGE, Problem, ProblemList, did_you_mean, shown
from .schemas import fast_check, load_schema, validator
from .spec import (
    DEFAULT_TIMEZONE,
    DIRECTORY_ENTITIES,
    ID_OPERATORS,
    MAX_SUPERIOR_DEPTH,
    QUERY_PARAMETERS,
    RESERVED_ENTITY_NAMES,
    RESERVED_FIELD_NAMES,
    RESERVED_RELATION_NAMES,
    SYSTEM_FIELDS,
    ApprovalSpec,
    ApprovalStepSpec,
    AppSpec,
    AssignmentSpec,
    DueSpec,
    EntitySpec,
    FieldSpec,
    IndexSpec,
    ListSpec,
    MenuGroup,
    Option,
    PoolSpec,
    RelationSpec,
    RoleSpec,
    SectionSpec,
    TagSpec,
    TemplateSpec,
    TransitionSpec,
    ViewSpec,
    WorkflowSpec,
    humanize,
)

SINGLE_DOCUMENT_KINDS = ("app",)
# Kept in step with crmkit.permissions (tests/test_config.py checks it): the
# platform's own entities a role may name, its built-in role, the system's name.
PLATFORM_ENTITIES = ("user", "team", "audit")
ADMIN_ROLE = "admin"
SYSTEM_ROLE = "system"
ALWAYS_VISIBLE = ("id", "version")
INDEX_NAME_LIMIT = 60
_IDENTIFIER = re.compile(load_schema("common.json")["$defs"]["identifier"]["pattern"])


def _as_label(value: Any, fallback: str) -> Mapping[str, str]:
    if isinstance(value, str):
        return MappingProxyType({"en": value, "zh": value})
    if isinstance(value, dict):
        return MappingProxyType(dict(value))
    return MappingProxyType({"en": humanize(fallback)})


# ---------------------------------------------------------------- structure

def _structural_message(error: ValidationError) -> tuple[str, str, bool]:
    """(message, hint, point at key?) for a schema error, in words for admins."""
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    if error.validator == "additionalProperties":
        allowed = list(schema.get("properties", {}))
        extras = [k for k in error.instance if k not in allowed] if isinstance(error.instance, dict) else []
        extra = extras[0] if extras else "?"
        return f"unknown key '{shown(extra)}'", did_you_mean(extra, allowed), True
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return f"missing required key '{missing}'", "", False
    if error.validator in ("oneOf", "anyOf") and error.context:
        if _is_label_schema(schema):
            others = [k for k in error.instance if k not in ("en", "zh")] if isinstance(error.instance, dict) else []
            if others:
                return (f"a label is a string or a mapping with keys en and zh, not '{shown(others[0])}'",
                        did_you_mean(others[0], ("en", "zh")), False)
            return "a label is a string or a mapping with keys en and zh", "", False
        # The branches whose type matched say what is wrong (e.g. a string not among an enum's values).
        typed = [e for e in error.context if e.validator != "type"]
        message, hint, _ = _structural_message(best_match(typed or error.context))
        return message, hint, False
    if error.validator == "pattern" and schema.get("pattern", "").startswith("^[a-z]"):
        return (f"'{shown(error.instance)}' is not a valid name: use snake_case "
                "(lower-case letters, digits and underscores, starting with a letter)"), "", False
    if error.validator == "enum":
        options = [str(option) for option in schema.get("enum", ())]
        return (f"'{shown(error.instance)}' is not one of {', '.join(options)}",
                did_you_mean(error.instance, options), False)
    if error.validator == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        article = "an" if str(expected)[:1] in "aeiou" else "a"
        return f"expected {article} {expected}, got {_json_type(error.instance)}", "", False
    if error.validator == "propertyNames":
        return _structural_message(best_match(error.context))[0] if error.context else error.message, "", True
    if error.validator in _TOO_MANY:
        return f"more than {error.validator_value} {_TOO_MANY[error.validator]}", "", False
    return shown(error.message, MAX_MESSAGE), "", False


_TOO_MANY = {"maxLength": "characters", "maxItems": "items", "maxProperties": "entries"}


def _is_label_schema(schema: Any) -> bool:
    """The shared label schema: a string, or a mapping of en/zh."""
    branches = schema.get("oneOf", ()) if isinstance(schema, dict) else ()
    return any(isinstance(b, dict) and set(b.get("properties", {})) == {"en", "zh"} for b in branches)


def _json_type(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number", type(None): "nothing"}.get(type(value), type(value).__name__)


def _names_a_key(error: ValidationError) -> bool:
    """Whether the error is about a mapping's key (propertyNames), not a value."""
    steps = list(error.relative_schema_path)
    if "propertyNames" not in steps:
        return False
    after = steps[len(steps) - steps[::-1].index("propertyNames"):]
    return not any(step in ("properties", "additionalProperties", "items") for step in after)


def check_structure(doc: Document, problems: ProblemList) -> bool:
    if fast_check(doc.kind)(doc.data):
        return True
    before = len(problems.problems)
    for error in validator(doc.kind).iter_errors(doc.data):
        if problems.full(doc.file):  # the rest would not be listed: no need to find them
            problems.unlisted(doc.file)
            break
        message, hint, at_key = _structural_message(error)
        path = tuple(error.absolute_path)
        if _names_a_key(error):
            # A key broke the mapping's rule for names: point at that key, not at the mapping.
            path, at_key = path + (error.instance,), True
            if error.validator == "enum" and error.schema.get("title"):
                message = f"unknown {error.schema['title']} '{shown(error.instance)}'"
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = error.schema.get("properties", {})
            extras = [k for k in error.instance if k not in allowed]
            for extra in extras:
                problems.add(doc, path + (extra,), f"unknown key '{shown(extra)}'", did_you_mean(extra, allowed),
                             key=True)
            continue
        problems.add(doc, path, message, hint, key=at_key)
    return len(problems.problems) == before


# ---------------------------------------------------------------- semantics

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


def _check_app(doc: Document | None, problems: ProblemList) -> str:
    """The app's timezone (given, or the default), which must exist."""
    app = doc.data if doc is not None else {}
    name = app.get("timezone", DEFAULT_TIMEZONE)
    try:
        ZoneInfo(name)
    except (ValueError, OSError, ZoneInfoNotFoundError):  # ValueError: not even a zone's form ("../x")
        if doc is not None and "timezone" in app:
            problems.add(doc, ("timezone",), f"unknown timezone '{shown(name)}'",
                         did_you_mean(name, available_timezones()) or "an IANA name, e.g. Asia/Shanghai")
        elif doc is not None:
            problems.add(doc, ("app",), f"the default timezone {name} is not known on this machine: "
                         "install the tzdata package or set timezone", key=True)
    return name


def build_spec(documents: Iterable[Document], types: Mapping[str, Any], problems: ProblemList,
               config_dir: str = "", actions: Mapping[str, Any] | None = None) -> AppSpec | None:
    """Check every document and build the AppSpec; None when there were problems.
    ``actions``: the automation actions by name (None: action names are not checked)."""
    by_kind: dict[str, list[Document]] = defaultdict(list)
    for doc in documents:
        if doc.sound and check_structure(doc, problems):
            by_kind[doc.kind].append(doc)
        else:
            by_kind["_broken_" + doc.kind].append(doc)

    app_docs = by_kind.get("app", []) + by_kind.get("_broken_app", [])
    if not app_docs and not problems.problems:  # a file that failed to parse may be the app document
        problems.add_problem(Problem(config_dir or "<config>", 1, 1,
                                     "no app document found: add app.yaml with at least 'app: <name>'"))
    for extra in app_docs[1:]:
        problems.add(extra, ("app",), f"a second app document (the first is in {app_docs[0].file})", key=True)
    app_doc = by_kind["app"][0] if by_kind.get("app") else None
    app: dict[str, Any] = app_doc.data if app_doc is not None else {"app": "app"}
    timezone = _check_app(app_doc, problems)

    known = _Known()
    entity_docs: dict[str, Document] = {}
    for doc in by_kind.get("entity", []):
        name = doc.data["entity"]
        if name in entity_docs:
            problems.add(doc, ("entity",), f"entity '{name}' is defined twice (also in {entity_docs[name].file})")
            continue
        if name in RESERVED_ENTITY_NAMES or name.startswith("crmkit"):
            problems.add(doc, ("entity",), f"'{name}' is a reserved name (used by the platform's own URLs or tables)")
            continue
        entity_docs[name] = doc
        known.entities[name] = _EntityBuilder(doc, types, problems).build()
        known.fields[name] = frozenset(doc.data["fields"])
    _declare_broken_entities(by_kind.get("_broken_entity", []), known)
    _check_cross_references(known, entity_docs, problems)
    views, tags = _check_documents(by_kind, known, types, problems)
    menu = _menu(by_kind["app"][0], known.entities, problems) if by_kind.get("app") else ()
    templates = _build_templates(by_kind.get("templates", []), known, problems)

    if problems:
        return None
    spec = AppSpec(
        name=app["app"], label=_as_label(app.get("label"), app["app"]),
        entities=MappingProxyType(known.entities), locales=tuple(app.get("locales", ("zh", "en"))),
        timezone=timezone, plugins=tuple(app.get("plugins", ())),
        recycle_bin_days=app.get("recycle_bin_days", 30), max_page_size=app.get("max_page_size", 200),
        version=str(app.get("version", "")), description=app.get("description", ""),
        roles=MappingProxyType(_role_specs(by_kind.get("roles", []))),
        workflows=tuple(_workflow_spec(doc) for doc in by_kind.get("workflow", [])),
        config_dir=config_dir,
        public=tuple(app.get("public", ())), menu=menu,
        views=MappingProxyType(views), tags=MappingProxyType(tags), templates=MappingProxyType(templates),
    )
    from ..tagging import check_rules  # tag rules and segments are checked against the whole spec

    check_rules(spec, by_kind.get("tags", []) + by_kind.get("views", []), problems)
    from ..automations.checking import compile_automations  # automations name everything else
    from ..pool import check_pools  # a pool's return rule and an assignment's role, against the whole spec

    check_pools(spec, entity_docs, problems)
    automations = compile_automations(spec, by_kind.get("automations", []), actions, problems).automations
    compiled = compile_rules(spec, entity_docs, by_kind.get("workflow", []), problems)
    if compiled is None or problems:
        return None
    return dataclasses.replace(compiled, automations=automations)


def _menu(doc: Document, entities: Mapping[str, EntitySpec], problems: ProblemList) -> tuple[MenuGroup, ...]:
    """app.yaml's ``menu``: every name an entity of the config, each listed once."""
    groups = []
    seen: set[str] = set()
    for i, raw in enumerate(doc.data.get("menu", ())):
        for j, name in enumerate(raw["entities"]):
            if name not in entities:
                problems.add(doc, ("menu", i, "entities", j), f"unknown entity '{name}'", did_you_mean(name, entities))
            elif name in seen:
                problems.add(doc, ("menu", i, "entities", j), f"entity '{name}' is already in the menu")
            seen.add(name)
        label = _as_label(raw["group"], "") if "group" in raw else None
        groups.append(MenuGroup(label, tuple(raw["entities"])))
    return tuple(groups)


def _check_documents(by_kind: dict[str, list[Document]], known: _Known, types: Mapping[str, Any],
                     problems: ProblemList) -> tuple[dict[str, ViewSpec], dict[str, TagSpec]]:
    """The entity and field names the later kinds of document mention must
    exist; returns the views and tags, typed."""
    entities = known.entities

    # key=True: the name is a mapping key (roles, view filters), so point at the key, not its value.
    def entity_ref(doc: Document, path: tuple, name: str, key: bool = False) -> EntitySpec | None:
        if name == "*" and doc.kind == "roles":  # every entity of the config
            return None
        if name not in entities:
            if name not in known.broken:
                problems.add(doc, path, f"unknown entity '{name}'", did_you_mean(name, entities), key=key)
            return None
        return entities[name]

    def field_ref(doc: Document, path: tuple, entity: EntitySpec | None, name: str, key: bool = False) -> None:
        if entity is not None and not known.has_field(entity, name):
            problems.add(doc, path, f"{entity.name} has no field '{name}'", did_you_mean(name, entity.fields), key=key)

    for doc in by_kind.get("workflow", []):
        entity = entity_ref(doc, ("entity",), doc.data["entity"])
        field_ref(doc, ("field",), entity, doc.data["field"])
        states = doc.data["states"]
        if entity is not None and doc.data["field"] in entity.fields:
            f = entity.fields[doc.data["field"]]
            if f.type != "enum":
                problems.add(doc, ("field",), f"workflow field {entity.name}.{f.name} must be an enum, not {f.type}")
            else:
                for i, state in enumerate(states):
                    if state not in [str(v) for v in f.option_values]:
                        problems.add(doc, ("states", i), f"state '{state}' is not an option of {entity.name}.{f.name}",
                                     did_you_mean(state, [str(v) for v in f.option_values]))
        for i, move in enumerate(doc.data["transitions"]):
            sources = move["from"] if isinstance(move["from"], list) else [move["from"]]
            for state in sources + [move["to"]]:
                if state != "*" and state not in states:
                    problems.add(doc, ("transitions", i), f"unknown state '{state}'", did_you_mean(state, states))
            for j, fname in enumerate(move.get("require", ())):
                field_ref(doc, ("transitions", i, "require", j), entity, fname)
    defined = _check_roles(by_kind.get("roles", []), entity_ref, field_ref, problems)
    # A broken roles document still declares its roles: naming one elsewhere is not a second mistake.
    defined |= {role for doc in by_kind.get("_broken_roles", []) if isinstance(doc.data.get("roles"), dict)
                for role in doc.data["roles"]}
    for doc in by_kind.get("workflow", []):
        for i, move in enumerate(doc.data["transitions"]):
            for j, role in enumerate(move.get("roles", ())):
                if role not in defined:
                    problems.add(doc, ("transitions", i, "roles", j), f"unknown role '{role}'",
                                 did_you_mean(role, defined))
            _check_approval(doc, ("transitions", i, "approval"), move.get("approval"), defined, problems)
    references = _References(known, entity_ref, field_ref, defined, problems)
    for doc in by_kind.get("entity", []):
        due = doc.data.get("due")
        if isinstance(due, dict) and due.get("filter") and doc.data["entity"] in entities:
            _view_filter(doc, ("due",), entities[doc.data["entity"]], due["filter"], references, types)
    views = _build_views(by_kind.get("views", []), references, types)
    tags = _build_tags(by_kind.get("tags", []), references)
    return views, tags


# ---------------------------------------------------------------- views and tags

@dataclass
class _References:
    """How the checks of views and tags resolve the names they use."""

    known: _Known
    entity: Callable[..., EntitySpec | None]
    field: Callable[..., None]
    roles: set[str]
    problems: ProblemList


def _defined_once(doc: Document, what: str, name: str, seen: dict[str, Document], problems: ProblemList) -> bool:
    first = seen.setdefault(name, doc)
    if first is not doc:
        problems.add(doc, (f"{what}s", name), f"{what} '{name}' is defined twice (also in {first.file})", key=True)
        return False
    return True


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


def _filter_text(value: Any) -> str | None:
    """A filter value as the API's query text; None when it cannot be one."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, dt.date):  # a date or a datetime
        return value.isoformat()
    if isinstance(value, list) and not any(isinstance(item, list | dict) for item in value):
        texts = [text for text in map(_filter_text, value) if text is not None]
        if texts and len(texts) == len(value):
            return ",".join(texts)
    return None


def _build_tags(docs: list[Document], refs: _References) -> dict[str, TagSpec]:
    tags: dict[str, TagSpec] = {}
    seen: dict[str, Document] = {}
    for doc in docs:
        for name, raw in doc.data["tags"].items():
            if not _defined_once(doc, "tag", name, seen, refs.problems):
                continue
            refs.entity(doc, ("tags", name, "entity"), raw["entity"])
            tags[name] = TagSpec(name=name, entity=raw["entity"], label=_as_label(raw.get("label"), name),
                                 color=raw.get("color"), rule=raw.get("rule"), use=raw.get("use", ""),
                                 source=doc.file,
                                 group=_as_label(raw["group"], "") if "group" in raw else None)
    return tags


def _build_templates(docs: list[Document], known: _Known, problems: ProblemList) -> dict[str, TemplateSpec]:
    """The message templates, typed; their variables and channels are checked
    by crmkit.messaging once the whole spec is built (they read the entities)."""
    templates: dict[str, TemplateSpec] = {}
    seen: dict[str, Document] = {}
    for doc in docs:
        for name, raw in doc.data["templates"].items():
            if not _defined_once(doc, "template", name, seen, problems):
                continue
            entity = raw.get("entity")
            if entity is not None and not known.declares(entity):
                problems.add(doc, ("templates", name, "entity"), f"unknown entity '{entity}'",
                             did_you_mean(entity, known.entities))
            templates[name] = TemplateSpec(
                name=name, channel=raw["channel"], body=_as_label(raw["body"], name),
                subject=_as_label(raw["subject"], name) if "subject" in raw else None,
                label=_as_label(raw["label"], name) if "label" in raw else None,
                entity=entity, source=doc.file)
    return templates


def _check_roles(docs: list[Document], entity_ref, field_ref, problems: ProblemList) -> set[str]:
    """Check the roles documents; returns the names of every role there is
    (the platform's admin role always is)."""
    defined: dict[str, Document] = {}
    for doc in docs:
        for role, raw in doc.data["roles"].items():
            if role == SYSTEM_ROLE:
                problems.add(doc, ("roles", role), f"'{role}' is a reserved role name "
                             "(the platform's own actor: seeds, migrations, automations)", key=True)
            elif role in defined:
                problems.add(doc, ("roles", role), f"role '{role}' is defined twice (also in {defined[role].file})",
                             key=True)
            defined.setdefault(role, doc)
            for ename in raw.get("entities", {}):
                if ename not in PLATFORM_ENTITIES:
                    entity_ref(doc, ("roles", role, "entities", ename), ename, key=True)
            for target in raw.get("fields", {}):
                ename, _, fname = target.partition(".")
                path = ("roles", role, "fields", target)
                if ename in PLATFORM_ENTITIES:
                    problems.add(doc, path, f"no field rules apply to the platform's {ename} records", key=True)
                    continue
                entity = entity_ref(doc, path, ename, key=True)
                if entity is not None and fname in ALWAYS_VISIBLE:
                    problems.add(doc, path, f"{target} cannot have a field rule: every record shows its id and "
                                 "version (clients need them to address and update it)", key=True)
                    continue
                field_ref(doc, path, entity, fname, key=True)
                level = raw["fields"][target]
                f = entity.fields.get(fname) if entity is not None else None
                if (f is not None and level != "write" and f.required and f.default is None
                        and not f.readonly and f.type != "autonumber" and _grants(raw, ename, "create")):
                    problems.add(doc, path, f"{role} may create {ename} records but cannot fill in {target}, "
                                 f"which is required ({level} for this role)", key=True)
    return set(defined) | {ADMIN_ROLE} - {SYSTEM_ROLE}


def _grants(raw: dict, entity: str, action: str) -> bool:
    entities = raw.get("entities", {})
    value = entities.get(entity, {}).get(action, entities.get("*", {}).get(action, "none"))
    return value is True or value not in (False, "none")



# ---------------------------------------------------------------- roles and workflows (checked above)

def _scope(value: bool | str) -> str:
    if value is True:
        return "all"
    if value is False:
        return "none"
    return value


def _role_specs(docs: list[Document]) -> dict[str, RoleSpec]:
    roles: dict[str, RoleSpec] = {}
    for doc in docs:
        for name, raw in doc.data["roles"].items():
            fields: dict[str, dict[str, str]] = {}
            for target, level in raw.get("fields", {}).items():
                entity, _, fname = target.partition(".")
                fields.setdefault(entity, {})[fname] = level
            roles[name] = RoleSpec(
                name, _as_label(raw.get("label"), name), raw.get("description", ""),
                MappingProxyType({entity: MappingProxyType({action: _scope(value) for action, value in actions.items()})
                                  for entity, actions in raw.get("entities", {}).items()}),
                MappingProxyType({entity: MappingProxyType(levels) for entity, levels in fields.items()}),
                source=doc.file)
    return roles


def _workflow_spec(doc: Document) -> WorkflowSpec:
    data = doc.data
    moves = []
    for raw in data["transitions"]:
        name = raw.get("name") or raw["to"]
        sources = raw["from"] if isinstance(raw["from"], list) else [raw["from"]]
        moves.append(TransitionSpec(name, _as_label(raw.get("label"), name), tuple(sources), raw["to"],
                                    tuple(raw.get("require", ())), tuple(raw.get("roles", ())), raw.get("when"),
                                    approval=_approval_spec(raw.get("approval"))))
    states = tuple(data["states"])
    return WorkflowSpec(data["workflow"], _as_label(data.get("label"), data["workflow"]), data["entity"],
                        data["field"], states, data.get("initial") or states[0], tuple(moves), source=doc.file)


def _approval_spec(raw: Mapping[str, Any] | None) -> ApprovalSpec | None:
    """A move's ``approval``, typed; each step's mode spelled out (the
    approval's when the step names none)."""
    if raw is None:
        return None
    mode = raw.get("mode", "any")
    steps = []
    for step in raw["steps"]:
        label = _as_label(step["label"], "") if "label" in step else None
        steps.append(ApprovalStepSpec(label, step.get("role"), step.get("superior"), step.get("mode", mode),
                                      step.get("when")))
    return ApprovalSpec(tuple(steps), mode, remind_after=duration(raw["remind_after"])
                        if "remind_after" in raw else None)


#: A duration as the metadata writes it: 30m, 24h, 2d.
DURATION = re.compile(r"^([1-9][0-9]{0,3})([mhd])$")


def duration(text: str) -> dt.timedelta:
    """``30m``, ``24h``, ``2d`` as a timedelta (the schema checked the text)."""
    match = DURATION.match(text)
    assert match is not None, text
    unit = {"m": dt.timedelta(minutes=1), "h": dt.timedelta(hours=1), "d": dt.timedelta(days=1)}[match.group(2)]
    return int(match.group(1)) * unit


def _check_approval(doc: Document, path: tuple, raw: Any, roles: set[str] | frozenset[str],
                    problems: ProblemList) -> None:
    """A move's approval steps: each names one known role or a superior
    within reach (their conditions are compiled with the other expressions)."""
    if not isinstance(raw, dict):
        return
    for k, step in enumerate(raw.get("steps", ())):
        where = path + ("steps", k)
        if ("role" in step) == ("superior" in step):
            problems.add(doc, where, "an approval step names its approvers by 'role' or by 'superior' (one of them)",
                         "e.g. {role: finance} or {superior: 1} (the requester's direct superior)")
        if "role" in step and step["role"] not in roles:
            problems.add(doc, where + ("role",), f"unknown role '{step['role']}'", did_you_mean(step["role"], roles))
        depth = step.get("superior")
        if depth is not None and not (isinstance(depth, int) and 1 <= depth <= MAX_SUPERIOR_DEPTH):
            problems.add(doc, where + ("superior",),
                         f"superior must be 1 to {MAX_SUPERIOR_DEPTH}, not {depth}",
                         "the Nth superior up the requester's reporting chain; 1 is their direct superior")
