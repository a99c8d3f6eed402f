"""Shapes-world MMBench-style multiple-choice questions, written as a VLMEvalKit-format TSV.

Question kinds and the real MMBench categories they stand for (L3 ``category`` / L2
``l2-category``, PROTOCOLS.md 5.1). Each kind asks what the MMBench category asks of a photo,
reduced to what the shapes world can show unambiguously:

=====================  ==========================================  ======================================
category (L3)          l2-category                                 question -> options
=====================  ==========================================  ======================================
attribute_recognition  finegrained_perception (instance-level)     What color is the X? -> colours
object_localization    finegrained_perception (instance-level)     Where is the X located? -> quadrants
spatial_relationship   finegrained_perception (cross-instance)     Which shape is left of the X? -> shapes
attribute_comparison   finegrained_perception (cross-instance)     Which shape appears most often?
                                                                   -> shapes (counting, compared across
                                                                   instances)
image_scene            coarse_perception                           What color is the background?
image_style            coarse_perception                           What is the texture of the background?
                                                                   -> plain / gradient / speckled
=====================  ==========================================  ======================================

Kinds go round-robin over the question index. A question has 2 to 4 options (fewer when the
kind has fewer candidates); every distractor is wrong and distinct, and the true option's letter
is uniform. Truth is exact: the shape a question names is the only one of its kind; a localised
shape's centre is at least ``QUADRANT_MARGIN`` from the middle lines; the shape that stands in a
relation does so with the world's margin and every other shape clearly does not; the most frequent
shape outnumbers every other one.

TSV layout (VLMEvalKit): main rows first, then circular copies (PROTOCOLS.md 5.1, as VLMEvalKit's
``CIRCULAR`` tool builds them): pass k = 1..N-1 of an N-option question has index g + k*1_000_000,
options ``options[k:] + options[:k]``, the answer remapped, and the ``image`` cell holding ``str(g)``.
``legacy=True`` writes the older layout LLaVA reads: the same rows, each carrying its own base64
image, plus ``source`` and ``comment`` columns.
"""
from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from harness.fileio import atomic_write_text
from shapes.understanding import (BACKGROUND_COLOR_WORDS, BACKGROUND_TEXTURE_WORDS,
                                  MCQ_TEMPLATES, QUADRANTS, fill)
from shapes.world import (RELATION_MARGIN, RELATIONS, Scene, WorldProfile, get_profile, random_scene,
                          relation_vector, render, scene_for_metadata)

LETTERS = "ABCD"
CIRCULAR_OFFSET = 1_000_000
QUADRANT_MARGIN = 0.1  # normalised distance of a localised shape's centre from the middle lines
SPLIT = "dev"
L2_CATEGORIES: dict[str, str] = {
    "attribute_recognition": "finegrained_perception (instance-level)",
    "object_localization": "finegrained_perception (instance-level)",
    "spatial_relationship": "finegrained_perception (cross-instance)",
    "attribute_comparison": "finegrained_perception (cross-instance)",
    "image_scene": "coarse_perception",
    "image_style": "coarse_perception",
}
KINDS: tuple[str, ...] = tuple(L2_CATEGORIES)
HINTS: tuple[str, ...] = ("The image shows flat coloured shapes.",
                          "Left and right are as seen by the viewer.",
                          "Each shape is drawn in a single colour.")
COLUMNS = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "l2-category",
           "split", "image"]
LEGACY_COLUMNS = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image",
                  "source", "l2-category", "comment", "split"]


@dataclass(frozen=True)
class ChoiceItem:
    """One multiple-choice question (the main row); ``answer`` is the true option's letter."""

    index: int
    category: str
    question: str
    hint: str
    options: tuple[str, ...]
    answer: str
    scene: Scene

    @property
    def l2_category(self) -> str:
        return L2_CATEGORIES[self.category]


def _unique(rng: np.random.Generator, k: int, profile: WorldProfile, exclude: tuple[str, ...] = ()) -> list[str]:
    """``k`` distinct shapes of the profile not in ``exclude``."""
    return [str(s) for s in rng.choice([s for s in profile.shapes if s not in exclude], k, replace=False)]


# Each builder returns (scene, question, true option, wrong candidates, preferred wrong ones).
_Built = tuple[Scene, str, str, list[str], list[str]]


def _attribute_recognition(rng: np.random.Generator, profile: WorldProfile) -> _Built:
    (shape,) = _unique(rng, 1, profile)
    scene = scene_for_metadata({"include": [{"class": shape, "count": 1}]}, rng,
                               distractors=int(rng.integers(0, 4)), profile=profile)
    color = next(o.color for o in scene.objects if o.shape == shape)
    wrong = [c for c in profile.colors if c != color]
    seen = [o.color for o in scene.objects if o.color != color]
    return scene, fill(MCQ_TEMPLATES["attribute_recognition"], shape=shape), color, wrong, seen


def _quadrant(cx: float, cy: float) -> str:
    return ("top" if cy < 0.5 else "bottom") + "-" + ("left" if cx < 0.5 else "right")


def _object_localization(rng: np.random.Generator, profile: WorldProfile) -> _Built:
    (shape,) = _unique(rng, 1, profile)
    for _ in range(200):
        scene = scene_for_metadata({"include": [{"class": shape, "count": 1}]}, rng,
                                   distractors=int(rng.integers(0, 4)), profile=profile)
        target = next(o for o in scene.objects if o.shape == shape)
        if min(abs(target.cx - 0.5), abs(target.cy - 0.5)) >= QUADRANT_MARGIN:
            break
    else:
        raise RuntimeError("no scene with a clearly placed shape")
    truth = _quadrant(target.cx, target.cy)
    return (scene, fill(MCQ_TEMPLATES["object_localization"], shape=shape), truth,
            [q for q in QUADRANTS if q != truth], [])


def _clearly_not(box: tuple[float, ...], ref: tuple[float, ...], relation: str) -> bool:
    """True if ``relation`` of box to ref is false by the world's margin."""
    vec = relation_vector(box, ref)
    if vec is None:
        return True
    axis, sign = {"left of": (0, -1), "right of": (0, 1), "above": (1, -1), "below": (1, 1)}[relation]
    return sign * vec[axis] <= 0.5 - RELATION_MARGIN


def _spatial_relationship(rng: np.random.Generator, profile: WorldProfile) -> _Built:
    shape, other = _unique(rng, 2, profile)
    relation = str(RELATIONS[int(rng.integers(len(RELATIONS)))])
    metadata = {"include": [{"class": other, "count": 1},
                            {"class": shape, "count": 1, "position": [relation, 0]}]}
    for _ in range(200):
        scene = scene_for_metadata(metadata, rng, distractors=int(rng.integers(1, 3)), profile=profile)
        ref = next(o for o in scene.objects if o.shape == other)
        if all(_clearly_not(o.bbox(), ref.bbox(), relation) for o in scene.objects
               if o.shape not in (shape, other)):
            break
    else:
        raise RuntimeError("no scene with a single shape in the relation")
    seen = [o.shape for o in scene.objects if o.shape not in (shape, other)]
    question = fill(MCQ_TEMPLATES["spatial_relationship"], relation=relation, other=other)
    return scene, question, shape, [s for s in profile.shapes if s not in (shape, other)], seen


def _attribute_comparison(rng: np.random.Generator, profile: WorldProfile) -> _Built:
    most = int(rng.integers(2, 4))
    shapes = _unique(rng, min(4, len(profile.shapes)), profile)
    include = [{"class": shapes[0], "count": most}]
    room = min(5, profile.max_objects) - most
    for shape in shapes[1:]:  # every other shape strictly fewer times
        count = int(rng.integers(0, min(most - 1, room) + 1)) if room else 0
        if count:
            include.append({"class": shape, "count": count})
            room -= count
    scene = scene_for_metadata({"include": include}, rng, profile=profile)
    seen = [c["class"] for c in include[1:]]
    return (scene, MCQ_TEMPLATES["attribute_comparison"], shapes[0],
            [s for s in profile.shapes if s != shapes[0]], seen)


def _background(rng: np.random.Generator, profile: WorldProfile, words: dict[str, str], template: str) -> _Built:
    scene = random_scene(rng, n_objects=int(rng.integers(1, min(5, profile.max_objects + 1))), profile=profile)
    truth = words[scene.background]
    wrong = sorted({words[b] for b in profile.backgrounds if words[b] != truth})
    return scene, template, truth, wrong, []


_BUILDERS: dict[str, Callable[[np.random.Generator, WorldProfile], _Built]] = {
    "attribute_recognition": _attribute_recognition,
    "object_localization": _object_localization,
    "spatial_relationship": _spatial_relationship,
    "attribute_comparison": _attribute_comparison,
    "image_scene": lambda rng, profile: _background(rng, profile, BACKGROUND_COLOR_WORDS,
                                                    MCQ_TEMPLATES["image_scene"]),
    "image_style": lambda rng, profile: _background(rng, profile, BACKGROUND_TEXTURE_WORDS,
                                                    MCQ_TEMPLATES["image_style"]),
}


def question_kinds(profile: WorldProfile | str | None = None) -> tuple[str, ...]:
    """The kinds a profile can ask: every one of ``KINDS`` that has a wrong option in the profile
    (a world with one background colour, or one texture, cannot ask about it)."""
    profile = get_profile(profile)
    colour_words = {BACKGROUND_COLOR_WORDS[b] for b in profile.backgrounds}
    texture_words = {BACKGROUND_TEXTURE_WORDS[b] for b in profile.backgrounds}
    possible = {"spatial_relationship": len(profile.shapes) >= 3, "attribute_comparison": len(profile.shapes) >= 2,
                "attribute_recognition": len(profile.colors) >= 2, "image_scene": len(colour_words) >= 2,
                "image_style": len(texture_words) >= 2}
    return tuple(kind for kind in KINDS if possible.get(kind, True))


def mmbench_shapes_items(questions: int = 40, seed: int = 0,
                         profile: WorldProfile | str | None = None) -> list[ChoiceItem]:
    """The main rows; question i depends only on (seed, i, profile), its kind is ``kinds[i % len(kinds)]``
    with ``kinds = question_kinds(profile)`` (all six ``KINDS`` in the full world)."""
    profile = get_profile(profile)
    kinds = question_kinds(profile)
    items = []
    for index in range(questions):
        rng = np.random.default_rng([seed, 1000, index])
        category = kinds[index % len(kinds)]
        scene, question, truth, wrong, preferred = _BUILDERS[category](rng, profile)
        n_options = int(rng.integers(2, 5))
        n_wrong = min(n_options - 1, len(wrong))
        # Half the distractors (rounded up) come from what is in view when there is any.
        preferred = list(dict.fromkeys(p for p in preferred if p in wrong))
        take = min(len(preferred), (n_wrong + 1) // 2)
        chosen = [preferred[i] for i in rng.permutation(len(preferred))[:take]]
        rest = [w for w in wrong if w not in chosen]
        chosen += [rest[i] for i in rng.permutation(len(rest))[:n_wrong - take]]
        options = [truth] + chosen
        options = [options[i] for i in rng.permutation(len(options))]
        hint = HINTS[int(rng.integers(len(HINTS)))] if rng.random() < 0.5 else ""
        items.append(ChoiceItem(index, category, question, hint, tuple(options),
                                LETTERS[options.index(truth)], scene))
    return items


def circular_passes(options: tuple[str, ...], answer: str) -> list[tuple[tuple[str, ...], str]]:
    """(options, answer) of passes 0..N-1: pass k shows ``options[k:] + options[:k]``."""
    n, truth = len(options), LETTERS.index(answer)
    return [(tuple(options[k:] + options[:k]), LETTERS[(truth - k) % n]) for k in range(n)]


def _png_base64(scene: Scene, size: int) -> str:
    buffer = io.BytesIO()
    render(scene, size=size).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def write_mmbench_shapes(path: str | Path, questions: int = 40, seed: int = 0, size: int = 128,
                         legacy: bool = False, profile: WorldProfile | str | None = None) -> Path:
    """Write the questions and their circular copies as an MMBench TSV; returns ``path``."""
    path = Path(path)
    items = mmbench_shapes_items(questions, seed, profile)
    images = {item.index: _png_base64(item.scene, size) for item in items}
    rows = []
    for k in range(len(LETTERS)):  # main rows, then every question's pass 1, pass 2, ...
        for item in items:
            passes = circular_passes(item.options, item.answer)
            if k >= len(passes):
                continue
            options, answer = passes[k]
            row = {"index": item.index + k * CIRCULAR_OFFSET, "question": item.question,
                   "hint": item.hint or None, "answer": answer, "category": item.category,
                   "l2-category": item.l2_category, "split": SPLIT,
                   "image": images[item.index] if k == 0 or legacy else str(item.index)}
            row.update({LETTERS[i]: options[i] if i < len(options) else None
                        for i in range(len(LETTERS))})
            if legacy:
                row.update({"source": "shapes-world", "comment": None})
            rows.append(row)
    frame = pd.DataFrame(rows, columns=LEGACY_COLUMNS if legacy else COLUMNS)
    atomic_write_text(path, frame.to_csv(sep="\t", index=False))
    return path
