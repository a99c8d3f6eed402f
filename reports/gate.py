"""The CI gate: is a candidate run (or folder of runs) no worse than a baseline, benchmark by benchmark?

Each benchmark is a non-inferiority test (``reports.stats.non_inferiority``): the paired bootstrap
over items gives a one-sided (1 - alpha) lower bound for candidate - baseline on the headline
number, and the benchmark passes iff that bound is above ``-margin``. A candidate truly ``margin``
worse therefore passes with probability about alpha; a candidate exactly as good fails with
probability about ``Phi(z - margin / SE)``, where SE is the standard error of the difference and
``z = 1.645`` (alpha 0.05). For that to stay at or under 5% the margin must be at least
``2 z SE = 3.29 SE``: each default margin is 3.29 x SE at the official size, rounded up.

Each benchmark declares its default margin (``gate_margin``) and the item count it was derived
for (``official_items``); the comment beside them derives the margin from the SE of the difference
of two equally good runs at that size (z = 1.645, alpha = 0.05). ``tests/test_gate_simulation.py``
measures both error rates of the GenEval default on simulated pairs.

The assumptions are the weak point: calibrate your own margins by running the baseline twice with
different run seeds (or two checkpoints you consider equal), reading SE from ``harness compare``
(half-width of the 95% interval / 1.96), and setting ``--margin BENCH=3.3xSE``. The defaults hold
for the official sizes only; smaller runs (``limit``, shapes-world data) have a larger SE, so equal
models fail more often with them; the report says so when it happens.

A benchmark whose protocol cards differ between the two sides (anything but the model, the run
seed and ``limit``; the judges included) FAILS: a gate cannot vouch for numbers measured differently.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import yaml

from harness import registry
from harness.benchmark import Benchmark
from harness.errors import InputError
from harness.runner import load_summary
from harness.yamlfile import read_yaml_text
from reports.items import run_items
from reports.protocols import comparable_card, flatten
from reports.stats import GateResult, non_inferiority

#: protocol-card entries that may differ between the two sides of a gate
NOT_COMPARED = ("model", "run_seed", "limit")
CONFIG_KEYS = ("margins", "alpha", "n_boot", "seed")


@dataclass(frozen=True)
class GateConfig:
    """Margins (benchmark -> margin in headline units; these beat each benchmark's own
    ``gate_margin``), the one-sided alpha, and the bootstrap's size and seed."""

    margins: dict[str, float] = field(default_factory=dict)
    alpha: float = 0.05
    n_boot: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        for name, margin in self.margins.items():
            if not _is_number(margin) or not math.isfinite(margin) or margin < 0:
                raise ValueError(f"margin for {name!r} must be a finite number >= 0, got {margin!r}")
        if not _is_number(self.alpha) or not 0 < self.alpha < 0.5:
            raise ValueError(f"alpha must lie in (0, 0.5), got {self.alpha!r}")
        if not isinstance(self.n_boot, int) or isinstance(self.n_boot, bool) or self.n_boot < 100:
            raise ValueError(f"n_boot must be an integer >= 100, got {self.n_boot!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")

    def margin_for(self, benchmark: str) -> float | None:
        """The configured margin, else the benchmark's ``gate_margin`` (None for neither)."""
        if benchmark in self.margins:
            return self.margins[benchmark]
        declared = _benchmark_class(benchmark)
        return declared.gate_margin if declared else None


def _benchmark_class(name: str) -> type[Benchmark] | None:
    """The registered benchmark ``name``, or None."""
    try:
        return registry.get("benchmark", name)
    except registry.UnknownPluginError:
        return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_benchmark_name(name: str, path: str | Path | None, line: int | None) -> None:
    try:
        registry.get("benchmark", name)
    except registry.UnknownPluginError as exc:
        raise InputError(f"margin for an unknown benchmark: {exc}", path, line) from None


def _key_lines(node: yaml.Node | None, prefix: str = "") -> dict[str, int]:
    """Dotted key -> 1-based line of that key in the YAML text, to name the line of a bad value."""
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = f"{prefix}{key.value}"
            lines[name] = key.start_mark.line + 1
            lines.update(_key_lines(value, name + "."))
    return lines


def load_gate_config(path: str | Path) -> GateConfig:
    """Read a YAML gate config: ``margins: {geneval: 0.03}``, ``alpha``, ``n_boot``, ``seed`` (all
    optional). Bad values raise ``InputError`` naming the file and line."""
    path = Path(path)
    data, text = read_yaml_text(path, "gate config")
    lines = _key_lines(yaml.compose(text, Loader=yaml.SafeLoader))  # parsed above, so valid
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise InputError(f"a gate config is a mapping with keys {', '.join(CONFIG_KEYS)}", path, 1)
    for key in data:
        if key not in CONFIG_KEYS:
            raise InputError(f"unknown key {key!r}; known: {', '.join(CONFIG_KEYS)}", path, lines.get(str(key)))
    margins = data.get("margins") or {}
    if not isinstance(margins, dict):
        raise InputError("margins must map benchmark names to numbers", path, lines.get("margins"))
    for name, margin in margins.items():
        line = lines.get(f"margins.{name}")
        if not _is_number(margin) or not math.isfinite(margin) or margin < 0:
            raise InputError(f"margin for {name!r} must be a finite number >= 0, got {margin!r}", path, line)
        _check_benchmark_name(str(name), path, line)
    for key in ("alpha", "n_boot", "seed"):
        if key in data:
            try:
                GateConfig(**{key: data[key]})
            except ValueError as exc:
                raise InputError(str(exc), path, lines.get(key)) from None
    return GateConfig(margins={str(k): float(v) for k, v in margins.items()},
                      alpha=data.get("alpha", 0.05), n_boot=data.get("n_boot", 2000), seed=data.get("seed", 0))


def parse_margin(text: str) -> tuple[str, float]:
    """``"NAME=0.03"`` (CLI ``--margin``) -> (NAME, 0.03); NAME must be a registered benchmark."""
    name, sep, value = text.partition("=")
    try:
        margin = float(value)
    except ValueError:
        margin = float("nan")
    if not sep or not name.strip() or not math.isfinite(margin) or margin < 0:
        raise InputError(f"--margin expects BENCHMARK=VALUE with a number >= 0, got {text!r}")
    _check_benchmark_name(name.strip(), None, None)
    return name.strip(), margin


def config_from_options(margins: Sequence[str] = (), alpha: float | None = None,
                        config_file: str | Path | None = None, n_boot: int | None = None,
                        seed: int | None = None) -> GateConfig:
    """The CLI's config: the YAML file (if any), then ``--margin BENCH=VALUE`` and ``--alpha`` on top."""
    base = load_gate_config(config_file) if config_file else GateConfig()
    merged = dict(base.margins)
    merged.update(parse_margin(text) for text in margins)
    try:
        return GateConfig(margins=merged, alpha=base.alpha if alpha is None else alpha,
                          n_boot=base.n_boot if n_boot is None else n_boot,
                          seed=base.seed if seed is None else seed)
    except ValueError as exc:
        raise InputError(str(exc)) from None


# ------------------------------------------------------------------------------------ comparing


@dataclass(frozen=True)
class _Run:
    folder: Path
    key: str  # path relative to the folder the user named ("." for that folder itself)
    summary: dict

    @property
    def benchmark(self) -> str:
        return self.summary["benchmark"]


def find_runs(root: str | Path) -> list[_Run]:
    """``root`` itself when it is a run folder, else every run folder (one holding ``summary.json``)
    under it, outermost first."""
    root = Path(root)
    if not root.is_dir():
        raise InputError("not a folder", root)
    if (root / "summary.json").is_file():
        return [_Run(root, ".", load_summary(root))]
    runs: list[_Run] = []
    for summary in sorted(root.rglob("summary.json")):
        folder = summary.parent
        if any(run.folder in folder.parents for run in runs):
            continue  # something inside a run folder is not another run
        runs.append(_Run(folder, folder.relative_to(root).as_posix(), load_summary(folder)))
    if not runs:
        raise InputError("no run folders (holding summary.json) in this folder", root)
    return runs


def _card(summary: dict) -> dict[str, str]:
    """The flattened card less what a gate may change: the model, the run seed, and the limit (the
    gate pairs the items both runs have)."""
    card = comparable_card(summary.get("protocol", {}))
    return flatten({key: value for key, value in card.items() if key not in NOT_COMPARED})


def protocol_differences(candidate_summary: dict, baseline_summary: dict) -> list[str]:
    """Dotted protocol-card keys whose values differ (model, run seed and limit excluded)."""
    cand = _card(candidate_summary)
    base = _card(baseline_summary)
    return sorted(key for key in set(cand) | set(base) if cand.get(key, "<absent>") != base.get(key, "<absent>"))


@dataclass
class GateReport:
    candidate: Path
    baseline: Path
    config: GateConfig
    results: list[GateResult]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (label, why not gated)

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(result.passed for result in self.results)

    def text(self) -> str:
        """A short summary for a CI log: one line per benchmark, then the verdict."""
        level = round(100 * (1 - self.config.alpha), 2)
        lines = [f"gate: {self.candidate} vs baseline {self.baseline}; a benchmark passes if the one-sided "
                 f"{level:g}% lower bound of candidate - baseline exceeds -margin (paired bootstrap "
                 f"over items, {self.config.n_boot} resamples, seed {self.config.seed})"]
        width = max([len(r.benchmark) for r in self.results] + [len(label) for label, _ in self.skipped] + [1])
        for result in self.results:
            verdict = "PASS" if result.passed else "FAIL"
            if math.isnan(result.estimate):
                lines.append(f"{verdict} {result.benchmark:<{width}}  {result.note}")
                continue
            digits = 4 if result.margin < 1 else 2
            line = (f"{verdict} {result.benchmark:<{width}}  estimate {result.estimate:+.{digits}f}  "
                    f"lower bound {result.lower_bound:+.{digits}f}  margin {result.margin:.{digits}f}  "
                    f"({result.n_items} items)")
            lines.append(line + (f"  note: {result.note}" if result.note else ""))
        lines += [f"SKIP {label:<{width}}  {why}" for label, why in self.skipped]
        failed = [r.benchmark for r in self.results if not r.passed]
        if not self.results:
            lines.append("gate FAILED: no benchmark could be compared")
        elif failed:
            lines.append(f"gate FAILED: {len(failed)} of {len(self.results)} compared runs failed ({', '.join(failed)})")
        else:
            lines.append(f"gate PASSED: all {len(self.results)} compared runs within their margins")
        return "\n".join(lines)


def _failure(label: str, note: str, margin: float | None, config: GateConfig) -> GateResult:
    nan = float("nan")
    return GateResult(benchmark=label, estimate=nan, lower_bound=nan, margin=nan if margin is None else margin,
                      alpha=config.alpha, passed=False, n_items=0, note=note)


def _gate_pair(label: str, cand: _Run, base: _Run, config: GateConfig) -> GateResult:
    benchmark = cand.benchmark
    margin = config.margin_for(benchmark)
    if margin is None:
        return _failure(label, f"no margin for {benchmark!r}: pass --margin {benchmark}=VALUE", None, config)
    differences = protocol_differences(cand.summary, base.summary)
    if differences:
        shown = ", ".join(differences[:6]) + (f" and {len(differences) - 6} more" if len(differences) > 6 else "")
        return _failure(label, f"not comparable: protocol cards differ in {shown}; a gate cannot vouch "
                               "for numbers measured differently", margin, config)
    cand_items, base_items = run_items(cand.folder), run_items(base.folder)
    try:
        result = non_inferiority(cand_items.values, base_items.values, cand_items.aggregation, margin,
                                 config.alpha, n_boot=config.n_boot, seed=config.seed, benchmark=label)
    except ValueError as exc:
        return _failure(label, f"not comparable: {exc}", margin, config)
    notes = []
    if result.n_items < max(len(cand_items.values), len(base_items.values)):
        notes.append(f"paired on {result.n_items} items (candidate {len(cand_items.values)}, "
                     f"baseline {len(base_items.values)})")
    declared = _benchmark_class(benchmark)
    official = declared.official_items if declared else None
    if benchmark not in config.margins and official and result.n_items < official:
        notes.append(f"default margin assumes {official} items, here {result.n_items}: equal models fail "
                     f"more often (see --margin {benchmark}=VALUE)")
    return replace(result, note="; ".join(notes))


def _label(benchmark: str, key: str) -> str:
    return benchmark if key == "." else f"{benchmark} [{key}]"


def compare_runs(candidate: str | Path, baseline: str | Path, config: GateConfig) -> GateReport:
    """Gate every benchmark of ``candidate`` against ``baseline`` (each a run folder or a folder
    of run folders). Runs are matched by benchmark name, and by relative path when a side holds
    several runs of one benchmark (a single baseline run is the baseline of every candidate run of
    its benchmark). A baseline run missing from a candidate folder of runs fails; a candidate run
    with no baseline is listed and skipped; one candidate run facing several baseline runs of its
    benchmark fails as ambiguous."""
    candidate, baseline = Path(candidate), Path(baseline)
    cand_runs, base_runs = find_runs(candidate), find_runs(baseline)
    single_candidate = cand_runs[0].key == "."
    by_benchmark: dict[str, tuple[list[_Run], list[_Run]]] = {}
    for run in cand_runs:
        by_benchmark.setdefault(run.benchmark, ([], []))[0].append(run)
    for run in base_runs:
        by_benchmark.setdefault(run.benchmark, ([], []))[1].append(run)
    report = GateReport(candidate, baseline, config, [])
    baseline_only = 0
    for benchmark, (cands, bases) in sorted(by_benchmark.items()):
        if not bases:
            report.skipped += [(_label(benchmark, run.key), "no baseline run") for run in cands]
            continue
        if not cands and single_candidate:
            baseline_only += len(bases)
            continue
        if len(bases) == 1 and (len(cands) == 1 or bases[0].key == "."):
            # one baseline run of this benchmark: every candidate run of it is gated against it
            report.results += [_gate_pair(_label(benchmark, run.key), run, bases[0], config) for run in cands]
            continue
        base_by_key = {run.key: run for run in bases}
        for cand in cands:
            match = base_by_key.pop(cand.key, None)
            if match is not None:
                report.results.append(_gate_pair(_label(benchmark, cand.key), cand, match, config))
            elif not single_candidate:
                report.skipped.append((_label(benchmark, cand.key), "no baseline run at this path"))
            else:
                report.results.append(_failure(
                    _label(benchmark, cand.key), f"ambiguous: no baseline run at the same path among the "
                    f"{len(bases)} {benchmark} runs ({', '.join(run.key for run in bases)}); name one", None, config))
        for base in base_by_key.values():
            if single_candidate:
                baseline_only += 1
            else:
                report.results.append(_failure(_label(benchmark, base.key), "missing from the candidate", None, config))
    if baseline_only:
        report.skipped.append(("others", f"{baseline_only} baseline run{'s' * (baseline_only != 1)} not gated "
                                         "(the candidate is one run)"))
    return report
