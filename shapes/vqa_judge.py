"""``shapes-vqa``: a pixel-only stand-in for DPG-Bench's mPLUG VQA judge on shapes-world images.

It answers the dense questions of ``shapes.dense`` (found by the same templates that wrote
them) from what the shapes detector sees, never from a scene graph, and replies in mPLUG's style:
the lower-case words "yes" or "no". A question it cannot parse gets "unknown", which DPG's exact
match on "yes" scores as a miss, so a foreign question is visible in the detail file rather than
silently answered.

``observe`` (objects + background read from pixels) is shared with the shapes editor and the
shapes edit judge, so the three read images the same way.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image

from harness.judges.base import Detection
from harness.registry import register
from shapes.answerer_model import MIN_SCORE
from shapes.answerer_model import _background as background_words  # same reading as MME/MMBench
from shapes.dense import parse_dense_question
from shapes.detector import ShapesDetector
from shapes.understanding import BACKGROUND_COLOR_WORDS, BACKGROUND_TEXTURE_WORDS
from shapes.world import relations

VERSION = "1"
#: (colour word, texture word) -> background name; the five backgrounds differ in at least one
BACKGROUND_OF_WORDS: dict[tuple[str, str], str] = {
    (BACKGROUND_COLOR_WORDS[name], BACKGROUND_TEXTURE_WORDS[name]): name for name in BACKGROUND_COLOR_WORDS}


@dataclass
class Observation:
    """What the shapes world's pixel readers see in one image."""

    objects: list[Detection]
    width: int
    height: int
    background: str | None  # a world.BACKGROUNDS name; None if the words match none of them

    def of(self, shape: str, color: str | None = None) -> list[Detection]:
        return [d for d in self.objects if d.label == shape and (color is None or d.color == color)]

    def centre(self, det: Detection) -> tuple[float, float]:
        """Box centre in [0, 1] units of the image."""
        x1, y1, x2, y2 = det.box
        return (x1 + x2) / 2 / self.width, (y1 + y2) / 2 / self.height

    def width_of(self, det: Detection) -> float:
        return (det.box[2] - det.box[0]) / self.width


def observe(image: Image.Image, detector: ShapesDetector) -> Observation:
    """Confident detections (score >= the answerer's ``MIN_SCORE``) and the background name."""
    rgb = image.convert("RGB")
    objects = [d for d in detector.detect_one(rgb) if d.score >= MIN_SCORE]
    words = background_words(np.asarray(rgb, dtype=np.float32))
    return Observation(objects, rgb.width, rgb.height, BACKGROUND_OF_WORDS.get(words))


def _all_in_relation(view: Observation, shape: str, relation: str, other: str) -> bool:
    subjects, references = view.of(shape), view.of(other)
    return bool(subjects and references) and all(
        relation in relations(a.box, b.box) for a in subjects for b in references)


def truth_from_pixels(name: str, fields: dict, view: Observation) -> bool:
    """Whether a parsed dense question holds in ``view`` (semantics: ``shapes.dense``)."""
    found = view.of(fields["shape"]) if "shape" in fields else []
    if name == "entity_one":
        return len(found) >= 1
    if name == "entity_many":
        return len(found) >= 2
    if name == "count":
        return len(found) == fields["number"]
    if name in ("color_one", "color_many"):
        return bool(found) and all(d.color == fields["color"] for d in found)
    if name in ("relation_one", "relation_many"):
        return _all_in_relation(view, fields["shape"], fields["relation"], fields["other"])
    if name == "background":
        return view.background == fields["background"]
    raise ValueError(f"no rule for question template {name!r}")


@register("vqa", "shapes-vqa")
class ShapesVQA:
    """Answers dense shapes questions "yes"/"no" from pixels; deterministic.

    ``size``: resize images to ``size`` x ``size`` first (None: as given); the detector is tuned
    for 64-128 px, so large tiles from a real model are best read at 128. ``profile``: the world
    profile whose shapes and colours the detector chooses among (default ``full``).
    """

    judge_id = "shapes-vqa-v1"
    version = VERSION

    def __init__(self, size: int | None = None, profile: str = "full") -> None:
        self.size = None if size is None else int(size)
        self.detector = ShapesDetector(profile=profile)
        self.params = {"size": self.size, **({"profile": profile} if profile != "full" else {})}

    def _prepare(self, image: Image.Image) -> Image.Image:
        image = image.convert("RGB")
        if self.size is not None and image.size != (self.size, self.size):
            image = image.resize((self.size, self.size), Image.BILINEAR)
        return image

    def answer(self, images: Sequence[Image.Image], questions: Sequence[str]) -> list[str]:
        if len(images) != len(questions):
            raise ValueError(f"{len(images)} images but {len(questions)} questions")
        views: dict[str, Observation] = {}  # DPG asks every question of a tile: look at it once
        answers = []
        for image, question in zip(images, questions):
            parsed = parse_dense_question(question)
            if parsed is None:
                answers.append("unknown")
                continue
            prepared = self._prepare(image)
            key = hashlib.sha256(prepared.tobytes()).hexdigest() + f"{prepared.size}"
            if key not in views:
                views[key] = observe(prepared, self.detector)
            answers.append("yes" if truth_from_pixels(*parsed, views[key]) else "no")
        return answers
