"""``harness rescore mmbench``, and MMBench prediction files on the leaderboard."""
from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.mmbench.benchmark import BENCHMARK_NAME
from harness.commands import Rescored, Rescorer
from harness.errors import HarnessError
from harness.registry import register


@register("rescore", BENCHMARK_NAME)
class MMBenchRescorer(Rescorer):
    """a predictions file (tsv, csv or xlsx) in VLMEvalKit format"""

    source_help = "MMBench predictions .tsv/.csv/.xlsx"
    strict_help = ("refuse what upstream accepts with a warning (an index given twice, rows without a main "
                   "row) instead of scoring it as upstream does")
    printed = ("overall", "l2", "l3")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument("--data", type=Path, help="the MMBench TSV, to take answers and categories from "
                            "(needed for LLaVA submission files)")
        parser.add_argument("--rule-version", default=None, help="answer-extraction rules (default: current)")
        parser.add_argument("--judge-url", help="OpenAI-compatible base URL of the LLM choice extractor "
                            "(default: exact matching, no judge)")
        parser.add_argument("--judge-model", help="judge model snapshot, e.g. gpt-4o-mini-2024-07-18")
        parser.add_argument("--judge-key-env", default="OPENAI_API_KEY", help="environment variable with the key")
        parser.add_argument("--allow-alias", action="store_true", help="accept an undated judge model name")
        parser.add_argument("--judge-fallback", choices=["seeded", "fail"], default="seeded")
        parser.add_argument("--seed", type=int, default=0, help="seed of the flagged fallback choice")
        parser.add_argument("--lenient-cells", action="store_true",
                            help="read every cell as its text instead of with pandas' default types (not "
                                 "the official reading: upstream reads a numeric option column with a blank "
                                 "as floats, '4' as '4.0')")

    def rescore(self, args: argparse.Namespace) -> dict:
        from benchmarks.mmbench.extract import DEFAULT_RULE_VERSION
        from benchmarks.mmbench.rescore import rescore_predictions

        judge = None
        if args.judge_url or args.judge_model:
            if not (args.judge_url and args.judge_model):
                raise HarnessError("--judge-url and --judge-model go together")
            from harness.judges.chat import OpenAIChatJudge

            judge = OpenAIChatJudge(base_url=args.judge_url, model=args.judge_model,
                                    api_key_env=args.judge_key_env, allow_alias=args.allow_alias)
        return rescore_predictions(args.path, judge=judge, rule_version=args.rule_version or DEFAULT_RULE_VERSION,
                                   judge_fallback=args.judge_fallback, seed=args.seed, data=args.data,
                                   strict=args.strict, cells="text" if args.lenient_cells else "pandas")

    def describe(self, summary: dict, args: argparse.Namespace) -> str:
        from benchmarks.mmbench.rescore import format_summary

        if summary["overall"] is None:  # every question has a judge failure: there is no number to print
            counts = summary["counts"]
            raise HarnessError(f"{args.path}: no question could be scored: {counts.get('judge_failed', 0)} of "
                               f"{counts.get('questions', 0)} question(s) have a judge failure (see the judge's "
                               "errors; run again when it answers)")
        return format_summary(summary)

    def claims(self, source: str) -> bool:
        return Path(source).name.lower().endswith((".tsv", ".csv", ".xlsx")) and Path(source).is_file()

    def leaderboard_entry(self, source: str) -> Rescored:
        """CircularEval accuracy by exact matching: never the official (ChatGPT-extracted) setup."""
        from benchmarks.mmbench.rescore import rescore_predictions

        path = Path(source)
        summary = rescore_predictions(path)
        departures = ["choice extraction by rules only (published numbers used a ChatGPT extractor; "
                      "exact matching is a lower bound)"]
        if "splits" in summary:
            departures.append(f"overall pools several splits ({', '.join(summary['splits'])})")
        return Rescored.from_files([path], {"overall": (summary["overall"], tuple(departures))},
                                   [f"{summary['counts'].get('questions', 0)} questions", *summary["warnings"]])
