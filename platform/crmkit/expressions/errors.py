"""Mistakes in an expression, located in its text.

An error carries its place as an offset into the expression's text and as a
line and column (both from 1), so the config checker can point into the file
(``entities/customer.yaml:14:23: ...``) and an API client gets the column of
a bad ``where``.
"""

from __future__ import annotations

#: A part of an expression's text: offsets [start, end).
Span = tuple[int, int]


class ExpressionError(ValueError):
    """An expression that cannot be parsed, or does not fit the spec or the
    caller's access. ``message`` is for the admin or user who wrote it;
    ``hint`` suggests a fix (often "did you mean ...?")."""

    def __init__(self, message: str, text: str, span: Span, hint: str = "") -> None:
        self.message = message
        self.text = text
        self.offset, self.end = span
        self.hint = hint
        self.line, self.column = position(text, self.offset)
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"line {self.line}, column {self.column}" if "\n" in self.text else f"column {self.column}"
        text = f"{where}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


def position(text: str, offset: int) -> tuple[int, int]:
    """The line and column (from 1) of an offset into a text."""
    before = text[:offset]
    line = before.count("\n") + 1
    return line, offset - (before.rfind("\n") + 1) + 1
