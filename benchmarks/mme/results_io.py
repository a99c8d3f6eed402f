"""MME results files, the input of the official ``calculation.py``.

One file per subtask, ``<dir>/<subtask>.txt``, one line per question, pairs of lines per image::

    image<TAB>question<TAB>GT<TAB>answer\\n

The answer must fit on one line. The official readme says to delete newlines from responses;
LLaVA's ``convert_answer_to_mme.py`` writes the answer unchanged (its generator has already
``.strip()``-ed it) and would break the format on an answer with a newline or tab. We delete CR
and LF (the readme's rule; Python's text mode would also end a line at a lone CR) and turn each
tab into a space (a tab would add a fifth field). Nothing else is touched: leading spaces stay,
since the official rule looks at the first 4 characters.

Reading mirrors the official script: text mode with universal newlines, ``readlines()``, and each
line split on tabs into exactly four fields; the answer field keeps its trailing newline.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from benchmarks.mme.rules import parse_answer
from harness.errors import InputError
from harness.fileio import atomic_write_text

#: where a run writes its results files, relative to the run folder
RESULTS_DIR = "mme_results"


def one_line(answer: str) -> str:
    """The answer as written in a results file: CR/LF deleted, tabs turned into spaces."""
    return answer.replace("\r", "").replace("\n", "").replace("\t", " ")


@dataclass(frozen=True)
class ResultRow:
    """One line of a results file; ``answer`` is the field as read (with its newline, if any)."""

    image: str
    question: str
    gt: str
    answer: str
    line: int | None = None


def format_row(image: str, question: str, gt: str, answer: str) -> str:
    for name, value in (("image", image), ("question", question), ("ground truth", gt)):
        if any(c in value for c in "\t\r\n"):
            raise ValueError(f"{name} {value!r} contains a tab or line break")
    return f"{image}\t{question}\t{gt}\t{one_line(answer)}\n"


def write_results_file(path: str | Path, rows: Iterable[tuple[str, str, str, str]]) -> None:
    """Write (image, question, gt, raw answer) rows in order, answers made one line."""
    atomic_write_text(path, "".join(format_row(*row) for row in rows))


def read_results_file(path: str | Path) -> list[ResultRow]:
    """Read a results file as the official script does, validating what it asserts.

    Raises InputError naming the file and line for: a line without exactly 4 tab-separated
    fields, a ground truth other than yes/no (any case), an odd number of lines, an empty file.
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as handle:  # universal newlines, as open(path, 'r')
            lines = handle.readlines()
    except FileNotFoundError:
        raise InputError("results file not found", path) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", path) from None
    rows = []
    for number, line in enumerate(lines, start=1):
        fields = line.split("\t")
        if len(fields) != 4:
            raise InputError(f"expected 4 tab-separated fields (image, question, GT, answer), got "
                             f"{len(fields)}" + ("; blank line" if not line.strip() else ""), path, number)
        image, question, gt, answer = fields
        if gt.lower() not in ("yes", "no"):
            raise InputError(f"ground truth must be Yes or No, got {gt!r}", path, number)
        rows.append(ResultRow(image, question, gt, answer, number))
    if not rows:
        raise InputError("results file is empty", path)
    if len(rows) % 2:
        raise InputError(f"{len(rows)} lines: each image needs two consecutive lines, the last one has "
                         "no partner", path, len(rows))
    return rows


def answer_labels(rows: Sequence[ResultRow]) -> tuple[list[str], list[str]]:
    """(ground truths, parsed labels) of a file's rows, in order."""
    return [row.gt for row in rows], [parse_answer(row.answer) for row in rows]
