"""GenEval aggregation, bit-for-bit what ``evaluation/summary_scores.py`` prints (PROTOCOLS.md 1.5).

The headline ``overall`` is the unweighted mean of the per-tag image accuracies, not the image-level
mean. pandas computes a boolean column's mean as ``float64(sum) / count``; Python's ``k / n`` on
integers is the same correctly rounded division, so no pandas is needed. ``overall`` is
``np.mean`` of the tag means in first-appearance order (the official order is ``os.listdir``'s):
summation order can move the last bit, so the order is part of the result.

A row whose ``correct`` is None (``null`` in a results file) is what pandas reads as NaN: it counts
in "Total images", in its tag's image count and among the prompts, and is skipped by every mean
(``Series.mean`` skips NaN), so a tag's mean is over its rows with a verdict. The column is then
floats, so the printed correct counts read "3.0 / 4". A tag whose every row is null has no mean
(upstream prints ``nan%`` and an overall of ``nan``): refused, naming the tag.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from harness.errors import InputError


def summarize(rows: Iterable[Mapping], path: str | Path | None = None, lines: list[int] | None = None) -> dict:
    """Summarize results rows (each with ``tag``, ``correct``, ``metadata``; ``correct`` None is
    skipped as pandas skips NaN). ``skipped`` counts those rows per tag (absent when there are
    none). ``path`` and ``lines`` (each row's line) only make error messages point at the file."""
    total = 0
    correct_total = 0
    skipped: dict[str, int] = {}                  # tag -> rows with no verdict
    first_line: dict[str, int | None] = {}
    prompt_ok: dict[str, bool] = {}               # metadata string -> any image correct
    tag_counts: dict[str, list[int]] = {}         # tag -> [correct, total], first-appearance order
    for position, row in enumerate(rows):
        total += 1
        counts = tag_counts.setdefault(row["tag"], [0, 0])
        counts[1] += 1
        first_line.setdefault(row["tag"], lines[position] if lines is not None else None)
        if row["correct"] is None:
            skipped[row["tag"]] = skipped.get(row["tag"], 0) + 1
            prompt_ok.setdefault(row["metadata"], False)  # groupby(...).any() skips NaN
            continue
        ok = bool(row["correct"])
        correct_total += ok
        prompt_ok[row["metadata"]] = prompt_ok.get(row["metadata"], False) or ok
        counts[0] += ok
    if total == 0:
        raise InputError("no GenEval results to summarize", path)
    empty = [tag for tag, (_, n) in tag_counts.items() if skipped.get(tag, 0) == n]
    if empty:
        raise InputError(f"every row of tag {empty[0]!r} has \"correct\": null, so the tag has no score "
                         "(summary_scores.py would print nan% and an overall of nan)", path, first_line[empty[0]])
    tasks = {tag: k / (n - skipped.get(tag, 0)) for tag, (k, n) in tag_counts.items()}
    summary = {
        "images": total,
        "prompts": len(prompt_ok),
        "correct_images": correct_total / (total - sum(skipped.values())),
        "correct_prompts": sum(prompt_ok.values()) / len(prompt_ok),
        "tasks": tasks,
        "task_counts": {tag: list(counts) for tag, counts in tag_counts.items()},
        "overall": float(np.mean(np.array(list(tasks.values()), dtype=np.float64))),
    }
    if skipped:
        summary["skipped"] = {tag: skipped[tag] for tag in tag_counts if tag in skipped}
    return summary


def format_summary(summary: Mapping) -> str:
    """The text ``summary_scores.py`` prints (without the final newline ``print`` would add)."""
    lines = [
        "Summary",
        "=======",
        f"Total images: {summary['images']}",
        f"Total prompts: {summary['prompts']}",
        f"% correct images: {summary['correct_images']:.2%}",
        f"% correct prompts: {summary['correct_prompts']:.2%}",
        "",
        "Task breakdown",
        "==============",
    ]
    floats = bool(summary.get("skipped"))  # a null made the column floats: sums print as 3.0
    for tag, mean in summary["tasks"].items():
        k, n = summary["task_counts"][tag]
        lines.append(f"{tag:<16} = {mean:.2%} ({float(k) if floats else k} / {n})")
    lines += ["", f"Overall score (avg. over tasks): {summary['overall']:.5f}"]
    return "\n".join(lines)
