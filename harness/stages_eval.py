"""Built-in pipeline stages that measure: ``eval`` (shapes-world benchmarks) and ``report``.

``eval`` runs every listed benchmark on every labelled model through ``harness.runner.evaluate``.
The benchmarks' data are the shapes world's, written into the stage folder in the official layouts
(as ``harness demo`` does); each benchmark gets its procedural judges unless the entry names others.
All runs share one cache (``EVAL/cache``), so when only one model changed, the other's outputs
and verdicts are reused. The stage's artifact covers every run's result files.

``report`` compares a candidate label with a baseline label on each benchmark (``reports.compare``:
paired bootstrap CI, the benchmark's paired test), preceded by the lineage of every earlier stage.
"""
from __future__ import annotations

import html
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from harness.artifacts import read_manifest, write_manifest
from harness.errors import HarnessError
from harness.fileio import atomic_write_text
from harness.hashing import hash_value
from harness.registry import register
from harness.spec import ComponentSpec, RunSpec
from harness.stages import (STAGE_NAME, Ref, Stage, StageContext, StageResult, check_keys, manifest_result,
                            stage_name)


@dataclass(frozen=True)
class ShapesBenchmark:
    """How one benchmark runs on the shapes world: its data sizes (with defaults), the benchmark
    parameters pointing at the written data, and its procedural judges."""

    data: Mapping[str, int]  # data-writer parameter -> default
    judges: Mapping[str, str]
    answers: bool = False  # an understanding benchmark: the model answers in text
    fixed: Mapping[str, Any] = field(default_factory=dict)  # benchmark params the stage sets itself
    writer: Callable[[Path, Mapping[str, int], int], Any] | None = None
    locate: Callable[[Path], dict[str, str]] = lambda path: {}
    suffix: str = ""  # of the data path (a file for MMBench)


def _write_dpg(path: Path, data: Mapping[str, int], seed: int) -> None:
    from harness.shapes.dense import write_dpg_shapes
    write_dpg_shapes(path, items=data["items"], seed=seed)


def _write_imgedit(path: Path, data: Mapping[str, int], seed: int) -> None:
    from harness.shapes.edits import write_imgedit_shapes
    write_imgedit_shapes(path, items=data["items"], seed=seed)


def _write_mme(path: Path, data: Mapping[str, int], seed: int) -> None:
    from harness.shapes.understanding import write_mme_shapes
    write_mme_shapes(path, per_subtask=data["images_per_subtask"], seed=seed)


def _write_mmbench(path: Path, data: Mapping[str, int], seed: int) -> None:
    from harness.shapes.understanding import write_mmbench_shapes
    write_mmbench_shapes(path, questions=data["questions"], seed=seed)


SHAPES_BENCHMARKS: dict[str, ShapesBenchmark] = {
    "geneval": ShapesBenchmark({}, {"detector": "shapes", "color_classifier": "shapes"}, fixed={"prompts": "shapes"}),
    "dpg": ShapesBenchmark({"items": 12}, {"vqa": "shapes-vqa"}, writer=_write_dpg,
                           locate=lambda p: {"prompts": str(p / "prompts"), "csv": str(p / "dpg_bench.csv")}),
    "imgedit": ShapesBenchmark({"items": 18}, {"judge": "shapes-edit-judge"}, writer=_write_imgedit,
                               locate=lambda p: {"edits": str(p / "basic_edit.json"), "images": str(p / "images"),
                                                 "judge_prompts": str(p / "prompts.json")}),
    "mme": ShapesBenchmark({"images_per_subtask": 10}, {}, answers=True, writer=_write_mme,
                           locate=lambda p: {"data": str(p)}),
    "mmbench": ShapesBenchmark({"questions": 40}, {}, answers=True, writer=_write_mmbench,
                               locate=lambda p: {"data": str(p)}, suffix=".tsv"),
}
#: parameters the stage passes to the benchmark are the plugin's own, less those it sets from the data
_DATA_PATH_PARAMS = {"prompts", "csv", "edits", "images", "judge_prompts", "data"}


def _benchmark_params(name: str) -> set[str]:
    import inspect

    from harness import registry

    accepted = set(inspect.signature(registry.get("benchmark", name)).parameters)
    return accepted - _DATA_PATH_PARAMS - set(SHAPES_BENCHMARKS[name].fixed)


def _entries(params: Mapping[str, Any]) -> list[tuple[str, dict, dict]]:
    """(name, params, judges) of each benchmark entry; a bare name is an entry with defaults."""
    entries = []
    for entry in params.get("benchmarks") or []:
        entry = {"name": entry} if isinstance(entry, str) else entry
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise ValueError(f"a benchmark entry is a name or {{name, params, judges}}, got {entry!r}")
        check_keys(entry, {"name", "params", "judges"})
        entries.append((entry["name"], dict(entry.get("params") or {}), dict(entry.get("judges") or {})))
    return entries


@register("stage", "eval")
class EvalStage(Stage):
    """Params: ``models`` ({label: model stage}), ``benchmarks`` (entries: a name, or {name, params,
    judges}; names from SHAPES_BENCHMARKS), ``model_params`` (extra ``janus`` adapter parameters,
    e.g. cfg_weight), ``answer_tokens`` (max_new_tokens for MME and MMBench answers, default 8)."""

    output = "evaluation"
    reuse_folder = True  # runs whose spec is unchanged resume from the shared cache

    def check(self, params: Mapping[str, Any]) -> list[Ref]:
        check_keys(params, {"models", "benchmarks", "model_params", "answer_tokens"}, {"models", "benchmarks"})
        models = params["models"]
        if not isinstance(models, Mapping) or not models:
            raise ValueError("models must map labels to model stages, e.g. {trained: train}")
        bad = [label for label in models if not isinstance(label, str) or not STAGE_NAME.match(label)]
        if bad:
            raise ValueError(f"model labels are folder names (letters, digits, '-', '_', '.'): {bad}")
        if not isinstance(params.get("model_params") or {}, Mapping):
            raise ValueError("model_params must be a mapping of janus adapter parameters")
        entries = _entries(params)
        if not entries:
            raise ValueError("benchmarks must list at least one benchmark")
        for name, bench_params, judges in entries:
            if name not in SHAPES_BENCHMARKS:
                raise ValueError(f"no shapes-world benchmark {name!r} (known: {', '.join(SHAPES_BENCHMARKS)})")
            check_keys(bench_params, set(SHAPES_BENCHMARKS[name].data) | _benchmark_params(name))
            for role, judge in judges.items():
                ComponentSpec.from_dict(judge, f"{name} judges.{role}")
        if len({name for name, _, _ in entries}) != len(entries):
            raise ValueError("each benchmark may be listed once")
        return [Ref(f"models.{label}", stage_name(models, label), ("model",)) for label in models]

    def specs(self, params: Mapping[str, Any], inputs: Mapping[str, StageResult], folder: Path,
              seed: int) -> dict[str, dict[str, RunSpec]]:
        """benchmark -> label -> run spec, writing each benchmark's data first (once)."""
        model_params = {"batch_size": 16, **(params.get("model_params") or {})}
        answer_tokens = params.get("answer_tokens", 8)
        specs: dict[str, dict[str, RunSpec]] = {}
        for name, bench_params, judge_specs in _entries(params):
            shapes = SHAPES_BENCHMARKS[name]
            data = {key: bench_params.pop(key, default) for key, default in shapes.data.items()}
            located = {}
            if shapes.writer is not None:
                path = folder / "data" / f"{name}-{hash_value(data, length=8)}-seed{seed}{shapes.suffix}"
                write_once(path, lambda target: shapes.writer(target, data, seed))
                located = shapes.locate(path.resolve())
            benchmark = ComponentSpec(name, {**shapes.fixed, **located, **bench_params})
            judges = {role: ComponentSpec(kind) for role, kind in shapes.judges.items()}
            judges.update({role: ComponentSpec.from_dict(judge, f"{name} judges.{role}")
                           for role, judge in judge_specs.items()})
            specs[name] = {}
            for label, stage in params["models"].items():
                adapter = {"path": str(inputs[stage].target.resolve()), **model_params}
                if shapes.answers:
                    adapter["max_new_tokens"] = answer_tokens
                specs[name][label] = RunSpec(benchmark=benchmark, model=ComponentSpec("janus", adapter),
                                             judges=judges, seed=seed)
        return specs

    def run(self, params: Mapping[str, Any], inputs: Mapping[str, StageResult], folder: Path,
            ctx: StageContext) -> StageResult:
        from harness.runner import evaluate

        specs = self.specs(params, inputs, folder, ctx.seed)
        _remove_stale_runs(folder / "runs", specs)
        files: list[str] = []
        runs: dict[str, dict[str, str]] = {}
        headline: dict[str, dict[str, float]] = {}
        for name, by_label in specs.items():
            for label, spec in by_label.items():
                run_dir = folder / "runs" / name / label
                recorded = run_dir / "spec.yaml"
                if recorded.is_file() and RunSpec.load(recorded).hash != spec.hash:
                    shutil.rmtree(run_dir)  # another benchmark setup; the shared cache keeps what still fits
                outcome = evaluate(spec, run_dir, cache_dir=folder / "cache", show_progress=ctx.show_progress)
                manifest = read_manifest(run_dir)
                files += [f"runs/{name}/{label}/{rel}" for rel in manifest.files]
                runs.setdefault(name, {})[label] = f"runs/{name}/{label}"
                headline.setdefault(name, {})[label] = outcome.summary.scores.get("overall")
        inputs_hashes = {f"model:{label}": inputs[stage].hash for label, stage in params["models"].items()}
        write_manifest(folder, "evaluation", files, {**inputs_hashes, "settings": hash_value(dict(params))},
                       spec={"runs": {n: {l: s.to_dict() for l, s in by.items()} for n, by in specs.items()}})
        return manifest_result(folder, {"runs": runs, "overall": headline})


def write_once(path: Path, write: Callable[[Path], Any]) -> None:
    """Data appear complete or not at all (written under a temporary name, then renamed)."""
    if path.exists():
        return
    partial = path.with_name(path.name + ".partial")
    if partial.is_dir():
        shutil.rmtree(partial)
    elif partial.exists():
        partial.unlink()
    write(partial)
    partial.rename(path)


def _remove_stale_runs(runs: Path, specs: Mapping[str, Mapping[str, RunSpec]]) -> None:
    """Run folders of benchmarks or labels no longer listed (the report must not pick them up)."""
    if not runs.is_dir():
        return
    for bench in runs.iterdir():
        for label in (bench.iterdir() if bench.is_dir() else []):
            if label.name not in specs.get(bench.name, {}):
                shutil.rmtree(label)


# ------------------------------------------------------------------------------------------ report


@register("stage", "report")
class ReportStage(Stage):
    """Params: ``eval`` (an eval stage), ``candidate`` and ``baseline`` (two of its model labels),
    ``n_boot`` (bootstrap resamples, default 2000). Writes report.md and report.html."""

    output = "report"
    version = "2"  # 2: the facts name the candidate and the baseline
    needs_all_earlier = True  # the lineage table shows every stage

    def check(self, params: Mapping[str, Any]) -> list[Ref]:
        check_keys(params, {"eval", "candidate", "baseline", "n_boot"}, {"eval", "candidate", "baseline"})
        for key in ("candidate", "baseline"):
            if not isinstance(params[key], str):
                raise ValueError(f"{key} must be a model label of the eval stage, got {params[key]!r}")
        return [Ref("eval", stage_name(params, "eval"), ("evaluation",))]

    def run(self, params: Mapping[str, Any], inputs: Mapping[str, StageResult], folder: Path,
            ctx: StageContext) -> StageResult:
        from reports.compare import build_sections
        from reports.compare_html import html_page, markdown

        evaluation = inputs[params["eval"]]
        runs: dict[str, dict[str, str]] = evaluation.facts["runs"]
        sides = {}
        for key in ("candidate", "baseline"):
            missing = [bench for bench, labels in runs.items() if params[key] not in labels]
            if missing:
                raise HarnessError(f"report: the eval stage {params['eval']!r} has no model labelled "
                                   f"{params[key]!r} (on {', '.join(missing)})")
            sides[key] = [evaluation.folder / labels[params[key]] for labels in runs.values()]
        sections = build_sections(sides["candidate"], sides["baseline"], n_boot=params.get("n_boot", 2000),
                                  seed=ctx.seed)
        lineage = lineage_rows(inputs)
        tests = paired_test_rows(sections)
        folder.mkdir(parents=True, exist_ok=True)
        title = f"Pipeline report: {params['candidate']} vs {params['baseline']}"
        compared = markdown(sections).replace("# Comparison report", "## Comparison (reports.compare)", 1)
        atomic_write_text(folder / "report.md", "\n".join([
            f"# {title}", "", "## Lineage", "", "Every stage's artifact (content hash) and the hashes it was made "
            "from; `pipeline.json` in the output folder has the timings.", "",
            *md_table(LINEAGE_HEADER, lineage), "", "## Paired tests", "",
            *md_table(TESTS_HEADER, tests), "", compared]))
        page = html_page(sections)
        extra = (f"<h2>Lineage</h2>{html_table(LINEAGE_HEADER, lineage)}"
                 f"<h2>Paired tests</h2>{html_table(TESTS_HEADER, tests)}")
        page = page.replace("<title>Comparison report</title>", f"<title>{html.escape(title)}</title>", 1)
        page = page.replace("<h1>Comparison report</h1>", f"<h1>{html.escape(title)}</h1>{extra}", 1)
        atomic_write_text(folder / "report.html", page)
        write_manifest(folder, "report", ["report.md", "report.html"],
                       {name: result.hash for name, result in inputs.items()})
        facts = {"candidate": params["candidate"], "baseline": params["baseline"],
                 "p": {s.benchmark: s.headline.p_value for s in sections if s.headline is not None},
                 "difference": {s.benchmark: s.headline.difference for s in sections if s.headline is not None}}
        return manifest_result(folder, facts, path=folder / "report.md")


LINEAGE_HEADER = ["stage", "kind", "artifact hash", "made from"]
TESTS_HEADER = ["benchmark", "baseline", "candidate", "difference [95% CI]", "test", "p"]


def lineage_rows(results: Mapping[str, StageResult]) -> list[list[str]]:
    """One row per earlier stage, then this report's own (its hash covers this file: see artifact.json)."""
    rows = [[name, result.kind, result.hash,
             ", ".join(f"{source}={digest}" for source, digest in result.inputs.items()) or "(no stage inputs)"]
            for name, result in results.items()]
    return rows + [["(this report)", "report", "in artifact.json next to this file",
                    "every stage above"]]


def paired_test_rows(sections: list) -> list[list[str]]:
    from reports.compare_html import fmt_difference, fmt_p, fmt_value

    rows = []
    for section in sections:
        row = section.headline
        if row is None:
            rows.append([section.benchmark, "", "", "n/a", "; ".join(section.notes), ""])
            continue
        rows.append([f"{section.benchmark} ({row.label})", fmt_value(row.baseline, section),
                     fmt_value(row.candidate, section), fmt_difference(row, section), row.test, fmt_p(row.p_value)])
    return rows


def md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows])


def html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"
