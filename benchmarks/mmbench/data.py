"""MMBench data: VLMEvalKit TSVs (and LLaVA's legacy ones) as questions with circular passes.

A TSV row is one pass of one question (PROTOCOLS.md 5.1). Pass k of the question ``g_index`` has
``index = g_index + k * 1_000_000`` and its options shifted; a file with a ``g_index`` column (as
VLMEvalKit's ``CIRCULAR`` tool writes, which raises the offset to 10,000,000 and beyond once indices
reach 1,000,000) groups its rows by that column instead, as ``mcq_circular_eval`` does. A main row
is a row whose ``index`` equals its ``g_index``. Two file flavours:

- VLMEvalKit (``MMBench_DEV_EN.tsv`` ...): a copy's ``image`` cell is short (64 characters or
  fewer) and names the ``index`` of the row that holds the base64 image, as
  ``ImageBaseDataset.__init__`` resolves it.
- legacy (LLaVA/ShareGPT4V, ``mmbench_dev_20230712.tsv``): every row repeats the base64 image and
  the file also carries ``source`` and ``comment``; otherwise the same.

``circular="auto"`` uses the copies when the file has any; a file without copies gets its passes
generated here as LLaVA's ``--all-rounds`` does: pass k shows the options rotated k times
(``options[1:] + options[:1]`` per round) under the letters A, B, ..., and ``answer`` follows its
option. ``circular="off"`` keeps the main rows only (single-pass accuracy).

Image digests hash the decoded image bytes (identical for a copy that references its main row and
for one that repeats it); the PIL decoding waits until a model asks for the image. A row without an
image is an error here, where upstream silently drops it from the dataset.
"""
from __future__ import annotations

import base64
import binascii
import io
import string
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from PIL import Image, UnidentifiedImageError

from benchmarks.mmbench.circular import CIRCULAR_OFFSET
from benchmarks.mmbench.tables import Table, cell, read_table, require_columns
from harness.errors import InputError
from harness.hashing import hash_bytes, hash_file

CIRCULAR_MODES = ("auto", "off")
#: a shorter ``image`` cell is a reference to another row's index (upstream's threshold)
IMAGE_REFERENCE_MAX_CHARS = 64
REQUIRED_COLUMNS = ("index", "question", "answer", "image")


@dataclass(frozen=True)
class MMBenchRow:
    """One pass of one question: a TSV row, or a pass generated from a main row."""

    index: int
    cells: dict[str, str | None]  # every column but ``image``, as read (None = missing)
    letters: tuple[str, ...]  # the file's option columns (single capital letters), A to Z
    image_digest: str
    line: int  # the file line of the row (of the main row for a generated pass)
    generated: bool = False
    load_image: Callable[[], Image.Image] = field(default=None, compare=False, repr=False)
    group: int | None = None  # the file's g_index cell; None: index mod 1,000,000
    pass_position: int | None = None  # 0 for the main row, then 1, 2, ... by index

    @property
    def g_index(self) -> int:
        return self.group if self.group is not None else self.index % CIRCULAR_OFFSET

    @property
    def pass_number(self) -> int:
        return self.pass_position if self.pass_position is not None else self.index // CIRCULAR_OFFSET

    @property
    def question(self) -> str:
        return self.cells["question"] or ""

    @property
    def hint(self) -> str | None:
        return self.cells.get("hint")

    @property
    def options(self) -> dict[str, str]:
        """Letter -> text for every option cell that is not missing (``build_choices``)."""
        return {letter: self.cells[letter] for letter in self.letters if self.cells.get(letter) is not None}

    @property
    def answer(self) -> str:
        return self.cells["answer"] or ""

    @property
    def category(self) -> str | None:
        return self.cells.get("category")

    @property
    def l2_category(self) -> str | None:
        return self.cells.get("l2-category")

    @property
    def split(self) -> str:
        return self.cells.get("split") or "none"


@dataclass
class MMBenchData:
    path: Path
    columns: list[str]  # header order, without ``image``
    questions: list[list[MMBenchRow]]  # per question (file order), its passes by index
    circular: str  # "rows" (copies in the file), "generated", or "off"
    data_hash: str

    @property
    def passes(self) -> list[MMBenchRow]:
        return [row for passes in self.questions for row in passes]

    @property
    def options_without_answer(self) -> int:
        """Main rows whose answer letter is not among the present options (e.g. the option text
        was ``None`` and pandas read it as missing): such a question can never be answered right."""
        return sum(passes[0].answer not in passes[0].options for passes in self.questions)


def option_letters(columns: list[str]) -> tuple[str, ...]:
    return tuple(letter for letter in string.ascii_uppercase if letter in columns)


def circular_offset(indices) -> int:
    """The copy offset of VLMEvalKit's ``CIRCULAR`` tool: 1,000,000, times 10 while an index reaches it."""
    offset = CIRCULAR_OFFSET
    while max(indices, default=0) >= offset:
        offset *= 10
    return offset


def g_indices(table: Table, records: list[dict], indices: list[int]) -> list[int]:
    """Each row's question: the ``g_index`` column when the file has one, else ``index mod 1e6``."""
    if "g_index" not in table.columns:
        return [index % CIRCULAR_OFFSET for index in indices]
    return [table.parse_index(record["g_index"], position, "g_index") for position, record in enumerate(records)]


def load_mmbench(path: str | Path, circular: str = "auto", cells: str = "pandas") -> MMBenchData:
    if circular not in CIRCULAR_MODES:
        raise InputError(f"mmbench: circular must be one of {CIRCULAR_MODES}, got {circular!r}")
    table = read_table(path, cells)
    require_columns(table, REQUIRED_COLUMNS)
    table.check_complete()
    columns = [c for c in table.columns if c != "image"]
    letters = option_letters(columns)
    records = table.frame.to_dict("records")
    positions: dict[int, int] = {}
    for position, record in enumerate(records):
        index = table.parse_index(record["index"], position)
        if index in positions:
            raise table.error(f"index {index} appears twice (first at line {table.line(positions[index])})", position)
        positions[index] = position
        if cell(record["answer"]) is None:
            raise table.error(f"index {index} has no answer (test splits are scored only by the "
                              "official server)", position)
    groups = dict(zip(positions, g_indices(table, records, list(positions))))
    explicit = "g_index" in table.columns
    images = _ImageResolver(table, records, positions)
    has_copies = any(index != groups[index] for index in positions)
    questions: dict[int, list[MMBenchRow]] = {}
    for index, position in positions.items():
        if index != groups[index]:
            continue
        row_cells = {c: cell(records[position][c]) for c in columns}
        digest, loader = images.resolve(position)
        questions[index] = [MMBenchRow(index, row_cells, letters, digest, table.line(position), False, loader,
                                       index if explicit else None, 0 if explicit else None)]
    mode = "off"
    if circular == "auto" and has_copies:
        mode = "rows"
        for index, position in positions.items():
            g_index = groups[index]
            if index == g_index:
                continue
            if g_index not in questions:
                raise table.error(f"circular copy {index} has no main row (index {g_index})", position)
            row_cells = {c: cell(records[position][c]) for c in columns}
            digest, loader = images.resolve(position)
            questions[g_index].append(MMBenchRow(index, row_cells, letters, digest, table.line(position), False,
                                                 loader, g_index if explicit else None))
        for g_index, passes in questions.items():
            passes.sort(key=lambda row: (row.index != g_index, row.index))  # the main row first
            if explicit:  # the copy offset may be 1e7 or more: number the passes by position
                passes[1:] = [replace(row, pass_position=k) for k, row in enumerate(passes[1:], start=1)]
    elif circular == "auto":
        mode = "generated"
        offset = circular_offset(positions)
        for passes in questions.values():
            passes.extend(generated_passes(passes[0], offset))
    return MMBenchData(Path(path), columns, list(questions.values()), mode, hash_file(path))


def generated_passes(main: MMBenchRow, offset: int = CIRCULAR_OFFSET) -> list[MMBenchRow]:
    """Passes 1..n-1 of a question with n options: option texts rotated left k times under the
    letters A, B, ...; the answer letter follows its option text; pass k's index is
    ``index + k * offset`` (``offset`` above every index, as VLMEvalKit's ``CIRCULAR`` picks it)."""
    old_letters = list(main.options)
    texts = list(main.options.values())
    count = len(texts)
    new_letters = string.ascii_uppercase[:count]
    passes = []
    for k in range(1, count):
        cells = dict(main.cells)
        for letter in main.letters:
            cells[letter] = None
        for letter, text in zip(new_letters, texts[k:] + texts[:k]):
            cells[letter] = text
        if main.answer in old_letters:
            cells["answer"] = new_letters[(old_letters.index(main.answer) - k) % count]
        index = main.index + k * offset
        cells["index"] = str(index)
        if "g_index" in cells:
            cells["g_index"] = str(main.index)
        letters = tuple(sorted(set(main.letters) | set(new_letters)))
        passes.append(replace(main, index=index, cells=cells, letters=letters, generated=True,
                              group=main.index, pass_position=k))
    return passes


class _ImageResolver:
    """Digests and lazy loaders for base64 image cells, following short reference cells."""

    def __init__(self, table: Table, records: list[dict], positions: dict[int, int]):
        self.table, self.records, self.positions = table, records, positions
        self.digests: dict[int, str] = {}

    def resolve(self, position: int) -> tuple[str, Callable[[], Image.Image]]:
        value = cell(self.records[position]["image"])
        if value is None:
            raise self.table.error("the image cell is empty", position)
        if len(value) <= IMAGE_REFERENCE_MAX_CHARS:
            target = self.positions.get(_as_int(value))
            target_value = cell(self.records[target]["image"]) if target is not None else None
            if target_value is None or len(target_value) <= IMAGE_REFERENCE_MAX_CHARS:
                raise self.table.error(f"the image cell {value!r} is a reference (64 characters or fewer) "
                                       "but names no row that holds a base64 image", position)
            position, value = target, target_value
        if position not in self.digests:
            self.digests[position] = hash_bytes(self._decode(value, position))
        line = self.table.line(position)
        return self.digests[position], lambda: _open_image(self._decode(value, position), self.table.path, line)

    def _decode(self, value: str, position: int) -> bytes:
        try:
            return base64.b64decode(value)
        except (binascii.Error, ValueError) as exc:
            raise self.table.error(f"the image cell is not valid base64 ({exc})", position) from None


def _as_int(text: str) -> int | None:
    # upstream compares the reference with str(index) of the integer index column
    return int(text) if text.isdigit() and str(int(text)) == text else None


def _open_image(data: bytes, path: Path, line: int) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as handle:
            handle.load()
            return handle.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"corrupt or unreadable base64 image ({exc})", path, line) from None
