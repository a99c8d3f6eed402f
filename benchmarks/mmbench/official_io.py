"""The files VLMEvalKit writes for MMBench, in the same columns (PROTOCOLS.md 5.3).

- ``mmbench_predictions.tsv``: upstream's ``<model>_<dataset>.xlsx`` (or ``.tsv`` with
  ``PRED_FORMAT=tsv``): every data column but ``image``, plus ``prediction`` (the raw answer), one
  row per pass. We write TSV (no spreadsheet dependency; upstream reads it back the same way).
- ``mmbench_result.tsv``: upstream's ``<pred>_<judge>_result``: the main rows with ``hit`` and
  ``log``; ``hit`` is empty for a question excluded as a judge failure.
- ``mmbench_acc.csv``: upstream's ``<pred>_acc.csv``, the ``report_acc`` table (0-1 scale).

Cells are written as upstream's ``dump`` does: every field quoted, UTF-8, no index column.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from harness.fileio import atomic_write_text

PREDICTIONS_FILE = "mmbench_predictions.tsv"
RESULT_FILE = "mmbench_result.tsv"
ACC_FILE = "mmbench_acc.csv"


def ordered_columns(first: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """``first``, then any other key the rows carry, in order of appearance."""
    columns = dict.fromkeys(first)
    for row in rows:
        columns.update(dict.fromkeys(row))
    return list(columns)


def write_table(path: str | Path, columns: Sequence[str], rows: Sequence[Mapping[str, Any]],
                sep: str = "\t") -> None:
    frame = pd.DataFrame([[row.get(c) for c in columns] for row in rows], columns=list(columns), dtype=object)
    atomic_write_text(path, frame.to_csv(sep=sep, index=False, quoting=csv.QUOTE_ALL, lineterminator="\n"))


def write_accuracy(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> None:
    columns = ordered_columns(["split", "Overall"], rows)
    cleaned = [{c: (None if isinstance(v, float) and math.isnan(v) else v) for c, v in row.items()} for row in rows]
    write_table(path, columns, cleaned, sep=",")
