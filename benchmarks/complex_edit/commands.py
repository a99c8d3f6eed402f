"""``harness rescore complex_edit``, and Complex-Edit result folders on the leaderboard."""
from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.complex_edit.benchmark import BENCHMARK_NAME, PUBLISHED_SETUP
from benchmarks.complex_edit.results import ALIGNMENT_FOLDER, QUALITY_FOLDER, REPLIES_FILE
from harness.commands import Rescored, Rescorer
from harness.errors import InputError
from harness.registry import register


@register("rescore", BENCHMARK_NAME)
class ComplexEditRescorer(Rescorer):
    """eval.py output folders (alignment_rubric_cot/, quality_rubric/), one per level, or the harness's
    judge_replies.jsonl"""

    source_help = f"{BENCHMARK_NAME}:FOLDER (an eval.py output folder)"
    printed = ("overall", "metrics", "levels")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("results", type=Path, nargs="+",
                            help=f"eval.py output folders (complexity_8_real, ...) or the harness's {REPLIES_FILE}")
        parser.add_argument("--call-size", type=int, default=None,
                            help="replies: replay them as eval.py asks, this many per call (its -m, 5), with the "
                                 "OpenAI SDK's handling of empty replies (default: one per call, as the harness asks)")

    def rescore(self, args: argparse.Namespace) -> dict:
        from benchmarks.complex_edit.rescore import rescore, summary_line

        summaries = rescore(args.results, args.call_size)
        return {**summary_line(summaries), "summaries": summaries,
                "warnings": [note for summary in summaries for note in summary.get("notes", [])]}

    def describe(self, summary: dict, args: argparse.Namespace) -> str:
        from benchmarks.complex_edit.rescore import format_summary

        return format_summary(summary["summaries"])

    def claims(self, source: str) -> bool:
        if source.startswith(f"{BENCHMARK_NAME}:"):
            return True
        path = Path(source)
        return path.is_dir() and (path / ALIGNMENT_FOLDER).is_dir() and (path / QUALITY_FOLDER).is_dir()

    def leaderboard_entry(self, source: str) -> Rescored:
        from benchmarks.complex_edit.rescore import rescore_folder

        path = Path(source.removeprefix(f"{BENCHMARK_NAME}:"))
        if not path.is_dir():
            raise InputError("Complex-Edit output folder not found", path)
        summary = rescore_folder(path)
        departures = []
        if (summary["level"], summary["image_type"]) != PUBLISHED_SETUP:
            departures.append(f"{summary['label']}: not C{PUBLISHED_SETUP[0]} {PUBLISHED_SETUP[1]} "
                              "(or the folder name does not say)")
        notes = [f"{summary['items']} items; judge not recorded in the files (compare only with numbers from the "
                 "same judge snapshot and measurement count)"]
        if summary["missing"]:
            notes.append(f"{len(summary['missing'])} sample(s) with one result file only, left out")
        return Rescored.from_files([path / ALIGNMENT_FOLDER, path / QUALITY_FOLDER],
                                   {"overall": (summary["overall"], tuple(departures))}, notes)
