"""Rescore MME from a folder of per-subtask results files, as ``calculation.py --results_dir`` does.

``rescore_folder`` returns the numbers; ``format_summary`` prints them the way the official script
does (group banner, ``total score:``, one ``\\t <subtask>  score:`` line per subtask, same float
digits), followed by a table of acc, acc+ and "other" answers per subtask.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from benchmarks.mme.data import COGNITION, PERCEPTION, select_subtasks
from benchmarks.mme.results_io import answer_labels, read_results_file
from benchmarks.mme.rules import SubtaskScore, score_subtask, summarize_subtasks
from harness.errors import InputError


def rescore_folder(results_dir: str | Path, subtasks: str | Iterable[str] | None = None,
                   present_only: bool = False) -> dict:
    """Score ``<results_dir>/<subtask>.txt`` for each subtask (all 14 unless ``subtasks`` is given).

    A missing file is an error naming every missing subtask, unless ``present_only``: then only the
    files present are scored and the summary's ``present``/``missing`` lists say which.
    Returns ``{"overall", "perception", "cognition", "subtasks", "acc", "acc_plus", "other",
    "details", "present", "missing", "results_dir"}``; a group with no scored subtask is None.
    """
    folder = Path(results_dir)
    if not folder.is_dir():
        raise InputError("MME results folder not found", folder)
    names = select_subtasks(subtasks)
    missing = [name for name in names if not (folder / f"{name}.txt").is_file()]
    if missing and not present_only:
        raise InputError(f"missing results file(s) for {len(missing)} subtask(s): "
                         f"{', '.join(f'{name}.txt' for name in missing)} (score only the files "
                         "present with the present-only option)", folder)
    present = [name for name in names if name not in missing]
    if not present:
        raise InputError(f"none of the subtask files ({', '.join(f'{n}.txt' for n in names)}) is here", folder)
    scores: dict[str, SubtaskScore] = {}
    for name in present:
        path = folder / f"{name}.txt"
        gts, labels = answer_labels(read_results_file(path))
        scores[name] = score_subtask(gts, labels)
    summary = summarize_subtasks(scores)
    summary.update(present=present, missing=missing, results_dir=str(folder))
    return summary


def format_summary(summary: dict) -> str:
    """The official printout (for the groups that have scored subtasks), then a detail table."""
    out = []
    if summary.get("missing"):
        out.append(f"scored only the subtasks present: {', '.join(summary['present'])}")
        out.append(f"missing: {', '.join(summary['missing'])}")
        out.append("")
    scores = summary["subtasks"]
    for title, group in (("Perception", PERCEPTION), ("Cognition", COGNITION)):
        names = [name for name in group if name in scores]
        if not names:
            continue
        # print("=" * 11, title, "=" * 11); print("total score:", total, "\n"); ...; print("\n")
        out.append(f"=========== {title} ===========")
        out.append(f"total score: {summary[title.lower()]} \n")
        out += [f"\t {name}  score: {scores[name]}" for name in names]
        out.append("\n")
    width = max(len(name) for name in scores)
    out.append(f"{'subtask':<{width}}  {'acc':>7}  {'acc+':>7}  {'score':>7}  {'other':>5}")
    for name, score in scores.items():
        out.append(f"{name:<{width}}  {summary['acc'][name] * 100:7.2f}  {summary['acc_plus'][name] * 100:7.2f}"
                   f"  {score:7.2f}  {summary['other'][name]:5d}")
    if summary.get("overall") is not None and summary.get("perception") is not None \
            and summary.get("cognition") is not None:
        out.append(f"perception + cognition: {summary['overall']:.2f}")
    return "\n".join(out) + "\n"
