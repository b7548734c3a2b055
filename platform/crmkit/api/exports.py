"""Exports for people: the records of a list request as a CSV or XLSX sheet.

Values are formatted by the one formatting module (crmkit.ui.display): labels
in the reader's language, options by label, regions by name, references by
their records' titles where the reader may read them; hidden fields are left
out, masked ones masked. In XLSX, money and numbers are numeric cells (with a
number format, so a spreadsheet sums them), days and moments date cells.
Text that a spreadsheet would run as a formula (= + - @, tab, CR) is
neutralised in both formats with a leading apostrophe.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import tempfile
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..metadata.spec import EntitySpec
from ..permissions import ALWAYS_VISIBLE, Actor
from ..query import ListRequest
from ..ui import display

if TYPE_CHECKING:
    from ..runtime import Runtime

#: Rows formatted together: their references' titles are looked up in one query per field.
BATCH = 500
MAX_ROWS = 200_000
#: Spreadsheet programs run cells that start with these as formulas (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: XLSX number formats: money with two decimals and grouping, days, moments.
MONEY_FORMAT, DATE_FORMAT, MOMENT_FORMAT = "#,##0.00", "yyyy-mm-dd", "yyyy-mm-dd hh:mm:ss"


def neutralised(value: Any) -> Any:
    """A cell: text that a spreadsheet would run as a formula gets a leading
    apostrophe (shown as text, never run); numbers stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class Sheet:
    """The rows of one export: which fields, their headers, each row's cells."""

    def __init__(self, rt: Runtime, entity: EntitySpec, actor: Actor, request: ListRequest, language: str,
                 args: Sequence[tuple[str, str]], *, order: Sequence[str] = (), limit: int = MAX_ROWS) -> None:
        self.rt, self.entity, self.actor, self.language, self.args = rt, entity, actor, language, list(args)
        ea = rt.permissions.of(actor).entity(entity.name)
        shown = request.fields or ea.visible
        if order:
            names = [n for n in ALWAYS_VISIBLE if n in shown] + [n for n in order if n in shown]
            names += [n for n in entity.fields if n in shown and n not in names]
            self.fields = [entity.fields[n] for n in dict.fromkeys(names)]
        else:
            self.fields = [f for f in entity.fields.values() if f.name in shown]
        self.masks = {name: mask for name, mask in ea.masked if name in {f.name for f in self.fields}}
        self.targets = {f.name: rt.spec.entities[f.to] for f in self.fields if f.type == "ref"
                        and f.to is not None and f.to in rt.spec.entities and f.name not in self.masks}
        self.query, self.params = rt.queries.export_statement(entity, request, actor, limit)

    def headers(self) -> list[str]:
        return [neutralised(display.field_label(f, self.language)) for f in self.fields]

    def _cells(self, conn: sa.Connection, batch: Sequence[Any]) -> list[list[Any]]:
        rt, tz = self.rt, self.rt.queries.tz
        titles = {name: rt.queries.titles(conn, target.name,
                                          {row[self.entity.fields[name].column] for row in batch} - {None},
                                          self.actor)
                  for name, target in self.targets.items()}
        title_fields = {name: target.fields[target.title] for name, target in self.targets.items()}
        out = []
        for row in batch:
            cells = []
            for f in self.fields:
                value = row[f.column]
                if f.name in self.masks:
                    value = None if value is None else self.masks[f.name](rt.field_types[f.type].dump(f, value))
                elif f.name in titles and value in titles[f.name]:
                    value = display.cell_value(title_fields[f.name], titles[f.name][value], self.language, tz)
                else:
                    value = display.cell_value(f, value, self.language, tz)
                cells.append(neutralised(value))
            out.append(cells)
        return out

    def batches(self) -> Iterator[list[list[Any]]]:
        """The rows' cells, a batch at a time; the export is audited once read to the end."""
        count = 0
        with self.rt.engine.connect() as conn, self.rt.engine.connect() as lookups:
            result = conn.execution_options(yield_per=BATCH).execute(self.query, self.params).mappings()
            for batch in result.partitions():
                count += len(batch)
                yield self._cells(lookups, batch)
        self.rt.audit.export(self.actor, self.entity.name, count, self.args)

    def csv(self) -> Iterator[str]:
        """UTF-8 text with the BOM (Excel reads Chinese only with it), streamed."""
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        buffer.write("\ufeff")
        writer.writerow(self.headers())
        for cells in self.batches():
            writer.writerows(cells)
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        yield buffer.getvalue()

    def xlsx(self) -> bytes:
        """One worksheet: a bold header row, frozen; typed cells."""
        import xlsxwriter

        with tempfile.TemporaryFile() as file:
            book = xlsxwriter.Workbook(file, {"constant_memory": True, "strings_to_numbers": False,
                                              "strings_to_formulas": False, "strings_to_urls": False})
            try:
                sheet = book.add_worksheet(display.label(self.entity.plural, self.language, self.entity.name)[:31]
                                           .translate(str.maketrans("[]:*?/\\", "       ")) or "export")
                bold = book.add_format({"bold": True})
                formats = {"money": book.add_format({"num_format": MONEY_FORMAT}),
                           "date": book.add_format({"num_format": DATE_FORMAT}),
                           "datetime": book.add_format({"num_format": MOMENT_FORMAT})}
                column_formats = [formats.get(f.type) if f.name not in self.masks else None for f in self.fields]
                sheet.write_row(0, 0, self.headers(), bold)
                sheet.freeze_panes(1, 0)
                row_number = 1
                for cells in self.batches():
                    for cells_of_row in cells:
                        for column, value in enumerate(cells_of_row):
                            _write(sheet, row_number, column, value, column_formats[column])
                        row_number += 1
            finally:
                book.close()
            file.seek(0)
            return file.read()


def _write(sheet: Any, row: int, column: int, value: Any, number_format: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool):
        sheet.write_boolean(row, column, value)
    elif isinstance(value, (int, float, Decimal)):
        sheet.write_number(row, column, float(value), number_format)
    elif isinstance(value, (dt.date, dt.datetime)):
        sheet.write_datetime(row, column, value, number_format)
    else:
        sheet.write_string(row, column, str(value))
