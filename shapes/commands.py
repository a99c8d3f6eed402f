"""``harness shapes-data``: shapes-world data in an official layout."""
from __future__ import annotations

import argparse
from pathlib import Path

from harness.commands import Command
from harness.errors import HarnessError
from harness.registry import register
from shapes.suite import SHAPES_BENCHMARKS

KINDS = [name for name, entry in SHAPES_BENCHMARKS.items() if entry.standalone is not None]


@register("command", "shapes-data")
class ShapesDataCommand(Command, order=80):
    """write shapes-world data in an official layout

    harness shapes-data KIND OUT  write shapes-world data in an official layout (the kinds: --help)
    """

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("kind", choices=KINDS)
        parser.add_argument("out", type=Path, help="folder (mme) or .tsv file (mmbench)")
        parser.add_argument("--items", type=int, default=10, help="images per MME subtask, or MMBench questions")
        parser.add_argument("--size", type=int, default=128, help="image side in pixels")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--legacy", action="store_true", help="mmbench: the legacy TSV layout")

    def run(self, args: argparse.Namespace) -> int:
        if args.items < 1:
            raise HarnessError(f"--items must be at least 1, got {args.items}")
        print(SHAPES_BENCHMARKS[args.kind].standalone(args.out, args.items, args.seed, args.size, args.legacy))
        return 0
