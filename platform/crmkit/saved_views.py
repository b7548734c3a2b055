"""Per-user saved views of lists (internal plugin): a name and the list's
query string (filters, search, sort, columns), kept for one user and shown
only to them, next to the views of ``views.yaml``.

This module is the only writer of ``crmkit_saved_view``; it declares the table
through the ``crmkit_tables`` hook, as any plugin would. A saved view holds a
query, never records: opening it reads through the query builder within the
user's scope of that day.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

import sqlalchemy as sa

from .database import write_transaction
from .errors import NotFound, ValidationFailed
from .hookspecs import hookimpl
from .metadata.spec import AppSpec
from .permissions import Actor
from .sqltypes import UTC, UTCDateTime

SAVED_VIEW_TABLE = "crmkit_saved_view"
NAME_SIZE, QUERY_SIZE, ENTITY_SIZE = 80, 2000, 64
#: Views one user may keep per entity.
MAX_VIEWS = 50


@hookimpl
def crmkit_tables(metadata: sa.MetaData, spec: AppSpec) -> None:
    sa.Table(
        SAVED_VIEW_TABLE, metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("entity", sa.String(ENTITY_SIZE), nullable=False),
        sa.Column("name", sa.String(NAME_SIZE), nullable=False),
        sa.Column("query", sa.String(QUERY_SIZE), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Index("ix_crmkit_saved_view_user", "user_id", "entity", "id"),
        sqlite_autoincrement=True,
    )


@dataclass(frozen=True, slots=True)
class SavedView:
    id: int
    entity: str
    name: str
    #: The list's query string, as the list URL carries it.
    query: str

    def args(self) -> list[tuple[str, str]]:
        return parse_qsl(self.query, keep_blank_values=False)


class SavedViews:
    """Reads and writes one user's saved views; every write of the table goes through here."""

    def __init__(self, engine: sa.Engine, metadata: sa.MetaData) -> None:
        self.engine = engine
        self.table = metadata.tables[SAVED_VIEW_TABLE]
        t = self.table
        #: The read of of(), built once: every list page asks it.
        self._mine = (sa.select(t.c.id, t.c.entity, t.c.name, t.c.query)
                      .where(t.c.user_id == sa.bindparam("_user"), t.c.entity == sa.bindparam("_entity"))
                      .order_by(t.c.id))

    def of(self, actor: Actor, entity: str, conn: sa.Connection | None = None) -> list[SavedView]:
        """The actor's views of an entity, oldest first (nobody else's);
        read on ``conn`` when given (a page's own connection)."""
        if actor.id is None:
            return []
        params = {"_user": actor.id, "_entity": entity}
        if conn is not None:
            return [SavedView(*row) for row in conn.execute(self._mine, params)]
        with self.engine.connect() as own:
            return [SavedView(*row) for row in own.execute(self._mine, params)]

    def save(self, actor: Actor, entity: str, name: str, args: list[tuple[str, str]]) -> SavedView:
        """Keep the list's query under a name (a view of the same name is replaced)."""
        name = " ".join(name.split())
        query = urlencode(args)
        problems = {}
        if actor.id is None:
            problems["user"] = ["only a user can keep views"]
        if not name or len(name) > NAME_SIZE:
            problems["name"] = [f"must be 1 to {NAME_SIZE} characters"]
        if len(query) > QUERY_SIZE:
            problems["query"] = [f"is longer than {QUERY_SIZE} characters"]
        if problems:
            raise ValidationFailed("the view cannot be saved", problems)
        t = self.table
        mine = sa.and_(t.c.user_id == actor.id, t.c.entity == entity)
        with write_transaction(self.engine) as tx:
            tx.execute(t.delete().where(mine, t.c.name == name))
            if tx.execute(sa.select(sa.func.count()).select_from(t).where(mine)).scalar_one() >= MAX_VIEWS:
                raise ValidationFailed(f"you keep {MAX_VIEWS} views of this list already; delete one first",
                                       {"name": [f"at most {MAX_VIEWS} views per list"]})
            view_id: int = tx.execute(t.insert().returning(t.c.id).values(
                user_id=actor.id, entity=entity, name=name, query=query, created_at=dt.datetime.now(UTC))).scalar_one()
        return SavedView(view_id, entity, name, query)

    def delete(self, actor: Actor, view_id: int) -> None:
        """Delete one of the actor's views (someone else's is not found)."""
        t = self.table
        with write_transaction(self.engine) as tx:
            deleted = tx.execute(t.delete().where(t.c.id == view_id, t.c.user_id == actor.id)).rowcount
        if not deleted:
            raise NotFound(f"no saved view {view_id} of yours")
