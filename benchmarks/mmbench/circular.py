"""CircularEval and the accuracy report (PROTOCOLS.md 5.5 and 5.6).

A question (its ``g_index``: the file's ``g_index`` column when it has one, else ``index mod 1e6``)
is a hit only if every one of its passes chose its answer. Judge failures are never wrong answers:
a question with a judge-failed pass and no pass already wrong is excluded from every mean and
counted apart (a wrong pass decides the question whatever the failed one would have said, as
upstream stops at the first wrong pass).

The report is VLMEvalKit's ``report_acc``: per ``split``, ``Overall`` = mean hit over questions
(question-weighted), then one column per L2 ability (``l2-category``, abbreviated CP, FP-S, ...)
and per L3 ability (``category``), each sorted by name, on the **0-1 scale** (papers print x100).
Splits are sorted here; upstream lists them in ``set`` order. Passes whose main row (pass 0, the row
whose index equals its g_index) is absent belong to no question and are ignored, as upstream builds
questions from main rows. A main row given twice (only a rescored file can have one) is one
question counted twice, as upstream's main-row table holds it twice; all the rows of the group,
repeats included, must be right.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

CIRCULAR_OFFSET = 1_000_000
L2_ABBREVIATIONS = {
    "coarse_perception": "CP",
    "finegrained_perception (instance-level)": "FP-S",
    "finegrained_perception (cross-instance)": "FP-C",
    "logic_reasoning": "LR",
    "relation_reasoning": "RR",
    "attribute_reasoning": "AR",
}


@dataclass(frozen=True)
class PassOutcome:
    index: int
    split: str
    category: str | None
    l2_category: str | None
    correct: bool | None  # None: the judge failed on this pass
    fallback: bool = False
    g_index: int | None = None  # the question: the file's g_index; None: index mod 1e6

    def __post_init__(self) -> None:
        if self.g_index is None:
            object.__setattr__(self, "g_index", self.index % CIRCULAR_OFFSET)


@dataclass(frozen=True)
class QuestionOutcome:
    g_index: int
    split: str
    category: str | None
    l2_category: str | None
    hit: int | None  # None: excluded (a judge failure decides it)
    passes: int
    first_pass_correct: bool | None


def question_outcomes(passes: Iterable[PassOutcome]) -> tuple[list[QuestionOutcome], int]:
    """(questions in order of first appearance, number of passes without a main row)."""
    groups: dict[int, list[PassOutcome]] = defaultdict(list)
    for outcome in passes:
        groups[outcome.g_index].append(outcome)
    questions, orphans = [], 0
    for g_index, group in groups.items():
        mains = [p for p in group if p.index == g_index]
        if not mains:
            orphans += len(group)
            continue
        results = [p.correct for p in group]
        hit = 0 if False in results else (None if None in results else 1)
        for main in mains:  # once, or once per repeat of the main row (as upstream's main-row table)
            questions.append(QuestionOutcome(g_index, main.split, main.category, main.l2_category, hit,
                                             len(group), main.correct))
    return questions, orphans


def _mean(values: Sequence[int]) -> float | None:
    # float(sum) / count: what np.mean gives for a column of 0/1 integers
    return sum(values) / len(values) if values else None


def _breakdown(questions: Sequence[QuestionOutcome]) -> dict[str, Any]:
    scored = [q for q in questions if q.hit is not None]
    l2: dict[str, list[int]] = defaultdict(list)
    l3: dict[str, list[int]] = defaultdict(list)
    for q in scored:
        if q.l2_category is not None:
            l2[q.l2_category].append(q.hit)
        if q.category is not None:
            l3[q.category].append(q.hit)
    return {
        "overall": _mean([q.hit for q in scored]),
        "l2": {L2_ABBREVIATIONS.get(name, name): _mean(l2[name]) for name in sorted(l2)},
        "l3": {name: _mean(l3[name]) for name in sorted(l3)},
    }


def aggregate(passes: Sequence[PassOutcome]) -> tuple[dict[str, Any], dict[str, int]]:
    """(scores, counts): CircularEval hits, then means on the 0-1 scale."""
    questions, orphans = question_outcomes(passes)
    scores = _breakdown(questions)
    first = [int(q.first_pass_correct) for q in questions if q.first_pass_correct is not None]
    scores["single_pass"] = _mean(first)  # upstream's "vanilla circ0" accuracy (PRINT_VANILLA=1)
    splits = sorted({q.split for q in questions})
    if len(splits) > 1:
        scores["splits"] = {split: _breakdown([q for q in questions if q.split == split]) for split in splits}
    counts = {
        "passes": len(passes),
        "questions": len(questions),
        "scored": sum(q.hit is not None for q in questions),
        "judge_failed": sum(q.hit is None for q in questions),
        "judge_failed_passes": sum(p.correct is None for p in passes),
        "random_fallbacks": sum(p.fallback for p in passes),
        "orphan_passes": orphans,
    }
    return scores, counts


def accuracy_rows(passes: Sequence[PassOutcome]) -> list[dict[str, Any]]:
    """``report_acc``'s table: one row per split; NaN where a split lacks a category."""
    questions, _ = question_outcomes(passes)
    scored = [q for q in questions if q.hit is not None]
    l2_names = sorted({q.l2_category for q in scored if q.l2_category is not None})
    l3_names = sorted({q.category for q in scored if q.category is not None})
    rows = []
    for split in sorted({q.split for q in scored}):
        in_split = [q for q in scored if q.split == split]
        row: dict[str, Any] = {"split": split, "Overall": _mean([q.hit for q in in_split])}
        for name in l2_names:
            hits = [q.hit for q in in_split if q.l2_category == name]
            row[L2_ABBREVIATIONS.get(name, name)] = _nan_if_none(_mean(hits))
        for name in l3_names:
            row[name] = _nan_if_none(_mean([q.hit for q in in_split if q.category == name]))
        rows.append(row)
    return rows


def _nan_if_none(value: float | None) -> float:
    return float("nan") if value is None else value
