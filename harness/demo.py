"""``harness demo``: the whole harness, offline, in a few minutes.

Runs the GenEval protocol on the shapes world twice: with a tiny randomly initialised Janus (the
real adapter and sampling code, a model too small and untrained to draw anything) and with the
shapes renderer (a procedural model that draws each prompt correctly). The pixel-only shapes
detector judges both. The report shows the gap: the harness can tell a model that follows prompts
from one that does not.
"""
from __future__ import annotations

import sys
from pathlib import Path

from harness.runner import evaluate
from harness.spec import ComponentSpec, RunSpec


def demo_specs(model_dir: Path, per_tag: int, images_per_prompt: int, seed: int) -> dict[str, RunSpec]:
    benchmark = ComponentSpec("geneval", {"prompts": "shapes", "per_tag": per_tag,
                                          "images_per_prompt": images_per_prompt})
    judges = {"detector": ComponentSpec("shapes"), "color_classifier": ComponentSpec("shapes")}
    return {
        "tiny-janus": RunSpec(benchmark=benchmark, judges=judges, seed=seed,
                              model=ComponentSpec("janus", {"path": str(model_dir.resolve()), "batch_size": 16})),
        "shapes-renderer": RunSpec(benchmark=benchmark, judges=judges, seed=seed,
                                   model=ComponentSpec("shapes-renderer", {"size": 64})),
    }


def run_demo(out: Path, per_tag: int = 8, images_per_prompt: int = 4, seed: int = 0,
             show_progress: bool = True) -> Path:
    from harness.models.tiny_janus import build_tiny_janus
    from reports.run_report import write_report

    out.mkdir(parents=True, exist_ok=True)
    model_dir = out / "models" / "tiny-janus"
    if not (model_dir / "config.json").is_file():
        print(f"building a tiny random Janus in {model_dir}", file=sys.stderr)
        build_tiny_janus(model_dir, seed=seed)
    run_dirs = []
    for name, spec in demo_specs(model_dir, per_tag, images_per_prompt, seed).items():
        run_dir = out / "runs" / name
        print(f"evaluating {name} on GenEval (shapes world) -> {run_dir}", file=sys.stderr)
        outcome = evaluate(spec, run_dir, show_progress=show_progress)
        scores = outcome.summary.scores
        tasks = ", ".join(f"{tag} {value:.3f}" for tag, value in scores["tasks"].items())
        print(f"{name}: overall {scores['overall']:.4f} ({tasks})")
        run_dirs.append(run_dir)
    markdown, page = write_report(run_dirs, out)
    print(f"markdown report: {markdown}")
    return page
