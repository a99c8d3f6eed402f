"""``shapes-answerer``: a procedural question-answering "model" for the shapes world.

It reads a question written by ``shapes.understanding`` (MME yes/no) or
``shapes.understanding_mmbench`` (multiple choice), in whatever prompt format a benchmark
wraps it (a suffix such as "Answer the question using a single word or phrase.", VLMEvalKit's
``Hint:/Question:/Options:`` layout or LLaVA's ``A. ...`` lines), finds the question by the same
templates the writers use, looks at the image with the pixel-only shapes detector (never a scene
graph) and answers "Yes"/"No" or an option letter. A question it cannot parse, or whose answer is
not among the options, gets an honest "I don't know". It is the ceiling a perfect model reaches
on the shapes-world MME and MMBench files, and a check of the answer-parsing paths.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image

from harness.judges.base import Detection
from harness.models.base import Request
from harness.registry import register
from shapes.procedural import ProceduralShapesModel
from shapes.understanding import BACKGROUND_COLOR_WORDS, parse_question
from shapes.world import BACKGROUNDS, relations

UNKNOWN = "I don't know"
MIN_SCORE = 0.3  # clean shapes score > 0.99; this drops fragments and odd blobs
_OPTION_LINE = re.compile(r"^\s*([A-D])\.\s+(.+?)\s*$", re.MULTILINE)
#: the plain-texture backgrounds give the base colour of each colour word
_BACKGROUND_RGB = {BACKGROUND_COLOR_WORDS[name]: np.array(bg.rgb, dtype=np.float32)
                   for name, bg in BACKGROUNDS.items() if bg.texture == "plain"}
SPECKLE_STEP = 2.0  # mean |difference| of neighbouring border pixels above which a texture is speckled
GRADIENT_DROP = 8.0  # top-minus-bottom brightness above which a background is a gradient (ramp: 20)


@dataclass
class _View:
    """What the answerer sees in one image."""

    objects: list[Detection]
    width: int
    height: int
    background_color: str
    background_texture: str

    def of(self, shape: str) -> list[Detection]:
        return [d for d in self.objects if d.label == shape]


def _background(img: np.ndarray) -> tuple[str, str]:
    """(colour word, texture word) of the background, from two-pixel bands along the border."""
    border = np.concatenate([img[:2].reshape(-1, 3), img[-2:].reshape(-1, 3),
                             img[:, :2].reshape(-1, 3), img[:, -2:].reshape(-1, 3)])
    median = np.median(border, axis=0)
    color = min(_BACKGROUND_RGB, key=lambda w: float(np.linalg.norm(_BACKGROUND_RGB[w] - median)))
    # A speckle varies from pixel to pixel along a row; a gradient only from top to bottom.
    step = float(np.abs(np.diff(img[:2], axis=1)).mean())
    drop = float(img[:2].mean() - img[-2:].mean())
    texture = "speckled" if step > SPECKLE_STEP else "gradient" if drop > GRADIENT_DROP else "plain"
    return color, texture


def _centre(det: Detection) -> tuple[float, float]:
    x1, y1, x2, y2 = det.box
    return (x1 + x2) / 2, (y1 + y2) / 2


def _only(found: list[Detection]) -> Detection | None:
    return found[0] if len(found) == 1 else None


def _yes_no(value: bool | None) -> str:
    return UNKNOWN if value is None else "Yes" if value else "No"


def answer_yes_no(name: str, fields: dict, view: _View) -> str:
    """The answer to a parsed MME question about ``view``."""
    shape = fields.get("shape")
    if name in ("existence", "existence_color"):
        found = view.of(shape)
        if "color" in fields:
            found = [d for d in found if d.color == fields["color"]]
        return _yes_no(bool(found))
    if name == "count_one":
        return _yes_no(len(view.of(shape)) == 1)
    if name == "count":
        return _yes_no(len(view.of(shape)) == fields["number"])
    if name == "color":
        found = view.of(shape)
        return _yes_no(any(d.color == fields["color"] for d in found) if found else False)
    if name == "position":
        a, b = _only(view.of(shape)), _only(view.of(fields["other"]))
        if a is None or b is None:  # what is not there stands in no relation
            return "No"
        return _yes_no(fields["relation"] in relations(a.box, b.box))
    return UNKNOWN


def choice_truth(name: str, fields: dict, options: list[str], view: _View) -> str | None:
    """The option text that answers a parsed multiple-choice question, or None."""
    if name == "attribute_recognition":
        target = _only(view.of(fields["shape"]))
        return target.color if target else None
    if name == "object_localization":
        target = _only(view.of(fields["shape"]))
        if target is None:
            return None
        cx, cy = _centre(target)
        return ("top" if cy < view.height / 2 else "bottom") + "-" + \
               ("left" if cx < view.width / 2 else "right")
    if name == "spatial_relationship":
        ref = _only(view.of(fields["other"]))
        if ref is None:
            return None
        hits = [o for o in options
                if any(fields["relation"] in relations(d.box, ref.box) for d in view.of(o))]
        return hits[0] if len(hits) == 1 else None
    if name == "attribute_comparison":
        counts = {o: len(view.of(o)) for o in options}
        best = max(counts.values(), default=0)
        winners = [o for o, n in counts.items() if n == best]
        return winners[0] if best > 0 and len(winners) == 1 else None
    if name == "image_scene":
        return view.background_color
    if name == "image_style":
        return view.background_texture
    return None


@register("model", "shapes-answerer")
class ShapesAnswerer(ProceduralShapesModel):
    """Answers shapes-world MME and MMBench questions from pixels; deterministic."""

    capabilities = frozenset({"answer"})
    version = "1"

    def _look(self, image: Image.Image) -> _View:
        if self.size is not None and image.size != (self.size, self.size):
            image = image.resize((self.size, self.size), Image.BILINEAR)
        img = np.asarray(image.convert("RGB"), dtype=np.float32)
        objects = [d for d in self.detector.detect_one(image) if d.score >= MIN_SCORE]
        color, texture = _background(img)
        return _View(objects, img.shape[1], img.shape[0], color, texture)

    def answer_one(self, prompt: str, view: _View | None) -> str:
        options = {m.group(1): m.group(2) for m in _OPTION_LINE.finditer(prompt)}
        parsed = parse_question(prompt, multiple_choice=bool(options))
        if parsed is None or view is None:
            return UNKNOWN
        name, fields = parsed
        if not options:
            return answer_yes_no(name, fields, view)
        texts = [t.strip().lower() for t in options.values()]
        truth = choice_truth(name, fields, texts, view)
        letters = [letter for letter, text in zip(options, texts) if text == truth]
        return letters[0] if truth is not None and len(letters) == 1 else UNKNOWN

    def answer(self, requests: Sequence[Request]) -> list[str]:
        views: dict[str, _View] = {}  # circular copies share an image: look at it once
        answers = []
        for request in requests:
            view = None
            if request.images:
                first = request.images[0]
                if first.digest not in views:
                    views[first.digest] = self._look(first.load())
                view = views[first.digest]
            answers.append(self.answer_one(request.prompt, view))
        return answers
