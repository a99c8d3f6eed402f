"""Shared machinery for recipe steps that talk to models: chat steps and image-model steps.

A chat step says what to ask about one row (``prompt``) and how to read the reply (``parse``);
``ChatStep`` batches the rows through the recipe's client for the step's role, with one seed per row.
Image steps call the image model's ``images.generate`` / ``images.edit`` on a field of each row.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Sequence

from harness.clients.call_cache import UNUSABLE_REPLY
from harness.images import image_format
from harness.recipe import Drop, Failure, Step, StepContext

#: parameters of model steps that change nothing in the rows
MODEL_STEP_TRANSPORT = ("batch_size",)


def bytes_data_url(data: bytes) -> str:
    """Image bytes as a data URL, sent as stored (no re-encoding)."""
    mime = (image_format(data) or ("", "application/octet-stream"))[1]
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class ChatRequest:
    """What to send for one row: the user text, images (bytes, sent before the text), a system turn."""

    text: str
    images: Sequence[bytes] = ()
    system: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def messages(self) -> list[dict]:
        messages = [{"role": "system", "content": self.system}] if self.system else []
        if not self.images:
            return messages + [{"role": "user", "content": self.text}]
        parts = [{"type": "image_url", "image_url": {"url": bytes_data_url(b)}} for b in self.images]
        return messages + [{"role": "user", "content": parts + [{"type": "text", "text": self.text}]}]


class ChatStep(Step):
    """A step that asks a chat model (LLM or VLM) one question per row and parses the reply.

    Subclasses set ``inputs`` / ``outputs`` and implement ``request(row, ctx)`` and ``parse(text, row)``.
    ``parse`` returns the new fields, ``Drop`` (a reply that says the row is no good) or ``Failure``
    (a reply that could not be read). An unreadable reply is asked again, up to ``max_attempts``
    times in all; if none can be read the row is dropped with the reason. Every reply is cached, so a
    re-run pays for none of them again. A call that fails (after the client's retries) is a
    ``Failure``: not cached, asked again on the next run.
    """

    transport_params = MODEL_STEP_TRANSPORT

    def __init__(self, client: str = "llm", temperature: float | None = None, max_tokens: int | None = None,
                 batch_size: int = 256, max_attempts: int = 3):
        self.client_role = client
        self.max_attempts = int(max_attempts)
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.batch_size = int(batch_size)

    def request(self, row: dict, ctx: StepContext) -> ChatRequest:
        raise NotImplementedError

    def parse(self, text: str, row: dict) -> dict | Drop | Failure:
        raise NotImplementedError

    def generate(self, rows: Sequence[dict], ctx: StepContext) -> list[Any]:
        requests = [self.request(row, ctx) for row in rows]
        replies = ctx.client(self.client_role).chat_many(
            [r.messages() for r in requests], [ctx.seed(row) for row in rows],
            unusable=lambda i, text: self._unusable(text, rows[i]), max_attempts=self.max_attempts,
            temperature=self.temperature, max_tokens=self.max_tokens)
        return [self._outcome(reply, row) for reply, row in zip(replies, rows)]

    def _outcome(self, reply: Any, row: dict) -> dict | Drop | Failure:
        if reply.error and reply.error.startswith(UNUSABLE_REPLY):
            return Drop(reply.error)  # paid for and cached: a re-run would get the same replies
        return Failure(reply.error) if reply.error else self.parse(reply.text or "", row)

    def _unusable(self, text: str, row: dict) -> str | None:
        parsed = self.parse(text, row)
        return parsed.error if isinstance(parsed, Failure) else None


class ImageStep(Step):
    """A step that asks the image model for one image per row (``images.generate`` or ``images.edit``)."""

    transport_params = MODEL_STEP_TRANSPORT

    def __init__(self, client: str = "image_model", size: str | None = None, quality: str | None = None,
                 batch_size: int = 32):
        self.client_role = client
        self.size = size
        self.quality = quality
        self.batch_size = int(batch_size)

    def _params(self) -> dict[str, Any]:
        return {"size": self.size, "quality": self.quality}

    @staticmethod
    def _stored(results: Sequence[Any], ctx: StepContext, field_name: str) -> list[Any]:
        return [Failure(r.error) if r.error else {field_name: ctx.save_image(r.data)} for r in results]


class CopyField(Step):
    """Copy one field to another (wrapped in a one-element list with ``as_list``); no model call."""

    transport_params = ("batch_size",)
    as_list = False

    def __init__(self, image_field: str = "image", output: str = "output_image", batch_size: int = 256):
        self.image_field, self.output = image_field, output
        self.inputs, self.outputs = (image_field,), (output,)
        self.batch_size = int(batch_size)

    def generate(self, rows: Sequence[dict], ctx: StepContext) -> list[Any]:
        return [{self.output: [row[self.image_field]] if self.as_list else row[self.image_field]} for row in rows]
