"""``harness shapes-data``: shapes-world data in an official layout."""
from __future__ import annotations

import argparse
from pathlib import Path

from harness.commands import Command
from harness.errors import HarnessError
from harness.registry import register


@register("command", "shapes-data")
class ShapesDataCommand(Command):
    help = "write shapes-world data in an official layout"
    usage = "harness shapes-data KIND OUT       write shapes-world data in an official layout (mme, mmbench)"
    order = 80

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("kind", choices=["mme", "mmbench"])
        parser.add_argument("out", type=Path, help="folder (mme) or .tsv file (mmbench)")
        parser.add_argument("--items", type=int, default=10, help="images per MME subtask, or MMBench questions")
        parser.add_argument("--size", type=int, default=128, help="image side in pixels")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--legacy", action="store_true", help="mmbench: the legacy TSV layout")

    def run(self, args: argparse.Namespace) -> int:
        from shapes.understanding import write_mme_shapes
        from shapes.understanding_mmbench import write_mmbench_shapes

        if args.items < 1:
            raise HarnessError(f"--items must be at least 1, got {args.items}")
        if args.kind == "mme":
            print(write_mme_shapes(args.out, per_subtask=args.items, seed=args.seed, size=args.size))
        else:
            print(write_mmbench_shapes(args.out, questions=args.items, seed=args.seed, size=args.size,
                                       legacy=args.legacy))
        return 0
