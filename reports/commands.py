"""``harness report``, ``harness leaderboard`` and ``harness compare``."""
from __future__ import annotations

import argparse
from pathlib import Path

from harness.commands import Command
from harness.errors import HarnessError
from harness.registry import register


@register("command", "report")
class ReportCommand(Command, order=50):
    """Markdown + HTML report of finished runs, or a comparison

    harness report RUN [RUN ...]  Markdown + HTML report of finished runs [--baseline RUN|published:NAME]
    """

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("runs", nargs="+", type=Path, help="run folders (or folders of runs)")
        parser.add_argument("--baseline", help="compare with these runs: a run folder (or folder of runs) "
                            "or published:NAME (see `harness leaderboard --all-published`)")
        parser.add_argument("--out", type=Path, help="folder for report.md / report.html (default: first run)")
        parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")

    def run(self, args: argparse.Namespace) -> int:
        out = args.out or args.runs[0]
        if args.baseline:
            from reports.baselines import parse_baseline
            from reports.compare_html import write_comparison

            parsed = parse_baseline(args.baseline)
            baseline = [parsed] if isinstance(parsed, Path) else parsed  # a published entry stays one
            paths = write_comparison(args.runs, baseline, out, seed=args.seed)
        else:
            from reports.run_report import write_report

            paths = write_report(args.runs, out)
        for path in paths:
            print(path)
        return 0


@register("command", "leaderboard")
class LeaderboardCommand(Command, order=60):
    """a leaderboard from runs, official result files and published numbers (Markdown, HTML, CSV)

    harness leaderboard SOURCES --out  leaderboard (Markdown, HTML, CSV) with provenance
    """

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("sources", nargs="*", help="run folders, and official result files as "
                            "`harness rescore BENCHMARK` reads them (a pair of files as BENCHMARK:FILE:FILE)")
        parser.add_argument("--published", nargs="*", default=[], metavar="NAME", help="published entries to add")
        parser.add_argument("--all-published", action="store_true", help="add every published entry")
        parser.add_argument("--out", type=Path, required=True)

    def run(self, args: argparse.Namespace) -> int:
        from reports.baselines import published_names
        from reports.leaderboard import build_leaderboard, write_leaderboard

        published = published_names() if args.all_published else args.published
        if not args.sources and not published:
            raise HarnessError("nothing to rank: give run folders or result files, or --published / "
                               "--all-published")
        for path in write_leaderboard(build_leaderboard(args.sources, published), args.out):
            print(path)
        return 0


@register("command", "compare")
class CompareCommand(Command, order=70):
    """compare two runs (or folders of runs); --gate for CI

    harness compare A B --gate  non-inferiority gate for CI (exit 1 on a regression)
    """

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("candidate", type=Path)
        parser.add_argument("baseline", type=Path)
        parser.add_argument("--gate", action="store_true", help="non-inferiority check: exit 1 on a regression")
        parser.add_argument("--margin", action="append", default=[], metavar="BENCH=VALUE",
                            help="largest tolerated drop, in the benchmark's headline units (e.g. BENCH=0.03)")
        parser.add_argument("--alpha", type=float, help="one-sided level (default 0.05)")
        parser.add_argument("--config", type=Path, help="YAML with margins, alpha, n_boot, seed")
        parser.add_argument("--out", type=Path, help="also write the comparison report here")

    def run(self, args: argparse.Namespace) -> int:
        from reports.gate import compare_runs, config_from_options

        config = config_from_options(args.margin, alpha=args.alpha, config_file=args.config)
        report = compare_runs(args.candidate, args.baseline, config)  # the verdict first, whatever follows
        print(report.text())
        if args.out:
            from reports.compare_html import write_comparison

            for path in write_comparison([args.candidate], [args.baseline], args.out, n_boot=config.n_boot,
                                         seed=config.seed):
                print(path)
        return 1 if args.gate and not report.passed else 0
