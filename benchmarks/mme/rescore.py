"""Rescore MME from a folder of per-subtask results files, as ``calculation.py --results_dir`` does.

``rescore_folder`` returns the numbers; ``format_summary`` prints them the way the official script
does (group banner, ``total score:``, one ``\\t <subtask>  score:`` line per subtask, same float
digits), followed by a table of acc, acc+ and "other" answers per subtask.

``calculation.py`` opens exactly ``<results_dir>/<subtask>.txt`` for the 14 names and pairs lines by
position. What it would read quietly is said here:

- a ``.txt`` entry whose name is close to a subtask's (``colour.txt``, ``ocr.txt``) while that
  subtask's file is absent is refused, naming both (the subtask would be missing, or quietly left
  out with ``present_only``); a ``<subtask>.txt`` that is a folder is refused;
- other ``.txt`` files are ignored with a warning, as are pairs that repeat an image already paired
  in the file (counted again, as the official script counts them) and pairs whose two lines name
  different images (paired anyway, by position); ``strict`` refuses each of these instead.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Iterable

from benchmarks.mme.data import COGNITION, PERCEPTION, SUBTASKS, select_subtasks
from benchmarks.mme.results_io import ResultRow, answer_labels, read_results_file
from benchmarks.mme.rules import SubtaskScore, score_subtask, summarize_subtasks
from harness.errors import InputError


def rescore_folder(results_dir: str | Path, subtasks: str | Iterable[str] | None = None,
                   present_only: bool = False, strict: bool = False) -> dict:
    """Score ``<results_dir>/<subtask>.txt`` for each subtask (all 14 unless ``subtasks`` is given).

    A missing file is an error naming every missing subtask, unless ``present_only``: then only the
    files present are scored and the summary's ``present``/``missing`` lists say which.
    Returns ``{"overall", "perception", "cognition", "subtasks", "acc", "acc_plus", "other",
    "details", "present", "missing", "results_dir", "warnings"}``; a group with no scored subtask
    is None. ``strict`` refuses what is otherwise scored with a warning (see the module notes).
    """
    folder = Path(results_dir)
    if not folder.is_dir():
        raise InputError("MME results folder not found", folder)
    names = select_subtasks(subtasks)
    for name in names:
        entry = folder / f"{name}.txt"
        if entry.exists() and not entry.is_file():
            raise InputError(f"{name}.txt is a folder, not a results file: calculation.py would fail to open it",
                             entry)
    missing = [name for name in names if not (folder / f"{name}.txt").is_file()]
    warnings = _stray_files(folder, missing, strict)
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
        rows = read_results_file(path)
        warnings += _pair_oddities(path, rows, strict)
        gts, labels = answer_labels(rows)
        scores[name] = score_subtask(gts, labels)
    summary = summarize_subtasks(scores)
    summary.update(present=present, missing=missing, results_dir=str(folder), warnings=warnings)
    return summary


def _near(stem: str) -> str | None:
    """The subtask a file stem most likely means (any case, or a close spelling), if any."""
    lowered = {name.lower(): name for name in SUBTASKS}
    if stem.lower() in lowered:
        return lowered[stem.lower()]
    close = difflib.get_close_matches(stem.lower(), list(lowered), n=1, cutoff=0.75)
    return lowered[close[0]] if close else None


def _stray_files(folder: Path, missing: list[str], strict: bool) -> list[str]:
    """Refuse a near-miss name standing in for a missing subtask; warn about other .txt entries."""
    warnings = []
    for entry in sorted(folder.iterdir()):
        if not entry.name.lower().endswith(".txt") or entry.stem in SUBTASKS:
            continue
        near = _near(entry.stem)
        kind = "folder" if entry.is_dir() else "file"
        if near in missing:
            raise InputError(f"{entry.name} is not an MME subtask file name (did you mean {near}.txt? "
                             f"calculation.py reads only the 14 exact names, so {near} would be "
                             "missing)", entry)
        message = (f"this {kind} is not an MME subtask results file" + (f" (close to {near}.txt)" if near else "")
                   + ": ignored, as calculation.py ignores it; --strict refuses it")
        if strict:
            raise InputError(message, entry)
        warnings.append(f"{entry}: {message}")
    return warnings


def _pair_oddities(path: Path, rows: list[ResultRow], strict: bool) -> list[str]:
    """Pairs that repeat an image, or whose two lines name different images (official: counted
    as they come, by position): one warning per file, naming the first; ``strict`` refuses."""
    found: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for first, second in zip(rows[::2], rows[1::2]):
        if first.image != second.image:
            found.append((first.line, f"lines {first.line} and {second.line} name different images "
                                      f"({first.image!r}, {second.image!r}); calculation.py pairs them anyway, "
                                      "by position, for acc+"))
        elif first.image in seen:
            found.append((first.line, f"image {first.image!r} is listed twice (lines {seen[first.image]} and "
                                      f"{first.line}); calculation.py counts it twice, and so does this score"))
        else:
            seen[first.image] = first.line
    if not found:
        return []
    line, message = found[0]
    if strict:
        raise InputError(f"{message} (--strict)", path, line)
    more = f" ({len(found) - 1} more such pair(s) in this file)" if len(found) > 1 else ""
    return [f"{path}:{line}: {message}{more}; --strict refuses it"]


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
