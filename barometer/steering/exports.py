"""Spreadsheets of the director's pages: a saved scenario, the indicators board, and the
files of the director's inputs to fill and import.

Every text cell that a spreadsheet would read as a formula (starting with ``=``, ``+``,
``-`` or ``@``, or a tab or carriage return before one) is written with a leading
apostrophe: a service or policy name comes from a file someone typed, and a formula in
it would run on the finance officer's computer (CSV/formula injection, OWASP).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal

#: What a spreadsheet reads as the start of a formula.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value):
    """A cell's value, a text that would start a formula made inert."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def workbook(sheets: Iterable[tuple[str, Sequence[str], Iterable[Sequence]]]) -> bytes:
    """An XLSX file of sheets given as (title, header, rows); bold header, frozen."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    book.remove(book.active)
    for title, header, rows in sheets:
        sheet = book.create_sheet(title[:31])
        sheet.append([neutralise(h) for h in header])
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        sheet.freeze_panes = "A2"
        for row in rows:
            sheet.append([neutralise(v) for v in row])
        for column in sheet.columns:
            width = max(len(str(c.value)) if c.value is not None else 0 for c in column)
            sheet.column_dimensions[column[0].column_letter].width = min(max(10, width + 2), 60)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence], lang: str = "fr") -> bytes:
    """A CSV file (UTF-8 with BOM) as the reader's spreadsheet opens it: in French ";"
    between fields and "," in numbers, else "," and "."; dates as AAAA-MM-JJ."""
    delimiter, comma = (";", ",") if lang == "fr" else (",", ".")
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow([neutralise(h) for h in header])
    for row in rows:
        writer.writerow([_csv_cell(v, comma) for v in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _csv_cell(value, comma: str):
    if value is None:
        return ""
    if isinstance(value, (float, Decimal)) and not isinstance(value, bool):
        return f"{Decimal(str(value)).normalize():f}".replace(".", comma)
    if isinstance(value, date):
        return value.isoformat()
    return neutralise(value)
