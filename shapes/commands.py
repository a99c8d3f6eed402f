"""``harness shapes-data``: shapes-world data in an official layout, drawn from a world profile."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness.commands import Command
from harness.errors import HarnessError
from harness.fileio import atomic_write_text
from harness.registry import register
from shapes.suite import SHAPES_BENCHMARKS
from shapes.world import PROFILES, get_profile

KINDS = [name for name, entry in SHAPES_BENCHMARKS.items() if entry.standalone is not None]
RECORD = "shapes_world.json"


def record_path(out: Path) -> Path:
    """Where ``shapes-data`` records what it wrote: in the folder it wrote, or beside the file
    (``OUT.tsv`` -> ``OUT.shapes_world.json``)."""
    return out / RECORD if out.is_dir() else out.with_name(f"{out.stem}.{RECORD}")


@register("command", "shapes-data")
class ShapesDataCommand(Command, order=80):
    """write shapes-world data in an official layout

    harness shapes-data KIND OUT  write shapes-world data in an official layout (the kinds and profiles: --help)
    """

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("kind", choices=KINDS)
        parser.add_argument("out", type=Path, help="folder (mme, gedit, complex_edit) or .tsv file (mmbench)")
        parser.add_argument("--items", type=int, default=10,
                            help="images per MME subtask, MMBench questions, or GEdit / Complex-Edit items")
        parser.add_argument("--size", type=int, default=128, help="image side in pixels")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--legacy", action="store_true", help="mmbench: the legacy TSV layout")
        parser.add_argument("--profile", choices=list(PROFILES), default="full",
                            help="the shapes-world profile the data are drawn from (default: full)")

    def run(self, args: argparse.Namespace) -> int:
        if args.items < 1:
            raise HarnessError(f"--items must be at least 1, got {args.items}")
        profile = get_profile(args.profile)
        written = Path(SHAPES_BENCHMARKS[args.kind].standalone(args.out, args.items, args.seed, args.size,
                                                               args.legacy, profile))
        record = {"kind": args.kind, "items": args.items, "seed": args.seed, "size": args.size,
                  "legacy": args.legacy, "shapes_profile": profile.describe()}
        atomic_write_text(record_path(written), json.dumps(record, indent=2) + "\n")
        print(written)
        print(f"profile {profile.name}, recorded in {record_path(written)}")
        return 0
