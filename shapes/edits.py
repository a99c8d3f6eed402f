"""ImgEdit-style editing items over the shapes world: instructions, edits on scene graphs, files.

``write_imgedit_shapes`` writes the Basic suite's layout (PROTOCOLS.md 3.1): ``basic_edit.json``
(``{key: {id, prompt, edit_type}}``, keys strings of integers, not contiguous, in no particular
order, as in the release), source images under ``images/<subdir>/<file>.png`` (``id`` is that path
relative to ``images/``) and ``prompts.json``, one judge prompt per edit type with the literal
placeholder ``<edit_prompt>`` and the type's three dimensions.

Edit types (ImgEdit name -> what it means here); ImgEdit's ``style`` and ``action`` have no
counterpart in a world of flat shapes and are not written:

==========  ===============================================  ======================================
type        instruction                                      effect on the scene graph
==========  ===============================================  ======================================
add         Add a blue star to the image.                    a new object in free space
remove      Remove the red circle from the image.            the object is gone
replace     Replace the red circle with a green square.      new shape/colour, same place and size
adjust      Change the color of the red circle to yellow.    recoloured in place
background  Change the background to speckled beige.         new background, objects unchanged
extract     Extract the red circle and remove everything     only that object is left, in place
            else.
compose     two of add/remove/replace/adjust/background,     both, in order
            "<first> Then <second>"
==========  ===============================================  ======================================

Each shape occurs at most once in a source scene, so "the red circle" names exactly one object.
Sub-directories follow the release's habit: ``for_add`` for add items, ``compose`` for compose
items, and ``flat shapes`` (with a space, like the release's "daily object") for the rest.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from harness.fileio import atomic_write_text
from harness.images import save_png
from shapes.dense import BACKGROUND_PHRASES
from shapes.world import (BORDER, COLORS, GAP, MIN_SIZE, SHAPES, Scene, ShapeObject, render,
                          scene_for_metadata, template_pattern)

EDIT_TYPES: tuple[str, ...] = ("add", "remove", "replace", "adjust", "background", "extract", "compose")
#: the three judge dimensions of each type, as ImgEdit names them (PROTOCOLS.md 3.1)
DIMENSIONS: dict[str, tuple[str, str, str]] = {
    "add": ("Prompt Compliance", "Visual Naturalness", "Physical & Detail Coherence"),
    "remove": ("Prompt Compliance", "Visual Naturalness", "Physical & Detail Integrity"),
    "replace": ("Prompt Compliance", "Visual Naturalness", "Physical & Detail Integrity"),
    "adjust": ("Prompt Compliance", "Visual Seamlessness", "Physical & Detail Fidelity"),
    "background": ("Instruction Compliance", "Visual Seamlessness", "Physical Consistency"),
    "extract": ("Object Identity", "Mask Precision", "Visual Quality"),
    "compose": ("Instruction Compliance", "Visual Naturalness", "Physical Consistency & Fine Detail"),
}
SUBDIRS: dict[str, str] = {"add": "for_add", "compose": "compose"}
DEFAULT_SUBDIR = "flat shapes"
PLACEHOLDER = "<edit_prompt>"
COMPOSE_JOIN = " Then "
ADDED_SIZE = (MIN_SIZE, 0.24)  # size range of an added object: small enough to find room

INSTRUCTION_TEMPLATES: dict[str, str] = {
    "add": "Add {article} {new_color} {new_shape} to the image.",
    "remove": "Remove the {color} {shape} from the image.",
    "replace": "Replace the {color} {shape} with {article} {new_color} {new_shape}.",
    "adjust": "Change the color of the {color} {shape} to {new_color}.",
    "background": "Change the background to {background}.",
    "extract": "Extract the {color} {shape} and remove everything else.",
}
_BACKGROUND_OF = {phrase: name for name, phrase in BACKGROUND_PHRASES.items()}
_FIELDS = {"article": "an?", "shape": "|".join(SHAPES), "new_shape": "|".join(SHAPES),
           "color": "|".join(COLORS), "new_color": "|".join(COLORS),
           "background": "|".join(sorted(map(re.escape, _BACKGROUND_OF), key=len, reverse=True))}
_INSTRUCTION_REGEXES = {
    kind: template_pattern(template, _FIELDS) for kind, template in INSTRUCTION_TEMPLATES.items()}


@dataclass(frozen=True)
class Edit:
    """One elementary edit. ``shape``/``color`` name the target; ``new_*`` what it becomes."""

    kind: str
    shape: str | None = None
    color: str | None = None
    new_shape: str | None = None
    new_color: str | None = None
    background: str | None = None

    def instruction(self) -> str:
        article = "an" if self.new_color and self.new_color[0] in "aeiou" else "a"
        return INSTRUCTION_TEMPLATES[self.kind].format(
            article=article, shape=self.shape, color=self.color, new_shape=self.new_shape,
            new_color=self.new_color, background=BACKGROUND_PHRASES.get(self.background or "", ""))


def instruction_for(edits: Sequence[Edit]) -> str:
    """One sentence per edit; a second one is joined with " Then " and starts lower-case."""
    first, *rest = [e.instruction() for e in edits]
    return "".join([first, *(COMPOSE_JOIN + s[0].lower() + s[1:] for s in rest)])


def edit_type_of(edits: Sequence[Edit]) -> str:
    return "compose" if len(edits) > 1 else edits[0].kind


def parse_instruction(text: str) -> list[Edit]:
    """Every templated edit found in ``text``, in order of appearance (empty if none)."""
    found = []
    for kind, regex in _INSTRUCTION_REGEXES.items():
        for match in regex.finditer(text):
            f = {k: v.lower() for k, v in match.groupdict().items() if k != "article"}
            if "background" in f:
                f["background"] = _BACKGROUND_OF[f["background"]]
            found.append((match.start(), Edit(kind, **f)))
    return [edit for _, edit in sorted(found, key=lambda pair: pair[0])]


# --------------------------------------------------------------------- edits on scene graphs
def _targets(scene: Scene, edit: Edit) -> list[int]:
    """Indices of the objects an edit names: shape and colour, else (a misread colour) shape only."""
    exact = [i for i, o in enumerate(scene.objects) if o.shape == edit.shape and o.color == edit.color]
    return exact or [i for i, o in enumerate(scene.objects) if o.shape == edit.shape]


def _apart(a: Sequence[float], b: Sequence[float]) -> bool:
    return a[2] + GAP <= b[0] or b[2] + GAP <= a[0] or a[3] + GAP <= b[1] or b[3] + GAP <= a[1]


def free_spot(scene: Scene, shape: str, color: str, rng: np.random.Generator,
              tries: int = 2000) -> ShapeObject | None:
    """A new object placed at random where it keeps ``GAP`` from every other, or None."""
    for _ in range(tries):
        size = float(rng.uniform(*ADDED_SIZE))
        cx, cy = (float(v) for v in rng.uniform(size / 2 + BORDER, 1 - size / 2 - BORDER, 2))
        cand = ShapeObject(shape, color, round(cx, 4), round(cy, 4), round(size, 4))
        box = cand.bbox()
        inside = box[0] >= BORDER and box[1] >= BORDER and box[2] <= 1 - BORDER and box[3] <= 1 - BORDER
        if inside and all(_apart(box, o.bbox()) for o in scene.objects):
            return cand
    return None


def apply_edit(scene: Scene, edit: Edit, rng: np.random.Generator) -> Scene:
    """``scene`` after ``edit``; an edit whose target is missing (or with no room) changes nothing."""
    objects = list(scene.objects)
    if edit.kind == "add":
        new = free_spot(scene, edit.new_shape, edit.new_color, rng)
        return replace(scene, objects=tuple(objects + [new])) if new else scene
    if edit.kind == "background":
        return replace(scene, background=edit.background)
    targets = _targets(scene, edit)
    if edit.kind == "remove":
        objects = [o for i, o in enumerate(objects) if i not in targets]
    elif edit.kind == "extract":
        objects = [o for i, o in enumerate(objects) if i in targets]
    elif edit.kind == "adjust":
        objects = [replace(o, color=edit.new_color) if i in targets else o for i, o in enumerate(objects)]
    elif edit.kind == "replace":
        objects = [replace(o, shape=edit.new_shape, color=edit.new_color) if i in targets else o
                   for i, o in enumerate(objects)]
    else:
        raise ValueError(f"unknown edit kind {edit.kind!r}")
    return replace(scene, objects=tuple(objects))


def apply_edits(scene: Scene, edits: Sequence[Edit], rng: np.random.Generator) -> Scene:
    for edit in edits:
        scene = apply_edit(scene, edit, rng)
    return scene


# ------------------------------------------------------------------------------------ the items
@dataclass(frozen=True)
class EditItem:
    key: str
    image_id: str  # "<subdir>/<file>.png", relative to the images folder
    edit_type: str
    edits: tuple[Edit, ...]
    scene: Scene  # the source

    @property
    def prompt(self) -> str:
        return instruction_for(self.edits)


def _pick(rng: np.random.Generator, options: Sequence) -> object:
    return options[int(rng.integers(len(options)))]


def _source_scene(rng: np.random.Generator, n_objects: int) -> Scene:
    shapes = [str(s) for s in rng.choice(SHAPES, n_objects, replace=False)]
    include = [{"class": s, "count": 1, "color": str(_pick(rng, COLORS))} for s in shapes]
    return scene_for_metadata({"include": include}, rng)


def _elementary(kind: str, scene: Scene, rng: np.random.Generator, taken: set[str]) -> Edit:
    """A random edit of ``kind`` on ``scene`` touching no shape in ``taken`` (which it extends)."""
    present = {o.shape for o in scene.objects}
    if kind == "add":
        shape = str(_pick(rng, [s for s in SHAPES if s not in present | taken]))
        taken.add(shape)
        return Edit("add", new_shape=shape, new_color=str(_pick(rng, COLORS)))
    if kind == "background":
        return Edit("background", background=str(_pick(rng, [b for b in sorted(BACKGROUND_PHRASES)
                                                                if b != scene.background])))
    target = _pick(rng, [o for o in scene.objects if o.shape not in taken])
    taken.add(target.shape)
    if kind == "replace":
        shape = str(_pick(rng, [s for s in SHAPES if s not in present | taken]))
        taken.add(shape)
        return Edit("replace", target.shape, target.color, shape, str(_pick(rng, COLORS)))
    if kind == "adjust":
        return Edit("adjust", target.shape, target.color,
                    new_color=str(_pick(rng, [c for c in COLORS if c != target.color])))
    return Edit(kind, target.shape, target.color)


def random_edit(rng: np.random.Generator, edit_type: str) -> tuple[Scene, tuple[Edit, ...]]:
    """A source scene and edits of ``edit_type`` that make sense on it (targets present, room left)."""
    lowest = {"add": 1, "background": 1}.get(edit_type, 2)  # others keep something to preserve
    scene = _source_scene(rng, int(rng.integers(lowest, 4)))
    kinds = ([str(k) for k in rng.choice(["add", "remove", "replace", "adjust", "background"], 2,
                                         replace=False)] if edit_type == "compose" else [edit_type])
    taken: set[str] = set()
    return scene, tuple(_elementary(kind, scene, rng, taken) for kind in kinds)


def imgedit_shapes_items(items: int = 18, seed: int = 0) -> list[EditItem]:
    """Item i has type ``EDIT_TYPES[i % 7]`` and depends only on (seed, i)."""
    out = []
    for i in range(items):
        edit_type = EDIT_TYPES[i % len(EDIT_TYPES)]
        scene, edits = random_edit(np.random.default_rng([seed, i]), edit_type)
        subdir = SUBDIRS.get(edit_type, DEFAULT_SUBDIR)
        out.append(EditItem(str(22 + 5 * i + i % 3), f"{subdir}/{100003 + 37 * i:09d}.png",
                            edit_type, edits, scene))
    return out


def judge_prompt(edit_type: str) -> str:
    """Our judge prompt for one type (not ImgEdit's wording; same reply format and rule)."""
    first, second, third = DIMENSIONS[edit_type]
    lines = [
        f"You grade an edit of a picture of flat coloured shapes (edit type: {edit_type}). The first "
        "image is the original, the second is the edited result. Give each aspect a whole score "
        "from 1 (worst) to 5 (best):",
        f"{first}: 5 if the instruction is carried out exactly (shape, colour, count, place), "
        "3 if partly, 1 if not at all.",
        f"{second}: 5 if everything the instruction does not mention is unchanged; one point "
        "less for each object or background that changed, moved or appeared without being asked.",
        f"{third}: 5 if every shape is flat, clean and well formed; lower for smeared, broken or "
        "blurred shapes.",
        "The second and third scores must not be higher than the first.",
        "Reply in exactly this format:",
        "Brief reasoning: why, in at most 20 words.",
        *(f"{name}: A number from 1 to 5." for name in (first, second, third)),
        f"Editing instruction: {PLACEHOLDER}",
    ]
    return "\n".join(lines)


def write_imgedit_shapes(folder: str | Path, items: int = 18, seed: int = 0, size: int = 128) -> Path:
    """Write ``basic_edit.json``, ``images/<subdir>/<file>.png`` and ``prompts.json``; returns ``folder``."""
    folder = Path(folder)
    chosen = imgedit_shapes_items(items, seed)
    entries = {}
    for item in chosen:
        save_png(render(item.scene, size=size), folder / "images" / item.image_id)
        entries[item.key] = {"id": item.image_id, "prompt": item.prompt, "edit_type": item.edit_type}
    order = np.random.default_rng(seed).permutation(len(chosen))  # the release lists keys unsorted
    listed = {chosen[i].key: entries[chosen[i].key] for i in order}
    atomic_write_text(folder / "basic_edit.json", json.dumps(listed, indent=4) + "\n")
    prompts = {edit_type: judge_prompt(edit_type) for edit_type in EDIT_TYPES}
    atomic_write_text(folder / "prompts.json", json.dumps(prompts, indent=4) + "\n")
    return folder
