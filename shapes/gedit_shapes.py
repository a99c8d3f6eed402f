"""GEdit-Bench-format edits over the shapes world: a parquet file in the Hugging Face layout.

``write_gedit_shapes(folder)`` writes ``folder/data/train-00000-of-00001.parquet`` with the columns
of ``stepfun-ai/GEdit-Bench``: ``task_type``, ``key`` (32 hex digits), ``instruction``,
``instruction_language`` (``en``), ``input_image`` (the original the judge sees, ``size`` pixels,
256 by default: the judge sees it, and the edit resized to it, as JPEG),
``input_image_raw`` (the same scene drawn at 1.5 x ``size``: what the model edits) and
``Intersection_exist`` (every other item). Image columns are ``struct<bytes, path>`` with the
``huggingface`` schema metadata, so ``datasets`` decodes them too.

Five of GEdit's eleven edit types have a shapes-world counterpart; the instructions are
``shapes.edits``' templates, so the shapes editor can carry them out:

==================  ======================================================
GEdit task_type     instruction
==================  ======================================================
subject-add         Add a blue star to the image.
subject-remove      Remove the red circle from the image.
subject-replace     Replace the red circle with a green square.
color_alter         Change the color of the red circle to yellow.
background_change   Change the background to speckled beige.
==================  ======================================================

The other six (material, motion, portrait, style, text, tone) have no counterpart and are not
written; a run scores five types, and its averages are over those five (docs/GEDIT.md).
Instructions in Chinese are not written either: the shapes editor reads English templates.

``profile`` (a ``shapes.world`` profile, default the full world) bounds the scenes and edits: its
shapes, colours and plain backgrounds only, each box on its grid if it has one; a type the profile
cannot make is not written (``background_change`` in the one-background ``grid`` world).
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from shapes.edits import Edit, apply_edit, edit_types, elementary_edit, instruction_for, pick
from shapes.world import Scene, WorldProfile, get_profile, render, scene_for_metadata

#: GEdit task type -> the shapes.edits kind that stands for it, in GEdit's order
TYPE_KINDS: dict[str, str] = {"background_change": "background", "color_alter": "adjust", "subject-add": "add",
                              "subject-remove": "remove", "subject-replace": "replace"}
PARQUET_FILE = "data/train-00000-of-00001.parquet"
#: plain backgrounds only: a texture does not survive GEdit's resize of the edited image and the
#: JPEG encoding of the GPT call (a speckle drawn at 512 px and shrunk reads as plain)
BACKGROUNDS = ("grey", "light_grey", "beige")


@dataclass(frozen=True)
class GEditShapesItem:
    key: str
    task_type: str
    edits: tuple[Edit, ...]
    scene: Scene
    intersection: bool

    @property
    def instruction(self) -> str:
        return instruction_for(self.edits)


def backgrounds_of(profile: WorldProfile) -> tuple[str, ...]:
    """The profile's plain backgrounds (``BACKGROUNDS`` in the full world); all of its own if it has none."""
    return tuple(b for b in BACKGROUNDS if b in profile.backgrounds) or profile.backgrounds


def task_types(profile: WorldProfile | str | None = None) -> tuple[str, ...]:
    """The task types a profile can make (all five in the full world): ``edit_types`` of the profile
    with its plain backgrounds (``background_change`` needs two, ``subject-add`` and
    ``subject-replace`` a shape the source lacks)."""
    profile = get_profile(profile)
    possible = edit_types(replace(profile, backgrounds=backgrounds_of(profile)))
    return tuple(task for task, kind in TYPE_KINDS.items() if kind in possible)


def _source(rng: np.random.Generator, kind: str, profile: WorldProfile) -> Scene:
    """One to three objects of distinct shapes (two at least where an edit must leave something to
    preserve; fewer where an add or a replace would find no new shape or an add no room)."""
    lowest = 1 if kind in ("add", "background") else 2
    highest = min(3, len(profile.shapes) - (kind in ("add", "replace")), profile.max_objects - (kind == "add"))
    shapes = [str(s) for s in rng.choice(profile.shapes, int(rng.integers(lowest, highest + 1)), replace=False)]
    include = [{"class": s, "count": 1, "color": str(pick(rng, profile.colors))} for s in shapes]
    return scene_for_metadata({"include": include}, rng, backgrounds=backgrounds_of(profile), profile=profile,
                              crowd=len(shapes) + (kind == "add"))


def gedit_shapes_items(items: int = 10, seed: int = 0,
                       profile: WorldProfile | str | None = None) -> list[GEditShapesItem]:
    """Item i has type ``types[i % len(types)]``, ``types = task_types(profile)`` (``list(TYPE_KINDS)``
    in the full world), and depends only on (seed, i, profile). Scenes and edits hold only what the
    profile has; an added object goes where the profile places it (on its grid, if it has one)."""
    profile = get_profile(profile)
    types = task_types(profile)
    out = []
    for i in range(items):
        task_type = types[i % len(types)]
        kind = TYPE_KINDS[task_type]
        rng = np.random.default_rng([seed, 7, i])
        while True:  # until an add finds room
            scene = _source(rng, kind, profile)
            edit = elementary_edit(kind, scene, rng, set(), profile, backgrounds_of(profile))
            if kind != "add" or len(apply_edit(scene, edit, rng, profile).objects) > len(scene.objects):
                break
        key = hashlib.md5(f"gedit-shapes-{seed}-{i}".encode()).hexdigest()
        out.append(GEditShapesItem(key, task_type, (edit,), scene, i % 2 == 0))
    return out


def _png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_gedit_shapes(folder: str | Path, items: int = 10, seed: int = 0, size: int = 256,
                       profile: WorldProfile | str | None = None) -> Path:
    """Write the parquet file (rows grouped by type, in GEdit's order, as the release is); returns
    ``folder``. The items are drawn from ``profile`` (default: the full world)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(folder)
    chosen = sorted(gedit_shapes_items(items, seed, profile), key=lambda item: list(TYPE_KINDS).index(item.task_type))
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    columns = {
        "task_type": pa.array([item.task_type for item in chosen]),
        "key": pa.array([item.key for item in chosen]),
        "instruction": pa.array([item.instruction for item in chosen]),
        "instruction_language": pa.array(["en"] * len(chosen)),
        "input_image": pa.array([{"bytes": _png(render(item.scene, size=size)), "path": f"{item.key}.png"}
                                 for item in chosen], type=image_type),
        "input_image_raw": pa.array([{"bytes": _png(render(item.scene, size=size * 3 // 2)),
                                      "path": f"{item.key}_raw.png"} for item in chosen], type=image_type),
        "Intersection_exist": pa.array([item.intersection for item in chosen]),
    }
    value = {"dtype": "string", "_type": "Value"}
    features = {"task_type": value, "key": value, "instruction": value, "instruction_language": value,
                "input_image": {"_type": "Image"}, "input_image_raw": {"_type": "Image"},
                "Intersection_exist": {"dtype": "bool", "_type": "Value"}}
    table = pa.table(columns).replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    path = folder / PARQUET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return folder
