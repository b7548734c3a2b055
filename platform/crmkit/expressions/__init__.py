"""The expression language: one grammar for conditions, formulas, tag rules,
validation rules and workflow guards, checked against the spec and compiled
two ways that agree (docs/expressions.md).

    rule = check("count(orders where status = 'paid') >= 3", spec, "customer")
    ctx = Context.at(spec.timezone, user_id=None)
    select(customer.c.id).where(to_sql(rule, tables, dialect="postgresql", context=ctx))   # every record
    holds(rule, record, ctx, SqlLoader(connection, tables))                                 # one record

For a user (a view's ``where``): ``check(..., access=actor.access)`` and
``to_sql(..., scope=lambda e: queries.scope(e, actor))``, executed with
``scope_params(actor)``.
"""

from .checker import check, field_type
from .errors import ExpressionError
from .evaluator import Loader, Row, evaluate, holds
from .loader import SqlLoader
from .sql import ScopeFn, to_sql
from .syntax import parse
from .tree import Checked, Kind, Type
from .values import Context

__all__ = [
    "Checked", "Context", "ExpressionError", "Kind", "Loader", "Row", "ScopeFn", "SqlLoader", "Type", "check",
    "evaluate", "field_type", "holds", "parse", "to_sql",
]
