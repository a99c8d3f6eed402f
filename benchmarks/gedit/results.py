"""GEdit-Bench result files: upstream's score CSVs, and the raw replies the harness keeps beside them.

Upstream's ``test_gedit_score.py`` writes, under ``<save_path>/<model>/<backbone>/eval_results_new/``,
one CSV per edit type, ``<model>_<task_type>_gpt_score.csv``, and ``<model>_combined_gpt_score.csv``
(all types, the same rows). Columns, in order: ``source_image``, ``edited_image``, ``instruction``,
``sementics_score`` (sic), ``quality_score``, ``intersection_exist``, ``instruction_language``;
written by ``csv.DictWriter`` (CRLF line ends), one row per item that was scored (an item that
failed every retry has no row). ``calculate_statistics.py`` reads the per-type files with pandas.

The harness writes the same files for a run (model name :data:`RUN_MODEL`), and also
:data:`REPLIES_FILE`: every judge reply, one JSON line per item, so a run can be re-parsed.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from benchmarks.gedit.data import TASK_TYPES
from benchmarks.gedit.rules import Row
from harness.errors import InputError
from harness.fileio import atomic_write_text, read_jsonl

FIELDS = ("source_image", "edited_image", "instruction", "sementics_score", "quality_score",
          "intersection_exist", "instruction_language")
RESULTS_FOLDER = "eval_results_new"
RUN_MODEL = "run"
REPLIES_FILE = "vie_replies.jsonl"
_TRUE, _FALSE = ("True", "TRUE", "true"), ("False", "FALSE", "false")  # pandas' boolean spellings


def type_csv_name(model: str, task_type: str) -> str:
    return f"{model}_{task_type}_gpt_score.csv"


def combined_csv_name(model: str) -> str:
    return f"{model}_combined_gpt_score.csv"


@dataclass(frozen=True)
class CsvRow:
    task_type: str
    source_image: str
    edited_image: str
    instruction: str
    semantics: Any
    quality: Any
    intersection: bool
    language: str

    def as_row(self) -> Row:
        return Row(self.task_type, self.semantics, self.quality, self.intersection, self.language)


def csv_text(rows: Iterable[CsvRow]) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(FIELDS))
    writer.writeheader()
    for row in rows:
        writer.writerow({"source_image": row.source_image, "edited_image": row.edited_image,
                         "instruction": row.instruction, "sementics_score": row.semantics,
                         "quality_score": row.quality, "intersection_exist": row.intersection,
                         "instruction_language": row.language})
    return buffer.getvalue()


def write_csvs(folder: Path, rows: Sequence[CsvRow], model: str = RUN_MODEL) -> list[Path]:
    """One CSV per edit type (a header only where a type has no row, as upstream writes it) and the
    combined CSV, in type order."""
    written = []
    ordered: list[CsvRow] = []
    for task_type in TASK_TYPES:
        of_type = [row for row in rows if row.task_type == task_type]
        ordered += of_type
        path = folder / type_csv_name(model, task_type)
        atomic_write_text(path, csv_text(of_type))
        written.append(path)
    path = folder / combined_csv_name(model)
    atomic_write_text(path, csv_text(ordered))
    return written + [path]


def _number(text: str, path: Path, line: int, column: str) -> Any:
    """A score cell as pandas reads it: an integer stays an int, anything else a float."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise InputError(f"{column} {text!r} is not a number", path, line) from None


def read_csv(path: Path, task_type: str | None = None) -> list[CsvRow]:
    """Rows of one upstream CSV. ``task_type`` None (the combined file): each row's type is read from
    its ``edited_image`` path (``.../fullset/<task_type>/<language>/<key>.png``)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})", path) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    lacking = [f for f in FIELDS if f not in (reader.fieldnames or [])]
    if lacking:
        raise InputError(f"not a GEdit-Bench score CSV: no column(s) {lacking}", path, 1)
    rows = []
    for record in reader:
        line = reader.line_num
        flag = record["intersection_exist"]
        if flag not in _TRUE + _FALSE:
            raise InputError(f"intersection_exist {flag!r} is not True or False", path, line)
        kind = task_type
        if kind is None:
            parts = record["edited_image"].replace("\\", "/").split("/")
            kind = parts[-3] if len(parts) >= 3 else ""
            if kind not in TASK_TYPES:
                raise InputError(f"cannot tell the edit type from edited_image {record['edited_image']!r} "
                                 "(expected .../fullset/<task_type>/<language>/<key>.png)", path, line)
        rows.append(CsvRow(kind, record["source_image"], record["edited_image"], record["instruction"],
                           _number(record["sementics_score"], path, line, "sementics_score"),
                           _number(record["quality_score"], path, line, "quality_score"),
                           flag in _TRUE, record["instruction_language"]))
    return rows


def find_results_folder(path: Path) -> Path:
    """``eval_results_new`` itself, a folder holding it under ``<backbone>/``, or a folder of CSVs."""
    if path.is_dir() and any(path.glob("*_gpt_score.csv")):
        return path
    found = sorted(path.glob(f"*/{RESULTS_FOLDER}")) if path.is_dir() else []
    found = [folder for folder in found if any(folder.glob("*_gpt_score.csv"))]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise InputError(f"several judges' results under the folder ({', '.join(f.parent.name for f in found)}): "
                         f"pass one of them", path)
    raise InputError("no GEdit-Bench *_gpt_score.csv files here (expected <model>/<backbone>/eval_results_new/)", path)


def read_folder(folder: Path, model: str | None = None) -> tuple[str, list[CsvRow]]:
    """(model name, rows) of the eleven per-type CSVs, read in type order as calculate_statistics.py
    reads them. A missing type file stops with the file named (upstream: FileNotFoundError)."""
    if model is None:
        suffix = f"_{TASK_TYPES[0]}_gpt_score.csv"
        names = sorted(p.name[: -len(suffix)] for p in folder.glob(f"*{suffix}"))
        if len(names) != 1:
            raise InputError(f"expected one <model>{suffix} file, found {len(names)}"
                             + (f" ({', '.join(names)}): pass --model" if names else ""), folder)
        model = names[0]
    rows: list[CsvRow] = []
    for task_type in TASK_TYPES:
        path = folder / type_csv_name(model, task_type)
        if not path.is_file():
            raise InputError(f"{path.name} is missing (calculate_statistics.py reads all eleven type files)", path)
        rows += read_csv(path, task_type)
    return model, rows


# ----------------------------------------------------------------------------- raw replies
def replies_line(entry: dict) -> str:
    return json.dumps(entry, ensure_ascii=False)


def write_replies(path: Path, entries: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(replies_line(entry) + "\n" for entry in entries))


REPLY_KEYS = ("sample_id", "task_type", "instruction_language", "intersection_exist", "calls")


def read_replies(path: Path) -> list[dict]:
    """Lines of :data:`REPLIES_FILE`: ``{"sample_id", "task_type", "key", "instruction",
    "instruction_language", "intersection_exist", "calls": [{"round", "attempt", "sc", "pq"}],
    "error"?}``."""
    entries = []
    for number, entry in read_jsonl(path):
        if not isinstance(entry, dict) or any(key not in entry for key in REPLY_KEYS):
            raise InputError(f"expected an object with {', '.join(REPLY_KEYS)}", path, number)
        if entry["task_type"] not in TASK_TYPES:
            raise InputError(f"unknown task_type {entry['task_type']!r}", path, number)
        calls = entry["calls"]
        if not isinstance(calls, list) or not all(isinstance(c, dict) and isinstance(c.get("sc"), str)
                                                  and isinstance(c.get("pq"), str) for c in calls):
            raise InputError("calls must be a list of {sc, pq} reply texts", path, number)
        entries.append(entry)
    return entries
