"""Read and write GenEval files: official ``results.jsonl`` and precomputed-detections files.

``results.jsonl`` is what pandas ``DataFrame.to_json(orient="records", lines=True)`` writes: one
compact JSON object per line, ``/`` escaped as ``\\/``, every non-ASCII character as ``\\uXXXX``
(surrogate pairs above U+FFFF), DEL (0x7f) left raw, a trailing newline (current pandas;
some older versions omitted it: both read back). ``write_results`` produces pandas' bytes exactly.

A detections file holds one JSON object per image::

    {"prompt_index": 0, "image": "0000.png",
     "detections": [{"label": "bench", "score": 0.98, "box": [x1, y1, x2, y2], "color": "red"}]}

``color`` (optional, may be null) stands in for the CLIP colour classifier.
"""
from __future__ import annotations

import json
import math
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from benchmarks.geneval.data import COLORS
from harness.errors import InputError
from harness.fileio import read_jsonl
from harness.judges.base import Detection

#: official results.jsonl columns, in the order the official evaluator writes them
RESULT_FIELDS = ("filename", "tag", "prompt", "correct", "reason", "metadata", "details")


@dataclass
class DetectionsEntry:
    """One image of a detections file; ``line`` is kept so later errors can point at it."""

    prompt_index: int
    image: str
    detections: list[Detection]
    line: int


def _json_lines(path: str | Path) -> Iterator[tuple[int, object]]:
    """Yield (1-based line number, parsed value) for each non-blank line; empty file -> error."""
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", path)
    seen = False
    for number, value in read_jsonl(path):  # blank lines skipped, as pandas does
        seen = True
        yield number, value
    if not seen:
        raise InputError("file is empty", path)


def read_results(path: str | Path, strict: bool = False) -> list[dict]:
    """Read an official ``results.jsonl``; ``correct`` may be true/false or 0/1 (-> bool), or
    ``null`` (-> None): pandas reads it as NaN and ``summary_scores.py`` skips it in every mean, so we
    keep the row for the counts and skip it likewise; ``strict`` refuses such a row instead."""
    return read_results_with_lines(path, strict)[0]


def read_results_with_lines(path: str | Path, strict: bool = False) -> tuple[list[dict], list[int]]:
    """:func:`read_results` and the line number of each row."""
    rows, lines = [], []
    for number, row in _json_lines(path):
        def fail(message: str) -> None:
            raise InputError(message, path, number)

        if not isinstance(row, dict):
            fail("expected a JSON object")
        for key in RESULT_FIELDS:
            if key not in row:
                fail(f"field {key!r} missing")
            value = row[key]
            if key == "correct":
                if value is None:
                    if strict:
                        fail("field 'correct' is null (no verdict); without --strict the row is skipped in "
                             "every mean, as summary_scores.py skips it, with a warning")
                    continue
                if not (isinstance(value, bool) or (type(value) is int and value in (0, 1))):
                    fail(f"field 'correct' must be true/false or 0/1 (or null), got {value!r}")
                row[key] = bool(value)
            elif not isinstance(value, str):
                fail(f"field {key!r} must be a string, got {type(value).__name__}")
        try:
            metadata = json.loads(row["metadata"])
        except json.JSONDecodeError as exc:
            fail(f"field 'metadata' is not a JSON string ({exc.msg})")
        if not isinstance(metadata, dict):
            fail("field 'metadata' must encode a JSON object")
        rows.append(row)
        lines.append(number)
    return rows, lines


# pandas (ujson) escapes: quote, backslash, slash, the short C escapes, other controls as \u00XX.
_ASCII_ESCAPES = {ord('"'): '\\"', ord("\\"): "\\\\", ord("/"): "\\/", 8: "\\b", 12: "\\f",
                  10: "\\n", 13: "\\r", 9: "\\t"}
_ASCII_ESCAPES.update({c: f"\\u{c:04x}" for c in range(0x20) if c not in _ASCII_ESCAPES})
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _escape_non_ascii(match: re.Match) -> str:
    code = ord(match.group())
    if 0xD800 <= code < 0xE000:
        raise ValueError(f"lone surrogate U+{code:04X} cannot be written (pandas fails too)")
    if code > 0xFFFF:
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def _pandas_string(text: str) -> str:
    return '"' + _NON_ASCII.sub(_escape_non_ascii, text.translate(_ASCII_ESCAPES)) + '"'


def _pandas_line(row: Mapping) -> str:
    parts = []
    for key in RESULT_FIELDS:
        value = row[key]
        if key == "correct":
            encoded = "true" if value else "false"
        elif isinstance(value, str):
            encoded = _pandas_string(value)
        else:
            raise ValueError(f"results field {key!r} must be a string, got {type(value).__name__}")
        parts.append(f'"{key}":{encoded}')
    return "{" + ",".join(parts) + "}\n"


def write_results(rows: Iterable[Mapping], path: str | Path) -> None:
    """Write rows as pandas would (official field order; other keys dropped), atomically."""
    text = "".join(_pandas_line(row) for row in rows) or "\n"   # pandas writes "\n" for no rows
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile("wb", dir=path.parent, prefix=f".{path.name}.",
                                         suffix=".tmp", delete=False)
    try:
        with handle:
            handle.write(text.encode("ascii"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _parse_detection(item: object, fail) -> Detection:
    if not isinstance(item, dict):
        fail(f"detection {item!r} is not a JSON object")
    label, score, box = item.get("label"), item.get("score"), item.get("box")
    color = item.get("color")
    if not isinstance(label, str) or not label:
        fail(f"detection label must be a non-empty string, got {label!r}")
    if not _is_number(score):
        fail(f"detection score must be a finite number, got {score!r}")
    if not (isinstance(box, list) and len(box) == 4 and all(_is_number(v) for v in box)):
        fail(f"detection box must be 4 finite numbers [x1, y1, x2, y2], got {box!r}")
    if box[0] > box[2] or box[1] > box[3]:
        fail(f"detection box {box!r} needs x1 <= x2 and y1 <= y2")
    if color is not None and color not in COLORS:
        fail(f"detection color {color!r} is not one of {', '.join(COLORS)} (or null)")
    return Detection(label=label, score=float(score), box=[float(v) for v in box], color=color)


def read_detections(path: str | Path) -> list[DetectionsEntry]:
    """Read a detections file, checking every field; duplicate (prompt_index, image) is an error."""
    entries: list[DetectionsEntry] = []
    seen: dict[tuple[int, str], int] = {}
    for number, entry in _json_lines(path):
        def fail(message: str) -> None:
            raise InputError(message, path, number)

        if not isinstance(entry, dict):
            fail("expected a JSON object")
        index, image = entry.get("prompt_index"), entry.get("image")
        detections = entry.get("detections")
        if type(index) is not int or index < 0:
            fail(f"'prompt_index' must be an integer >= 0, got {index!r}")
        if not isinstance(image, str) or not image:
            fail(f"'image' must be a non-empty string, got {image!r}")
        if not isinstance(detections, list):
            fail(f"'detections' must be a list, got {detections!r}")
        if (index, image) in seen:
            fail(f"image {image!r} of prompt {index} already given on line {seen[index, image]}")
        seen[index, image] = number
        parsed = [_parse_detection(item, fail) for item in detections]
        entries.append(DetectionsEntry(index, image, parsed, number))
    return entries
