"""SQLAlchemy tables built from the spec: one per entity, one per many-to-many
relation, plus the platform's own tables (sequences, schema registry, people).
Plugins add theirs through the ``crmkit_tables`` hook, as the audit trail does."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.sql.ddl import sort_tables_and_constraints

from .audit import AUDIT_TABLE
from .metadata.spec import AppSpec, EntitySpec
from .sqltypes import UTCDateTime, json_type

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SEQUENCE_TABLE = "crmkit_sequences"
SCHEMA_TABLE = "crmkit_schema"
#: One row: the app (app.yaml ``app``) whose database this is.
APP_TABLE = "crmkit_app"
USER_TABLE = "crmkit_user"
TEAM_TABLE = "crmkit_team"
TOKEN_TABLE = "crmkit_token"
SESSION_TABLE = "crmkit_session"
SHARE_TABLE = "crmkit_share"
THROTTLE_TABLE = "crmkit_login_failure"
MAX_NAME = 60
#: The tables of the platform's records a ref field may point at ({type: ref, to: user}).
DIRECTORY_TABLES = {"user": USER_TABLE, "team": TEAM_TABLE}


@dataclass
class Tables:
    """The MetaData and lookups the records service and query builder need."""

    metadata: sa.MetaData
    entities: dict[str, sa.Table] = field(default_factory=dict)
    links: dict[tuple[str, str], sa.Table] = field(default_factory=dict)
    #: unique index or constraint name -> (entity, field names)
    unique_names: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)

    @property
    def audit(self) -> sa.Table:
        """The audit trail's table (declared by crmkit.audit, its one writer): for readers."""
        return self.metadata.tables[AUDIT_TABLE]

    @property
    def sequences(self) -> sa.Table:
        return self.metadata.tables[SEQUENCE_TABLE]

    @property
    def schema_registry(self) -> sa.Table:
        return self.metadata.tables[SCHEMA_TABLE]

    @property
    def app_mark(self) -> sa.Table:
        return self.metadata.tables[APP_TABLE]

    @property
    def users(self) -> sa.Table:
        return self.metadata.tables[USER_TABLE]

    @property
    def teams(self) -> sa.Table:
        return self.metadata.tables[TEAM_TABLE]

    @property
    def tokens(self) -> sa.Table:
        return self.metadata.tables[TOKEN_TABLE]

    @property
    def sessions(self) -> sa.Table:
        return self.metadata.tables[SESSION_TABLE]

    @property
    def shares(self) -> sa.Table:
        return self.metadata.tables[SHARE_TABLE]

    @property
    def login_failures(self) -> sa.Table:
        return self.metadata.tables[THROTTLE_TABLE]

    def link_columns(self, owner: str, relation: str) -> tuple[sa.Column, sa.Column]:
        """The columns of a many-to-many relation's link table: (the owner's id, the other record's id)."""
        columns = list(self.links[(owner, relation)].c)
        return columns[0], columns[1]


def _short(name: str) -> str:
    if len(name) <= MAX_NAME:
        return name
    import hashlib

    return name[: MAX_NAME - 9] + "_" + hashlib.sha1(name.encode()).hexdigest()[:8]


def build_tables(spec: AppSpec, field_types: Mapping[str, object], pm=None) -> Tables:
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    tables = Tables(metadata)
    _system_tables(metadata)
    for entity in spec.entities.values():
        tables.entities[entity.name] = _entity_table(metadata, entity, field_types, tables)
    for entity in spec.entities.values():
        for rel in entity.relations.values():
            if rel.kind == "many_to_many":
                tables.links[(entity.name, rel.name)] = _link_table(metadata, entity.name, rel)
    if pm is not None:
        from .plugins import call_startup_hook

        call_startup_hook(pm, "crmkit_tables", metadata=metadata, spec=spec)
    # Foreign keys in a cycle (a -> b -> a) are created after the tables.
    for table, constraints in sort_tables_and_constraints(metadata.tables.values()):
        if table is None:
            for constraint in constraints:
                constraint.use_alter = True
    return tables


def _system_tables(metadata: sa.MetaData) -> None:
    sa.Table(
        SEQUENCE_TABLE, metadata,
        sa.Column("key", sa.String(120), primary_key=True),
        sa.Column("period", sa.String(16), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    sa.Table(
        SCHEMA_TABLE, metadata,
        sa.Column("table_name", sa.String(120), primary_key=True),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    sa.Table(
        APP_TABLE, metadata,
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("marked_at", UTCDateTime(), nullable=False),
    )
    _identity_tables(metadata)


def _identity_tables(metadata: sa.MetaData) -> None:
    """Users, teams (a tree: departments), API tokens, browser sessions, record
    shares (collaborators) and the login throttle."""
    sa.Table(
        TEAM_TABLE, metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey(f"{TEAM_TABLE}.id")),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Index("ix_crmkit_team_parent_id", "parent_id"),
        sqlite_autoincrement=True,
    )
    sa.Table(
        USER_TABLE, metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("display_name", sa.String(100), nullable=False),
        sa.Column("email", sa.String(254)),
        sa.Column("mobile", sa.String(20)),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("roles", json_type(), nullable=False),
        sa.Column("team_id", sa.Integer, sa.ForeignKey(f"{TEAM_TABLE}.id")),
        sa.Column("superior_id", sa.Integer, sa.ForeignKey(f"{USER_TABLE}.id")),
        sa.Column("password_hash", sa.String(200)),
        sa.Column("password_changed_at", UTCDateTime()),
        sa.Column("last_login_at", UTCDateTime()),
        #: The language the user chose on the screens (None: never chose): their messages are written in it.
        sa.Column("language", sa.String(8)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Index("ix_crmkit_user_team_id", "team_id"),
        sa.Index("ix_crmkit_user_superior_id", "superior_id"),
        sqlite_autoincrement=True,
    )
    sa.Table(
        TOKEN_TABLE, metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey(f"{USER_TABLE}.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False, unique=True),  # SHA-256 of the token
        sa.Column("hint", sa.String(16), nullable=False),  # its first characters, to tell tokens apart
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime()),
        sa.Column("last_used_at", UTCDateTime()),
        sa.Column("revoked_at", UTCDateTime()),
        sa.Index("ix_crmkit_token_user_id", "user_id"),
        sqlite_autoincrement=True,
    )
    sa.Table(
        SESSION_TABLE, metadata,
        sa.Column("digest", sa.String(64), primary_key=True),  # SHA-256 of the cookie's value
        sa.Column("user_id", sa.Integer, sa.ForeignKey(f"{USER_TABLE}.id", ondelete="CASCADE"), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Index("ix_crmkit_session_user_id", "user_id"),
    )
    sa.Table(
        SHARE_TABLE, metadata,
        sa.Column("entity", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey(f"{USER_TABLE}.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("record_id", sa.Integer, primary_key=True),
        sa.Column("access", sa.String(8), nullable=False),  # read | write
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.Integer),
        sa.Index("ix_crmkit_share_record", "entity", "record_id"),
    )
    sa.Table(
        THROTTLE_TABLE, metadata,
        sa.Column("key", sa.String(200), primary_key=True),  # user:<name> or ip:<address>
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("first_at", UTCDateTime(), nullable=False),
        sa.Column("locked_until", UTCDateTime()),
    )


def _entity_table(metadata: sa.MetaData, entity: EntitySpec, field_types, tables: Tables) -> sa.Table:
    columns: list = [
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.Integer),
        sa.Column("updated_by", sa.Integer),
        sa.Column("deleted_at", UTCDateTime()),
        sa.Column("deleted_by", sa.Integer),
    ]
    if entity.owned:
        columns += [sa.Column("owner_id", sa.Integer), sa.Column("team_id", sa.Integer)]
    live = sa.text("deleted_at IS NULL")
    extras: list = []
    for f in entity.user_fields:
        ftype = field_types[f.type]
        if f.type == "ref":
            target = DIRECTORY_TABLES.get(f.to or "", f.to)
            column = sa.Column(f.column, ftype.column_type(f),
                               sa.ForeignKey(f"{target}.id", ondelete="SET NULL"), nullable=True)
        else:
            column = sa.Column(f.column, ftype.column_type(f), nullable=True)
        columns.append(column)
        if f.unique:
            name = _short(f"uq_{entity.name}_{f.column}")
            extras.append(sa.Index(name, f.column, unique=True, sqlite_where=live, postgresql_where=live))
            tables.unique_names[name] = (entity.name, (f.name,))
        elif f.index or f.type == "ref":
            extras.append(_live_index(f"ix_{entity.name}_{f.column}", f.column))
    for system_index in ("created_at", "updated_at"):
        extras.append(_live_index(f"ix_{entity.name}_{system_index}", system_index, "id"))
    # Data scopes (own, team) narrow lists by owner or team: an index that
    # leads with the scope column and continues in the list's order serves
    # such a page in index order, without sorting every record in scope.
    list_order = [entity.fields[key.lstrip("-")].column for key in entity.list.sort]
    list_order += [] if "id" in list_order else ["id"]
    for scope_column in ("owner_id", "team_id") if entity.owned else ("created_by",):
        extras.append(_live_index(f"ix_{entity.name}_{scope_column}_sort", scope_column, *list_order))
    for index in entity.indexes:
        cols = [entity.fields[n].column for n in index.fields]
        if index.unique:
            name = _short(index.name)
            extras.append(sa.Index(name, *cols, unique=True, sqlite_where=live, postgresql_where=live))
            tables.unique_names[name] = (entity.name, index.fields)
        else:
            extras.append(_live_index(index.name, *cols))
    sort_columns = [entity.fields[key.lstrip("-")].column for key in entity.list.sort]
    if sort_columns and sort_columns != ["id"]:
        keyset = sort_columns + ([] if "id" in sort_columns else ["id"])
        leading = [[c if isinstance(c, str) else c.name for c in e.expressions][:len(keyset)] for e in extras]
        if keyset not in leading:
            extras.append(_live_index(f"ix_{entity.name}_sort_{'_'.join(keyset)}", *keyset))
    # The recycle bin, newest deletion first, and the purge of old deletions.
    deleted = sa.text("deleted_at IS NOT NULL")
    extras.append(sa.Index(_short(f"ix_{entity.name}_deleted_at"), "deleted_at", "id",
                           sqlite_where=deleted, postgresql_where=deleted))
    return sa.Table(entity.name, metadata, *columns, *extras, sqlite_autoincrement=True)


def _live_index(name: str, *columns: str) -> sa.Index:
    """An index of the live records only: records in the recycle bin stay out
    of it, so a list or a COUNT of live records reads it without the table.
    Its name ends in ``_live`` (an index that was not partial is replaced on
    migration, not kept under the same name) and its last column is
    deleted_at, NULL in every entry: SQLite (3.40) reads an index without the
    table only when it holds every column the query names, the
    ``deleted_at IS NULL`` the partial index already implies included."""
    live = sa.text("deleted_at IS NULL")
    return sa.Index(_short(f"{name}_live"), *columns, "deleted_at", sqlite_where=live, postgresql_where=live)


def _link_table(metadata: sa.MetaData, owner: str, rel) -> sa.Table:
    name = _short(rel.link_table(owner))
    left, right = f"{owner}_id", f"{rel.entity}_id"
    if left == right:
        left, right = "left_id", "right_id"
    return sa.Table(
        name, metadata,
        sa.Column(left, sa.Integer, sa.ForeignKey(f"{owner}.id", ondelete="CASCADE"), primary_key=True),
        sa.Column(right, sa.Integer, sa.ForeignKey(f"{rel.entity}.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.Integer),
        sa.Index(_short(f"ix_{name}_{right}"), right),
    )
