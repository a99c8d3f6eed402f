"""Complex-Edit result files: ``eval.py``'s per-sample JSON files, and the raw replies of a run.

``eval.py -p OUT`` writes, beside the output images ``OUT/<name>.png``:

- ``OUT/alignment_rubric_cot/<name>.json``: ``{"instruction", "runs": [{"reasoning",
  "instruction_following", "identity_preservation"}, ...], "instruction_following": mean,
  "identity_preservation": mean}`` (``indent="    "``), and ``final_result.json`` (the means over
  samples);
- ``OUT/quality_rubric/<name>.json``: ``{"instruction", "runs": [{"perceptual_quality"}, ...],
  "perceptual_quality": mean}``, and ``final_result.json``;
- ``OUT/overall/<name>.json``: the three means, ``"overall"`` and ``"instruction"``, and
  ``final_result.json``.

With ``--resume``, upstream reads a sample's stored means back (``runs`` and ``instruction`` popped)
instead of asking again; the rescore does the same. The harness also keeps every judge reply in
:data:`REPLIES_FILE` (one JSON line per item) so that a run can be parsed again.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from benchmarks.complex_edit.rules import ALIGNMENT_KEYS, METRICS, QUALITY_KEYS
from harness.errors import InputError
from harness.fileio import atomic_write_text, read_jsonl

ALIGNMENT_FOLDER = "alignment_rubric_cot"
QUALITY_FOLDER = "quality_rubric"
OVERALL_FOLDER = "overall"
FINAL_FILE = "final_result.json"
REPLIES_FILE = "judge_replies.jsonl"
LEVEL_FOLDER = re.compile(r"complexity_(?P<level>[1-8])_(?P<image_type>real|syn)$")


def output_folder(level: int, image_type: str) -> str:
    """GPT-Image-Edit's name for a level's output folder (``complexity_8_real``)."""
    return f"complexity_{level}_{image_type}"


def write_sample_files(folder: Path, name: str, instruction: str, alignment_runs: Sequence[Mapping[str, Any]],
                       alignment: Mapping[str, float], quality_runs: Sequence[Mapping[str, Any]],
                       quality: Mapping[str, float], overall: Mapping[str, float]) -> None:
    atomic_write_text(folder / ALIGNMENT_FOLDER / f"{name}.json", json.dumps(
        {"instruction": instruction, "runs": list(alignment_runs), **{k: alignment[k] for k in ALIGNMENT_KEYS}},
        indent="    "))
    atomic_write_text(folder / QUALITY_FOLDER / f"{name}.json", json.dumps(
        {"instruction": instruction, "runs": list(quality_runs), **{k: quality[k] for k in QUALITY_KEYS}},
        indent="    "))
    atomic_write_text(folder / OVERALL_FOLDER / f"{name}.json", json.dumps(
        {**{k: overall[k] for k in (*METRICS, "overall")}, "instruction": instruction}, indent=4))


def write_finals(folder: Path, means: Mapping[str, float]) -> None:
    atomic_write_text(folder / ALIGNMENT_FOLDER / FINAL_FILE, json.dumps({k: means[k] for k in ALIGNMENT_KEYS}, indent=4))
    atomic_write_text(folder / QUALITY_FOLDER / FINAL_FILE, json.dumps({k: means[k] for k in QUALITY_KEYS}, indent=4))
    atomic_write_text(folder / OVERALL_FOLDER / FINAL_FILE, json.dumps(dict(means), indent=4))


def _sample_means(path: Path, keys: Sequence[str]) -> tuple[dict[str, float], list[str]]:
    """A sample file's stored means (what ``--resume`` reads), and notes where its runs disagree."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"not a readable JSON file ({exc})", path) from None
    if not isinstance(data, dict):
        raise InputError("expected a JSON object", path)
    means = {}
    for key in keys:
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"no number {key!r} in the sample file", path)
        means[key] = value
    notes = []
    runs = data.get("runs")
    if isinstance(runs, list) and runs and all(isinstance(r, dict) and key in r for r in runs for key in keys):
        for key in keys:
            recomputed = sum(run[key] for run in runs) / len(runs)
            if recomputed != means[key]:
                notes.append(f"{path.name}: stored {key} {means[key]} but its runs give {recomputed}")
    return means, notes


def read_level_folder(folder: Path) -> dict[str, Any]:
    """Per-sample means of one ``eval.py`` output folder: ``{"samples": {name: {metric: mean}},
    "missing": [names with one file only], "notes": [...]}`` in name order."""
    alignment_dir, quality_dir = folder / ALIGNMENT_FOLDER, folder / QUALITY_FOLDER
    if not alignment_dir.is_dir() or not quality_dir.is_dir():
        raise InputError(f"no {ALIGNMENT_FOLDER}/ and {QUALITY_FOLDER}/ here (expected eval.py's output folder)",
                         folder)

    def names(directory: Path) -> dict[str, Path]:
        return {p.stem: p for p in sorted(directory.glob("*.json")) if p.name != FINAL_FILE}

    alignment_files, quality_files = names(alignment_dir), names(quality_dir)
    samples, notes = {}, []
    for name in sorted(set(alignment_files) & set(quality_files)):
        alignment, a_notes = _sample_means(alignment_files[name], ALIGNMENT_KEYS)
        quality, q_notes = _sample_means(quality_files[name], QUALITY_KEYS)
        samples[name] = alignment | quality
        notes += a_notes + q_notes
    missing = sorted(set(alignment_files) ^ set(quality_files))
    if not samples:
        raise InputError("no sample files with both an alignment and a quality result", folder)
    return {"samples": samples, "missing": missing, "notes": notes}


def level_of(folder: Path) -> tuple[int | None, str | None]:
    match = LEVEL_FOLDER.search(folder.name)
    return (int(match["level"]), match["image_type"]) if match else (None, None)


def write_replies(path: Path, entries: Sequence[Mapping[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(entry, ensure_ascii=False) + "\n" for entry in entries))


def read_replies(path: Path) -> list[dict]:
    """Lines ``{"sample_id", "instruction", "measurements", "alignment": [reply, ...], "quality":
    [reply, ...], "error"?}``, replies in the order they were received."""
    entries = []
    for number, entry in read_jsonl(path):
        if (not isinstance(entry, dict) or not isinstance(entry.get("sample_id"), str)
                or not isinstance(entry.get("measurements"), int)
                or not all(isinstance(entry.get(k), list) and all(isinstance(t, str) for t in entry[k])
                           for k in ("alignment", "quality"))):
            raise InputError("expected {sample_id, measurements, alignment: [replies], quality: [replies]}",
                             path, number)
        entries.append(entry)
    return entries
