"""The ``harness demo`` command."""
from __future__ import annotations

import argparse
from pathlib import Path

from harness.commands import Command
from harness.core_commands import add_pipeline_flags, add_set_flag, execute_pipeline, transformers_bars
from harness.errors import HarnessError
from harness.registry import register
from shapes.suite import SHAPES_BENCHMARKS, tour_options


def _dest(flag: str) -> str:
    return flag.removeprefix("--").replace("-", "_")


@register("command", "demo")
class DemoCommand(Command, order=0):
    """two data recipes, one measurably better: a tiny Janus trained on each (and untrained) on five
    of the shapes benchmarks, ranked with paired tests (offline, 7-9 min on 2 cores)

    harness demo  two recipes for the same tiny Janus, trained on CPU, ranked on five benchmarks (7-9 min on 2 cores)
    harness demo --tour  the benchmarks in a minute: untrained tiny Janus vs oracles
    """

    start_here = "Start with `harness demo --tour` (offline, about a minute), then `harness demo`."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--out", type=Path, help="output folder (default: harness-demo; the tour: harness-tour)")
        add_set_flag(parser, "stages.shapes.params.epochs=2 (a field of examples/shapes-pipeline.yaml)")
        parser.add_argument("--tour", action="store_true",
                            help=f"instead: a one-minute tour of all {len(SHAPES_BENCHMARKS)} shapes benchmarks, an "
                                 "untrained tiny Janus against procedural models that get everything right (the "
                                 "size flags below apply)")
        for option in tour_options():  # each suite entry declares the flags that size it
            parser.add_argument(option.flag, dest=_dest(option.flag), type=int, default=option.default,
                                help=f"tour: {option.help}" if option.help else "tour")
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
        for option in tour_options():
            if getattr(args, _dest(option.flag)) < 1:
                raise HarnessError(f"{option.flag} must be at least 1")
        size = DemoSize(**{option.key: getattr(args, _dest(option.flag)) for option in tour_options()})
        with transformers_bars(show=not args.no_progress):
            report = run_demo(args.out or Path("harness-tour"), size, seed=args.seed, show_progress=not args.no_progress)
        print(f"report: {report}")
        return 0
