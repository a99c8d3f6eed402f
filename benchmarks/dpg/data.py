"""DPG-Bench data: the dense prompts and the question graph (PROTOCOLS.md 2.1).

Prompts are packaged (``data/prompts.jsonl``: ELLA ``dpg_bench/prompts/*.txt``, Apache-2.0, see
``data/NOTICE-dpg-bench.txt``); a user may give the official prompts folder (``<item_id>.txt``) or a
JSON-lines file of the same form instead. The question graph ``dpg_bench.csv`` is not vendored:
the user passes its path.

The CSV is read the way the official ``prepare_dpg_data`` reads it: rows of one item are grouped by
comparing each row's item id with the previous row's, so an item whose rows come back later starts
over (the later block replaces the earlier); a proposition id repeated inside an item keeps its
first position and takes the later row's fields (dict semantics). ``drop_first_row`` reproduces
quirk 1 (the loader skips pandas row 0).
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from harness.errors import InputError
from harness.fileio import read_jsonl, read_text

CSV_COLUMNS = ("item_id", "text", "keywords", "proposition_id", "dependency", "category_broad",
               "category_detailed", "tuple", "question_natural_language")
#: columns the scoring reads (the others may be missing or empty)
REQUIRED_COLUMNS = ("item_id", "proposition_id", "dependency", "tuple", "question_natural_language")
_ID_SUFFIX = re.compile(r"^(.*?)(\d*)$")


@dataclass(frozen=True)
class DPGPrompt:
    item_id: str
    prompt: str


@dataclass(frozen=True)
class Proposition:
    """One question of an item. ``l2`` is the tuple text before the first "(" (stripped), ``l1``
    the L2 text before the first "-" (stripped), as the official script computes them."""

    qid: int
    question: str
    tuple_text: str
    dependency: tuple[int, ...]
    line: int

    @property
    def l2(self) -> str:
        return self.tuple_text.split("(")[0].strip()

    @property
    def l1(self) -> str:
        return self.l2.split("-")[0].strip()


@dataclass
class DPGItem:
    """The questions of one item, keyed by proposition id in the official (dict) order."""

    item_id: str
    propositions: dict[int, Proposition] = field(default_factory=dict)

    @property
    def qids(self) -> list[int]:
        return list(self.propositions)

    @property
    def questions(self) -> list[str]:
        return [p.question for p in self.propositions.values()]

    def to_json(self) -> list:
        """Compact form for cache keys and verdicts: [qid, question, dependency, tuple]."""
        return [[p.qid, p.question, list(p.dependency), p.tuple_text] for p in self.propositions.values()]


def packaged_prompts_file() -> Path:
    return Path(str(resources.files("benchmarks.dpg") / "data" / "prompts.jsonl"))


def check_item_id(item_id: object, where: str | Path, line: int | None = None) -> str:
    """Item ids become file names whose stem up to the first dot is the official key."""
    if not isinstance(item_id, str) or not item_id.strip():
        raise InputError(f"item id must be a non-empty string, got {item_id!r}", where, line)
    if any(bad in item_id for bad in (".", "/", "\\", "\n", "\r", ", ")) or item_id != item_id.strip():
        raise InputError(f"item id {item_id!r} cannot name a grid file (no dot, slash, line break, "
                         "', ' or surrounding spaces allowed)", where, line)
    return item_id


def item_sort_key(item_id: str) -> tuple:
    """The packaged order: numeric ids ascending, then by alphabetic prefix and numeric suffix."""
    if item_id.isdigit():
        return (0, int(item_id), "", 0)
    prefix, digits = _ID_SUFFIX.match(item_id).groups()
    return (1, 0, prefix, int(digits) if digits else -1)


def load_prompts(prompts: str | Path = "official") -> list[DPGPrompt]:
    """``"official"`` (packaged 1065), a folder of ``<item_id>.txt`` files or a prompts JSON-lines file."""
    if str(prompts) == "official":
        return _read_prompts_jsonl(packaged_prompts_file())
    path = Path(prompts)
    if path.is_dir():
        return _read_prompts_folder(path)
    if path.is_file():
        return _read_prompts_jsonl(path)
    raise InputError("DPG-Bench prompts not found (expected 'official', a folder of <item_id>.txt "
                     "files or a JSON-lines file)", path)


def _read_prompts_folder(folder: Path) -> list[DPGPrompt]:
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix == ".txt"]
    if not files:
        raise InputError("no <item_id>.txt prompt files in the folder", folder)
    prompts = []
    for path in sorted(files, key=lambda p: item_sort_key(p.stem)):
        try:
            text = path.read_text(encoding="utf-8")  # as stored: no strip (PROTOCOLS 2.1)
        except UnicodeDecodeError as exc:
            raise InputError(f"not UTF-8 text ({exc.reason})", path) from None
        prompts.append(DPGPrompt(check_item_id(path.stem, path), text))
    return prompts


def _read_prompts_jsonl(path: Path) -> list[DPGPrompt]:
    prompts: list[DPGPrompt] = []
    seen: dict[str, int] = {}
    for number, row in read_jsonl(path):
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
            raise InputError("expected an object with 'item_id' and 'prompt' (a string)", path, number)
        item_id = check_item_id(row.get("item_id"), path, number)
        if item_id in seen:
            raise InputError(f"item {item_id!r} already given on line {seen[item_id]}", path, number)
        seen[item_id] = number
        prompts.append(DPGPrompt(item_id, row["prompt"]))
    if not prompts:
        raise InputError("no prompts in file", path)
    return prompts


def _int_field(text: str, name: str, path: Path, line: int) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise InputError(f"{name} must be an integer, got {text!r}", path, line) from None


def load_question_graph(csv_path: str | Path, drop_first_row: bool = True) -> dict[str, DPGItem]:
    """Items of ``dpg_bench.csv`` by item id, grouped and keyed as the official loader does.

    Malformed rows (a missing required column, a non-integer proposition id or dependency, an
    empty or multi-line question) raise ``InputError`` naming the file and line.
    """
    path = Path(csv_path)
    if not path.is_file():
        raise InputError("DPG-Bench question CSV not found (dpg_bench/dpg_bench.csv from "
                         "TencentQQGYLab/ELLA)", path)
    graph: dict[str, DPGItem] = {}
    previous = ""
    with io.StringIO(read_text(path, "utf-8-sig"), newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise InputError("the CSV is empty", path)
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise InputError(f"the header lacks column(s) {missing}; expected {', '.join(CSV_COLUMNS)}",
                             path, 1)
        index = {name: header.index(name) for name in REQUIRED_COLUMNS}
        data_row = -1
        start = reader.line_num + 1
        for cells in reader:
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in cells):
                continue  # pandas skips blank lines
            data_row += 1
            if len(cells) != len(header):
                raise InputError(f"expected {len(header)} fields, got {len(cells)}", path, line)
            if drop_first_row and data_row == 0:
                continue  # quirk 1: `if i == 0: continue`
            proposition = _proposition(cells, index, path, line)
            item_id = cells[index["item_id"]]
            if not item_id:
                raise InputError("empty item_id", path, line)
            if item_id != previous:
                graph[item_id] = DPGItem(item_id)  # a new block replaces an earlier one, as upstream
            graph[item_id].propositions[proposition.qid] = proposition
            previous = item_id
    if not graph:
        raise InputError("no question rows in the CSV", path)
    return graph


def _proposition(cells: list[str], index: dict[str, int], path: Path, line: int) -> Proposition:
    qid = _int_field(cells[index["proposition_id"]], "proposition_id", path, line)
    dependency_text = cells[index["dependency"]]
    if not dependency_text.strip():
        raise InputError("empty dependency (use 0 for none)", path, line)
    dependency = tuple(_int_field(part, "dependency", path, line) for part in dependency_text.split(","))
    question = cells[index["question_natural_language"]]
    tuple_text = cells[index["tuple"]]
    if not question.strip() or not tuple_text.strip():
        raise InputError("empty question_natural_language or tuple", path, line)
    if "\n" in question or "\r" in question:
        raise InputError("question spans several lines: it could not be written to a _detail.txt line",
                         path, line)
    return Proposition(qid, question, tuple_text, dependency, line)
