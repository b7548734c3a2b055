"""The rows of a list page (crmkit.ui.lists): the titles of the records and
people its cells name, each column's rule chosen once per page, the texts
escaped at once, and each row written by one format string."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

import sqlalchemy as sa
from flask_babel import get_timezone
from markupsafe import Markup

from .. import query as query_module
from ..fieldtypes import MAX_ID
from ..metadata.spec import DIRECTORY_ENTITIES, FieldSpec
from ..permissions import Access, Actor, EntityAccess
from ..query import Page
from ..runtime import Runtime
from . import display
from .cards import stored
from .forms import DIRECTORY_TITLES
from .list_state import (
    PEOPLE,
    REF_OPERATORS,
    ListState,
)

# ------------------------------------------------------------------ cells

#: A column's class attribute.
PLAIN, NUMBER, MASKED = "", ' class="number"', ' class="masked"'
#: A column: its class attribute, and value -> the cell's content as HTML
#: (escaped; option labels of a multi-option field as chips).
ColumnRule = tuple[str, Callable[[Any], str]]


@dataclass(slots=True)
class Row:
    id: int
    #: The first column's text as HTML (escaped: a link to the record).
    title: str
    #: The other columns' cells as HTML (``<td class=...>content</td>`` each).
    cells: str
    #: the record's tags as chips (HTML, crmkit.ui.tags)
    tags: str = ""
    #: the pool's claim column (crmkit.ui.pool): a button's words, "" for an empty cell, None for no column
    claim: str | None = None

    def html(self, path: str, pick: bool) -> Markup:
        """The row's cells as HTML: a box to choose it (``pick``, for the bulk
        actions), the first column as a link to the record (which labels the
        box), then the other cells. Written here rather than in the template
        because a page has hundreds of cells, and escaping each value through
        Jinja's autoescape costs more than the rest of the page."""
        return Markup(self._html(escape(path), pick))

    def _html(self, path_html: str, pick: bool) -> str:
        rid = self.id
        html = ((f'<td class="pick"><input type="checkbox" name="id" value="{rid}" aria-labelledby="r{rid}"></td>'
                 if pick else "") + f'<td><a id="r{rid}" href="{path_html}/{rid}">{self.title}</a>'
                + (f' <span class="row-tags">{self.tags}</span>' if self.tags else "") + "</td>" + self.cells)
        if self.claim is not None:  # a button of the list's form, posted to the record's claim
            html += (f'<td class="claim"><button type="submit" class="secondary outline" formmethod="post" '
                     f'formaction="{path_html}/{rid}/claim" aria-describedby="r{rid}">{escape(self.claim)}'
                     '</button></td>' if self.claim else '<td class="claim"></td>')
        return html


def table_rows(rows: Sequence[Row], path: str, pick: bool) -> Markup:
    """The ``<tr>`` of every row, one a line (as the template's loop wrote them)."""
    path_html = escape(path)
    return Markup("\n      ".join(f"<tr>{row._html(path_html, pick)}</tr>" for row in rows))


def _names_of(rt: Runtime, conn: sa.Connection, kind: str, ids: set[int], actor: Actor, access: Access,
              language: str) -> dict[int, str]:
    """Users' and teams' names, through the query builder (within the actor's read scope of them)."""
    if not ids or not access.allows(kind, "read"):
        return {}
    source = rt.queries.platform[kind]
    names = DIRECTORY_TITLES[kind]  # a user's display name, else user name; a team's label, else name
    found: dict[int, str] = {}
    id_list = sorted(ids)
    size = min(query_module.MAX_IN_VALUES, rt.spec.max_page_size)
    for start in range(0, len(id_list), size):
        chunk = id_list[start:start + size]
        request_ = rt.queries.parse_list(source, [("id__in", ",".join(map(str, chunk))),
                                                  ("fields", ",".join(names)), ("limit", str(len(chunk)))], access)
        page = rt.queries.page(conn, source, request_, actor=actor)
        found.update((row["id"], next((str(row[n]) for n in names if row.get(n)), "")) for row in page.mappings())
    return found


def titles(rt: Runtime, conn: sa.Connection, fields: Sequence[FieldSpec], rows: Sequence[Mapping[str, Any]],
           actor: Actor, access: Access, language: str) -> dict[str, dict[int, str]]:
    """For each reference (and owner, team) column, the titles of the records it
    names that the actor may read, as text."""
    out: dict[str, dict[int, str]] = {}
    for f in fields:
        target = ref_target(f)
        if target is None:
            continue
        ids = {row[f.column] for row in rows} - {None}
        out[f.name] = titles_of(rt, conn, target, ids, actor, access, language)
    return out


def ref_target(f: FieldSpec | None) -> str | None:
    """The entity (``user``, ``team``) a field's value is the id of, if any."""
    if f is None:
        return None
    return PEOPLE.get(f.name) if f.system else f.to if f.type == "ref" else None


def titles_of(rt: Runtime, conn: sa.Connection, target: str, ids: set[int], actor: Actor, access: Access,
              language: str) -> dict[int, str]:
    """The titles (users' and teams' names) of those of the records of
    ``target`` the actor may read, as text, in one query of the query builder
    (a title the actor may not read is left out)."""
    if not ids:
        return {}
    if target in DIRECTORY_ENTITIES:
        return _names_of(rt, conn, target, ids, actor, access, language)
    if target not in rt.spec.entities:
        return {}
    other = rt.spec.entities[target]
    title = other.fields.get(other.title)
    tz = get_timezone()
    found = rt.queries.titles(conn, target, ids, actor)
    return {k: display.field_value(title, v, language, tz) if title else str(v) for k, v in found.items()}


def filter_titles(rt: Runtime, conn: sa.Connection, state: ListState, actor: Actor, access: Access,
                  language: str) -> dict[tuple[str, int], str]:
    """(target, id) -> title of the records the list's filters on refs (and
    owner, team) name, read as the actor may read them: one query per target."""
    wanted: dict[str, set[int]] = {}
    for key, value in state.filters():
        name, _, op = key.partition("__")
        target = ref_target(state.entity.fields.get(name))
        if target is None or op not in REF_OPERATORS:
            continue
        wanted.setdefault(target, set()).update(_ids(value))
    return {(target, key): text for target, ids in wanted.items()
            for key, text in titles_of(rt, conn, target, ids, actor, access, language).items()}


def _ids(text: str) -> set[int]:
    return {int(part) for part in text.split(",")
            if part.strip().isascii() and part.strip().isdigit() and 0 < int(part) <= MAX_ID}


def cell_formatter(rt: Runtime, f: FieldSpec, ea: EntityAccess, names: dict[str, dict[int, str]],
                   language: str, *, title: bool = False) -> ColumnRule:
    """The rule of one column, chosen once per page (a page has hundreds of
    cells): its class, and value -> the cell's content: text, escaped later
    with the page's other texts at once (:func:`escape_texts`), but for the
    chips of a multi-option field, HTML already (its class marked with
    :data:`HTML_COLUMN`). ``title``: the first column, a
    link's text (a multi-option field's labels joined, not chips)."""
    tz = rt.queries.tz
    masks = dict(ea.masked)
    if f.name in masks:
        mask, dump = masks[f.name], rt.field_types[f.type].dump
        return MASKED, lambda value: mask(value if isinstance(value, str) else dump(f, value))
    if f.name in names:
        found = names[f.name]
        return PLAIN, lambda value: found.get(value, f"#{value}")
    if f.type in ("enum", "multi_enum"):
        labels = display.option_labels(f, language)

        def option(value: Any) -> str:
            return labels.get(value) or str(value)
        if f.type == "enum":
            return PLAIN, option
        if title:
            return PLAIN, lambda values: "、".join(option(v) for v in values)
        return HTML_COLUMN + PLAIN, lambda values: "".join(f'<span class="chip">{escape(option(v))}</span>'
                                                           for v in values)
    rule = display.value_rule(f, language, tz)
    if f.type in ("money", "integer", "decimal"):
        return NUMBER, rule
    if f.type == "datetime":
        return PLAIN, lambda value: rule(stored(f, value))
    return PLAIN, rule


#: Marks a column rule whose content is HTML already (not escaped with the page's texts).
HTML_COLUMN = "\x00"
#: What joins a page's texts to escape them at once (no text holds it, or they are escaped one by one).
_JOIN = "\x00"


def escape_texts(texts: list[str]) -> list[str]:
    """Texts escaped for HTML, in one call for the lot: a list page has
    hundreds, and escaping them one by one cost more than formatting them."""
    joined = _JOIN.join(texts)
    if joined.count(_JOIN) != len(texts) - 1:  # a text holds the joint itself
        return [escape(text) for text in texts]
    return escape(joined).split(_JOIN) if texts else []


def rows_of(rt: Runtime, page: Page, fields: Sequence[FieldSpec], ea: EntityAccess, names: dict[str, dict[int, str]],
            language: str) -> list[Row]:
    """The rows of a page: each column's rule chosen once, the texts escaped
    at once, each row's cells written by one format string."""
    at_id = page.columns.index("id")
    rules = [cell_formatter(rt, f, ea, names, language, title=n == 0) for n, f in enumerate(fields)]
    at = [page.columns.index(f.column) for f in fields]
    written = [(i, css.startswith(HTML_COLUMN), content) for i, (css, content) in zip(at, rules)]
    text_columns = [(i, content) for i, html, content in written if not html]
    texts: list[str] = []  # the title and the cells of every row that are text, in order
    for row in page.rows:
        texts += ["" if (value := row[i]) is None or value == "" else content(value) for i, content in text_columns]
    escaped = escape_texts(texts)
    row_cells = "".join(f"<td{css.removeprefix(HTML_COLUMN)}>{{}}</td>" for css, _ in rules[1:])
    width = len(text_columns)
    out = []
    if width == len(rules):  # text columns only: each row is a slice of the escaped texts
        for n, row in enumerate(page.rows):
            start = n * width
            out.append(Row(row[at_id], escaped[start] or f"#{row[at_id]}",
                           row_cells.format(*escaped[start + 1:start + width])))
        return out
    for n, row in enumerate(page.rows):
        mine = iter(escaped[n * width:(n + 1) * width])
        values = [next(mine) if not html else "" if (value := row[i]) is None or value == "" else content(value)
                  for i, html, content in written]
        out.append(Row(row[at_id], values[0] or f"#{row[at_id]}", row_cells.format(*values[1:])))
    return out
