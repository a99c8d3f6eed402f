"""``harness rescore geneval``, and GenEval's results files on the leaderboard."""
from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.geneval.benchmark import BENCHMARK_NAME, GenEval
from benchmarks.geneval.data import TAGS
from harness.commands import Rescored, Rescorer, key_values
from harness.errors import HarnessError
from harness.registry import register


@register("rescore", BENCHMARK_NAME)
class GenEvalRescorer(Rescorer):
    """results.jsonl, or a detections file with --from-detections"""

    source_help = "GenEval results.jsonl"
    strict_help = ('refuse rows with "correct": null instead of skipping them with a warning, as '
                   "summary_scores.py skips them")
    printed = ("overall", "tasks", "images", "prompts")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument("--from-detections", action="store_true",
                            help="PATH is a detections file (one JSON line per image); apply the rules")
        parser.add_argument("--metadata", type=Path, help="evaluation_metadata.jsonl (default: packaged)")
        parser.add_argument("--options", nargs="*", default=[], metavar="KEY=VALUE",
                            help="official evaluator options, e.g. threshold=0.3")
        parser.add_argument("--write-results", type=Path, help="also write the scored results.jsonl here")

    def rescore(self, args: argparse.Namespace) -> dict:
        from benchmarks.geneval import results_io
        from benchmarks.geneval.rescore import rescore_detections, rescore_results
        from benchmarks.geneval.rules import GenEvalOptions

        if not args.from_detections:
            if args.options or args.metadata:
                raise HarnessError("--options and --metadata apply only with --from-detections")
            return rescore_results(args.path, strict=args.strict)
        options = GenEvalOptions.from_options(key_values(args.options))
        rows, summary = rescore_detections(args.path, metadata_path=args.metadata, options=options)
        if args.write_results:
            if args.write_results.is_dir():
                raise HarnessError(f"--write-results {args.write_results} is a folder; give a file path")
            results_io.write_results(rows, args.write_results)
        return summary

    def describe(self, summary: dict, args: argparse.Namespace) -> str:
        from benchmarks.geneval.aggregate import format_summary

        return format_summary(summary)

    def claims(self, source: str) -> bool:
        return Path(source).name.lower().endswith(".jsonl") and Path(source).is_file()

    def leaderboard_entry(self, source: str) -> Rescored:
        """The overall score; fewer prompts than the official set, or absent tags, are departures."""
        from benchmarks.geneval.rescore import rescore_results

        path = Path(source)
        summary = rescore_results(path)
        departures = []
        if summary["prompts"] != GenEval.official_items:
            departures.append(f"{summary['prompts']} prompts (the official set has {GenEval.official_items})")
        absent = [tag for tag in TAGS if tag not in summary["tasks"]]
        if absent:
            departures.append(f"tags absent: {', '.join(absent)}")
        return Rescored.from_files([path], {"overall": (summary["overall"], tuple(departures))},
                                   [f"{summary['images']} images, {summary['prompts']} prompts",
                                    *summary.get("warnings", [])])
