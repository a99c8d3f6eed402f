"""Reading VLMEvalKit-style tables (TSV, CSV, XLSX) the way upstream does, with line numbers.

Upstream reads every table with pandas' defaults (``pd.read_csv(f, sep="\\t")``, ``pd.read_excel``),
so pandas' missing-value strings become missing cells: an option whose text is exactly ``None``,
``NA``, ``N/A``, ``null``, ``nan``, ``NaN``, ``#N/A``, ``<NA>`` or empty (the full list is
:data:`PANDAS_NA_STRINGS`) is dropped from the options, and a hint that reads ``None`` is no hint.
We keep that behaviour. One difference: cells are read as text (``dtype=str``), so a column made
only of numbers keeps its spelling ("1.50", not 1.5); in the official MMBench files every text
column mixes words and numbers, where pandas keeps text anyway.

Errors name the file and line: the 1-based line of the file where the row starts (the header is
line 1), counted past cells that span several lines; for XLSX the spreadsheet row number.
"""
from __future__ import annotations

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

    def parse_index(self, value: Any, position: int, column: str = "index") -> int:
        text = cell(value)
        found = _INTEGER.fullmatch(text) if text is not None else None
        if found is None:
            raise self.error(f"{column} must be a non-negative integer, got {text!r}", position)
        return int(found.group(1))


def read_table(path: str | Path, text_cells: bool = True) -> Table:
    """Read a ``.tsv``, ``.csv`` or ``.xlsx`` table; cells as text when ``text_cells``."""
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", path)
    suffix = path.suffix.lower()
    dtype = str if text_cells else None
    try:
        if suffix == ".xlsx":
            return Table(path, pd.read_excel(path, dtype=dtype), spreadsheet=True)
        if suffix in (".tsv", ".csv"):
            return Table(path, pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=dtype))
    except pd.errors.EmptyDataError:
        raise InputError("empty file: no header row", path) from None
    except pd.errors.ParserError as exc:
        found = re.search(r"line (\d+)", str(exc))  # pandas counts records, not lines
        raise InputError(f"malformed table ({str(exc).strip()})", path,
                         _record_line(path, int(found.group(1))) if found else None) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", path) from None
    except (ValueError, OSError) as exc:  # openpyxl: not a zip / not a workbook
        raise InputError(f"unreadable {suffix[1:]} file ({exc})", path) from None
    raise InputError(f"unsupported file type {suffix or '(none)'}: expected .tsv, .csv or .xlsx", path)


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
