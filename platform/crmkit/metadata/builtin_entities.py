"""The platform's own tables as the list grammar reads them: users, teams and
the audit trail, described with the same spec objects as configured entities.

These specs make no tables (crmkit.tables and the directory own those); they tell
the query builder which columns a client may list, filter, sort and search,
and how each value is typed, so ``/users``, ``/teams`` and ``/audit`` speak
the grammar of entity lists. A column without a field here (a password hash)
is never selected.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from .spec import EntitySpec, FieldSpec, ListSpec, Option

#: The name of the spec of a record's history (audit entries of one record).
HISTORY = "history"


def platform_field(name: str, type_: str, en: str, zh: str, **options: Any) -> FieldSpec:
    """A column of a platform table as a read-only field, labelled in both languages."""
    return FieldSpec(name, type_, MappingProxyType({"en": en, "zh": zh}), readonly=True, **options)


def platform_id(name: str, en: str, zh: str) -> FieldSpec:
    """An id column (a system integer: filter values are 32-bit ids, as for owner_id)."""
    return platform_field(name, "integer", en, zh, system=True)


def platform_spec(name: str, en: str, zh: str, fields: Iterable[FieldSpec], *, sort: tuple[str, ...],
                  search: tuple[str, ...] = ()) -> EntitySpec:
    """A platform table as the list grammar reads it: its fields, default sort and search."""
    label = MappingProxyType({"en": en, "zh": zh})
    return EntitySpec(name, label, label, "id", False, MappingProxyType({f.name: f for f in fields}),
                      list=ListSpec((), sort, search))


def user_spec(role_names: Iterable[str]) -> EntitySpec:
    roles = tuple(Option(name, MappingProxyType({"en": name})) for name in sorted(role_names))
    return platform_spec("user", "Users", "用户", (
        platform_id("id", "ID", "编号"),
        platform_field("username", "string", "User name", "用户名"),
        platform_field("display_name", "string", "Name", "姓名"),
        platform_field("email", "email", "Email", "邮箱"),
        platform_field("mobile", "phone", "Mobile", "手机"),
        platform_field("active", "boolean", "Active", "启用"),
        platform_field("roles", "multi_enum", "Roles", "角色", options=roles),
        platform_id("team_id", "Team", "部门"),
        platform_id("superior_id", "Reports to", "上级"),
        platform_field("last_login_at", "datetime", "Last login", "最近登录"),
        platform_field("created_at", "datetime", "Created at", "创建时间"),
        platform_field("updated_at", "datetime", "Updated at", "更新时间"),
    ), sort=("id",), search=("username", "display_name"))


def team_spec() -> EntitySpec:
    return platform_spec("team", "Teams", "部门", (
        platform_id("id", "ID", "编号"),
        platform_field("name", "string", "Name", "名称"),
        platform_field("label", "string", "Label", "显示名"),
        platform_id("parent_id", "Parent team", "上级部门"),
        platform_field("created_at", "datetime", "Created at", "创建时间"),
        platform_field("updated_at", "datetime", "Updated at", "更新时间"),
    ), sort=("id",), search=("name", "label"))


def _audit_fields() -> tuple[FieldSpec, ...]:
    return (
        platform_id("id", "ID", "编号"),
        platform_field("entity", "string", "Entity", "对象"),
        platform_id("record_id", "Record", "记录"),
        platform_field("action", "string", "Action", "操作"),
        platform_id("actor_id", "Actor", "操作人编号"),
        platform_field("actor", "string", "Actor name", "操作人"),
        platform_field("at", "datetime", "At", "时间"),
        platform_field("changes", "json", "Changes", "变更"),
    )


def audit_spec() -> EntitySpec:
    return platform_spec("audit", "Audit trail", "审计日志", _audit_fields(), sort=("-id",))


def history_spec() -> EntitySpec:
    """A record's history: its audit entries, without the columns that name the record."""
    return platform_spec(HISTORY, "History", "变更历史",
                 (f for f in _audit_fields() if f.name not in ("entity", "record_id")), sort=("-id",))


#: The fields of the platform's users and teams that a filter through a ref
#: may name (``engineer.team_id=3``, ``engineer.username=wang``): those of
#: their list specs, but a user's roles (their options are the config's).
DIRECTORY_FIELDS: Mapping[str, Mapping[str, FieldSpec]] = MappingProxyType({
    "user": MappingProxyType({n: f for n, f in user_spec(()).fields.items() if n != "roles"}),
    "team": MappingProxyType(dict(team_spec().fields)),
})
