"""The SQL compiler: a checked expression as a SQLAlchemy Core expression over
the entity's table, for SQLite and PostgreSQL.

Set-based: the result goes into a WHERE, a SELECT list, an UPDATE ... SET or
an INSERT ... SELECT, one statement over every record. A reference path is a
correlated scalar subquery on the referenced table's primary key; an
aggregate is a correlated subquery on the related table's foreign-key index
(``(SELECT count(*) FROM "order" AS order_1 WHERE order_1.customer_id =
customer.id AND order_1.deleted_at IS NULL AND ...)``), what one would write
by hand.

Parts that read no record (``now() - 90d``, ``month(today())``, ``me()``) are
computed once in Python, by the evaluator, and bound as parameters: they
cost nothing per row and let the database use an index on the other side.

Exact numbers: PostgreSQL computes in NUMERIC. SQLite has no exact decimal,
and money and decimal columns hold scaled integers there (12.50 as 1250); the
compiler keeps every number as an integer with a known number of decimal
places, so + - * stay exact, and division and round() are done in integers,
rounding half away from zero as Python's evaluator and PostgreSQL's round() do.

Days in the app's timezone: PostgreSQL converts with ``timezone(zone, x)``
(AT TIME ZONE). SQLite shifts by the zone's offset at that moment (zones.py);
comparing a datetime with a fixed day (``created_at >= '2026-01-01'``,
``next_follow_up_at < today() + 1d``) becomes a comparison with the day's
first moment in UTC, a bound parameter, so it uses an index on the column.
"""

from __future__ import annotations

import datetime as dt
import weakref
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement, Grouping
from sqlalchemy.sql.util import ClauseAdapter
from sqlalchemy.sql.visitors import InternalTraversal

from ..sqltypes import ExactDecimal, UTCDateTime, json_type
from ..tables import Tables
from . import tree as t
from . import zones
from .evaluator import constant
from .tree import Kind
from .values import Context, day_start, like_glob, like_literal

#: The caller's read scope on an entity's table (None: every record), e.g.
#: ``lambda entity: queries.scope(entity, actor)``; its bound parameters are
#: the caller's to supply when executing (``scope_params(actor)``).
ScopeFn = Callable[[str], "sa.ColumnElement[bool] | None"]
Sql = sa.ColumnElement[Any]

#: Digits PostgreSQL carries in a division before rounding to the result's
#: places: with 40, rounding the computed quotient gives the exact quotient's
#: rounding for every operand of up to 18 digits.
_DIVISION_DIGITS = 40


def to_sql(checked: t.Checked, tables: Tables, *, dialect: str, context: Context,
           scope: ScopeFn | None = None, table: sa.FromClause | None = None, grouped: bool = False) -> Sql:
    """The expression over ``table`` (default: the entity's table), typed so
    that selecting it gives the evaluator's Python values (Decimal, date,
    aware datetime, bool...).

    ``dialect``: "sqlite" or "postgresql". ``context``: now, the timezone and
    the user (its values are bound into the statement: build it per
    execution; SQLAlchemy caches the compiled form). ``scope``: for an
    expression checked for a user, their read scope, applied to every related
    and referenced record it reads; required when it reads any. ``grouped``:
    for a condition over every record at once (a tag refresh), ``count(rel
    where ...) >= N`` (N >= 1) becomes ``id IN (SELECT ref ... GROUP BY ref
    HAVING count(*) >= N)``, one pass over the related table instead of one
    probe per record; never for a few records (it groups them all)."""
    if checked.for_user and checked.needs_rows and scope is None:
        raise ValueError("an expression checked for a user reads other records: to_sql() needs their scope")
    compiler = _Compiler(Rows(tables, scope), dialect, context)
    compiler.grouped = grouped
    root = table if table is not None else tables.entities[checked.entity]
    return compiler.compile(checked.root, root)


class Rows:
    """Other records as SQL: live (not in the recycle bin), within the scope,
    reached through references or relations. Shared by the compiler and the
    SQL loader, so both read the same records."""

    def __init__(self, tables: Tables, scope: ScopeFn | None) -> None:
        self.tables = tables
        self.scope = scope
        self.used: dict[sa.Table, int] = {}

    def alias(self, table: sa.Table) -> sa.FromClause:
        """A fresh alias of a table within this expression. Aliases are kept
        from one expression to the next (their column lists cost more than the
        rest of the compilation); two in one expression are never the same."""
        number = self.used.get(table, 0)
        self.used[table] = number + 1
        kept = _ALIASES.setdefault(table, [])
        while len(kept) <= number:
            kept.append(table.alias())
        return kept[number]

    def visible(self, alias: sa.FromClause, entity: str) -> list[sa.ColumnElement[bool]]:
        conditions: list[sa.ColumnElement[bool]] = [alias.c.deleted_at.is_(None)]
        predicate = self.scope(entity) if self.scope is not None else None
        if predicate is not None:  # the predicate is written on the table: move it onto the alias
            conditions.append(ClauseAdapter(alias).traverse(predicate))
        return conditions

    def path(self, start: sa.FromClause, path: t.FieldPath) -> Sql:
        """A field of the record ``start`` stands for, or of a record it refers to."""
        if not path.hops:
            return start.c[path.field.column]
        conditions: list[sa.ColumnElement[bool]] = []
        previous = start
        joined: sa.FromClause | None = None
        for hop in path.hops:
            assert hop.to is not None
            target = self.alias(self.tables.entities[hop.to])
            link = target.c.id == previous.c[hop.column]
            if joined is None:
                joined = target
                conditions.append(link)
            else:
                joined = joined.join(target, link)
            conditions.extend(self.visible(target, hop.to))
            previous = target
        assert joined is not None
        return sa.select(previous.c[path.field.column]).select_from(joined).where(*conditions).scalar_subquery()

    def relation(self, relation: t.Relation, owner_id: Sql) -> tuple[sa.FromClause, sa.FromClause,
                                                                       list[sa.ColumnElement[bool]]]:
        """The related records of the record whose id is ``owner_id``: (the
        related table's alias, the FROM, the conditions)."""
        child = self.alias(self.tables.entities[relation.entity])
        conditions = self.visible(child, relation.entity)
        if relation.back is not None:
            conditions.insert(0, child.c[relation.back.column] == owner_id)
            return child, child, conditions
        table = self.tables.links[(relation.owner, relation.spec.name)]
        # A link table's first two columns are the owner's id and the related record's.
        left, right = (c.name for c in list(table.c)[:2])
        link = self.alias(table)
        conditions.insert(0, link.c[left] == owner_id)
        return child, child.join(link, link.c[right] == child.c.id), conditions


_ALIASES: weakref.WeakKeyDictionary[sa.Table, list[sa.FromClause]] = weakref.WeakKeyDictionary()


def _cost(node: t.Node) -> int:
    """How much a condition costs per row, roughly: a comparison of a field of
    the record with a value (an index can answer it) costs least, anything
    reading other records most. The order of ``and`` and ``or`` operands does
    not change their result, only how soon a database can stop evaluating."""
    nodes = t.walk(node)
    if any(isinstance(n, t.Aggregate) or (isinstance(n, t.Field) and n.path.hops) for n in nodes):
        return 2
    plain = isinstance(node, (t.Compare, t.IsNull, t.InList)) and all(
        isinstance(n, t.Field) or t.is_constant(n) for n in t.children(node))
    return 0 if plain else 1


def _int(value: int) -> Sql:
    """A whole number written into the SQL (factors and offsets the compiler computes)."""
    return sa.literal_column(str(int(value)), sa.BigInteger())


def _rounded_quotient(dividend: Sql, divisor: Sql) -> Sql:
    """dividend / divisor rounded half up, both whole and non-negative (SQLite keeps
    exact numbers as scaled integers). Written with ``//`` between operands typed
    Integer: SQLAlchemy renders ``/`` between two integers as true division on
    SQLite (``b + 0.0``), which would leave the fraction the rounding must cut."""
    double = sa.type_coerce(dividend * _int(2) + divisor, sa.Integer())
    return double // sa.type_coerce(divisor * _int(2), sa.Integer())


def _negated(condition: Sql) -> Sql:
    """NOT condition, in parentheses: SQLAlchemy writes ``NOT CASE ... END IS NULL``,
    which SQL reads as NOT (... IS NULL)."""
    return Grouping(sa.not_(condition))


def _text(value: str) -> Sql:
    """A short constant text written into the SQL (formats, modifiers the compiler computes)."""
    assert "'" not in value
    return sa.literal_column(f"'{value}'", sa.String())


class _Compiler:
    def __init__(self, rows: Rows, dialect: str, context: Context) -> None:
        if dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"expressions compile for sqlite and postgresql, not {dialect}")
        self.rows = rows
        self.sqlite = dialect == "sqlite"
        self.context = context
        self.frames: list[sa.FromClause] = []
        self.grouped = False

    def compile(self, node: t.Node, root: sa.FromClause) -> Sql:
        self.frames = [root]
        if t.is_constant(node):  # one parameter, bound with the result's type (type_coerce would re-process it)
            return sa.literal(constant(node, self.context), _result_type(node.type))
        return self.result(self.sql(node), node.type)

    # -------------------------------------------------------------- values

    def sql(self, node: t.Node) -> Sql:
        if t.is_constant(node):
            return self.bind(constant(node, self.context), node.type)
        if isinstance(node, t.Field):
            return self.plain(self.rows.path(self.frames[node.frame], node.path), node.type)
        if isinstance(node, t.Negate):
            return -self.sql(node.operand)
        if isinstance(node, t.Arith):
            return self.arith(node)
        if isinstance(node, t.Compare):
            return self.compare(node)
        if isinstance(node, t.InList):
            return self.in_list(node)
        if isinstance(node, t.IsNull):
            return self.is_null(node)
        if isinstance(node, t.Match):
            return self.match(node)
        if isinstance(node, t.Not):
            return _negated(self.sql(node.operand))
        if isinstance(node, t.Logic):  # cheap tests first: SQLite evaluates them in order, and stops early
            operands = [self.sql(o) for o in sorted(node.operands, key=_cost)]
            return sa.and_(*operands) if node.op == "and" else sa.or_(*operands)
        if isinstance(node, t.Call):
            return self.call(node)
        if isinstance(node, t.Aggregate):
            return self.aggregate(node)
        raise AssertionError(node)  # pragma: no cover - constants are bound above

    def bind(self, value: Any, type_: t.Type) -> Sql:
        kind = type_.kind
        if kind is Kind.NULL:
            return sa.null()
        if kind is Kind.DECIMAL:
            if self.sqlite:
                return sa.literal(None if value is None else _scaled_int(value, type_.scale), sa.BigInteger())
            return sa.literal(value, sa.Numeric())
        if kind is Kind.DURATION:
            seconds = None if value is None else int(value.total_seconds())
            return sa.literal(seconds, sa.BigInteger())
        return sa.literal(value, _column_type(type_))

    def plain(self, expr: Sql, type_: t.Type) -> Sql:
        """A column as a number the compiler computes with: money and decimals
        lose their column type, whose bind processing would scale the
        compiler's own numbers."""
        if type_.kind is Kind.DECIMAL:
            return sa.type_coerce(expr, sa.BigInteger() if self.sqlite else sa.Numeric())
        return expr

    def scaled(self, node: t.Node, scale: int) -> Sql:
        """A number with ``scale`` decimal places (SQLite: an integer scaled by 10**scale)."""
        if t.is_constant(node) and node.type.numeric:
            return self.bind(constant(node, self.context), t.decimal(scale))
        expr = self.sql(node)
        if self.sqlite and node.type.numeric and scale > node.type.scale:
            return expr * _int(10 ** (scale - node.type.scale))
        return expr

    def result(self, expr: Sql, type_: t.Type) -> Sql:
        """The expression with the type that reads its values back as the evaluator's."""
        if type_.kind in (Kind.NULL, Kind.OPAQUE):
            return expr
        return sa.type_coerce(expr, _result_type(type_))

    # -------------------------------------------------------------- arithmetic

    def arith(self, node: t.Arith) -> Sql:
        op, left, right = node.op, node.left, node.right
        if node.type.numeric:
            if op == "/":
                return self.divide(self.sql(left), left.type.scale, self.sql(right), right.type.scale, node.type.scale)
            if op == "*":
                return self.sql(left) * self.sql(right)  # places add up: exact on SQLite too
            scale = node.type.scale
            a, b = self.scaled(left, scale), self.scaled(right, scale)
            return a + b if op == "+" else a - b
        if node.type.kind is Kind.TEXT:
            return self.sql(left).op("||")(self.sql(right))
        if node.type.kind is Kind.DURATION:
            a, b = self.sql(left), self.sql(right)
            return a * b if op == "*" else (a + b if op == "+" else a - b)
        return self.moved(node)

    def moved(self, node: t.Arith) -> Sql:
        """A date or a datetime moved by a duration."""
        base = self.sql(node.left)
        duration = node.right
        sign = 1 if node.op == "+" else -1
        known = t.is_constant(duration)
        seconds = int(constant(duration, self.context).total_seconds()) * sign if known else None
        if node.type.kind is Kind.DATE:
            if self.sqlite:
                modifier = (self.bind(f"{seconds // 86400:+d} days", t.TEXT) if seconds is not None
                            else sa.cast(self.sql(duration) / _int(86400 * sign), sa.String()).op("||")(" days"))
                return sa.func.date(base, modifier)
            # whole days rounded down, as Python's date + timedelta (and SQLite's date()) do
            days = (sa.literal(seconds // 86400, sa.Integer()) if seconds is not None
                    else sa.cast(sa.func.floor(self.sql(duration) / _int(86400 * sign)), sa.Integer()))
            return sa.type_coerce(base.op("+")(days), sa.Date())
        if self.sqlite:
            # SQLite's date functions round to milliseconds: they get whole seconds, and the
            # stored microseconds are put back (durations are whole seconds).
            modifier = (self.bind(f"{seconds:+d} seconds", t.TEXT) if seconds is not None
                        else sa.cast(self.sql(duration) * _int(sign), sa.String()).op("||")(" seconds"))
            moved = sa.func.strftime(_text("%Y-%m-%d %H:%M:%S"), _seconds(base), modifier).op("||")(
                sa.func.substr(base, _int(20)))
            return sa.type_coerce(moved, UTCDateTime())
        shift: Sql
        if seconds is not None:
            shift = sa.literal(dt.timedelta(seconds=seconds), sa.Interval())
        else:
            shift = (self.sql(duration) * _int(sign)).op("*")(sa.literal_column("INTERVAL '1 second'"))
        return sa.type_coerce(base.op("+")(shift), UTCDateTime())

    def divide(self, a: Sql, a_scale: int, b: Sql, b_scale: int, places: int) -> Sql:
        """a / b rounded half away from zero to ``places``; null when b is 0."""
        divisor = sa.func.nullif(b, _int(0))
        if not self.sqlite:
            wide = a * sa.literal_column("1." + "0" * _DIVISION_DIGITS, sa.Numeric())
            return sa.func.round(wide / divisor, _int(places))
        # Integers: a has a_scale places, b b_scale; the quotient is wanted with `places`.
        dividend = a * _int(10 ** (places - a_scale + b_scale))
        size = _rounded_quotient(sa.func.abs(dividend), sa.func.abs(divisor))
        return sa.case(((dividend < _int(0)) == (divisor < _int(0)), size), else_=-size)

    # -------------------------------------------------------------- conditions

    def compare(self, node: t.Compare) -> Sql:
        left, right, op = node.left, node.right, node.op
        grouped = self.grouped_count(node) if self.grouped else None
        if grouped is not None:
            return grouped
        day = self.day_range(left, op, right)
        if day is not None:
            return day
        if left.type.numeric and right.type.numeric:
            scale = max(left.type.scale, right.type.scale)
            a, b = self.scaled(left, scale), self.scaled(right, scale)
        else:
            a, b = self.sql(left), self.sql(right)
            if not self.sqlite and op not in ("=", "!=") and left.type.textual:
                a = sa.collate(a, "C")  # code point order, as Python and SQLite compare text
        return _COMPARE[op](a, b)

    def grouped_count(self, node: t.Compare) -> Sql | None:
        """``count(rel where c) >= N`` (or ``> N - 1``), N >= 1, as the ids that
        have N related records: the same true or false (a count is never null,
        an id never is), from one GROUP BY. None when the form does not apply."""
        count, op = node.left, node.op
        if not (isinstance(count, t.Aggregate) and count.func == "count" and count.relation.back is not None
                and op in (">=", ">") and t.is_constant(node.right) and len(self.frames) == 1):
            return None
        if count.where is not None and any(isinstance(n, t.Field) and n.frame == 0 for n in t.walk(count.where)):
            return None  # the condition reads the record itself: per record
        bound = constant(node.right, self.context)
        if bound is None or bound != int(bound):
            return None
        least = int(bound) + (1 if op == ">" else 0)
        if least < 1:
            return None  # records without related ones hold too
        child, source, conditions = self.rows.relation(count.relation, self.frames[0].c.id)
        back = child.c[count.relation.back.column]
        conditions = [back.is_not(None), *conditions[1:]]  # without the correlation to the record
        self.frames.append(child)
        try:
            if count.where is not None:
                conditions.append(self.sql(count.where))
        finally:
            self.frames.pop()
        having = sa.select(back).select_from(source).where(*conditions).group_by(back)
        return self.frames[0].c.id.in_(having.having(sa.func.count() >= _int(least)))

    def day_range(self, left: t.Node, op: str, right: t.Node) -> Sql | None:
        """``date(moment) op fixed day`` as a range of moments (uses an index on the column)."""
        if _local_day(right) and t.is_constant(left):
            left, right, op = right, left, _FLIPPED[op]
        if not (_local_day(left) and t.is_constant(right)):
            return None
        assert isinstance(left, t.Call)
        day = constant(right, self.context)
        if day is None:
            return None
        moment = self.sql(left.args[0])
        zone = self.context.timezone
        start = sa.literal(day_start(day, zone), UTCDateTime())
        following = sa.literal(day_start(day + dt.timedelta(days=1), zone), UTCDateTime())
        if op == "<":
            return moment < start
        if op == "<=":
            return moment < following
        if op == ">":
            return moment >= following
        if op == ">=":
            return moment >= start
        if op == "=":
            return sa.and_(moment >= start, moment < following)
        return sa.or_(moment < start, moment >= following)

    def in_list(self, node: t.InList) -> Sql:
        operand = node.operand
        if operand.type.numeric:
            scale = max([operand.type.scale, *(i.type.scale for i in node.items)])
            value, items = self.scaled(operand, scale), [self.scaled(i, scale) for i in node.items]
        else:
            value, items = self.sql(operand), [self.sql(i) for i in node.items]
        return value.not_in(items) if node.negated else value.in_(items)

    def is_null(self, node: t.IsNull) -> Sql:
        value = self.sql(node.operand)
        if node.operand.type.kind is Kind.MULTI_ENUM:  # no option chosen: null or []
            empty = sa.or_(value.is_(None), self.array_length(value) == _int(0))
            return _negated(empty) if node.negated else empty
        return value.is_not(None) if node.negated else value.is_(None)

    def array_length(self, value: Sql) -> Sql:
        return sa.func.json_array_length(value) if self.sqlite else sa.func.jsonb_array_length(value)

    def match(self, node: t.Match) -> Sql:
        value = self.sql(node.operand)
        if node.operand.type.kind is Kind.MULTI_ENUM:
            option = self.sql(node.pattern)
            if self.sqlite:
                each = sa.func.json_each(value).table_valued("value")
                return sa.exists(sa.select(_int(1)).select_from(each).where(each.c.value == option))
            return sa.func.coalesce(value.op("@>", is_comparison=True)(sa.func.jsonb_build_array(option)),
                                    sa.false(), type_=sa.Boolean())
        if node.op == "contains":
            position = sa.func.instr(value, self.sql(node.pattern)) if self.sqlite \
                else sa.func.strpos(value, self.sql(node.pattern))
            return position > _int(0)
        if t.is_constant(node.pattern):
            text = constant(node.pattern, self.context)
            if text is None:
                return sa.null()
            pattern = text if node.op == "like" else like_literal(text) + "%"
            if self.sqlite:  # GLOB: case-sensitive, and a fixed prefix uses an index
                return value.op("GLOB", is_comparison=True)(self.bind(like_glob(pattern), t.TEXT))
            return value.like(self.bind(pattern, t.TEXT))
        prefix = self.sql(node.pattern)
        if self.sqlite:
            return sa.func.substr(value, _int(1), sa.func.length(prefix)) == prefix
        return sa.func.starts_with(value, prefix, type_=sa.Boolean())

    # -------------------------------------------------------------- functions

    def call(self, node: t.Call) -> Sql:
        name = node.name
        if name in ("if", "coalesce"):
            scale = node.type.scale
            if name == "if":
                test, yes, no = node.args
                chosen: Sql = sa.case((self.sql(test), self.scaled(yes, scale)), else_=self.scaled(no, scale))
            else:
                chosen = sa.func.coalesce(*(self.scaled(a, scale) for a in node.args))
            # a condition chosen among conditions is one (for not, and, or)
            return sa.type_coerce(chosen, sa.Boolean()) if node.type.kind is Kind.BOOLEAN else chosen
        if name == "date":
            return self.local_date(self.sql(node.args[0]))
        if name in ("year", "month", "day", "weekday"):
            return self.date_part(name, self.sql(node.args[0]))
        if name == "days_between":
            first, last = (self.sql(a) for a in node.args)
            if self.sqlite:
                return sa.cast(sa.func.julianday(last) - sa.func.julianday(first), sa.Integer())
            return sa.cast(last.op("-")(first), sa.Integer())
        if name == "abs":
            return sa.func.abs(self.sql(node.args[0]))
        if name == "round":
            return self.round(node)
        if name == "len":
            value = self.sql(node.args[0])
            if node.args[0].type.kind is Kind.MULTI_ENUM:
                return sa.func.coalesce(self.array_length(value), _int(0))
            return sa.func.length(value) if self.sqlite else sa.func.char_length(value)
        raise AssertionError(name)  # pragma: no cover - now(), today() and me() are constants

    def round(self, node: t.Call) -> Sql:
        value_node, places_node = node.args
        value = self.sql(value_node)
        if node.type == value_node.type:  # already has no more places
            return value
        places = int(constant(places_node, self.context))
        if not self.sqlite:
            return sa.func.round(value, _int(places))
        size = _rounded_quotient(sa.func.abs(value), _int(10 ** (value_node.type.scale - places)))
        return sa.case((value < _int(0), -size), else_=size)

    def local_date(self, moment: Sql) -> Sql:
        """The day a moment falls on in the app's timezone."""
        if self.sqlite:
            return sa.type_coerce(sa.func.date(_seconds(moment), self.offset(moment)), sa.Date())
        return sa.cast(sa.func.timezone(_text(self.context.timezone.key), moment), sa.Date())

    def offset(self, moment: Sql) -> Sql:
        """SQLite's modifier that moves a UTC moment to the app's local time."""
        return _LocalShift(moment, self.context.timezone.key, zones.holding(self.context.timezone.key,
                                                                             self.context.now))

    def date_part(self, name: str, day: Sql) -> Sql:
        if self.sqlite:
            if name == "weekday":  # %w: 0 is Sunday; ISO: 1 Monday ... 7 Sunday
                sunday_first = sa.cast(sa.func.strftime(_text("%w"), day), sa.Integer())
                return (sunday_first + _int(6)) % _int(7) + _int(1)
            fmt = {"year": "%Y", "month": "%m", "day": "%d"}[name]
            return sa.cast(sa.func.strftime(_text(fmt), day), sa.Integer())
        field = {"year": "year", "month": "month", "day": "day", "weekday": "isodow"}[name]
        return sa.cast(sa.extract(field, day), sa.Integer())

    def aggregate(self, node: t.Aggregate) -> Sql:
        child, source, conditions = self.rows.relation(node.relation, self.frames[0].c.id)
        self.frames.append(child)
        try:
            if node.where is not None:
                conditions.append(self.sql(node.where))
            value = self.sql(node.value) if node.value is not None else None
        finally:
            self.frames.pop()
        if node.func == "exists":
            return sa.exists(sa.select(_int(1)).select_from(source).where(*conditions))
        column: Sql
        if node.func == "count":
            column = sa.func.count()
        else:
            assert value is not None and node.value is not None
            scale = node.value.type.scale
            if node.func == "sum":
                column = sa.func.coalesce(sa.func.sum(value), self.bind(0, node.type))
            elif node.func == "avg":
                column = self.divide(sa.func.sum(value), scale, sa.func.count(value), 0, node.type.scale)
            else:
                column = sa.func.min(value) if node.func == "min" else sa.func.max(value)
        return sa.select(column).select_from(source).where(*conditions).scalar_subquery()


class _LocalShift(ColumnElement[str]):
    """SQLite: the modifier ('+28800 seconds') that moves a stored UTC moment
    to local time, with the offset the zone had at that moment: a CASE over
    the zone's spans (zones.py), the one holding now first. It is written out
    as text when compiled (a zone with summer time has a few hundred spans:
    SQLAlchemy objects for each would cost more than the query)."""

    inherit_cache = True
    type = sa.String()
    _traverse_internals = [("moment", InternalTraversal.dp_clauseelement), ("key", InternalTraversal.dp_string),
                           ("anchor", InternalTraversal.dp_plain_obj)]

    def __init__(self, moment: Sql, key: str, anchor: int) -> None:
        self.moment = moment
        self.key = key
        self.anchor = anchor  # the span holding now (the order of the CASE), not now: statements stay cacheable


@compiles(_LocalShift, "sqlite")
def _render_local_shift(element: _LocalShift, compiler: SQLCompiler, **kw: Any) -> str:
    spans = zones.by_nearness(element.key, element.anchor)
    if len(spans) == 1:
        return f"'{spans[0].seconds:+d} seconds'"
    if isinstance(element.moment, sa.ColumnClause):
        moment, source = compiler.process(element.moment, **kw), None
    else:  # computed once, in a derived table, rather than once per span
        moment, source = "m", compiler.process(element.moment, **kw)
    whens = []
    for span in spans[:-1]:
        inside = [f"{moment} >= '{_stored(span.start)}'" if span.start is not None else "",
                  f"{moment} < '{_stored(span.end)}'" if span.end is not None else ""]
        whens.append(f"WHEN {' AND '.join(i for i in inside if i)} THEN '{span.seconds:+d} seconds'")
    case = f"CASE {' '.join(whens)} ELSE '{spans[-1].seconds:+d} seconds' END"
    return case if source is None else f"(SELECT {case} FROM (SELECT {source} AS m))"


def _seconds(moment: Sql) -> Sql:
    """A stored SQLite moment without its fraction ('2026-01-31 15:59:59'): SQLite's
    date functions round fractions to milliseconds, so .9999995 would become the next second."""
    return sa.func.substr(moment, _int(1), _int(19))


def _local_day(node: t.Node) -> bool:
    return isinstance(node, t.Call) and node.name == "date" and node.args[0].type.kind is Kind.DATETIME


def _scaled_int(value: int | Decimal, scale: int) -> int:
    scaled = Decimal(value).scaleb(scale)
    if scaled != scaled.to_integral_value():  # pragma: no cover - the checker gives every constant its places
        raise ValueError(f"{value} has more than {scale} decimal places")
    return int(scaled)


def _stored(moment: dt.datetime) -> str:
    """A UTC moment as UTCDateTime stores it on SQLite."""
    return moment.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _result_type(type_: t.Type) -> sa.types.TypeEngine[Any]:
    if type_.kind is Kind.DECIMAL:
        return ExactDecimal(38, type_.scale)
    if type_.kind is Kind.DURATION:
        return _Seconds()
    if type_.kind in (Kind.NULL, Kind.OPAQUE):
        return sa.types.NullType()
    return _column_type(type_)


def _column_type(type_: t.Type) -> sa.types.TypeEngine[Any]:
    kind = type_.kind
    if kind in (Kind.INTEGER, Kind.REF) or (kind is Kind.ENUM and type_.options
                                            and all(isinstance(o, int) for o in type_.options)):
        return sa.BigInteger()
    if kind is Kind.BOOLEAN:
        return sa.Boolean()
    if kind is Kind.DATE:
        return sa.Date()
    if kind is Kind.DATETIME:
        return UTCDateTime()
    if kind is Kind.MULTI_ENUM:
        return _JSON
    return sa.String()


_JSON: sa.types.TypeEngine[Any] = json_type()


class _Seconds(sa.types.TypeDecorator[dt.timedelta]):
    """A duration computed in whole seconds, read back as a timedelta."""

    impl = sa.BigInteger
    cache_ok = True

    def process_bind_param(self, value: dt.timedelta | None, dialect: sa.Dialect) -> int | None:
        return None if value is None else int(value.total_seconds())

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> dt.timedelta | None:
        return None if value is None else dt.timedelta(seconds=int(value))


_COMPARE: dict[str, Callable[[Sql, Sql], Sql]] = {
    "=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}
_FLIPPED = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
