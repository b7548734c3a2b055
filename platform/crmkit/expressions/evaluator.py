"""The Python evaluator: one record (as the records service holds it: values
by field name) and what the expression needs of other records, loaded through
a Loader the caller provides: one query per reference followed from the
record, one per aggregate.

Three-valued logic, as SQL's: a comparison with null is unknown (None);
``not`` unknown is unknown; ``false and unknown`` is false, ``true or
unknown`` is true. A condition holds only when it is true, so an unknown
condition selects nothing, like NULL in a WHERE clause.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Protocol

from . import tree as t
from .tree import Kind
from .values import Context, divide, like_regex, local_date, moment, round_places

Row = Mapping[str, Any]
#: Enough digits that + - * of any two stored values is exact.
EXACT = decimal.Context(prec=200, Emax=999_999, Emin=-999_999)


class Loader(Protocol):
    """What the evaluator needs of other records. Rows are mappings from a
    path's dotted name (``total``, ``customer.level``) to its value. Records
    in the recycle bin are not there; for an expression evaluated for a user,
    neither are records outside the user's read scope."""

    def follow(self, entity: str, record_id: int, paths: Sequence[t.FieldPath]) -> Row | None:
        """The values of ``paths`` from one record of ``entity`` (None: no such record)."""

    def related(self, relation: t.Relation, record_id: int, paths: Sequence[t.FieldPath]) -> Sequence[Row]:
        """The related records of one record, each with the values of ``paths``."""


def evaluate(checked: t.Checked, record: Row, context: Context, loader: Loader | None = None) -> Any:
    """The expression's value for one record (None: null, or unknown for a
    condition). ``record`` maps field names to values (a ref's value is the
    id; ``customer_id`` is accepted for ``customer``); a new record without an
    ``id`` has no related records yet."""
    value = _Evaluation(checked, record, context, loader).value(checked.root, None)
    return _shaped(value, checked.type)


def holds(checked: t.Checked, record: Row, context: Context, loader: Loader | None = None) -> bool:
    """Whether a condition is true for the record (unknown is not true)."""
    return evaluate(checked, record, context, loader) is True


class _Evaluation:
    def __init__(self, checked: t.Checked, record: Row, context: Context, loader: Loader | None) -> None:
        self.record = record
        self.context = context
        self.loader = loader
        self.followed: dict[str, Row | None] = {}
        self.aggregated: dict[int, Any] = {}
        # Every path from the record through a reference, by the reference:
        # one query per reference fetches all of them.
        self.through: dict[str, list[t.FieldPath]] = {}
        for node in t.walk(checked.root):
            if isinstance(node, t.Field) and node.frame == 0 and node.path.hops:
                hop, rest = node.path.hops[0], node.path.hops[1:]
                assert hop.to is not None
                paths = self.through.setdefault(hop.name, [])
                tail = t.FieldPath(hop.to, rest, node.path.field)
                if tail not in paths:
                    paths.append(tail)

    def need_loader(self) -> Loader:
        if self.loader is None:
            raise ValueError("this expression reads other records: evaluate() needs a loader")
        return self.loader

    # -------------------------------------------------------------- values

    def value(self, node: t.Node, row: Row | None) -> Any:
        method = _METHODS[type(node)]
        return method(self, node, row)

    def const(self, node: t.Const, row: Row | None) -> Any:
        if isinstance(node.value, dt.datetime):
            return moment(node.value, self.context.timezone)
        return node.value

    def now(self, node: t.Now, row: Row | None) -> Any:
        return self.context.now.astimezone(dt.UTC)

    def today(self, node: t.Today, row: Row | None) -> Any:
        return self.context.today

    def me(self, node: t.Me, row: Row | None) -> Any:
        return self.context.user_id

    def field(self, node: t.Field, row: Row | None) -> Any:
        path = node.path
        if node.frame == 1:
            assert row is not None
            return _normal(row.get(path.dotted), node.type)
        if not path.hops:
            return _normal(self.own(path.field.name, path.field.column), node.type)
        hop = path.hops[0]
        target = self.own(hop.name, hop.column)
        if target is None:
            return _normal(None, node.type)
        if hop.name not in self.followed:
            assert hop.to is not None
            self.followed[hop.name] = self.need_loader().follow(hop.to, target, self.through[hop.name])
        found = self.followed[hop.name]
        tail = ".".join([h.name for h in path.hops[1:]] + [path.field.name])
        return _normal(None if found is None else found.get(tail), node.type)

    def own(self, name: str, column: str) -> Any:
        if name in self.record:
            return self.record[name]
        return self.record.get(column)

    def negate(self, node: t.Negate, row: Row | None) -> Any:
        value = self.value(node.operand, row)
        return None if value is None else -value

    def arith(self, node: t.Arith, row: Row | None) -> Any:
        left, right = self.value(node.left, row), self.value(node.right, row)
        if left is None or right is None:
            return None
        op = node.op
        if node.type.numeric:
            if op == "/":
                return divide(left, right, node.type.scale)
            with decimal.localcontext(EXACT):
                if op == "+":
                    return left + right
                if op == "-":
                    return left - right
                return left * right
        if op == "*":  # a duration times a whole number
            return left * right
        if op == "+":
            return left + right
        return left - right

    def compare(self, node: t.Compare, row: Row | None) -> bool | None:
        return _compare(node.op, self.value(node.left, row), self.value(node.right, row))

    def in_list(self, node: t.InList, row: Row | None) -> bool | None:
        value = self.value(node.operand, row)
        found: bool | None
        if value is None:
            found = None
        else:
            items = [self.value(i, row) for i in node.items]
            found = True if value in [i for i in items if i is not None] else (None if None in items else False)
        return _not(found) if node.negated else found

    def is_null(self, node: t.IsNull, row: Row | None) -> bool:
        value = self.value(node.operand, row)
        empty = value is None or (node.operand.type.kind is Kind.MULTI_ENUM and not value)
        return not empty if node.negated else empty

    def match(self, node: t.Match, row: Row | None) -> bool | None:
        value, pattern = self.value(node.operand, row), self.value(node.pattern, row)
        if node.operand.type.kind is Kind.MULTI_ENUM:
            return None if pattern is None else bool(pattern in value)
        if value is None or pattern is None:
            return None
        if node.op == "contains":
            return pattern in value
        if node.op == "startswith":
            return bool(value.startswith(pattern))
        return like_regex(pattern).fullmatch(value) is not None

    def not_(self, node: t.Not, row: Row | None) -> bool | None:
        return _not(self.value(node.operand, row))

    def logic(self, node: t.Logic, row: Row | None) -> bool | None:
        decisive = node.op == "or"  # true decides an or, false an and
        unknown = False
        for operand in node.operands:
            value = self.value(operand, row)
            if value is None:
                unknown = True
            elif value == decisive:
                return decisive
        return None if unknown else not decisive

    def call(self, node: t.Call, row: Row | None) -> Any:
        name = node.name
        if name == "if":
            test = self.value(node.args[0], row)
            return self.value(node.args[1] if test is True else node.args[2], row)
        if name == "coalesce":
            for arg in node.args:
                value = self.value(arg, row)
                if value is not None:
                    return value
            return None
        args = [self.value(a, row) for a in node.args]
        if any(a is None for a in args):
            return 0 if name == "len" and node.args[0].type.kind is Kind.MULTI_ENUM else None
        if name == "date":
            return local_date(args[0], self.context.timezone)
        if name == "year":
            return args[0].year
        if name == "month":
            return args[0].month
        if name == "day":
            return args[0].day
        if name == "weekday":
            return args[0].isoweekday()
        if name == "days_between":
            return (args[1] - args[0]).days
        if name == "abs":
            return abs(args[0])
        if name == "round":
            return round_places(args[0], args[1])
        if name == "len":
            return len(args[0])
        raise AssertionError(name)  # pragma: no cover - the checker knows no other function

    def aggregate(self, node: t.Aggregate, row: Row | None) -> Any:
        key = id(node)
        if key not in self.aggregated:
            self.aggregated[key] = self.compute(node)
        return self.aggregated[key]

    def compute(self, node: t.Aggregate) -> Any:
        record_id = self.record.get("id")
        rows: Sequence[Row] = ()
        if record_id is not None:
            paths = [n.path for n in t.walk(node) if isinstance(n, t.Field) and n.frame == 1]
            unique = list(dict.fromkeys(paths))
            rows = self.need_loader().related(node.relation, record_id, unique)
        if node.where is not None:
            where = node.where
            rows = [r for r in rows if self.value(where, r) is True]
        if node.func == "count":
            return len(rows)
        if node.func == "exists":
            return bool(rows)
        assert node.value is not None
        values = [v for v in (self.value(node.value, r) for r in rows) if v is not None]
        if node.func == "sum":
            with decimal.localcontext(EXACT):
                total = sum(values, Decimal(0) if node.type.kind is Kind.DECIMAL else 0)
            return total
        if not values:
            return None
        if node.func == "avg":
            with decimal.localcontext(EXACT):
                return divide(sum(values), len(values), node.type.scale)
        return min(values) if node.func == "min" else max(values)


def _not(value: bool | None) -> bool | None:
    return None if value is None else not value


def _compare(op: str, left: Any, right: Any) -> bool | None:
    if left is None or right is None:
        return None
    if op == "=":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


def _shaped(value: Any, type_: t.Type) -> Any:
    """A result as the SQL compiler's reads back: a decimal with its places."""
    if type_.kind is Kind.DECIMAL and value is not None:
        return Decimal(value).quantize(Decimal(1).scaleb(-type_.scale))
    return value


def _normal(value: Any, type_: t.Type) -> Any:
    """A stored value as the evaluator computes with it."""
    kind = type_.kind
    if kind is Kind.MULTI_ENUM:
        return list(value) if value else []
    if value is None:
        return None
    if kind is Kind.DECIMAL and not isinstance(value, Decimal):
        return Decimal(str(value))
    if kind is Kind.DATETIME and isinstance(value, dt.datetime):
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    return value


_METHODS: dict[type, Callable[[_Evaluation, Any, Row | None], Any]] = {
    t.Const: _Evaluation.const, t.Now: _Evaluation.now, t.Today: _Evaluation.today, t.Me: _Evaluation.me,
    t.Field: _Evaluation.field, t.Negate: _Evaluation.negate, t.Arith: _Evaluation.arith,
    t.Compare: _Evaluation.compare, t.InList: _Evaluation.in_list, t.IsNull: _Evaluation.is_null,
    t.Match: _Evaluation.match, t.Not: _Evaluation.not_, t.Logic: _Evaluation.logic, t.Call: _Evaluation.call,
    t.Aggregate: _Evaluation.aggregate,
}


def constant(node: t.Node, context: Context) -> Any:
    """The value of a part of an expression that reads no record."""
    return _Evaluation(t.Checked("", "", node, False), {}, context, None).value(node, None)

