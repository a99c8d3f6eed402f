"""``harness rescore mme``, and MME results folders on the leaderboard."""
from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.mme.benchmark import BENCHMARK_NAME
from benchmarks.mme.data import COGNITION, PERCEPTION, SUBTASKS
from harness.commands import Rescored, Rescorer
from harness.registry import register


@register("rescore", BENCHMARK_NAME)
class MMERescorer(Rescorer):
    """a folder of per-subtask answer files (image, question, GT, answer)"""

    printed = ("perception", "cognition", "subtasks")  # MME has no overall: two sums of subtask scores
    source_help = "an MME results folder of <subtask>.txt files"
    strict_help = ("refuse what calculation.py reads quietly (an image paired twice, a pair of two images, "
                   "other .txt files in the folder) instead of warning")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("folder", type=Path)
        parser.add_argument("--subtasks", nargs="*", help="score only these subtasks")
        parser.add_argument("--present-only", action="store_true",
                            help="score the subtask files present instead of requiring all 14")

    def rescore(self, args: argparse.Namespace) -> dict:
        from benchmarks.mme.rescore import rescore_folder

        return rescore_folder(args.folder, subtasks=args.subtasks or None, present_only=args.present_only,
                              strict=args.strict)

    def describe(self, summary: dict, args: argparse.Namespace) -> str:
        from benchmarks.mme.rescore import format_summary

        return format_summary(summary)

    def claims(self, source: str) -> bool:
        path = Path(source)
        return path.is_dir() and any((path / f"{name}.txt").is_file() for name in SUBTASKS)

    def leaderboard_entry(self, source: str) -> Rescored:
        """Perception and cognition over the subtask files present; missing subtasks are departures."""
        from benchmarks.mme.rescore import rescore_folder

        path = Path(source)
        summary = rescore_folder(path, present_only=True)
        values = {}
        for key, group in (("perception", PERCEPTION), ("cognition", COGNITION)):
            missing = [name for name in group if name in summary["missing"]]
            reasons = (f"{len(group) - len(missing)} of {len(group)} {key} subtasks present "
                       f"(missing: {', '.join(missing)})",) if missing and summary[key] is not None else ()
            values[key] = (summary[key], reasons)
        return Rescored.from_files([path], values, [f"subtasks scored: {len(summary['present'])} of {len(SUBTASKS)}",
                                                    *summary["warnings"]])
