"""A small client for OpenAI-compatible HTTP APIs (OpenAI, a vLLM server, ...), standard library only.

Every call goes through ``post``: bounded concurrency, retries with backoff and full jitter, and
thread-safe usage accounting. ``chat``, ``images_generate`` (``/images/generations``, JSON) and
``images_edit`` (``/images/edits``, multipart/form-data) are thin layers over it: a body and a
``parse`` for the reply.

Failures never raise: after the last retry a call returns a result with ``error`` set. Retried:
HTTP 408, 409, 429 and 5xx (the statuses the official ``openai`` package retries), timeouts,
connection errors and malformed bodies (not JSON, no ``choices[0].message.content``, no or
undecodable ``data[0].b64_json``). Other 4xx (400, 401, 404, ...), an image reply that holds only a
URL (a retry would be billed and change nothing; URLs are never fetched), redirects (never
followed: they would carry the key to another address), TLS certificate failures and unexpected
exceptions fail at once. Only configuration errors raise
(``HarnessError``): a missing or malformed API key, or plain HTTP to a remote host.

The key is read from the environment on every call (once per ``chat_many`` batch) and lives only in
the request headers; it is never stored on the client, and is masked in any error text.

This module holds the client (validation, endpoints, the retry loop); ``attempts.py`` turns one
HTTP attempt's reply or failure into an outcome.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import math
import os
import random
import re
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from harness.clients.attempts import (ERROR_SNIPPET_CHARS, TOKEN_KEYS, Attempt, RefuseRedirects, certificate_failure,
                                      http_failure, parse_reply, redact, redirect_failure)
from harness.clients.messages import is_loopback_url
from harness.clients.replies import (  # noqa: F401 - MalformedResponse is part of the client's API
    MalformedResponse, chat_text, first_image, multipart_form)
from harness.errors import HarnessError, InputError
from harness.images import image_format

#: constructor parameters that say where a server is and how patiently it is called: plugins built on
#: the client accept them and list them as ``transport_params`` (out of cache keys and run identity)
TRANSPORT_PARAMS = ("base_url", "api_key_env", "max_concurrency", "max_retries", "timeout_s", "backoff_s",
                    "backoff_max_s", "retry_after_max_s", "allow_insecure_http", "prices")
#: what a plugin passes through to its client (``connect``): every transport parameter but the URL
CLIENT_PARAMS = TRANSPORT_PARAMS[1:]
PRICE_KEYS = ("prompt_per_1k", "completion_per_1k")
#: an API key is visible ASCII; anything else (a pasted newline, a stray control character) is a typo
_KEY_CHARS = re.compile(r"[!-~]+")


@dataclass
class CallResult:
    """Outcome of one logical call after retries: ``value`` or ``error`` (exactly one is set)."""

    value: Any
    error: str | None = None
    attempts: int = 1
    model: str | None = None
    usage: dict[str, int] = field(default_factory=dict)


@dataclass
class ChatResult:
    """A chat completion's text, or why there is none. ``model`` is the snapshot the server named;
    ``usage`` holds this call's prompt/completion tokens summed over its attempts."""

    text: str | None
    error: str | None = None
    attempts: int = 1
    model: str | None = None
    usage: dict[str, int] = field(default_factory=dict)


@dataclass
class ImageResult:
    """The first image of an images call as the server encoded it (PNG, JPEG or WebP bytes), or why
    there is none. ``usage`` holds the call's tokens (gpt-image-* report them), summed over attempts."""

    data: bytes | None
    error: str | None = None
    attempts: int = 1
    model: str | None = None
    usage: dict[str, int] = field(default_factory=dict)

class UsageCounter:
    """Requests, retries, failures, tokens, cost and served model names; safe across threads."""

    def __init__(self, prices: Mapping[str, float] | None = None):
        self._lock = threading.Lock()
        self._prices = dict(prices) if prices is not None else None
        self._counts = {"requests": 0, "retries": 0, "failures": 0, "prompt_tokens": 0, "completion_tokens": 0}
        self._models: set[str] = set()

    def add(self, model: str | None = None, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                self._counts[name] += value
            if model:
                self._models.add(model)

    def snapshot(self) -> dict:
        """A JSON-ready copy: the counts, ``cost_usd`` (None without prices) and ``models``."""
        with self._lock:
            counts, models = dict(self._counts), sorted(self._models)
        cost = None
        if self._prices is not None:
            cost = round(counts["prompt_tokens"] / 1000 * self._prices["prompt_per_1k"]
                         + counts["completion_tokens"] / 1000 * self._prices["completion_per_1k"], 6)
        return {**counts, "cost_usd": cost, "models": models}


class OpenAICompatClient:
    """Calls one model behind an OpenAI-compatible base URL (``https://api.openai.com/v1``,
    ``http://127.0.0.1:8000/v1`` for vLLM).

    Args:
        base_url: the API root, up to and including ``/v1``.
        model: the ``model`` field sent with every call.
        api_key_env: the environment variable holding the key (read at call time). It may be unset
            only for a loopback server (vLLM without ``--api-key``).
        max_concurrency: most HTTP requests in flight at once, across all threads using the client.
        max_retries: retries after the first attempt (so at most ``max_retries + 1`` attempts).
        timeout_s: per-attempt socket timeout.
        backoff_s, backoff_max_s: retry ``n`` (0-based) sleeps ``uniform(0, min(max, base * 2**n))``.
        retry_after_max_s: a finite ``Retry-After`` (or ``retry-after-ms``) header replaces that
            wait, capped at this (a server asking for 60 s gets 60 s, not ``backoff_max_s``).
        prices: ``{"prompt_per_1k": usd, "completion_per_1k": usd}`` to count ``cost_usd``.
        allow_insecure_http: accept ``http://`` to a non-loopback host (the key then travels in
            clear text); without it such a base URL raises ``HarnessError``.
        sleep: how to wait between attempts (tests pass a recorder).
    """

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY",
                 max_concurrency: int = 8, max_retries: int = 5, timeout_s: float = 60.0,
                 backoff_s: float = 1.0, backoff_max_s: float = 30.0,
                 prices: Mapping[str, float] | None = None,
                 sleep: Callable[[float], None] = time.sleep, *,
                 retry_after_max_s: float = 120.0, allow_insecure_http: bool = False):
        scheme = urllib.parse.urlsplit(base_url).scheme
        if scheme not in ("http", "https"):
            raise HarnessError(f"base_url must start with http:// or https://, got {base_url!r}")
        if "@" in urllib.parse.urlsplit(base_url).netloc:  # never repeat it: it may hold a key
            raise HarnessError("base_url must not hold credentials (user@host); the key comes from the "
                               "environment variable named by api_key_env")
        if scheme == "http" and not is_loopback_url(base_url) and not allow_insecure_http:
            raise HarnessError(f"base_url {base_url!r} is plain http:// to a host that is not this machine: "
                               f"the API key would travel unencrypted. Use https://, an SSH tunnel to "
                               f"127.0.0.1, or allow_insecure_http=True on a network you trust")
        if int(max_concurrency) < 1 or int(max_retries) < 0 or float(timeout_s) <= 0:
            raise HarnessError("max_concurrency must be >= 1, max_retries >= 0 and timeout_s > 0")
        if not all(0 <= float(value) < math.inf for value in (backoff_s, backoff_max_s, retry_after_max_s)):
            raise HarnessError("backoff_s, backoff_max_s and retry_after_max_s must be finite and >= 0")
        if prices is not None and (not isinstance(prices, Mapping) or sorted(prices) != sorted(PRICE_KEYS)
                                   or not all(isinstance(prices[k], (int, float)) and prices[k] >= 0
                                              for k in PRICE_KEYS)):
            raise HarnessError(f"prices must be a mapping with exactly {', '.join(PRICE_KEYS)} "
                               f"(non-negative USD per 1000 tokens), got {prices!r}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.max_concurrency = int(max_concurrency)
        self.max_retries = int(max_retries)
        self.timeout_s = float(timeout_s)
        self.backoff_s = float(backoff_s)
        self.backoff_max_s = float(backoff_max_s)
        self.retry_after_max_s = float(retry_after_max_s)
        self.loopback = is_loopback_url(self.base_url)
        self._usage = UsageCounter(prices)
        self._slots = threading.BoundedSemaphore(self.max_concurrency)
        self._sleep = sleep
        handlers: list[urllib.request.BaseHandler] = [RefuseRedirects()]
        if self.loopback:  # reached directly even when HTTP(S)_PROXY is set for the outside world
            handlers.append(urllib.request.ProxyHandler({}))
        self._opener = urllib.request.build_opener(*handlers)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(base_url={self.base_url!r}, model={self.model!r}, "
                f"api_key_env={self.api_key_env!r})")

    @property
    def usage(self) -> dict:
        return self._usage.snapshot()

    def check_credentials(self) -> None:
        """Raise ``HarnessError`` now if the key is missing for a remote server, or malformed."""
        self._api_key()

    def _api_key(self) -> str | None:
        # surrounding whitespace is a copy-paste or env-file accident; any other odd character would
        # make http.client raise with the whole header (the key) in its message
        key = (os.environ.get(self.api_key_env) or "").strip() or None
        if key is None and not self.loopback:
            raise HarnessError(f"the environment variable {self.api_key_env} is not set; it must hold the "
                               f"API key for {urllib.parse.urlsplit(self.base_url).hostname} "
                               f"(only a loopback server may be used without a key)")
        if key is not None and not _KEY_CHARS.fullmatch(key):
            position = next(i for i, char in enumerate(key) if not _KEY_CHARS.fullmatch(char))
            raise HarnessError(f"the API key in {self.api_key_env} has a control, space or non-ASCII "
                               f"character at position {position} (of {len(key)}); fix the variable")
        return key

    # ------------------------------------------------------------------------------------------
    # chat

    def chat(self, messages: list[dict], **params: Any) -> ChatResult:
        """One chat completion. ``params`` (temperature, max_tokens, ...) are sent unless None."""
        return self._chat(messages, self._api_key(), params)

    def chat_many(self, conversations: Sequence[list[dict]],
                  on_result: Callable[[int, ChatResult], None] | None = None, *,
                  per_call: Sequence[Mapping[str, Any] | None] | None = None, **params: Any) -> list[ChatResult]:
        """``chat`` for each conversation, ``max_concurrency`` at a time; results in input order.
        ``on_result(position, result)`` is called (on the worker thread) as each call finishes.

        ``params`` go with every call. ``per_call``, if given, holds one mapping (or None) per
        conversation whose fields are added to that call's body, over ``params`` of the same name
        (``{"response_format": {...}}``); a None value there adds nothing (``params``' value, if
        any, is sent)."""
        if per_call is not None and len(per_call) != len(conversations):
            raise ValueError(f"per_call has {len(per_call)} entries for {len(conversations)} conversations")
        if per_call is not None and any({"model", "messages"} & set(extra or ()) for extra in per_call):
            raise ValueError("per_call cannot change a call's model or messages")
        if not conversations:
            return []
        key = self._api_key()  # a configuration error stops the batch before any call

        def call(position: int) -> ChatResult:
            extra = _present(per_call[position] or {}) if per_call is not None else {}
            result = self._chat(conversations[position], key, {**params, **extra} if extra else params)
            if on_result is not None:
                on_result(position, result)
            return result
        workers = min(self.max_concurrency, len(conversations))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openai-compat") as pool:
            return list(pool.map(call, range(len(conversations))))

    def _chat(self, messages: list[dict], key: str | None, params: Mapping[str, Any]) -> ChatResult:
        payload = {"model": self.model, "messages": messages,
                   **{name: value for name, value in params.items() if value is not None}}
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        result = self._post("/chat/completions", body, "application/json", chat_text, key)
        return ChatResult(result.value, result.error, result.attempts, result.model, result.usage)

    # ------------------------------------------------------------------------------------------
    # images: one image per call (n = 1); the API takes no seed, so outputs are not reproducible

    def images_generate(self, prompts: Sequence[str], **params: Any) -> list[ImageResult]:
        """``POST /images/generations`` for each prompt, ``max_concurrency`` at a time; results in
        input order. ``params`` (size, quality, response_format, ...) are sent unless None."""
        def call(prompt: str, key: str | None) -> CallResult:
            payload = {"model": self.model, "prompt": prompt, "n": 1, **_present(params)}
            body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
            return self._post("/images/generations", body, "application/json", first_image, key)
        return [ImageResult(r.value, r.error, r.attempts, r.model, r.usage) for r in self._map(call, prompts)]

    def images_edit(self, images: Sequence[bytes], prompts: Sequence[str], **params: Any) -> list[ImageResult]:
        """``POST /images/edits`` for each (source PNG bytes, prompt) pair as multipart/form-data:
        text fields ``model``, ``prompt``, ``n`` and ``params`` (None: not sent), then the source in
        the file field ``image`` (``image.png`` / ``image/png``, or JPEG / WebP as the bytes are)."""
        if len(images) != len(prompts):
            raise ValueError(f"{len(images)} images for {len(prompts)} prompts")

        def call(pair: tuple[bytes, str], key: str | None) -> CallResult:
            png, prompt = pair
            fields = {"model": self.model, "prompt": prompt, "n": 1, **_present(params)}
            extension, mime = image_format(png) or ("png", "image/png")
            body, content_type = multipart_form(fields, [("image", f"image.{extension}", mime, png)])
            return self._post("/images/edits", body, content_type, first_image, key)
        results = self._map(call, list(zip(images, prompts)))
        return [ImageResult(r.value, r.error, r.attempts, r.model, r.usage) for r in results]

    def _map(self, call: Callable[[Any, str | None], CallResult], items: Sequence[Any]) -> list[CallResult]:
        if not items:
            return []
        key = self._api_key()  # a configuration error stops the batch before any call
        workers = min(self.max_concurrency, len(items))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openai-compat") as pool:
            return list(pool.map(lambda item: call(item, key), items))

    # ------------------------------------------------------------------------------------------
    # the retry core, shared by every endpoint

    def post_json(self, path: str, payload: dict, parse: Callable[[dict], Any]) -> CallResult:
        """POST ``payload`` to ``base_url + path`` with retries; ``parse`` turns the reply into the
        value or raises ``MalformedResponse`` (retried)."""
        return self.post(path, json.dumps(payload, ensure_ascii=False).encode("utf-8"), "application/json", parse)

    def post(self, path: str, body: bytes, content_type: str, parse: Callable[[dict], Any]) -> CallResult:
        """``post_json`` for any body (a multipart form for ``/images/edits``); the reply is JSON."""
        return self._post(path, body, content_type, parse, self._api_key())

    def _post(self, path: str, body: bytes, content_type: str, parse: Callable[[dict], Any],
              key: str | None) -> CallResult:
        tokens = dict.fromkeys(TOKEN_KEYS, 0)
        rng: random.Random | None = None
        self._usage.add(requests=1)
        attempt = 0
        while True:
            attempt += 1
            outcome = self._attempt(path, body, content_type, key, parse)
            for name, count in outcome.tokens.items():
                tokens[name] += count
            self._usage.add(model=outcome.model, **outcome.tokens)
            if outcome.error is None:
                return CallResult(outcome.value, None, attempt, outcome.model, tokens)
            if not outcome.retryable or attempt > self.max_retries:
                break
            if rng is None:  # jitter seeded by the call's content, so a rerun waits the same
                rng = random.Random(hashlib.sha256(body).digest())
            self._usage.add(retries=1)
            self._sleep(self._delay(attempt - 1, outcome.retry_after, rng))
        self._usage.add(failures=1)
        error = f"{outcome.error} (gave up after {attempt} attempt{'s' if attempt > 1 else ''})"
        return CallResult(None, redact(error, key), attempt, outcome.model, tokens)

    def _delay(self, retry_index: int, retry_after: float | None, rng: random.Random) -> float:
        if retry_after is not None:  # finite (attempts.py drops nan and inf)
            return min(max(retry_after, 0.0), self.retry_after_max_s)
        return rng.uniform(0.0, min(self.backoff_max_s, self.backoff_s * 2 ** retry_index))

    def _attempt(self, path: str, body: bytes, content_type: str, key: str | None,
                 parse: Callable[[dict], Any]) -> Attempt:
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(self.base_url + path, data=body, headers=headers, method="POST")
        try:
            with self._slots:
                raw = self._exchange(request, key)
            return raw if isinstance(raw, Attempt) else parse_reply(raw, parse, key)
        except Exception as exc:  # noqa: BLE001 - a bug or odd input fails this call, not the batch
            message = f"unexpected {type(exc).__name__}: {redact(str(exc), key)}"
            return Attempt(error=message[:ERROR_SNIPPET_CHARS])

    def _exchange(self, request: urllib.request.Request, key: str | None) -> bytes | Attempt:
        """The reply body, or why there is none."""
        timed_out = Attempt(error=f"timed out after {self.timeout_s:g} s", retryable=True)
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            if 300 <= exc.code < 400:
                return redirect_failure(exc, request.full_url)
            return http_failure(exc, key)
        except TimeoutError:
            return timed_out
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                return timed_out
            if isinstance(exc.reason, ssl.SSLCertVerificationError):
                return certificate_failure(exc.reason, request.host)
            return Attempt(error=f"connection failed: {exc.reason}", retryable=True)
        except ssl.SSLCertVerificationError as exc:  # raised while reading, unwrapped
            return certificate_failure(exc, request.host)
        except (http.client.HTTPException, OSError) as exc:  # reset, remote closed, short read
            return Attempt(error=f"connection failed: {type(exc).__name__}: {exc}", retryable=True)


def _present(params: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in params.items() if value is not None}


def connect(base_url: str, model: str, owner: str, *, credentials_now: bool = True,
            **params: Any) -> "OpenAICompatClient":
    """The client of a plugin that talks to an OpenAI-compatible server (a judge, a model adapter, a
    recipe step), with its credentials checked at once, so a missing key stops a run before any
    work (``credentials_now=False`` leaves that to the first call that is not cached: a recipe
    resumed from its call cache needs no key). ``params`` are the plugin's transport parameters
    (``CLIENT_PARAMS``); another name is an input error that names the plugin (``owner``)."""
    unknown = sorted(set(params) - set(CLIENT_PARAMS))
    if unknown:
        raise InputError(f"{owner}: unknown parameter(s) {', '.join(unknown)} (transport parameters: "
                         f"{', '.join(CLIENT_PARAMS)})")
    client = OpenAICompatClient(base_url, model, **params)
    if credentials_now:
        client.check_credentials()
    return client
