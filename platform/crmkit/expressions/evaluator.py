"""The Python evaluator: one record (as the records service holds it: values
by field name) and what the expression needs of other records, loaded through
a Loader the caller provides: one query per reference followed from the
record, one per aggregate.

A checked expression is compiled once into Python closures (kept on the
Checked), so evaluating a validation rule or a formula on every save costs
microseconds.

Three-valued logic, as SQL's: a comparison with null is unknown (None);
``not`` unknown is unknown; ``false and unknown`` is false, ``true or
unknown`` is true. A condition holds only when it is true, so an unknown
condition selects nothing, like NULL in a WHERE clause.
"""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import operator
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Protocol

from ..metadata.spec import FieldSpec
from . import tree as t
from .tree import Kind
from .values import Context, divide, like_regex, local_date, moment, round_places

Row = Mapping[str, Any]
#: Enough digits that + - * of any two stored values is exact.
EXACT = decimal.Context(prec=200, Emax=999_999, Emin=-999_999)
UTC = dt.UTC


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
    program = checked.cache.get("python")
    if program is None:
        program = checked.cache["python"] = _Program(checked.root)
    assert isinstance(program, _Program)
    return _shaped(program.root(_Run(program, record, context, loader), None), checked.type)


def holds(checked: t.Checked, record: Row, context: Context, loader: Loader | None = None) -> bool:
    """Whether a condition is true for the record (unknown is not true)."""
    return evaluate(checked, record, context, loader) is True


def constant(node: t.Node, context: Context) -> Any:
    """The value of a part of an expression that reads no record."""
    program = _Program(node)
    return program.root(_Run(program, {}, context, None), None)


Fn = Callable[["_Run", Row | None], Any]


class _Program:
    """An expression as closures, and the paths it follows from the record."""

    def __init__(self, root: t.Node) -> None:
        #: Every path from the record through a reference, by the reference:
        #: one query per reference fetches all of them.
        self.through: dict[str, list[t.FieldPath]] = {}
        self.aggregates = 0
        self.root = self.compile(root)

    def compile(self, node: t.Node) -> Fn:
        return _COMPILERS[type(node)](self, node)

    def const(self, node: t.Const) -> Fn:
        value = node.value
        if isinstance(value, dt.datetime):
            if value.tzinfo is None:  # read in the app's timezone, known when evaluated
                return lambda run, row: moment(value, run.context.timezone)
            value = value.astimezone(UTC)
        return lambda run, row: value

    def now(self, node: t.Now) -> Fn:
        return lambda run, row: run.context.now.astimezone(UTC)

    def today(self, node: t.Today) -> Fn:
        return lambda run, row: run.context.today

    def me(self, node: t.Me) -> Fn:
        return lambda run, row: run.context.user_id

    def field(self, node: t.Field) -> Fn:
        path, normal = node.path, _normalizer(node.type)
        if node.frame == 1:
            key = path.dotted
            return lambda run, row: normal(row.get(key) if row is not None else None)
        if not path.hops:
            name, column = path.field.name, path.field.column
            return lambda run, row: normal(run.own(name, column))
        hop, tail = path.hops[0], t.FieldPath(path.hops[0].to or "", path.hops[1:], path.field)
        paths = self.through.setdefault(hop.name, [])
        if tail not in paths:
            paths.append(tail)
        key = tail.dotted
        return lambda run, row: normal(run.followed(hop, key))

    def negate(self, node: t.Negate) -> Fn:
        operand = self.compile(node.operand)

        def negate(run: _Run, row: Row | None) -> Any:
            value = operand(run, row)
            return None if value is None else -value
        return negate

    def arith(self, node: t.Arith) -> Fn:
        left, right = self.compile(node.left), self.compile(node.right)
        op = node.op
        compute: Callable[[Any, Any], Any]
        if node.type.kind is Kind.DECIMAL:
            places = node.type.scale
            compute = (lambda a, b: divide(a, b, places)) if op == "/" else \
                {"+": EXACT.add, "-": EXACT.subtract, "*": EXACT.multiply}[op]
        elif node.type.kind is Kind.INTEGER and op == "/":  # pragma: no cover - a division is a decimal
            raise AssertionError(node)
        else:  # whole numbers, text, dates and moments moved by durations, durations
            compute = {"+": operator.add, "-": operator.sub, "*": operator.mul}[op]

        def arith(run: _Run, row: Row | None) -> Any:
            a = left(run, row)
            if a is None:
                return None
            b = right(run, row)
            return None if b is None else compute(a, b)
        return arith

    def compare(self, node: t.Compare) -> Fn:
        left, right = self.compile(node.left), self.compile(node.right)
        test = _COMPARISONS[node.op]

        def compare(run: _Run, row: Row | None) -> bool | None:
            a = left(run, row)
            if a is None:
                return None
            b = right(run, row)
            return None if b is None else bool(test(a, b))
        return compare

    def in_list(self, node: t.InList) -> Fn:
        operand, items = self.compile(node.operand), [self.compile(i) for i in node.items]
        negated = node.negated

        def in_list(run: _Run, row: Row | None) -> bool | None:
            value = operand(run, row)
            if value is None:
                return None
            unknown = False
            for item in items:
                candidate = item(run, row)
                if candidate is None:
                    unknown = True
                elif candidate == value:
                    return not negated
            return None if unknown else negated
        return in_list

    def is_null(self, node: t.IsNull) -> Fn:
        operand, negated = self.compile(node.operand), node.negated
        if node.operand.type.kind is Kind.MULTI_ENUM:  # no option chosen
            return lambda run, row: bool(operand(run, row)) is negated
        return lambda run, row: (operand(run, row) is None) is not negated

    def match(self, node: t.Match) -> Fn:
        operand, pattern = self.compile(node.operand), self.compile(node.pattern)
        test: Callable[[Any, Any], bool]
        if node.operand.type.kind is Kind.MULTI_ENUM or node.op == "contains":
            test = lambda value, wanted: wanted in value  # noqa: E731
        elif node.op == "startswith":
            test = lambda value, prefix: bool(value.startswith(prefix))  # noqa: E731
        else:
            assert isinstance(node.pattern, t.Const)
            regex = like_regex(str(node.pattern.value))
            test = lambda value, _: regex.fullmatch(value) is not None  # noqa: E731

        def match(run: _Run, row: Row | None) -> bool | None:
            value = operand(run, row)
            if value is None:
                return None
            wanted = pattern(run, row)
            return None if wanted is None else test(value, wanted)
        return match

    def not_(self, node: t.Not) -> Fn:
        operand = self.compile(node.operand)

        def not_(run: _Run, row: Row | None) -> bool | None:
            value = operand(run, row)
            return None if value is None else not value
        return not_

    def logic(self, node: t.Logic) -> Fn:
        operands = [self.compile(o) for o in node.operands]
        decisive = node.op == "or"  # true decides an or, false an and

        def logic(run: _Run, row: Row | None) -> bool | None:
            unknown = False
            for operand in operands:
                value = operand(run, row)
                if value is None:
                    unknown = True
                elif value == decisive:
                    return decisive
            return None if unknown else not decisive
        return logic

    def call(self, node: t.Call) -> Fn:
        name = node.name
        args = [self.compile(a) for a in node.args]
        if name == "if":
            test, yes, no = args
            return lambda run, row: (yes if test(run, row) is True else no)(run, row)
        if name == "coalesce":
            def coalesce(run: _Run, row: Row | None) -> Any:
                for arg in args:
                    value = arg(run, row)
                    if value is not None:
                        return value
                return None
            return coalesce
        if name == "len" and node.args[0].type.kind is Kind.MULTI_ENUM:
            return lambda run, row: len(args[0](run, row))
        if name == "round":
            value, places = args[0], int(_constant_value(node.args[1]))
            return lambda run, row: _maybe(round_places, value(run, row), places)
        if name == "days_between":
            first, last = args

            def days_between(run: _Run, row: Row | None) -> int | None:
                a, b = first(run, row), last(run, row)
                return None if a is None or b is None else int((b - a).days)
            return days_between
        (arg,) = args
        if name == "date":
            return lambda run, row: _maybe(local_date, arg(run, row), run.context.timezone)
        function = _FUNCTIONS[name]
        return lambda run, row: _maybe(function, arg(run, row))

    def aggregate(self, node: t.Aggregate) -> Fn:
        index = self.aggregates
        self.aggregates += 1
        relation, func = node.relation, node.func
        paths = list(dict.fromkeys(n.path for n in t.walk(node) if isinstance(n, t.Field) and n.frame == 1))
        where = self.compile(node.where) if node.where is not None else None
        value = self.compile(node.value) if node.value is not None else None
        places = node.type.scale
        zero: int | Decimal = Decimal(0) if node.type.kind is Kind.DECIMAL else 0

        def compute(run: _Run) -> Any:
            record_id = run.record.get("id")
            rows: Sequence[Row] = ()
            if record_id is not None:
                rows = run.need_loader().related(relation, record_id, paths)
            if where is not None:
                rows = [r for r in rows if where(run, r) is True]
            if func == "count":
                return len(rows)
            if func == "exists":
                return bool(rows)
            assert value is not None
            values = [v for v in (value(run, r) for r in rows) if v is not None]
            if func == "sum":
                return _total(values, zero)
            if not values:
                return None
            if func == "avg":
                return divide(_total(values, zero), len(values), places)
            return min(values) if func == "min" else max(values)

        def aggregate(run: _Run, row: Row | None) -> Any:
            found = run.aggregated.get(index, _MISSING)
            if found is _MISSING:
                found = run.aggregated[index] = compute(run)
            return found
        return aggregate


class _Run:
    """One evaluation: the record, the context, and what was loaded for it."""

    __slots__ = ("aggregated", "context", "follows", "loader", "program", "record")

    def __init__(self, program: _Program, record: Row, context: Context, loader: Loader | None) -> None:
        self.program = program
        self.record = record
        self.context = context
        self.loader = loader
        self.follows: dict[str, Row | None] = {}
        self.aggregated: dict[int, Any] = {}

    def need_loader(self) -> Loader:
        if self.loader is None:
            raise ValueError("this expression reads other records: evaluate() needs a loader")
        return self.loader

    def own(self, name: str, column: str) -> Any:
        record = self.record
        return record[name] if name in record else record.get(column)

    def followed(self, hop: FieldSpec, key: str) -> Any:
        """A value of a record the record refers to (loaded once per reference)."""
        if hop.name not in self.follows:
            target = self.own(hop.name, hop.column)
            found = None
            if target is not None:
                assert hop.to is not None
                found = self.need_loader().follow(hop.to, target, self.program.through[hop.name])
            self.follows[hop.name] = found
        row = self.follows[hop.name]
        return None if row is None else row.get(key)


_MISSING = object()
_COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}
_FUNCTIONS: dict[str, Callable[[Any], Any]] = {
    "year": lambda d: d.year, "month": lambda d: d.month, "day": lambda d: d.day,
    "weekday": lambda d: d.isoweekday(), "abs": abs, "len": len,
}
_COMPILERS: dict[type, Callable[[_Program, Any], Fn]] = {
    t.Const: _Program.const, t.Now: _Program.now, t.Today: _Program.today, t.Me: _Program.me,
    t.Field: _Program.field, t.Negate: _Program.negate, t.Arith: _Program.arith, t.Compare: _Program.compare,
    t.InList: _Program.in_list, t.IsNull: _Program.is_null, t.Match: _Program.match, t.Not: _Program.not_,
    t.Logic: _Program.logic, t.Call: _Program.call, t.Aggregate: _Program.aggregate,
}


def _total(values: list[Any], zero: int | Decimal) -> int | Decimal:
    """An exact sum (Python's sum() of decimals rounds to 28 digits)."""
    return functools.reduce(EXACT.add, values, zero) if isinstance(zero, Decimal) else sum(values, zero)


def _maybe(function: Callable[..., Any], value: Any, *more: Any) -> Any:
    return None if value is None else function(value, *more)


def _constant_value(node: t.Node) -> Any:
    assert isinstance(node, t.Const)
    return node.value


def _normalizer(type_: t.Type) -> Callable[[Any], Any]:
    """How a stored value becomes one the evaluator computes with."""
    kind = type_.kind
    if kind is Kind.MULTI_ENUM:  # no option chosen: null or []
        return lambda value: list(value) if value else []
    if kind is Kind.DECIMAL:
        return lambda value: value if value is None or isinstance(value, Decimal) else Decimal(str(value))
    if kind is Kind.DATETIME:
        return lambda value: value if value is None or value.tzinfo is UTC else (
            value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC))
    return lambda value: value


def _shaped(value: Any, type_: t.Type) -> Any:
    """A result as the SQL compiler's reads back: a decimal with its places."""
    if type_.kind is Kind.DECIMAL and value is not None:
        return Decimal(value).quantize(Decimal(1).scaleb(-type_.scale))
    return value
