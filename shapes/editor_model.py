"""``shapes-editor``: a procedural image-editing "model" for the shapes world.

It reads an instruction written by ``shapes.edits`` (one edit, or two joined with
"Then"), reads the source scene back from the pixels with the shapes detector (never from a scene
graph), applies the edits to that scene and renders the result at the source's size. Randomness
(where an added object goes, the grain of a speckled background) comes from the request's seed,
so the output is deterministic. An instruction it cannot parse leaves the picture as it reads it,
which an edit judge scores as non-compliant. It is the ceiling a perfect editor reaches on the
shapes-world ImgEdit files, and a check of the judge's scale.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

from harness.models.base import Request
from harness.registry import register
from shapes.edits import apply_edits, parse_instruction
from shapes.procedural import ProceduralShapesModel
from shapes.vqa_judge import Observation, observe
from shapes.profiles import WorldProfile, get_profile, grid_object
from shapes.world import Scene, ShapeObject, render, unit_extent

FALLBACK_BACKGROUND = "grey"  # when the background words match no shapes-world background


def scene_from_observation(view: Observation, texture_seed: int = 0,
                           profile: WorldProfile | str | None = None) -> Scene:
    """The scene graph an observation implies: box centres and widths in [0, 1] units; on a grid
    profile, each box snapped to the nearest grid cells (the only places an object can be there)."""
    profile = get_profile(profile)
    objects = []
    for det in view.objects:
        cx, cy = view.centre(det)
        size = view.width_of(det) / unit_extent(det.label)[0]
        if profile.grid:
            side = max(1, round(size * profile.grid))
            x0, y0 = round(cx * profile.grid - side / 2), round(cy * profile.grid - side / 2)
            objects.append(grid_object(det.label, det.color, x0, y0, side, profile))
        else:
            objects.append(ShapeObject(det.label, det.color, round(cx, 4), round(cy, 4), round(size, 4)))
    objects.sort(key=lambda o: (o.cy, o.cx))  # drawing order must not depend on detection scores
    return Scene(tuple(objects), view.background or FALLBACK_BACKGROUND, texture_seed)


@register("model", "shapes-editor")
class ShapesEditor(ProceduralShapesModel):
    """Carries out shapes-world edit instructions from pixels; deterministic."""

    capabilities = frozenset({"edit"})
    version = "1"

    def edit_one(self, request: Request) -> Image.Image:
        if not request.images:
            raise ValueError(f"sample {request.sample_id}: an edit request needs a source image")
        source = request.images[0].load().convert("RGB")
        texture_seed = request.seed % 2**31
        scene = scene_from_observation(observe(source, self.detector), texture_seed, self.profile)
        edited = apply_edits(scene, parse_instruction(request.prompt), np.random.default_rng(request.seed),
                             profile=self.profile)
        return render(edited, size=self.size or source.width)

    def edit_images(self, requests: Sequence[Request]) -> list[Image.Image]:
        return [self.edit_one(request) for request in requests]
