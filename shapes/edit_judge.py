"""``shapes-edit-judge``: a pixel-only stand-in for ImgEdit's GPT judge on shapes-world edits.

It is a ``ChatJudge`` (kind ``"chat"``), so the ImgEdit benchmark calls it exactly as it calls
GPT-4o: one prompt per item holding the filled judge prompt and two images, original then edited.
From the prompt it takes the instruction (after "instruction:" or "instruction is :", else anywhere,
parsed with ``shapes.edits``' templates) and the three dimension names (the
"<Name>: A number from 1 to 5" lines of the requested reply format; else the edit type's
dimensions). It reads both images with the shapes detector and replies in ImgEdit's format: a
"Brief reasoning: ..." line, then three "<Name>: <n>" lines, n in 1..5:

1. compliance -- 5 if the requested change is there, 3 partly (right shape, wrong colour...),
   2 wrong, 1 not done; a two-part (compose) edit gets the floor of the mean of its parts.
2. preservation -- 5 less one for each object the instruction does not touch that changed (moved,
   resized, recoloured) or vanished, each object that appeared unasked, and an unasked background
   change (at least 1).
3. quality -- 5 less one for each edited-image object that is not cleanly formed (detector score
   below 0.9), a missing background, or a size different from the original's (at least 1).

Scores 2 and 3 are capped at score 1, as ImgEdit's prompts require. A prompt without two images or
without an instruction it can read gets an error reply (a judge failure), never an exception.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Sequence

from harness.judges.base import ChatPrompt, ChatReply, Detection
from harness.registry import register
from shapes.detector import ShapesDetector
from shapes.edits import DIMENSIONS, Edit, edit_type_of, parse_instruction
from shapes.vqa_judge import Observation, observe

VERSION = "1"
NEAR = 0.05  # centre distance (image widths) within which an object has not moved
SIZE_TOLERANCE = 0.2  # relative width change within which an object kept its size
CLEAN_SCORE = 0.9  # detector score of a well-formed shape (clean renders score > 0.99)
_MARKER = re.compile(r"instruction(?: is)?\s*:\s*", re.IGNORECASE)
_DIMENSION_LINE = re.compile(r"^\s*(.+?)\s*:\s*A number from 1 to 5", re.IGNORECASE | re.MULTILINE)


@dataclass
class _Check:
    """The verdict on one elementary edit."""

    score: int
    note: str
    touched: set[int] = field(default_factory=set)  # objects of the original the edit may change
    produced: set[int] = field(default_factory=set)  # objects of the edited image it explains
    changes_background: bool = False


def _distance(before: Observation, a: Detection, after: Observation, b: Detection) -> float:
    (ax, ay), (bx, by) = before.centre(a), after.centre(b)
    return math.hypot(ax - bx, ay - by)


def _same(before: Observation, a: Detection, after: Observation, b: Detection) -> bool:
    """Same shape and colour, not moved, about the same size."""
    ratio = after.width_of(b) / max(before.width_of(a), 1e-6)
    return (a.label == b.label and a.color == b.color and _distance(before, a, after, b) <= NEAR
            and abs(ratio - 1) <= SIZE_TOLERANCE)


def _named(edit: Edit) -> str:
    return f"{edit.color} {edit.shape}"


def _targets(view: Observation, edit: Edit) -> list[int]:
    exact = [i for i, d in enumerate(view.objects) if d.label == edit.shape and d.color == edit.color]
    return exact or [i for i, d in enumerate(view.objects) if d.label == edit.shape]


def _near(before: Observation, i: int, after: Observation) -> list[int]:
    return [j for j, d in enumerate(after.objects)
            if _distance(before, before.objects[i], after, d) <= NEAR]


def check_edit(edit: Edit, before: Observation, after: Observation) -> _Check:
    """Compliance of one elementary edit, and which objects it accounts for."""
    if edit.kind == "add":
        new = [j for j, d in enumerate(after.objects)
               if not any(_same(before, b, after, d) for b in before.objects)]
        for score, wanted in ((5, lambda d: d.label == edit.new_shape and d.color == edit.new_color),
                              (3, lambda d: d.label == edit.new_shape), (2, lambda d: True)):
            hits = [j for j in new if wanted(after.objects[j])]
            if hits:
                return _Check(score, f"added {after.objects[hits[0]].color} {after.objects[hits[0]].label}",
                              produced={hits[0]})
        return _Check(1, "nothing added")
    if edit.kind == "background":
        if after.background == edit.background:
            return _Check(5, "background changed as asked", changes_background=True)
        changed = after.background != before.background
        return _Check(2 if changed else 1, "wrong background" if changed else "background unchanged",
                      changes_background=True)
    targets = _targets(before, edit)
    if not targets:
        return _Check(1, f"no {_named(edit)} in the original")
    if edit.kind == "remove":
        left = [j for j, d in enumerate(after.objects) if d.label == edit.shape and d.color == edit.color]
        return _Check(1 if left else 5, f"{_named(edit)} {'still there' if left else 'removed'}",
                      touched=set(targets))
    if edit.kind == "extract":
        kept = [j for j in range(len(after.objects)) for i in targets
                if _same(before, before.objects[i], after, after.objects[j])]
        others = len(after.objects) - len(kept)
        score = 1 if not kept else 5 if others == 0 else 3 if others < len(before.objects) - len(targets) else 1
        return _Check(score, f"{_named(edit)} {'kept' if kept else 'lost'}, {others} other(s) left",
                      touched=set(range(len(before.objects))), produced=set(kept))
    score, note, produced = 5, "", set()
    for i in targets:  # replace / adjust: judged at the target's place
        near = _near(before, i, after)
        new_shape = edit.new_shape if edit.kind == "replace" else edit.shape
        exact = [j for j in near if after.objects[j].label == new_shape
                 and after.objects[j].color == edit.new_color]
        unchanged = [j for j in near if _same(before, before.objects[i], after, after.objects[j])]
        partial = [j for j in near if after.objects[j].label == new_shape
                   or after.objects[j].color == edit.new_color]
        if exact:
            verdict, hit = (5, "done"), exact[:1]
        elif unchanged:
            verdict, hit = (1, "unchanged"), []
        elif partial:
            verdict, hit = (3, "partly done"), partial[:1]
        else:
            verdict, hit = (2, "gone"), []
        produced |= set(hit)
        if verdict[0] <= score:
            score, note = verdict[0], f"{edit.kind} of {_named(edit)}: {verdict[1]}"
    return _Check(score, note, touched=set(targets), produced=produced)


def score_edit(edits: Sequence[Edit], before: Observation, after: Observation,
               same_size: bool = True) -> tuple[tuple[int, int, int], str]:
    """The three scores and a brief reasoning for ``edits`` turning ``before`` into ``after``."""
    checks = [check_edit(edit, before, after) for edit in edits]
    compliance = max(1, min(5, math.floor(sum(c.score for c in checks) / len(checks))))
    touched = set().union(*(c.touched for c in checks))
    produced = set().union(*(c.produced for c in checks))
    problems, used = 0, set(produced)
    for i, det in enumerate(before.objects):
        if i in touched:
            continue
        match = next((j for j, d in enumerate(after.objects)
                      if j not in used and _same(before, det, after, d)), None)
        if match is None:  # changed: moved, resized or recoloured (one problem, not two) or gone
            problems += 1
            match = next((j for j, d in enumerate(after.objects) if j not in used and d.label == det.label
                          and (d.color == det.color or _distance(before, det, after, d) <= NEAR)), None)
        if match is not None:
            used.add(match)
    # a touched object left as it was is the compliance score's business, not an unasked change
    used |= {j for j, d in enumerate(after.objects)
             if any(_same(before, before.objects[i], after, d) for i in touched)}
    problems += len(set(range(len(after.objects))) - used)  # appeared without being asked
    if not any(c.changes_background for c in checks) and after.background != before.background:
        problems += 1
    preservation = max(1, 5 - problems)
    flaws = sum(d.score < CLEAN_SCORE for d in after.objects) + (after.background is None) + (not same_size)
    quality = max(1, 5 - flaws)
    rest = "rest unchanged" if problems == 0 else f"{problems} unasked change(s)"
    reasoning = "; ".join([*(c.note for c in checks), rest]) + "."
    return (compliance, min(preservation, compliance), min(quality, compliance)), reasoning


def find_dimensions(text: str, edits: Sequence[Edit]) -> tuple[str, ...]:
    """The prompt's three "<Name>: A number from 1 to 5" names, else the edit type's."""
    names = tuple(dict.fromkeys(m.group(1).strip() for m in _DIMENSION_LINE.finditer(text)))
    return names if len(names) == 3 else DIMENSIONS[edit_type_of(edits)]


def find_instruction(text: str) -> list[Edit]:
    markers = list(_MARKER.finditer(text))
    if markers:
        edits = parse_instruction(text[markers[-1].end():])
        if edits:
            return edits
    return parse_instruction(text)


@register("chat", "shapes-edit-judge")
class ShapesEditJudge:
    """Scores shapes-world edits from pixels and replies in ImgEdit's judge format. ``profile``:
    the world profile whose shapes and colours the detector chooses among (default ``full``)."""

    judge_id = "shapes-edit-judge-v1"
    version = VERSION

    def __init__(self, profile: str = "full") -> None:
        self.detector = ShapesDetector(profile=profile)
        self.usage: dict = {"requests": 0, "failures": 0}
        self.params: dict = {"profile": profile} if profile != "full" else {}

    def ask_one(self, prompt: ChatPrompt) -> ChatReply:
        if len(prompt.images) != 2:
            return ChatReply(None, error=f"expected 2 images (original, edited), got {len(prompt.images)}")
        edits = find_instruction(prompt.text)
        if not edits:
            return ChatReply(None, error="no shapes-world edit instruction found in the prompt")
        try:
            original, edited = (image.convert("RGB") for image in prompt.images)
            before, after = observe(original, self.detector), observe(edited, self.detector)
        except Exception as exc:  # an unreadable image is this item's failure, not the run's
            return ChatReply(None, error=f"cannot read the images: {exc}")
        scores, reasoning = score_edit(edits, before, after, original.size == edited.size)
        names = find_dimensions(prompt.text, edits)
        lines = [f"Brief reasoning: {reasoning}", *(f"{n}: {s}" for n, s in zip(names, scores))]
        return ChatReply("\n".join(lines), model=self.judge_id)

    def ask(self, prompts: Sequence[ChatPrompt]) -> list[ChatReply]:
        replies = [self.ask_one(prompt) for prompt in prompts]
        self.usage["requests"] += len(replies)
        self.usage["failures"] += sum(r.error is not None for r in replies)
        return replies
