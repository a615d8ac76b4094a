"""``leadline export``'s files: CSV for scripts and Excel alike, an XLSX workbook for a manager to read.

Both open in Excel as they are: the CSVs start with a UTF-8 byte order mark (without it Excel reads
Cyrillic as mojibake), and keep the stable column codes and campaign keys a script reads. The
workbook is for people: headers in the office's language (the bot's words, handed in as
:class:`Words` by the command), times and days as real date cells in the office's zone (named in
the header, since a cell cannot carry a zone), yes and no as words, campaigns by their titles, and
a frozen header row with an autofilter over columns wide enough to read.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from itertools import islice
from pathlib import Path
from typing import Any

from storage.export import Column, Table
from storage.private_files import owner_only

#: Excel's formats for the cells (its own codes, not strftime's).
TIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
DATE_FORMAT = "yyyy-mm-dd"
MONEY_FORMAT = "#,##0"
CELL_FORMATS = {"time": TIME_FORMAT, "date": DATE_FORMAT, "money": MONEY_FORMAT}
#: The rows read to size the columns, and the widths allowed (in characters).
SAMPLE_ROWS = 200
MIN_WIDTH, MAX_WIDTH = 6, 60


@dataclass(frozen=True)
class Words:
    """What a person reads in the workbook, in one language: the command fills it from the bot's
    catalogues, so the words live where every other text does."""

    #: A sheet's and a column's words by their codes, and a campaign's title by its key; what is
    #: not in them shows as its code.
    sheets: Mapping[str, str]
    columns: Mapping[str, str]
    campaigns: Mapping[str, str]
    yes: str
    no: str
    #: The config's ``[leadline] currency``, named in the money columns' headers.
    currency: str


#: What a spreadsheet takes for the start of a formula. A name typed into a site's form as
#: ``=HYPERLINK("http://…","Open")`` would otherwise run in the manager's Excel (OWASP: CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: A number as people write it (``+7 916 123-45-67``, ``-5``): no formula, kept as it is for scripts.
_NUMBER = re.compile(r"[+-]?[\d\s().-]+")


def inert(text: str) -> str:
    """Text people typed, as a CSV cell a spreadsheet shows and never runs: a leading ``'``, which
    Excel and LibreOffice hide, before anything that would start a formula."""
    if text.startswith(FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def csv_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, str):
        return inert(value)
    return value


def write_csv(table: Table, path: Path) -> int:
    """The table as ``path``, with a BOM; the number of rows."""
    with open(path, "w", newline="", encoding="utf-8-sig", opener=owner_only) as fh:
        writer = csv.writer(fh)
        writer.writerow(table.headers)
        return _count(writer.writerow([csv_value(v) for v in row]) for row in table.rows())


def _count(items: Iterable[Any]) -> int:
    return sum(1 for _ in items)


def header(table: Table, column: Column, words: Words) -> str:
    label = words.columns.get(column.code, column.code)
    if column.kind == "time":
        return f"{label} ({table.tz.key})"
    if column.kind == "money":
        return f"{label}, {words.currency}"
    return label


def cell_value(column: Column, value: Any, words: Words) -> Any:
    """A value as the workbook's cell holds it."""
    if value is None:
        return None
    if column.kind == "flag":
        return words.yes if value else words.no
    if column.kind == "time":
        # Excel's cells have no zone: the office's wall clock, the zone in the header.
        return value.replace(tzinfo=None)
    if column.kind == "campaign":
        return words.campaigns.get(value, value)
    return value


def _width(value: Any) -> int:
    if isinstance(value, datetime):
        return 19
    if isinstance(value, date):
        return 10
    text = str(value)
    return max((len(line) for line in text.splitlines()), default=0)


def column_widths(table: Table, headers: list[str], words: Words) -> list[float]:
    """Wide enough for the header and the longest of the first rows, within bounds."""
    widest = [len(h) for h in headers]
    for row in islice(table.rows(), SAMPLE_ROWS):
        for i, (column, value) in enumerate(zip(table.columns, row, strict=True)):
            if value is not None:
                widest[i] = max(widest[i], _width(cell_value(column, value, words)))
    return [min(max(w + 2, MIN_WIDTH), MAX_WIDTH) for w in widest]


def _cells(sheet: Any, columns: tuple[Column, ...], values: list[Any], *, head: bool = False) -> list[Any]:
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    out = []
    for column, value in zip(columns, values, strict=True):
        cell = WriteOnlyCell(sheet, value=value)
        if isinstance(value, str):
            cell.data_type = "s"  # openpyxl takes a text starting with "=" for a formula
        if head:
            cell.font = Font(bold=True)
        elif column.kind in CELL_FORMATS and value is not None:
            cell.number_format = CELL_FORMATS[column.kind]
        out.append(cell)
    return out


def write_xlsx(tables: list[Table], path: Path, words: Words) -> dict[str, int]:
    """One sheet per table at ``path``; each table's number of rows."""
    from openpyxl import Workbook
    from openpyxl.utils import get_column_letter

    book = Workbook(write_only=True)
    counts: dict[str, int] = {}
    for table in tables:
        sheet = book.create_sheet(words.sheets.get(table.name, table.name)[:31])  # Excel's limit
        headers = [header(table, column, words) for column in table.columns]
        # A write-only sheet writes its columns and panes before the first row, its filter after the last.
        for i, width in enumerate(column_widths(table, headers, words), start=1):
            sheet.column_dimensions[get_column_letter(i)].width = width
        sheet.freeze_panes = "A2"
        sheet.append(_cells(sheet, table.columns, headers, head=True))
        count = 0
        for row in table.rows():
            values = [cell_value(c, v, words) for c, v in zip(table.columns, row, strict=True)]
            sheet.append(_cells(sheet, table.columns, values))
            count += 1
        sheet.auto_filter.ref = f"A1:{get_column_letter(len(table.columns))}{count + 1}"
        counts[table.name] = count
    with open(path, "wb", opener=owner_only) as fh:
        book.save(fh)
    return counts
