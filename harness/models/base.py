"""Model adapter interface.

An adapter declares what it can do (``capabilities``) and implements those methods. Adapters never
look at benchmark names: a benchmark turns its items into plain requests, the adapter answers them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Sequence

from PIL import Image


@dataclass(frozen=True)
class ImageRequest:
    """Ask for one image.

    ``sample_id`` names the sample across runs; ``seed`` is the sample's own seed (derived from the
    run seed, the benchmark and the sample id), so the image does not depend on batching or order.
    """

    sample_id: str
    prompt: str
    seed: int
    extra: dict = field(default_factory=dict, compare=False, hash=False)


class ModelAdapter:
    """Base class for model adapters.

    Subclasses set ``capabilities`` (a subset of {"text_to_image", "edit", "answer"}) and
    ``protocol`` (every generation parameter that changes a number), and implement the methods
    of the capabilities they declare.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset()

    @property
    def model_digest(self) -> str:
        """A hash that changes when the weights change (part of every generation cache key)."""
        raise NotImplementedError

    @property
    def protocol(self) -> dict:
        """Generation parameters recorded in the protocol card and in cache keys."""
        return {}

    def generate_images(self, requests: Sequence[ImageRequest]) -> list[Image.Image]:
        raise NotImplementedError(f"{type(self).__name__} cannot generate images")
