"""The benchmark interface: what to ask the model, how to score one output, how to aggregate.

A benchmark is a small package under ``benchmarks/`` that subclasses :class:`Benchmark` and
registers itself (``@register("benchmark", "geneval")``). The runner does the rest (caching,
resuming, sharding, failure accounting) and never branches on benchmark names.

A benchmark also describes itself to reports (``published_scale``, ``leaderboard_columns``,
``gate_margin``, ``official_items``): reports ask the benchmark class, never a table keyed by name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

from harness.models.base import Request
from harness.schema import SampleRecord


@dataclass(frozen=True)
class ScoreScale:
    """What a benchmark's published scores may hold, on the harness's scale (checked when
    ``reports/published.yaml`` is read); the per-category dict is the benchmark's ``breakdown``."""

    low: float
    high: float
    categories: tuple[str, ...] | None = None  # allowed category names (None = any)
    headline_is_mean: bool = False  # overall = mean of a complete breakdown (checked to the printed digit)
    extra: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # other numbers and their ranges
    part_range: tuple[float, float] | None = None  # range of one category (default: low, high)
    #: score key -> the keys it is the sum of (MME: overall = perception + cognition)
    sums: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Column:
    """A leaderboard column: ``key`` of the benchmark's scores, printed with ``decimals``."""

    label: str
    key: str
    decimals: int
    scale: str  # shown under the label ("0-1", "1-5, judge-dependent")


class Benchmark:
    #: the model capability the benchmark exercises ("text_to_image", "edit", "answer")
    capability: ClassVar[str] = "text_to_image"
    #: judge role -> plugin kind the run spec provides for it
    judge_roles: ClassVar[Mapping[str, str]] = {}
    #: roles the spec may leave out (the benchmark then scores without that judge, e.g. MMBench
    #: choice extraction by rules only); ``role in judges`` tells the benchmark which case it is
    optional_judge_roles: ClassVar[frozenset[str]] = frozenset()
    #: bump when scoring changes in a way that changes numbers (part of judgement cache keys)
    version: ClassVar[str] = "1"
    #: keys of ``protocol`` that change only the scoring, never what the model is asked: they stay
    #: out of generation cache keys, so changing them re-runs the judging and nothing else
    scoring_keys: ClassVar[frozenset[str]] = frozenset()
    #: keys of ``protocol`` that describe the whole data set (file names, content hashes, item
    #: counts): recorded on the card but kept out of every cache key, because each request's and
    #: each item's own content is already in its keys; a renamed copy or a subset of the data then
    #: reuses every output and verdict it shares with earlier runs
    card_only_keys: ClassVar[frozenset[str]] = frozenset()
    #: for reports: the key of ``scores`` holding the per-category breakdown, its scale, and a note
    #: on how the headline number is formed
    breakdown: ClassVar[str] = ""
    #: how the headline is formed from ``item_scores`` (for paired statistics): "pooled" (mean over
    #: items), "group_mean" (mean of the per-group means) or "group_sum" (sum of them)
    headline_aggregation: ClassVar[str] = "pooled"
    #: the per-sample paired test reports use: "mcnemar" (pass/fail), "wilcoxon" (ordinal judge
    #: scores) or "bootstrap" (only the paired bootstrap)
    paired_test: ClassVar[str] = "bootstrap"
    breakdown_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    scale_note: ClassVar[str] = ""
    #: what published numbers may hold (None: the benchmark has no published numbers)
    published_scale: ClassVar[ScoreScale | None] = None
    #: the benchmark's columns on a leaderboard (default: one column, ``overall``)
    leaderboard_columns: ClassVar[tuple[Column, ...]] = ()
    #: where its columns stand on a leaderboard (smaller first; then by name)
    leaderboard_order: ClassVar[int] = 1000
    #: the gate's default non-inferiority margin, in headline units, and the item count it was
    #: derived for (None: the gate needs a margin on the command line)
    gate_margin: ClassVar[float | None] = None
    official_items: ClassVar[int | None] = None

    @property
    def protocol(self) -> dict[str, Any]:
        """Benchmark parameters that change a number (data hashes, outputs per item, options).
        By default ``self._protocol``: a benchmark that reads data builds its card once, in
        ``__init__``; one with nothing to read may override this property instead."""
        try:
            return self._protocol
        except AttributeError:
            raise NotImplementedError(f"{type(self).__name__} sets no _protocol and does not override "
                                      "protocol") from None

    def requests(self, run_seed: int, limit: int | None = None) -> list[Request]:
        """Every sample to generate, each with its own seed; ``limit`` keeps the first N items."""
        raise NotImplementedError

    @property
    def generation_protocol(self) -> dict[str, Any]:
        """The part of ``protocol`` that changes the model's outputs (generation cache keys)."""
        skip = self.scoring_keys | self.card_only_keys
        return {key: value for key, value in self.protocol.items() if key not in skip}

    @property
    def judging_protocol(self) -> dict[str, Any]:
        """The part of ``protocol`` that changes verdicts (judgement cache keys)."""
        return {key: value for key, value in self.protocol.items() if key not in self.card_only_keys}

    @property
    def output_kind(self) -> str:
        """``"image"`` (a PNG file per sample) or ``"text"`` (answers, kept in the records)."""
        return "text" if self.capability == "answer" else "image"

    def output_path(self, request: Request) -> str:
        """Where the image output of ``request`` goes, relative to the run folder ("" for text)."""
        if self.output_kind == "text":
            return ""
        raise NotImplementedError

    def prepare(self, run_dir: Path, requests: Sequence[Request]) -> None:
        """Write whatever the official layout needs besides the outputs (called on rank 0)."""

    def judge_item(self, request: Request) -> Any:
        """The part of the item the judges look at (part of the judgement cache key)."""
        return request.prompt

    def score(self, requests: Sequence[Request], outputs: Sequence[Any],
              judges: Mapping[str, Any]) -> list[SampleRecord]:
        """Score a batch of outputs: image paths (``Path``) or answer texts (``str``), as
        ``output_kind`` says. Raise to mark the batch failed; the runner then retries the samples
        one by one so that one bad output cannot take its neighbours down with it."""
        raise NotImplementedError

    def summarize(self, records: Sequence[SampleRecord]) -> tuple[dict[str, Any], dict[str, int]]:
        """(scores, counts) from the scored records; judge failures are excluded from scores."""
        raise NotImplementedError

    def item_scores(self, records: Sequence[SampleRecord]) -> dict[str, tuple[str, float]]:
        """item id -> (group, value): the values whose ``headline_aggregation`` gives the headline
        score, so that two runs can be compared item by item (paired bootstrap over items). By
        default the mean score of the item's samples; items with a judge failure are left out."""
        by_item: dict[str, list[SampleRecord]] = {}
        for record in records:
            by_item.setdefault(record.item_id, []).append(record)
        values = {}
        for item_id, samples in by_item.items():
            if any(r.judge_failed or r.score is None for r in samples):
                continue
            values[item_id] = (samples[0].group, sum(r.score for r in samples) / len(samples))
        return values

    @staticmethod
    def breakdown_key_of_group(group: str) -> str:
        """The key of ``scores[breakdown]`` an item group is reported under (the same name, unless
        the summary abbreviates it: MMBench's CP, FP-S)."""
        return group

    @classmethod
    def score_groups(cls) -> dict[str, frozenset[str]]:
        """Scalar scores besides ``overall`` that aggregate a subset of the item groups (MME:
        perception and cognition), so reports can put an interval on them."""
        return {}

    @classmethod
    def departures_from_official(cls, protocol: dict[str, Any]) -> list[str]:
        """Why a run's protocol card (``summary.json["protocol"]``) is not the official setup behind
        published numbers, one reason per line; empty when it is. Reports refuse to print a
        difference against a published number when this is not empty."""
        return []

    def write_official(self, run_dir: Path, records: Sequence[SampleRecord]) -> list[str]:
        """Write the official result file(s); return their paths relative to ``run_dir``."""
        return []
