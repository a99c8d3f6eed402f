"""A model behind an OpenAI-compatible chat API, as an "answer" adapter (MME, MMBench, ...).

Each request becomes one user turn: its images as PNG data URLs, then its prompt (after an optional
system turn). The reply text is returned raw; benchmarks parse it.

Identity: ``model_digest`` hashes the model name and the decoding parameters, not the base URL, so
the same model reached through another host or port (a vLLM server moved, a proxy) keeps its
cached answers. The price is that two servers must not serve different weights under one name:
give each checkpoint its own ``--served-model-name``. An undated alias ("gpt-4o") can change
behind the name; the snapshots the server reported are recorded in ``usage["models"]``.
"""
from __future__ import annotations

from typing import Any, Sequence

from harness.clients.messages import chat_messages
from harness.clients.openai_compat import TRANSPORT_PARAMS, connect
from harness.errors import PartialBatchError
from harness.hashing import hash_bytes, hash_value
from harness.models.base import ModelAdapter, Request
from harness.registry import register

ADAPTER_VERSION = "openai-chat/1"


@register("model", "openai-chat")
class OpenAIChatModel(ModelAdapter):
    """Answers questions through ``POST {base_url}/chat/completions``.

    Args:
        base_url: API root up to ``/v1`` (``https://api.openai.com/v1``, ``http://127.0.0.1:8000/v1``).
        model: the model name the server knows (a dated snapshot for API models).
        api_key_env: environment variable holding the key (may be unset for a loopback server).
        temperature, max_tokens: decoding parameters sent with every call (None: not sent).
        system_prompt: an optional system turn before every question.
        image_detail: the ``detail`` of each image part ("low", "high", "auto"; None: not sent).
        max_concurrency: calls in flight at once; also the batch size the runner uses.
        max_retries, timeout_s, backoff_s, backoff_max_s, retry_after_max_s,
            allow_insecure_http: see ``OpenAICompatClient``.
        prices: ``{"prompt_per_1k": usd, "completion_per_1k": usd}`` for cost accounting.
    """

    capabilities = frozenset({"answer"})
    #: where the server is and how patiently it is called: no part of the experiment's identity
    transport_params = TRANSPORT_PARAMS

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY",
                 temperature: float | None = 0.0, max_tokens: int | None = 512,
                 system_prompt: str | None = None, image_detail: str | None = None, **transport: Any):
        self.client = connect(base_url, model, "openai-chat", api_key_env=api_key_env, **transport)
        self.model = model
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.system_prompt = system_prompt
        self.image_detail = image_detail
        self.batch_size = self.client.max_concurrency

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.client!r})"

    def _decoding(self) -> dict:
        return {"temperature": self.temperature, "max_tokens": self.max_tokens}

    @property
    def model_digest(self) -> str:
        return hash_value({"api": "openai-chat", "model": self.model, **self._decoding()})

    @property
    def protocol(self) -> dict:
        system = self.system_prompt
        return {
            "adapter": ADAPTER_VERSION,
            "model": self.model,
            **self._decoding(),
            "system_prompt_sha256": hash_bytes(system.encode("utf-8")) if system is not None else None,
            "images": "PNG data URLs before the text",
            "image_detail": self.image_detail,
        }

    @property
    def usage(self) -> dict:
        return self.client.usage

    def answer(self, requests: Sequence[Request]) -> list[str]:
        """The raw reply to each request; raises ``PartialBatchError`` (with the finished replies)
        if some calls still failed after their retries."""
        conversations = [chat_messages(request.prompt, [image.load() for image in request.images],
                                       self.system_prompt, detail=self.image_detail)
                         for request in requests]
        results = self.client.chat_many(conversations, **self._decoding())
        failed = [position for position, result in enumerate(results) if result.error is not None]
        if failed:
            first = failed[0]
            raise PartialBatchError(
                f"{len(failed)} of {len(results)} calls to {self.model} failed after retries "
                f"(first: {requests[first].sample_id}: {results[first].error})",
                done={position: result.text for position, result in enumerate(results)
                      if result.error is None})
        return [result.text for result in results]
