"""What a list reads: ``Source``, the rows of one table described by a spec,
and which rows it shows; the builder's own sources: the live records and the
recycle bin of each entity, the platform's users, teams and audit trail, and a
record's history. (The jobs' and automation runs' lists build theirs the same
way, in their packages.)"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..fieldtypes import FieldType
from ..metadata import builtin_entities
from ..metadata.spec import AppSpec, EntitySpec, FieldSpec
from ..permissions import SYSTEM_ENTITIES, Access, EntityAccess, Permissions, ScopeSQL
from ..tables import Tables
from ..tagging import TagCatalog

#: Columns that are never NULL, so keyset comparisons need no NULL handling.
NOT_NULL = frozenset({"id", "version", "created_at", "updated_at"})
#: Which rows a source shows: live records, records in the recycle bin, or every row (platform tables).
LIVE, DELETED, ALL = "live", "deleted", "all"


@dataclass(frozen=True, eq=False)
class Source:
    """What a list reads: the rows of one table, described by a spec (its
    fields and their columns, default sort, search fields and page size)."""

    key: str
    spec: EntitySpec
    table: sa.Table
    #: Whose roles and data scopes apply: an entity, ``user``, ``team``,
    #: ``audit``, or None (a record's history: reading the record is the check).
    guard: str | None
    rows: str = LIVE
    #: Fields outside the field rules: whoever may list the source sees them.
    open_fields: frozenset[str] = frozenset()
    not_null: frozenset[str] = NOT_NULL

    @property
    def shareable(self) -> bool:
        """Whether records of the source can be shared with collaborators."""
        return self.rows == LIVE and self.guard is not None and self.guard not in SYSTEM_ENTITIES


class SourceCatalog:
    """The builder's state (the spec, the tables, the statements it keeps) and
    the sources it reads."""

    def __init__(self, spec: AppSpec, tables: Tables, field_types: Mapping[str, FieldType], tz: dt.tzinfo,
                 dialect: str = "sqlite", permissions: Permissions | None = None) -> None:
        self.spec = spec
        self.dialect = dialect
        self.tables = tables
        self.field_types = field_types
        self.tz = tz
        self.permissions = permissions or Permissions(spec, field_types)
        self.scopes = ScopeSQL(tables)
        self._fetch_statements: dict[tuple[Any, ...], sa.Select[Any]] = {}
        self._statements: dict[Hashable, Any] = {}
        self._dumpers: dict[Hashable, Callable[[Sequence[Any]], dict[str, Any]]] = {}
        #: The live records of each entity, and those in its recycle bin.
        self.sources = {name: Source(name, entity, tables.entities[name], name)
                        for name, entity in spec.entities.items()}
        self.binned = {name: self._bin_source(entity) for name, entity in spec.entities.items()}
        platform = {"user": (builtin_entities.user_spec(self.permissions.roles), tables.users),
                    "team": (builtin_entities.team_spec(), tables.teams),
                    "audit": (builtin_entities.audit_spec(), tables.audit)}
        #: Users, teams and the audit trail: no field rules, every row (users stay when disabled).
        self.platform = {name: Source(name, s, table, name, ALL, frozenset(s.fields), NOT_NULL | {"at"})
                         for name, (s, table) in platform.items()}
        history = builtin_entities.history_spec()
        #: The config's tags and who sees which (crmkit.tagging).
        self.tag_catalog = TagCatalog(spec)
        self.history = Source(builtin_entities.HISTORY, history, tables.audit, None, ALL, frozenset(history.fields),
                              NOT_NULL | {"at"})

    def _bin_source(self, entity: EntitySpec) -> Source:
        """The recycle bin of an entity: its fields plus when and by whom each
        record was deleted, newest deletion first."""
        label = {"en": "Deleted at", "zh": "删除时间"}
        deleted = {"deleted_at": FieldSpec("deleted_at", "datetime", label, readonly=True, system=True),
                   "deleted_by": FieldSpec("deleted_by", "integer", {"en": "Deleted by", "zh": "删除人"},
                                           readonly=True, system=True)}
        spec = dataclasses.replace(entity, fields={**entity.fields, **deleted},
                                   list=dataclasses.replace(entity.list, sort=("-deleted_at",)))
        return Source(f"{entity.name}:deleted", spec, self.tables.entities[entity.name], entity.name, DELETED,
                      frozenset(deleted), NOT_NULL | {"deleted_at"})

    def source(self, what: EntitySpec | Source) -> Source:
        """The live records of an entity (a source is its own)."""
        return what if isinstance(what, Source) else self.sources[what.name]

    def reader(self, source: EntitySpec | Source, access: Access) -> EntityAccess:
        """What a caller with this access sees of a source's fields (the field
        rules of its entity, plus the fields no rule covers)."""
        source = self.source(source)
        ea = access.entity(source.guard) if source.guard is not None else EntityAccess(source.spec.name)
        if not source.open_fields:
            return ea
        return dataclasses.replace(ea, visible=ea.visible | source.open_fields,
                                   readable=ea.readable | source.open_fields)

    def table(self, entity: EntitySpec) -> sa.Table:
        return self.tables.entities[entity.name]

    def live(self, entity: EntitySpec) -> sa.ColumnElement[bool]:
        return self.table(entity).c.deleted_at.is_(None)
