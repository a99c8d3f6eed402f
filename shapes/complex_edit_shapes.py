"""Complex-Edit-format data over the shapes world: chains of eight edits, levels C1..C8.

``write_complex_edit_shapes(folder)`` writes, in the layout of ``UCSC-VLAA/Complex-Edit``:

- ``data/test_real-00000-of-00001.parquet`` and ``data/test_syn-00000-of-00001.parquet``: columns
  ``image`` (``struct<bytes, path>``) and ``edit`` (``sequence``: eight ``{name, instruction}``
  atomic edits; ``compound``: eight ``{reasoning, compound_instruction}``, level c joining the
  first c atomic edits with " Then ", as upstream's level c integrates the first c steps);
- ``complex_edit/eval/prompt_alignment.py`` and ``prompt_quality.py``: judge prompts under
  upstream's constant names (``ALIGNMENT_PROMPT_W_RUBRIC``, ``PROMPT_TEMPLATE``,
  ``PERCEPTUAL_QUALITY_PROMPT_W_RUBRIC_WO_INST``), in our own words for flat shapes, so the
  benchmark's ``prompts:`` can point at ``folder`` as it points at an upstream checkout.

A chain's edits act on the scene as the earlier ones left it (a recolour may follow an add of the
same object), over at most four objects of distinct shapes. "real" images have textured
backgrounds (gradient, speckle) and "syn" plain ones: the two splits differ as photographs differ
from renders, in a way the shapes detector still reads. ``profile`` (a ``shapes.world`` profile, default
the full world) bounds the scenes and edits: its shapes, colours and backgrounds only (a split's
backgrounds that the profile has; all of its own where it has none of them), at most its
``max_objects``, each box on its grid if it has one.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shapes.edits import Edit, apply_edit, elementary_edit, instruction_for, pick
from shapes.world import Scene, WorldProfile, get_profile, render, scene_for_metadata

LEVELS = 8
MAX_OBJECTS = 4
IMAGE_TYPES = ("real", "syn")
SPLIT_BACKGROUNDS = {"real": ("grey_gradient", "beige_speckle"), "syn": ("grey", "light_grey", "beige")}
OPERATION_NAMES = {"add": "Add an Object", "remove": "Remove an Object", "replace": "Replace an Object",
                   "adjust": "Change Color", "background": "Change Background"}

ALIGNMENT_PROMPT = """
You grade an edit of a picture of flat coloured shapes. The first image is the input, the second the
output, and a text instruction says what should change.

Give two integer scores in [0, 10]:
1. Instruction Following: the share of the instruction's atomic operations carried out in the output
(shape, colour, presence, background), 10 for all of them, 0 for none.
2. Identity Preservation: 10 if everything the instruction does not mention is unchanged; two points
less for each shape that moved, changed or appeared unasked, and for an unasked background change.
"""
TEMPLATE = """The instruction is:
{instruction}
"""
QUALITY_PROMPT = """
You grade a picture of flat coloured shapes. Give one integer score in [0, 10] for its perceptual
quality: 10 if every shape is flat, clean and well formed on a clean background; two points less
for each smeared or broken shape; 1 if the picture is noise.
"""


@dataclass(frozen=True)
class ComplexEditShapesItem:
    scene: Scene
    edits: tuple[Edit, ...]
    results: tuple[Scene, ...] = ()  # the scene each edit leaves, as drawn: level c should show results[c - 1]

    def compound(self, level: int) -> str:
        return instruction_for(self.edits[:level])


def split_backgrounds(image_type: str, profile: WorldProfile) -> tuple[str, ...]:
    """The split's backgrounds the profile has (``SPLIT_BACKGROUNDS`` in the full world); all of the
    profile's where it has none of them (the grid world's splits are both grey)."""
    return tuple(b for b in SPLIT_BACKGROUNDS[image_type] if b in profile.backgrounds) or profile.backgrounds


def _most_objects(profile: WorldProfile) -> int:
    return min(MAX_OBJECTS, profile.max_objects)


def _step(scene: Scene, rng: np.random.Generator, backgrounds: tuple[str, ...],
          profile: WorldProfile) -> tuple[Edit, Scene] | None:
    """One random edit that makes sense on ``scene`` (and its result), or None to draw again."""
    new_shape = len({o.shape for o in scene.objects}) < len(profile.shapes)  # one the scene lacks
    kinds = [kind for kind, possible in (("adjust", len(profile.colors) > 1), ("replace", new_shape),
                                         ("background", len(backgrounds) > 1)) if possible]
    kinds += ["add"] if new_shape and len(scene.objects) < _most_objects(profile) else []
    kinds += ["remove"] if len(scene.objects) > 1 else []
    if not kinds:
        raise ValueError(f"the {profile.name!r} world leaves no edit to make on {scene}")
    kind = str(pick(rng, kinds))
    edit = elementary_edit(kind, scene, rng, set(), profile, backgrounds)
    after = apply_edit(scene, edit, rng, profile, crowd=_most_objects(profile))
    if kind == "add" and len(after.objects) == len(scene.objects):
        return None  # no room
    return edit, after


def complex_edit_shapes_items(items: int = 6, seed: int = 0, image_type: str = "real",
                              profile: WorldProfile | str | None = None) -> list[ComplexEditShapesItem]:
    """Item i depends only on (seed, image_type, i, profile). Scenes and edits hold only what the
    profile has; on a grid, every box has the side a scene of the most objects a chain reaches allows."""
    profile = get_profile(profile)
    backgrounds = split_backgrounds(image_type, profile)
    out = []
    for i in range(items):
        rng = np.random.default_rng([seed, 11, IMAGE_TYPES.index(image_type), i])
        lowest, highest = min(2, len(profile.shapes)), min(3, len(profile.shapes), _most_objects(profile))
        shapes = [str(s) for s in rng.choice(profile.shapes, int(rng.integers(lowest, highest + 1)), replace=False)]
        include = [{"class": s, "count": 1, "color": str(pick(rng, profile.colors))} for s in shapes]
        source = scene_for_metadata({"include": include}, rng, backgrounds=backgrounds, profile=profile,
                                    crowd=_most_objects(profile))
        scene, edits, results = source, [], []
        while len(edits) < LEVELS:
            step = _step(scene, rng, backgrounds, profile)
            if step is not None:
                edits.append(step[0])
                scene = step[1]
                results.append(scene)
        out.append(ComplexEditShapesItem(source, tuple(edits), tuple(results)))
    return out


def _png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _prompt_module(constants: dict[str, str]) -> str:
    lines = ['"""Shapes-world judge prompts under Complex-Edit\'s constant names (our own wording)."""', ""]
    for name, value in constants.items():
        lines.append(f"{name} = {value!r}")
        lines.append("")
    return "\n".join(lines)


def write_complex_edit_shapes(folder: str | Path, items: int = 6, seed: int = 0, size: int = 128,
                              profile: WorldProfile | str | None = None) -> Path:
    """Both splits and the prompt files; returns ``folder``. The items are drawn from ``profile``
    (default: the full world)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(folder)
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    for split in IMAGE_TYPES:
        chosen = complex_edit_shapes_items(items, seed, split, profile)
        edits = [{"sequence": [{"name": OPERATION_NAMES[e.kind], "instruction": e.instruction()} for e in item.edits],
                  "compound": [{"reasoning": "none", "compound_instruction": item.compound(level)}
                               for level in range(1, LEVELS + 1)]} for item in chosen]
        table = pa.table({
            "image": pa.array([{"bytes": _png(render(item.scene, size=size)), "path": f"{n:05d}.png"}
                               for n, item in enumerate(chosen)], type=image_type),
            "edit": pa.array(edits)})
        features = {"image": {"_type": "Image"},
                    "edit": {"sequence": [{"name": {"dtype": "string", "_type": "Value"},
                                           "instruction": {"dtype": "string", "_type": "Value"}}],
                             "compound": [{"reasoning": {"dtype": "string", "_type": "Value"},
                                           "compound_instruction": {"dtype": "string", "_type": "Value"}}]}}
        table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
        path = folder / "data" / f"test_{split}-00000-of-00001.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
    prompts = folder / "complex_edit/eval"  # the layout of an upstream checkout
    prompts.mkdir(parents=True, exist_ok=True)
    (prompts / "prompt_alignment.py").write_text(_prompt_module(
        {"ALIGNMENT_PROMPT_W_RUBRIC": ALIGNMENT_PROMPT, "PROMPT_TEMPLATE": TEMPLATE}), encoding="utf-8")
    (prompts / "prompt_quality.py").write_text(_prompt_module(
        {"PERCEPTUAL_QUALITY_PROMPT_W_RUBRIC_WO_INST": QUALITY_PROMPT}), encoding="utf-8")
    return folder

