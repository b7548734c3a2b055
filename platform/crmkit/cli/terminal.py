"""Output for people at a terminal: tables (a Chinese character takes two
columns), framed notes, moments, did-you-mean hints."""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

import click

from ..metadata.problems import did_you_mean


def _hint(word: str, names: Iterable[str]) -> str:
    hint = did_you_mean(word, names)
    return f" ({hint})" if hint else ""


def _width(text: str) -> int:
    """Columns a text takes on a terminal (a Chinese character takes two)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([_width(h)] + [_width(row[i]) for row in cells]) for i, h in enumerate(headers)]
    for row in [list(headers)] + cells:
        click.echo("  ".join(v + " " * (w - _width(v)) for v, w in zip(row, widths)).rstrip())


def _framed(lines: list[str]) -> None:
    """Lines in a frame, set apart so that nobody scrolls past them."""
    width = max(map(_width, lines)) + 4
    click.echo("\n" + "=" * width)
    for line in lines:
        click.echo(f"  {line}")
    click.echo("=" * width + "\n")


def _when(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M") if value else ""
