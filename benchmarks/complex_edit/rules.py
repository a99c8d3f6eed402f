"""Complex-Edit scoring: reading one judge reply, one item's measurements, and a level's means.

As ``eval.py`` and ``complex_edit/eval/{alignment,quality}.py`` do it (UCSC-VLAA/Complex-Edit
3502eaa; identical in GPT-Image-Edit 60eb6c8):

- A reply is the JSON object of a structured output, validated by pydantic against ``CoTAlignment``
  (``reasoning``: a string; ``instruction_following``, ``identity_preservation``: each one of the
  *strings* ``"0"`` .. ``"10"``) or ``PerceptualQuality`` (``perceptual_quality``). Other keys are
  ignored; a number where a string belongs, ``"11"``, a missing key, text around the JSON or a code
  fence fail validation. The scores are then ``int()``-ed. :func:`read_reply` does the same with
  ``json.loads``.
- ``n`` measurements per item and metric (default 20), asked ``m`` at a time (the API's ``n``,
  default 5). A call one of whose replies fails validation is thrown away whole and asked again
  (tenacity, without end). The harness asks one reply per call (``m = 1``: independent draws of
  one prompt either way, so the same distribution; docs/COMPLEX_EDIT.md), re-asks an invalid one
  alone, and gives up after ``max_invalid`` invalid replies (a judge failure).
- Item: each metric's mean over its measurements (``dict_mean``: ``sum / n``); item overall =
  ``sum`` of the three means ``/ 3``. Level: ``dict_mean`` over the items, in output-name order, of
  the three metrics and of the item overalls. (``eval.py`` writes the quality means, not these, into
  ``overall/final_result.json``; the overall it logs is this one.)
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping, Sequence

LITERALS = frozenset(str(value) for value in range(11))
ALIGNMENT_KEYS = ("instruction_following", "identity_preservation")
QUALITY_KEYS = ("perceptual_quality",)
METRICS = ALIGNMENT_KEYS + QUALITY_KEYS
DEFAULT_MEASUREMENTS = 20
UPSTREAM_CALL_SIZE = 5


def _has_lone_surrogate(value: Any) -> bool:
    """``json`` decodes ``"\\ud800"`` to a lone surrogate; pydantic's JSON parser rejects it."""
    if isinstance(value, str):
        return any("\ud800" <= char <= "\udfff" for char in value)
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


def read_reply(text: str, keys: Sequence[str], reasoning: bool) -> dict[str, int] | None:
    """The scores of one valid reply (``{key: int}``), or None where pydantic would reject it."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or _has_lone_surrogate(data):
        return None
    if reasoning and not isinstance(data.get("reasoning"), str):
        return None
    scores = {}
    for key in keys:
        value = data.get(key)
        if not isinstance(value, str) or value not in LITERALS:
            return None
        scores[key] = int(value)
    return scores


class OutOfReplies(Exception):
    """The recorded replies end before ``n`` valid measurements were collected."""


@dataclass
class Measurements:
    """One metric group's measurements for one item (alignment: two keys, quality: one)."""

    keys: tuple[str, ...]
    reasoning: bool
    n: int
    runs: list[dict[str, Any]] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return len(self.runs) >= self.n

    def means(self) -> dict[str, float]:
        return {key: sum(run[key] for run in self.runs) / len(self.runs) for key in self.keys}


def collect(replies: Iterable[str], keys: Sequence[str], reasoning: bool, n: int, call_size: int = 1,
            max_failed_calls: int | None = None, upstream: bool = False) -> Measurements:
    """``n`` measurements from a stream of replies.

    As the harness asks (``upstream`` False): one reply per call (``call_size`` 1), an invalid reply
    asked again. As ``eval.py`` asks (``upstream`` True, ``call_size`` = its ``-m``): calls of
    ``call_size`` replies (the last ``n % call_size``); a call with a reply pydantic rejects is
    thrown away whole and asked again; an *empty* reply is not validated by the SDK (``parsed`` is
    None), so its call passes, and once every call is made the sample fails on ``parsed.model_dump()``
    and is evaluated again from the start. Raises :class:`OutOfReplies` when the stream ends first,
    ValueError after ``max_failed_calls`` thrown-away calls."""
    stream: Iterator[str] = iter(replies)
    sizes = [call_size] * (n // call_size) + ([n % call_size] if n % call_size else [])
    failed = 0
    invalid: list[str] = []
    while True:
        result = Measurements(tuple(keys), reasoning, n, invalid=invalid)
        poisoned = False
        for size in sizes:
            while True:
                call = []
                for _ in range(size):
                    try:
                        call.append(next(stream))
                    except StopIteration:
                        raise OutOfReplies(f"{len(result.runs)} of {n} measurements when the replies end") from None
                parsed = [read_reply(text, keys, reasoning) for text in call]
                if all(value is not None or (upstream and text == "") for text, value in zip(call, parsed)):
                    if upstream and "" in call:
                        poisoned = True
                    for text, value in zip(call, parsed):
                        if value is not None:
                            run = ({"reasoning": json.loads(text)["reasoning"]} if reasoning else {}) | value
                            result.runs.append(run)
                    break
                invalid += [text for text, value in zip(call, parsed) if value is None]
                failed += 1
                if max_failed_calls is not None and failed > max_failed_calls:
                    raise ValueError(f"{failed} calls with a reply that is not a valid {'/'.join(keys)} object")
        if not poisoned:
            return result
        invalid.append("")


def item_means(alignment: Mapping[str, float], quality: Mapping[str, float]) -> dict[str, float]:
    """``overall.update(alignment); overall.update(quality); overall["overall"] = sum / len``."""
    values = {key: alignment[key] for key in ALIGNMENT_KEYS} | {key: quality[key] for key in QUALITY_KEYS}
    return values | {"overall": sum(values.values()) / len(values)}


def level_means(items: Sequence[Mapping[str, float]]) -> dict[str, float] | None:
    """``dict_mean`` of the items' four numbers, summed in item order."""
    if not items:
        return None
    return {key: sum(item[key] for item in items) / len(items) for key in (*METRICS, "overall")}
