"""``harness rescore mmbench``, and MMBench prediction files on the leaderboard."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.mmbench.benchmark import BENCHMARK_NAME
from harness.commands import Rescored, Rescorer
from harness.errors import HarnessError
from harness.registry import register


@register("rescore", BENCHMARK_NAME)
class MMBenchRescorer(Rescorer):
    help = "a predictions file (tsv, csv or xlsx) in VLMEvalKit format"
    source_help = "MMBench predictions .tsv/.csv/.xlsx"

    def configure(self, parser: argparse.ArgumentParser) -> None:
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

    def run(self, args: argparse.Namespace) -> int:
        from benchmarks.mmbench.extract import DEFAULT_RULE_VERSION
        from benchmarks.mmbench.rescore import format_summary, rescore_predictions

        judge = None
        if args.judge_url or args.judge_model:
            if not (args.judge_url and args.judge_model):
                raise HarnessError("--judge-url and --judge-model go together")
            from harness.judges.chat import OpenAIChatJudge

            judge = OpenAIChatJudge(base_url=args.judge_url, model=args.judge_model,
                                    api_key_env=args.judge_key_env, allow_alias=args.allow_alias)
        summary = rescore_predictions(args.path, judge=judge,
                                      rule_version=args.rule_version or DEFAULT_RULE_VERSION,
                                      judge_fallback=args.judge_fallback, seed=args.seed, data=args.data)
        print(format_summary(summary))
        print(json.dumps({"overall": summary["overall"], "l2": summary["l2"], "l3": summary["l3"]}))
        return 0

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
                                   [f"{summary['counts'].get('questions', 0)} questions"])
