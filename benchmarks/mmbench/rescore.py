"""Rescore an MMBench prediction file (VLMEvalKit's, LLaVA's submission file, or ours).

Reads ``.tsv``, ``.csv`` or ``.xlsx`` with one row per pass: ``index``, ``question``, the option
columns, ``prediction`` and, in VLMEvalKit's files, ``answer``, ``category``, ``l2-category`` and
``split``. As upstream's ``evaluate``: column names are lower-cased (single capital letters kept),
rows are sorted by ``index``, a missing prediction cell is the text ``"nan"``, options come from
the row itself, and the ground truth from the dataset when one is given.

LLaVA's submission file (``convert_mmbench_for_submission.py``) drops ``hint``, ``category``,
``l2-category``, ``source``, ``image`` and ``comment``. Pass ``data=`` (the MMBench TSV it came
from) to join answers and categories by ``index``; without it, the file's own ``answer`` column is
used and a file without category columns gets the overall number only (empty L2/L3).
Exact matching unless a chat judge is passed; ``seed`` seeds the fallback choices exactly as a
harness run with that run seed does.

Passes are grouped into questions by the file's ``g_index`` column when it has one (VLMEvalKit's
``CIRCULAR`` tool writes it, with a copy offset of 1e7 or more once indices reach 1e6), else by
``index mod 1e6``, as ``mcq_circular_eval`` does. Cells are read with pandas' defaults, as upstream
(``cells="text"`` is the lenient reading, see ``tables.py``).

Oddities upstream accepts are scored as upstream scores them, each with a warning in
``summary["warnings"]``; ``strict=True`` refuses them instead (``InputError`` naming file and line):
an ``index`` given more than once (every row is a pass of its question; a repeated main row counts
its question again, as upstream's main-row table holds it twice) and passes that belong to no
question (no main row: upstream ignores them). A file in which no question can be scored (no main
row at all) is refused: upstream would report nothing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from benchmarks.mmbench.circular import PassOutcome, aggregate
from benchmarks.mmbench.data import option_letters
from benchmarks.mmbench.extract import DEFAULT_RULE_VERSION, rules_for
from benchmarks.mmbench.matching import ChoiceItem, check_fallback_mode, extract_choices
from benchmarks.mmbench.tables import Table, cell, read_table, require_columns
from harness.errors import InputError
from harness.judges.base import ChatJudge
from harness.seeds import sample_seed

BENCHMARK_NAME = "mmbench"
META_COLUMNS = ("answer", "category", "l2-category", "split")


def _lower_columns(table: Table) -> None:
    table.frame.columns = [c if len(c) == 1 and c.isupper() else c.lower() for c in table.columns]


def _dataset_meta(data: str | Path, cells: str) -> dict[int, dict[str, str | None]]:
    meta = read_table(data, cells)
    require_columns(meta, ("index", "answer"))
    meta.check_complete()
    rows = {}
    for position, record in enumerate(meta.frame.to_dict("records")):
        rows[meta.parse_index(record["index"], position)] = {c: cell(record.get(c)) for c in META_COLUMNS
                                                              if c in meta.columns}
    return rows


def rescore_predictions(path: str | Path, judge: ChatJudge | None = None,
                        rule_version: str = DEFAULT_RULE_VERSION, judge_fallback: str = "seeded",
                        seed: int = 0, data: str | Path | None = None, strict: bool = False,
                        cells: str = "pandas") -> dict[str, Any]:
    """CircularEval scores of a prediction file: ``{"overall", "l2", "l3", "single_pass",
    ["splits"], "counts", "rule_version", "judge", "categories", "cell_reading", "warnings"}``
    (0-1 scale). ``strict`` refuses what upstream accepts with a warning (see the module notes)."""
    rules = rules_for(rule_version)
    check_fallback_mode(judge_fallback)
    table = read_table(path, cells)
    _lower_columns(table)
    require_columns(table, ("index", "question", "prediction"))
    meta = _dataset_meta(data, cells) if data is not None else None
    if meta is None and "answer" not in table.columns:
        raise InputError("no 'answer' column: pass data= (the MMBench TSV) to take answers from it",
                         table.path, 1)
    if "hit" in table.columns:
        raise InputError("this is a result file (main rows with 'hit'), not a predictions file: rescore "
                         "the predictions file, which holds every circular pass", table.path, 1)
    table.check_complete()
    letters = option_letters(table.columns)
    explicit = "g_index" in table.columns
    warnings: list[str] = []
    rows, seen = [], {}
    repeats: dict[int, list[int]] = {}
    for position, record in enumerate(table.frame.to_dict("records")):
        index = table.parse_index(record["index"], position)
        g_index = table.parse_index(record["g_index"], position, "g_index") if explicit else None
        if index in seen:
            if strict:
                raise table.error(f"index {index} appears twice (first at line {table.line(seen[index])}); "
                                  "without --strict it is scored as upstream scores it, with a warning", position)
            repeats.setdefault(index, [table.line(seen[index])]).append(table.line(position))
        seen.setdefault(index, position)
        known = {c: cell(record.get(c)) for c in META_COLUMNS if c in table.columns}
        if meta is not None:
            if index not in meta:
                raise table.error(f"index {index} is not in the dataset {data}", position)
            known = {**meta[index], **{c: v for c, v in known.items() if c != "answer"}}
        if known.get("answer") is None:  # a test split: answers are hidden, only the server scores it
            raise table.error(f"index {index} has no answer (a test split? its answers are hidden; "
                              "only the official server scores it)", position)
        rows.append((index, g_index, record, known, position))
    if repeats:
        shown = "; ".join(f"index {index} on lines {', '.join(map(str, lines))}"
                          for index, lines in list(repeats.items())[:3])
        more = f" (and {len(repeats) - 3} more)" if len(repeats) > 3 else ""
        warnings.append(f"{table.path}: {len(repeats)} index value(s) appear more than once: {shown}{more}; "
                        "scored as upstream does (each row is a pass of its question, a repeated main row "
                        "counts its question again); --strict refuses such a file")
    rows.sort(key=lambda row: row[0])  # stable, as upstream's sort_values(by="index")
    items = [_item(record, letters, seed, index) for index, _, record, _, _ in rows]
    choices = extract_choices(items, (lambda: judge) if judge is not None else None, rules, judge_fallback)
    passes = [PassOutcome(index=index, split=known.get("split") or "none", category=known.get("category"),
                          l2_category=known.get("l2-category"),
                          correct=None if choice.judge_failed else choice.letter == known.get("answer"),
                          fallback=choice.method == "fallback", g_index=g_index)
              for (index, g_index, _, known, _), choice in zip(rows, choices)]
    mains = {p.g_index for p in passes if p.index == p.g_index}
    orphans = [(index, position) for (index, _, _, _, position), p in zip(rows, passes) if p.g_index not in mains]
    grouping = "its g_index column" if explicit else "index mod 1,000,000"
    if not mains:
        raise InputError(f"no main row: no row's index equals its question's g_index ({grouping}), so no "
                         f"question can be scored (upstream would report nothing)", table.path)
    if orphans:
        first = min(position for _, position in orphans)
        message = (f"{len(orphans)} row(s) belong to no question (their g_index, by {grouping}, names no main "
                   f"row; first at line {table.line(first)})")
        if strict:
            raise table.error(message, first)
        warnings.append(f"{table.path}: {message}: ignored, as upstream ignores them; --strict refuses such a file")
    scores, counts = aggregate(passes)
    has_categories = any(p.category is not None or p.l2_category is not None for p in passes)
    return {**scores, "counts": counts, "rule_version": rules.name,
            "judge": judge.judge_id if judge is not None else "exact_matching", "categories": has_categories,
            "cell_reading": cells, "grouping": "g_index" if explicit else "index mod 1e6", "warnings": warnings}


def _item(record: Mapping[str, Any], letters: tuple[str, ...], seed: int, index: int) -> ChoiceItem:
    options = {letter: text for letter in letters if (text := cell(record.get(letter))) is not None}
    prediction = cell(record["prediction"])
    return ChoiceItem(question=cell(record["question"]) or "nan", options=options,
                      prediction="nan" if prediction is None else prediction,
                      seed=sample_seed(seed, BENCHMARK_NAME, str(index)))


def format_summary(summary: Mapping[str, Any]) -> str:
    """A short text report of :func:`rescore_predictions`' result (or a run's scores + counts)."""
    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    counts = summary.get("counts", {})
    lines = [f"MMBench CircularEval, 0-1 scale (papers print x100); rules {summary.get('rule_version', '?')}, "
             f"extractor {summary.get('judge', '?')}",
             f"questions {counts.get('questions', 0)}, scored {counts.get('scored', 0)}, "
             f"judge failures {counts.get('judge_failed', 0)}, "
             f"random fallbacks {counts.get('random_fallbacks', 0)} (passes)",
             f"Overall      {pct(summary.get('overall'))}",
             f"Single pass  {pct(summary.get('single_pass'))}"]
    if summary.get("cell_reading") == "text":
        lines.insert(1, "cells read as text (--lenient-cells): not upstream's reading (pandas' default types)")
    for title, key in (("L2", "l2"), ("L3", "l3")):
        for name, value in summary.get(key, {}).items():
            lines.append(f"{title} {name:<44} {pct(value)}")
    for split, scores in summary.get("splits", {}).items():
        lines.append(f"split {split:<41} {pct(scores['overall'])}")
    return "\n".join(lines)
