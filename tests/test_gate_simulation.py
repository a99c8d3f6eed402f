"""The CI gate's acceptance: at GenEval size (553 prompts x 4 images, the six tags with their real
prompt counts) a true 5-point drop fails the gate in >= 95% of simulated pairs and no true difference
fails it in <= 5%; plus the gate on real run folders, its comparability rule and its configuration."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness import registry
from harness.errors import InputError
from harness.fileio import atomic_write_text, write_jsonl
from harness.runner import build_benchmark
from harness.schema import SampleRecord
from harness.spec import ComponentSpec, RunSpec
from reports.gate import (GateConfig, compare_runs, config_from_options, load_gate_config, parse_margin,
                          protocol_differences)
from reports.stats import non_inferiority

# tag: (prompts, Janus-Pro-7B accuracy), PROTOCOLS.md sections 1.1 and 7
TAGS = {"single_object": (80, 0.99), "two_object": (99, 0.89), "counting": (80, 0.59),
        "colors": (94, 0.90), "position": (100, 0.79), "color_attr": (100, 0.66)}
IMAGES = 4
PAIRS = 200
DROP = 0.05


def pass_probabilities(rng: np.random.Generator, concentration: float | None) -> tuple[list[str], np.ndarray]:
    """Per-prompt pass probabilities: each tag's accuracy for every prompt (``None``: the
    conservative case the default margin was derived for), or Beta-distributed around it
    (prompts of unequal difficulty, as in practice)."""
    groups: list[str] = []
    blocks = []
    for tag, (prompts, accuracy) in TAGS.items():
        groups += [tag] * prompts
        blocks.append(np.full(prompts, accuracy) if concentration is None
                      else rng.beta(accuracy * concentration, (1 - accuracy) * concentration, prompts))
    return groups, np.concatenate(blocks)


def with_drop(groups: list[str], p: np.ndarray, drop: float) -> np.ndarray:
    """Scale each tag's probabilities so its expected accuracy falls by exactly ``drop``."""
    tags = np.array(groups)
    dropped = p.copy()
    for tag in TAGS:
        mask = tags == tag
        dropped[mask] = p[mask] * (1 - drop / p[mask].mean())
    return dropped


def draw_items(groups: list[str], p: np.ndarray, rng: np.random.Generator) -> dict[str, tuple[str, float]]:
    """One run's item values: the share of a prompt's 4 images that pass."""
    passes = rng.binomial(IMAGES, p) / IMAGES
    return {f"{i:05d}": (group, float(value)) for i, (group, value) in enumerate(zip(groups, passes))}


@pytest.mark.parametrize("concentration", [None, 2.0], ids=["same-p-per-tag", "beta-per-prompt"])
def test_gate_rejection_rates_at_geneval_size(concentration):
    rng = np.random.default_rng(2024)
    groups, baseline_p = pass_probabilities(rng, concentration)
    worse_p = with_drop(groups, baseline_p, DROP)
    config = GateConfig()
    margin = registry.get("benchmark", "geneval").gate_margin

    def fails(candidate_p: np.ndarray) -> bool:
        result = non_inferiority(draw_items(groups, candidate_p, rng), draw_items(groups, baseline_p, rng),
                                 "group_mean", margin, config.alpha, n_boot=config.n_boot, seed=config.seed)
        return not result.passed

    drop_rate = sum(fails(worse_p) for _ in range(PAIRS)) / PAIRS
    null_rate = sum(fails(baseline_p) for _ in range(PAIRS)) / PAIRS
    print(f"{concentration=}: 5-point drop fails {drop_rate:.3f}, no difference fails {null_rate:.3f}")
    assert drop_rate >= 0.95
    assert null_rate <= 0.05


# ------------------------------------------------------------------------------------ run folders

def geneval_spec(model: str = "shapes-renderer", threshold: float | None = None) -> RunSpec:
    params = {"prompts": "shapes", "per_tag": 2, "images_per_prompt": IMAGES}
    if threshold is not None:
        params["options"] = {"threshold": threshold}
    return RunSpec(benchmark=ComponentSpec("geneval", params), model=ComponentSpec(model, {}),
                   judges={"detector": ComponentSpec("shapes"), "color_classifier": ComponentSpec("shapes")})


def write_run(folder: Path, image_passes: dict[str, tuple[str, list[bool]]], spec: RunSpec) -> Path:
    """A finished GenEval run folder as the runner leaves it (spec, records, summary)."""
    folder.mkdir(parents=True)
    atomic_write_text(folder / "spec.yaml", spec.to_yaml())
    records = [SampleRecord(sample_id=f"{item}/{k:04d}", item_id=item, group=group, seed=k,
                            output_path=f"images/{item}/samples/{k:04d}.png", output_hash="0" * 16,
                            score=float(ok), correct=ok)
               for item, (group, passes) in image_passes.items() for k, ok in enumerate(passes)]
    write_jsonl(folder / "records.jsonl", [record.to_dict() for record in records])
    benchmark = build_benchmark(spec)
    protocol = {"benchmark": "geneval", **benchmark.protocol, "model": {"name": spec.model.name},
                "judges": {role: judge.to_dict() for role, judge in spec.judges.items()},
                "run_seed": spec.seed, "limit": spec.limit}
    # the gate reads only the benchmark name and the protocol card from the summary
    summary = {"benchmark": "geneval", "scores": {}, "counts": {"samples": len(records)}, "protocol": protocol}
    atomic_write_text(folder / "summary.json", json.dumps(summary))
    return folder


def draw_images(groups: list[str], p: np.ndarray, rng: np.random.Generator) -> dict[str, tuple[str, list[bool]]]:
    passes = rng.random((len(p), IMAGES)) < p[:, None]
    return {f"{i:05d}": (group, [bool(x) for x in row]) for i, (group, row) in enumerate(zip(groups, passes))}


def small_run(folder: Path, seed: int, spec: RunSpec | None = None) -> Path:
    rng = np.random.default_rng(seed)
    groups = ["colors", "counting"] * 10
    return write_run(folder, draw_images(groups, np.full(20, 0.5), rng), spec or geneval_spec())


def test_full_size_pair_through_run_folders(tmp_path):
    rng = np.random.default_rng(99)
    groups, baseline_p = pass_probabilities(rng, 2.0)
    baseline = write_run(tmp_path / "baseline", draw_images(groups, baseline_p, rng), geneval_spec())
    same = write_run(tmp_path / "same", draw_images(groups, baseline_p, rng), geneval_spec())
    worse = write_run(tmp_path / "worse", draw_images(groups, with_drop(groups, baseline_p, DROP), rng),
                      geneval_spec("janus"))

    passing = compare_runs(same, baseline, GateConfig())
    assert passing.passed
    [result] = passing.results
    assert (result.benchmark, result.n_items, result.margin, result.note) == ("geneval", 553, 0.04, "")
    assert passing.text().splitlines()[1].startswith("PASS geneval")
    assert passing.text().splitlines()[-1].startswith("gate PASSED")

    failing = compare_runs(worse, baseline, GateConfig())
    assert not failing.passed
    [result] = failing.results
    assert result.lower_bound <= -0.04 and result.estimate < 0
    assert failing.text().splitlines()[1].startswith("FAIL geneval")
    assert failing.text().splitlines()[-1].startswith("gate FAILED: 1 of 1")


def test_folder_gate_equals_item_level_gate(tmp_path):
    candidate = small_run(tmp_path / "c", 1)
    baseline = small_run(tmp_path / "b", 2)
    [result] = compare_runs(candidate, baseline, GateConfig(margins={"geneval": 0.3})).results
    # item value = share of the prompt's images that pass; tags averaged equally
    items = {}
    for name, folder in (("c", candidate), ("b", baseline)):
        rows = [json.loads(line) for line in (folder / "records.jsonl").read_text().splitlines()]
        by_item: dict[str, list[dict]] = {}
        for row in rows:
            by_item.setdefault(row["item_id"], []).append(row)
        items[name] = {item: (r[0]["group"], sum(x["score"] for x in r) / len(r)) for item, r in by_item.items()}
    direct = non_inferiority(items["c"], items["b"], "group_mean", 0.3, benchmark="geneval")
    assert (result.estimate, result.lower_bound, result.passed) == (direct.estimate, direct.lower_bound, direct.passed)
    assert "default margin" not in result.note  # an explicit margin needs no size warning


def test_different_protocol_is_not_comparable_and_fails(tmp_path):
    candidate = small_run(tmp_path / "c", 1, geneval_spec(threshold=0.5))
    baseline = small_run(tmp_path / "b", 1)  # same images: only the scoring threshold differs
    report = compare_runs(candidate, baseline, GateConfig(margins={"geneval": 10.0}))
    assert not report.passed
    line = report.text().splitlines()[1]
    assert line.startswith("FAIL geneval") and "not comparable" in line and "options.threshold" in line


def test_model_and_seed_may_differ_but_judges_may_not():
    def summary(model: str, judge_params: dict, seed: int) -> dict:
        return {"benchmark": "mmbench",
                "protocol": {"benchmark": "mmbench", "rule_version": "r1", "model": {"name": model},
                             "judges": {"choice_extractor": {"name": "openai-compatible", "params": judge_params}},
                             "run_seed": seed, "limit": None}}
    judge = {"model": "gpt-4o-2024-08-06", "base_url": "https://a.example/v1", "max_retries": 5}
    moved = {**judge, "base_url": "http://127.0.0.1:9/v1", "max_retries": 9}  # transport only
    assert protocol_differences(summary("janus", judge, 0), summary("other", moved, 3)) == []
    other_judge = {**judge, "model": "gpt-4.1-2025-04-14"}
    assert protocol_differences(summary("janus", judge, 0), summary("janus", other_judge, 0)) == [
        "judges.choice_extractor.params.model"]


def test_folders_of_runs_are_matched_by_path(tmp_path):
    for side, seed in (("cand", 1), ("base", 1)):
        small_run(tmp_path / side / "a", seed)
        small_run(tmp_path / side / "b", seed + 1)
    small_run(tmp_path / "base" / "only-in-baseline", 5)
    small_run(tmp_path / "cand" / "only-in-candidate", 6)
    report = compare_runs(tmp_path / "cand", tmp_path / "base", GateConfig(margins={"geneval": 0.3}))
    verdicts = {r.benchmark: r.passed for r in report.results}
    assert verdicts == {"geneval [a]": True, "geneval [b]": True, "geneval [only-in-baseline]": False}
    assert not report.passed  # a benchmark run that disappeared from the candidate fails the gate
    text = report.text()
    assert "missing from the candidate" in text
    assert "SKIP geneval [only-in-candidate]  no baseline run at this path" in text


def test_one_run_against_several_baseline_runs_is_ambiguous(tmp_path):
    small_run(tmp_path / "base" / "a", 1)
    small_run(tmp_path / "base" / "b", 2)
    report = compare_runs(small_run(tmp_path / "cand", 1), tmp_path / "base", GateConfig())
    assert not report.passed
    assert "ambiguous" in report.text().splitlines()[1]


def test_one_candidate_against_one_baseline_run_and_no_runs(tmp_path):
    small_run(tmp_path / "base" / "x", 1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no run folders"):
        compare_runs(tmp_path / "empty", tmp_path / "base", GateConfig())
    report = compare_runs(small_run(tmp_path / "cand", 1), tmp_path / "base", GateConfig())
    [result] = report.results
    assert result.passed and result.estimate == 0.0
    assert "default margin assumes 553 items, here 20" in result.note


# ------------------------------------------------------------------------------------ configuration

def test_gate_config_file(tmp_path):
    path = tmp_path / "gate.yaml"
    path.write_text("alpha: 0.1\nmargins:\n  geneval: 0.03\n  mme: 80\n", encoding="utf-8")
    config = load_gate_config(path)
    assert (config.alpha, config.n_boot, config.seed) == (0.1, 2000, 0)
    assert config.margin_for("geneval") == 0.03 and config.margin_for("mme") == 80.0
    assert config.margin_for("dpg") == registry.get("benchmark", "dpg").gate_margin
    assert config.margin_for("not-a-benchmark") is None


@pytest.mark.parametrize("text, line, message", [
    ("margins:\n  geneval: -1\n", 2, "finite number >= 0"),
    ("margins:\n  geneval: 0.03\n  genevall: 0.02\n", 3, "Did you mean 'geneval'"),
    ("alpha: 0.05\nn_boot: 10\n", 2, "n_boot"),
    ("alpha: 0.9\n", 1, "alpha"),
    ("margin:\n  geneval: 1\n", 1, "unknown key 'margin'"),
    ("margins: [1, 2]\n", 1, "margins must map"),
    ("margins: {geneval: 1\n", None, "not valid YAML"),
])
def test_gate_config_errors_name_file_and_line(tmp_path, text, line, message):
    path = tmp_path / "gate.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=message) as caught:
        load_gate_config(path)
    assert Path(caught.value.path) == path
    if line is not None:
        assert caught.value.line == line


def test_cli_options_override_the_file(tmp_path):
    path = tmp_path / "gate.yaml"
    path.write_text("alpha: 0.1\nmargins: {geneval: 0.03, dpg: 2}\n", encoding="utf-8")
    config = config_from_options(["geneval=0.05"], alpha=0.01, config_file=path)
    assert config.margins == {"geneval": 0.05, "dpg": 2.0} and config.alpha == 0.01
    assert parse_margin("mme=120") == ("mme", 120.0)
    for bad in ("geneval", "geneval=x", "=1", "geneval=-2", "geneval=inf"):
        with pytest.raises(InputError, match="BENCHMARK=VALUE"):
            parse_margin(bad)
    with pytest.raises(InputError, match="Did you mean"):
        parse_margin("mmbenh=0.1")
    with pytest.raises(InputError, match="alpha"):
        config_from_options(alpha=0.7)
