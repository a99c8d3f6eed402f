"""Rescore GEdit-Bench results: upstream's score CSVs (``calculate_statistics.py``'s arithmetic), or
the harness's raw replies (each item's replies parsed again, then the same arithmetic).

``calculate_statistics.py --language`` offers ``en`` and ``zh``, but the rows say ``cn``: with
``zh`` it averages nothing and prints ``nan``. Here the language is ``en`` or ``cn``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from benchmarks.gedit.data import LANGUAGES, PAPER_COLUMNS, TASK_TYPES
from benchmarks.gedit.results import (REPLIES_FILE, CsvRow, find_results_folder, read_csv, read_folder,
                                      read_replies)
from benchmarks.gedit.rules import DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_ROUNDS, Row, averages, flat_scores, replay
from harness.errors import InputError


def summary_of(rows: list[Row], language: str) -> dict[str, Any]:
    parts = averages(rows, language, TASK_TYPES)
    full, intersection = parts["full"], parts["intersection"]
    return {"language": language, **flat_scores(full), "types_scored": full["types_scored"],
            "items_per_type": {name: t["items"] for name, t in full["types"].items()},
            "intersection": {**flat_scores(intersection), "types_scored": intersection["types_scored"],
                             "items_per_type": {name: t["items"] for name, t in intersection["types"].items()}}}


def rescore_csv(path: str | Path, language: str = "en", model: str | None = None) -> dict[str, Any]:
    """A folder of per-type CSVs (or one above it), or the combined CSV."""
    if language not in LANGUAGES:
        raise InputError(f"language {language!r}: expected one of {', '.join(LANGUAGES)} (upstream's 'zh' "
                         "matches no row: the dataset says 'cn')")
    path = Path(path)
    if path.is_file():
        rows: list[CsvRow] = read_csv(path)
        source = f"combined CSV {path.name} (types read from edited_image paths)"
    else:
        folder = find_results_folder(path)
        model, rows = read_folder(folder, model)
        source = f"{folder} (model {model})"
    chosen = [row for row in rows if row.language == language]
    summary = summary_of([row.as_row() for row in rows], language)
    return {**summary, "source": source, "items": len(chosen), "scored": len(chosen), "judge_failed": 0,
            "rows_other_language": len(rows) - len(chosen)}


def rescore_replies(path: str | Path, language: str | None = None, max_attempts: int = DEFAULT_MAX_ATTEMPTS,
                    max_rounds: int = DEFAULT_MAX_ROUNDS) -> dict[str, Any]:
    """The harness's :data:`REPLIES_FILE`: every item's recorded replies replayed through the rules."""
    path = Path(path)
    entries = read_replies(path)
    if language is None:
        languages = sorted({entry["instruction_language"] for entry in entries})
        if len(languages) != 1:
            raise InputError(f"replies in {len(languages)} languages ({', '.join(languages)}): pass --language", path)
        language = languages[0]
    rows, failed, item_scores = [], [], {}
    chosen = [entry for entry in entries if entry["instruction_language"] == language]
    for entry in chosen:
        calls = [(call["sc"], call["pq"]) for call in entry["calls"]]
        judging = replay(calls, max_attempts, max_rounds)
        if judging.scores is None:
            failed.append(entry["sample_id"])
            continue
        semantics, quality, overall = judging.scores
        item_scores[entry["sample_id"]] = {"semantics": semantics, "quality": quality, "overall": overall}
        rows.append(Row(entry["task_type"], semantics, quality, bool(entry["intersection_exist"]), language))
    summary = summary_of(rows, language)
    return {**summary, "source": f"replies {path.name}", "items": len(chosen), "scored": len(rows),
            "judge_failed": len(failed), "failed": failed, "item_scores": item_scores}


def rescore(path: str | Path, language: str | None = None, model: str | None = None) -> dict[str, Any]:
    path = Path(path)
    if path.is_file() and path.suffix == ".jsonl":
        return rescore_replies(path, language)
    if path.is_dir() and (path / REPLIES_FILE).is_file() and not any(path.glob("*_gpt_score.csv")):
        return rescore_replies(path / REPLIES_FILE, language)
    return rescore_csv(path, language or "en", model)


def format_summary(summary: Mapping[str, Any]) -> str:
    """calculate_statistics.py's printout (type: SC, PQ, O to 3 decimals; Average; Intersection)."""
    def line(name: str, part: Mapping[str, Any], key: str) -> str:
        values = [part.get(f"types_{k}" if k != "overall" else "types", {}).get(key) for k in
                  ("semantics", "quality", "overall")]
        return f"{name}: " + ", ".join("nan" if v is None else f"{v:.3f}" for v in values)

    def average(name: str, part: Mapping[str, Any]) -> str:
        values = [part.get(k) for k in ("semantics", "quality", "overall")]
        return f"{name}: " + ", ".join("nan" if v is None else f"{v:.3f}" for v in values)

    lines = [f"GEdit-Bench ({summary['language'].upper()}), VIEScore 0-10: semantics (SC), quality (PQ), "
             "overall (sqrt(SC x PQ)); averages = unweighted means of the type means",
             f"source: {summary.get('source', '')}; items {summary.get('items', 0)}, scored {summary.get('scored', 0)}, "
             f"judge failures (excluded) {summary.get('judge_failed', 0)}"]
    lines += [line(name, summary, name) for name in TASK_TYPES if name in summary.get("types", {})]
    lines.append(average("Average", summary))
    lines.append("")
    lines.append("Intersection:")
    inter = summary.get("intersection", {})
    lines += [line(name, inter, name) for name in TASK_TYPES if name in inter.get("types", {})]
    lines.append(average("Average Intersection", inter))
    scored = summary.get("types_scored", 0)
    if scored < len(TASK_TYPES):
        absent = [PAPER_COLUMNS[name] for name in TASK_TYPES if name not in summary.get("types", {})]
        lines.append(f"only {scored} of {len(TASK_TYPES)} edit types scored (none: {', '.join(absent)}): "
                     "upstream prints nan; the averages here are over the types present and not comparable "
                     "with published numbers")
    return "\n".join(lines)
