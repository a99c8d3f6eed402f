"""Model adapter interface.

An adapter declares what it can do (``capabilities``) and implements those methods. Adapters never
look at benchmark names: a benchmark turns its items into plain requests, the adapter answers them.

One request type serves every capability: a text prompt, the sample's seed, and the input images
(none for text-to-image; the source image for editing; the question image for answering).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, ClassVar, Sequence

from PIL import Image

#: capability -> the adapter method that serves it
CAPABILITY_METHODS = {"text_to_image": "generate_images", "edit": "edit_images", "answer": "answer"}


@dataclass(frozen=True)
class InputImage:
    """An image the model reads, loaded only when needed.

    ``digest`` identifies the content (it goes into generation cache keys); ``load`` returns the
    image as RGB (or raises ``InputError`` naming the file).
    """

    digest: str
    load: Callable[[], Image.Image] = field(compare=False, hash=False, repr=False)


@dataclass(frozen=True)
class Request:
    """Ask the model for one output (an image, an edited image or an answer).

    ``sample_id`` names the sample across runs; ``seed`` is the sample's own seed (derived from the
    run seed, the benchmark and the sample id), so the output does not depend on batching or order.
    ``prompt`` is the complete user text; the adapter adds only its own chat template and puts
    ``images`` before the text. ``extra`` carries benchmark bookkeeping the adapter never reads.
    """

    sample_id: str
    prompt: str
    seed: int
    images: tuple[InputImage, ...] = ()
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def key_material(self) -> dict:
        """What identifies the request in generation cache keys."""
        return {"prompt": self.prompt, "images": [image.digest for image in self.images]}


class ModelAdapter:
    """Base class for model adapters.

    Subclasses set ``capabilities`` (a subset of ``CAPABILITY_METHODS``) and ``protocol`` (every
    generation parameter that changes a number), and implement the methods of the capabilities
    they declare. API adapters also count their usage (tokens, requests) in ``usage``.
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

    def protocol_for(self, capability: str) -> dict:
        """The protocol for one capability (adapters with several capabilities override this so
        that, say, an answer setting does not change image cache keys)."""
        return self.protocol

    @property
    def usage(self) -> dict:
        """Tokens, requests and cost spent by this process (API adapters); empty otherwise."""
        return {}

    def generate_images(self, requests: Sequence[Request]) -> list[Image.Image]:
        raise NotImplementedError(f"{type(self).__name__} cannot generate images")

    def edit_images(self, requests: Sequence[Request]) -> list[Image.Image]:
        raise NotImplementedError(f"{type(self).__name__} cannot edit images")

    def answer(self, requests: Sequence[Request]) -> list[str]:
        """The model's raw text answer to each request (no cleaning: benchmarks parse it)."""
        raise NotImplementedError(f"{type(self).__name__} cannot answer questions")
