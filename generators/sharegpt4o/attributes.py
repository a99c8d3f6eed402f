"""The attribute space of ShareGPT-4o-Image's prompt-first recipe, and a source that samples it.

Facts carried over (secondary sources, see the research notes): attributes come from a six-dimension
space (objects, background, style, ...), objects from the ImageNet categories; an LLM composes the
sampled attributes into one prompt, which the image model renders.

Assumed (not in the sources we could read):
- the six dimensions are objects, background, style, lighting, camera, composition, with the
  sub-dimensions and values of ``vocabulary.yaml`` (our own lists; ``vocabulary`` replaces them);
- the object count k in 1..``max_objects`` (default 100) has weight exp(-``decay`` * (k - 1)), the k
  objects are drawn without replacement. Default ``decay`` = 0.5: P(k=1) = 0.39, median k = 2, mean
  about 2.5, P(k > 5) = 8 %, P(k > 10) = 0.7 % -- mostly prompts a model can render faithfully, with
  a thin tail of crowded scenes for "controlled complexity" (λ = 1 would give 63 % single objects);
- every other sub-dimension gets one value, drawn uniformly.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import yaml

from harness.errors import InputError
from harness.hashing import hash_file
from harness.recipe import Source, StepContext
from harness.registry import register

BUILTIN_VOCABULARY = Path(__file__).with_name("vocabulary.yaml")
DEFAULT_DECAY = 0.5
DEFAULT_MAX_OBJECTS = 100


@dataclass(frozen=True)
class Vocabulary:
    """Object categories, and for every other dimension its sub-dimensions' values (file order)."""

    objects: tuple[str, ...]
    dimensions: Mapping[str, Mapping[str, tuple[str, ...]]]


def _strings(value: Any, where: str, path: Path) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise InputError(f"{where} must be a non-empty list of strings", path)
    if len(set(value)) != len(value):
        raise InputError(f"{where} lists a value twice", path)
    return tuple(v.strip() for v in value)


def parse_vocabulary(data: Any, path: Path) -> Vocabulary:
    if not isinstance(data, Mapping) or "objects" not in data:
        raise InputError("a vocabulary is a mapping with `objects: [...]` and dimensions "
                         "`name: {sub_dimension: [values]}`", path)
    dimensions: dict[str, dict[str, tuple[str, ...]]] = {}
    for name, subs in data.items():
        if name == "objects":
            continue
        if not isinstance(subs, Mapping) or not subs:
            raise InputError(f"dimension {name!r} must map sub-dimensions to value lists", path)
        dimensions[str(name)] = {str(sub): _strings(values, f"{name}.{sub}", path) for sub, values in subs.items()}
    return Vocabulary(_strings(data["objects"], "objects", path), dimensions)


def _load(file: Path) -> Vocabulary:
    if not file.is_file():
        raise InputError("vocabulary file not found", file)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InputError(f"not valid YAML: {exc}", file) from None
    return parse_vocabulary(data, file)


def load_vocabulary(path: str | Path | None = None) -> Vocabulary:
    """The built-in vocabulary, or the one in ``path`` (same layout as ``vocabulary.yaml``)."""
    return _load(Path(path)) if path is not None else _builtin()


@lru_cache(maxsize=1)
def _builtin() -> Vocabulary:  # read once; a user's file is read fresh (it may be edited between runs)
    return _load(BUILTIN_VOCABULARY)


def object_count_weights(decay: float, max_objects: int) -> list[float]:
    """Unnormalised weights of k = 1..max_objects: exp(-decay * (k - 1))."""
    return [math.exp(-decay * (k - 1)) for k in range(1, max_objects + 1)]


def sample_attributes(rng: random.Random, vocabulary: Vocabulary, decay: float = DEFAULT_DECAY,
                      max_objects: int = DEFAULT_MAX_OBJECTS) -> dict[str, Any]:
    """One attribute set: ``objects`` (k distinct categories) and one value per sub-dimension.

    k is capped by the vocabulary's size (the weights are renormalised over what remains).
    """
    top = min(max_objects, len(vocabulary.objects))
    k = rng.choices(range(1, top + 1), weights=object_count_weights(decay, top))[0]
    attributes: dict[str, Any] = {"objects": rng.sample(vocabulary.objects, k)}
    for dimension, subs in vocabulary.dimensions.items():
        attributes[dimension] = {sub: rng.choice(values) for sub, values in subs.items()}
    return attributes


def describe_attributes(attributes: Mapping[str, Any]) -> str:
    """The attributes as labelled lines for an LLM ("Objects: a, b" / "Lighting: source: x; ...")."""
    lines = []
    for dimension, value in attributes.items():
        label = dimension.replace("_", " ").capitalize()
        if isinstance(value, Mapping):
            value = "; ".join(f"{sub.replace('_', ' ')}: {v}" for sub, v in value.items())
        elif isinstance(value, list):
            value = ", ".join(value)
        lines.append(f"{label}: {value}")
    return "\n".join(lines)


@register("generator", "sharegpt4o-attributes")
class AttributeSampler(Source):
    """``count`` rows ``{id: "attr-00000", attributes, object_count}`` drawn from the attribute space.

    Params: ``count``; ``decay`` (λ of the object-count weight exp(-λ(k-1)), default 0.5);
    ``max_objects`` (largest k, default 100); ``vocabulary`` (a YAML file replacing the built-in one).
    Row i depends only on (recipe seed, its id).
    """

    outputs = ("attributes", "object_count")

    def __init__(self, count: int = 100, decay: float = DEFAULT_DECAY, max_objects: int = DEFAULT_MAX_OBJECTS,
                 vocabulary: str | None = None):
        if int(count) < 0 or int(max_objects) < 1 or float(decay) < 0:
            raise InputError(f"count must be >= 0, max_objects >= 1 and decay >= 0 "
                             f"(got {count}, {max_objects}, {decay})")
        self.count, self.decay, self.max_objects = int(count), float(decay), int(max_objects)
        self.vocabulary_path = vocabulary
        self.vocabulary = load_vocabulary(vocabulary)
        if vocabulary is not None:  # the file's content is part of the recipe's identity, not just its path
            self.version = f"1+{hash_file(vocabulary)}"

    def rows(self, ctx: StepContext) -> list[dict[str, Any]]:
        rows = []
        for i in range(self.count):
            row_id = f"attr-{i:05d}"
            attributes = sample_attributes(ctx.rng(row_id), self.vocabulary, self.decay, self.max_objects)
            rows.append({"id": row_id, "attributes": attributes, "object_count": len(attributes["objects"])})
        return rows

    def input_hashes(self) -> dict[str, str]:
        # a replaced vocabulary is an input: editing the file must change the dataset's lineage
        return {"vocabulary": hash_file(self.vocabulary_path)} if self.vocabulary_path else {}
