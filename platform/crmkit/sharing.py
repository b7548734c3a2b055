"""Record sharing (相关团队): collaborators with read or write access.

Held by the records service (``records.sharing``): whoever may update a record
through their roles (its owner, their managers) may share it; a collaborator
may not. A share is a change of the record's ``collaborators`` relation,
audited and hooked like a link. The query builder's scopes read the shares
(permissions.ScopeSQL.shared).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .database import write_transaction
from .errors import Conflict, NotFound, ValidationFailed
from .fieldtypes import MAX_ID
from .permissions import Actor
from .sqltypes import UTC

if TYPE_CHECKING:
    from .records import RecordsService

ACCESS_LEVELS = ("read", "write")


class Sharing:
    def __init__(self, records: RecordsService) -> None:
        self.records = records
        self.engine = records.engine
        self.queries = records.queries
        self.shares = records.tables.shares
        self.users = records.tables.users

    def collaborators(self, entity_name: str, record_id: int, actor: Actor) -> list[dict[str, Any]]:
        entity = self.records.entity(entity_name)
        with self.engine.connect() as conn:
            if self.queries.fetch(conn, entity, record_id, actor=actor) is None:
                raise self.records.not_found(entity, record_id)
            return self.listed(conn, entity.name, record_id)

    def listed(self, conn: sa.Connection, entity_name: str, record_id: int) -> list[dict[str, Any]]:
        """Who a record is shared with, oldest share first, for a caller that
        has read the record as the actor already (on this connection): the
        record page, after its read_one."""
        shares, users = self.shares, self.users
        rows = conn.execute(sa.select(shares.c.user_id, users.c.username, users.c.display_name, shares.c.access,
                                      shares.c.created_at, shares.c.created_by)
                            .join(users, users.c.id == shares.c.user_id)
                            .where(shares.c.entity == entity_name, shares.c.record_id == record_id)
                            .order_by(shares.c.created_at)).mappings().all()
        return [dict(r) for r in rows]

    def share(self, entity_name: str, record_id: int, user_id: Any, access: Any, actor: Actor) -> None:
        """Add a collaborator (or change their access): read, or write (read,
        update, transition). Whoever may update the record through their roles
        (its owner, their managers) may share it; a collaborator may not."""
        entity = self.records.entity(entity_name)
        if not entity.owned:
            raise ValidationFailed(f"{entity.name} records have no owner, so they are not shared",
                                   {"user_id": ["records of this entity cannot be shared"]})
        if access not in ACCESS_LEVELS:
            raise ValidationFailed("access must be read or write", {"access": ["must be read or write"]})
        if isinstance(user_id, bool) or not isinstance(user_id, int) or not 0 < user_id <= MAX_ID:
            raise ValidationFailed("user_id must be the id of a user", {"user_id": ["must be the id of a user"]})
        shares, users = self.shares, self.users
        with write_transaction(self.engine) as tx:
            old = self.records.fetch_for(tx, entity, record_id, actor, ("share",))
            if not tx.execute(sa.select(users.c.id).where(users.c.id == user_id, users.c.active.is_(True))).first():
                raise Conflict(f"no active user {user_id}", {"user_id": [f"no active user {user_id}"]},
                               code="reference_not_found")
            key = (shares.c.entity == entity.name, shares.c.record_id == record_id, shares.c.user_id == user_id)
            before = tx.execute(sa.select(shares.c.access).where(*key)).scalar()
            if before == access:
                return
            tx.execute(shares.delete().where(*key))
            tx.execute(shares.insert().values(entity=entity.name, record_id=record_id, user_id=user_id, access=access,
                                              created_at=dt.datetime.now(UTC), created_by=actor.id))
            self.records.relation_changed(tx, entity, old, "collaborators",
                                          {(user_id, before)} if before else set(), {(user_id, access)}, actor)

    def unshare(self, entity_name: str, record_id: int, user_id: int, actor: Actor) -> None:
        entity = self.records.entity(entity_name)
        shares = self.shares
        with write_transaction(self.engine) as tx:
            old = self.records.fetch_for(tx, entity, record_id, actor, ("share",))
            key = (shares.c.entity == entity.name, shares.c.record_id == record_id, shares.c.user_id == user_id)
            before = tx.execute(sa.select(shares.c.access).where(*key)).scalar()
            if before is None:
                raise NotFound(f"user {user_id} is not a collaborator on {entity.name} {record_id}")
            tx.execute(shares.delete().where(*key))
            self.records.relation_changed(tx, entity, old, "collaborators", {(user_id, before)}, set(), actor)
