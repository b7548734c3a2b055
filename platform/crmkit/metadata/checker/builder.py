"""The spec builder: every document checked (structure, then each kind's
checks), the names they use resolved across documents, into one AppSpec."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from ..conditions import compile_rules
from ..loader import Document
from ..problems import Problem, ProblemList, did_you_mean
from ..spec import RESERVED_ENTITY_NAMES, AppSpec, EntitySpec, TagSpec, ViewSpec
from .app import _check_app, _menu
from .entities import _check_cross_references, _declare_broken_entities, _EntityBuilder, _Known
from .naming import _as_label
from .roles import _check_roles, _role_specs
from .structure import check_structure
from .tags import _build_tags
from .templates import _build_templates
from .views import _build_views, _References, _view_filter
from .workflows import _check_transition_roles, _check_workflows, _workflow_spec

SINGLE_DOCUMENT_KINDS = ("app",)


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
    from ...tagging import check_rules  # tag rules and segments are checked against the whole spec

    check_rules(spec, by_kind.get("tags", []) + by_kind.get("views", []), problems)
    from ...automations.checking import compile_automations  # automations name everything else
    from ...pool import check_pools  # a pool's return rule and an assignment's role, against the whole spec

    check_pools(spec, entity_docs, problems)
    automations = compile_automations(spec, by_kind.get("automations", []), actions, problems).automations
    compiled = compile_rules(spec, entity_docs, by_kind.get("workflow", []), problems)
    if compiled is None or problems:
        return None
    return dataclasses.replace(compiled, automations=automations)


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

    _check_workflows(by_kind.get("workflow", []), entity_ref, field_ref, problems)
    defined = _check_roles(by_kind.get("roles", []), entity_ref, field_ref, problems)
    # A broken roles document still declares its roles: naming one elsewhere is not a second mistake.
    defined |= {role for doc in by_kind.get("_broken_roles", []) if isinstance(doc.data.get("roles"), dict)
                for role in doc.data["roles"]}
    _check_transition_roles(by_kind.get("workflow", []), defined, problems)
    references = _References(known, entity_ref, field_ref, defined, problems)
    for doc in by_kind.get("entity", []):
        due = doc.data.get("due")
        if isinstance(due, dict) and due.get("filter") and doc.data["entity"] in entities:
            _view_filter(doc, ("due",), entities[doc.data["entity"]], due["filter"], references, types)
    views = _build_views(by_kind.get("views", []), references, types)
    tags = _build_tags(by_kind.get("tags", []), references)
    return views, tags
