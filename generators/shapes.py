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
from shapes.edits import apply_edits, edit_types as profile_edit_types, instruction_for, random_edit
from shapes.prompts import NUMBER_WORDS, TAGS, max_count, random_geneval_prompt
from shapes.understanding import MME_SUBTASKS, MME_SUFFIX, yes_no_question
from shapes.world import PLURALS, PROFILES, Scene, get_profile, render, scene_for_metadata


@register("generator", "shapes-world")
class ShapesWorld(Source):
    """``t2i`` text-to-image rows (``t2i-00000`` ...) and ``edits`` edit rows (``edit-00000`` ...).

    Fields: ``input_prompt`` (prompt or instruction), ``task`` (the GenEval tag or the edit type),
    ``scene`` (the target scene graph) and ``input_scene`` (the source scene of an edit, else None).
    ``profile`` names the world profile (``shapes.world.PROFILES``: what scenes may hold and how
    objects are placed; default ``full``); ``backgrounds`` limits the text-to-image scenes'
    backgrounds among the profile's (a recipe choice: plain backgrounds are fewer image tokens to
    learn than speckled ones); ``edit_types`` default to those the profile can make.
    """

    outputs = ("input_prompt", "task", "scene", "input_scene")

    def __init__(self, t2i: int = 100, edits: int = 0, tags: Sequence[str] = TAGS,
                 edit_types: Sequence[str] | None = None, backgrounds: Sequence[str] | None = None,
                 profile: str = "full"):
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {tuple(PROFILES)}, got {profile!r}")
        self.profile = get_profile(profile)
        allowed_edits = profile_edit_types(self.profile)
        edit_types_of = tuple(allowed_edits if edit_types is None else edit_types)
        backgrounds = self.profile.backgrounds if backgrounds is None else tuple(backgrounds)
        unknown = ([t for t in tags if t not in TAGS] + [e for e in edit_types_of if e not in allowed_edits]
                   + [b for b in backgrounds if b not in self.profile.backgrounds])
        if unknown or t2i < 0 or edits < 0:
            raise ValueError(f"t2i and edits must be >= 0; tags from {TAGS}, edit_types from {allowed_edits}, "
                             f"backgrounds from {self.profile.backgrounds} (profile {profile!r})"
                             + (f" (unknown: {unknown})" if unknown else ""))
        self.t2i, self.edits = int(t2i), int(edits)
        self.tags, self.edit_types = tuple(tags), edit_types_of
        if not backgrounds:
            raise ValueError("backgrounds must name at least one background")
        self.backgrounds = tuple(backgrounds)

    def rows(self, ctx: StepContext) -> list[dict[str, Any]]:
        rows = []
        for i in range(self.t2i):
            row_id = f"t2i-{i:05d}"
            rng = np.random.default_rng(ctx.seed(row_id))
            metadata = random_geneval_prompt(rng, self.tags, profile=self.profile)
            scene = scene_for_metadata(metadata, rng, backgrounds=self.backgrounds, profile=self.profile)
            rows.append({"id": row_id, "input_prompt": metadata["prompt"], "task": metadata["tag"],
                         "scene": scene.to_dict(), "input_scene": None})
        for i in range(self.edits):
            row_id = f"edit-{i:05d}"
            rng = np.random.default_rng(ctx.seed(row_id))
            edit_type = self.edit_types[int(rng.integers(len(self.edit_types)))]
            source, edits = random_edit(rng, edit_type, self.profile)
            target = apply_edits(source, edits, rng, self.profile)
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
    ``profile``: the world profile the scenes and questions are drawn from (default ``full``).
    """

    outputs = ("question", "caption", "task", "scene")

    def __init__(self, count: int = 100, subtasks: Sequence[str] = MME_SUBTASKS, profile: str = "full"):
        unknown = [t for t in subtasks if t not in MME_SUBTASKS]
        if unknown or not subtasks or count < 0:
            raise ValueError(f"count must be >= 0 and subtasks a non-empty list from {MME_SUBTASKS}"
                             + (f" (unknown: {unknown})" if unknown else ""))
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {tuple(PROFILES)}, got {profile!r}")
        self.count, self.subtasks = int(count), tuple(subtasks)
        self.profile = get_profile(profile)

    def rows(self, ctx: StepContext) -> list[dict[str, Any]]:
        rows = []
        for i in range(self.count):
            row_id = f"qa-{i:05d}"
            rng = np.random.default_rng(ctx.seed(row_id))
            subtask = self.subtasks[int(rng.integers(len(self.subtasks)))]
            scene, yes, no = yes_no_question(subtask, rng, self.profile)
            truth = bool(rng.random() < 0.5)
            rows.append({"id": row_id, "question": (yes if truth else no) + MME_SUFFIX,
                         "caption": "Yes" if truth else "No", "task": subtask, "scene": scene.to_dict()})
        return rows


@register("generator", "shapes-render")
class ShapesRender(Step):
    """Render ``scene`` to ``output_image`` (or the field ``image_field`` names, e.g. ``image`` for the
    LLaVA export) and, with ``input_scenes``, ``input_scene`` (edit rows) to ``input_image`` (a list).
    ``size`` defaults to the image size of ``profile`` (64 px in the full world, 32 in ``grid``)."""

    outputs = ("output_image", "input_image")
    transport_params = ("batch_size",)

    def __init__(self, size: int | None = None, batch_size: int = 64, image_field: str = "output_image",
                 input_scenes: bool = True, profile: str = "full"):
        if image_field in ("scene", "input_scene", "input_image"):
            raise ValueError(f"image_field {image_field!r} would overwrite a scene or the input image")
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {tuple(PROFILES)}, got {profile!r}")
        self.size = int(get_profile(profile).image_size if size is None else size)
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


CAPTION_ERRORS: tuple[str, ...] = ("shape", "color", "count")


@register("generator", "shapes-wrong-captions")
class ShapesWrongCaptions(Step):
    """A worse recipe on purpose: ``share`` of the text-to-image rows whose prompt names one of
    ``kinds`` (``shape``, ``color``, ``count``) get a caption that is wrong in one of those words; the
    image stays. A shape becomes another shape of the profile that the prompt does not name (plural
    kept), a colour another colour of the profile, a count another count the profile's counting
    prompts use; articles are fixed. Which rows and which words depend only on (recipe seed, row
    id). Edit rows and prompts naming none of the kinds pass unchanged.

    Fields: ``input_prompt`` (the caption, wrong or not), ``true_prompt`` (the caption the image
    was drawn for) and ``caption_error`` ("" or what was made wrong, e.g. "color: red -> blue").
    """

    inputs = ("input_prompt", "task")
    outputs = ("input_prompt", "true_prompt", "caption_error")

    def __init__(self, share: float = 0.5, kinds: Sequence[str] = ("color", "count"), profile: str = "full"):
        if not isinstance(share, (int, float)) or isinstance(share, bool) or not 0 <= share <= 1:
            raise ValueError(f"share must be a number from 0 to 1, got {share!r}")
        unknown = [k for k in kinds if k not in CAPTION_ERRORS]
        if unknown or not kinds:
            raise ValueError(f"kinds must be a non-empty list from {CAPTION_ERRORS}"
                             + (f" (unknown: {unknown})" if unknown else ""))
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {tuple(PROFILES)}, got {profile!r}")
        self.share, self.kinds = float(share), tuple(kinds)
        self.profile = get_profile(profile)
        self.numbers = {word: n for n, word in NUMBER_WORDS.items() if n <= max_count(self.profile)}
        self.plurals = {PLURALS[shape]: shape for shape in self.profile.shapes}  # plural -> singular

    def _positions(self, words: list[str]) -> list[tuple[str, int]]:
        found = []
        for index, word in enumerate(words):
            if "color" in self.kinds and word in self.profile.colors:
                found.append(("color", index))
            elif "count" in self.kinds and word in self.numbers and len(self.numbers) > 1:
                found.append(("count", index))
            elif "shape" in self.kinds and (word in self.profile.shapes or word in self.plurals):
                found.append(("shape", index))
        return found

    def _replacement(self, kind: str, old: str, words: list[str], rng: np.random.Generator) -> str | None:
        if kind == "color":
            pool = [c for c in self.profile.colors if c != old]
        elif kind == "count":
            pool = [w for w in self.numbers if w != old]
        else:  # a shape the prompt does not name, in the same number
            named = {self.plurals.get(w, w) for w in words}
            pool = [s for s in self.profile.shapes if s not in named]
            pool = [PLURALS[s] for s in pool] if old in self.plurals else pool
        return pool[int(rng.integers(len(pool)))] if pool else None

    def generate(self, rows: Sequence[dict], ctx: StepContext) -> list[Any]:
        out = []
        for row in rows:
            prompt, error = row["input_prompt"], ""
            words = prompt.split(" ")
            found = self._positions(words) if row["task"] in TAGS else []
            rng = np.random.default_rng(ctx.seed(row))
            if found and rng.random() < self.share:
                kind, index = found[int(rng.integers(len(found)))]
                old = words[index]
                new = self._replacement(kind, old, words, rng)
                if new is not None:
                    words[index] = new
                    if index and words[index - 1] in ("a", "an"):
                        words[index - 1] = "an" if new[0] in "aeiou" else "a"
                    error = f"{kind}: {old} -> {new}"
            out.append({"input_prompt": " ".join(words), "true_prompt": prompt, "caption_error": error})
        return out
