"""Chat-judge replies kept as they arrive, so a killed run never pays for a verdict twice.

The runner wraps every chat judge (anything with ``ask``) in a :class:`RecordedChatJudge`. Each
reply is appended to ``CACHE/replies-<role>.rank<R>.jsonl`` the moment the call returns, keyed by
the judge's identity (as in the judgement key) and the prompt's content (text, system text,
image pixels, image order, and the ``response_format`` when there is one: a prompt without one
has the key it had before that field existed, so older logs still answer). A resumed run asks
the same prompts and gets the kept replies back without a call; the per-sample verdicts it then
computes are the same.

Only replies that count are kept: one with an error, with empty text, or that the prompt's own
``accept`` check refuses (a benchmark's official parser finding nothing in it) is returned to
the benchmark but never kept, so the next attempt, or the next run, asks again.
"""
from __future__ import annotations

import inspect
import json
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

from harness.cache import KeyedLog
from harness.errors import HarnessError
from harness.hashing import hash_bytes, hash_value
from harness.judges.base import ChatPrompt, ChatReply


def reply_key(identity: Any, prompt: ChatPrompt) -> str:
    images = [hash_bytes(f"{image.mode}{image.size}".encode() + image.tobytes()) for image in prompt.images]
    content = {"judge": identity, "text": prompt.text, "system": prompt.system, "images": images,
               "images_after_text": prompt.images_after_text}
    response_format = getattr(prompt, "response_format", None)
    if response_format is not None:  # as sent: key order counts
        content["response_format"] = json.dumps(response_format, ensure_ascii=False)
    return hash_value(content, length=32)


def acceptable(prompt: ChatPrompt, reply: ChatReply) -> bool:
    """A reply worth keeping: no error, some text, and (if the prompt has a check) accepted by it."""
    if reply.error is not None or not reply.text or not reply.text.strip():
        return False
    return prompt.accept is None or bool(prompt.accept(reply.text))


class RecordedChatJudge:
    """``judge`` with its acceptable replies kept in ``log`` as they arrive (see the module)."""

    def __init__(self, judge: Any, log: KeyedLog, identity: Any):
        self.judge = judge
        self.log = log
        self.identity = identity
        self.replayed = 0  # replies served from the log in this process
        self._lock = threading.Lock()
        self._streams = "on_reply" in inspect.signature(judge.ask).parameters

    def __getattr__(self, name: str) -> Any:  # judge_id, usage, served_models, ...
        return getattr(self.judge, name)

    def ask(self, prompts: Sequence[ChatPrompt]) -> list[ChatReply]:
        keys = [reply_key(self.identity, prompt) for prompt in prompts]
        replies: list[ChatReply | None] = []
        for key in keys:
            hit = self.log.get(key)
            replies.append(ChatReply(**hit["reply"]) if hit else None)
        todo = [index for index, reply in enumerate(replies) if reply is None]
        self.replayed += len(prompts) - len(todo)
        if not todo:
            return replies  # type: ignore[return-value]

        def keep(position: int, reply: ChatReply) -> None:
            index = todo[position]
            if acceptable(prompts[index], reply):
                with self._lock:
                    self.log.put(keys[index], {"reply": {"text": reply.text, "error": None,
                                                         "attempts": reply.attempts, "model": reply.model}})

        asked = [prompts[index] for index in todo]
        fresh = self.judge.ask(asked, on_reply=keep) if self._streams else self.judge.ask(asked)
        if len(fresh) != len(asked):
            raise RuntimeError(f"the judge returned {len(fresh)} replies for {len(asked)} prompts")
        for position, (index, reply) in enumerate(zip(todo, fresh)):
            if not self._streams:
                keep(position, reply)
            replies[index] = reply
        return replies  # type: ignore[return-value]


class JudgeLoadError(HarnessError):
    """A judge could not be built: fatal for the run, never a per-sample failure."""


class LazyJudges(dict):
    """Mapping role -> judge that builds each judge the first time a benchmark asks for it (once).

    With ``replies`` (a cache folder, this rank, and each role's identity), a chat judge's replies
    are kept as they arrive (``harness.judge_replies``)."""

    def __init__(self, factories: dict[str, Callable[[], Any]],
                 replies: tuple[Path, int, dict] | None = None):
        super().__init__()
        self._factories = factories
        self._replies = replies
        self._logs: list[KeyedLog] = []

    def __missing__(self, role: str) -> Any:
        try:
            judge = self._factories[role]()
        except Exception as exc:
            raise JudgeLoadError(f"could not build the {role} judge: {exc}") from exc
        if self._replies is not None and callable(getattr(judge, "ask", None)):
            folder, rank, identity = self._replies
            log = KeyedLog(folder, f"replies-{role}", rank)
            self._logs.append(log)
            judge = RecordedChatJudge(judge, log, identity[role])
        self[role] = judge
        return judge

    def close(self) -> None:
        for log in self._logs:
            log.close()

    def __contains__(self, role: object) -> bool:
        return role in self._factories
