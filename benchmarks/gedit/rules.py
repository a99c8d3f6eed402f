"""GEdit-Bench scoring: one item's VIEScore from the judge's replies, and the official averages.

One item (``VIEScore.evaluate`` with ``task="tie"``, called by ``test_gedit_score.py``'s
``process_single_item``), read at stepfun-ai/Step1X-Edit e78b811:

- An *attempt* asks the SC prompt and the PQ prompt once each and parses both replies
  (:mod:`benchmarks.gedit.parsing`; from the second attempt on, with ``give_up_parsing``). If
  either is unparsed, both are asked again (a new attempt), however good the other one was.
- When both parse, a reply ``rate_limit_exceeded`` fails the *round* (upstream raises); else
  ``SC = min(SC["score"])``, ``PQ = min(PQ["score"])`` and ``O = math.sqrt(SC * PQ)``. Anything
  that raises there (no ``score`` key, an empty list, text scores, a negative product) fails the
  round too.
- A failed round is retried from its first attempt (``process_single_item``: up to 10000 rounds,
  sleeping 2 s, 4 s, ... between them); an item that never succeeds is left out of the CSV.

What we do differently, and only where upstream's outcome is random or never comes:

- Upstream *guesses* ``random.randint(0, 10)`` for a re-asked reply without ``{...}``; we stop and
  record a judge failure (never a score).
- Upstream repeats attempts and rounds without end; we stop after ``max_attempts`` attempts in a
  round and ``max_rounds`` rounds, with a judge failure.
- A reply the API could not give (an HTTP error after the client's retries; upstream's client
  returns ``""``, which leads to a guess on the re-ask) is a judge failure at once.
- A score that is a bool, NaN or infinite is a judge failure (upstream would write it into the
  CSV, where ``calculate_statistics.py`` crashes or averages NaN).

Averages (``calculate_statistics.py``'s ``analyze_scores``): per edit type, ``np.mean`` of the SC,
PQ and O values of the rows in the chosen language (all rows, and the rows with
``intersection_exist``), in the order of the type's CSV; the average is ``np.mean`` of the eleven
type means, unweighted, in the order of :data:`benchmarks.gedit.data.TASK_TYPES`. ``np.mean`` sums
pairwise, so the same summation is used here to give the same last bits.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from benchmarks.gedit.parsing import Parsed, parse_reply

DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_MAX_ROUNDS = 3


class RoundFailed(Exception):
    """What makes upstream's ``evaluate`` raise for this round (the item is evaluated again)."""


def _min_score(parsed: Parsed, which: str) -> Any:
    value = parsed.value
    try:
        return min(value["score"])
    except Exception as exc:  # noqa: BLE001 - upstream lets any of these raise out of evaluate
        raise RoundFailed(f"{which}: min(reply['score']) fails ({type(exc).__name__}: {exc})") from None


def item_scores(sc: Parsed, pq: Parsed) -> tuple[Any, Any, float]:
    """(SC, PQ, O) of two parsed replies, as ``evaluate`` computes them; :class:`RoundFailed` where it
    raises. SC and PQ keep their type (int or float), as they go into the CSV."""
    sc_score = _min_score(sc, "SC")
    pq_score = _min_score(pq, "PQ")
    try:
        overall = math.sqrt(sc_score * pq_score)
    except Exception as exc:  # noqa: BLE001 - text scores, a negative product, an overflow
        raise RoundFailed(f"sqrt(SC x PQ) fails for SC={sc_score!r}, PQ={pq_score!r} "
                          f"({type(exc).__name__}: {exc})") from None
    return sc_score, pq_score, overall


@dataclass
class Judging:
    """One item's judging, fed one (SC reply, PQ reply) pair per attempt.

    ``feed`` returns "ask" (ask both prompts again), "done" (``scores`` holds SC, PQ, O) or "failed"
    (``failure`` says why). ``calls`` keeps every reply with its round and attempt.
    """

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    max_rounds: int = DEFAULT_MAX_ROUNDS
    round: int = 1
    attempt: int = 1
    calls: list[dict] = field(default_factory=list)
    scores: tuple[Any, Any, float] | None = None
    failure: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.scores is not None or self.failure is not None

    def fail(self, message: str) -> str:
        self.failure = message
        return "failed"

    def error(self, message: str) -> str:
        """The API gave no reply (after the client's own retries): a judge failure."""
        return self.fail(f"judge error: {message}")

    def feed(self, sc_text: str, pq_text: str) -> str:
        if self.finished:
            raise RuntimeError("this item's judging is finished")
        self.calls.append({"round": self.round, "attempt": self.attempt, "sc": sc_text, "pq": pq_text})
        give_up = self.attempt > 1
        sc, pq = parse_reply(sc_text, give_up), parse_reply(pq_text, give_up)
        if "crash" in (sc.kind, pq.kind):
            return self._next_round("the reply parser raises (upstream: evaluate fails)")
        if sc.kind == "unparsed" or pq.kind == "unparsed":
            which = " and ".join(name for name, p in (("SC", sc), ("PQ", pq)) if p.kind == "unparsed")
            self.notes.append(f"round {self.round} attempt {self.attempt}: {which} reply not parsed; both asked again")
            self.attempt += 1
            if self.attempt > self.max_attempts:
                return self.fail(f"no parsable reply pair in {self.max_attempts} attempts (round {self.round}); "
                                 "upstream would keep asking")
            return "ask"
        if "rate_limit" in (sc.kind, pq.kind):
            return self._next_round("a reply 'rate_limit_exceeded' (upstream raises ValueError)")
        try:
            if sc.kind != "guess":
                _min_score(sc, "SC")
            if pq.kind != "guess":
                _min_score(pq, "PQ")
        except RoundFailed as exc:
            return self._next_round(str(exc))
        if "guess" in (sc.kind, pq.kind):
            which = " and ".join(name for name, p in (("SC", sc), ("PQ", pq)) if p.kind == "guess")
            return self.fail(f"{which} reply on a re-ask holds no JSON object: upstream would guess a random "
                             "score (random.randint(0, 10)); recorded as a judge failure instead")
        try:
            scores = item_scores(sc, pq)
        except RoundFailed as exc:
            return self._next_round(str(exc))
        bad = [value for value in scores[:2] if isinstance(value, bool) or not isinstance(value, (int, float))
               or not math.isfinite(value)]
        if bad or not math.isfinite(scores[2]):
            return self.fail(f"score {bad[0] if bad else scores[2]!r} is not a finite number (upstream would write it "
                             "into the CSV, and calculate_statistics.py would crash or average NaN)")
        self.scores = scores
        return "done"

    def _next_round(self, reason: str) -> str:
        self.notes.append(f"round {self.round} failed: {reason}")
        self.round, self.attempt = self.round + 1, 1
        if self.round > self.max_rounds:
            return self.fail(f"{self.max_rounds} rounds failed (last: {reason}); upstream retries up to 10000 times")
        return "ask"


def replay(pairs: Iterable[Sequence[str]], max_attempts: int = DEFAULT_MAX_ATTEMPTS,
           max_rounds: int = DEFAULT_MAX_ROUNDS) -> Judging:
    """Feed recorded (SC, PQ) reply pairs in order until the item is finished; a judging that runs
    out of replies first fails ("incomplete"). Pairs left over are ignored."""
    judging = Judging(max_attempts, max_rounds)
    for sc_text, pq_text in pairs:
        if judging.feed(sc_text, pq_text) != "ask":
            return judging
    if not judging.finished:
        judging.fail("incomplete: the recorded replies end before the item was scored")
    return judging


# ------------------------------------------------------------------------------------ averages
@dataclass(frozen=True)
class Row:
    """One scored item, as a row of the official CSV."""

    task_type: str
    semantics: Any
    quality: Any
    intersection: bool
    language: str


def _mean(values: Sequence[Any]) -> float:
    return float(np.mean(values))


def averages(rows: Iterable[Row], language: str, task_types: Sequence[str]) -> dict[str, Any]:
    """``analyze_scores``: ``{"full": part, "intersection": part}``, each part ``{"semantics",
    "quality", "overall", "types": {type: {"semantics", "quality", "overall", "items"}},
    "types_scored"}``. A type without rows is left out of ``types`` (upstream: NaN), and the
    averages are over the types present (upstream: NaN as soon as one is missing)."""
    by_type: dict[str, dict[str, list[list[Any]]]] = {
        name: {"full": [[], [], []], "intersection": [[], [], []]} for name in task_types}
    for row in rows:
        if row.language != language or row.task_type not in by_type:
            continue
        overall = math.sqrt(row.semantics * row.quality)
        parts = ["full", "intersection"] if row.intersection else ["full"]
        for part in parts:
            for values, value in zip(by_type[row.task_type][part], (row.semantics, row.quality, overall)):
                values.append(value)
    result = {}
    for part in ("full", "intersection"):
        types = {}
        for name in task_types:
            semantics, quality, overall = by_type[name][part]
            if semantics:
                types[name] = {"semantics": _mean(semantics), "quality": _mean(quality),
                               "overall": _mean(overall), "items": len(semantics)}
        result[part] = {
            "semantics": _mean([np.float64(t["semantics"]) for t in types.values()]) if types else None,
            "quality": _mean([np.float64(t["quality"]) for t in types.values()]) if types else None,
            "overall": _mean([np.float64(t["overall"]) for t in types.values()]) if types else None,
            "types": types, "types_scored": len(types)}
    return result


def flat_scores(part: Mapping[str, Any]) -> dict[str, Any]:
    """One part of :func:`averages` as summary scores: the three averages and per-type dicts."""
    types = part["types"]
    return {"overall": part["overall"], "semantics": part["semantics"], "quality": part["quality"],
            "types": {name: t["overall"] for name, t in types.items()},
            "types_semantics": {name: t["semantics"] for name, t in types.items()},
            "types_quality": {name: t["quality"] for name, t in types.items()}}
