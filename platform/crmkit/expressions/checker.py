"""Checking an expression against an entity of the spec: names resolved,
types inferred, literals given their meaning by context, and what the caller
may not read refused.

The result (tree.Checked) is what both compilers take; an expression that
checks compiles on every database and evaluates in Python.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Literal as TypingLiteral

from ..fieldtypes import DecimalType, MoneyType
from ..metadata.problems import did_you_mean
from ..metadata.spec import AppSpec, EntitySpec, FieldSpec
from ..permissions import Access
from . import syntax as s
from . import tree as t
from .errors import ExpressionError, Span
from .tree import BOOLEAN, DATE, DATETIME, DIVISION_SCALE, INTEGER, NULL, TEXT, Kind, Type

Want = TypingLiteral["condition", "value"]

AGGREGATES = ("count", "exists", "sum", "avg", "min", "max")
#: Functions and how many arguments each takes (min, max).
FUNCTIONS: dict[str, tuple[int, int]] = {
    "now": (0, 0), "today": (0, 0), "me": (0, 0),
    "date": (1, 1), "year": (1, 1), "month": (1, 1), "day": (1, 1), "weekday": (1, 1), "days_between": (2, 2),
    "coalesce": (2, 20), "abs": (1, 1), "round": (1, 2), "len": (1, 1), "if": (3, 3),
}
TEXT_FIELD_TYPES = frozenset({"string", "text", "email", "phone", "url", "region", "autonumber"})
ORDERING = frozenset({"<", "<=", ">", ">="})
MAX_ROUND = 10
_DECIMAL_TYPES = {"decimal": DecimalType(), "money": MoneyType()}
_DURATION_UNITS = {"d": dt.timedelta(days=1), "h": dt.timedelta(hours=1), "m": dt.timedelta(minutes=1)}


def check(text: str, spec: AppSpec, entity: str, *, access: Access | None = None,
          want: Want = "condition") -> t.Checked:
    """Parse and check an expression about records of ``entity``.

    ``access``: the access of the user the expression is evaluated for (a
    view's ``where``, an API filter); fields they may not see are unknown,
    masked fields and relations to entities they may not read are refused.
    None: the system evaluates it (tag rules, formulas, validation) and
    sees everything. ``want``: a condition (boolean) or any value.
    Raises ExpressionError, located in ``text``."""
    tree = s.parse(text)
    return _Checker(text, spec, access).run(tree, entity, want)


def field_type(f: FieldSpec) -> Type:
    """The expression type of a field's values."""
    if f.type == "integer":
        return INTEGER
    if f.type in _DECIMAL_TYPES:
        return t.decimal(_DECIMAL_TYPES[f.type].scale(f))
    if f.type in TEXT_FIELD_TYPES:
        return TEXT
    if f.type == "boolean":
        return BOOLEAN
    if f.type == "date":
        return DATE
    if f.type == "datetime":
        return DATETIME
    if f.type in ("enum", "multi_enum"):
        return Type(Kind.ENUM if f.type == "enum" else Kind.MULTI_ENUM, options=f.option_values)
    if f.type == "ref":
        return Type(Kind.REF, to=f.to)
    return Type(Kind.OPAQUE)


class _Checker:
    def __init__(self, text: str, spec: AppSpec, access: Access | None) -> None:
        self.text = text
        self.spec = spec
        self.access = access
        self.reads: set[tuple[str, str]] = set()
        self.relations: set[tuple[str, str]] = set()

    def error(self, message: str, span: Span, hint: str = "") -> ExpressionError:
        return ExpressionError(message, self.text, span, hint)

    def run(self, tree: s.Syntax, entity_name: str, want: Want) -> t.Checked:
        entity = self.spec.entities[entity_name]
        if not self.may_read(entity_name):
            raise self.error(f"your role may not read {entity_name} records", (0, len(self.text)))
        root = self.node(tree, entity, 0)
        if want == "condition":
            root = self.condition(root, "the expression")
        return t.Checked(self.text, entity_name, root, self.access is not None,
                         frozenset(self.reads), frozenset(self.relations))

    # -------------------------------------------------------------- access

    def may_read(self, entity: str) -> bool:
        return self.access is None or self.access.allows(entity, "read")

    def level(self, entity: str, name: str) -> str:
        """read, masked or hidden: what the caller may do with a field in an expression."""
        if self.access is None:
            return "read"
        ea = self.access.entity(entity)
        if name in ea.readable:
            return "read"
        return "masked" if name in ea.visible else "hidden"

    # -------------------------------------------------------------- nodes

    def node(self, node: s.Syntax, entity: EntitySpec, frame: int) -> t.Node:
        if isinstance(node, s.Literal):
            return self.literal(node)
        if isinstance(node, s.Name):
            return self.name(node, entity, frame)
        if isinstance(node, s.Unary):
            operand = self.node(node.operand, entity, frame)
            if node.op == "not":
                return t.Not(type=BOOLEAN, span=node.span, operand=self.condition(operand, "not"))
            if not (operand.type.numeric or operand.type.kind is Kind.DURATION):
                raise self.error(f"cannot negate {_a(operand.type)}", node.span)
            return t.Negate(type=operand.type, span=node.span, operand=operand)
        if isinstance(node, s.Logic):
            operands = tuple(self.condition(self.node(o, entity, frame), node.op) for o in node.operands)
            return t.Logic(type=BOOLEAN, span=node.span, op=node.op, operands=operands)
        if isinstance(node, s.Binary):
            left = self.node(node.left, entity, frame)
            right = self.node(node.right, entity, frame)
            if node.op in ("+", "-", "*", "/"):
                return self.arith(node, left, right)
            if node.op in ("like", "contains", "startswith"):
                return self.match(node, left, right)
            left, right = self.comparable(left, right, node.op, node.op_span)
            return t.Compare(type=BOOLEAN, span=node.span, op=node.op, left=left, right=right)
        if isinstance(node, s.InList):
            return self.in_list(node, entity, frame)
        if isinstance(node, s.Between):
            return self.between(node, entity, frame)
        if isinstance(node, s.IsNull):
            operand = self.node(node.operand, entity, frame)
            return t.IsNull(type=BOOLEAN, span=node.span, operand=operand, negated=node.negated)
        return self.call(node, entity, frame)

    def literal(self, node: s.Literal) -> t.Const:
        if node.kind == "number":
            value = Decimal(node.text)
            if "." not in node.text:
                return t.Const(type=INTEGER, span=node.span, value=int(value))
            places = len(node.text.partition(".")[2])
            return t.Const(type=t.decimal(places), span=node.span, value=value)
        if node.kind == "duration":
            amount, unit = int(node.text[:-1]), node.text[-1]
            return t.Const(type=Type(Kind.DURATION, whole_days=unit == "d"), span=node.span,
                           value=amount * _DURATION_UNITS[unit])
        if node.kind == "string":
            return t.Const(type=TEXT, span=node.span, value=node.text)
        if node.kind == "null":
            return t.Const(type=NULL, span=node.span, value=None)
        return t.Const(type=BOOLEAN, span=node.span, value=node.kind == "true")

    def condition(self, node: t.Node, where: str) -> t.Node:
        if node.type.kind is Kind.BOOLEAN:
            return node
        if node.type.kind is Kind.NULL:
            return t.Const(type=BOOLEAN, span=node.span, value=None)
        hint = "compare it, e.g. total > 0" if node.type.numeric else ""
        raise self.error(f"{where} needs a condition (true or false), not {_a(node.type)}", node.span, hint)

    # -------------------------------------------------------------- names

    def name(self, node: s.Name, entity: EntitySpec, frame: int) -> t.Field:
        path = self.path(node.parts, node.spans, entity)
        return t.Field(type=field_type(path.field), span=node.span, frame=frame, path=path)

    def path(self, parts: Sequence[str], spans: Sequence[Span], entity: EntitySpec) -> t.FieldPath:
        start = entity
        hops: list[FieldSpec] = []
        current = self.field(entity, parts[0], spans[0])
        for part, span in zip(parts[1:], spans[1:]):
            if current.type != "ref" or current.to is None:
                raise self.error(f"'{current.name}' is {_a(field_type(current))}, not a reference: it has no fields",
                                 span)
            if not self.may_read(current.to):
                raise self.error(f"'{current.name}' leads to {current.to} records, which your role may not read", span)
            hops.append(current)
            entity = self.spec.entities[current.to]
            current = self.field(entity, part, span)
        return t.FieldPath(start.name, tuple(hops), current)

    def field(self, entity: EntitySpec, name: str, span: Span) -> FieldSpec:
        found = entity.fields.get(name)
        level = self.level(entity.name, name) if found is not None else "hidden"
        if found is not None and level == "read":
            self.reads.add((entity.name, name))
            return found
        if found is not None and level == "masked":
            raise self.error(f"'{name}' is masked for you: expressions cannot read it", span)
        if name in entity.relations and self.may_read(entity.relations[name].entity):
            raise self.error(f"'{name}' is a relation (many {entity.relations[name].entity} records), not a field",
                             span, f"use count({name}), exists({name} where ...) or sum({name}.field)")
        candidates = [n for n in entity.fields if self.level(entity.name, n) == "read"]
        raise self.error(f"{entity.name} has no field '{name}'", span, did_you_mean(name, candidates))

    # -------------------------------------------------------------- literals in context

    def coerce(self, node: t.Node, target: Type, *, options: bool = True) -> t.Node:
        """A literal given its meaning by the other side: '2026-01-31' next to a
        date is a date, 'gold' next to an enum must be one of its options
        (unless ``options`` is false: 'gold' + '!' is text), null takes the
        other side's type."""
        if not isinstance(node, t.Const):
            return node
        if node.type.kind is Kind.NULL and target.kind is not Kind.NULL:
            return t.Const(type=target, span=node.span, value=None)
        if target.kind is Kind.ENUM and options and node.type.kind in (Kind.TEXT, Kind.INTEGER):
            return self.option(node, target)
        if node.type.kind is not Kind.TEXT:
            return node
        if target.kind is Kind.DATE:
            return self.date_literal(node)
        if target.kind is Kind.DATETIME:
            return self.moment_literal(node)
        return node

    def option(self, node: t.Const, target: Type) -> t.Const:
        if node.value in target.options and not isinstance(node.value, bool):
            return t.Const(type=target, span=node.span, value=node.value)
        shown = ", ".join(str(o) for o in target.options)
        raise self.error(f"'{node.value}' is not one of the options ({shown})", node.span,
                         did_you_mean(str(node.value), [str(o) for o in target.options]))

    def date_literal(self, node: t.Const) -> t.Const:
        try:
            return t.Const(type=DATE, span=node.span, value=dt.date.fromisoformat(str(node.value).strip()))
        except ValueError:
            raise self.error(f"'{node.value}' is not a date", node.span, "write dates like '2026-01-31'") from None

    def moment_literal(self, node: t.Const) -> t.Const:
        text = str(node.value).strip()
        if len(text) == 10:
            return self.date_literal(node)
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            raise self.error(f"'{node.value}' is not a date or a date-time", node.span,
                             "write '2026-01-31' or '2026-01-31 09:30' (the app's timezone unless an offset is given)"
                             ) from None
        return t.Const(type=DATETIME, span=node.span, value=moment)

    def as_date(self, node: t.Node, what: str) -> t.Node:
        """A date, from a date, a datetime (its day in the app's timezone) or a date literal."""
        node = self.coerce(node, DATE)
        if node.type.kind is Kind.DATE:
            return node
        if node.type.kind is Kind.DATETIME:
            return t.Call(type=DATE, span=node.span, name="date", args=(node,))
        raise self.error(f"{what} needs a date or a datetime, not {_a(node.type)}", node.span)

    # -------------------------------------------------------------- operators

    def comparable(self, left: t.Node, right: t.Node, op: str, span: Span) -> tuple[t.Node, t.Node]:
        if left.type.kind is Kind.NULL or right.type.kind is Kind.NULL:
            raise self.error(f"a comparison with null is never true: use 'is {'not ' if op == '!=' else ''}null'",
                             span)
        left, right = self.coerce(left, right.type), self.coerce(right, left.type)
        lt, rt = left.type, right.type
        ordered = op in ORDERING
        if lt.numeric and rt.numeric:
            return left, right
        if lt.kind in (Kind.DATE, Kind.DATETIME) and rt.kind in (Kind.DATE, Kind.DATETIME):
            if lt.kind is not rt.kind:  # a datetime next to a date: compare its day
                return self.as_date(left, "a comparison"), self.as_date(right, "a comparison")
            return left, right
        if lt.textual and rt.textual:
            if ordered and Kind.ENUM in (lt.kind, rt.kind):
                raise self.error("options of an enum have no order", span, "use in ('a', 'b') or =")
            return left, right
        if ordered:
            if lt.kind is rt.kind is Kind.DURATION:
                return left, right
            raise self.error(f"cannot order {_a(lt)} and {_a(rt)} with {op}", span)
        same = lt.kind is rt.kind and lt.kind in (Kind.BOOLEAN, Kind.DURATION, Kind.ENUM)
        ids = {lt.kind, rt.kind} <= {Kind.REF, Kind.INTEGER} and (lt.to == rt.to or Kind.INTEGER in (lt.kind, rt.kind))
        int_enum = {lt.kind, rt.kind} == {Kind.ENUM, Kind.INTEGER}
        if same or ids or int_enum:
            return left, right
        raise self.error(f"cannot compare {_a(lt)} with {_a(rt)}", span)

    def arith(self, node: s.Binary, left: t.Node, right: t.Node) -> t.Node:
        op = node.op
        if Kind.DURATION in (left.type.kind, right.type.kind):  # '2026-01-31' + 2d
            left, right = self.coerce(left, DATETIME), self.coerce(right, DATETIME)
        left, right = self.coerce(left, right.type, options=False), self.coerce(right, left.type, options=False)
        lt, rt = left.type, right.type
        if lt.numeric and rt.numeric:
            if op == "/":
                result = t.decimal(max(lt.scale, rt.scale, DIVISION_SCALE))
            elif lt.kind is rt.kind is Kind.INTEGER:
                result = INTEGER
            else:
                result = t.decimal(lt.scale + rt.scale if op == "*" else max(lt.scale, rt.scale))
            return t.Arith(type=result, span=node.span, op=op, left=left, right=right)
        if op in "+-":
            if rt.kind is Kind.DURATION and lt.kind in (Kind.DATE, Kind.DATETIME, Kind.DURATION):
                return self.moved(node, left, right)
            if op == "+" and lt.kind is Kind.DURATION and rt.kind in (Kind.DATE, Kind.DATETIME):
                return self.moved(node, right, left)
            if op == "+" and lt.textual and rt.textual:
                return t.Arith(type=TEXT, span=node.span, op=op, left=left, right=right)
            if lt.kind is rt.kind and lt.kind in (Kind.DATE, Kind.DATETIME) and op == "-":
                raise self.error(_VERBS[op].format(_a(lt), _a(rt)), node.op_span,
                                 "days_between(a, b) counts the days from a to b")
        if op == "*" and {lt.kind, rt.kind} == {Kind.DURATION, Kind.INTEGER}:
            duration, count = (left, right) if lt.kind is Kind.DURATION else (right, left)
            return t.Arith(type=duration.type, span=node.span, op=op, left=duration, right=count)
        raise self.error(_VERBS[op].format(_a(lt), _a(rt)), node.op_span)

    def moved(self, node: s.Binary, base: t.Node, duration: t.Node) -> t.Node:
        if base.type.kind is Kind.DATE and not duration.type.whole_days:
            raise self.error("a date moves by whole days", duration.span,
                             "use days (2d), or a datetime for hours and minutes")
        result = base.type
        if base.type.kind is Kind.DURATION:
            result = Type(Kind.DURATION, whole_days=base.type.whole_days and duration.type.whole_days)
        return t.Arith(type=result, span=node.span, op=node.op, left=base, right=duration)

    def match(self, node: s.Binary, left: t.Node, right: t.Node) -> t.Node:
        op = node.op
        if op == "contains" and left.type.kind is Kind.MULTI_ENUM:
            choice = Type(Kind.ENUM, options=left.type.options)
            right = self.coerce(right, choice)
            if right.type.kind not in (Kind.ENUM, Kind.TEXT, Kind.INTEGER):
                raise self.error(f"contains needs one option, not {_a(right.type)}", right.span)
            return t.Match(type=BOOLEAN, span=node.span, op=op, operand=left, pattern=right)
        if not left.type.textual:
            raise self.error(f"{op} applies to text, not {_a(left.type)}", node.op_span)
        right = self.coerce(right, TEXT)
        if not right.type.textual:
            raise self.error(f"{op} needs text, not {_a(right.type)}", right.span)
        if op == "like":
            if not isinstance(right, t.Const):
                raise self.error("like needs a pattern in quotes", right.span,
                                 "like 'A%': % stands for any text, _ for one character")
            if str(right.value).replace("\\\\", "").endswith("\\"):
                raise self.error("the pattern ends with an escape (\\)", right.span, "write \\\\ for a backslash")
        return t.Match(type=BOOLEAN, span=node.span, op=op, operand=left, pattern=right)

    def in_list(self, node: s.InList, entity: EntitySpec, frame: int) -> t.Node:
        operand = self.node(node.operand, entity, frame)
        items = [self.node(i, entity, frame) for i in node.items]
        for item in items:
            if item.type.kind is Kind.NULL:
                raise self.error("null is never in a list", item.span, "use 'is null'")
        checked = [self.comparable(operand, item, "=", item.span) for item in items]
        if any(c[0] is not operand for c in checked):  # a datetime compared by its day
            operand = self.as_date(operand, "in")
            checked = [(operand, self.as_date(c[1], "in")) for c in checked]
        return t.InList(type=BOOLEAN, span=node.span, operand=operand, items=tuple(c[1] for c in checked),
                        negated=node.negated)

    def between(self, node: s.Between, entity: EntitySpec, frame: int) -> t.Node:
        """``x between a and b`` is ``x >= a and x <= b``, as in SQL (null anywhere: unknown)."""
        operand = self.node(node.operand, entity, frame)
        low_side = self.comparable(operand, self.node(node.low, entity, frame), ">=", node.low.span)
        high_side = self.comparable(operand, self.node(node.high, entity, frame), "<=", node.high.span)
        both = t.Logic(type=BOOLEAN, span=node.span, op="and", operands=(
            t.Compare(type=BOOLEAN, span=node.span, op=">=", left=low_side[0], right=low_side[1]),
            t.Compare(type=BOOLEAN, span=node.span, op="<=", left=high_side[0], right=high_side[1])))
        return t.Not(type=BOOLEAN, span=node.span, operand=both) if node.negated else both

    # -------------------------------------------------------------- functions

    def call(self, node: s.Call, entity: EntitySpec, frame: int) -> t.Node:
        if node.name in AGGREGATES:
            return self.aggregate(node, entity, frame)
        if node.name not in FUNCTIONS:
            raise self.error(f"unknown function '{node.name}'", node.name_span,
                             did_you_mean(node.name, [*FUNCTIONS, *AGGREGATES]))
        if node.where is not None:
            raise self.error(f"'where' goes only inside {', '.join(AGGREGATES)}", node.where.span)
        low, high = FUNCTIONS[node.name]
        if not low <= len(node.args) <= high:
            wanted = str(low) if low == high else f"{low} to {high}" if high < 20 else f"at least {low}"
            raise self.error(f"{node.name}() takes {wanted} argument{'s' if high != 1 else ''}, "
                             f"not {len(node.args)}", node.span)
        args = [self.node(a, entity, frame) for a in node.args]
        name, span = node.name, node.span
        if name == "now":
            return t.Now(type=DATETIME, span=span)
        if name == "today":
            return t.Today(type=DATE, span=span)
        if name == "me":
            return t.Me(type=INTEGER, span=span)
        if name == "date":
            return self.as_date(args[0], "date()")
        if name in ("year", "month", "day", "weekday"):
            return t.Call(type=INTEGER, span=span, name=name, args=(self.as_date(args[0], f"{name}()"),))
        if name == "days_between":
            dates = tuple(self.as_date(a, "days_between()") for a in args)
            return t.Call(type=INTEGER, span=span, name=name, args=dates)
        if name == "coalesce":
            result, unified = self.unify(args, "coalesce()")
            return t.Call(type=result, span=span, name=name, args=tuple(unified))
        if name == "if":
            test = self.condition(args[0], "the first argument of if()")
            result, unified = self.unify(args[1:], "if()")
            return t.Call(type=result, span=span, name=name, args=(test, *unified))
        if name == "abs":
            if not (args[0].type.numeric or args[0].type.kind is Kind.DURATION):
                raise self.error(f"abs() needs a number, not {_a(args[0].type)}", args[0].span)
            return t.Call(type=args[0].type, span=span, name=name, args=(args[0],))
        if name == "round":
            return self.round(node, args)
        if name == "len":
            if not (args[0].type.textual or args[0].type.kind is Kind.MULTI_ENUM):
                raise self.error(f"len() needs text or a multi_enum, not {_a(args[0].type)}", args[0].span)
            return t.Call(type=INTEGER, span=span, name=name, args=(args[0],))
        raise AssertionError(name)  # pragma: no cover - FUNCTIONS lists the names above

    def round(self, node: s.Call, args: list[t.Node]) -> t.Node:
        value = args[0]
        if not value.type.numeric:
            raise self.error(f"round() needs a number, not {_a(value.type)}", value.span)
        places = args[1] if len(args) > 1 else t.Const(type=INTEGER, span=node.span, value=0)
        if not (isinstance(places, t.Const) and places.type.kind is Kind.INTEGER
                and 0 <= places.value <= MAX_ROUND):
            raise self.error(f"round()'s places must be a whole number from 0 to {MAX_ROUND}", places.span)
        if value.type.kind is Kind.INTEGER or value.type.scale <= places.value:
            result = value.type
        else:
            result = t.decimal(places.value)
        return t.Call(type=result, span=node.span, name="round", args=(value, places))

    def unify(self, nodes: Sequence[t.Node], where: str) -> tuple[Type, list[t.Node]]:
        """The one type of alternatives (coalesce, if): literals take the type of
        the others, numbers widen to the most decimal places, an enum with
        other text is text."""
        anchor = next((n.type for n in nodes if not isinstance(n, t.Const)), None) \
            or next((n.type for n in nodes if n.type.kind is not Kind.NULL), NULL)
        nodes = [self.coerce(n, anchor, options=isinstance(n, t.Const) and n.value in anchor.options)
                 for n in nodes]
        types = [n.type for n in nodes if n.type.kind is not Kind.NULL]
        if not types:
            return NULL, nodes
        nodes = [self.coerce(n, types[0], options=False) for n in nodes]
        first = types[0]
        if all(x.numeric for x in types):
            if all(x.kind is Kind.INTEGER for x in types):
                return INTEGER, nodes
            return t.decimal(max(x.scale for x in types)), nodes
        if all(x == first for x in types):
            return first, nodes
        if all(x.textual for x in types):
            return TEXT, nodes
        if all(x.kind in (Kind.REF, Kind.INTEGER) for x in types):
            return INTEGER, nodes
        if all(x.kind is Kind.DURATION for x in types):
            return Type(Kind.DURATION, whole_days=all(x.whole_days for x in types)), nodes
        other = next(x for x in types if x != first)
        raise self.error(f"{where} mixes {_a(first)} and {_a(other)}", nodes[types.index(other)].span)

    def aggregate(self, node: s.Call, entity: EntitySpec, frame: int) -> t.Node:
        func = node.name
        if frame != 0:
            raise self.error(f"{func}() cannot be used inside another aggregate", node.span)
        if len(node.args) != 1 or not isinstance(node.args[0], s.Name):
            example = f"{func}(orders where status = 'paid')" if func in ("count", "exists") \
                else f"{func}(orders.total where status = 'paid')"
            raise self.error(f"{func}() takes a relation of {entity.name}", node.span, f"e.g. {example}")
        arg = node.args[0]
        name, span = arg.parts[0], arg.spans[0]
        spec = entity.relations.get(name)
        if spec is None:
            hint = did_you_mean(name, entity.relations)
            if not hint and entity.relations:
                hint = f"relations of {entity.name}: {', '.join(entity.relations)}"
            what = "field, not a relation" if name in entity.fields else "relation"
            raise self.error(f"{entity.name} has no relation '{name}'" if what == "relation"
                             else f"'{name}' is a {what}", span, hint)
        if not self.may_read(spec.entity):
            raise self.error(f"'{name}' leads to {spec.entity} records, which your role may not read", span)
        related = self.spec.entities[spec.entity]
        back = related.fields[spec.field or entity.name] if spec.kind == "one_to_many" else None
        relation = t.Relation(entity.name, spec, back)
        self.relations.add((entity.name, name))
        value: t.Field | None = None
        if func in ("count", "exists"):
            if len(arg.parts) > 1:
                raise self.error(f"{func}() counts records, not a field", arg.spans[1],
                                 f"{func}({name} where {arg.parts[1]} is not null)")
        else:
            if len(arg.parts) == 1:
                raise self.error(f"{func}() needs a field of the related records", arg.span,
                                 f"e.g. {func}({name}.amount)")
            path = self.path(arg.parts[1:], arg.spans[1:], related)
            value = t.Field(type=field_type(path.field), span=(arg.spans[1][0], arg.span[1]), frame=1, path=path)
            allowed = value.type.numeric or (func in ("min", "max") and value.type.kind in (Kind.DATE, Kind.DATETIME))
            if not allowed:
                wanted = "a number" if func in ("sum", "avg") else "a number, a date or a datetime"
                raise self.error(f"{func}() needs {wanted}, not {_a(value.type)}", value.span)
        where = None
        if node.where is not None:
            where = self.condition(self.node(node.where, related, 1), "where")
        if func == "count":
            result = INTEGER
        elif func == "exists":
            result = BOOLEAN
        elif func == "avg":
            assert value is not None
            result = t.decimal(max(value.type.scale, DIVISION_SCALE))
        else:
            assert value is not None
            result = value.type
        return t.Aggregate(type=result, span=node.span, func=func, relation=relation, value=value, where=where)


_VERBS = {"+": "cannot add {} and {}", "-": "cannot subtract {1} from {0}", "*": "cannot multiply {} by {}",
          "/": "cannot divide {} by {}"}


def _a(type_: Type) -> str:
    """'a date', 'an integer', 'a reference to customer'."""
    text = str(type_)
    return ("an " if text[0] in "aeiou" else "a ") + text
