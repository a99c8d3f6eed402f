"""DPG-Bench files in the official formats (PROTOCOLS.md 2.2, 2.4): grids, ``_detail.txt``,
``_results.txt``.

- Grid: tiles pasted 2x2 in the official crop order (top-left, top-right, bottom-left,
  bottom-right), tile size r, grid 2r x 2r; a single tile is written as it is.
- ``_detail.txt``: ``image_path, (x1, y1, x2, y2), question, answer`` per (image, tile, question),
  tile by tile in question order. Upstream writes the answer raw; we write it on one line with
  ", " turned into "," (repeatedly) and line breaks into spaces. Neither change can turn an answer
  that is not exactly "yes" into "yes", so a replay scores every line as the run did. A rescore
  splits a line at the item's known question text (from the CSV), so a raw upstream answer that
  holds ", " ("no, yes") is read whole; only a line whose question the CSV does not know falls back
  to the text after the last ", ".
- ``_results.txt``: ``image_path, s1, ..., sN, average`` per scored image (``str`` of the floats),
  then the summary block; nothing rounded.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from PIL import Image

from harness.errors import InputError
from harness.fileio import read_text

GRID_DIR = "grids"
DETAIL_FILE = "dpg_detail.txt"
RESULTS_FILE = "dpg_results.txt"
#: the item ids this run asked for, one per line (for a fixed-mode rescore of a subset run)
ITEMS_FILE = "dpg_items.txt"
_DETAIL = re.compile(r"^(?P<path>.*?), \((\d+), (\d+), (\d+), (\d+)\), (?P<rest>.*)$", re.DOTALL)

Crop = tuple[int, int, int, int]


def crop_boxes(resolution: int) -> list[Crop]:
    """The four official crops of a grid whose tiles are ``resolution`` pixels square."""
    r = int(resolution)
    return [(0, 0, r, r), (r, 0, 2 * r, r), (0, r, r, 2 * r), (r, r, 2 * r, 2 * r)]


def tile_resolution(image: Image.Image) -> int:
    return max(image.size)


def compose_grid(tiles: Sequence[Image.Image]) -> Image.Image:
    """The official 2x2 grid (r = the largest tile side; smaller tiles keep their size, top-left
    aligned in their cell, on black). One tile is the grid itself."""
    if not tiles:
        raise ValueError("no tiles to compose")
    if len(tiles) == 1:
        return tiles[0].convert("RGB")
    r = max(tile_resolution(tile) for tile in tiles)
    grid = Image.new("RGB", (2 * r, 2 * r))
    for tile, box in zip(tiles, crop_boxes(r)):
        grid.paste(tile.convert("RGB"), box[:2])
    return grid


def one_line_answer(answer: str) -> str:
    """The answer as written to ``_detail.txt`` (see the module notes)."""
    text = answer.replace("\r\n", " ").replace("\r", " ").replace("\n", " ")
    while ", " in text:
        text = text.replace(", ", ",")
    return text


def format_crop(crop: Sequence[int]) -> str:
    return "(" + ", ".join(str(int(v)) for v in crop) + ")"  # str() of a tuple of ints


def detail_line(image_path: str, crop: Sequence[int], question: str, answer: str) -> str:
    return f"{image_path}, {format_crop(crop)}, {question}, {one_line_answer(answer)}\n"


@dataclass(frozen=True)
class DetailLine:
    """One line; ``question``/``answer`` split at the last ", " until :meth:`split_at` knows the
    item's questions (``rest`` is the text after the crop: question, ", ", answer)."""

    image_path: str
    crop: Crop
    question: str
    answer: str
    line: int
    rest: str = ""

    def split_at(self, questions: Iterable[str]) -> "DetailLine":
        """The line split after the longest known question that ``rest`` starts with (followed by
        ", "); unchanged when none does."""
        known = [q for q in set(questions) if self.rest.startswith(q + ", ")]
        if not known:
            return self
        question = max(known, key=len)
        return replace(self, question=question, answer=self.rest[len(question) + 2:])


def parse_detail_line(text: str, path: str | Path | None = None, line: int | None = None) -> DetailLine:
    """Path = text before the first ", (" that opens a 4-integer crop; answer = text after the
    last ", "; question = the rest. Questions may hold commas; answers we write never hold ", "."""
    text = text.rstrip("\n")
    if text.endswith("\r"):
        text = text[:-1]
    match = _DETAIL.match(text)
    if match is None:
        raise InputError("not a _detail.txt line 'image_path, (x1, y1, x2, y2), question, answer'",
                         path, line)
    question, separator, answer = match.group("rest").rpartition(", ")
    if not separator:
        raise InputError("no ', ' between question and answer", path, line)
    crop = tuple(int(match.group(k)) for k in range(2, 6))
    return DetailLine(match.group("path"), crop, question, answer, line or 0, match.group("rest"))


def read_detail(path: str | Path) -> list[DetailLine]:
    path = Path(path)
    if not path.is_file():
        raise InputError("detail file not found", path)
    lines = []
    for number, text in enumerate(io.StringIO(read_text(path, "utf-8-sig"), newline=""), start=1):
        if text.strip():
            lines.append(parse_detail_line(text, path, number))
    if not lines:
        raise InputError("the detail file has no lines", path)
    return lines


def image_line(image_path: str, tile_scores: Sequence[float], average: float) -> str:
    return image_path + ", " + ", ".join(str(s) for s in tile_scores) + ", " + str(average) + "\n"


def summary_block(model: str, l1: Mapping[str, float], l2: Mapping[str, float], image_root: str,
                  results_path: str, overall: float | None) -> str:
    """The block the official script prints and appends to ``_results.txt`` (no final newline)."""
    lines = [f"Model: {model}", "L1 category scores:"]
    lines += [f"\t{name}: {value}" for name, value in l1.items()]
    lines.append("L2 category scores:")
    lines += [f"\t{name}: {value}" for name, value in l2.items()]
    lines += [f"Image path: {image_root}", f"Save results to: {results_path}",
              f"DPG-Bench score: {float('nan') if overall is None else overall}"]
    return "\n".join(lines)
