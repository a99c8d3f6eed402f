"""Reading VLMEvalKit-style tables (TSV, CSV, XLSX) the way upstream does, with line numbers.

Upstream reads every table with pandas' defaults (``pd.read_csv(f, sep="\\t")``, ``pd.read_excel``)
and turns cells into text with ``str()`` when it builds prompts and matches answers. We read the
same way (``cells="pandas"``, the default), so:

- pandas' missing-value strings become missing cells: an option whose text is exactly ``None``,
  ``NA``, ``N/A``, ``null``, ``nan``, ``NaN``, ``#N/A``, ``<NA>`` or empty (the full list is
  :data:`PANDAS_NA_STRINGS`) is dropped from the options, and a hint that reads ``None`` is no hint;
- a column holding only numbers gets a numeric type: integers stay ``"4"``, but a column of numbers
  with a blank (or a decimal point anywhere) becomes floats, so ``"4"`` reads ``"4.0"`` and
  ``"1.50"`` reads ``"1.5"``; ``True``/``False`` columns read ``"True"``/``"False"``. Exact
  matching then compares the answer with ``"4.0"``, as upstream does.

``cells="text"`` (``lenient_cells``) reads every cell as the text in the file (``dtype=str``):
the missing-value strings still become missing cells, but a numeric column keeps its spelling.
It is not the official reading; it scores such subsets differently (usually higher).

Errors name the file and line: the 1-based line of the file where the row starts (the header is
line 1), counted past cells that span several lines; for XLSX the spreadsheet row number. Refused
where pandas would read on quietly: a row with fewer fields than the header (a truncated or ragged
file: pandas fills the missing cells with NaN), and an XLSX formula cell without a cached value
(pandas reads it as an empty cell).
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.errors import InputError

#: pandas' default missing-value strings (pandas 2.x/3.x ``STR_NA_VALUES``)
PANDAS_NA_STRINGS = frozenset({
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})
_INTEGER = re.compile(r"\s*\+?(\d+)(\.0*)?\s*")  # "12" or a spreadsheet's "12.0"


def cell(value: Any) -> str | None:
    """A table cell as text, or None when pandas read it as missing."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return str(value)


def as_read_back(text: str) -> str:
    """What upstream scores after a prediction went through its prediction file: pandas turns a
    cell equal to one of its missing-value strings into NaN and ``str(NaN)`` is ``"nan"``."""
    return "nan" if text in PANDAS_NA_STRINGS else text


@dataclass
class Table:
    path: Path
    frame: pd.DataFrame
    spreadsheet: bool = False
    _starts: list[int] | None = field(default=None, repr=False)
    #: (line, fields) of the first data row with fewer fields than the header, if any
    short_row: tuple[int, int] | None = None

    @property
    def columns(self) -> list[str]:
        return [str(c) for c in self.frame.columns]

    def line(self, position: int) -> int:
        """The file line (1-based, header = 1) where data row ``position`` (0-based) starts."""
        if self.spreadsheet:
            return position + 2
        if self._starts is None:
            self._starts = _record_start_lines(self.path)
        return self._starts[position + 1] if position + 1 < len(self._starts) else position + 2

    def error(self, message: str, position: int | None = None) -> InputError:
        return InputError(message, self.path, None if position is None else self.line(position))

    def check_complete(self) -> None:
        """Refuse a row with fewer fields than the header (a truncated or ragged file): pandas fills
        the missing cells with NaN, so the row would be scored quietly (e.g. in a split "none")."""
        if self.short_row is not None:
            line, fields = self.short_row
            raise InputError(f"this row has {fields} field(s), the header has {len(self.frame.columns)}: a "
                             "truncated or ragged table (pandas would fill the missing cells with NaN and "
                             "score the row)", self.path, line)

    def parse_index(self, value: Any, position: int, column: str = "index") -> int:
        text = cell(value)
        found = _INTEGER.fullmatch(text) if text is not None else None
        if found is None:
            raise self.error(f"{column} must be a non-negative integer, got {text!r}", position)
        return int(found.group(1))


#: how table cells are read: ``pandas`` (upstream's defaults, official) or ``text`` (lenient)
CELL_READINGS = ("pandas", "text")


def check_cell_reading(cells: str) -> str:
    if cells not in CELL_READINGS:
        raise InputError(f"mmbench: cell reading must be one of {CELL_READINGS}, got {cells!r}")
    return cells


def read_table(path: str | Path, cells: str = "pandas") -> Table:
    """Read a ``.tsv``, ``.csv`` or ``.xlsx`` table: with pandas' default types (``cells="pandas"``,
    as upstream) or every cell as text (``cells="text"``, the lenient reading)."""
    path = Path(path)
    check_cell_reading(cells)
    if not path.is_file():
        raise InputError("file not found" if not path.exists() else "not a file", path)
    suffix = path.suffix.lower()
    dtype = str if cells == "text" else None
    if suffix == ".xlsx":
        try:
            frame = pd.read_excel(path, dtype=dtype)
        except Exception as exc:  # noqa: BLE001 (zipfile.BadZipFile, KeyError, ValueError, ...: not a workbook)
            raise InputError(f"unreadable xlsx file ({type(exc).__name__}: {exc})", path) from None
        _check_formulas(path)
        return Table(path, frame, spreadsheet=True)
    if suffix not in (".tsv", ".csv"):
        raise InputError(f"unsupported file type {suffix or '(none)'}: expected .tsv, .csv or .xlsx", path)
    sep = "\t" if suffix == ".tsv" else ","
    try:
        frame = pd.read_csv(path, sep=sep, dtype=dtype)
    except pd.errors.EmptyDataError:
        raise InputError("empty file: no header row", path) from None
    except pd.errors.ParserError as exc:
        found = re.search(r"line (\d+)", str(exc))  # pandas counts records, not lines
        raise InputError(f"malformed table ({str(exc).strip()})", path,
                         _record_line(path, int(found.group(1))) if found else None) from None
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, exc) from None
    except (ValueError, OSError) as exc:
        raise InputError(f"unreadable {suffix[1:]} file ({exc})", path) from None
    table = Table(path, frame)
    table._starts, table.short_row = _record_starts(path, sep, len(frame.columns))
    return table


def _not_utf8(path: Path, exc: UnicodeDecodeError) -> InputError:
    """The error for a file that is not UTF-8, naming the line of the first bad byte (pandas decodes
    in chunks, so its offsets are not the file's)."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as found:
        return InputError(f"not UTF-8 text ({found.reason} at byte {found.start})", path,
                          data.count(b"\n", 0, found.start) + 1)
    return InputError(f"not UTF-8 text ({exc.reason})", path)


def _record_starts(path: Path, sep: str, columns: int) -> tuple[list[int], tuple[int, int] | None]:
    """(line where each record starts, header first; (line, fields) of the first record with fewer
    fields than the header, or None)."""
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, 2 ** 31 - 1))  # base64 images are longer than csv's default
    starts: list[int] = []
    short = None
    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as handle:
            reader = csv.reader(handle, delimiter=sep)
            previous = 0
            for fields in reader:
                start, previous = previous + 1, reader.line_num
                if not fields or (len(fields) == 1 and not fields[0].strip()):
                    continue  # a blank line: pandas skips it
                if starts and short is None and len(fields) < columns:
                    short = (start, len(fields))
                starts.append(start)
    except csv.Error as exc:
        raise InputError(f"malformed table ({exc})", path, reader.line_num) from None
    finally:
        csv.field_size_limit(limit)
    return starts, short


def _check_formulas(path: Path) -> None:
    """Refuse formula cells without a cached value in the sheet pandas reads (the first): pandas
    (openpyxl, ``data_only``) reads them as empty cells, so a prediction would quietly be "nan"."""
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=False)
        try:
            sheet = book.worksheets[0]
            formulas = [(cell.row, cell.column, cell.coordinate) for row in sheet.iter_rows()
                        for cell in row if getattr(cell, "data_type", None) == "f"]
        finally:
            book.close()
        if not formulas:
            return
        book = openpyxl.load_workbook(path, read_only=False, data_only=True)
        try:
            sheet = book.worksheets[0]
            for row, column, coordinate in formulas:
                if sheet.cell(row=row, column=column).value is None:
                    raise InputError(f"cell {coordinate} holds a formula without a cached value (the file "
                                     "was written by a program that does not compute formulas); pandas, "
                                     "as upstream, would read it as an empty cell: open and save the file "
                                     "in a spreadsheet program, or write the values", path, row)
        finally:
            book.close()
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 (pandas read it, openpyxl did not: say so, no traceback)
        raise InputError(f"unreadable xlsx file ({type(exc).__name__}: {exc})", path) from None


def require_columns(table: Table, names: tuple[str, ...]) -> None:
    missing = [name for name in names if name not in table.columns]
    if missing:
        raise InputError(f"missing column(s) {missing}; the header has {table.columns}", table.path, 1)


def _record_line(path: Path, record: int) -> int:
    starts = _record_start_lines(path)
    return starts[record - 1] if 0 < record <= len(starts) else record


def _record_start_lines(path: Path) -> list[int]:
    """Line number where each record starts (header first). A record goes on past a line break
    while a double-quoted cell is open (an odd number of quote characters so far); blank lines
    between records are skipped, as pandas skips them."""
    starts: list[int] = []
    open_quote = False
    with open(path, encoding="utf-8", errors="replace", newline="") as handle:
        for number, line in enumerate(handle, start=1):
            if not open_quote and line.strip("\r\n"):
                starts.append(number)
            if line.count('"') % 2:
                open_quote = not open_quote
    return starts
