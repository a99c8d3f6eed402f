"""``harness rescore mme``, and MME results folders on the leaderboard."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.mme.benchmark import BENCHMARK_NAME
from harness.commands import Rescorer
from harness.registry import register


@register("rescore", BENCHMARK_NAME)
class MMERescorer(Rescorer):
    help = "a folder of per-subtask answer files (image, question, GT, answer)"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("folder", type=Path)
        parser.add_argument("--subtasks", nargs="*", help="score only these subtasks")
        parser.add_argument("--present-only", action="store_true",
                            help="score the subtask files present instead of requiring all 14")

    def run(self, args: argparse.Namespace) -> int:
        from benchmarks.mme.rescore import format_summary, rescore_folder

        summary = rescore_folder(args.folder, subtasks=args.subtasks or None, present_only=args.present_only)
        print(format_summary(summary))
        print(json.dumps({"perception": summary["perception"], "cognition": summary["cognition"],
                          "subtasks": summary["subtasks"]}))
        return 0
