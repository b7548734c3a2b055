"""Record sharing (相关团队): collaborators with read or write access.

Mixed into the records service: whoever may update a record through their
roles (its owner, their managers) may share it; a collaborator may not. The
query builder's scopes read the shares (permissions.ScopeSQL.shared).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from .database import write_transaction
from .errors import Conflict, NotFound, ValidationFailed
from .fieldtypes import MAX_ID


class Sharing:
    def collaborators(self, entity_name: str, record_id: int, actor) -> list[dict]:
        entity = self.entity(entity_name)
        shares, users = self.tables.shares, self.tables.users
        with self.engine.connect() as conn:
            if self.queries.fetch(conn, entity, record_id, actor=actor) is None:
                raise self._not_found(entity, record_id)
            rows = conn.execute(sa.select(shares.c.user_id, users.c.username, users.c.display_name, shares.c.access,
                                          shares.c.created_at, shares.c.created_by)
                                .join(users, users.c.id == shares.c.user_id)
                                .where(shares.c.entity == entity.name, shares.c.record_id == record_id)
                                .order_by(shares.c.created_at)).mappings().all()
        return [dict(r) for r in rows]

    def share(self, entity_name: str, record_id: int, user_id: Any, access: Any, actor) -> None:
        """Add a collaborator (or change their access): read, or write (read,
        update, transition). Whoever may update the record through their roles
        (its owner, their managers) may share it; a collaborator may not."""
        entity = self.entity(entity_name)
        if not entity.owned:
            raise ValidationFailed(f"{entity.name} records have no owner, so they are not shared",
                                   {"user_id": ["records of this entity cannot be shared"]})
        if access not in ("read", "write"):
            raise ValidationFailed("access must be read or write", {"access": ["must be read or write"]})
        if isinstance(user_id, bool) or not isinstance(user_id, int) or not 0 < user_id <= MAX_ID:
            raise ValidationFailed("user_id must be the id of a user", {"user_id": ["must be the id of a user"]})
        shares, users = self.tables.shares, self.tables.users
        with write_transaction(self.engine) as tx:
            old = self._fetch_for(tx, entity, record_id, actor, ("share",))
            if not tx.execute(sa.select(users.c.id).where(users.c.id == user_id, users.c.active.is_(True))).first():
                raise Conflict(f"no active user {user_id}", {"user_id": [f"no active user {user_id}"]},
                               code="reference_not_found")
            key = (shares.c.entity == entity.name, shares.c.record_id == record_id, shares.c.user_id == user_id)
            before = tx.execute(sa.select(shares.c.access).where(*key)).scalar()
            if before == access:
                return
            tx.execute(shares.delete().where(*key))
            tx.execute(shares.insert().values(entity=entity.name, record_id=record_id, user_id=user_id, access=access,
                                              created_at=self._now(), created_by=actor.id))
            self._relation_changed(tx, entity, old, "collaborators", {(user_id, before)} if before else set(),
                                   {(user_id, access)}, actor)

    def unshare(self, entity_name: str, record_id: int, user_id: int, actor) -> None:
        entity = self.entity(entity_name)
        shares = self.tables.shares
        with write_transaction(self.engine) as tx:
            old = self._fetch_for(tx, entity, record_id, actor, ("share",))
            key = (shares.c.entity == entity.name, shares.c.record_id == record_id, shares.c.user_id == user_id)
            before = tx.execute(sa.select(shares.c.access).where(*key)).scalar()
            if before is None:
                raise NotFound(f"user {user_id} is not a collaborator on {entity.name} {record_id}")
            tx.execute(shares.delete().where(*key))
            self._relation_changed(tx, entity, old, "collaborators", {(user_id, before)}, set(), actor)

