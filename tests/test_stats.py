"""Paired statistics: hand-computed McNemar, Wilcoxon and Holm cases, headline aggregations, the
item bootstrap (stratification, coverage, determinism, p-values) and the non-inferiority rule."""
from __future__ import annotations

import time

import numpy as np
import pytest

from reports.items import headline
from reports.stats import (Estimate, bootstrap_interval, holm, mcnemar, non_inferiority,
                           paired_bootstrap, wilcoxon)


# ------------------------------------------------------------------------------------ McNemar

def test_mcnemar_all_discordant_one_way():
    # 5 pass->fail, 0 fail->pass, 3 concordant: p = 2 * 0.5^5 = 1/16
    pairs = [(True, False)] * 5 + [(True, True)] * 2 + [(False, False)]
    assert mcnemar(pairs) == (5, 0, pytest.approx(0.0625))


def test_mcnemar_mixed_discordant():
    # b = 1, c = 4: P(X <= 1) + P(X >= 4) for Binomial(5, 1/2) = (1 + 5 + 5 + 1) / 32 = 12/32
    pairs = [(True, False)] + [(False, True)] * 4 + [(True, True)] * 10
    b, c, p = mcnemar(pairs)
    assert (b, c) == (1, 4)
    assert p == pytest.approx(12 / 32)


def test_mcnemar_balanced_and_empty():
    # b = c = 2: every outcome is at least as extreme, p = 1
    assert mcnemar([(True, False), (True, False), (False, True), (False, True)])[2] == pytest.approx(1.0)
    assert mcnemar([(True, True), (False, False)]) == (0, 0, 1.0)
    assert mcnemar([]) == (0, 0, 1.0)


# ------------------------------------------------------------------------------------ Wilcoxon

def test_wilcoxon_exact_all_positive():
    # differences 1..5, no ties: W- = 0; exactly 1 of the 2^5 sign patterns has W- <= 0,
    # two-sided p = 2 / 32
    assert wilcoxon([1, 2, 3, 4, 5], [0, 0, 0, 0, 0]) == pytest.approx(2 / 32)


def test_wilcoxon_exact_one_negative_and_zeros_dropped():
    # differences 1, -2, 3, 4, 5 (and two zeros, dropped under "wilcox"): W- = 2.
    # rank subsets with sum <= 2: {}, {1}, {2} -> 3 of 32, two-sided p = 6/32
    candidate = [2, 1, 4, 5, 6, 3, 3]
    baseline = [1, 3, 1, 1, 1, 3, 3]
    assert wilcoxon(candidate, baseline) == pytest.approx(6 / 32)


def test_wilcoxon_no_difference_and_bad_input():
    assert wilcoxon([3.0, 4.0, 2.5], [3.0, 4.0, 2.5]) == 1.0
    with pytest.raises(ValueError, match="paired"):
        wilcoxon([1, 2], [1])


# ------------------------------------------------------------------------------------ Holm

def test_holm_three_by_hand():
    # sorted: a 0.01 x 3 = 0.03; c 0.03 x 2 = 0.06; b 0.04 x 1 = 0.04 -> raised to 0.06 (monotone)
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03})
    assert adjusted == pytest.approx({"a": 0.03, "b": 0.06, "c": 0.06})
    assert list(adjusted) == ["a", "b", "c"]  # the caller's order


def test_holm_caps_at_one():
    # z 0.02 x 3 = 0.06; x 0.5 x 2 = 1.0; y 0.6 x 1 -> max(0.6, 1.0) = 1.0
    assert holm({"x": 0.5, "y": 0.6, "z": 0.02}) == pytest.approx({"x": 1.0, "y": 1.0, "z": 0.06})
    assert holm({}) == {}
    assert holm({"only": 0.2}) == {"only": 0.2}


# ------------------------------------------------------------------------------------ aggregations

VALUES = {"1": ("a", 1.0), "2": ("a", 0.0), "3": ("a", 0.5), "4": ("b", 1.0)}


def test_headline_aggregations_by_hand():
    assert headline(VALUES, "pooled") == pytest.approx(2.5 / 4)
    assert headline(VALUES, "group_mean") == pytest.approx((0.5 + 1.0) / 2)
    assert headline(VALUES, "group_sum") == pytest.approx(0.5 + 1.0)


def test_bootstrap_interval_estimate_is_the_headline():
    for aggregation, expected in (("pooled", 0.625), ("group_mean", 0.75), ("group_sum", 1.5)):
        estimate = bootstrap_interval(VALUES, aggregation, n_boot=200)
        assert estimate.estimate == pytest.approx(expected)
        assert estimate.low <= expected <= estimate.high
        assert estimate.p_value is None and estimate.n_items == 4


# ------------------------------------------------------------------------------------ paired bootstrap

def test_paired_estimate_uses_common_items_only():
    candidate = {"1": ("a", 1.0), "2": ("a", 1.0), "3": ("b", 0.0), "9": ("b", 1.0)}
    baseline = {"1": ("a", 0.0), "2": ("a", 1.0), "3": ("b", 1.0), "8": ("a", 0.0)}
    estimate = paired_bootstrap(candidate, baseline, "group_mean", n_boot=300)
    # common 1, 2, 3: candidate a = 1.0, b = 0.0 -> 0.5; baseline a = 0.5, b = 1.0 -> 0.75
    assert estimate.n_items == 3
    assert estimate.estimate == pytest.approx(-0.25)
    pooled = paired_bootstrap(candidate, baseline, "pooled", n_boot=300)
    assert pooled.estimate == pytest.approx(2 / 3 - 2 / 3)


def test_stratified_resampling_keeps_group_sizes():
    # every item of group a gains exactly 1, every item of b exactly 0: with groups resampled within
    # themselves each resample's mean of group differences is (1 + 0) / 2, so the interval is a point;
    # pooled (unstratified) resamples mix the groups and the interval widens
    candidate = {f"a{i}": ("a", 1.0) for i in range(10)} | {f"b{i}": ("b", 0.0) for i in range(30)}
    baseline = {f"a{i}": ("a", 0.0) for i in range(10)} | {f"b{i}": ("b", 0.0) for i in range(30)}
    strat = paired_bootstrap(candidate, baseline, "group_mean", n_boot=500)
    assert (strat.estimate, strat.low, strat.high) == pytest.approx((0.5, 0.5, 0.5))
    summed = paired_bootstrap(candidate, baseline, "group_sum", n_boot=500)
    assert (summed.estimate, summed.low, summed.high) == pytest.approx((1.0, 1.0, 1.0))
    pooled = paired_bootstrap(candidate, baseline, "pooled", n_boot=500)
    assert pooled.estimate == pytest.approx(0.25)
    assert pooled.low < 0.25 < pooled.high


def test_p_value_identical_and_clear_difference():
    values = {str(i): ("g", float(i % 3)) for i in range(50)}
    same = paired_bootstrap(values, values, "pooled", n_boot=500)
    assert (same.estimate, same.low, same.high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    better = {key: (group, value + 1.0) for key, (group, value) in values.items()}
    clear = paired_bootstrap(better, values, "pooled", n_boot=500)
    # no resample is <= 0: the smallest p a 500-resample bootstrap can give, 2 x 1 / 501
    assert clear.p_value == pytest.approx(2 / 501)
    assert clear.estimate == pytest.approx(1.0)


def test_deterministic_for_a_seed():
    rng = np.random.default_rng(7)
    candidate = {str(i): ("ab"[i % 2], float(rng.random())) for i in range(200)}
    baseline = {str(i): ("ab"[i % 2], float(rng.random())) for i in range(200)}
    first = paired_bootstrap(candidate, baseline, "group_mean", seed=3)
    assert isinstance(first, Estimate)
    assert paired_bootstrap(candidate, baseline, "group_mean", seed=3) == first
    other = paired_bootstrap(candidate, baseline, "group_mean", seed=4)
    assert (other.low, other.high) != (first.low, first.high)
    assert bootstrap_interval(candidate, "pooled", seed=1) == bootstrap_interval(candidate, "pooled", seed=1)


def test_bootstrap_interval_covers_the_truth():
    # 400 Bernoulli(0.3) items, 200 replications: a 95% interval should hold 0.3 about 95% of the time
    rng = np.random.default_rng(11)
    covered = 0
    for replication in range(200):
        draws = rng.random(400) < 0.3
        values = {str(i): ("g", float(x)) for i, x in enumerate(draws)}
        estimate = bootstrap_interval(values, "pooled", n_boot=500, seed=replication)
        covered += estimate.low <= 0.3 <= estimate.high
    assert 0.90 <= covered / 200 <= 0.99


def test_paired_interval_covers_the_true_difference():
    # candidate = baseline + 0.1 on average (per-item noise): the paired interval holds 0.1 ~95% of the time
    rng = np.random.default_rng(5)
    covered = 0
    for replication in range(200):
        base = rng.random(300)
        cand = base + 0.1 + rng.normal(0, 0.2, 300)
        estimate = paired_bootstrap({str(i): ("g", float(v)) for i, v in enumerate(cand)},
                                    {str(i): ("g", float(v)) for i, v in enumerate(base)},
                                    "pooled", n_boot=500, seed=replication)
        covered += estimate.low <= 0.1 <= estimate.high
    assert 0.90 <= covered / 200 <= 0.99


def test_errors():
    with pytest.raises(ValueError, match="aggregation"):
        paired_bootstrap(VALUES, VALUES, "median")
    with pytest.raises(ValueError, match="no items in common"):
        paired_bootstrap({"1": ("a", 1.0)}, {"2": ("a", 1.0)}, "pooled")
    with pytest.raises(ValueError, match="different groups"):
        paired_bootstrap({"1": ("a", 1.0)}, {"1": ("b", 1.0)}, "pooled")
    with pytest.raises(ValueError, match="alpha"):
        paired_bootstrap(VALUES, VALUES, "pooled", alpha=1.5)
    with pytest.raises(ValueError, match="margin"):
        non_inferiority(VALUES, VALUES, "pooled", margin=-0.1)


def test_bootstrap_is_fast_at_geneval_size():
    rng = np.random.default_rng(0)
    tags = ["t0"] * 80 + ["t1"] * 99 + ["t2"] * 80 + ["t3"] * 94 + ["t4"] * 100 + ["t5"] * 100
    candidate = {f"{i:05d}": (tag, rng.binomial(4, 0.7) / 4) for i, tag in enumerate(tags)}
    baseline = {f"{i:05d}": (tag, rng.binomial(4, 0.7) / 4) for i, tag in enumerate(tags)}
    started = time.perf_counter()
    estimate = paired_bootstrap(candidate, baseline, "group_mean", n_boot=2000)
    assert time.perf_counter() - started < 1.0
    assert estimate.n_items == 553


# ------------------------------------------------------------------------------------ non-inferiority

def test_non_inferiority_constant_drop():
    # every item is exactly 0.1 worse: every resample's difference is -0.1, so the lower bound is -0.1
    baseline = {str(i): ("ab"[i % 2], 0.5 + 0.001 * i) for i in range(60)}
    candidate = {key: (group, value - 0.1) for key, (group, value) in baseline.items()}
    loose = non_inferiority(candidate, baseline, "group_mean", margin=0.2, benchmark="geneval")
    assert loose.passed and loose.benchmark == "geneval"
    assert (loose.estimate, loose.lower_bound) == pytest.approx((-0.1, -0.1))
    assert not non_inferiority(candidate, baseline, "group_mean", margin=0.05).passed
    # the bound must be strictly above -margin
    assert not non_inferiority(candidate, baseline, "group_mean", margin=0.1 - 1e-12).passed
    assert loose.n_items == 60 and loose.alpha == 0.05


def test_non_inferiority_bound_is_the_alpha_quantile():
    rng = np.random.default_rng(2)
    baseline = {str(i): ("g", float(rng.random())) for i in range(300)}
    candidate = {key: (group, value + float(rng.normal(0, 0.3))) for key, (group, value) in baseline.items()}
    gate = non_inferiority(candidate, baseline, "pooled", margin=0.1, alpha=0.05, seed=9)
    # a two-sided 90% interval's lower end is the one-sided 95% bound (same resamples, same seed)
    two_sided = paired_bootstrap(candidate, baseline, "pooled", alpha=0.10, seed=9)
    assert gate.lower_bound == pytest.approx(two_sided.low)
    assert gate.estimate == pytest.approx(two_sided.estimate)
