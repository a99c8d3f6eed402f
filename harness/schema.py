"""The result schema: what a run writes, field by field.

Two record types: one :class:`SampleRecord` per scored output (``records.jsonl``) and one
:class:`BenchmarkSummary` per benchmark run (``summary.json``). Benchmarks also write their official
result format beside them (GenEval: ``results.jsonl``), so official scripts can re-read our runs.
"""
from __future__ import annotations

import dataclasses
import json
import platform
import sys
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1


@dataclass
class SampleRecord:
    """The fate of one sample (one generated image, one answer).

    Attributes:
        sample_id: stable id within the benchmark (GenEval: ``"00042/0003"``, prompt 42, image 3).
        item_id: the benchmark item the sample belongs to (GenEval: the prompt index); paired
            statistics cluster by it.
        group: the category the sample is aggregated under (GenEval: the tag).
        seed: the per-sample seed used to generate the output.
        output_path: path of the image output, relative to the run folder ("" for text outputs).
        output_hash: sha256 (16 hex chars) of the output file, or of the UTF-8 answer text.
        score: the sample's score on the benchmark's scale (GenEval: 1.0 correct, 0.0 wrong);
            None when judging failed.
        correct: pass/fail where the benchmark has one, else None.
        rationale: the judge's reason, human-readable (GenEval: the official ``reason``).
        verdict: the benchmark's own per-sample fields (GenEval: the official results.jsonl row).
        judge_failed: True when the judge could not score the output (corrupt image, judge error).
            Failures are counted apart and never scored as wrong.
        failure: the error message when ``judge_failed``.
        output_text: the model's raw answer, for benchmarks whose outputs are text (MME, MMBench).
        provisional: the verdict stands in for a judge that gave nothing usable, as the official
            protocol says (MMBench's seeded random choice after three unreadable extractor
            replies): it is scored, but never kept in the judgement cache, so the next run asks
            the judge again. Written to records only when true.
    """

    sample_id: str
    item_id: str
    group: str
    seed: int
    output_path: str
    output_hash: str
    score: float | None
    correct: bool | None
    rationale: str = ""
    verdict: dict[str, Any] = field(default_factory=dict)
    judge_failed: bool = False
    failure: str | None = None
    output_text: str | None = None
    provisional: bool = False

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        if not self.provisional:  # records of runs without one stay as they were
            del data["provisional"]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "SampleRecord":
        return cls(**data)


@dataclass
class BenchmarkSummary:
    """The headline numbers of one benchmark run, and everything needed to trust them.

    Attributes:
        benchmark: registry name of the benchmark.
        scores: the headline numbers; ``overall`` always, plus benchmark-specific breakdowns
            (GenEval: ``tasks`` = per-tag accuracy).
        counts: samples expected, scored, judge failures and anything else the protocol says to
            count (GenEval: missing images).
        protocol: the protocol card: every parameter that changes a number (data file hashes,
            images per prompt, resolution, cfg, temperature, seed policy, judge ids, options).
        spec_hash: content hash of the run spec.
        model_digest: hash of the model weights the outputs came from.
        versions: harness, python, torch, transformers and judge library versions.
        environment: platform, device, world size.
        timing: seconds spent per stage in this process (resumed runs count only new work).
        usage: token, request and cost accounting where API judges or models were used.
    """

    benchmark: str
    scores: dict[str, Any]
    counts: dict[str, int]
    protocol: dict[str, Any]
    spec_hash: str
    model_digest: str
    versions: dict[str, str] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)
    usage: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)


def library_versions() -> dict[str, str]:
    """Versions of the libraries that can change a number."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": sys.version.split()[0]}
    for package in ("recipe-harness", "torch", "transformers", "open_clip_torch", "mmdet", "numpy", "pillow"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            pass
    return versions


def environment(world_size: int = 1) -> dict[str, Any]:
    device = "cpu"
    try:
        import torch

        if torch.cuda.is_available():
            device = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return {"platform": platform.platform(), "device": device, "world_size": world_size}
