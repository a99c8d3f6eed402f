"""``harness rescore dpg``, and DPG-Bench detail files on the leaderboard."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.dpg.benchmark import BENCHMARK_NAME
from harness.commands import Rescored, Rescorer, paired_source
from harness.errors import HarnessError, InputError
from harness.registry import register


@register("rescore", BENCHMARK_NAME)
class DPGRescorer(Rescorer):
    help = "an official *_detail.txt (answers per image, tile, question)"
    source_help = f"{BENCHMARK_NAME}:DETAIL_TXT:CSV"

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

    def claims(self, source: str) -> bool:
        """``dpg:DETAIL_TXT:CSV``; a detail file alone is an error asking for its CSV."""
        if paired_source(source, BENCHMARK_NAME) is not None:
            return True
        path = Path(source)
        if path.is_file() and path.name.lower().endswith("_detail.txt"):
            raise InputError(f"a DPG detail file needs its question CSV: pass {self.source_help}", path)
        return False

    def leaderboard_entry(self, source: str) -> Rescored:
        """The overall score, official mode."""
        from benchmarks.dpg.rescore import rescore_detail

        detail, questions = paired_source(source, BENCHMARK_NAME)
        summary = rescore_detail(detail, questions)
        return Rescored.from_files([detail, questions], {"overall": (summary["overall"], ())},
                                   [f"{summary['images']} image scores averaged (official mode), image folder "
                                    f"{summary['model']!r}"])
