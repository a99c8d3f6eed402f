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
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shapes.edits import Edit, apply_edit, instruction_for
from shapes.world import COLORS, SHAPES, Scene, render, scene_for_metadata

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


def _pick(rng: np.random.Generator, options) -> object:
    return options[int(rng.integers(len(options)))]


def _edit(kind: str, scene: Scene, rng: np.random.Generator) -> Edit | None:
    """One edit of ``kind`` that makes sense on ``scene`` (None: no room for an add)."""
    present = {o.shape: o for o in scene.objects}
    absent = [s for s in SHAPES if s not in present]
    if kind == "background":
        return Edit("background", background=str(_pick(rng, [b for b in BACKGROUNDS if b != scene.background])))
    if kind == "add":
        edit = Edit("add", new_shape=str(_pick(rng, absent)), new_color=str(_pick(rng, COLORS)))
        return edit if len(apply_edit(scene, edit, rng).objects) > len(scene.objects) else None
    target = _pick(rng, list(present.values()))
    if kind == "remove":
        return Edit("remove", target.shape, target.color)
    if kind == "adjust":
        return Edit("adjust", target.shape, target.color, new_color=str(_pick(rng, [c for c in COLORS if c != target.color])))
    return Edit("replace", target.shape, target.color, str(_pick(rng, absent)), str(_pick(rng, COLORS)))


def gedit_shapes_items(items: int = 10, seed: int = 0) -> list[GEditShapesItem]:
    """Item i has type ``list(TYPE_KINDS)[i % 5]`` and depends only on (seed, i)."""
    types = list(TYPE_KINDS)
    out = []
    for i in range(items):
        task_type = types[i % len(types)]
        rng = np.random.default_rng([seed, 7, i])
        while True:
            lowest = 1 if TYPE_KINDS[task_type] in ("add", "background") else 2  # others keep something to preserve
            shapes = [str(s) for s in rng.choice(SHAPES, int(rng.integers(lowest, 4)), replace=False)]
            include = [{"class": s, "count": 1, "color": str(_pick(rng, COLORS))} for s in shapes]
            scene = scene_for_metadata({"include": include}, rng, backgrounds=BACKGROUNDS)
            edit = _edit(TYPE_KINDS[task_type], scene, rng)
            if edit is not None:
                break
        key = hashlib.md5(f"gedit-shapes-{seed}-{i}".encode()).hexdigest()
        out.append(GEditShapesItem(key, task_type, (edit,), scene, i % 2 == 0))
    return out


def _png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_gedit_shapes(folder: str | Path, items: int = 10, seed: int = 0, size: int = 256, profile: Any = None) -> Path:
    """Write the parquet file (rows grouped by type, in GEdit's order, as the release is); returns ``folder``.
    The data are always of the full world (``profile`` is accepted and not applied)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(folder)
    chosen = sorted(gedit_shapes_items(items, seed), key=lambda item: list(TYPE_KINDS).index(item.task_type))
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
