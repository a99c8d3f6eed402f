"""GenEval aggregation, bit-for-bit what ``evaluation/summary_scores.py`` prints (PROTOCOLS.md 1.5).

The headline ``overall`` is the unweighted mean of the per-tag image accuracies, not the image-level
mean. pandas computes a boolean column's mean as ``float64(sum) / count``; Python's ``k / n`` on
integers is the same correctly rounded division, so no pandas is needed. ``overall`` is
``np.mean`` of the tag means in first-appearance order (the official order is ``os.listdir``'s):
summation order can move the last bit, so the order is part of the result.
"""
from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np

from harness.errors import InputError


def summarize(rows: Iterable[Mapping]) -> dict:
    """Summarize results rows (each with ``tag``, ``correct``, ``metadata``)."""
    total = 0
    correct_total = 0
    prompt_ok: dict[str, bool] = {}               # metadata string -> any image correct
    tag_counts: dict[str, list[int]] = {}         # tag -> [correct, total], first-appearance order
    for row in rows:
        ok = bool(row["correct"])
        total += 1
        correct_total += ok
        prompt_ok[row["metadata"]] = prompt_ok.get(row["metadata"], False) or ok
        counts = tag_counts.setdefault(row["tag"], [0, 0])
        counts[0] += ok
        counts[1] += 1
    if total == 0:
        raise InputError("no GenEval results to summarize")
    tasks = {tag: k / n for tag, (k, n) in tag_counts.items()}
    return {
        "images": total,
        "prompts": len(prompt_ok),
        "correct_images": correct_total / total,
        "correct_prompts": sum(prompt_ok.values()) / len(prompt_ok),
        "tasks": tasks,
        "task_counts": {tag: list(counts) for tag, counts in tag_counts.items()},
        "overall": float(np.mean(np.array(list(tasks.values()), dtype=np.float64))),
    }


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
    for tag, mean in summary["tasks"].items():
        k, n = summary["task_counts"][tag]
        lines.append(f"{tag:<16} = {mean:.2%} ({k} / {n})")
    lines += ["", f"Overall score (avg. over tasks): {summary['overall']:.5f}"]
    return "\n".join(lines)
