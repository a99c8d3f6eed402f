"""``harness demo``: the whole harness, offline, in a few minutes.

Runs three benchmarks on the shapes world, each with two models:

- GenEval (text-to-image): a tiny randomly initialised Janus (the real adapter and sampling code,
  a model too small and untrained to draw anything) and the shapes renderer (a procedural model
  that draws each prompt correctly), judged by the pixel-only shapes detector.
- MME and MMBench (understanding): the same tiny Janus answering questions about shapes images
  (the real understanding path), and the shapes answerer (a procedural model that reads the pixels
  with the shapes detector). The data are written first in the official layouts (an MME release
  folder, a VLMEvalKit TSV with circular copies) and read back by the benchmarks' own loaders.

The report shows the gaps: the harness can tell a model that follows prompts and reads images
from one that does not.
"""
from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from harness.runner import evaluate
from harness.spec import ComponentSpec, RunSpec


@dataclass(frozen=True)
class DemoSize:
    per_tag: int = 8  # GenEval shapes prompts per tag
    images_per_prompt: int = 4
    mme_images_per_subtask: int = 10  # 4 subtasks x 10 images x 2 questions
    mmbench_questions: int = 40  # each asked once per circular pass (2-4 passes)
    answer_tokens: int = 8  # tiny Janus max_new_tokens (answers are single words)


def demo_specs(out: Path, model_dir: Path, size: DemoSize, seed: int) -> dict[str, dict[str, RunSpec]]:
    """benchmark -> model name -> spec."""
    janus_path = str(model_dir.resolve())
    geneval = ComponentSpec("geneval", {"prompts": "shapes", "per_tag": size.per_tag,
                                        "images_per_prompt": size.images_per_prompt})
    shapes_judges = {"detector": ComponentSpec("shapes"), "color_classifier": ComponentSpec("shapes")}
    janus_answers = ComponentSpec("janus", {"path": janus_path, "batch_size": 16,
                                            "max_new_tokens": size.answer_tokens})
    mme_data, mmbench_data = demo_data_paths(out, size, seed)
    mme = ComponentSpec("mme", {"data": str(mme_data.resolve())})
    mmbench = ComponentSpec("mmbench", {"data": str(mmbench_data.resolve())})
    return {
        "geneval": {
            "tiny-janus": RunSpec(benchmark=geneval, judges=shapes_judges, seed=seed,
                                  model=ComponentSpec("janus", {"path": janus_path, "batch_size": 16})),
            "shapes-renderer": RunSpec(benchmark=geneval, judges=shapes_judges, seed=seed,
                                       model=ComponentSpec("shapes-renderer", {"size": 64})),
        },
        "mme": {
            "tiny-janus": RunSpec(benchmark=mme, model=janus_answers, seed=seed),
            "shapes-answerer": RunSpec(benchmark=mme, model=ComponentSpec("shapes-answerer"), seed=seed),
        },
        "mmbench": {
            "tiny-janus": RunSpec(benchmark=mmbench, model=janus_answers, seed=seed),
            "shapes-answerer": RunSpec(benchmark=mmbench, model=ComponentSpec("shapes-answerer"), seed=seed),
        },
    }


def _headline(benchmark: str, scores: dict) -> str:
    if benchmark == "geneval":
        tasks = ", ".join(f"{tag} {value:.3f}" for tag, value in scores["tasks"].items())
        return f"overall {scores['overall']:.4f} ({tasks})"
    if benchmark == "mme":
        return f"perception {scores['perception']:.2f} (max {200 * len(scores['subtasks'])})"
    return f"overall {scores['overall']:.4f} (CircularEval)"


def demo_data_paths(out: Path, size: DemoSize, seed: int) -> tuple[Path, Path]:
    """Named by size and seed, so a demo with other sizes never reuses stale data."""
    data = out / "data"
    return (data / f"mme-shapes-{size.mme_images_per_subtask}-seed{seed}",
            data / f"mmbench-shapes-{size.mmbench_questions}-seed{seed}.tsv")


def write_demo_data(out: Path, size: DemoSize, seed: int) -> tuple[Path, Path]:
    """Write the shapes data once; each file or folder appears complete or not at all."""
    from harness.shapes.understanding import write_mmbench_shapes, write_mme_shapes

    mme, mmbench = demo_data_paths(out, size, seed)
    if not mme.is_dir():
        partial = mme.with_name(mme.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        write_mme_shapes(partial, per_subtask=size.mme_images_per_subtask, seed=seed)
        partial.rename(mme)
    if not mmbench.is_file():
        partial = mmbench.with_name(mmbench.name + ".partial")
        write_mmbench_shapes(partial, questions=size.mmbench_questions, seed=seed)
        partial.rename(mmbench)
    return mme, mmbench


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
            print(f"{benchmark} {name}: {_headline(benchmark, outcome.summary.scores)}")
            run_dirs.append(run_dir)
    markdown, page = write_report(run_dirs, out)
    print(f"markdown report: {markdown}")
    return page
