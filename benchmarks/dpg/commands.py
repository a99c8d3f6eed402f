"""``harness rescore dpg``, and DPG-Bench detail files on the leaderboard."""
from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.dpg.benchmark import BENCHMARK_NAME
from harness.commands import Rescored, Rescorer, claims_paired, paired_source
from harness.errors import HarnessError
from harness.fileio import read_text
from harness.registry import register


@register("rescore", BENCHMARK_NAME)
class DPGRescorer(Rescorer):
    """an official *_detail.txt (answers per image, tile, question)"""

    source_help = f"{BENCHMARK_NAME}:DETAIL_TXT:CSV"
    strict_help = ("refuse duplicate lines (a question answered twice in one tile with the same answer) "
                   "instead of ignoring them with a warning; different answers are always refused")
    printed = ("overall", "l1", "l2", "images")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("detail", type=Path)
        parser.add_argument("--csv", type=Path, required=True, help="the question graph, dpg_bench.csv")
        parser.add_argument("--mode", choices=["official", "fixed"], default="official",
                            help="official reproduces the upstream quirks; fixed corrects them (not comparable)")
        parser.add_argument("--pic-num", type=int, help="tiles per image to score (default: as many as the "
                            "file holds)")
        parser.add_argument("--items", type=Path, help="fixed mode: a file of the item ids that should have "
                            "images (one per line; a run writes dpg_items.txt); absent ones score 0 (default: "
                            "every CSV item)")

    def rescore(self, args: argparse.Namespace) -> dict:
        from benchmarks.dpg.rescore import rescore_detail

        expected = None
        if args.items:
            if not args.items.is_file():
                raise HarnessError(f"--items {args.items}: file not found")
            expected = [line.strip() for line in read_text(args.items, "utf-8-sig").splitlines() if line.strip()]
        return rescore_detail(args.detail, csv=args.csv, mode=args.mode, pic_num=args.pic_num,
                              expected_items=expected, strict=args.strict)

    def describe(self, summary: dict, args: argparse.Namespace) -> str:
        from benchmarks.dpg.rescore import format_summary

        return format_summary(summary)

    def claims(self, source: str) -> bool:
        """``dpg:DETAIL_TXT:CSV``; a detail file alone is an error asking for its CSV."""
        return claims_paired(source, BENCHMARK_NAME, "_detail.txt", "a DPG detail file needs its question CSV",
                             self.source_help)

    def leaderboard_entry(self, source: str) -> Rescored:
        """The overall score, official mode."""
        from benchmarks.dpg.rescore import rescore_detail

        detail, questions = paired_source(source, BENCHMARK_NAME)
        summary = rescore_detail(detail, questions)
        return Rescored.from_files([detail, questions], {"overall": (summary["overall"], ())},
                                   [f"{summary['images']} image scores averaged (official mode), image folder "
                                    f"{summary['model']!r}", *summary["warnings"]])
