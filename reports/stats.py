"""Paired statistics for comparing two runs of one benchmark, and the non-inferiority gate.

The unit of resampling is the benchmark *item* (a GenEval prompt with its four images, an MME
image with its two questions, an MMBench question with its circular passes): samples of one item
share a prompt and are not independent, so they are resampled together. Item values come from
``Benchmark.item_scores`` (see ``reports.items``), and every statistic is computed on the number
the benchmark reports, through ``reports.items.headline``.

Bootstrap details:

- Only items present on both sides are used, paired by item id (an item a judge failed on one side
  is left out of both).
- "group_mean" and "group_sum" headlines are stratified: each group is resampled within itself and
  keeps its size, as the benchmark's categories are fixed by design, not drawn at random.
- The headlines are linear in the item values once group sizes are fixed, so the difference of the
  two resampled headlines equals the headline aggregation of the resampled per-item differences;
  the code resamples the differences once (one gather per resample).
- Intervals are percentiles of the resampled differences. The two-sided p-value is the one that
  inverts them, ``2 * min(P*(diff <= 0), P*(diff >= 0))`` with the usual +1 correction, so it is
  never reported as exactly 0 (a bootstrap cannot resolve p below 1 / (n_boot + 1)).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy import stats as scipy_stats

from reports.items import AGGREGATIONS, headline

#: resampled values held in memory at once (rows x items); larger problems are done in chunks
_CHUNK_CELLS = 4_000_000


@dataclass(frozen=True)
class Estimate:
    """A number with its interval: a difference (candidate - baseline) or one run's headline."""

    estimate: float
    low: float
    high: float
    p_value: float | None
    method: str
    n_items: int


@dataclass(frozen=True)
class GateResult:
    """The non-inferiority verdict for one benchmark: passed iff ``lower_bound > -margin``."""

    benchmark: str
    estimate: float
    lower_bound: float
    margin: float
    alpha: float
    passed: bool
    n_items: int
    note: str = ""


@dataclass(frozen=True)
class _Layout:
    """Item values sorted so each group is one contiguous block of columns."""

    values: np.ndarray
    starts: np.ndarray  # first column of each group
    sizes: np.ndarray  # items per group


def _check(aggregation: str, n_boot: int, alpha: float) -> None:
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {aggregation!r}; known: {AGGREGATIONS}")
    if int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")


def _layout(values: Mapping[str, float], groups: Mapping[str, str]) -> _Layout:
    order = sorted(values, key=lambda item: (groups[item], item))
    names = [groups[item] for item in order]
    starts = [i for i, name in enumerate(names) if i == 0 or name != names[i - 1]]
    sizes = np.diff([*starts, len(order)])
    return _Layout(np.array([values[item] for item in order], dtype=float), np.array(starts), sizes)


def _resampled_headlines(layout: _Layout, aggregation: str, n_boot: int, seed: int) -> np.ndarray:
    """``n_boot`` headlines of item resamples (stratified by group unless pooled)."""
    rng = np.random.default_rng(seed)
    n_items = len(layout.values)
    stratified = aggregation != "pooled"
    column_start = np.repeat(layout.starts, layout.sizes)
    column_size = np.repeat(layout.sizes, layout.sizes)
    rows_per_chunk = max(1, _CHUNK_CELLS // n_items)
    out = np.empty(n_boot)
    for first in range(0, n_boot, rows_per_chunk):
        rows = min(rows_per_chunk, n_boot - first)
        if stratified:
            index = column_start + np.floor(rng.random((rows, n_items)) * column_size).astype(np.int64)
        else:
            index = rng.integers(0, n_items, size=(rows, n_items))
        sample = layout.values[index]
        if aggregation == "pooled":
            out[first:first + rows] = sample.mean(axis=1)
            continue
        group_means = np.add.reduceat(sample, layout.starts, axis=1) / layout.sizes
        out[first:first + rows] = (group_means.mean(axis=1) if aggregation == "group_mean"
                                   else group_means.sum(axis=1))
    return out


def _paired_differences(candidate: Mapping[str, tuple[str, float]], baseline: Mapping[str, tuple[str, float]],
                        aggregation: str, n_boot: int, seed: int) -> tuple[float, np.ndarray, int]:
    """(observed difference, resampled differences, items paired)."""
    common = sorted(set(candidate) & set(baseline))
    if not common:
        raise ValueError("no items in common between candidate and baseline")
    mismatched = [item for item in common if candidate[item][0] != baseline[item][0]]
    if mismatched:
        raise ValueError(f"{len(mismatched)} paired items have different groups on the two sides "
                         f"(first: {mismatched[0]!r}); the runs were not made on the same data")
    cand = {item: candidate[item] for item in common}
    base = {item: baseline[item] for item in common}
    observed = headline(cand, aggregation) - headline(base, aggregation)
    layout = _layout({item: cand[item][1] - base[item][1] for item in common},
                     {item: cand[item][0] for item in common})
    return observed, _resampled_headlines(layout, aggregation, n_boot, seed), len(common)


def _method(kind: str, aggregation: str, n_boot: int) -> str:
    strata = "items" if aggregation == "pooled" else "items stratified by group"
    return f"{kind} bootstrap over {strata}, {n_boot} resamples, percentile interval ({aggregation})"


def paired_bootstrap(candidate: Mapping[str, tuple[str, float]], baseline: Mapping[str, tuple[str, float]],
                     aggregation: str, *, n_boot: int = 2000, seed: int = 0, alpha: float = 0.05) -> Estimate:
    """Headline(candidate) - headline(baseline) with a two-sided (1 - alpha) percentile interval and
    a two-sided bootstrap p-value; items are paired by id and resampled as clusters."""
    _check(aggregation, n_boot, alpha)
    observed, resampled, n_items = _paired_differences(candidate, baseline, aggregation, n_boot, seed)
    low, high = np.quantile(resampled, [alpha / 2, 1 - alpha / 2])
    at_most_zero = int(np.count_nonzero(resampled <= 0))
    at_least_zero = int(np.count_nonzero(resampled >= 0))
    p_value = min(1.0, 2 * (1 + min(at_most_zero, at_least_zero)) / (n_boot + 1))
    return Estimate(float(observed), float(low), float(high), p_value,
                    _method("paired", aggregation, n_boot), n_items)


def bootstrap_interval(values: Mapping[str, tuple[str, float]], aggregation: str, *, n_boot: int = 2000,
                       seed: int = 0, alpha: float = 0.05) -> Estimate:
    """One run's headline with its two-sided (1 - alpha) percentile interval over item resamples."""
    _check(aggregation, n_boot, alpha)
    if not values:
        raise ValueError("no items to resample")
    layout = _layout({item: value for item, (_, value) in values.items()},
                     {item: group for item, (group, _) in values.items()})
    resampled = _resampled_headlines(layout, aggregation, n_boot, seed)
    low, high = np.quantile(resampled, [alpha / 2, 1 - alpha / 2])
    return Estimate(float(headline(values, aggregation)), float(low), float(high), None,
                    _method("item", aggregation, n_boot), len(values))


def non_inferiority(candidate: Mapping[str, tuple[str, float]], baseline: Mapping[str, tuple[str, float]],
                    aggregation: str, margin: float, alpha: float = 0.05, *, n_boot: int = 2000,
                    seed: int = 0, benchmark: str = "") -> GateResult:
    """Is the candidate no worse than the baseline by more than ``margin`` (headline units)?

    Passed iff the one-sided (1 - alpha) lower bound of candidate - baseline (the alpha percentile
    of the paired bootstrap) is above ``-margin``. So a candidate that is truly ``margin`` worse
    passes with probability about alpha, and the gate's power against smaller drops depends on the
    standard error (see ``reports.gate`` for how the default margins follow from it).
    """
    _check(aggregation, n_boot, alpha)
    if not math.isfinite(margin) or margin < 0:
        raise ValueError(f"margin must be a finite number >= 0, got {margin!r}")
    observed, resampled, n_items = _paired_differences(candidate, baseline, aggregation, n_boot, seed)
    lower = float(np.quantile(resampled, alpha))
    return GateResult(benchmark=benchmark, estimate=float(observed), lower_bound=lower, margin=float(margin),
                      alpha=float(alpha), passed=lower > -margin, n_items=n_items)


def mcnemar(pairs: Sequence[tuple[bool, bool]]) -> tuple[int, int, float]:
    """Exact McNemar test on paired pass/fail outcomes ``(baseline_pass, candidate_pass)``.

    Returns (b, c, p): b = baseline passed and candidate failed, c = the reverse, p = exact
    two-sided binomial p of b among the b + c discordant pairs (1.0 when there are none).
    Samples of one item are not independent, so prefer the item bootstrap for the verdict.
    """
    b = sum(1 for base, cand in pairs if base and not cand)
    c = sum(1 for base, cand in pairs if cand and not base)
    if b + c == 0:
        return 0, 0, 1.0
    return b, c, float(scipy_stats.binomtest(b, b + c, 0.5, alternative="two-sided").pvalue)


def wilcoxon(candidate: Sequence[float], baseline: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p on paired scores (zero differences dropped, the "wilcox"
    convention); 1.0 when every difference is zero."""
    if len(candidate) != len(baseline):
        raise ValueError(f"wilcoxon needs paired samples, got {len(candidate)} and {len(baseline)} values")
    differences = np.asarray(candidate, dtype=float) - np.asarray(baseline, dtype=float)
    if not np.any(differences != 0):
        return 1.0
    result = scipy_stats.wilcoxon(differences, zero_method="wilcox", alternative="two-sided")
    return float(result.pvalue)


def holm(p_values: Mapping[str, float]) -> dict[str, float]:
    """Holm step-down adjusted p-values: the k-th smallest of m is multiplied by (m - k + 1), then
    made non-decreasing in that order and capped at 1."""
    order = sorted(p_values, key=lambda name: p_values[name])
    m = len(order)
    adjusted: dict[str, float] = {}
    running = 0.0
    for rank, name in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[name]))
        adjusted[name] = running
    return {name: adjusted[name] for name in p_values}
