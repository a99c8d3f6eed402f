"""Shapes-world understanding data: MME-style yes/no questions and their question templates.

Every question is asked about a rendered scene whose graph fixes the truth exactly, so a benchmark
run on these files measures the harness (prompting, parsing, scoring), not an annotator. The
templates below are the single source of the wording: the writers fill them in and the procedural
answerer (``shapes.answerer_model``) parses them back with ``parse_question``.

MME (PROTOCOLS.md 4.1) -- ``write_mme_shapes`` writes the release layout for four of MME's real
perception subtasks, so the MME benchmark groups them under Perception:

============  =====================================================  ===========================
subtask       question ("Yes" one first, then the "No" one)           truth
============  =====================================================  ===========================
existence     Is there a (red) circle in this image?                 a (colour, shape) in scene
count         Are there three squares in the image? /                 exact count of that shape
              Is there only one star in the image?
position      Is the star to the left of the circle?                 GenEval's relation rule,
                                                                     placed with margin
color         Is the triangle in this image blue?                    the (unique) shape's colour
============  =====================================================  ===========================

Each image has exactly two questions about the same image, one true and one false; every question
ends with " Please answer yes or no.". Counts are exact ("three" means exactly three). A shape
named with "the" is the only one of its kind in its scene. The MMBench-style writer lives in
``shapes.understanding_mmbench``.
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from harness.fileio import atomic_write_text
from harness.images import save_png
from shapes.world import (COLORS, PLURALS, RELATIONS, SHAPES, Scene, WorldProfile, get_profile,
                          random_scene, render, scene_for_metadata)

MME_SUFFIX = " Please answer yes or no."
NUMBER_WORDS: dict[int, str] = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
#: how a GenEval relation ("left of") is worded in a question
RELATION_PHRASES: dict[str, str] = {"left of": "to the left of", "right of": "to the right of",
                                    "above": "above", "below": "below"}
QUADRANTS: tuple[str, ...] = ("top-left", "top-right", "bottom-left", "bottom-right")
#: background name (world.BACKGROUNDS) -> the colour and texture words the questions use
BACKGROUND_COLOR_WORDS: dict[str, str] = {"grey": "grey", "light_grey": "light grey", "beige": "beige",
                                          "grey_gradient": "grey", "beige_speckle": "beige"}
BACKGROUND_TEXTURE_WORDS: dict[str, str] = {"grey": "plain", "light_grey": "plain", "beige": "plain",
                                            "grey_gradient": "gradient", "beige_speckle": "speckled"}

MME_SUBTASKS: tuple[str, ...] = ("existence", "count", "position", "color")

#: yes/no question templates (MME); the suffix is added by the writer
MME_TEMPLATES: dict[str, str] = {
    "existence": "Is there {article} {shape} in this image?",
    "existence_color": "Is there {article} {color} {shape} in this image?",
    "count_one": "Is there only one {shape} in the image?",
    "count": "Are there {number} {plural} in the image?",
    "position": "Is the {shape} {relation} the {other}?",
    "color": "Is the {shape} in this image {color}?",
}
#: multiple-choice question templates (MMBench); the key is the MMBench L3 category
MCQ_TEMPLATES: dict[str, str] = {
    "attribute_recognition": "What color is the {shape} in the image?",
    "object_localization": "Where is the {shape} located in the image?",
    "spatial_relationship": "Which shape is {relation} the {other}?",
    "attribute_comparison": "Which shape appears most often in the image?",
    "image_scene": "What color is the background of the image?",
    "image_style": "What is the texture of the background?",
}

_FIELD_PATTERNS: dict[str, str] = {
    "article": "an?",
    "shape": "|".join(SHAPES),
    "other": "|".join(SHAPES),
    "color": "|".join(COLORS),
    "plural": "|".join(PLURALS.values()),
    "number": "|".join(NUMBER_WORDS.values()),
    "relation": "|".join(RELATION_PHRASES.values()),
}
_SINGULAR = {plural: shape for shape, plural in PLURALS.items()}
_NUMBER_OF = {word: n for n, word in NUMBER_WORDS.items()}
_RELATION_OF = {phrase: rel for rel, phrase in RELATION_PHRASES.items()}


def _template_regex(template: str) -> re.Pattern[str]:
    """A case-insensitive regex for a template: literal text escaped, each field a named group."""
    parts = []
    for literal, field, _, _ in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if field:
            parts.append(f"(?P<{field}>{_FIELD_PATTERNS[field]})")
    return re.compile("".join(parts), re.IGNORECASE)


_MME_REGEXES = {name: _template_regex(t) for name, t in MME_TEMPLATES.items()}
_MCQ_REGEXES = {name: _template_regex(t) for name, t in MCQ_TEMPLATES.items()}


def parse_question(text: str, multiple_choice: bool) -> tuple[str, dict] | None:
    """(template name, fields) of the first template found in ``text``, or None.

    Fields come back normalised: ``shape``/``other`` singular shape names, ``plural`` turned into
    ``shape``, ``number`` an int, ``relation`` a GenEval relation ("left of").
    """
    regexes = _MCQ_REGEXES if multiple_choice else _MME_REGEXES
    for name, regex in regexes.items():
        match = regex.search(text)
        if match is None:
            continue
        return name, question_fields(match)
    return None


def question_fields(match: re.Match) -> dict:
    """The named groups of a question template's match, normalised: lower case, no ``article``,
    ``plural`` turned into a singular ``shape``, ``other`` singular, ``number`` an int and
    ``relation`` a GenEval relation; other fields as matched (lower case)."""
    fields = {k: v.lower() for k, v in match.groupdict().items() if k != "article"}
    if "plural" in fields:
        fields["shape"] = _SINGULAR[fields.pop("plural")]
    if "other" in fields:
        fields["other"] = _SINGULAR.get(fields["other"], fields["other"])
    if "number" in fields:
        fields["number"] = _NUMBER_OF[fields["number"]]
    if "relation" in fields:
        fields["relation"] = _RELATION_OF[fields["relation"]]
    return fields


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def fill(template: str, **fields: object) -> str:
    """A template filled in; ``relation`` may be given as a GenEval relation ("left of")."""
    if "relation" in fields:
        fields["relation"] = RELATION_PHRASES.get(str(fields["relation"]), fields["relation"])
    return template.format(**fields)


# ---------------------------------------------------------------------------------------- MME
@dataclass(frozen=True)
class YesNoItem:
    """One MME image: its scene and its two questions (the true one first), suffix included."""

    subtask: str
    stem: str
    scene: Scene
    yes_question: str
    no_question: str


def _pick(rng: np.random.Generator, options: list) -> object:
    return options[int(rng.integers(len(options)))]


def _existence(rng: np.random.Generator, profile: WorldProfile) -> tuple[Scene, str, str]:
    while True:  # a scene that leaves some (colour, shape) out, for the false question (the first, in the full world)
        scene = random_scene(rng, n_objects=int(rng.integers(1, min(5, profile.max_objects + 1))), profile=profile)
        present = {(o.color, o.shape) for o in scene.objects}
        if len(present) < len(profile.colors) * len(profile.shapes):
            break
    target = _pick(rng, scene.objects)
    shapes = {o.shape for o in scene.objects}
    absent_shapes = [s for s in profile.shapes if s not in shapes]
    if rng.random() < 0.5 or not absent_shapes:  # colour and shape: the false one shares a colour or shape when it can
        absent = [(c, s) for c in profile.colors for s in profile.shapes if (c, s) not in present]
        near = [(c, s) for c, s in absent if any(c == pc or s == ps for pc, ps in present)]
        color, shape = _pick(rng, near or absent)
        template = MME_TEMPLATES["existence_color"]
        yes = fill(template, article=_article(target.color), color=target.color, shape=target.shape)
        no = fill(template, article=_article(color), color=color, shape=shape)
    else:
        shape = _pick(rng, absent_shapes)
        template = MME_TEMPLATES["existence"]
        yes = fill(template, article=_article(target.shape), shape=target.shape)
        no = fill(template, article=_article(shape), shape=shape)
    return scene, yes, no


def _count_question(shape: str, n: int) -> str:
    if n == 1:
        return fill(MME_TEMPLATES["count_one"], shape=shape)
    return fill(MME_TEMPLATES["count"], number=NUMBER_WORDS[n], plural=PLURALS[shape])


def _count(rng: np.random.Generator, profile: WorldProfile) -> tuple[Scene, str, str]:
    shape, n = str(_pick(rng, list(profile.shapes))), int(rng.integers(1, min(5, profile.max_objects + 1)))
    extra = int(rng.integers(0, profile.max_objects + 1 - n))  # at most max_objects (five) objects in all
    scene = scene_for_metadata({"include": [{"class": shape, "count": n}]}, rng, distractors=extra,
                               profile=profile)
    wrong = int(_pick(rng, [m for m in (n - 1, n + 1) if m in NUMBER_WORDS]))
    return scene, _count_question(shape, n), _count_question(shape, wrong)


def _position(rng: np.random.Generator, profile: WorldProfile) -> tuple[Scene, str, str]:
    shape, other = (str(s) for s in rng.choice(profile.shapes, 2, replace=False))
    relation = str(_pick(rng, list(RELATIONS)))
    metadata = {"include": [{"class": other, "count": 1},
                            {"class": shape, "count": 1, "position": [relation, 0]}]}
    scene = scene_for_metadata(metadata, rng, distractors=int(rng.integers(0, 3)), profile=profile)
    # Placement keeps the relation clear by a margin, so every other relation is clearly false.
    false_relation = _pick(rng, [r for r in RELATIONS if r != relation])
    template = MME_TEMPLATES["position"]
    return (scene, fill(template, shape=shape, relation=relation, other=other),
            fill(template, shape=shape, relation=false_relation, other=other))


def _color(rng: np.random.Generator, profile: WorldProfile) -> tuple[Scene, str, str]:
    shape, color = str(_pick(rng, list(profile.shapes))), str(_pick(rng, list(profile.colors)))
    metadata = {"include": [{"class": shape, "count": 1, "color": color}]}
    scene = scene_for_metadata(metadata, rng, distractors=int(rng.integers(0, 4)), profile=profile)
    seen = sorted({o.color for o in scene.objects} - {color})  # a colour in view is a harder "No"
    wrong = _pick(rng, seen or [c for c in profile.colors if c != color])
    template = MME_TEMPLATES["color"]
    return scene, fill(template, shape=shape, color=color), fill(template, shape=shape, color=wrong)


_MME_BUILDERS: dict[str, Callable[[np.random.Generator, WorldProfile], tuple[Scene, str, str]]] = {
    "existence": _existence, "count": _count, "position": _position, "color": _color}


def yes_no_question(subtask: str, rng: np.random.Generator,
                    profile: WorldProfile | str | None = None) -> tuple[Scene, str, str]:
    """A scene and its true and false questions for an MME ``subtask`` (suffix not added), over
    the profile's shapes, colours and backgrounds."""
    return _MME_BUILDERS[subtask](rng, get_profile(profile))


def mme_shapes_items(per_subtask: int = 10, seed: int = 0,
                     profile: WorldProfile | str | None = None) -> list[YesNoItem]:
    """The MME items, subtask by subtask; image i of a subtask depends only on (seed, subtask, i)."""
    profile = get_profile(profile)
    items = []
    for number, subtask in enumerate(MME_SUBTASKS):
        for i in range(per_subtask):
            rng = np.random.default_rng([seed, number, i])
            scene, yes, no = yes_no_question(subtask, rng, profile)
            # Stems repeat across subtasks, as MME's own image names do.
            items.append(YesNoItem(subtask, f"{i + 1:04d}", scene, yes + MME_SUFFIX, no + MME_SUFFIX))
    return items


def write_mme_shapes(folder: str | Path, per_subtask: int = 10, seed: int = 0,
                     size: int = 128, profile: WorldProfile | str | None = None) -> Path:
    """Write ``<folder>/<subtask>/<stem>.png`` + ``<stem>.txt`` (MME's flat release layout).

    Each ``.txt`` holds two lines ``question<TAB>Yes`` then ``question<TAB>No``. Returns ``folder``.
    """
    folder = Path(folder)
    for item in mme_shapes_items(per_subtask, seed, profile):
        subdir = folder / item.subtask
        save_png(render(item.scene, size=size), subdir / f"{item.stem}.png")
        atomic_write_text(subdir / f"{item.stem}.txt",
                          f"{item.yes_question}\tYes\n{item.no_question}\tNo\n")
    return folder
