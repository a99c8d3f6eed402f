"""A content-hash cache in front of an OpenAI-compatible client, so a re-run pays nothing twice.

Data recipes call LLMs and image models thousands of times. ``CachedClient`` keys every call by
what it sends (endpoint, model, messages or prompt, source image bytes, parameters) and the
sample's seed, never by the server address or the key. Each reply is stored the moment it arrives
(images first, as content-addressed blobs, then the cache line, fsync'd), so a process killed in
the middle of a batch loses only the calls still in flight. Failed calls are not cached: the next
run asks again.

Accounting: every call's tokens and cost are kept in its cache line, so ``usage(keys)`` reports what
the calls a dataset used cost in total (the same for a resumed run as for an uninterrupted one), and
apart from it what this process actually sent and paid. The recipe runner records which calls each
batch of rows touched (``mark`` / ``touched_since``), so rows restored from its step cache still
count the calls that made them.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from harness.cache import KeyedLog
from harness.clients.openai_compat import ChatResult, ImageResult, OpenAICompatClient
from harness.errors import HarnessError
from harness.fileio import atomic_write_bytes
from harness.hashing import hash_bytes, hash_value
from harness.images import image_format

#: how the error of a chat result starts when every attempt gave an unusable reply
UNUSABLE_REPLY = "unusable reply"
#: price keys a recipe may give a client: USD per 1000 prompt / completion tokens, USD per call
PRICE_KEYS = ("prompt_per_1k", "completion_per_1k", "per_request")


def image_extension(data: bytes) -> str:
    """The file extension for image bytes as an API returns them (PNG, JPEG or WebP; else "bin")."""
    kind = image_format(data)
    return kind[0] if kind else "bin"


class BlobStore:
    """Content-addressed files: ``put(bytes) -> name`` (``<sha256 prefix>.<ext>``), idempotent."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def put(self, data: bytes) -> str:
        name = f"{hash_bytes(data, length=32)}.{image_extension(data)}"
        path = self.folder / name
        if not path.is_file():
            atomic_write_bytes(path, data)
        return name

    def path(self, name: str) -> Path:
        return self.folder / name

    def read(self, name: str) -> bytes:
        return (self.folder / name).read_bytes()


def validate_prices(prices: Any, where: str) -> dict[str, float]:
    if prices is None:
        return {}
    if not isinstance(prices, Mapping) or not set(prices) <= set(PRICE_KEYS) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in prices.values()):
        raise HarnessError(f"{where}: prices must map some of {', '.join(PRICE_KEYS)} to non-negative "
                           f"USD amounts, got {prices!r}")
    return {key: float(value) for key, value in prices.items()}


class CachedClient:
    """``chat_many`` / ``images_generate`` / ``images_edit`` with a per-call cache and accounting.

    Each method takes one seed per item: two rows that happen to send the same prompt are two
    samples, and the seed keeps them apart (image APIs take no seed, so their outputs are draws).
    """

    def __init__(self, client: OpenAICompatClient, log: KeyedLog, blobs: BlobStore,
                 prices: Mapping[str, float] | None = None):
        self.client = client
        self.blobs = blobs
        self.prices = dict(prices or {})
        self._log = log
        self._lock = threading.Lock()
        self._touched: list[str] = []  # keys of the calls answered so far (cache or server), in order
        self._sent = {"calls": 0, "failures": 0, "cost_usd": 0.0}

    @property
    def identity(self) -> dict:
        """What about the client changes outputs: the model, not where it is served or how patiently."""
        return {"model": self.client.model}

    # ------------------------------------------------------------------------------------------

    def chat_many(self, conversations: Sequence[list[dict]], seeds: Sequence[int],
                  unusable: Callable[[int, str], str | None] | None = None, max_attempts: int = 3,
                  **params: Any) -> list[ChatResult]:
        """One chat completion per conversation, in input order.

        ``unusable(index, text)`` may say why a reply is of no use to the step (an empty prompt, a
        reply in the wrong format). Such a reply is cached like any other (it was paid for) and the
        conversation is asked again as attempt 1, 2, ... (each its own cache key), up to
        ``max_attempts``; the result is the first usable reply, or an error starting with
        ``UNUSABLE_REPLY``. A resumed run replays the cached attempts, so it gets the same outcome
        and pays for none of them again.
        """
        results: list[ChatResult | None] = [None] * len(conversations)
        pending = list(range(len(conversations)))
        for attempt in range(max(1, max_attempts)):
            if not pending:
                break
            replies = self._run([(i, conversations[i]) for i in pending], [seeds[i] for i in pending],
                                lambda item, seed: self._key("chat", {"messages": item[1]}, params, seed, attempt),
                                lambda item: self._chat_call(item[1], params), self._chat_from_record)
            still = []
            for index, reply in zip(pending, replies):
                reason = None if reply.error or unusable is None else unusable(index, reply.text or "")
                if reason is None:
                    results[index] = reply
                    continue
                still.append(index)
                results[index] = ChatResult(None, f"{UNUSABLE_REPLY} after {attempt + 1} attempt(s): {reason}: "
                                                  f"{(reply.text or '')[:200]!r}", reply.attempts, reply.model,
                                            reply.usage)
            pending = still
        return results  # type: ignore[return-value]

    def _chat_call(self, messages: list[dict], params: Mapping[str, Any]) -> tuple[ChatResult, dict | None, bool]:
        result = self.client.chat(messages, **params)
        return result, None if result.error else {"text": result.text}, result.error is None

    @staticmethod
    def _chat_from_record(record: dict) -> ChatResult:
        return ChatResult(record["text"], None, 0, record.get("model"), record.get("usage", {}))

    def images_generate(self, prompts: Sequence[str], seeds: Sequence[int], **params: Any) -> list[ImageResult]:
        def key(prompt: str, seed: int) -> str:
            return self._key("images.generate", {"prompt": prompt}, params, seed)

        def call(prompt: str) -> tuple[ImageResult, dict | None, bool]:
            result = self.client.images_generate([prompt], **params)[0]
            return result, None if result.error else {"blob": self.blobs.put(result.data)}, result.error is None

        return self._run(prompts, seeds, key, call, self._image_from_record)

    def images_edit(self, images: Sequence[bytes], prompts: Sequence[str], seeds: Sequence[int],
                    **params: Any) -> list[ImageResult]:
        if len(images) != len(prompts):
            raise ValueError(f"{len(images)} images for {len(prompts)} prompts")

        def key(pair: tuple[bytes, str], seed: int) -> str:
            return self._key("images.edit", {"image": hash_bytes(pair[0], length=32), "prompt": pair[1]},
                             params, seed)

        def call(pair: tuple[bytes, str]) -> tuple[ImageResult, dict | None, bool]:
            result = self.client.images_edit([pair[0]], [pair[1]], **params)[0]
            return result, None if result.error else {"blob": self.blobs.put(result.data)}, result.error is None

        return self._run(list(zip(images, prompts)), seeds, key, call, self._image_from_record)

    def _image_from_record(self, record: dict) -> ImageResult:
        return ImageResult(self.blobs.read(record["blob"]), None, 0, record.get("model"), record.get("usage", {}))

    # ------------------------------------------------------------------------------------------

    def _key(self, endpoint: str, request: dict, params: Mapping[str, Any], seed: int, attempt: int = 0) -> str:
        present = {name: value for name, value in params.items() if value is not None}
        value = {"endpoint": endpoint, **self.identity, "request": request, "params": present, "seed": int(seed)}
        return hash_value({**value, "attempt": attempt} if attempt else value, length=32)

    def _run(self, items: Sequence[Any], seeds: Sequence[int], key_of: Callable[[Any, int], str],
             call: Callable[[Any], tuple[Any, dict | None, bool]], from_record: Callable[[dict], Any]) -> list[Any]:
        if len(items) != len(seeds):
            raise ValueError(f"{len(items)} items for {len(seeds)} seeds")
        keys = [key_of(item, seed) for item, seed in zip(items, seeds)]
        results: list[Any] = [None] * len(items)
        missing = []
        for index, key in enumerate(keys):
            record = self._log.get(key)
            if record is not None:
                with self._lock:
                    self._touched.append(key)
                results[index] = from_record(record)
            else:
                missing.append(index)
        if missing:
            self.client.check_credentials()  # a configuration error stops the batch before any call

            def fetch(index: int) -> Any:
                result, payload, answered = call(items[index])
                cost = self._cost(result.usage, succeeded=answered)
                with self._lock:
                    self._sent["calls"] += 1
                    self._sent["cost_usd"] += cost
                    if payload is None:
                        self._sent["failures"] += 1
                        return result
                    record = {**payload, "model": result.model, "usage": dict(result.usage),
                              "cost_usd": cost}
                    self._log.put(keys[index], record, sync=False)
                    self._touched.append(keys[index])
                self._log.sync()  # durable before the caller sees the result; concurrent fsyncs overlap
                return result

            workers = min(self.client.max_concurrency, len(missing))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cached-client") as pool:
                for index, result in zip(missing, pool.map(fetch, missing)):
                    results[index] = result
        return results

    def _cost(self, usage: Mapping[str, int], succeeded: bool) -> float:
        cost = (usage.get("prompt_tokens", 0) / 1000 * self.prices.get("prompt_per_1k", 0.0)
                + usage.get("completion_tokens", 0) / 1000 * self.prices.get("completion_per_1k", 0.0))
        return cost + (self.prices.get("per_request", 0.0) if succeeded else 0.0)

    def mark(self) -> int:
        """A position in the list of answered calls; ``touched_since(mark)`` gives the keys after it."""
        with self._lock:
            return len(self._touched)

    def touched_since(self, mark: int) -> list[str]:
        with self._lock:
            return sorted(set(self._touched[mark:]))

    def usage(self, keys: Iterable[str] | None = None) -> dict:
        """``dataset``: tokens and cost of the calls ``keys`` (default: those answered in this process),
        wherever their answers came from; ``this_run``: what this process sent (with retries and
        failures) and what that cost."""
        with self._lock:
            keys = sorted(set(self._touched if keys is None else keys))
            sent = dict(self._sent)
        transport = self.client.usage
        total = {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0}
        for key in keys:
            record = self._log.get(key)
            if record is None:
                continue
            total["calls"] += 1
            for name in ("prompt_tokens", "completion_tokens"):
                total[name] += int(record.get("usage", {}).get(name, 0))
            total["cost_usd"] += float(record.get("cost_usd", 0.0))
        total["cost_usd"] = round(total["cost_usd"], 6)
        return {"model": self.client.model, "priced": bool(self.prices), "dataset": total,
                "this_run": {"calls_sent": sent["calls"], "http_requests": transport["requests"],
                             "retries": transport["retries"], "failures": sent["failures"],
                             "cost_usd": round(sent["cost_usd"], 6)}}
