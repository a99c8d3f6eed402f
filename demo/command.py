"""The ``harness demo`` command."""
from __future__ import annotations

import argparse
from pathlib import Path

from harness.commands import Command
from harness.core_commands import add_pipeline_flags, add_set_flag, execute_pipeline, transformers_bars
from harness.errors import HarnessError
from harness.registry import register

#: tour size flags -> DemoSize fields
TOUR_FLAGS = {"per_tag": "per_tag", "images_per_prompt": "images_per_prompt", "mme_images": "mme_images_per_subtask",
              "mmbench_questions": "mmbench_questions", "dpg_items": "dpg_items", "imgedit_items": "imgedit_items",
              "gedit_items": "gedit_items", "complex_edit_items": "complex_edit_items"}


@register("command", "demo")
class DemoCommand(Command, order=0):
    """two data recipes, one measurably better: a tiny Janus trained on each (and untrained) on all
    five shapes benchmarks, ranked with paired tests (offline, ~10 min on 2 cores)

    harness demo  two recipes for the same tiny Janus, trained on CPU, ranked on all benchmarks (~10 min)
    harness demo --tour  the benchmarks in a minute: untrained tiny Janus vs oracles
    """

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--out", type=Path, help="output folder (default: harness-demo; the tour: harness-tour)")
        add_set_flag(parser, "stages.shapes.params.epochs=2 (a field of examples/shapes-pipeline.yaml)")
        parser.add_argument("--tour", action="store_true",
                            help="instead: a one-minute tour of the five benchmarks, an untrained tiny Janus against "
                                 "procedural models that get everything right (the size flags below apply)")
        parser.add_argument("--per-tag", type=int, default=8, help="tour: GenEval shapes prompts per tag")
        parser.add_argument("--images-per-prompt", type=int, default=4, help="tour")
        parser.add_argument("--mme-images", type=int, default=10, help="tour: MME shapes images per subtask")
        parser.add_argument("--mmbench-questions", type=int, default=40, help="tour")
        parser.add_argument("--dpg-items", type=int, default=12, help="tour: DPG shapes dense prompts (4 tiles each)")
        parser.add_argument("--imgedit-items", type=int, default=18, help="tour: ImgEdit shapes edits")
        parser.add_argument("--gedit-items", type=int, default=10, help="tour: GEdit-Bench shapes edits")
        parser.add_argument("--complex-edit-items", type=int, default=6,
                            help="tour: Complex-Edit shapes edit chains (judged at level C8)")
        parser.add_argument("--seed", type=int, default=0, help="tour")
        add_pipeline_flags(parser)

    def run(self, args: argparse.Namespace) -> int:
        from demo.tour import DemoSize, demo_pipeline, headline_lines, run_demo

        if not args.tour:
            args.out = args.out or Path("harness-demo")
            if args.threads is None:  # one torch thread: on a shared 2-core machine two were 25x slower
                args.threads = 1
            outcome = execute_pipeline(demo_pipeline(), args)
            for line in headline_lines(outcome):
                print(line)
            print(f"report: {outcome.report.with_suffix('.html')}")
            return 0
        if args.set or args.threads is not None:
            raise HarnessError("--set and --threads change the pipeline demo; the tour takes the size flags")
        for flag in TOUR_FLAGS:
            if getattr(args, flag) < 1:
                raise HarnessError(f"--{flag.replace('_', '-')} must be at least 1")
        size = DemoSize(**{field: getattr(args, flag) for flag, field in TOUR_FLAGS.items()})
        with transformers_bars(show=not args.no_progress):
            report = run_demo(args.out or Path("harness-tour"), size, seed=args.seed, show_progress=not args.no_progress)
        print(f"report: {report}")
        return 0
