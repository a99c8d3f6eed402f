"""``harness rescore gedit``, and GEdit-Bench result files on the leaderboard."""
from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.gedit.benchmark import BENCHMARK_NAME
from benchmarks.gedit.data import TASK_TYPES
from benchmarks.gedit.results import REPLIES_FILE
from harness.commands import Rescored, Rescorer
from harness.errors import InputError
from harness.registry import register


@register("rescore", BENCHMARK_NAME)
class GEditRescorer(Rescorer):
    """GEdit-Bench score CSVs (<model>/<backbone>/eval_results_new, or the combined CSV) or the harness's
    vie_replies.jsonl"""

    source_help = f"{BENCHMARK_NAME}:RESULTS (eval_results_new folder, combined CSV or {REPLIES_FILE})"
    printed = ("overall", "semantics", "quality", "types", "intersection")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("results", type=Path,
                            help="the eval_results_new folder (or the folder above it), a combined CSV, "
                                 f"or the harness's {REPLIES_FILE}")
        parser.add_argument("--language", choices=("en", "cn"), default=None,
                            help="instruction language to average (default: en; replies: the file's)")
        parser.add_argument("--model", default=None, help="the <model> prefix of the CSV names (default: the only one)")

    def rescore(self, args: argparse.Namespace) -> dict:
        from benchmarks.gedit.rescore import rescore

        return rescore(args.results, args.language, args.model)

    def describe(self, summary: dict, args: argparse.Namespace) -> str:
        from benchmarks.gedit.rescore import format_summary

        return format_summary(summary)

    def claims(self, source: str) -> bool:
        """``gedit:PATH``, an ``eval_results_new`` folder, a ``*_combined_gpt_score.csv`` or a
        ``vie_replies.jsonl``."""
        if source.startswith(f"{BENCHMARK_NAME}:"):
            return True
        path = Path(source)
        return ((path.is_dir() and path.name == "eval_results_new" and any(path.glob("*_gpt_score.csv")))
                or (path.is_file() and (path.name.endswith("_combined_gpt_score.csv") or path.name == REPLIES_FILE)))

    def leaderboard_entry(self, source: str) -> Rescored:
        from benchmarks.gedit.rescore import rescore

        path = Path(source.removeprefix(f"{BENCHMARK_NAME}:"))
        if not path.exists():
            raise InputError("GEdit-Bench results not found", path)
        summary = rescore(path)
        departures = []
        if summary["types_scored"] < len(TASK_TYPES):
            absent = [name for name in TASK_TYPES if name not in summary["types"]]
            departures.append(f"{summary['types_scored']} of {len(TASK_TYPES)} edit types scored "
                              f"(none: {', '.join(absent)})")
        if summary["language"] != "en":
            departures.append(f"language {summary['language']}")
        judge = path.parent.name if path.name == "eval_results_new" else "not recorded"
        notes = [f"{summary['scored']} items scored; judge backbone {judge} (compare only with numbers from the "
                 "same judge snapshot)"]
        if summary["judge_failed"]:
            notes.append(f"{summary['judge_failed']} judge failure(s) excluded")
        value = tuple(departures)
        return Rescored.from_files([path], {"overall": (summary["overall"], value),
                                           "semantics": (summary["semantics"], value),
                                           "quality": (summary["quality"], value)}, notes)
