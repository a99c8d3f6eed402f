"""The ``harness`` command line.

    harness demo                       the shapes pipeline: data, tokenizer, a tiny Janus trained on CPU,
                                       all five benchmarks trained vs untrained, report (~9 min)
    harness demo --tour                the five benchmarks in a minute: untrained tiny Janus vs oracles
    harness eval SPEC.yaml --out RUN   run (or resume) a spec; works under torchrun
    harness synth RECIPE.yaml          run (or resume) a data recipe; prints the dataset folder last
    harness run PIPELINE.yaml          run a pipeline (synth, train, eval, report); skips finished stages
    harness rescore geneval FILE       official numbers from a results.jsonl or a detections file
    harness rescore mme FOLDER         official numbers from MME per-subtask answer files
    harness rescore mmbench FILE       official numbers from an MMBench predictions file
    harness rescore dpg DETAIL --csv   official numbers from a DPG-Bench *_detail.txt
    harness rescore imgedit RESULT     official numbers from an ImgEdit result.json
    harness shapes-data KIND OUT       write shapes-world data in an official layout (mme, mmbench)
    harness report RUN [RUN ...]       Markdown + HTML report of finished runs [--baseline RUN|published:NAME]
    harness leaderboard SOURCES --out  leaderboard (Markdown, HTML, CSV) with provenance
    harness compare A B --gate         non-inferiority gate for CI (exit 1 on a regression)
    harness plugins                    list registered plugins
    harness tiny-janus DIR             build a tiny random Janus checkpoint (for trying things out)

Errors in user input print one line naming the file (and line) and exit with status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import yaml

from harness.errors import HarnessError
from harness.registry import UnknownPluginError


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        return args.handler(args) or 0
    except (HarnessError, UnknownPluginError) as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("harness: interrupted; finished work is cached, run the same command again to resume",
              file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Evaluate image models on GenEval, DPG-Bench, ImgEdit-Bench, MME and MMBench with the "
                    "official protocols; compare, rank and gate the results.",
        epilog="Start with `harness demo --tour` (offline, about a minute), then `harness demo` (~9 min on 2 cores). Docs: README.md and docs/.")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    demo = commands.add_parser("demo", help="the shapes pipeline: data, tokenizer, tiny Janus trained and "
                               "untrained on all five benchmarks, report (offline, ~9 min on 2 cores)")
    demo.add_argument("--out", type=Path, help="output folder (default: harness-demo; the tour: harness-tour)")
    demo.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="override a field of examples/shapes-pipeline.yaml, e.g. --set stages.trained.params.epochs=2")
    demo.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    demo.add_argument("--tour", action="store_true",
                      help="instead: a one-minute tour of the five benchmarks, an untrained tiny Janus against "
                           "procedural models that get everything right (the size flags below apply)")
    demo.add_argument("--per-tag", type=int, default=8, help="tour: GenEval shapes prompts per tag")
    demo.add_argument("--images-per-prompt", type=int, default=4, help="tour")
    demo.add_argument("--mme-images", type=int, default=10, help="tour: MME shapes images per subtask")
    demo.add_argument("--mmbench-questions", type=int, default=40, help="tour")
    demo.add_argument("--dpg-items", type=int, default=12, help="tour: DPG shapes dense prompts (4 tiles each)")
    demo.add_argument("--imgedit-items", type=int, default=18, help="tour: ImgEdit shapes edits")
    demo.add_argument("--seed", type=int, default=0, help="tour")
    demo.add_argument("--no-progress", action="store_true")
    demo.set_defaults(handler=_demo)

    run = commands.add_parser("eval", help="run or resume a run spec (YAML)")
    run.add_argument("spec", type=Path)
    run.add_argument("--out", type=Path, required=True, help="run folder (resumes if it exists)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a spec field, e.g. --set model.params.cfg_weight=3")
    run.add_argument("--cache", type=Path, help="cache folder shared between runs (default: RUN/cache); "
                     "runs that differ only in their judges then re-run only the judging")
    run.add_argument("--max-judge-failure-rate", type=float, default=0.5, metavar="RATE",
                     help="stop when more than this share of judged samples failed, after at least "
                     "20 (default: %(default)s; verdicts already given are kept)")
    run.add_argument("--no-progress", action="store_true")
    run.set_defaults(handler=_eval)

    synth = commands.add_parser("synth", help="run or resume a data recipe (YAML); prints the dataset folder")
    synth.add_argument("recipe", type=Path)
    synth.add_argument("--out", type=Path, help="dataset folder (default: datasets/<name>-<recipe hash>)")
    synth.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a recipe field, e.g. --set steps.0.params.count=10")
    synth.add_argument("--cache", type=Path, help="call and step cache shared between recipes "
                       "(default: DATASET/cache); recipes that share steps then pay for them once")
    synth.add_argument("--no-progress", action="store_true")
    synth.set_defaults(handler=_synth)

    pipeline = commands.add_parser("run", help="run a pipeline (YAML): synth, train, eval, report, skipping "
                                   "stages whose artifacts exist; prints the report path last")
    pipeline.add_argument("pipeline", type=Path)
    pipeline.add_argument("--out", type=Path, help="output folder (default: the pipeline's out, else "
                          "pipelines/<name>)")
    pipeline.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                          help="override a pipeline field, e.g. --set stages.train.params.epochs=1")
    pipeline.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    pipeline.add_argument("--no-progress", action="store_true")
    pipeline.set_defaults(handler=_run_pipeline)

    rescore = commands.add_parser("rescore", help="official numbers from official result files")
    targets = rescore.add_subparsers(title="benchmarks", metavar="BENCHMARK")
    geneval = targets.add_parser("geneval", help="results.jsonl, or a detections file with --from-detections")
    geneval.add_argument("path", type=Path)
    geneval.add_argument("--from-detections", action="store_true",
                         help="PATH is a detections file (one JSON line per image); apply the rules")
    geneval.add_argument("--metadata", type=Path, help="evaluation_metadata.jsonl (default: packaged)")
    geneval.add_argument("--options", nargs="*", default=[], metavar="KEY=VALUE",
                         help="official evaluator options, e.g. threshold=0.3")
    geneval.add_argument("--write-results", type=Path, help="also write the scored results.jsonl here")
    geneval.set_defaults(handler=_rescore_geneval)

    mme = targets.add_parser("mme", help="a folder of per-subtask answer files (image, question, GT, answer)")
    mme.add_argument("folder", type=Path)
    mme.add_argument("--subtasks", nargs="*", help="score only these subtasks")
    mme.add_argument("--present-only", action="store_true",
                     help="score the subtask files present instead of requiring all 14")
    mme.set_defaults(handler=_rescore_mme)

    mmbench = targets.add_parser("mmbench", help="a predictions file (tsv, csv or xlsx) in VLMEvalKit format")
    mmbench.add_argument("path", type=Path)
    mmbench.add_argument("--data", type=Path, help="the MMBench TSV, to take answers and categories from "
                         "(needed for LLaVA submission files)")
    mmbench.add_argument("--rule-version", default=None, help="answer-extraction rules (default: current)")
    mmbench.add_argument("--judge-url", help="OpenAI-compatible base URL of the LLM choice extractor "
                         "(default: exact matching, no judge)")
    mmbench.add_argument("--judge-model", help="judge model snapshot, e.g. gpt-4o-mini-2024-07-18")
    mmbench.add_argument("--judge-key-env", default="OPENAI_API_KEY", help="environment variable with the key")
    mmbench.add_argument("--allow-alias", action="store_true", help="accept an undated judge model name")
    mmbench.add_argument("--judge-fallback", choices=["seeded", "fail"], default="seeded")
    mmbench.add_argument("--seed", type=int, default=0, help="seed of the flagged fallback choice")
    mmbench.set_defaults(handler=_rescore_mmbench)

    dpg = targets.add_parser("dpg", help="an official *_detail.txt (answers per image, tile, question)")
    dpg.add_argument("detail", type=Path)
    dpg.add_argument("--csv", type=Path, required=True, help="the question graph, dpg_bench.csv")
    dpg.add_argument("--mode", choices=["official", "fixed"], default="official",
                     help="official reproduces the upstream quirks; fixed corrects them (not comparable)")
    dpg.add_argument("--pic-num", type=int, help="tiles per image to score (default: as many as the file holds)")
    dpg.add_argument("--items", type=Path, help="fixed mode: a file of the item ids that should have images "
                     "(one per line; a run writes dpg_items.txt); absent ones score 0 (default: every CSV item)")
    dpg.set_defaults(handler=_rescore_dpg)

    imgedit = targets.add_parser("imgedit", help="the judge's result.json ({key: reply})")
    imgedit.add_argument("result", type=Path)
    imgedit.add_argument("--edits", type=Path, required=True, help="basic_edit.json")
    imgedit.add_argument("--strict", action="store_true",
                         help="stop at the first failed judge call, as the official script does")
    imgedit.set_defaults(handler=_rescore_imgedit)

    report = commands.add_parser("report", help="Markdown + HTML report of finished runs, or a comparison")
    report.add_argument("runs", nargs="+", type=Path, help="run folders (or folders of runs)")
    report.add_argument("--baseline", help="compare with these runs: a run folder (or folder of runs) "
                        "or published:NAME (see `harness leaderboard --all-published`)")
    report.add_argument("--out", type=Path, help="folder for report.md / report.html (default: first run)")
    report.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    report.set_defaults(handler=_report)

    board = commands.add_parser("leaderboard", help="a leaderboard from runs, official result files and "
                                "published numbers (Markdown, HTML, CSV)")
    board.add_argument("sources", nargs="*", help="run folders, official result files, dpg:DETAIL:CSV, "
                       "imgedit:RESULT:EDITS")
    board.add_argument("--published", nargs="*", default=[], metavar="NAME", help="published entries to add")
    board.add_argument("--all-published", action="store_true", help="add every published entry")
    board.add_argument("--out", type=Path, required=True)
    board.set_defaults(handler=_leaderboard)

    compare = commands.add_parser("compare", help="compare two runs (or folders of runs); --gate for CI")
    compare.add_argument("candidate", type=Path)
    compare.add_argument("baseline", type=Path)
    compare.add_argument("--gate", action="store_true", help="non-inferiority check: exit 1 on a regression")
    compare.add_argument("--margin", action="append", default=[], metavar="BENCH=VALUE",
                         help="largest tolerated drop, in the benchmark's headline units (e.g. geneval=0.03)")
    compare.add_argument("--alpha", type=float, help="one-sided level (default 0.05)")
    compare.add_argument("--config", type=Path, help="YAML with margins, alpha, n_boot, seed")
    compare.add_argument("--out", type=Path, help="also write the comparison report here")
    compare.set_defaults(handler=_compare)

    shapes = commands.add_parser("shapes-data", help="write shapes-world data in an official layout")
    shapes.add_argument("kind", choices=["mme", "mmbench"])
    shapes.add_argument("out", type=Path, help="folder (mme) or .tsv file (mmbench)")
    shapes.add_argument("--items", type=int, default=10, help="images per MME subtask, or MMBench questions")
    shapes.add_argument("--size", type=int, default=128, help="image side in pixels")
    shapes.add_argument("--seed", type=int, default=0)
    shapes.add_argument("--legacy", action="store_true", help="mmbench: the legacy TSV layout")
    shapes.set_defaults(handler=_shapes_data)

    plugins = commands.add_parser("plugins", help="list registered plugins")
    plugins.set_defaults(handler=_plugins)

    tiny = commands.add_parser("tiny-janus", help="build a tiny randomly initialised Janus checkpoint")
    tiny.add_argument("path", type=Path)
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(handler=_tiny_janus)
    return parser


def _parse_overrides(items: Sequence[str]) -> dict:
    overrides = {}
    for item in items:
        if "=" not in item:
            raise HarnessError(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        overrides[key] = yaml.safe_load(value)  # numbers, booleans and lists parse as such
    return overrides


def _eval(args: argparse.Namespace) -> int:
    from harness.runner import evaluate
    from harness.spec import RunSpec

    spec = RunSpec.load(args.spec)
    if args.set:
        spec = spec.with_overrides(_parse_overrides(args.set))
    if not 0 <= args.max_judge_failure_rate <= 1:
        raise HarnessError(f"--max-judge-failure-rate must be between 0 and 1, got {args.max_judge_failure_rate}")
    outcome = evaluate(spec, args.out, cache_dir=args.cache, show_progress=not args.no_progress,
                       max_judge_failure_rate=args.max_judge_failure_rate)
    if outcome.summary is not None:
        print(json.dumps({"run": str(args.out), "scores": outcome.summary.scores,
                          "counts": outcome.summary.counts}))
    return 0


def _synth(args: argparse.Namespace) -> int:
    from harness.recipe import RecipeSpec
    from harness.synth import synthesize

    recipe = RecipeSpec.load(args.recipe)
    if args.set:
        recipe = recipe.with_overrides(_parse_overrides(args.set))
    outcome = synthesize(recipe, args.out, cache_dir=args.cache, show_progress=not args.no_progress)
    info = outcome.artifact.info
    state = "already complete" if outcome.skipped else f"{info.get('seconds', 0):.1f} s"
    print(f"{info.get('rows', 0)} rows, {info.get('dropped', 0)} dropped, {info.get('failed', 0)} failed; "
          f"cost ${info.get('cost_usd', 0):.4f}; dataset {outcome.artifact.hash} ({state})", file=sys.stderr)
    if info.get("failed"):
        print(f"harness: {info['failed']} rows failed (see {outcome.folder / 'failures.jsonl'}); run the same "
              f"command again to retry them", file=sys.stderr)
    print(outcome.folder)
    return 0


def _run_pipeline(args: argparse.Namespace) -> int:
    from harness.pipeline import PipelineSpec

    outcome = _execute_pipeline(PipelineSpec.load(args.pipeline), args)
    print(outcome.report or outcome.results[list(outcome.results)[-1]].target)
    return 0


def _execute_pipeline(spec, args: argparse.Namespace):
    """Run ``spec`` with the shared flags (--out, --set, --threads, --no-progress)."""
    from harness.pipeline import run_pipeline

    if args.threads is not None:
        if args.threads < 1:
            raise HarnessError(f"--threads must be at least 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    from transformers.utils import logging as transformers_logging

    bars = transformers_logging.is_progress_bar_enabled()
    if args.no_progress:  # transformers' own bars too (loading and saving checkpoints)
        transformers_logging.disable_progress_bar()
    try:
        outcome = run_pipeline(spec, args.out, _parse_overrides(args.set), show_progress=not args.no_progress,
                               echo=lambda line: print(line, flush=True))
    finally:
        if bars:
            transformers_logging.enable_progress_bar()
    print(f"pipeline {spec.name}: {len(outcome.results)} stages, {len(outcome.skipped)} skipped, "
          f"{outcome.seconds:.1f} s; record {outcome.out / 'pipeline.json'}", file=sys.stderr)
    return outcome


def _rescore_geneval(args: argparse.Namespace) -> int:
    from benchmarks.geneval import aggregate, results_io
    from benchmarks.geneval.rescore import rescore_detections, rescore_results
    from benchmarks.geneval.rules import GenEvalOptions

    if args.from_detections:
        options = GenEvalOptions.from_options(_key_values(args.options))
        rows, summary = rescore_detections(args.path, metadata_path=args.metadata, options=options)
        if args.write_results:
            if args.write_results.is_dir():
                raise HarnessError(f"--write-results {args.write_results} is a folder; give a file path")
            results_io.write_results(rows, args.write_results)
    else:
        if args.options or args.metadata:
            raise HarnessError("--options and --metadata apply only with --from-detections")
        summary = rescore_results(args.path)
    print(aggregate.format_summary(summary))
    print(json.dumps({"overall": summary["overall"], "tasks": summary["tasks"],
                      "images": summary["images"], "prompts": summary["prompts"]}))
    return 0


def _rescore_mme(args: argparse.Namespace) -> int:
    from benchmarks.mme.rescore import format_summary, rescore_folder

    summary = rescore_folder(args.folder, subtasks=args.subtasks or None, present_only=args.present_only)
    print(format_summary(summary))
    print(json.dumps({"perception": summary["perception"], "cognition": summary["cognition"],
                      "subtasks": summary["subtasks"]}))
    return 0


def _rescore_mmbench(args: argparse.Namespace) -> int:
    from benchmarks.mmbench.extract import DEFAULT_RULE_VERSION
    from benchmarks.mmbench.rescore import format_summary, rescore_predictions

    judge = None
    if args.judge_url or args.judge_model:
        if not (args.judge_url and args.judge_model):
            raise HarnessError("--judge-url and --judge-model go together")
        from harness.judges.chat import OpenAIChatJudge

        judge = OpenAIChatJudge(base_url=args.judge_url, model=args.judge_model,
                                api_key_env=args.judge_key_env, allow_alias=args.allow_alias)
    summary = rescore_predictions(args.path, judge=judge, rule_version=args.rule_version or DEFAULT_RULE_VERSION,
                                  judge_fallback=args.judge_fallback, seed=args.seed, data=args.data)
    print(format_summary(summary))
    print(json.dumps({"overall": summary["overall"], "l2": summary["l2"], "l3": summary["l3"]}))
    return 0


def _rescore_dpg(args: argparse.Namespace) -> int:
    from benchmarks.dpg.rescore import format_summary, rescore_detail

    expected = None
    if args.items:
        if not args.items.is_file():
            raise HarnessError(f"--items {args.items}: file not found")
        expected = [line.strip() for line in args.items.read_text(encoding="utf-8").splitlines() if line.strip()]
    summary = rescore_detail(args.detail, csv=args.csv, mode=args.mode, pic_num=args.pic_num,
                             expected_items=expected)
    print(format_summary(summary))
    print(json.dumps({key: summary[key] for key in ("overall", "l1", "l2", "images")}))
    return 0


def _rescore_imgedit(args: argparse.Namespace) -> int:
    from benchmarks.imgedit.rescore import format_summary, rescore_results

    summary = rescore_results(args.result, args.edits, strict=args.strict)
    print(format_summary(summary))
    print(json.dumps({"overall": summary["overall"], "types": summary["types"]}))
    return 0


def _key_values(items: Sequence[str]) -> dict[str, str]:
    bad = [item for item in items if "=" not in item]
    if bad:
        raise HarnessError(f"--options expects KEY=VALUE, got {bad[0]!r}")
    return dict(item.split("=", 1) for item in items)


def _report(args: argparse.Namespace) -> int:
    out = args.out or args.runs[0]
    if args.baseline:
        from reports.baselines import parse_baseline
        from reports.compare import write_comparison

        paths = write_comparison(args.runs, _baseline(parse_baseline(args.baseline)), out, seed=args.seed)
    else:
        from reports.run_report import write_report

        paths = write_report(args.runs, out)
    for path in paths:
        print(path)
    return 0


def _baseline(parsed):
    """A run baseline is a list of folders; a published one stays an entry."""
    return [parsed] if isinstance(parsed, Path) else parsed


def _leaderboard(args: argparse.Namespace) -> int:
    from reports.baselines import published_names
    from reports.leaderboard import build_leaderboard, write_leaderboard

    published = published_names() if args.all_published else args.published
    if not args.sources and not published:
        raise HarnessError("nothing to rank: give run folders or result files, or --published / --all-published")
    for path in write_leaderboard(build_leaderboard(args.sources, published), args.out):
        print(path)
    return 0


def _compare(args: argparse.Namespace) -> int:
    from reports.gate import compare_runs, config_from_options

    config = config_from_options(args.margin, alpha=args.alpha, config_file=args.config)
    report = compare_runs(args.candidate, args.baseline, config)  # the verdict first, whatever follows
    print(report.text())
    if args.out:
        from reports.compare import write_comparison

        for path in write_comparison([args.candidate], [args.baseline], args.out, n_boot=config.n_boot,
                                     seed=config.seed):
            print(path)
    return 1 if args.gate and not report.passed else 0


def _shapes_data(args: argparse.Namespace) -> int:
    from harness.shapes.understanding import write_mmbench_shapes, write_mme_shapes

    if args.items < 1:
        raise HarnessError(f"--items must be at least 1, got {args.items}")
    if args.kind == "mme":
        print(write_mme_shapes(args.out, per_subtask=args.items, seed=args.seed, size=args.size))
    else:
        print(write_mmbench_shapes(args.out, questions=args.items, seed=args.seed, size=args.size,
                                   legacy=args.legacy))
    return 0


def _plugins(args: argparse.Namespace) -> int:
    from harness import registry

    for kind in registry.KINDS:
        found = registry.names(kind)
        if found:
            print(f"{kind:17} {', '.join(found)}")
    return 0


def _tiny_janus(args: argparse.Namespace) -> int:
    from harness.models.tiny_janus import build_tiny_janus

    if args.path.exists() and not args.path.is_dir():
        raise HarnessError(f"{args.path} exists and is not a folder")
    print(build_tiny_janus(args.path, seed=args.seed))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from harness.demo import DemoSize, demo_pipeline, headline_lines, run_demo

    if not args.tour:
        args.out = args.out or Path("harness-demo")
        outcome = _execute_pipeline(demo_pipeline(), args)
        for line in headline_lines(outcome):
            print(line)
        print(f"report: {outcome.report.with_suffix('.html')}")
        return 0
    if args.set or args.threads is not None:
        raise HarnessError("--set and --threads change the pipeline demo; the tour takes the size flags")
    for flag in ("per_tag", "images_per_prompt", "mme_images", "mmbench_questions", "dpg_items", "imgedit_items"):
        if getattr(args, flag) < 1:
            raise HarnessError(f"--{flag.replace('_', '-')} must be at least 1")
    size = DemoSize(per_tag=args.per_tag, images_per_prompt=args.images_per_prompt,
                    mme_images_per_subtask=args.mme_images, mmbench_questions=args.mmbench_questions,
                    dpg_items=args.dpg_items, imgedit_items=args.imgedit_items)
    report = run_demo(args.out or Path("harness-tour"), size, seed=args.seed, show_progress=not args.no_progress)
    print(f"report: {report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
