"""The immutable spec that a good config loads into.

Everything downstream (tables, records service, query builder, API, UI) reads
these objects; nothing changes them after start-up.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the expression tree refers to these specs: no import at run time
    from ..automations.spec import AutomationSpec
    from ..expressions.tree import Checked

Label = Mapping[str, str]

#: Columns every entity table has; config fields may not use these names.
SYSTEM_FIELDS = ("id", "version", "created_at", "updated_at", "created_by", "updated_by",
                 "deleted_at", "deleted_by")
#: Columns of owned entities.
OWNER_FIELDS = ("owner_id", "team_id")
#: Names the list API uses as query parameters.
QUERY_PARAMETERS = ("limit", "cursor", "sort", "fields", "count", "q", "tag", "view")
RESERVED_FIELD_NAMES = frozenset(SYSTEM_FIELDS + OWNER_FIELDS + ("owner", "team") + QUERY_PARAMETERS)
#: Relation names that would clash with a record's fixed URLs.
RESERVED_RELATION_NAMES = frozenset({"history", "transitions", "collaborators", "claim", "release"})
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
                                   "tokens",
                                   # pages beside /app/<entity> and /api/v1/<entity> (a test keeps this complete)
                                   "search", "language", "audit", "approval", "approvals", "job", "jobs",
                                   "automations", "messages", "notifications"})


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
    #: Rules in the expression language, compiled at check time (crmkit.rules
    #: applies them): a stored, read-only value computed from the record (and
    #: its relations), and conditions on the record's values.
    formula: Checked | None = None
    required_if: Checked | None = None
    visible_if: Checked | None = None
    readonly_if: Checked | None = None
    #: The column name: refs store the id as ``<name>_id``. (Derived, kept as
    #: attributes: they are read for every value of every write and read.)
    column: str = field(init=False, repr=False, compare=False)
    #: The allowed values of an enum or multi_enum, in order.
    option_values: tuple[str | int, ...] = field(init=False, repr=False, compare=False)

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
    #: ``visible_if`` compiled at check time.
    condition: Checked | None = None


@dataclass(frozen=True, slots=True)
class ValidationSpec:
    """A validation rule of an entity (``validate:``): every write of a record
    must leave ``rule`` true (or unknown, as a CHECK constraint: a rule about
    an empty field does not fail; ``required`` says a field needs a value)."""

    rule: Checked
    message: Label
    #: The record's own fields the rule reads: the ones an error names.
    fields: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ListSpec:
    columns: tuple[str, ...]
    sort: tuple[str, ...]
    search: tuple[str, ...] = ()
    page_size: int = 50


@dataclass(frozen=True, slots=True)
class DueSpec:
    """What makes a record a to-do of its owner (an entity's ``due``): the
    date or datetime field it is due by, and the filters (in the API's form)
    the open ones meet."""

    field_name: str
    filter: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class AssignmentSpec:
    """Who gets a record nobody named an owner for (an entity's
    ``assignment``, or an automation's ``assign``): the active users of a role
    and/or a team (with its sub-teams), in turn (``round_robin``) or the one
    owning the fewest live records (``least_loaded``). ``route`` narrows the
    candidates to a team by a field of the record (region codes by prefix,
    other values exactly)."""

    strategy: str  # round_robin | least_loaded
    role: str | None = None
    team: str | None = None
    #: When the entity's block applies (only ``create`` so far).
    on: str = "create"
    #: A creator who is a candidate keeps the record (a rep's own lead stays theirs).
    keep_own: bool = True
    #: The field of the record whose value picks a team, and value -> team name.
    route_field: str | None = None
    routes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class PoolSpec:
    """The customer pool (公海) of an owned entity (``pool``): records without
    an owner are in it; users who may update the entity claim them (at most
    ``claim_limit`` owned records each, not one they gave back or lost within
    ``cooldown_days``), owners release them, and records whose ``return_when``
    holds go back after their owner has had them ``return_after_days``."""

    claim_limit: int | None = None
    cooldown_days: int = 0
    return_after_days: int | None = None
    #: A condition in the expression language (checked at ``crmkit check``).
    return_when: str | None = None


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
    #: The date or datetime field at which the entity's records (activities)
    #: appear on the timeline of the records they refer to; None: not activities.
    timeline: str | None = None
    #: The home page's to-dos of this entity (None: it has none).
    due: DueSpec | None = None
    #: Validation rules, in the order written.
    validate: tuple[ValidationSpec, ...] = ()
    #: Who owns a new record nobody named an owner for (crmkit.assignment).
    assignment: AssignmentSpec | None = None
    #: The entity's pool of records without an owner (crmkit.pool); None: no pool.
    pool: PoolSpec | None = None

    @property
    def user_fields(self) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.fields.values() if not f.system)


#: The entity key of a role's grants that stands for every entity of the config
#: (not the platform's user, team and audit, which a role must name).
EVERY_ENTITY = "*"
#: The source state of a transition that stands for any state.
ANY_STATE = "*"


@dataclass(frozen=True, slots=True)
class RoleSpec:
    """A role of roles.yaml, as written: what it grants, not yet compiled
    (crmkit.permissions unions roles into what a user may do)."""

    name: str
    label: Label
    description: str = ""
    #: entity (or EVERY_ENTITY) -> action -> data scope: none, own, team,
    #: team_tree, subordinates or all (``true`` in the file is all, ``false`` none).
    grants: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: MappingProxyType({}))
    #: entity -> field -> level: hidden, masked, read or write.
    fields: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: MappingProxyType({}))
    source: str = ""


#: How many approvers of a step must approve: any one (或签) or all (会签).
APPROVAL_MODES = ("any", "all")
#: The highest superior an approval step may name (``superior: N``).
MAX_SUPERIOR_DEPTH = 5


@dataclass(frozen=True, slots=True)
class ApprovalStepSpec:
    """One step of a move's approval: the active users of ``role``, or the
    requester's ``superior``-th superior, approve (``mode``: any one or all
    of them); skipped when the ``when`` condition is false."""

    #: None: named after its role, or "Superior N" (crmkit.approvals).
    label: Label | None = None
    role: str | None = None
    superior: int | None = None
    #: any | all (the approval's mode when the step names none).
    mode: str = "any"
    #: The condition as written, and compiled at check time.
    when: str | None = None
    condition: Checked | None = None


@dataclass(frozen=True, slots=True)
class ApprovalSpec:
    """The approval a move needs (crmkit.approvals): its steps, in order."""

    steps: tuple[ApprovalStepSpec, ...]
    mode: str = "any"
    #: Re-notify the approvers of a step still open after this long (None: never).
    remind_after: dt.timedelta | None = None


@dataclass(frozen=True, slots=True)
class TransitionSpec:
    """A move of a workflow: from ``sources`` (ANY_STATE: any) to ``to``, by
    the ``roles`` it names (none named: anyone with the transition action),
    with the ``require``d fields filled and the ``when`` condition true."""

    name: str
    label: Label
    sources: tuple[str, ...]
    to: str
    require: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    #: The condition as written, and compiled at check time (a bad condition
    #: is a config problem).
    when: str | None = None
    condition: Checked | None = None
    #: None: the move is made at once; else it waits for these approvals.
    approval: ApprovalSpec | None = None

    @property
    def from_any_state(self) -> bool:
        return ANY_STATE in self.sources


@dataclass(frozen=True, slots=True)
class WorkflowSpec:
    """A state machine over an enum field of an entity (workflows/*.yaml)."""

    name: str
    label: Label
    entity: str
    field: str
    #: In board order.
    states: tuple[str, ...]
    #: The state of a new record.
    initial: str
    transitions: tuple[TransitionSpec, ...]
    source: str = ""


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
    #: A board's money or number field summed per column.
    total: str | None = None
    #: A calendar's date or datetime field.
    date_field: str | None = None


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
    #: The group the tag is shown under (None: ungrouped).
    group: Label | None = None


@dataclass(frozen=True, slots=True)
class TemplateSpec:
    """A message template (templates.yaml): the channel it is written for, a
    subject and a body per language, sandboxed Jinja over a record's fields
    (crmkit.messaging checks and renders them)."""

    name: str
    channel: str
    body: Label
    subject: Label | None = None
    label: Label | None = None
    #: The entity its variables are checked against (None: each sending automation's).
    entity: str | None = None
    source: str = ""


@dataclass(frozen=True, slots=True)
class MenuGroup:
    """A group of the screens' navigation (app.yaml ``menu``): entity names in
    the order shown, under a heading (none: listed ungrouped)."""

    label: Label | None
    entities: tuple[str, ...]


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
    #: Roles by name, as the config defines them (the platform's admin role is
    #: added by crmkit.permissions when the config has none).
    roles: Mapping[str, RoleSpec] = field(default_factory=lambda: MappingProxyType({}))
    #: Workflows in the order they were read.
    workflows: tuple[WorkflowSpec, ...] = ()
    config_dir: str = ""
    views: Mapping[str, ViewSpec] = field(default_factory=lambda: MappingProxyType({}))
    tags: Mapping[str, TagSpec] = field(default_factory=lambda: MappingProxyType({}))
    #: Automations by name (crmkit.automations.checking types them).
    automations: Mapping[str, AutomationSpec] = field(default_factory=lambda: MappingProxyType({}))
    #: URL paths served without authentication (app.yaml ``public``).
    public: tuple[str, ...] = ()
    #: The navigation's order and groups (app.yaml ``menu``); empty: every entity, in order.
    menu: tuple[MenuGroup, ...] = ()
    #: Message templates by name (templates.yaml).
    templates: Mapping[str, TemplateSpec] = field(default_factory=lambda: MappingProxyType({}))
