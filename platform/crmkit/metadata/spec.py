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


@dataclass(frozen=True, slots=True)
class AppSpec:
    name: str
    label: Label
    entities: Mapping[str, EntitySpec]
    locales: tuple[str, ...] = ("zh", "en")
    timezone: str = "Asia/Shanghai"
    plugins: tuple[str, ...] = ()
    recycle_bin_days: int = 30
    max_page_size: int = 200
    version: str = ""
    description: str = ""
    #: Documents of the kinds later layers interpret (roles, workflows, tags,
    #: automations, views), checked structurally, kept as read-only data.
    documents: Mapping[str, tuple] = field(default_factory=lambda: MappingProxyType({}))
    config_dir: str = ""
    #: URL paths served without authentication (app.yaml ``public``).
    public: tuple[str, ...] = ()
