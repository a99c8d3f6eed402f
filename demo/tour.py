"""``harness demo``: the whole harness, offline (the command is ``demo.command``).

``harness demo`` runs ``examples/shapes-pipeline.yaml`` (``demo_pipeline``): the shapes recipe (a)
and recipe (b), the same rows with wrong captions; a VQ image tokenizer trained on shapes scenes; a
tiny Janus around it; Janus-4o training on each recipe's data; five of the shapes benchmarks
(GenEval, DPG-Bench, ImgEdit-Bench, MME, MMBench) on three models (trained on (a), trained on (b),
untrained); and a report ranking them with paired tests and every stage's lineage hash
(``harness.pipeline``).

``harness demo --tour`` (``run_demo``) is the one-minute tour of the benchmarks: every benchmark of
the shapes suite (``shapes.suite.SHAPES_BENCHMARKS``, seven), each with two models:

- GenEval (text-to-image): a tiny randomly initialised Janus (the real adapter and sampling code,
  a model too small and untrained to draw anything) and the shapes renderer (a procedural model
  that draws each prompt correctly), judged by the pixel-only shapes detector.
- DPG-Bench (dense prompts, 2x2 tiles) with the same two models, judged by a procedural VQA judge
  that answers the question graph from the pixels.
- ImgEdit-Bench, GEdit-Bench and Complex-Edit (editing): the tiny Janus through the real Janus-4o
  edit loop, and the shapes editor (a procedural model that performs each edit), judged by
  procedural judges replying in each benchmark's official format, parsed by its official rule.
- MME and MMBench (understanding): the same tiny Janus answering questions about shapes images
  (the real understanding path), and the shapes answerer (a procedural model that reads the pixels
  with the shapes detector). The data are written first in the official layouts (an MME release
  folder, a VLMEvalKit TSV with circular copies) and read back by the benchmarks' own loaders.

Each suite entry declares the tour's size flags for its benchmark (``ShapesBenchmark.tour_sizes``);
``DemoSize`` and the command's flags are built from them. The report shows the gaps: the harness
can tell a model that follows prompts and reads images from one that does not.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from harness.errors import HarnessError
from harness.runner import evaluate
from harness.spec import ComponentSpec, RunSpec
from shapes.suite import SHAPES_BENCHMARKS, tour_options, write_once


@dataclass(frozen=True, init=False)
class DemoSize:
    """The tour's sizes: one for each size option of the suite (``shapes.suite.tour_options``, by
    its ``key``, e.g. ``per_tag``, ``mme_images_per_subtask``; unset ones take the suite's
    defaults), and ``answer_tokens``, the tiny Janus's max_new_tokens (answers are single words)."""

    sizes: Mapping[str, int]
    answer_tokens: int

    def __init__(self, answer_tokens: int = 8, **sizes: int) -> None:
        defaults = {option.key: option.default for option in tour_options()}
        if unknown := sorted(set(sizes) - set(defaults)):
            raise TypeError(f"DemoSize has no size {', '.join(unknown)} (known: {', '.join(defaults)})")
        object.__setattr__(self, "sizes", MappingProxyType({**defaults, **sizes}))
        object.__setattr__(self, "answer_tokens", answer_tokens)

    def __getattr__(self, name: str) -> int:  # size.per_tag
        sizes = self.__dict__.get("sizes", {})
        if name in sizes:
            return sizes[name]
        raise AttributeError(name)


def _sizes(size: DemoSize) -> dict[str, tuple[dict[str, int], dict[str, int]]]:
    """benchmark -> (data-writer sizes, benchmark parameters), from the suite table's ``tour_sizes``."""
    sizes = {}
    for name, shapes in SHAPES_BENCHMARKS.items():
        chosen = {option.param: size.sizes[option.key] for option in shapes.tour_sizes}
        sizes[name] = ({k: v for k, v in chosen.items() if k in shapes.data},
                       {k: v for k, v in chosen.items() if k not in shapes.data})
    return sizes


def demo_specs(out: Path, model_dir: Path, size: DemoSize, seed: int) -> dict[str, dict[str, RunSpec]]:
    """benchmark -> model name -> spec (the data folders are written by ``write_demo_data``); the
    benchmark parameters, judges and oracle models are the shapes suite's (``SHAPES_BENCHMARKS``)."""
    janus = {"path": str(model_dir.resolve()), "batch_size": 16}
    paths = demo_data_paths(out, size, seed)
    sizes = _sizes(size)
    specs = {}
    for name, shapes in SHAPES_BENCHMARKS.items():
        located = shapes.locate(paths[name].resolve()) if name in paths else {}
        benchmark = ComponentSpec(name, {**shapes.fixed, **located, **sizes[name][1]})
        judges = {role: ComponentSpec(kind) for role, kind in shapes.judges.items()}
        tiny = ComponentSpec("janus", {**janus, "max_new_tokens": size.answer_tokens} if shapes.answers else janus)
        oracle = ComponentSpec(shapes.oracle[0], dict(shapes.oracle[1]))
        specs[name] = {"tiny-janus": RunSpec(benchmark=benchmark, model=tiny, judges=judges, seed=seed),
                       oracle.name: RunSpec(benchmark=benchmark, model=oracle, judges=judges, seed=seed)}
    return specs


def demo_data_paths(out: Path, size: DemoSize, seed: int) -> dict[str, Path]:
    """Named by size and seed, so a demo with other sizes never reuses stale data."""
    paths = {}
    for name, (data, _) in _sizes(size).items():
        shapes = SHAPES_BENCHMARKS[name]
        if shapes.writer is not None:
            numbers = "-".join(str(value) for value in data.values())
            paths[name] = out / "data" / f"{name}-shapes-{numbers}-seed{seed}{shapes.suffix}"
    return paths


def write_demo_data(out: Path, size: DemoSize, seed: int) -> dict[str, Path]:
    """Write the shapes data once; each file or folder appears complete or not at all."""
    sizes = _sizes(size)
    paths = demo_data_paths(out, size, seed)
    for name, path in paths.items():
        write_once(path, lambda target, name=name: SHAPES_BENCHMARKS[name].writer(target, sizes[name][0], seed))
    return paths


def run_demo(out: Path, size: DemoSize = DemoSize(), seed: int = 0, show_progress: bool = True) -> Path:
    from harness.models.tiny_janus import build_tiny_janus
    from reports.run_report import write_report

    out.mkdir(parents=True, exist_ok=True)
    model_dir = out / "models" / "tiny-janus"
    if not (model_dir / "config.json").is_file():
        print(f"building a tiny random Janus in {model_dir}", file=sys.stderr)
        build_tiny_janus(model_dir, seed=seed)
    write_demo_data(out, size, seed)
    run_dirs = []
    for benchmark, specs in demo_specs(out, model_dir, size, seed).items():
        for name, spec in specs.items():
            run_dir = out / "runs" / benchmark / name
            print(f"evaluating {name} on {benchmark} (shapes world) -> {run_dir}", file=sys.stderr)
            outcome = evaluate(spec, run_dir, show_progress=show_progress)
            print(f"{benchmark} {name}: {SHAPES_BENCHMARKS[benchmark].headline(outcome.summary.scores)}")
            run_dirs.append(run_dir)
    markdown, page = write_report(run_dirs, out)
    print(f"markdown report: {markdown}")
    return page


#: the pipeline ``harness demo`` runs (a source checkout, as the README installs it)
DEMO_PIPELINE = Path(__file__).resolve().parents[1] / "examples" / "shapes-pipeline.yaml"


def demo_pipeline():
    """The source checkout's example pipeline: the installed package's own (pip install -e .), else
    the current folder's (a checkout with a plain pip install)."""
    from harness.pipeline import PipelineSpec

    for path in (DEMO_PIPELINE, Path.cwd() / "examples" / DEMO_PIPELINE.name):
        if path.is_file():
            return PipelineSpec.load(path)
    raise HarnessError(f"{DEMO_PIPELINE} is missing: `harness demo` runs the example pipeline of a source "
                       "checkout (pip install -e ., or run it in the checkout); `harness demo --tour` needs no files")


def headline_lines(outcome) -> list[str]:
    """One line per benchmark: the ranking of the models with the paired tests between neighbours
    when the report ranks more than two, else candidate minus baseline and the paired test's
    p-value (report facts)."""
    report = outcome.results.get("report")
    evaluation = outcome.results.get("eval")
    if report is None or evaluation is None:
        return []
    if report.facts.get("ranking"):
        lines = [f"{entry['benchmark']}: {entry['line']}" for entry in report.facts["ranking"]]
        candidate = report.facts.get("candidate")
        for pair in report.facts.get("pairs", []):  # the candidate against each other model
            if candidate not in (pair["better"], pair["worse"]) or pair.get("p") is None:
                continue
            other = pair["worse"] if pair["better"] == candidate else pair["better"]
            sign = 1 if pair["better"] == candidate else -1
            lines.append(f"{pair['benchmark']}: {candidate} - {other} = {sign * pair['difference']:+.4g} "
                         f"(paired test p = {pair['p']:.2g})")
        return lines
    lines = []
    candidate, baseline = report.facts.get("candidate", "candidate"), report.facts.get("baseline", "baseline")
    for benchmark, p_value in report.facts.get("p", {}).items():
        difference = report.facts.get("difference", {}).get(benchmark)
        shown = "n/a" if difference is None else f"{difference:+.4f}"
        shown_p = "n/a" if p_value is None else f"{p_value:.2g}"
        lines.append(f"{benchmark}: {candidate} - {baseline} = {shown} (paired test p = {shown_p})")
    return lines
