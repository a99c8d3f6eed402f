"""``harness rescore imgedit``, and ImgEdit result files on the leaderboard."""
from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.imgedit.benchmark import BENCHMARK_NAME
from benchmarks.imgedit.data import EDIT_TYPES
from harness.commands import Rescored, Rescorer, claims_paired, paired_source
from harness.registry import register


@register("rescore", BENCHMARK_NAME)
class ImgEditRescorer(Rescorer):
    """the judge's result.json ({key: reply})"""

    source_help = f"{BENCHMARK_NAME}:RESULT_JSON:EDITS_JSON"
    strict_help = ("stop at the first failed judge call, as the official script does, and refuse a key "
                   "given twice (default: the last value, as json.load, with a warning)")
    printed = ("overall", "types")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("result", type=Path)
        parser.add_argument("--edits", type=Path, required=True, help="basic_edit.json")

    def rescore(self, args: argparse.Namespace) -> dict:
        from benchmarks.imgedit.rescore import rescore_results

        return rescore_results(args.result, args.edits, strict=args.strict)

    def describe(self, summary: dict, args: argparse.Namespace) -> str:
        from benchmarks.imgedit.rescore import format_summary

        return format_summary(summary)

    def claims(self, source: str) -> bool:
        """``imgedit:RESULT_JSON:EDITS_JSON``; a JSON file alone is an error asking for its edit list."""
        return claims_paired(source, BENCHMARK_NAME, ".json",
                             "an ImgEdit result file needs its edit list (basic_edit.json)", self.source_help)

    def leaderboard_entry(self, source: str) -> Rescored:
        """The overall score; edit types without a score are departures (the judge is not recorded)."""
        from benchmarks.imgedit.rescore import rescore_results

        result, edits = paired_source(source, BENCHMARK_NAME)
        summary = rescore_results(result, edits)
        departures = []
        if summary["types_scored"] < len(EDIT_TYPES):
            absent = [name for name in EDIT_TYPES if name not in summary["types"]]
            departures.append(f"{summary['types_scored']} of {len(EDIT_TYPES)} edit types scored "
                              f"(none: {', '.join(absent)})")
        notes = [f"{summary['scored']} items scored; judge not recorded in result.json (compare only "
                 "with numbers from the same judge)"]
        if summary["judge_failed"]:
            notes.append(f"{summary['judge_failed']} judge failure(s) excluded")
        notes += summary["warnings"]
        return Rescored.from_files([result, edits], {"overall": (summary["overall"], tuple(departures))}, notes)
