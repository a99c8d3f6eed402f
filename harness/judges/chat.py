"""A language-model judge behind an OpenAI-compatible chat API (plugin kind "chat").

Judge drift changes numbers: ImgEdit scores moved when its leaderboard was re-judged with another
GPT snapshot, and VLMEvalKit's MMBench choice extractor changed model twice. So the judge refuses an
undated alias ("gpt-4o", "gpt-4o-mini") unless ``allow_alias`` is set, and records the snapshots
the server says answered (``usage["models"]`` and each reply's ``model``).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

from harness.clients.messages import chat_messages, require_dated_snapshot
from harness.clients.openai_compat import TRANSPORT_PARAMS, connect
from harness.judges.base import ChatPrompt, ChatReply
from harness.registry import register

#: part of the judge's identity in judgement cache keys (read by the runner)
VERSION = "1"


@register("chat", "openai-compatible")
class OpenAIChatJudge:
    """Sends each ``ChatPrompt`` as one chat completion; replies come back raw, in order.

    Args:
        base_url: API root up to ``/v1``.
        model: a dated snapshot ("gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18").
        api_key_env: environment variable holding the key (may be unset for a loopback server).
        temperature, max_tokens, top_p, seed: decoding parameters; None means "not sent" (the API
            default), which is what some official scripts do (ImgEdit sends none of them).
        image_detail: the ``detail`` of each image part (None: not sent).
        allow_alias: accept an undated model name (numbers may drift between runs).
        max_concurrency, max_retries, timeout_s, backoff_s, backoff_max_s, prices: see
            ``OpenAICompatClient``.

    Only the model and decoding parameters identify the judge in judgement caches
    (``transport_params`` are left out), so a resumed run may reach the same snapshot at another
    address.

    Images go before the text, as ``ChatPrompt`` specifies; a prompt object with a true
    ``images_after_text`` attribute gets the text first (ImgEdit's official order). An empty text
    with images sends no text part. A prompt's ``response_format`` (structured outputs) is sent as
    the request's ``response_format`` field, as given; a prompt without one sends none.
    """

    #: building makes no call: the runner builds it before generating, so an undated model or a
    #: missing key stops the run before anything is paid for
    build_eagerly = True
    transport_params = TRANSPORT_PARAMS

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY",
                 temperature: float | None = 0.0, max_tokens: int | None = 1024,
                 top_p: float | None = None, seed: int | None = None, image_detail: str | None = None,
                 allow_alias: bool = False, **transport: Any):
        require_dated_snapshot(model, allow_alias)
        self.client = connect(base_url, model, "openai-compatible", api_key_env=api_key_env, **transport)
        self.model = model
        self.image_detail = image_detail
        self.decoding = {name: value for name, value in
                         {"temperature": temperature, "max_tokens": max_tokens, "top_p": top_p,
                          "seed": seed}.items() if value is not None}
        shown = dict(self.decoding, **({"image_detail": image_detail} if image_detail else {}))
        self.judge_id = f"openai-compatible:{model}(" + ",".join(f"{k}={v}" for k, v in shown.items()) + ")"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.judge_id}, {self.client!r})"

    @property
    def usage(self) -> dict:
        """Requests, retries, failures, tokens, cost and the served snapshots (``models``)."""
        return self.client.usage

    @property
    def served_models(self) -> list[str]:
        return self.client.usage["models"]

    def ask(self, prompts: Sequence[ChatPrompt],
            on_reply: Callable[[int, ChatReply], None] | None = None) -> list[ChatReply]:
        """One reply per prompt, in order; ``on_reply(position, reply)`` as each one arrives."""
        conversations = [chat_messages(prompt.text, prompt.images, prompt.system,
                                       images_first=not getattr(prompt, "images_after_text", False),
                                       detail=self.image_detail)
                         for prompt in prompts]
        formats = [getattr(prompt, "response_format", None) for prompt in prompts]
        per_call = [{"response_format": fmt} for fmt in formats] if any(fmt is not None for fmt in formats) else None
        arrived = None if on_reply is None else (lambda position, result: on_reply(position, _reply(result)))
        results = self.client.chat_many(conversations, on_result=arrived, per_call=per_call, **self.decoding)
        return [_reply(result) for result in results]


def _reply(result: Any) -> ChatReply:
    return ChatReply(text=result.text, error=result.error, attempts=result.attempts, model=result.model)
