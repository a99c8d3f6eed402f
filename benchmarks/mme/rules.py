"""MME's official scoring rules (``eval_tool/calculation.py``), without scikit-learn.

- ``parse_answer``: the official ``parse_pred_ans``, applied to the answer field as it appears in a
  results file (with its trailing newline): lower-case; exactly "yes"/"no" -> that label; else the
  first 4 characters containing "yes" -> yes, else containing "no" -> no, else "other".
- per subtask: acc = correct questions / questions (sklearn ``accuracy_score`` on labels
  yes=1/no=0/other=-1 gives exactly this quotient); acc+ = consecutive line pairs with both
  questions correct / pairs; score = acc*100 + acc_plus*100, summed in that order as the official
  loop does, so the floats (and their printed digits) are identical.
- perception / cognition = sum of the group's subtask scores in the official order, from 0.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

from benchmarks.mme.data import COGNITION, PERCEPTION, SUBTASKS

LABELS = ("yes", "no", "other")


def parse_answer(answer_field: str) -> str:
    """The official label of an answer: "yes", "no" or "other".

    ``answer_field`` is the fourth field of a results line as the official script reads it, i.e.
    usually with the trailing newline; that newline never changes the label (it cannot complete
    "yes" or "no"), but it is why the exact-match branch rarely fires.
    """
    text = answer_field.lower()
    if text in ("yes", "no"):
        return text
    prefix = text[:4]
    if "yes" in prefix:
        return "yes"
    if "no" in prefix:
        return "no"
    return "other"


@dataclass(frozen=True)
class SubtaskScore:
    """The official numbers of one subtask, plus the unused confusion counts."""

    questions: int
    images: int
    correct: int
    correct_pairs: int
    other: int
    acc: float
    acc_plus: float
    score: float
    tp: int  # gt yes, answer yes
    fn: int  # gt yes, answer no
    tn: int  # gt no, answer no
    fp: int  # gt no, answer yes

    def to_dict(self) -> dict:
        return asdict(self)


def score_subtask(gts: Sequence[str], labels: Sequence[str]) -> SubtaskScore:
    """Score one subtask from its ground truths and parsed labels, in file order.

    Consecutive lines form an image's pair (image names are not looked at, as in the official).
    """
    if len(gts) != len(labels):
        raise ValueError(f"{len(gts)} ground truths but {len(labels)} answers")
    if not gts or len(gts) % 2:
        raise ValueError(f"a subtask needs a positive, even number of questions, got {len(gts)}")
    truths = [gt.lower() for gt in gts]
    bad = [gt for gt in truths if gt not in ("yes", "no")]
    if bad:
        raise ValueError(f"ground truth must be yes or no, got {bad[0]!r}")
    unknown = [label for label in labels if label not in LABELS]
    if unknown:
        raise ValueError(f"labels must be one of {LABELS}, got {unknown[0]!r}")
    hits = [gt == label for gt, label in zip(truths, labels)]
    images = len(hits) // 2
    correct = sum(hits)
    correct_pairs = sum(hits[i] and hits[i + 1] for i in range(0, len(hits), 2))
    acc = correct / len(hits)
    acc_plus = correct_pairs / images
    score = 0
    for value in (acc, acc_plus):  # the official accumulates v*100 into an int 0, in this order
        score += value * 100

    def count(gt: str, label: str) -> int:
        return sum(t == gt and p == label for t, p in zip(truths, labels))

    return SubtaskScore(questions=len(hits), images=images, correct=correct, correct_pairs=correct_pairs,
                        other=sum(label == "other" for label in labels), acc=acc, acc_plus=acc_plus,
                        score=score, tp=count("yes", "yes"), fn=count("yes", "no"),
                        tn=count("no", "no"), fp=count("no", "yes"))


def group_total(scores: Mapping[str, SubtaskScore], group: Sequence[str]) -> float | None:
    """Sum of the group's subtask scores in the official order (None if none was scored)."""
    present = [name for name in group if name in scores]
    if not present:
        return None
    total = 0
    for name in present:
        total += scores[name].score
    return total


def summarize_subtasks(scores: Mapping[str, SubtaskScore]) -> dict:
    """Headline numbers from per-subtask scores (any subset of the 14).

    ``overall`` = perception + cognition (of the groups that have scored subtasks); the official
    script prints the two group totals only, papers sometimes quote their sum.
    """
    perception, cognition = group_total(scores, PERCEPTION), group_total(scores, COGNITION)
    totals = [value for value in (perception, cognition) if value is not None]
    ordered = [name for name in SUBTASKS if name in scores]
    return {
        "overall": (totals[0] + totals[1]) if len(totals) == 2 else (totals[0] if totals else None),
        "perception": perception,
        "cognition": cognition,
        "subtasks": {name: scores[name].score for name in ordered},
        "acc": {name: scores[name].acc for name in ordered},
        "acc_plus": {name: scores[name].acc_plus for name in ordered},
        "other": {name: scores[name].other for name in ordered},
        "details": {name: scores[name].to_dict() for name in ordered},
    }
