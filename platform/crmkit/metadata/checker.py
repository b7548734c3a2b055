"""Checking documents twice, structurally (JSON Schema) and semantically, into an AppSpec.

Every problem is collected with its file, line and column; nothing is raised
until the end, so ``crmkit check`` reports them all at once.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from jsonschema.exceptions import ValidationError, best_match

from .loader import Document
from .problems import ProblemList, did_you_mean
from .schemas import fast_check, validator
from .spec import (
    QUERY_PARAMETERS,
    RESERVED_ENTITY_NAMES,
    RESERVED_FIELD_NAMES,
    RESERVED_RELATION_NAMES,
    SYSTEM_FIELDS,
    AppSpec,
    EntitySpec,
    FieldSpec,
    IndexSpec,
    ListSpec,
    Option,
    RelationSpec,
    RoleSpec,
    SectionSpec,
    TransitionSpec,
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


def _as_label(value: Any, fallback: str) -> Mapping[str, str]:
    if isinstance(value, str):
        return MappingProxyType({"en": value, "zh": value})
    if isinstance(value, dict):
        return MappingProxyType(dict(value))
    return MappingProxyType({"en": humanize(fallback)})


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


# ---------------------------------------------------------------- structure

def _structural_message(error: ValidationError) -> tuple[str, str, bool]:
    """(message, hint, point at key?) for a schema error, in words for admins."""
    if error.validator == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        extras = [k for k in error.instance if k not in allowed] if isinstance(error.instance, dict) else []
        extra = extras[0] if extras else "?"
        return f"unknown key '{extra}'", did_you_mean(extra, allowed), True
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return f"missing required key '{missing}'", "", False
    if error.validator in ("oneOf", "anyOf") and error.context:
        if _is_label_schema(error.schema):
            others = [k for k in error.instance if k not in ("en", "zh")] if isinstance(error.instance, dict) else []
            if others:
                return (f"a label is a string or a mapping with keys en and zh, not '{others[0]}'",
                        did_you_mean(others[0], ("en", "zh")), False)
            return "a label is a string or a mapping with keys en and zh", "", False
        # The branches whose type matched say what is wrong (e.g. a string not among an enum's values).
        typed = [e for e in error.context if e.validator != "type"]
        message, hint, _ = _structural_message(best_match(typed or error.context))
        return message, hint, False
    if error.validator == "pattern" and error.schema.get("pattern", "").startswith("^[a-z]"):
        return (f"'{error.instance}' is not a valid name: use snake_case "
                "(lower-case letters, digits and underscores, starting with a letter)"), "", False
    if error.validator == "enum":
        options = error.validator_value
        return (f"'{error.instance}' is not one of {', '.join(map(str, options))}",
                did_you_mean(error.instance, options), False)
    if error.validator == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        article = "an" if str(expected)[:1] in "aeiou" else "a"
        return f"expected {article} {expected}, got {_json_type(error.instance)}", "", False
    if error.validator == "propertyNames":
        return _structural_message(best_match(error.context))[0] if error.context else error.message, "", True
    return error.message, "", False


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
        message, hint, at_key = _structural_message(error)
        path = tuple(error.absolute_path)
        if _names_a_key(error):
            # A key broke the mapping's rule for names: point at that key, not at the mapping.
            path, at_key = path + (error.instance,), True
            if error.validator == "enum" and error.schema.get("title"):
                message = f"unknown {error.schema['title']} '{error.instance}'"
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = error.schema.get("properties", {})
            extras = [k for k in error.instance if k not in allowed]
            for extra in extras:
                problems.add(doc, path + (extra,), f"unknown key '{extra}'", did_you_mean(extra, allowed), key=True)
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
            self.report(("fields", spec.name, "default"), f"default {spec.default!r} {exc}", hint)

    def build(self) -> EntitySpec | None:
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
                    self.report(("indexes", i, "fields", j), f"index on unknown field '{fname}'", did_you_mean(fname, all_names))
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
                    self.report(("form", i, "fields", j), f"unknown field '{fname}' in form layout", did_you_mean(fname, fields))
                elif fname in placed:
                    self.report(("form", i, "fields", j), f"field '{fname}' is already in form section {placed[fname] + 1}")
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
        return EntitySpec(
            name=self.name, label=_as_label(data.get("label"), self.name),
            plural=_as_label(data.get("plural", data.get("label")), self.name),
            title=title if title in merged else "id", owned=bool(data.get("owned")),
            fields=MappingProxyType(merged), indexes=tuple(indexes),
            relations=MappingProxyType(relations),
            list=ListSpec(columns, sort, tuple(list_raw.get("search", ())), list_raw.get("page_size", 50)),
            form=tuple(form), description=data.get("description", ""), source=self.doc.file,
        )


_COMMON_KEYS = frozenset({"type", "label", "help", "required", "unique", "index", "readonly", "default"})


def _system_fields(owned: bool) -> dict[str, FieldSpec]:
    system = {
        "id": FieldSpec("id", "integer", MappingProxyType({"en": "ID", "zh": "编号"}), readonly=True, system=True),
        "version": FieldSpec("version", "integer", MappingProxyType({"en": "Version", "zh": "版本"}), readonly=True, system=True),
        "created_at": FieldSpec("created_at", "datetime", MappingProxyType({"en": "Created at", "zh": "创建时间"}), readonly=True, system=True, index=True),
        "updated_at": FieldSpec("updated_at", "datetime", MappingProxyType({"en": "Updated at", "zh": "更新时间"}), readonly=True, system=True, index=True),
        "created_by": FieldSpec("created_by", "integer", MappingProxyType({"en": "Created by", "zh": "创建人"}), readonly=True, system=True),
        "updated_by": FieldSpec("updated_by", "integer", MappingProxyType({"en": "Updated by", "zh": "修改人"}), readonly=True, system=True),
    }
    if owned:
        system["owner_id"] = FieldSpec("owner_id", "integer", MappingProxyType({"en": "Owner", "zh": "负责人"}), system=True, index=True)
        system["team_id"] = FieldSpec("team_id", "integer", MappingProxyType({"en": "Team", "zh": "所属部门"}), system=True, index=True)
    return system


def _check_cross_references(entities: dict[str, EntitySpec], docs: dict[str, Document], problems: ProblemList) -> None:
    for entity in entities.values():
        doc = docs[entity.name]
        for f in entity.user_fields:
            if f.type == "ref" and f.to not in entities:
                problems.add(doc, ("fields", f.name, "to"), f"ref to unknown entity '{f.to}'", did_you_mean(f.to, entities))
        for rel in entity.relations.values():
            other = entities.get(rel.entity)
            if other is None:
                problems.add(doc, ("relations", rel.name, "entity"), f"relation to unknown entity '{rel.entity}'",
                             did_you_mean(rel.entity, entities))
                continue
            if rel.kind == "one_to_many":
                via = rel.field or entity.name
                target = other.fields.get(via)
                if target is None:
                    refs = [f.name for f in other.user_fields if f.type == "ref" and f.to == entity.name]
                    hint = f"{other.name} refers here through: {', '.join(refs)}" if refs else f"add a ref field to {entity.name} on {other.name}"
                    problems.add(doc, ("relations", rel.name), f"{other.name} has no field '{via}' for this relation", hint)
                elif target.type != "ref" or target.to != entity.name:
                    problems.add(doc, ("relations", rel.name, "field"), f"{other.name}.{via} is not a ref to {entity.name}")
            elif rel.field:
                problems.add(doc, ("relations", rel.name, "field"), "'field' applies only to one_to_many relations", key=True)


def build_spec(documents: Iterable[Document], types: Mapping[str, Any], problems: ProblemList,
               config_dir: str = "") -> AppSpec | None:
    """Check every document and build the AppSpec; None when there were problems."""
    by_kind: dict[str, list[Document]] = defaultdict(list)
    for doc in documents:
        if check_structure(doc, problems):
            by_kind[doc.kind].append(doc)
        else:
            by_kind["_broken_" + doc.kind].append(doc)

    app_docs = by_kind.get("app", []) + by_kind.get("_broken_app", [])
    if not app_docs and not problems.problems:  # a file that failed to parse may be the app document
        from .problems import Problem
        problems.add_problem(Problem(config_dir or "<config>", 1, 1,
                                     "no app document found: add app.yaml with at least 'app: <name>'"))
    for extra in app_docs[1:]:
        problems.add(extra, ("app",), f"a second app document (the first is in {app_docs[0].file})", key=True)
    app = by_kind["app"][0].data if by_kind.get("app") else {"app": "app"}

    entity_docs: dict[str, Document] = {}
    entities: dict[str, EntitySpec] = {}
    for doc in by_kind.get("entity", []):
        name = doc.data["entity"]
        if name in entity_docs:
            problems.add(doc, ("entity",), f"entity '{name}' is defined twice (also in {entity_docs[name].file})")
            continue
        if name in RESERVED_ENTITY_NAMES or name.startswith("crmkit"):
            problems.add(doc, ("entity",), f"'{name}' is a reserved name (used by the platform's own URLs or tables)")
            continue
        entity_docs[name] = doc
        spec = _EntityBuilder(doc, types, problems).build()
        if spec is not None:
            entities[name] = spec
    for name in [n for n in entity_docs if n not in entities]:
        del entity_docs[name]
    _check_cross_references(entities, entity_docs, problems)
    _check_documents(by_kind, entities, problems)

    if problems:
        return None
    documents_by_kind = {kind: tuple(_freeze(d.data) for d in docs) for kind, docs in by_kind.items()
                         if kind not in ("app", "entity", "roles", "workflow") and not kind.startswith("_broken_")}
    return AppSpec(
        name=app["app"], label=_as_label(app.get("label"), app["app"]),
        entities=MappingProxyType(entities), locales=tuple(app.get("locales", ("zh", "en"))),
        timezone=app.get("timezone", "Asia/Shanghai"), plugins=tuple(app.get("plugins", ())),
        recycle_bin_days=app.get("recycle_bin_days", 30), max_page_size=app.get("max_page_size", 200),
        version=str(app.get("version", "")), description=app.get("description", ""),
        roles=MappingProxyType(_role_specs(by_kind.get("roles", []))),
        workflows=tuple(_workflow_spec(doc) for doc in by_kind.get("workflow", [])),
        documents=MappingProxyType(documents_by_kind), config_dir=config_dir,
        public=tuple(app.get("public", ())),
    )


def _check_documents(by_kind: dict[str, list[Document]], entities: dict[str, EntitySpec],
                     problems: ProblemList) -> None:
    """The entity and field names the later kinds of document mention must exist."""

    # key=True: the name is a mapping key (roles, view filters), so point at the key, not its value.
    def entity_ref(doc: Document, path: tuple, name: str, key: bool = False) -> EntitySpec | None:
        if name == "*" and doc.kind == "roles":  # every entity of the config
            return None
        if name not in entities:
            problems.add(doc, path, f"unknown entity '{name}'", did_you_mean(name, entities), key=key)
            return None
        return entities[name]

    def field_ref(doc: Document, path: tuple, entity: EntitySpec | None, name: str, key: bool = False) -> None:
        if entity is not None and name not in entity.fields:
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
    for doc in by_kind.get("tags", []):
        for tag, raw in doc.data["tags"].items():
            entity_ref(doc, ("tags", tag, "entity"), raw["entity"])
    for doc in by_kind.get("views", []):
        for view, raw in doc.data["views"].items():
            entity = entity_ref(doc, ("views", view, "entity"), raw["entity"])
            for j, column in enumerate(raw.get("columns", ())):
                field_ref(doc, ("views", view, "columns", j), entity, column)
            if "group_by" in raw:
                field_ref(doc, ("views", view, "group_by"), entity, raw["group_by"])
            for key in raw.get("filter", {}):
                field_ref(doc, ("views", view, "filter", key), entity, re.split(r"__|\.", key)[0], key=True)
    defined = _check_roles(by_kind.get("roles", []), entity_ref, field_ref, problems)
    for doc in by_kind.get("workflow", []):
        for i, move in enumerate(doc.data["transitions"]):
            for j, role in enumerate(move.get("roles", ())):
                if role not in defined:
                    problems.add(doc, ("transitions", i, "roles", j), f"unknown role '{role}'",
                                 did_you_mean(role, defined))
    for doc in by_kind.get("views", []):
        for view, raw in doc.data["views"].items():
            for j, role in enumerate(raw.get("roles", ())):
                if role not in defined:
                    problems.add(doc, ("views", view, "roles", j), f"unknown role '{role}'", did_you_mean(role, defined))
    for doc in by_kind.get("automations", []):
        for name, raw in doc.data["automations"].items():
            if "entity" in raw:
                entity_ref(doc, ("automations", name, "entity"), raw["entity"])


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
                                    tuple(raw.get("require", ())), tuple(raw.get("roles", ())), raw.get("when")))
    states = tuple(data["states"])
    return WorkflowSpec(data["workflow"], _as_label(data.get("label"), data["workflow"]), data["entity"],
                        data["field"], states, data.get("initial") or states[0], tuple(moves), source=doc.file)
