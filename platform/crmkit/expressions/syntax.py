"""The grammar (grammar.lark) and the syntax tree the parser builds.

The syntax tree says what was written and where, nothing more: names are not
yet resolved against an entity and nothing is typed. The checker turns it into
the typed tree that both compilers read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from .errors import ExpressionError, Span

#: The longest expression accepted (a config or a query string is no place for a program).
MAX_LENGTH = 4000


@dataclass(frozen=True, slots=True)
class Literal:
    kind: str  # number | string | duration | true | false | null
    text: str  # as written; a string without its quotes ('' already made one ')
    span: Span


@dataclass(frozen=True, slots=True)
class Name:
    """A field, or a path through references (``order.customer.region``)."""

    parts: tuple[str, ...]
    spans: tuple[Span, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Unary:
    op: str  # - | not
    operand: Syntax
    span: Span


@dataclass(frozen=True, slots=True)
class Binary:
    op: str  # + - * /, = != < <= > >=, like contains startswith
    left: Syntax
    right: Syntax
    span: Span
    op_span: Span


@dataclass(frozen=True, slots=True)
class Logic:
    op: str  # and | or
    operands: tuple[Syntax, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class InList:
    operand: Syntax
    items: tuple[Syntax, ...]
    negated: bool
    span: Span


@dataclass(frozen=True, slots=True)
class Between:
    """``x between a and b``: a <= x <= b."""

    operand: Syntax
    low: Syntax
    high: Syntax
    negated: bool
    span: Span


@dataclass(frozen=True, slots=True)
class IsNull:
    operand: Syntax
    negated: bool
    span: Span


@dataclass(frozen=True, slots=True)
class Call:
    name: str  # lower case: NOW() and now() are the same function
    name_span: Span
    args: tuple[Syntax, ...]
    where: Syntax | None
    span: Span


Syntax = Literal | Name | Unary | Binary | Logic | InList | Between | IsNull | Call

#: Comparison operators as written -> as meant (== and = are one; <> is !=).
COMPARISONS = {"==": "=", "=": "=", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


@lru_cache(maxsize=1)
def _parser() -> Lark:
    grammar = files("crmkit.expressions").joinpath("grammar.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=False)


@lru_cache(maxsize=1024)
def parse(text: str) -> Syntax:
    """The syntax tree of an expression; ExpressionError (with the place) when
    it is not one. Trees are immutable and kept (a config's expressions and
    the views' filters come back on every request)."""
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"the expression is longer than {MAX_LENGTH} characters", text, (MAX_LENGTH, len(text)))
    if not text.strip():
        raise ExpressionError("the expression is empty", text, (0, len(text)))
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(text, exc) from None
    return _build(tree)


# ------------------------------------------------------------------ tree building

def _span(item: Tree[Token] | Token) -> Span:
    if isinstance(item, Token):
        return (item.start_pos or 0, item.end_pos or 0)
    return (item.meta.start_pos, item.meta.end_pos)


def _token(item: Tree[Token] | Token) -> Token:
    assert isinstance(item, Token), item
    return item


def _tree(item: Tree[Token] | Token) -> Tree[Token]:
    assert isinstance(item, Tree), item
    return item


def _build(item: Tree[Token] | Token) -> Syntax:
    """lark's parse tree -> the syntax tree (recursion is bounded by MAX_LENGTH)."""
    tree = _tree(item)
    rule = str(tree.data)
    kids = tree.children
    span = _span(tree)
    if rule in ("true", "false", "null"):
        return Literal(rule, rule, span)
    if rule in ("number", "duration"):
        return Literal(rule, str(kids[0]), span)
    if rule == "string":
        return Literal("string", str(kids[0])[1:-1].replace("''", "'"), span)
    if rule == "path":
        names = [_token(k) for k in kids]
        return Name(tuple(str(n) for n in names), tuple(_span(n) for n in names), span)
    if rule == "negate":
        operand = _build(kids[1])
        if isinstance(operand, Literal) and operand.kind in ("number", "duration") and not operand.text.startswith("-"):
            return Literal(operand.kind, "-" + operand.text, span)
        return Unary("-", operand, span)
    if rule in ("arith", "compare", "match"):
        op = _token(kids[1])
        text = str(op)
        op_text = COMPARISONS[text] if rule == "compare" else text.lower()
        return Binary(op_text, _build(kids[0]), _build(kids[2]), span, _span(op))
    if rule in ("and_test", "or_test"):
        return Logic("and" if rule == "and_test" else "or", tuple(_build(k) for k in kids), span)
    if rule == "not_":
        return Unary("not", _build(kids[0]), span)
    if rule in ("in_", "not_in"):
        items = tuple(_build(k) for k in _tree(kids[1]).children)
        return InList(_build(kids[0]), items, rule == "not_in", span)
    if rule in ("between", "not_between"):
        return Between(_build(kids[0]), _build(kids[1]), _build(kids[2]), rule == "not_between", span)
    if rule in ("is_null", "is_not_null"):
        return IsNull(_build(kids[0]), rule == "is_not_null", span)
    if rule in ("call", "call_where"):
        name = _token(kids[0])
        args = tuple(_build(k) for k in kids[1:])
        where = args[-1] if rule == "call_where" else None
        return Call(str(name).lower(), _span(name), args[:-1] if where is not None else args, where, span)
    raise AssertionError(f"unknown rule {rule}")  # pragma: no cover - the grammar has no other rules


# ------------------------------------------------------------------ syntax errors

#: How the grammar's terminals read in a message.
_TERMINALS = {
    "NAME": "a field name", "NUMBER": "a number", "STRING": "text in quotes", "DURATION": "a duration like 30d",
    "LPAR": "'('", "RPAR": "')'", "COMMA": "','", "DOT": "'.'", "COMPARE": "a comparison (=, !=, <, >...)",
    "MATCH": "like, contains or startswith", "PLUS": "'+'", "MINUS": "'-'", "STAR": "'*'", "SLASH": "'/'",
    "_AND": "and", "_OR": "or", "_NOT": "not", "_IN": "in", "_IS": "is", "_NULL": "null", "_TRUE": "true",
    "_FALSE": "false", "_WHERE": "where", "_BETWEEN": "between", "$END": "the end",
}
_WORD = re.compile(r"[A-Za-z0-9_.]+")


def _syntax_error(text: str, exc: UnexpectedInput) -> ExpressionError:
    if isinstance(exc, UnexpectedCharacters):
        return _bad_character(text, exc.pos_in_stream or 0)
    assert isinstance(exc, UnexpectedToken), exc
    token = exc.token
    expected = set(exc.expected)
    at_end = token.type == "$END"
    start = len(text.rstrip()) if at_end else (token.start_pos or 0)
    end = start if at_end else (token.end_pos or start)
    if at_end:
        message = "the expression ends too early"
    else:
        message = f"unexpected {_describe(token)}"
    hint = ""
    if "LPAR" in expected and ("_IN" in _previous_keywords(text, start)):
        hint = "in needs a list in parentheses: in ('a', 'b')"
    elif "_AND" in expected and "_OR" not in expected:  # only inside between ... and ...
        hint = "between needs both ends: x between 1 and 5"
    elif "NAME" in expected:
        hint = "expected a value: a field, a number, 'text', true, false, null or a function"
    elif "_AND" in expected or "COMPARE" in expected:
        hint = "an operator is missing before it (=, <, +, and, or...)"
    else:
        readable = sorted({_TERMINALS.get(t, t) for t in expected})
        hint = "expected " + (", ".join(readable[:-1]) + " or " + readable[-1] if len(readable) > 1 else readable[0])
    return ExpressionError(message, text, (start, end), hint)


def _previous_keywords(text: str, offset: int) -> str:
    words = text[:offset].split()
    return "_IN" if words and words[-1].lower() == "in" else ""


def _describe(token: Token) -> str:
    return f"text {token}" if token.type == "STRING" else f"'{token}'"


def _bad_character(text: str, offset: int) -> ExpressionError:
    char = text[offset]
    if char == "'":
        return ExpressionError("the text starting here has no closing quote", text, (offset, len(text)),
                               "text goes between single quotes; a quote inside is written twice: 'O''Brien'")
    if char == '"':
        return ExpressionError("text goes in single quotes", text, (offset, offset + 1),
                               "write 'like this' (double quotes are not used)")
    if char in "&|":
        word = "and" if char == "&" else "or"
        return ExpressionError(f"unexpected '{char}'", text, (offset, offset + 1), f"use '{word}'")
    if char == "!":
        return ExpressionError("unexpected '!'", text, (offset, offset + 1), "use 'not', or != for 'not equal'")
    if char.isdigit():
        digits = _WORD.match(text, offset)
        found = digits.group() if digits else char
        return ExpressionError(f"'{found}' is not a number or a duration", text, (offset, offset + len(found)),
                               "numbers are written 12 or 12.50; durations 30d (days), 4h (hours), 15m (minutes)")
    return ExpressionError(f"unexpected character '{char}'", text, (offset, offset + 1))
