"""Rescore Complex-Edit results: ``eval.py`` output folders (one per level), or a run's raw replies.

A folder is read as ``eval.py --resume`` reads it: each sample's stored means (alignment and quality
files paired by name); the item overall and the level means are then computed as ``eval.py`` does.
Its ``overall/final_result.json`` is not read (upstream writes the quality means into it).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from benchmarks.complex_edit.results import REPLIES_FILE, level_of, read_level_folder, read_replies
from benchmarks.complex_edit.rules import (ALIGNMENT_KEYS, METRICS, QUALITY_KEYS, OutOfReplies, collect, item_means,
                                           level_means)
from harness.errors import InputError

LABELS = {"instruction_following": "IF", "identity_preservation": "IP", "perceptual_quality": "PQ",
          "overall": "Overall"}


def rescore_folder(folder: str | Path) -> dict[str, Any]:
    folder = Path(folder)
    found = read_level_folder(folder)
    items = {name: item_means(means, means) for name, means in found["samples"].items()}
    level, image_type = level_of(folder)
    return {"label": f"C{level} {image_type}" if level else folder.name, "level": level, "image_type": image_type,
            "source": str(folder), **(level_means(list(items.values())) or {}), "items": len(items),
            "scored": len(items), "judge_failed": 0, "missing": found["missing"], "notes": found["notes"],
            "item_scores": items}


def rescore_replies(path: str | Path, call_size: int | None = None,
                    max_failed_calls: int | None = None) -> dict[str, Any]:
    """Replay a run's :data:`REPLIES_FILE`: ``call_size`` None as the harness asked (one reply per
    call); a number replays them as eval.py asks, that many per call (see ``rules.collect``)."""
    path = Path(path)
    items, failed = {}, []
    for entry in read_replies(path):
        try:
            size, upstream = (1, False) if call_size is None else (call_size, True)
            alignment = collect(entry["alignment"], ALIGNMENT_KEYS, True, entry["measurements"], size,
                                max_failed_calls, upstream)
            quality = collect(entry["quality"], QUALITY_KEYS, False, entry["measurements"], size,
                              max_failed_calls, upstream)
        except (OutOfReplies, ValueError):
            failed.append(entry["sample_id"])
            continue
        items[entry["sample_id"]] = item_means(alignment.means(), quality.means())
    level, image_type = level_of(path.parent)
    return {"label": f"C{level} {image_type}" if level else path.parent.name, "level": level,
            "image_type": image_type, "source": str(path), **(level_means(list(items.values())) or {}),
            "items": len(items) + len(failed), "scored": len(items), "judge_failed": len(failed), "failed": failed,
            "missing": [], "notes": [], "item_scores": items}


def rescore(paths: Sequence[str | Path], call_size: int | None = None) -> list[dict[str, Any]]:
    """One summary per level folder (or replies file), in the order given."""
    summaries = []
    for raw in paths:
        path = Path(raw)
        if path.is_file() and path.suffix == ".jsonl":
            summaries.append(rescore_replies(path, call_size))
        elif path.is_dir():
            summaries.append(rescore_folder(path))
        else:
            raise InputError(f"expected an eval.py output folder or a {REPLIES_FILE}", path)
    return summaries


def format_summary(summaries: Sequence[Mapping[str, Any]]) -> str:
    lines = ["Complex-Edit, judge scale 0-10: IF instruction following, IP identity preservation, PQ perceptual "
             "quality (means of the judge's replies); overall = (IF + IP + PQ) / 3, averaged over items"]
    for summary in summaries:
        values = ", ".join(f"{LABELS[key]} {summary[key]:.2f}" if summary.get(key) is not None else f"{LABELS[key]} n/a"
                           for key in (*METRICS, "overall"))
        lines.append(f"{summary['label']}: {values} ({summary['scored']} items"
                     + (f", {summary['judge_failed']} judge failures excluded" if summary.get("judge_failed") else "")
                     + (f", {len(summary['missing'])} with one result file only" if summary.get("missing") else "")
                     + ")")
        lines += [f"  note: {note}" for note in summary.get("notes", [])[:5]]
    return "\n".join(lines)


def summary_line(summaries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The last line of ``harness rescore complex_edit``: the first level's numbers, and every level's."""
    keys = (*METRICS, "overall")
    levels = {summary["label"]: {key: summary.get(key) for key in keys} for summary in summaries}
    first = summaries[0]
    return {"overall": first.get("overall"), "metrics": {key: first.get(key) for key in METRICS}, "levels": levels}
