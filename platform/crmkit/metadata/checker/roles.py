"""The checks of roles documents (the entities and fields each role names, its
field rules) and the roles typed as RoleSpecs."""

from __future__ import annotations

from types import MappingProxyType

from ..loader import Document
from ..problems import ProblemList
from ..spec import RoleSpec
from .naming import _as_label

# Kept in step with crmkit.permissions (tests/test_config.py checks it): the
# platform's own entities a role may name, its built-in role, the system's name.
PLATFORM_ENTITIES = ("user", "team", "audit")
ADMIN_ROLE = "admin"
SYSTEM_ROLE = "system"
ALWAYS_VISIBLE = ("id", "version")


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
