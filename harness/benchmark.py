"""The benchmark interface: what to ask the model, how to score one output, how to aggregate.

A benchmark is a small package under ``benchmarks/`` that subclasses :class:`Benchmark` and
registers itself (``@register("benchmark", "geneval")``). The runner does the rest (caching,
resuming, sharding, failure accounting) and never branches on benchmark names.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

from harness.models.base import Request
from harness.schema import SampleRecord


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
    #: for reports: the key of ``scores`` holding the per-category breakdown, its scale, and a note
    #: on how the headline number is formed
    breakdown: ClassVar[str] = ""
    breakdown_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    scale_note: ClassVar[str] = ""

    @property
    def protocol(self) -> dict[str, Any]:
        """Benchmark parameters that change a number (data hashes, outputs per item, options)."""
        raise NotImplementedError

    def requests(self, run_seed: int, limit: int | None = None) -> list[Request]:
        """Every sample to generate, each with its own seed; ``limit`` keeps the first N items."""
        raise NotImplementedError

    @property
    def generation_protocol(self) -> dict[str, Any]:
        """The part of ``protocol`` that changes the model's outputs (generation cache keys)."""
        return {key: value for key, value in self.protocol.items() if key not in self.scoring_keys}

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

    def write_official(self, run_dir: Path, records: Sequence[SampleRecord]) -> list[str]:
        """Write the official result file(s); return their paths relative to ``run_dir``."""
        return []
