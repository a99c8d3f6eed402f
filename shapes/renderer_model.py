"""``shapes-renderer``: a procedural text-to-image "model" for the shapes world.

It reads a GenEval-style shapes prompt ("a photo of a red circle left of a blue star") or a
DPG-style dense prompt written by ``shapes.dense`` (groups, counts, colours, relations and
a background), builds a scene graph that satisfies it and renders it. It is the ceiling a perfect
model would reach on the shapes-world benchmarks, a sanity check for judges, and a data source for
recipes. It sees only the prompt text, like any model; a prompt it cannot parse gets an empty
background.
"""
from __future__ import annotations

import re
from typing import Sequence

import numpy as np
from PIL import Image

from harness.hashing import hash_value
from harness.models.base import ModelAdapter, Request
from harness.registry import register
from shapes.dense import parse_dense_prompt, scene_for_spec
from shapes.prompts import NUMBER_WORDS
from shapes.world import COLORS, PLURALS, PROFILES, RELATIONS, SHAPES, Scene, get_profile, render, scene_for_metadata

_COLOR = "|".join(COLORS)
_SHAPE = "|".join(SHAPES)
_OBJECT = rf"an? (?:(?P<{{c}}>{_COLOR}) )?(?P<{{s}}>{_SHAPE})"
_PATTERNS = [
    re.compile(rf"^a photo of {_OBJECT.format(c='ca', s='a')} (?P<rel>{'|'.join(RELATIONS)}) "
               rf"{_OBJECT.format(c='cb', s='b')}$"),
    re.compile(rf"^a photo of {_OBJECT.format(c='ca', s='a')} and {_OBJECT.format(c='cb', s='b')}$"),
    re.compile(rf"^a photo of (?P<n>{'|'.join(NUMBER_WORDS.values())}) (?P<plural>{'|'.join(PLURALS.values())})$"),
    re.compile(rf"^a photo of {_OBJECT.format(c='ca', s='a')}$"),
]
_NUMBERS = {word: n for n, word in NUMBER_WORDS.items()}
_SINGULAR = {plural: shape for shape, plural in PLURALS.items()}


def _clause(shape: str, color: str | None) -> dict:
    return {"class": shape, "count": 1, **({"color": color} if color else {})}


def metadata_from_prompt(prompt: str) -> dict | None:
    """The GenEval-style include/exclude clauses a shapes prompt asks for, or None."""
    text = prompt.strip().lower()
    for pattern in _PATTERNS:
        match = pattern.match(text)
        if not match:
            continue
        parts = match.groupdict()
        if "rel" in parts:  # "A rel B": B is the reference, clause 0, as in GenEval
            target = {**_clause(parts["a"], parts["ca"]), "position": [parts["rel"], 0]}
            return {"include": [_clause(parts["b"], parts["cb"]), target]}
        if "n" in parts:
            shape, n = _SINGULAR[parts["plural"]], _NUMBERS[parts["n"]]
            return {"include": [{"class": shape, "count": n}], "exclude": [{"class": shape, "count": n + 1}]}
        clauses = [_clause(parts["a"], parts["ca"])]
        if parts.get("b"):
            clauses.append(_clause(parts["b"], parts["cb"]))
        return {"include": clauses}
    return None


@register("model", "shapes-renderer")
class ShapesRenderer(ModelAdapter):
    """Draws each shapes prompt correctly; randomness (layout, unprompted colours, background)
    comes from the request's own seed. ``profile``: the world profile it draws in (default ``full``)."""

    capabilities = frozenset({"text_to_image"})
    version = "2"  # 2: draws dense (DPG-style) prompts; GenEval prompts give the same images as 1
    #: derived generators tried when the placer finds no room for a dense prompt's constraints
    dense_attempts = 5

    def __init__(self, size: int = 64, batch_size: int = 64, profile: str = "full"):
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {tuple(PROFILES)}, got {profile!r}")
        self.size = int(size)
        self.batch_size = int(batch_size)
        self.profile = get_profile(profile)

    @property
    def model_digest(self) -> str:
        return hash_value({"model": "shapes-renderer", "version": self.version,
                           **({"profile": self.profile.name} if self.profile.name != "full" else {})})

    @property
    def protocol(self) -> dict:
        return {"image_size": self.size, "adapter_version": self.version,
                **({"profile": self.profile.name} if self.profile.name != "full" else {})}

    def generate_images(self, requests: Sequence[Request]) -> list[Image.Image]:
        return [render(self.scene_for(request), size=self.size) for request in requests]

    def scene_for(self, request: Request) -> Scene:
        """The scene drawn for one request (an empty background for a prompt it cannot read)."""
        rng = np.random.default_rng(request.seed)
        metadata = metadata_from_prompt(request.prompt)
        if metadata:
            return scene_for_metadata(metadata, rng, profile=self.profile)
        spec = parse_dense_prompt(request.prompt)
        if spec is not None:
            for attempt in range(self.dense_attempts):
                try:
                    return scene_for_spec(spec, rng if attempt == 0 else
                                          np.random.default_rng([request.seed, attempt]), self.profile)
                except (RuntimeError, ValueError):
                    continue
        return Scene(objects=())
