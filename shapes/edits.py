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
from shapes.world import (BORDER, COLORS, GAP, MIN_SIZE, SHAPES, Scene, ShapeObject, WorldProfile, boxes_apart,
                          get_profile, grid_spots, render, scene_for_metadata, template_pattern)

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


def free_spot(scene: Scene, shape: str, color: str, rng: np.random.Generator, tries: int = 2000,
              profile: WorldProfile | str | None = None, crowd: int | None = None) -> ShapeObject | None:
    """A new object placed at random where it keeps ``GAP`` from every other, or None. On a grid
    profile: a random free grid spot of the side a scene of that many objects (or of ``crowd``, the
    most a chain of edits may reach) allows."""
    profile = get_profile(profile)
    if profile.grid:
        if len(scene.objects) >= profile.max_objects:
            return None
        crowd = max(len(scene.objects) + 1, crowd or 0)
        spots = grid_spots(profile, scene.objects, shape, color, profile.sides_for(crowd))
        return spots[int(rng.integers(len(spots)))] if spots else None
    for _ in range(tries):
        size = float(rng.uniform(*ADDED_SIZE))
        cx, cy = (float(v) for v in rng.uniform(size / 2 + BORDER, 1 - size / 2 - BORDER, 2))
        cand = ShapeObject(shape, color, round(cx, 4), round(cy, 4), round(size, 4))
        box = cand.bbox()
        inside = box[0] >= BORDER and box[1] >= BORDER and box[2] <= 1 - BORDER and box[3] <= 1 - BORDER
        if inside and all(boxes_apart(box, o.bbox(), GAP) for o in scene.objects):
            return cand
    return None


def apply_edit(scene: Scene, edit: Edit, rng: np.random.Generator,
               profile: WorldProfile | str | None = None, crowd: int | None = None) -> Scene:
    """``scene`` after ``edit``; an edit whose target is missing (or with no room) changes nothing.
    ``profile`` places an added object (on its grid, if it has one; ``crowd``: see ``free_spot``)."""
    objects = list(scene.objects)
    if edit.kind == "add":
        new = free_spot(scene, edit.new_shape, edit.new_color, rng, profile=profile, crowd=crowd)
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


def apply_edits(scene: Scene, edits: Sequence[Edit], rng: np.random.Generator,
                profile: WorldProfile | str | None = None) -> Scene:
    for edit in edits:
        scene = apply_edit(scene, edit, rng, profile)
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


def pick(rng: np.random.Generator, options: Sequence) -> object:
    """One of ``options``, uniformly (one draw of ``rng``)."""
    return options[int(rng.integers(len(options)))]


def _source_scene(rng: np.random.Generator, n_objects: int, profile: WorldProfile, crowd: int) -> Scene:
    """``n_objects`` objects of distinct shapes, sized (on a grid) for a scene of ``crowd`` objects."""
    shapes = [str(s) for s in rng.choice(profile.shapes, n_objects, replace=False)]
    include = [{"class": s, "count": 1, "color": str(pick(rng, profile.colors))} for s in shapes]
    return scene_for_metadata({"include": include}, rng, profile=profile, crowd=crowd)


def elementary_edit(kind: str, scene: Scene, rng: np.random.Generator, taken: set[str], profile: WorldProfile,
                    backgrounds: Sequence[str] | None = None) -> Edit:
    """A random edit of ``kind`` on ``scene`` touching no shape in ``taken`` (which it extends), over
    the profile's shapes and colours; a new background from ``backgrounds`` (default: the profile's,
    sorted), other than the scene's. The caller makes sure the kind can be made (a target left, a
    new shape for add and replace, another background or colour)."""
    present = {o.shape for o in scene.objects}
    if kind == "add":
        shape = str(pick(rng, [s for s in profile.shapes if s not in present | taken]))
        taken.add(shape)
        return Edit("add", new_shape=shape, new_color=str(pick(rng, profile.colors)))
    if kind == "background":
        options = sorted(profile.backgrounds) if backgrounds is None else backgrounds
        return Edit("background", background=str(pick(rng, [b for b in options if b != scene.background])))
    target = pick(rng, [o for o in scene.objects if o.shape not in taken])
    taken.add(target.shape)
    if kind == "replace":
        shape = str(pick(rng, [s for s in profile.shapes if s not in present | taken]))
        taken.add(shape)
        return Edit("replace", target.shape, target.color, shape, str(pick(rng, profile.colors)))
    if kind == "adjust":
        return Edit("adjust", target.shape, target.color,
                    new_color=str(pick(rng, [c for c in profile.colors if c != target.color])))
    return Edit(kind, target.shape, target.color)


#: shapes an edit kind needs that are not in the source scene (a new one for add and replace)
_NEW_SHAPES = {"add": 1, "replace": 1}
_COMPOSABLE = ("add", "remove", "replace", "adjust", "background")


def edit_types(profile: WorldProfile | str | None = None) -> tuple[str, ...]:
    """The edit types a profile can make: ``background`` needs two backgrounds, ``adjust`` two
    colours, ``add`` and ``replace`` a shape that is not in the (one- or two-object) source scene;
    all seven in the full world."""
    profile = get_profile(profile)
    possible = {"background": len(profile.backgrounds) >= 2, "adjust": len(profile.colors) >= 2,
                "add": len(profile.shapes) >= 2, "replace": len(profile.shapes) >= 3}
    return tuple(t for t in EDIT_TYPES if possible.get(t, True))


def random_edit(rng: np.random.Generator, edit_type: str,
                profile: WorldProfile | str | None = None) -> tuple[Scene, tuple[Edit, ...]]:
    """A source scene and edits of ``edit_type`` that make sense on it (targets present, room
    left, a new shape for add and replace), over the profile's shapes, colours and backgrounds."""
    profile = get_profile(profile)
    if edit_type not in edit_types(profile):
        raise ValueError(f"the {profile.name!r} world cannot make {edit_type!r} edits "
                         f"(it can: {', '.join(edit_types(profile))})")
    lowest = {"add": 1, "background": 1}.get(edit_type, 2)  # others keep something to preserve
    # at most 3 objects, fewer when the profile's shapes would run out for add and replace
    highest = min(3, len(profile.shapes) - _NEW_SHAPES.get(edit_type, 0), profile.max_objects - 1)
    if edit_type == "compose":
        highest = min(3, len(profile.shapes) - 1, profile.max_objects - 1)
    n_objects = int(rng.integers(lowest, max(lowest, highest) + 1))
    while True:  # on a grid, until an add finds room (the first draw in a world without a grid)
        # an add may follow: on a grid, the source's boxes are sized for the scene after it
        scene = _source_scene(rng, n_objects, profile, crowd=n_objects + (edit_type in ("add", "compose")))
        if edit_type == "compose":
            allowed = [k for k in _COMPOSABLE if k in edit_types(profile)]
            while True:  # two kinds the scene leaves shapes for (always the first draw in the full world)
                kinds = [str(k) for k in rng.choice(allowed, 2, replace=False)]
                if n_objects + sum(_NEW_SHAPES.get(k, 0) for k in kinds) <= len(profile.shapes):
                    break
        else:
            kinds = [edit_type]
        if not profile.grid or "add" not in kinds or grid_spots(
                profile, scene.objects, profile.shapes[0], profile.colors[0], profile.sides_for(n_objects + 1)):
            break
    taken: set[str] = set()
    return scene, tuple(elementary_edit(kind, scene, rng, taken, profile) for kind in kinds)


def imgedit_shapes_items(items: int = 18, seed: int = 0, profile: WorldProfile | str | None = None) -> list[EditItem]:
    """Item i has type ``types[i % len(types)]`` with ``types = edit_types(profile)`` (the seven
    ``EDIT_TYPES`` in the full world) and depends only on (seed, i, profile)."""
    profile = get_profile(profile)
    types = edit_types(profile)
    out = []
    for i in range(items):
        edit_type = types[i % len(types)]
        scene, edits = random_edit(np.random.default_rng([seed, i]), edit_type, profile)
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


def write_imgedit_shapes(folder: str | Path, items: int = 18, seed: int = 0, size: int = 128,
                         profile: WorldProfile | str | None = None) -> Path:
    """Write ``basic_edit.json``, ``images/<subdir>/<file>.png`` and ``prompts.json``; returns ``folder``."""
    folder = Path(folder)
    chosen = imgedit_shapes_items(items, seed, profile)
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
