"""Data scopes in SQL: the actor's scope of an action on an entity as a
predicate (roles' scopes, the records shared with them), for every list and
every read of one record."""

from __future__ import annotations

import sqlalchemy as sa

from ..permissions import SYSTEM_ENTITIES, Actor, share_for
from .sources import Source, SourceCatalog


class DataScopes(SourceCatalog):
    """The actor's data scopes as predicates."""

    def scope(self, entity_name: str, actor: Actor, action: str = "read", *,
              shares: bool = True) -> sa.ColumnElement[bool] | None:
        """The actor's data scope for an action on an entity, as a predicate
        (None: every record), with the actor's ids as bound parameters
        (execute with ``scope_params(actor)``). ``shares=False`` leaves out the
        records shared with the actor (for one who has none: see has_shares)."""
        ea = self.permissions.of(actor).entity(entity_name)
        if action == "share":  # sharing a record: the update scope of the roles, not of shares
            return self.scopes.predicate(entity_name, ea.scope("update"))
        if entity_name in SYSTEM_ENTITIES:
            return self.scopes.predicate(entity_name, ea.scope(action))
        return self.scopes.predicate(entity_name, ea.scope(action), share_for(action) if shares else None)

    def has_shares(self, conn: sa.Connection, entity_name: str, actor: Actor) -> bool:
        """Whether any record of the entity is shared with the actor (one probe
        of the share table's key). A list leaves the share branch out of its
        scope otherwise: the OR would make the database sort every record in
        scope instead of reading the page in index order."""
        if actor.id is None or "all" in self.permissions.of(actor).entity(entity_name).scope("read"):
            return False
        shares = self.tables.shares
        return conn.execute(sa.select(shares.c.record_id).where(
            shares.c.entity == entity_name, shares.c.user_id == actor.id).limit(1)).first() is not None

    def _scope(self, source: Source, actor: Actor, action: str, shares: bool) -> sa.ColumnElement[bool] | None:
        if source.guard is None:
            return None
        return self.scope(source.guard, actor, action, shares=shares)
