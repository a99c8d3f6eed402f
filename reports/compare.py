"""Compare candidate runs with a baseline: runs of another model, or published numbers.

For each benchmark the report puts the two protocol cards side by side, then:

- against a baseline *run*: the headline and every breakdown category with the difference, a
  paired bootstrap 95% CI over items, the benchmark's paired test and Holm-adjusted p-values, and
  the samples that flipped between pass and fail;
- against a *published* entry: the published value (source, verified or secondary), the candidate
  with its own bootstrap CI, and a difference only when the candidate ran the official setup.

A difference in the benchmark part of the protocol or in the judges means the two numbers measure
different things: that benchmark is marked NOT COMPARABLE and shows values only. Differences in the
model part are what is being compared. Rendering is in ``reports.compare_html``; the statistics
are explained in docs/REPORTS.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from harness.benchmark import Benchmark
from harness.errors import InputError
from harness.schema import SampleRecord
from reports import stats
from reports.items import run_items
from reports.protocols import official_departures, protocol_parts
from reports.run_report import RunView

PARTS = ("benchmark", "judges", "model")
#: flipped samples shown per direction (the totals are always given)
MAX_FLIPS = 6

Values = dict[str, tuple[str, float]]


@dataclass
class ProtocolRow:
    part: str  # "benchmark", "judges" or "model"
    key: str
    candidate: str | None
    baseline: str | None
    has_baseline: bool = True  # False against published numbers: the candidate's card alone

    @property
    def differs(self) -> bool:
        return self.has_baseline and self.candidate != self.baseline

    @property
    def blocks_comparison(self) -> bool:
        return self.differs and self.part != "model"


@dataclass
class Row:
    """One line of a benchmark's result table (the headline or a breakdown category)."""

    label: str
    candidate: float | None
    baseline: float | None
    headline: bool = False
    difference: float | None = None
    ci: tuple[float, float] | None = None  # of the difference (run baseline) or of the candidate (published)
    p_value: float | None = None
    test: str = ""
    p_holm: float | None = None
    n_items: int = 0
    note: str = ""


@dataclass
class Flip:
    """One unit (a sample, or an item) whose outcome changed between baseline and candidate."""

    key: str
    group: str
    baseline: list[SampleRecord]
    candidate: list[SampleRecord]
    baseline_value: float | None = None
    candidate_value: float | None = None


@dataclass
class Flips:
    kind: str  # "sample" / "item": pass-fail outcomes; "value": largest changes of item values
    lost: list[Flip]
    gained: list[Flip]
    totals: dict[str, int]


@dataclass
class Section:
    """Everything the report shows for one candidate run."""

    benchmark: str
    candidate: RunView
    baseline_run: RunView | None = None
    published: Any = None  # reports.baselines.Published (or an object with its fields)
    protocol_rows: list[ProtocolRow] = field(default_factory=list)
    not_comparable: list[str] = field(default_factory=list)  # reasons; empty = comparable
    rows: list[Row] = field(default_factory=list)
    flips: Flips | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def benchmark_class(self) -> type[Benchmark]:
        return self.candidate.benchmark_class

    @property
    def scale_max(self) -> float:
        return self.benchmark_class.breakdown_range[1]

    @property
    def baseline_name(self) -> str:
        if self.baseline_run is not None:
            return self.baseline_run.name
        return f"published:{self.published.name}" if self.published is not None else "none"

    @property
    def verified(self) -> bool | None:
        return None if self.published is None else bool(self.published.verified.get(self.benchmark, False))

    @property
    def headline(self) -> Row | None:
        return next((row for row in self.rows if row.headline), None)


# ------------------------------------------------------------------------------------ loading


def find_runs(paths: Sequence[str | Path]) -> list[Path]:
    """Run folders (holding ``summary.json``) named directly or found under the given folders."""
    runs: list[Path] = []
    for path in map(Path, paths):
        if (path / "summary.json").is_file():
            runs.append(path)
        elif path.is_dir():
            found = sorted(p.parent for p in path.rglob("summary.json"))
            if not found:
                raise InputError("no finished run (summary.json) in this folder", path)
            runs += found
        else:
            raise InputError("not a run folder or a folder of runs", path)
    return runs


def is_published(baseline: Any) -> bool:
    return not isinstance(baseline, (str, Path)) and hasattr(baseline, "scores") and hasattr(baseline, "verified")


def _baseline_runs(baseline: Sequence[str | Path]) -> dict[str, RunView]:
    by_benchmark: dict[str, RunView] = {}
    for run in map(RunView.load, find_runs(baseline)):
        if run.benchmark in by_benchmark:
            raise InputError(f"two baseline runs of {run.benchmark!r} ({by_benchmark[run.benchmark].folder} "
                             "and this one): name one baseline run per benchmark", run.folder)
        by_benchmark[run.benchmark] = run
    return by_benchmark


def _item_values(run: RunView, section: Section) -> Values | None:
    """The run's per-item values; None (with a note) when its benchmark cannot be rebuilt, e.g.
    because its data files moved: the report then shows values without statistics."""
    try:
        return run_items(run.folder).values
    except Exception as error:  # noqa: BLE001 - any failure only removes the statistics
        section.notes.append(f"no statistics for {run.name}: its per-item values could not be rebuilt ({error})")
        return None


# ------------------------------------------------------------------------------------ protocols


def compare_protocols(candidate: dict[str, Any], baseline: dict[str, Any] | None) -> list[ProtocolRow]:
    """Every key of either card, side by side (``baseline`` None: the candidate's card alone)."""
    ours = protocol_parts(candidate)
    theirs = protocol_parts(baseline) if baseline is not None else None
    rows = []
    for part in PARTS:
        keys = list(ours[part]) + [k for k in (theirs or {}).get(part, {}) if k not in ours[part]]
        rows += [ProtocolRow(part, key, ours[part].get(key), theirs[part].get(key) if theirs else None,
                             theirs is not None) for key in keys]
    return rows


def mismatch_reasons(rows: Sequence[ProtocolRow], limit: int = 6) -> list[str]:
    blocking = [row for row in rows if row.blocks_comparison]
    reasons = [f"{row.part} part differs: {row.key} = {row.candidate or '(absent)'} vs "
               f"{row.baseline or '(absent)'}" for row in blocking[:limit]]
    if len(blocking) > limit:
        reasons.append(f"... and {len(blocking) - limit} more protocol differences")
    return reasons


# ------------------------------------------------------------------------------------ pass/fail units


def _group_key(benchmark_class: type[Benchmark], group: str) -> str:
    """The breakdown key an item group is reported under. A benchmark that abbreviates group names
    in its summary (MMBench: CP, FP-S) may say so with a ``breakdown_key_of_group`` hook."""
    hook = getattr(benchmark_class, "breakdown_key_of_group", None)
    return hook(group) if callable(hook) else group


def _in_category(values: Values, benchmark_class: type[Benchmark], key: str) -> Values:
    return {item: pair for item, pair in values.items() if _group_key(benchmark_class, pair[0]) == key}


def unit_kind(benchmark_class: type[Benchmark], candidate: Values | None, baseline: Values | None,
              records: Sequence[SampleRecord]) -> str:
    """What passes or fails: "item" when the benchmark's own item values are 0/1 outcomes (an
    MMBench question is a hit only if every circular pass is right), "sample" when samples carry
    ``correct`` (a GenEval image, an MME question), else "value" (ordinal scores: no pass/fail).
    A benchmark may set ``pass_fail_unit`` to say it outright."""
    declared = getattr(benchmark_class, "pass_fail_unit", None)
    if declared in ("item", "sample"):
        return declared
    own_items = benchmark_class.item_scores is not Benchmark.item_scores  # not the plain mean of samples
    values = [v for side in (candidate or {}, baseline or {}) for _, v in side.values()]
    if own_items and values and set(values) <= {0.0, 1.0} and 1.0 in values:
        return "item"
    if any(record.correct is not None for record in records):
        return "sample"
    return "value"


def _sample_outcomes(records: Sequence[SampleRecord]) -> dict[str, SampleRecord]:
    return {r.sample_id: r for r in records if not r.judge_failed and r.correct is not None}


def mcnemar_pairs(kind: str, candidate: Sequence[SampleRecord], baseline: Sequence[SampleRecord],
                  cand_values: Values, base_values: Values) -> list[tuple[bool, bool]]:
    """(baseline_pass, candidate_pass) per unit present on both sides; items from the given values
    (already restricted to a category), samples restricted to the same items."""
    if kind == "item":
        common = sorted(set(cand_values) & set(base_values))
        return [(base_values[i][1] == 1.0, cand_values[i][1] == 1.0) for i in common]
    if kind != "sample":
        return []
    items = set(cand_values) & set(base_values)  # items scored on both sides, as the bootstrap pairs them
    ours, theirs = _sample_outcomes(candidate), _sample_outcomes(baseline)
    return [(bool(theirs[s].correct), bool(ours[s].correct)) for s in ours
            if s in theirs and ours[s].item_id in items]


def find_flips(kind: str, candidate: Sequence[SampleRecord], baseline: Sequence[SampleRecord],
               cand_values: Values | None, base_values: Values | None, cap: int = MAX_FLIPS) -> Flips:
    lost: list[Flip] = []
    gained: list[Flip] = []
    if kind == "sample":
        ours, theirs = _sample_outcomes(candidate), _sample_outcomes(baseline)
        for sample_id, base in theirs.items():
            cand = ours.get(sample_id)
            if cand is not None and bool(base.correct) != bool(cand.correct):
                (lost if base.correct else gained).append(Flip(sample_id, base.group, [base], [cand]))
    elif cand_values is not None and base_values is not None:
        ours_by_item, theirs_by_item = _by_item(candidate), _by_item(baseline)
        for item in base_values:
            if item not in cand_values:
                continue
            (group, base), (_, cand) = base_values[item], cand_values[item]
            if base == cand or (kind == "item" and {base, cand} != {0.0, 1.0}):
                continue
            flip = Flip(item, group, theirs_by_item.get(item, []), ours_by_item.get(item, []), base, cand)
            (lost if cand < base else gained).append(flip)
        if kind == "value":  # largest changes first
            lost.sort(key=lambda f: f.candidate_value - f.baseline_value)
            gained.sort(key=lambda f: f.baseline_value - f.candidate_value)
    return Flips(kind, lost[:cap], gained[:cap], {"lost": len(lost), "gained": len(gained)})


def _by_item(records: Sequence[SampleRecord]) -> dict[str, list[SampleRecord]]:
    grouped: dict[str, list[SampleRecord]] = {}
    for record in sorted(records, key=lambda r: r.sample_id):
        grouped.setdefault(record.item_id, []).append(record)
    return grouped


# ------------------------------------------------------------------------------------ statistics


def _categories(section: Section, published_scores: dict | None = None) -> list[str]:
    key = section.benchmark_class.breakdown
    if not key:
        return []
    names = list(section.candidate.groups)
    other = (section.baseline_run.groups if section.baseline_run is not None
             else dict((published_scores or {}).get(key) or {}))
    return names + [name for name in other if name not in names]


def _paired_test(section: Section, kind: str, cand_values: Values, base_values: Values,
                 estimate: stats.Estimate) -> tuple[float | None, str]:
    test = section.benchmark_class.paired_test
    assert section.baseline_run is not None
    if test == "mcnemar":
        pairs = mcnemar_pairs(kind, section.candidate.records, section.baseline_run.records, cand_values, base_values)
        if pairs:
            b, c, p = stats.mcnemar(pairs)
            return p, f"McNemar on {len(pairs)} {kind}s ({b} pass→fail, {c} fail→pass)"
    common = sorted(set(cand_values) & set(base_values))
    if test == "wilcoxon" and common:
        p = stats.wilcoxon([cand_values[i][1] for i in common], [base_values[i][1] for i in common])
        return p, f"Wilcoxon signed-rank on {len(common)} items"
    return estimate.p_value, "paired bootstrap"


def _run_rows(section: Section, cand_items: Values | None, base_items: Values | None, kind: str,
              n_boot: int, seed: int) -> list[Row]:
    candidate, baseline, cls = section.candidate, section.baseline_run, section.benchmark_class
    assert baseline is not None
    tolerance = 1e-3 * (cls.breakdown_range[1] - cls.breakdown_range[0])
    rows: list[Row] = []
    for category in [None, *_categories(section)]:
        if category is None:
            row = Row("overall", candidate.summary["scores"].get("overall"),
                      baseline.summary["scores"].get("overall"), headline=True)
        else:
            row = Row(category, candidate.groups.get(category), baseline.groups.get(category))
        if row.candidate is not None and row.baseline is not None:
            row.difference = row.candidate - row.baseline
        rows.append(row)
        if cand_items is None or base_items is None:
            continue
        cand_values, base_values, aggregation = cand_items, base_items, cls.headline_aggregation
        if category is not None:  # one category: its items only, their plain mean
            cand_values, base_values = _in_category(cand_items, cls, category), _in_category(base_items, cls, category)
            aggregation = "pooled"
        row.n_items = len(set(cand_values) & set(base_values))
        if not row.n_items:
            row.note = "no paired items (not an item group)" if category else "no paired items"
            continue
        try:
            estimate = stats.paired_bootstrap(cand_values, base_values, aggregation, n_boot=n_boot, seed=seed)
        except ValueError as error:  # e.g. the same item id in different groups: other data
            row.note = str(error)
            continue
        row.ci = (estimate.low, estimate.high)
        row.p_value, row.test = _paired_test(section, kind, cand_values, base_values, estimate)
        if row.difference is not None and abs(estimate.estimate - row.difference) > tolerance:
            row.note = f"paired estimate on {row.n_items} common items: {estimate.estimate:+.4g}"
    adjusted = stats.holm({row.label: row.p_value for row in rows if not row.headline and row.p_value is not None})
    for row in rows:
        row.p_holm = None if row.headline else adjusted.get(row.label)
    return rows


def _published_rows(section: Section, items: Values | None, n_boot: int, seed: int) -> list[Row]:
    published, cls, candidate = section.published, section.benchmark_class, section.candidate
    scores = dict(published.scores.get(section.benchmark) or {})
    lines: list[tuple[str, str | None, Any, Any]] = [  # published scalars first (overall, perception, ...)
        (key, None, candidate.summary["scores"].get(key), value) for key, value in scores.items()
        if key != cls.breakdown and not isinstance(value, dict) and value is not None]
    lines += [(name, name, candidate.groups.get(name), (scores.get(cls.breakdown) or {}).get(name))
              for name in _categories(section, scores)]
    overall = candidate.summary["scores"].get("overall")
    rows = []
    for label, category, cand_value, base_value in lines:
        row = Row(label, cand_value, base_value, headline=label == "overall" and category is None)
        if not section.not_comparable and cand_value is not None and base_value is not None:
            row.difference = cand_value - base_value
        values, aggregation = None, "pooled"
        if items is not None and category is not None:
            values = _in_category(items, cls, category)
        elif items is not None and label in cls.score_groups():  # MME perception, cognition
            groups = cls.score_groups()[label]
            values = {item: pair for item, pair in items.items() if pair[0] in groups}
            aggregation = cls.headline_aggregation
        elif items is not None and cand_value is not None and cand_value == overall:
            # the headline is the item aggregation (an MME run of perception subtasks only: perception = overall)
            values, aggregation = items, cls.headline_aggregation
        if values:
            estimate = stats.bootstrap_interval(values, aggregation, n_boot=n_boot, seed=seed)
            row.ci, row.n_items = (estimate.low, estimate.high), estimate.n_items
        rows.append(row)
    if rows and not any(row.headline for row in rows):
        rows[0].headline = True  # e.g. MME: the published headline is perception
    return rows


# ------------------------------------------------------------------------------------ building


def _against_published(section: Section, published: Any, n_boot: int, seed: int) -> None:
    if section.benchmark not in published.scores:
        section.notes.append(f"published:{published.name} has no {section.benchmark} numbers")
        section.published = None
        return
    protocol = section.candidate.summary["protocol"]
    section.protocol_rows = compare_protocols(protocol, None)
    section.not_comparable = official_departures(protocol) + _judge_mismatch(protocol, published, section.benchmark)
    section.rows = _published_rows(section, _item_values(section.candidate, section), n_boot, seed)


def _judge_mismatch(protocol: dict, published: Any, benchmark: str) -> list[str]:
    """A published number judged by one model family (``setup.judge_models``: name prefixes) is
    comparable only with runs judged by the same family (ImgEdit: GPT-4o vs GPT-4.1 tables)."""
    listed = ((getattr(published, "setup", {}) or {}).get(benchmark) or {}).get("judge_models")
    if not listed:
        return []
    families = [name.strip() for name in str(listed).split(",") if name.strip()]
    models = [str((judge.get("params") or {}).get("model", judge.get("name")))
              for judge in (protocol.get("judges") or {}).values()]
    if any(model.startswith(tuple(families)) for model in models):
        return []
    return [f"judged by {', '.join(models) or 'no judge'}; published:{published.name} was judged by "
            f"{' or '.join(families)}*"]


def _against_run(section: Section, n_boot: int, seed: int) -> None:
    candidate, baseline = section.candidate, section.baseline_run
    assert baseline is not None
    section.protocol_rows = compare_protocols(candidate.summary["protocol"], baseline.summary["protocol"])
    section.not_comparable = mismatch_reasons(section.protocol_rows)
    if section.not_comparable:  # values only: no difference, no statistics, no flips
        section.rows = _run_rows(section, None, None, "value", n_boot, seed)
        for row in section.rows:
            row.difference = None
        return
    cand_items, base_items = _item_values(candidate, section), _item_values(baseline, section)
    kind = unit_kind(section.benchmark_class, cand_items, base_items, [*candidate.records, *baseline.records])
    section.rows = _run_rows(section, cand_items, base_items, kind, n_boot, seed)
    section.flips = find_flips(kind, candidate.records, baseline.records, cand_items, base_items)


def build_sections(candidates: Sequence[str | Path], baseline: Sequence[str | Path] | Any, *,
                   n_boot: int = 2000, seed: int = 0) -> list[Section]:
    published = baseline if is_published(baseline) else None
    if isinstance(baseline, (str, Path)):
        baseline = [baseline]
    baseline_runs = {} if published is not None else _baseline_runs(baseline)
    sections = []
    for folder in find_runs([candidates] if isinstance(candidates, (str, Path)) else candidates):
        run = RunView.load(folder)
        section = Section(run.benchmark, run, published=published)
        if published is not None:
            _against_published(section, published, n_boot, seed)
        elif run.benchmark in baseline_runs:
            section.baseline_run = baseline_runs[run.benchmark]
            _against_run(section, n_boot, seed)
        else:
            section.notes.append(f"no baseline run of {run.benchmark}")
        sections.append(section)
    return sections
