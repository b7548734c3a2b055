"""The immutable spec that a good config loads into.

Everything downstream (tables, records service, query builder, API, UI) reads
these objects; nothing changes them after start-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

Label = Mapping[str, str]

#: Columns every entity table has; config fields may not use these names.
SYSTEM_FIELDS = ("id", "version", "created_at", "updated_at", "created_by", "updated_by",
                 "deleted_at", "deleted_by")
#: Columns of owned entities.
OWNER_FIELDS = ("owner_id", "team_id")
#: Names the list API uses as query parameters.
QUERY_PARAMETERS = ("limit", "cursor", "sort", "fields", "count", "q", "tag")
RESERVED_FIELD_NAMES = frozenset(SYSTEM_FIELDS + OWNER_FIELDS + ("owner", "team") + QUERY_PARAMETERS)
#: Relation names that would clash with a record's fixed URLs.
RESERVED_RELATION_NAMES = frozenset({"history", "transitions", "collaborators"})
#: Entity names that would clash with fixed URLs or tables.
#: Filter operators on ids (every field type lists its own).
ID_OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin")
DEFAULT_TIMEZONE = "Asia/Shanghai"
#: The platform's own records a ref field may point at (``{type: ref, to: user}``):
#: a doctor, an approver, an engineer.
DIRECTORY_ENTITIES = ("user", "team")
RESERVED_ENTITY_NAMES = frozenset({"openapi", "docs", "me", "regions", "recycle_bin", "health",
                                   "healthz", "admin", "app", "api", "login", "logout", "static",
                                   "user", "users", "team", "teams", "role", "roles", "token",
                                   "tokens"})


def label_text(label: Label | None, locale: str = "en", fallback: str = "") -> str:
    if not label:
        return fallback
    return label.get(locale) or label.get("en") or label.get("zh") or fallback


def humanize(name: str) -> str:
    return name.replace("_", " ").capitalize()


@dataclass(frozen=True, slots=True)
class Option:
    value: str | int
    label: Label
    color: str | None = None


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    type: str
    label: Label
    help: Label | None = None
    required: bool = False
    unique: bool = False
    index: bool = False
    readonly: bool = False
    default: Any = None
    min: Any = None
    max: Any = None
    max_length: int | None = None
    min_length: int | None = None
    pattern: str | None = None
    options: tuple[Option, ...] = ()
    to: str | None = None
    on_delete: str = "restrict"
    precision: int | None = None
    scale: int | None = None
    currency: str | None = None
    mobile_only: bool = False
    level: str = "district"
    system: bool = False
    #: The column name: refs store the id as ``<name>_id``. (Derived, kept as
    #: attributes: they are read for every value of every write and read.)
    column: str = field(init=False, repr=False, compare=False)
    #: The allowed values of an enum or multi_enum, in order.
    option_values: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "column", f"{self.name}_id" if self.type == "ref" else self.name)
        object.__setattr__(self, "option_values", tuple(o.value for o in self.options))


@dataclass(frozen=True, slots=True)
class IndexSpec:
    name: str
    fields: tuple[str, ...]
    unique: bool = False


@dataclass(frozen=True, slots=True)
class RelationSpec:
    name: str
    kind: str  # one_to_many | many_to_many
    entity: str
    field: str | None = None
    label: Label | None = None

    def link_table(self, owner: str) -> str:
        return f"{owner}__{self.name}"


@dataclass(frozen=True, slots=True)
class SectionSpec:
    label: Label | None
    fields: tuple[str, ...]
    visible_if: str | None = None
    columns: int = 2


@dataclass(frozen=True, slots=True)
class ListSpec:
    columns: tuple[str, ...]
    sort: tuple[str, ...]
    search: tuple[str, ...] = ()
    page_size: int = 50


@dataclass(frozen=True, slots=True)
class EntitySpec:
    name: str
    label: Label
    plural: Label
    title: str
    owned: bool
    fields: Mapping[str, FieldSpec]
    indexes: tuple[IndexSpec, ...] = ()
    relations: Mapping[str, RelationSpec] = field(default_factory=lambda: MappingProxyType({}))
    list: ListSpec = ListSpec((), ("-id",))
    form: tuple[SectionSpec, ...] = ()
    description: str = ""
    source: str = ""

    @property
    def user_fields(self) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.fields.values() if not f.system)


#: The fields of the platform's users and teams that a filter through a ref
#: may name (``engineer.team_id=3``, ``engineer.username=wang``), in the
#: spec's own terms so the query builder parses them as it does any field.
def _directory_field(name: str, type_name: str, en: str, zh: str, system: bool = False) -> FieldSpec:
    return FieldSpec(name, type_name, MappingProxyType({"en": en, "zh": zh}), system=system, readonly=True)


DIRECTORY_FIELDS: Mapping[str, Mapping[str, FieldSpec]] = MappingProxyType({
    "user": MappingProxyType({f.name: f for f in (
        _directory_field("id", "integer", "ID", "编号", system=True),
        _directory_field("username", "string", "Username", "用户名"),
        _directory_field("display_name", "string", "Name", "姓名"),
        _directory_field("email", "email", "Email", "邮箱"),
        _directory_field("mobile", "phone", "Mobile", "手机"),
        _directory_field("active", "boolean", "Active", "启用"),
        _directory_field("team_id", "integer", "Team", "部门", system=True),
        _directory_field("superior_id", "integer", "Superior", "上级", system=True),
    )}),
    "team": MappingProxyType({f.name: f for f in (
        _directory_field("id", "integer", "ID", "编号", system=True),
        _directory_field("name", "string", "Name", "名称"),
        _directory_field("label", "string", "Label", "显示名"),
        _directory_field("parent_id", "integer", "Parent team", "上级部门", system=True),
    )}),
})


@dataclass(frozen=True, slots=True)
class ViewSpec:
    """A saved view: a named list (or board, or calendar) of an entity's records."""

    name: str
    entity: str
    label: Label
    kind: str = "list"  # list | board | calendar
    #: Filters in the API's form, values as the API's query text (``status__in``: ``"new,open"``).
    filter: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: A condition in the expression language, kept as text until that language compiles it.
    where: str | None = None
    #: Sort keys as in the API (``-created_at``); empty: the entity list's own sort.
    sort: tuple[str, ...] = ()
    #: Columns shown; empty: the entity list's own columns.
    columns: tuple[str, ...] = ()
    group_by: str | None = None
    #: Roles that see the view; empty: every role.
    roles: tuple[str, ...] = ()
    source: str = ""


@dataclass(frozen=True, slots=True)
class TagSpec:
    """A tag of an entity's records: set by a rule, or by hand when it has none."""

    name: str
    entity: str
    label: Label
    color: str | None = None
    #: A condition in the expression language, kept as text until that language compiles it.
    rule: str | None = None
    #: The business use of the tag.
    use: str = ""
    source: str = ""


@dataclass(frozen=True, slots=True)
class AppSpec:
    name: str
    label: Label
    entities: Mapping[str, EntitySpec]
    locales: tuple[str, ...] = ("zh", "en")
    timezone: str = DEFAULT_TIMEZONE
    plugins: tuple[str, ...] = ()
    recycle_bin_days: int = 30
    max_page_size: int = 200
    version: str = ""
    description: str = ""
    #: Documents of the kinds later layers interpret (roles, workflows, tags,
    #: automations, views), checked structurally, kept as read-only data.
    documents: Mapping[str, tuple] = field(default_factory=lambda: MappingProxyType({}))
    config_dir: str = ""
    views: Mapping[str, ViewSpec] = field(default_factory=lambda: MappingProxyType({}))
    tags: Mapping[str, TagSpec] = field(default_factory=lambda: MappingProxyType({}))
    #: Automations by name, as read-only data until the automations issue types them.
    automations: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))
    #: URL paths served without authentication (app.yaml ``public``).
    public: tuple[str, ...] = ()
