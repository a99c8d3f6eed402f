"""``harness rescore imgedit``, and ImgEdit result files on the leaderboard."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.imgedit.benchmark import BENCHMARK_NAME
from harness.commands import Rescorer
from harness.registry import register


@register("rescore", BENCHMARK_NAME)
class ImgEditRescorer(Rescorer):
    help = "the judge's result.json ({key: reply})"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("result", type=Path)
        parser.add_argument("--edits", type=Path, required=True, help="basic_edit.json")
        parser.add_argument("--strict", action="store_true",
                            help="stop at the first failed judge call, as the official script does")

    def run(self, args: argparse.Namespace) -> int:
        from benchmarks.imgedit.rescore import format_summary, rescore_results

        summary = rescore_results(args.result, args.edits, strict=args.strict)
        print(format_summary(summary))
        print(json.dumps({"overall": summary["overall"], "types": summary["types"]}))
        return 0
