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


def _field(name: str, type_: str, en: str, zh: str, **options: Any) -> FieldSpec:
    return FieldSpec(name, type_, MappingProxyType({"en": en, "zh": zh}), readonly=True, **options)


def _id(name: str, en: str, zh: str) -> FieldSpec:
    # system integers: filter values are ids (32-bit), as for owner_id
    return _field(name, "integer", en, zh, system=True)


def _spec(name: str, en: str, zh: str, fields: Iterable[FieldSpec], *, sort: tuple[str, ...],
          search: tuple[str, ...] = ()) -> EntitySpec:
    label = MappingProxyType({"en": en, "zh": zh})
    return EntitySpec(name, label, label, "id", False, MappingProxyType({f.name: f for f in fields}),
                      list=ListSpec((), sort, search))


def user_spec(role_names: Iterable[str]) -> EntitySpec:
    roles = tuple(Option(name, MappingProxyType({"en": name})) for name in sorted(role_names))
    return _spec("user", "Users", "用户", (
        _id("id", "ID", "编号"),
        _field("username", "string", "User name", "用户名"),
        _field("display_name", "string", "Name", "姓名"),
        _field("email", "email", "Email", "邮箱"),
        _field("mobile", "phone", "Mobile", "手机"),
        _field("active", "boolean", "Active", "启用"),
        _field("roles", "multi_enum", "Roles", "角色", options=roles),
        _id("team_id", "Team", "部门"),
        _id("superior_id", "Reports to", "上级"),
        _field("last_login_at", "datetime", "Last login", "最近登录"),
        _field("created_at", "datetime", "Created at", "创建时间"),
        _field("updated_at", "datetime", "Updated at", "更新时间"),
    ), sort=("id",), search=("username", "display_name"))


def team_spec() -> EntitySpec:
    return _spec("team", "Teams", "部门", (
        _id("id", "ID", "编号"),
        _field("name", "string", "Name", "名称"),
        _field("label", "string", "Label", "显示名"),
        _id("parent_id", "Parent team", "上级部门"),
        _field("created_at", "datetime", "Created at", "创建时间"),
        _field("updated_at", "datetime", "Updated at", "更新时间"),
    ), sort=("id",), search=("name", "label"))


def _audit_fields() -> tuple[FieldSpec, ...]:
    return (
        _id("id", "ID", "编号"),
        _field("entity", "string", "Entity", "对象"),
        _id("record_id", "Record", "记录"),
        _field("action", "string", "Action", "操作"),
        _id("actor_id", "Actor", "操作人编号"),
        _field("actor", "string", "Actor name", "操作人"),
        _field("at", "datetime", "At", "时间"),
        _field("changes", "json", "Changes", "变更"),
    )


def audit_spec() -> EntitySpec:
    return _spec("audit", "Audit trail", "审计日志", _audit_fields(), sort=("-id",))


def history_spec() -> EntitySpec:
    """A record's history: its audit entries, without the columns that name the record."""
    return _spec(HISTORY, "History", "变更历史",
                 (f for f in _audit_fields() if f.name not in ("entity", "record_id")), sort=("-id",))


#: The fields of the platform's users and teams that a filter through a ref
#: may name (``engineer.team_id=3``, ``engineer.username=wang``): those of
#: their list specs, but a user's roles (their options are the config's).
DIRECTORY_FIELDS: Mapping[str, Mapping[str, FieldSpec]] = MappingProxyType({
    "user": MappingProxyType({n: f for n, f in user_spec(()).fields.items() if n != "roles"}),
    "team": MappingProxyType(dict(team_spec().fields)),
})
