"""The kernel's own commands: ``eval``, ``synth``, ``run`` and ``plugins``."""
from __future__ import annotations

import argparse
import json
import sys
from contextlib import contextmanager
from pathlib import Path

from harness import registry
from harness.commands import Command, parse_overrides
from harness.errors import HarnessError
from harness.registry import register


def add_set_flag(parser: argparse.ArgumentParser, example: str) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override a field, e.g. --set {example}")


def with_set(spec, items: list[str]):
    """``spec`` (a run spec or a recipe) with the ``--set KEY=VALUE`` items applied."""
    return spec.with_overrides(parse_overrides(items)) if items else spec


def add_pipeline_flags(parser: argparse.ArgumentParser) -> None:
    """--threads and --no-progress, shared by ``run`` and the demo."""
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--no-progress", action="store_true")


@register("command", "eval")
class EvalCommand(Command, order=10):
    """run or resume a run spec (YAML)

    harness eval SPEC.yaml --out RUN  run (or resume) a spec; works under torchrun
    """

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("spec", type=Path)
        parser.add_argument("--out", type=Path, required=True, help="run folder (resumes if it exists)")
        add_set_flag(parser, "model.params.cfg_weight=3")
        parser.add_argument("--cache", type=Path, help="cache folder shared between runs (default: RUN/cache); "
                            "runs that differ only in their judges then re-run only the judging")
        parser.add_argument("--max-judge-failure-rate", type=float, default=0.5, metavar="RATE",
                            help="stop when more than this share of judged samples failed, after at least "
                            "20 (default: %(default)s; verdicts already given are kept)")
        parser.add_argument("--no-progress", action="store_true")

    def run(self, args: argparse.Namespace) -> int:
        from harness.runner import evaluate
        from harness.spec import RunSpec

        spec = with_set(RunSpec.load(args.spec), args.set)
        if not 0 <= args.max_judge_failure_rate <= 1:
            raise HarnessError(f"--max-judge-failure-rate must be between 0 and 1, got {args.max_judge_failure_rate}")
        outcome = evaluate(spec, args.out, cache_dir=args.cache, show_progress=not args.no_progress,
                           max_judge_failure_rate=args.max_judge_failure_rate)
        if outcome.summary is not None:
            print(json.dumps({"run": str(args.out), "scores": outcome.summary.scores,
                              "counts": outcome.summary.counts}))
        return 0


@register("command", "synth")
class SynthCommand(Command, order=20):
    """run or resume a data recipe (YAML); prints the dataset folder

    harness synth RECIPE.yaml  run (or resume) a data recipe; prints the dataset folder last
    """

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("recipe", type=Path)
        parser.add_argument("--out", type=Path, help="dataset folder (default: datasets/<name>-<recipe hash>)")
        add_set_flag(parser, "steps.0.params.count=10")
        parser.add_argument("--cache", type=Path, help="call and step cache shared between recipes "
                            "(default: DATASET/cache); recipes that share steps then pay for them once")
        parser.add_argument("--no-progress", action="store_true")

    def run(self, args: argparse.Namespace) -> int:
        from harness.recipe import RecipeSpec
        from harness.synth import synthesize

        recipe = with_set(RecipeSpec.load(args.recipe), args.set)
        outcome = synthesize(recipe, args.out, cache_dir=args.cache, show_progress=not args.no_progress)
        info = outcome.artifact.info
        state = "already complete" if outcome.skipped else f"{info.get('seconds', 0):.1f} s"
        print(f"{info.get('rows', 0)} rows, {info.get('dropped', 0)} dropped, {info.get('failed', 0)} failed; "
              f"cost ${info.get('cost_usd', 0):.4f}; dataset {outcome.artifact.hash} ({state})", file=sys.stderr)
        if info.get("failed"):
            print(f"harness: {info['failed']} rows failed (see {outcome.folder / 'failures.jsonl'}); run the "
                  f"same command again to retry them", file=sys.stderr)
        print(outcome.folder)
        return 0


@register("command", "run")
class RunCommand(Command, order=30):
    """run a pipeline (YAML): synth, train, eval, report, skipping stages whose artifacts exist;
    prints the report path last

    harness run PIPELINE.yaml  run a pipeline (synth, train, eval, report); skips finished stages
    """

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("pipeline", type=Path)
        parser.add_argument("--out", type=Path, help="output folder (default: the pipeline's out, else "
                            "pipelines/<name>)")
        add_set_flag(parser, "stages.train.params.epochs=1")
        add_pipeline_flags(parser)

    def run(self, args: argparse.Namespace) -> int:
        from harness.pipeline import PipelineSpec

        outcome = execute_pipeline(PipelineSpec.load(args.pipeline), args)
        print(outcome.report or outcome.results[list(outcome.results)[-1]].target)
        return 0


@contextmanager
def transformers_bars(show: bool):
    """transformers' own progress bars (loading and saving checkpoints) follow ``--no-progress``."""
    from transformers.utils import logging as transformers_logging

    enabled = transformers_logging.is_progress_bar_enabled()
    if not show:
        transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            transformers_logging.enable_progress_bar()


def execute_pipeline(spec, args: argparse.Namespace):
    """Run ``spec`` with the shared flags (--out, --set, --threads, --no-progress)."""
    from harness.pipeline import run_pipeline

    if args.threads is not None:
        if args.threads < 1:
            raise HarnessError(f"--threads must be at least 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    with transformers_bars(show=not args.no_progress):
        outcome = run_pipeline(spec, args.out, parse_overrides(args.set), show_progress=not args.no_progress,
                               echo=lambda line: print(line, flush=True))
    print(f"pipeline {spec.name}: {len(outcome.results)} stages, {len(outcome.skipped)} skipped, "
          f"{outcome.seconds:.1f} s; record {outcome.out / 'pipeline.json'}", file=sys.stderr)
    return outcome


@register("command", "plugins")
class PluginsCommand(Command, order=90):
    """list registered plugins

    harness plugins  list registered plugins
    """

    def run(self, args: argparse.Namespace) -> int:
        for kind in registry.KINDS:
            found = registry.names(kind)
            if found:
                print(f"{kind:17} {', '.join(found)}")
        return 0
