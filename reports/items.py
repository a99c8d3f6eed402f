"""Per-item values of a finished run, the unit of every paired comparison.

A benchmark's ``item_scores`` gives item id -> (group, value), and its ``headline_aggregation`` says
how those values make the headline number. ``headline`` recomputes it, so a statistic on resampled
items is a statistic on the number the benchmark reports.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from harness.benchmark import Benchmark
from harness.runner import build_benchmark, load_records
from harness.spec import RunSpec

AGGREGATIONS = ("pooled", "group_mean", "group_sum")


@dataclass
class RunItems:
    """One run's per-item values, with what is needed to aggregate them."""

    benchmark: Benchmark
    values: dict[str, tuple[str, float]]  # item id -> (group, value)

    @property
    def aggregation(self) -> str:
        return self.benchmark.headline_aggregation


def run_items(run_dir: str | Path) -> RunItems:
    """Rebuild the run's benchmark from its ``spec.yaml`` and read its per-item values."""
    run_dir = Path(run_dir)
    benchmark = build_benchmark(RunSpec.load(run_dir / "spec.yaml"))
    return RunItems(benchmark, benchmark.item_scores(load_records(run_dir)))


def headline(values: Mapping[str, tuple[str, float]], aggregation: str) -> float | None:
    """The headline number from per-item values: pooled mean, mean of group means, or their sum."""
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {aggregation!r}; known: {AGGREGATIONS}")
    if not values:
        return None
    if aggregation == "pooled":
        return sum(value for _, value in values.values()) / len(values)
    groups: dict[str, list[float]] = {}
    for group, value in values.values():
        groups.setdefault(group, []).append(value)
    means = [sum(v) / len(v) for v in groups.values()]
    return sum(means) / len(means) if aggregation == "group_mean" else sum(means)
