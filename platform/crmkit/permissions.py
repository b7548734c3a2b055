"""Roles from configuration, compiled into what one user may do, and the SQL
predicates that enforce data scopes.

A role grants, per entity, actions (read, create, update, delete, export,
import, assign, transition), each with a data scope: none, own, team,
team_tree (the team and its sub-teams), subordinates (the user and their
reporting chain) or all. Field rules make a field hidden, masked, read-only or
writable. A user with several roles gets the union: the widest scope of each
action, the most open level of each field. What no role grants is denied.

The platform's own ``admin`` role (every action on every entity, scope all) is
used when a config does not define ``admin``; it goes through the same checks
as any role. The system (seeds, migrations, automations run as the system) is
an actor whose access is compiled from the same kind of grant.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .errors import Forbidden
from .metadata.spec import EVERY_ENTITY, AppSpec, EntitySpec, Label, RoleSpec

if TYPE_CHECKING:
    from .tables import Tables

ACTIONS = ("read", "create", "update", "delete", "export", "import", "assign", "transition")
SCOPES = ("none", "own", "team", "team_tree", "subordinates", "all")
#: Not a scope a role grants: the records of an entity's pool (no owner),
#: added to the read scope of whoever may claim them (crmkit.pool).
POOL = "pool"
LEVELS = ("hidden", "masked", "read", "write")
#: Platform entities a role may name (``*`` does not include them): users,
#: teams, and the audit trail (read: whose actions one may read).
SYSTEM_ENTITIES = ("user", "team", "audit")
#: What a collaborator's share grants, by its access.
SHARE_ACTIONS = {"read": ("read",), "write": ("read", "update", "transition")}
#: Actions whose scope says nothing about a record: allowed or not.
UNSCOPED = ("create", "import")
#: Fields nobody can hide: a record without them cannot be addressed.
ALWAYS_VISIBLE = ("id", "version")
ADMIN_ROLE = "admin"


def reduce_scope(kinds: Iterable[str]) -> frozenset[str]:
    """The union of scopes, without the ones a wider scope already covers."""
    kinds = set(kinds) - {"none"}
    if "all" in kinds:
        return frozenset({"all"})
    if "team_tree" in kinds:
        kinds.discard("team")
    if kinds & {"team", "team_tree", "subordinates"}:
        kinds.discard("own")  # each of them includes the user's own records
    return frozenset(kinds)


def scope_text(kinds: frozenset[str]) -> str:
    if not kinds:
        return "none"
    return "+".join(k for k in (*SCOPES, POOL) if k in kinds)


# ------------------------------------------------------------------ masking

def _mask_phone(value: Any) -> str:
    text = str(value)
    digits = len(text)
    if digits < 7:
        return "***"
    return text[:3] + "*" * (digits - 7) + text[-4:] if digits > 7 else text[:3] + "****"


def _mask_email(value: Any) -> str:
    local, at, domain = str(value).partition("@")
    return (local[:1] + "***" + at + domain) if at else "***"


def _mask_text(value: Any) -> str:
    text = str(value)
    return text[:1] + "**" if text else "***"


def _mask_all(value: Any) -> str:
    return "***"


MASKS: dict[str, Callable[[Any], str]] = {"phone": _mask_phone, "email": _mask_email, "string": _mask_text}


def mask_for(field_type: str) -> Callable[[Any], str]:
    """How a masked value of a field type is shown: a mobile as 138****1234, an
    email as z***@example.com, a name as 张**, anything else (amounts, dates,
    addresses) as ***."""
    return MASKS.get(field_type, _mask_all)


# ------------------------------------------------------------------ roles

@dataclass(frozen=True)
class Role:
    name: str
    label: Label
    description: str
    #: entity -> action -> scope kinds (empty: none)
    grants: Mapping[str, Mapping[str, frozenset[str]]]
    #: entity -> field -> level
    fields: Mapping[str, Mapping[str, str]]


def _scope_of(value: str) -> frozenset[str]:
    return frozenset() if value == "none" else frozenset({value})


def compile_role(role: RoleSpec, entities: Iterable[str]) -> Role:
    """A role's grants per entity of the config (``*`` spelled out) as scope kinds."""
    grants: dict[str, dict[str, frozenset[str]]] = {}
    wildcard = role.grants.get(EVERY_ENTITY, {})
    for entity in entities:
        grants[entity] = {action: _scope_of(value) for action, value in wildcard.items()}
    for entity, actions in role.grants.items():
        if entity != EVERY_ENTITY:
            grants.setdefault(entity, {}).update({action: _scope_of(value) for action, value in actions.items()})
    frozen_grants = {e: MappingProxyType({a: s for a, s in g.items() if s}) for e, g in grants.items()}
    return Role(role.name, role.label, role.description, MappingProxyType(frozen_grants), role.fields)


def builtin_admin(name: str = ADMIN_ROLE) -> RoleSpec:
    """The platform's admin role: every action on every record, scope all."""
    every = MappingProxyType(dict.fromkeys(ACTIONS, "all"))
    return RoleSpec(name, MappingProxyType({"en": "Administrator", "zh": "系统管理员"}),
                    "Every action on every record (the platform's default admin role).",
                    MappingProxyType({EVERY_ENTITY: every, **{entity: every for entity in SYSTEM_ENTITIES}}))


def role_specs(spec: AppSpec) -> dict[str, RoleSpec]:
    """Every role of the config by name (the built-in admin unless the config has one)."""
    roles = dict(spec.roles)
    roles.setdefault(ADMIN_ROLE, builtin_admin())
    return roles


# ------------------------------------------------------------------ access

@dataclass(frozen=True)
class EntityAccess:
    """What one user may do on one entity (the union of their roles)."""

    name: str
    scopes: Mapping[str, frozenset[str]] = field(default_factory=dict)
    levels: Mapping[str, str] = field(default_factory=dict)
    visible: frozenset[str] = frozenset()
    writable: frozenset[str] = frozenset()
    masked: tuple[tuple[str, Callable[[Any], str]], ...] = ()
    #: Fields whose true value the user may see (filter, sort and search on): visible, not masked.
    readable: frozenset[str] = frozenset()

    def allows(self, action: str) -> bool:
        return bool(self.scopes.get(action))

    def scope(self, action: str) -> frozenset[str]:
        return self.scopes.get(action, frozenset())


@dataclass(frozen=True)
class Access:
    roles: tuple[str, ...]
    entities: Mapping[str, EntityAccess]
    #: The system's own access (seeds, migrations, automations): what a
    #: workflow move reserves to some roles is open to it.
    system: bool = False

    def entity(self, name: str) -> EntityAccess:
        found = self.entities.get(name)
        return found if found is not None else EntityAccess(name)

    def allows(self, entity: str, action: str) -> bool:
        return self.entity(entity).allows(action)


NO_ACCESS = Access((), MappingProxyType({}))


@dataclass(frozen=True)
class Actor:
    """Who reads or writes: a user (id, name, team, the access of their roles)
    or the system itself (seeds, migrations, automations run as the system)."""

    id: int | None
    name: str
    system: bool = False
    team_id: int | None = None
    access: Access = NO_ACCESS

    def on_behalf(self) -> Actor:
        """The same user as the system: for what a permitted write entails
        (cascades, clearing references), which their roles need not cover."""
        return Actor(self.id, self.name, system=True, team_id=self.team_id)


SYSTEM = Actor(None, "system", system=True)
ANONYMOUS = Actor(None, "anonymous")


class Permissions:
    """The roles of a config, and the access of any combination of them."""

    def __init__(self, spec: AppSpec, field_types: Mapping[str, Any]) -> None:
        self.spec = spec
        self.field_types = field_types
        self.roles = {name: compile_role(role, spec.entities) for name, role in role_specs(spec).items()}
        self._access = lru_cache(maxsize=256)(self._compile)
        #: The system's access: every action on every record, and no role restriction.
        self.everything = replace(self._union([compile_role(builtin_admin("system"), spec.entities)], ("system",)),
                                  system=True)

    def of(self, actor: Actor) -> Access:
        """An actor's access: the system's own grant, or the user's roles."""
        return self.everything if actor.system else actor.access

    def access(self, roles: Iterable[str]) -> Access:
        """The union of these roles (unknown names are ignored: a role removed
        from the config grants nothing)."""
        return self._access(tuple(sorted({r for r in roles if r in self.roles})))

    def _compile(self, names: tuple[str, ...]) -> Access:
        return self._union([self.roles[n] for n in names], names)

    def _union(self, roles: list[Role], names: tuple[str, ...]) -> Access:
        entities: dict[str, EntityAccess] = {}
        for entity_name in list(self.spec.entities) + list(SYSTEM_ENTITIES):
            granting = [r for r in roles if r.grants.get(entity_name)]
            if not granting:
                continue
            scopes = {}
            for action in ACTIONS:
                kinds = reduce_scope(k for r in granting for k in r.grants[entity_name].get(action, ()))
                if kinds:
                    scopes[action] = frozenset({"all"}) if action in UNSCOPED else kinds
            entity = self.spec.entities.get(entity_name)
            if entity is not None and entity.pool is not None and "all" not in scopes.get("read", {"all"}) \
                    and "update" in scopes:
                # Whoever may update the entity may claim from its pool, so sees it (crmkit.pool).
                scopes["read"] = scopes["read"] | {POOL}
            if entity is None:  # users and teams: no field rules
                entities[entity_name] = EntityAccess(entity_name, MappingProxyType(scopes))
                continue
            levels = {}
            for f in entity.fields.values():
                default = "read" if f.system else "write"
                best = max(LEVELS.index(r.fields.get(entity_name, {}).get(f.name, default)) for r in granting)
                levels[f.name] = "read" if f.name in ALWAYS_VISIBLE else LEVELS[best]
            entities[entity_name] = EntityAccess(
                entity_name, MappingProxyType(scopes), MappingProxyType(levels),
                visible=frozenset(n for n, level in levels.items() if level != "hidden"),
                writable=frozenset(n for n, level in levels.items() if level == "write"),
                masked=tuple((n, mask_for(entity.fields[n].type)) for n, level in levels.items() if level == "masked"),
                readable=frozenset(n for n, level in levels.items() if level in ("read", "write")),
            )
        return Access(names, MappingProxyType(entities))

    def explain(self, roles: Iterable[str]) -> dict[str, dict[str, dict[str, str]]]:
        """The matrix a client or an admin reads: per entity, each action's
        scope and the fields that are not plainly writable."""
        access = self.access(roles)
        out = {}
        for name in list(self.spec.entities) + list(SYSTEM_ENTITIES):
            ea = access.entity(name)
            out[name] = {
                "actions": {action: scope_text(ea.scope(action)) for action in ACTIONS},
                "fields": {f: level for f, level in ea.levels.items()
                           if level != ("read" if self._is_system(name, f) else "write")},
            }
        return out

    def _is_system(self, entity: str, name: str) -> bool:
        spec = self.spec.entities.get(entity)
        return spec is None or spec.fields[name].system


def audit_changes(access: Access, entity: EntitySpec | None, changes: Any, *, record_read: bool = False) -> Any:
    """An audit entry's changes (``{field: [old, new]}``) as a reader with this
    access may see them: the one rule for a record's history and the audit trail.

    Entries of the platform's own tables (users, teams, tokens: ``entity`` is
    None) are shown as they are. The values of a record are the reader's to
    see if they may read the record: ``record_read`` says so when it is known
    (a record's history); otherwise only a reader of every record of the
    entity sees them (None for others). Fields hidden from the reader are left
    out, masked ones masked."""
    if entity is None:
        return changes
    ea = access.entity(entity.name)
    if not record_read and ea.scope("read") != frozenset({"all"}):
        return None
    if not isinstance(changes, dict):
        return changes
    masks = dict(ea.masked)
    out = {}
    for name, change in changes.items():
        if name in entity.fields and name not in ea.visible:
            continue
        if name in masks and isinstance(change, list):
            change = [None if v is None else masks[name](v) for v in change]
        out[name] = change
    return out


VERBS = {"update": "change", "transition": "move"}


def refusal(actor: Actor, entity: str, action: str, target: str, record_id: int | None = None,
            message: str | None = None) -> Forbidden:
    """The 403 of a refused action (``target``: "this customer", "customers"),
    carrying what the audit trail records once the request's transaction is over."""
    return Forbidden(message or f"your role does not allow you to {VERBS.get(action, action)} {target}",
                     code="forbidden", denial={"entity": entity, "record_id": record_id, "action": action,
                                               "actor_id": actor.id, "actor": actor.name})


# ------------------------------------------------------------------ SQL

UID = "_scope_uid"
TEAM = "_scope_team"


class ScopeSQL:
    """Data scopes as SQL predicates on an entity's table, with the caller's
    user and team as bound parameters (``scope_params``), so statements can be
    built once per entity and scope and reused by every user.

    own: the owner (or, on entities without owners, the creator) is the user.
    team: the record's team is the user's team, or it is their own.
    team_tree: the record's team is the user's team or one below it.
    subordinates: the owner is the user or someone in their reporting chain.
    Shares (collaborators) add the records shared with the user."""

    def __init__(self, tables: Tables) -> None:
        self.tables = tables
        self._cache: dict[tuple[str, frozenset[str], str | None], sa.ColumnElement[bool] | None] = {}
        users, teams = tables.users, tables.teams
        tree = sa.select(teams.c.id).where(teams.c.id == sa.bindparam(TEAM)).cte("crmkit_team_tree", recursive=True)
        self.team_tree = tree.union(sa.select(teams.c.id).where(teams.c.parent_id == tree.c.id))
        chain = sa.select(users.c.id).where(users.c.id == sa.bindparam(UID)).cte("crmkit_reports", recursive=True)
        self.reports = chain.union(sa.select(users.c.id).where(users.c.superior_id == chain.c.id))

    def predicate(self, entity: str, kinds: frozenset[str], share: str | None = None) -> sa.ColumnElement[bool] | None:
        """None when the scope is all; false() when it is none."""
        key = (entity, kinds, share)
        if key not in self._cache:
            self._cache[key] = self._build(entity, kinds, share)
        return self._cache[key]

    def shared(self, entity: str, share: str) -> sa.ColumnElement[bool]:
        """The records shared with the user (with write access, for ``write``)."""
        shares = self.tables.shares
        wanted = [shares.c.entity == entity, shares.c.user_id == sa.bindparam(UID)]
        if share == "write":
            wanted.append(shares.c.access == "write")
        return self.table(entity).c.id.in_(sa.select(shares.c.record_id).where(*wanted))

    def table(self, entity: str) -> sa.Table:
        if entity == "user":
            return self.tables.users
        if entity == "team":
            return self.tables.teams
        if entity == "audit":
            return self.tables.audit
        return self.tables.entities[entity]

    def _build(self, entity: str, kinds: frozenset[str], share: str | None) -> sa.ColumnElement[bool] | None:
        if "all" in kinds:
            return None
        table = self.table(entity)
        users = self.tables.users
        uid: sa.BindParameter[int] = sa.bindparam(UID)
        team: sa.BindParameter[int] = sa.bindparam(TEAM)
        parts: list[sa.ColumnElement[bool]] = []
        if entity == "team":
            if kinds & {"own", "team", "subordinates"}:
                parts.append(table.c.id == team)
            if "team_tree" in kinds:
                parts.append(table.c.id.in_(sa.select(self.team_tree.c.id)))
        else:
            if entity == "user":
                owner, team_column = table.c.id, table.c.team_id
            elif entity == "audit":  # an entry belongs to whoever acted
                owner, team_column = table.c.actor_id, None
            elif "owner_id" in table.c:
                owner, team_column = table.c.owner_id, table.c.team_id
            else:  # no owner: the creator stands for it, their current team for the record's
                owner, team_column = table.c.created_by, None
            if kinds & {"own", "team", "team_tree"}:
                parts.append(owner == uid)
            if POOL in kinds and "owner_id" in table.c:  # the entity's pool: records without an owner
                parts.append(table.c.owner_id.is_(None))
            if "subordinates" in kinds:
                parts.append(owner.in_(sa.select(self.reports.c.id)))
            for kind in ("team", "team_tree"):
                if kind not in kinds:
                    continue
                column = team_column if team_column is not None else users.c.team_id
                where = column == team if kind == "team" else column.in_(sa.select(self.team_tree.c.id))
                # Without a team column, the creator's current team stands for the record's.
                parts.append(where if team_column is not None else owner.in_(sa.select(users.c.id).where(where)))
        if share and entity not in SYSTEM_ENTITIES:
            parts.append(self.shared(entity, share))
        if not parts:
            return sa.false()
        return parts[0] if len(parts) == 1 else sa.or_(*parts)


def scope_params(actor: Actor) -> dict[str, int]:
    """The bound values of scope predicates for an actor (-1: matches nothing)."""
    return {UID: actor.id if actor.id is not None else -1, TEAM: actor.team_id if actor.team_id is not None else -1}


def share_for(action: str) -> str | None:
    """The share access that grants an action to a collaborator, if any."""
    if action == "read":
        return "read"
    if action in SHARE_ACTIONS["write"]:
        return "write"
    return None

