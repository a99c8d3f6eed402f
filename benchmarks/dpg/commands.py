"""``harness rescore dpg``, and DPG-Bench detail files on the leaderboard."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.dpg.benchmark import BENCHMARK_NAME
from harness.commands import Rescorer
from harness.errors import HarnessError
from harness.registry import register


@register("rescore", BENCHMARK_NAME)
class DPGRescorer(Rescorer):
    help = "an official *_detail.txt (answers per image, tile, question)"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("detail", type=Path)
        parser.add_argument("--csv", type=Path, required=True, help="the question graph, dpg_bench.csv")
        parser.add_argument("--mode", choices=["official", "fixed"], default="official",
                            help="official reproduces the upstream quirks; fixed corrects them (not comparable)")
        parser.add_argument("--pic-num", type=int, help="tiles per image to score (default: as many as the "
                            "file holds)")
        parser.add_argument("--items", type=Path, help="fixed mode: a file of the item ids that should have "
                            "images (one per line; a run writes dpg_items.txt); absent ones score 0 (default: "
                            "every CSV item)")

    def run(self, args: argparse.Namespace) -> int:
        from benchmarks.dpg.rescore import format_summary, rescore_detail

        expected = None
        if args.items:
            if not args.items.is_file():
                raise HarnessError(f"--items {args.items}: file not found")
            expected = [line.strip() for line in args.items.read_text(encoding="utf-8").splitlines()
                        if line.strip()]
        summary = rescore_detail(args.detail, csv=args.csv, mode=args.mode, pic_num=args.pic_num,
                                 expected_items=expected)
        print(format_summary(summary))
        print(json.dumps({key: summary[key] for key in ("overall", "l1", "l2", "images")}))
        return 0
