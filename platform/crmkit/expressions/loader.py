"""A Loader over a database connection: what the Python evaluator needs of
other records, in one query per reference followed and one per aggregate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from ..tables import Tables
from . import tree as t
from .evaluator import Row
from .sql import Rows, ScopeFn


class SqlLoader:
    """Reads related and referenced records through ``connection``.

    ``scope`` and ``parameters``: for an expression evaluated for a user, their
    read scope and its bound values (``scope_params(actor)``), as to_sql()
    takes them; the same records are read either way."""

    def __init__(self, connection: sa.Connection, tables: Tables, *, scope: ScopeFn | None = None,
                 parameters: Mapping[str, Any] | None = None) -> None:
        self.connection = connection
        self.tables = tables
        self.scope = scope
        self.parameters = dict(parameters or {})

    def follow(self, entity: str, record_id: int, paths: Sequence[t.FieldPath]) -> Row | None:
        rows = Rows(self.tables, self.scope)  # one per query: its aliases are the query's
        table = rows.alias(self.tables.entities[entity])
        columns = [rows.path(table, p).label(f"c{i}") for i, p in enumerate(paths)]
        query = sa.select(table.c.id, *columns).where(table.c.id == record_id, *rows.visible(table, entity))
        found = self.connection.execute(query, self.parameters).first()
        if found is None:
            return None
        return {p.dotted: found[i + 1] for i, p in enumerate(paths)}

    def related(self, relation: t.Relation, record_id: int, paths: Sequence[t.FieldPath]) -> Sequence[Row]:
        owner = sa.literal(record_id, sa.Integer())
        rows = Rows(self.tables, self.scope)
        child, source, conditions = rows.relation(relation, owner)
        columns = [rows.path(child, p).label(f"c{i}") for i, p in enumerate(paths)]
        query = sa.select(child.c.id, *columns).select_from(source).where(*conditions)
        result = self.connection.execute(query, self.parameters)
        return [{p.dotted: row[i + 1] for i, p in enumerate(paths)} for row in result]
