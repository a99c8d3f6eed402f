"""The shapes world as a data recipe: text-to-image pairs, edit triplets and yes/no questions, exact
and offline.

``shapes-world`` (source) draws prompts in the templates of the shapes GenEval prompts and edits
of the shapes ImgEdit items, each with the scene graph that realises it; ``shapes-questions``
(source) draws MME-style yes/no questions with their scenes and answers, for understanding SFT in
the LLaVA layout; ``shapes-render`` draws the scenes. Every image is exactly what its text says, so
a model trained on these rows can be scored by the same procedural judges. Row ``i`` depends only on
(recipe seed, its id).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from harness.recipe import Source, Step, StepContext
from harness.registry import register
from shapes.edits import EDIT_TYPES, apply_edits, instruction_for, random_edit
from shapes.prompts import TAGS, random_geneval_prompt
from shapes.understanding import MME_SUBTASKS, MME_SUFFIX, yes_no_question
from shapes.world import BACKGROUNDS, Scene, render, scene_for_metadata


@register("generator", "shapes-world")
class ShapesWorld(Source):
    """``t2i`` text-to-image rows (``t2i-00000`` ...) and ``edits`` edit rows (``edit-00000`` ...).

    Fields: ``input_prompt`` (prompt or instruction), ``task`` (the GenEval tag or the edit type),
    ``scene`` (the target scene graph) and ``input_scene`` (the source scene of an edit, else None).
    ``backgrounds`` limits the text-to-image scenes' backgrounds (a recipe choice: plain backgrounds
    are fewer image tokens to learn than speckled ones).
    """

    outputs = ("input_prompt", "task", "scene", "input_scene")

    def __init__(self, t2i: int = 100, edits: int = 0, tags: Sequence[str] = TAGS,
                 edit_types: Sequence[str] = EDIT_TYPES, backgrounds: Sequence[str] = tuple(BACKGROUNDS)):
        unknown = ([t for t in tags if t not in TAGS] + [e for e in edit_types if e not in EDIT_TYPES]
                   + [b for b in backgrounds if b not in BACKGROUNDS])
        if unknown or t2i < 0 or edits < 0:
            raise ValueError(f"t2i and edits must be >= 0; tags from {TAGS}, edit_types from {EDIT_TYPES}, "
                             f"backgrounds from {tuple(BACKGROUNDS)}"
                             + (f" (unknown: {unknown})" if unknown else ""))
        self.t2i, self.edits = int(t2i), int(edits)
        self.tags, self.edit_types = tuple(tags), tuple(edit_types)
        if not backgrounds:
            raise ValueError("backgrounds must name at least one background")
        self.backgrounds = tuple(backgrounds)

    def rows(self, ctx: StepContext) -> list[dict[str, Any]]:
        rows = []
        for i in range(self.t2i):
            row_id = f"t2i-{i:05d}"
            rng = np.random.default_rng(ctx.seed(row_id))
            metadata = random_geneval_prompt(rng, self.tags)
            scene = scene_for_metadata(metadata, rng, backgrounds=self.backgrounds)
            rows.append({"id": row_id, "input_prompt": metadata["prompt"], "task": metadata["tag"],
                         "scene": scene.to_dict(), "input_scene": None})
        for i in range(self.edits):
            row_id = f"edit-{i:05d}"
            rng = np.random.default_rng(ctx.seed(row_id))
            edit_type = self.edit_types[int(rng.integers(len(self.edit_types)))]
            source, edits = random_edit(rng, edit_type)
            target = apply_edits(source, edits, rng)
            rows.append({"id": row_id, "input_prompt": instruction_for(edits), "task": edit_type,
                         "scene": target.to_dict(), "input_scene": source.to_dict()})
        return rows


@register("generator", "shapes-questions")
class ShapesQuestions(Source):
    """``count`` rows (``qa-00000`` ...) of one yes/no question each, in the shapes MME benchmark's
    templates and subtasks (its builders, drawn from the recipe's seeds, not the benchmark's): the
    true or the false question of a scene with equal odds, and the answer "Yes" or "No".

    Fields: ``question`` (suffix " Please answer yes or no." included), ``caption`` (the answer: the
    LLaVA export's gpt turn), ``task`` (the subtask) and ``scene``; render them with
    ``shapes-render`` (``image_field: image, input_scenes: false``) for the ``llava`` export.
    """

    outputs = ("question", "caption", "task", "scene")

    def __init__(self, count: int = 100, subtasks: Sequence[str] = MME_SUBTASKS):
        unknown = [t for t in subtasks if t not in MME_SUBTASKS]
        if unknown or not subtasks or count < 0:
            raise ValueError(f"count must be >= 0 and subtasks a non-empty list from {MME_SUBTASKS}"
                             + (f" (unknown: {unknown})" if unknown else ""))
        self.count, self.subtasks = int(count), tuple(subtasks)

    def rows(self, ctx: StepContext) -> list[dict[str, Any]]:
        rows = []
        for i in range(self.count):
            row_id = f"qa-{i:05d}"
            rng = np.random.default_rng(ctx.seed(row_id))
            subtask = self.subtasks[int(rng.integers(len(self.subtasks)))]
            scene, yes, no = yes_no_question(subtask, rng)
            truth = bool(rng.random() < 0.5)
            rows.append({"id": row_id, "question": (yes if truth else no) + MME_SUFFIX,
                         "caption": "Yes" if truth else "No", "task": subtask, "scene": scene.to_dict()})
        return rows


@register("generator", "shapes-render")
class ShapesRender(Step):
    """Render ``scene`` to ``output_image`` (or the field ``image_field`` names, e.g. ``image`` for the
    LLaVA export) and, with ``input_scenes``, ``input_scene`` (edit rows) to ``input_image`` (a list)."""

    outputs = ("output_image", "input_image")
    transport_params = ("batch_size",)

    def __init__(self, size: int = 64, batch_size: int = 64, image_field: str = "output_image",
                 input_scenes: bool = True):
        if image_field in ("scene", "input_scene", "input_image"):
            raise ValueError(f"image_field {image_field!r} would overwrite a scene or the input image")
        self.size = int(size)
        self.batch_size = int(batch_size)
        self.image_field = image_field
        # input_scenes=False: rows without edit sources (shapes-questions) have no input_scene to read
        self.input_scenes = bool(input_scenes)
        self.inputs = ("scene", "input_scene") if self.input_scenes else ("scene",)
        self.outputs = (image_field, "input_image") if self.input_scenes else (image_field,)

    def generate(self, rows: Sequence[dict], ctx: StepContext) -> list[Any]:
        out = []
        for row in rows:
            drawn = {self.image_field: ctx.save_image(render(Scene.from_dict(row["scene"]), self.size))}
            if self.input_scenes:
                source = row.get("input_scene")
                drawn["input_image"] = [ctx.save_image(render(Scene.from_dict(source), self.size))] if source else []
            out.append(drawn)
        return out
