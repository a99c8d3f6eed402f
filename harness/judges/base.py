"""Judge interfaces: what a benchmark asks of a scorer, independent of how it is implemented.

GenEval needs two kinds of judge: an object detector (boxes, scores, masks per class) and a colour
classifier (which of a fixed list of colours an object crop shows). Each is a plugin registered
under the kind ``"detector"`` or ``"color_classifier"``; the run spec names the one to use.

Benchmarks judged by a language model (MMBench's choice extractor, ImgEdit's GPT-4o judge) use a
``ChatJudge`` (kind ``"chat"``): a prompt in, the raw reply out. A call that fails after the
judge's own retries comes back as a reply with ``error`` set, never as an exception, so the
benchmark can record that one sample as a judge failure and go on.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np
from PIL import Image


@dataclass
class Detection:
    """One detected object.

    ``box`` is ``[x1, y1, x2, y2]`` in pixels (y grows downwards). ``mask`` is an optional boolean
    array of the image's shape (H, W). ``color`` is set only by judges that already know the colour
    (a precomputed-detections file, the shapes-world detector); otherwise a colour classifier is
    asked, and only for the objects a rule looks at.
    """

    label: str
    score: float
    box: list[float]
    mask: np.ndarray | None = field(default=None, repr=False, compare=False)
    color: str | None = None

    def to_json(self) -> dict:
        return {"label": self.label, "score": float(self.score),
                "box": [float(v) for v in self.box], "color": self.color}


@runtime_checkable
class ObjectDetector(Protocol):
    """Finds objects of a closed vocabulary in an image."""

    #: identifies the judge and its weights in cache keys and protocol cards
    judge_id: str

    def detect(self, images: Sequence[Image.Image],
               sample_ids: Sequence[str] | None = None) -> list[list[Detection]]:
        """Return, for each image, every detection (any score; rules apply thresholds).

        ``sample_ids`` (for GenEval ``"NNNNN/KKKK"``: prompt index / image index) lets judges that
        look results up rather than compute them (a precomputed-detections file) find the image.
        """
        ...


@runtime_checkable
class ColorClassifier(Protocol):
    """Names the colour of one object, given the image and the object's box and mask."""

    judge_id: str

    def classify(self, image: Image.Image, objects: Sequence[Detection], class_name: str,
                 colors: Sequence[str]) -> list[str]:
        """Return one colour name from ``colors`` per object."""
        ...


@dataclass(frozen=True)
class ChatPrompt:
    """One judge call: the user text and the images to show with it (before the text, unless
    ``images_after_text``: ImgEdit's official judge call puts the text first). An empty ``text``
    with images sends the images alone (no empty text part).

    ``response_format``, if given, is the exact JSON object an OpenAI-compatible judge sends as the
    request's ``response_format`` field (structured outputs: ``{"type": "json_schema", ...}``); it
    is part of the prompt's identity. Judges that cannot send it ignore it.

    ``accept``, if given, says whether a reply's text is one the benchmark can use (its official
    parser finds a verdict in it). A reply it refuses is a judge fault, not a verdict: the runner
    never keeps it (``harness.judge_replies``), so it is asked again. Not part of the prompt's
    identity."""

    text: str
    images: tuple[Image.Image, ...] = ()
    system: str | None = None
    images_after_text: bool = False
    accept: Callable[[str], bool] | None = field(default=None, compare=False, repr=False)
    response_format: Mapping[str, Any] | None = field(default=None, repr=False)


@dataclass
class ChatReply:
    """The judge's raw reply, or why there is none.

    ``text`` is None exactly when ``error`` is set (HTTP errors, timeouts, malformed responses after
    every retry). ``model`` is the snapshot the server says answered (recorded as provenance).
    """

    text: str | None
    error: str | None = None
    attempts: int = 1
    model: str | None = None


@runtime_checkable
class ChatJudge(Protocol):
    """A language-model judge behind a chat API (kind ``"chat"``)."""

    judge_id: str
    #: requests, retries, failures, prompt/completion tokens and cost spent by this process
    usage: dict

    def ask(self, prompts: Sequence[ChatPrompt]) -> list[ChatReply]:
        """One reply per prompt, in order; calls may run concurrently. A judge may also take
        ``on_reply(position, reply)``, called as each reply arrives (the runner then keeps each
        reply at once instead of after the batch)."""
        ...


@runtime_checkable
class VQAJudge(Protocol):
    """Answers free-form questions about images (kind ``"vqa"``; DPG-Bench's mPLUG role).

    Returns the raw answer strings; benchmarks apply their own matching rule (DPG: exactly "yes").
    Raise on failure: the runner records the sample as a judge failure and goes on.
    """

    judge_id: str

    def answer(self, images: Sequence[Image.Image], questions: Sequence[str]) -> list[str]:
        """One answer per (image, question) pair, in order."""
        ...
