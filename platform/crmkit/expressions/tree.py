"""The typed tree: an expression checked against an entity, with every name
resolved to a field or a relation and every node typed.

Both compilers (SQL and Python) read only this tree, so they cannot disagree
about what an expression means, only about how their engines compute it (the
property tests check that they do not).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from ..metadata.spec import FieldSpec, RelationSpec
from .errors import Span


class Kind(enum.Enum):
    INTEGER = "integer"
    DECIMAL = "decimal"  # exact; money and decimal fields, and every division
    TEXT = "text"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"
    DURATION = "duration"
    ENUM = "enum"
    MULTI_ENUM = "multi_enum"
    REF = "ref"
    OPAQUE = "opaque"  # json and plugin field types: only ``is null`` applies
    NULL = "null"  # the literal null before its context gives it a type


@dataclass(frozen=True, slots=True)
class Type:
    kind: Kind
    #: Digits after the decimal point of a DECIMAL (they decide how it is kept exact).
    scale: int = 0
    #: The options of an ENUM or MULTI_ENUM.
    options: tuple[str | int, ...] = ()
    #: The entity a REF points to.
    to: str | None = None
    #: A DURATION in whole days (what a date may move by).
    whole_days: bool = False

    @property
    def numeric(self) -> bool:
        return self.kind in (Kind.INTEGER, Kind.DECIMAL)

    @property
    def textual(self) -> bool:
        """Text, or an enum whose options are text."""
        return self.kind is Kind.TEXT or (self.kind is Kind.ENUM and all(isinstance(o, str) for o in self.options))

    def __str__(self) -> str:
        if self.kind is Kind.DECIMAL:
            return "decimal" if self.scale == 0 else f"decimal ({self.scale} places)"
        if self.kind is Kind.REF:
            return f"reference to {self.to}"
        return str(self.kind.value)


INTEGER = Type(Kind.INTEGER)
TEXT = Type(Kind.TEXT)
BOOLEAN = Type(Kind.BOOLEAN)
DATE = Type(Kind.DATE)
DATETIME = Type(Kind.DATETIME)
NULL = Type(Kind.NULL)
#: Digits a division keeps at least (more when an operand has more).
DIVISION_SCALE = 4


def decimal(scale: int) -> Type:
    return Type(Kind.DECIMAL, scale=scale)


# ------------------------------------------------------------------ nodes

@dataclass(frozen=True, slots=True, kw_only=True)
class Node:
    type: Type
    span: Span


@dataclass(frozen=True, slots=True, kw_only=True)
class Const(Node):
    """A literal, already converted to its type's Python value (Decimal, date,
    timedelta...)."""

    value: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class Now(Node):
    """now(): the moment of evaluation (an aware UTC datetime)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Today(Node):
    """today(): the date of now() in the app's timezone."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Me(Node):
    """me(): the id of the user the expression is evaluated for (null for the system)."""


@dataclass(frozen=True, slots=True, eq=False)
class FieldPath:
    """A field of an entity, reached through zero or more references:
    ``order.customer.region`` from an order line is hops (order, customer) and
    the field region."""

    entity: str  # where the path starts
    hops: tuple[FieldSpec, ...]
    field: FieldSpec

    @property
    def dotted(self) -> str:
        return ".".join([h.name for h in self.hops] + [self.field.name])

    @property
    def fields(self) -> tuple[FieldSpec, ...]:
        return (*self.hops, self.field)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FieldPath) and (self.entity, self.dotted) == (other.entity, other.dotted)

    def __hash__(self) -> int:
        return hash((self.entity, self.dotted))


@dataclass(frozen=True, slots=True, kw_only=True)
class Field(Node):
    """A field's value. ``frame`` 0 is the record the expression is about; 1 is
    a related record inside an aggregate (``count(orders where status = 'paid')``)."""

    frame: int
    path: FieldPath


@dataclass(frozen=True, slots=True, kw_only=True)
class Negate(Node):
    operand: Node


@dataclass(frozen=True, slots=True, kw_only=True)
class Arith(Node):
    """+ - * /: numbers (exact), text + text (joined), date or datetime ± duration,
    duration ± duration, integer * duration."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True, kw_only=True)
class Compare(Node):
    """= != < <= > >= between operands of one family (numbers, text, dates,
    datetimes, durations, booleans, references)."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True, kw_only=True)
class InList(Node):
    operand: Node
    items: tuple[Node, ...]
    negated: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class IsNull(Node):
    operand: Node
    negated: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Match(Node):
    """like (a pattern), contains and startswith on text (case-sensitive);
    contains on a multi_enum (the option is chosen)."""

    op: str
    operand: Node
    pattern: Node


@dataclass(frozen=True, slots=True, kw_only=True)
class Not(Node):
    operand: Node


@dataclass(frozen=True, slots=True, kw_only=True)
class Logic(Node):
    op: str  # and | or
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Call(Node):
    """A function: coalesce abs round len if date year month day weekday
    days_between. ``date`` of a datetime is its day in the app's timezone."""

    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Relation:
    """A relation of the record's entity, resolved: the related entity, and how
    its rows are found (a one_to_many's ref field, or a many_to_many's link table)."""

    owner: str
    spec: RelationSpec
    #: The related entity's ref field back to the owner (one_to_many only).
    back: FieldSpec | None

    @property
    def entity(self) -> str:
        return self.spec.entity


@dataclass(frozen=True, slots=True, kw_only=True)
class Aggregate(Node):
    """count exists sum avg min max over a relation's live records (within the
    caller's read scope when evaluated for a user)."""

    func: str
    relation: Relation
    value: Field | None  # sum/avg/min/max: the field of each related record
    where: Node | None


def children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, (Negate, Not)):
        return (node.operand,)
    if isinstance(node, (Arith, Compare)):
        return (node.left, node.right)
    if isinstance(node, InList):
        return (node.operand, *node.items)
    if isinstance(node, IsNull):
        return (node.operand,)
    if isinstance(node, Match):
        return (node.operand, node.pattern)
    if isinstance(node, Logic):
        return node.operands
    if isinstance(node, Call):
        return node.args
    if isinstance(node, Aggregate):
        return tuple(n for n in (node.value, node.where) if n is not None)
    return ()


def walk(node: Node) -> list[Node]:
    """The node and everything under it, depth first."""
    found = [node]
    for child in children(node):
        found.extend(walk(child))
    return found


def is_constant(node: Node) -> bool:
    """Whether the value depends on no record (only on literals, now(),
    today() and me()): compiled to SQL as one bound parameter."""
    if isinstance(node, (Field, Aggregate)):
        return False
    return all(is_constant(c) for c in children(node))


# ------------------------------------------------------------------ the result

@dataclass(frozen=True)
class Checked:
    """An expression checked against an entity: what the compilers take.

    ``for_user`` says it was checked against a user's access (hidden fields
    unknown, related rows to be limited to the user's read scope);
    ``reads`` lists every (entity, field) it reads and ``relations`` every
    (entity, relation) it aggregates, for deciding when a stored result
    (a formula, a rule tag) must be computed again."""

    text: str
    entity: str
    root: Node
    for_user: bool
    reads: frozenset[tuple[str, str]] = field(default_factory=frozenset)
    relations: frozenset[tuple[str, str]] = field(default_factory=frozenset)
    #: Compiled forms, made on first use (the Python evaluator's closures).
    cache: dict[str, object] = field(default_factory=dict, compare=False, repr=False)

    @property
    def type(self) -> Type:
        return self.root.type

    @property
    def needs_rows(self) -> bool:
        """Whether evaluating it reads other records (references or aggregates)."""
        return any(isinstance(n, Aggregate) or (isinstance(n, Field) and n.path.hops) for n in walk(self.root))
