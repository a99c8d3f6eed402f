"""What a chain of shapes-world edits should leave, and how close an edited image comes to it.

Shared by the GEdit-Bench and Complex-Edit stand-in judges. Both read the original and the edited
image with the shapes detector (pixels only). The edits (``shapes.edits.Edit``, parsed from the
instruction) are applied in order to what the original shows, as the shapes editor applies them:
a target is the object with the named shape and colour, else any object of that shape; later edits
see the result of earlier ones ("Add a blue star. Then change the color of the blue star to red."
expects a red star). The expectation is a list of *units*:

- each object of the original: unchanged, changed (shape, colour; same place and size) or removed;
- each added object (shape and colour; anywhere);
- the background.

A unit an edit touched is *asked*; the rest must stay as they were. Matching: kept objects of the
original first, each to a detection near its place (centre within ``NEAR`` of the image width)
with the expected shape and colour; then added objects to unmatched detections of their shape and
colour. Scores on a 0-10 scale:

- compliance = 10 x (asked units right) / (asked units), rounded;
- preservation = 10 - 2 x (unasked units not as they were, detections left unmatched, an unasked
  background change), at least 0;
- quality = 10 - 2 x (shapes not cleanly formed: detector score below ``CLEAN_SCORE``) - 2 if the
  size differs from the original's.

An edited image that is not a picture of clean shapes (no shapes-world background can be read, or
more than ``STRAY_LIMIT`` of its pixels outside the detected shapes are strongly coloured: the
blobs an untrained model draws) is unrelated to the input: compliance 0, preservation 0, quality 1.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from PIL import Image

from harness.judges.base import ChatPrompt, ChatReply, Detection
from shapes.detector import ShapesDetector
from shapes.edits import Edit
from shapes.vqa_judge import Observation, observe

NEAR = 0.06  # centre distance (image widths) within which an object has not moved
SIZE_TOLERANCE = 0.25  # relative width change within which an object kept its size
CLEAN_SCORE = 0.9  # detector score of a well-formed shape (clean renders score > 0.99)
SATURATED = 70  # max - min of a pixel's RGB above which it is strongly coloured (backgrounds: < 45)
STRAY_LIMIT = 0.02  # share of strongly coloured pixels outside the shapes a clean picture stays under
BOX_MARGIN = 3  # pixels around a detected shape that belong to it (edges, JPEG halos)


def stray_fraction(image: Image.Image, view: Observation) -> float:
    """Share of pixels outside the detected shapes' boxes that are strongly coloured: 0 for
    shapes-world pictures (JPEG-encoded ones too), above 0.1 for an untrained model's noise."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    mask = (pixels.max(axis=2) - pixels.min(axis=2)) > SATURATED
    for det in view.objects:
        x1, y1, x2, y2 = (int(round(v)) for v in det.box)
        mask[max(0, y1 - BOX_MARGIN):y2 + BOX_MARGIN, max(0, x1 - BOX_MARGIN):x2 + BOX_MARGIN] = False
    return float(mask.mean())


def is_noise(image: Image.Image, view: Observation) -> bool:
    """Not a picture of clean shapes: no background to read, or stray coloured pixels."""
    return view.background is None or stray_fraction(image, view) > STRAY_LIMIT


@dataclass
class Unit:
    """One thing the edits leave: an object of the original (``source`` its index), an added
    object (``source`` None) or, with ``background`` set, the background."""

    shape: str | None
    color: str | None
    source: int | None = None
    removed: bool = False
    asked: bool = False
    background: str | None = None


@dataclass
class Outcome:
    compliance: int
    preservation: int
    quality: int
    notes: list[str] = field(default_factory=list)

    @property
    def reasoning(self) -> str:
        return "; ".join(self.notes) or "as asked"


def _targets(units: Sequence[Unit], edit: Edit) -> list[Unit]:
    live = [u for u in units if u.background is None and not u.removed]
    exact = [u for u in live if u.shape == edit.shape and u.color == edit.color]
    return exact or [u for u in live if u.shape == edit.shape]


def expected_units(before: Observation, edits: Sequence[Edit]) -> list[Unit]:
    """The units ``edits`` should leave, starting from what ``before`` shows."""
    units = [Unit(d.label, d.color, source=i) for i, d in enumerate(before.objects)]
    background = Unit(None, None, background=before.background or "")
    for edit in edits:
        if edit.kind == "add":
            units.append(Unit(edit.new_shape, edit.new_color, asked=True))
        elif edit.kind == "background":
            background.background, background.asked = edit.background, True
        elif edit.kind == "extract":
            keep = _targets(units, edit)
            for unit in units:
                if unit.background is None and not unit.removed:
                    unit.asked = True
                    unit.removed = unit.removed or all(unit is not kept for kept in keep)
        else:
            for unit in _targets(units, edit):
                unit.asked = True
                if edit.kind == "remove":
                    unit.removed = True
                elif edit.kind == "adjust":
                    unit.color = edit.new_color
                elif edit.kind == "replace":
                    unit.shape, unit.color = edit.new_shape, edit.new_color
    return units + [background]


def _distance(before: Observation, a: Detection, after: Observation, b: Detection) -> float:
    (ax, ay), (bx, by) = before.centre(a), after.centre(b)
    return math.hypot(ax - bx, ay - by)


def judge_outcome(edits: Sequence[Edit], before: Observation, after: Observation, same_size: bool = True,
                  noise: bool = False) -> Outcome:
    """The scores of ``after`` as the result of ``edits`` on ``before``; ``noise`` (see
    :func:`is_noise`) gives 0, 0, 1."""
    if noise:
        return Outcome(0, 0, 1, ["not a picture of clean shapes (noise): unrelated to the input"])
    units = expected_units(before, edits)
    used: set[int] = set()
    right: dict[int, bool] = {}
    notes: list[str] = []
    for n, unit in enumerate(units):  # objects of the original, at their place
        if unit.source is None or unit.background is not None:
            continue
        original = before.objects[unit.source]
        near = [j for j, d in enumerate(after.objects) if j not in used
                and _distance(before, original, after, d) <= NEAR]
        if unit.removed:
            right[n] = not any(after.objects[j].label == original.label for j in near)
            continue
        match = next((j for j in near if after.objects[j].label == unit.shape and after.objects[j].color == unit.color
                      and (unit.shape != original.label  # a new shape has another extent: no size check
                           or abs(after.width_of(after.objects[j]) / max(before.width_of(original), 1e-6) - 1)
                           <= SIZE_TOLERANCE)), None)
        right[n] = match is not None
        if match is not None:
            used.add(match)
    for n, unit in enumerate(units):  # added objects, anywhere (one added and removed again: absent)
        if unit.source is None and unit.background is None:
            match = next((j for j, d in enumerate(after.objects) if j not in used
                          and d.label == unit.shape and d.color == unit.color), None)
            right[n] = (match is None) if unit.removed else (match is not None)
            if match is not None and not unit.removed:
                used.add(match)
    background = units[-1]
    right[len(units) - 1] = after.background == background.background
    asked = [n for n, unit in enumerate(units) if unit.asked]
    for n in asked:
        if not right[n]:
            unit = units[n]
            notes.append(f"background not {background.background}" if unit.background is not None else
                         f"{unit.color} {unit.shape} {'still there' if unit.removed else 'not as asked'}")
    compliance = round(10 * sum(right[n] for n in asked) / len(asked)) if asked else 10
    problems = sum(not right[n] for n, unit in enumerate(units) if not unit.asked)
    problems += len(set(range(len(after.objects))) - used)
    if problems:
        notes.append(f"{problems} unasked change(s)")
    preservation = max(0, 10 - 2 * problems)
    flaws = sum(d.score < CLEAN_SCORE for d in after.objects) + (not same_size)
    return Outcome(compliance, preservation, max(0, 10 - 2 * flaws), notes)


class PixelEditJudge:
    """The base of the shapes world's edit judges that reply in another benchmark's format (GEdit,
    Complex-Edit): the detector, a memo of what each image shows (a judge sees the same edited
    image in several calls), and ``ask`` over ``ask_one`` with the usage counts. ``profile``: the
    world profile whose shapes and colours the detector chooses among (default ``full``)."""

    def __init__(self, profile: str = "full") -> None:
        self.detector = ShapesDetector(profile=profile)
        self.params: dict = {"profile": self.detector.profile} if self.detector.profile != "full" else {}
        self.usage: dict = {"requests": 0, "failures": 0}
        self._views: dict[str, Observation] = {}

    def _observe(self, image: Image.Image) -> Observation:
        key = hashlib.sha256(image.tobytes() + repr(image.size).encode()).hexdigest()
        if key not in self._views:
            if len(self._views) > 256:  # a small memo is enough: the calls of one item come together
                self._views.clear()
            self._views[key] = observe(image.convert("RGB"), self.detector)
        return self._views[key]

    def ask_one(self, prompt: ChatPrompt) -> ChatReply:
        raise NotImplementedError

    def ask(self, prompts: Sequence[ChatPrompt]) -> list[ChatReply]:
        replies = [self.ask_one(prompt) for prompt in prompts]
        self.usage["requests"] += len(replies)
        self.usage["failures"] += sum(r.error is not None for r in replies)
        return replies

