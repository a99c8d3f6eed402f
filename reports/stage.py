"""The ``report`` pipeline stage: a candidate label against a baseline label on each benchmark
(``reports.compare``: paired bootstrap CI, the benchmark's paired test), preceded by the lineage of
every earlier stage. With ``others`` (more labels of the same eval stage) it also ranks every model
on every benchmark, tests every pair (``reports.ranking``, Holm over the pairs of a benchmark) and
shows the same items' images side by side."""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Mapping

from harness.artifacts import write_manifest
from harness.errors import HarnessError
from harness.fileio import atomic_write_text
from harness.registry import register
from harness.stage import Ref, Stage, StageContext, StageResult, check_keys, manifest_result, stage_name


@register("stage", "report")
class ReportStage(Stage):
    """Params: ``eval`` (an eval stage), ``candidate`` and ``baseline`` (two of its model labels),
    ``others`` (more of its labels, ranked with those two), ``n_boot`` (bootstrap resamples, default
    2000). Writes report.md and report.html."""

    output = "report"
    version = "3"  # 2: the facts name the candidate and the baseline; 3: the grids show where it beats it
    needs_all_earlier = True  # the lineage table shows every stage

    def check(self, params: Mapping[str, Any]) -> list[Ref]:
        check_keys(params, {"eval", "candidate", "baseline", "others", "n_boot"}, {"eval", "candidate", "baseline"})
        for key in ("candidate", "baseline"):
            if not isinstance(params[key], str):
                raise ValueError(f"{key} must be a model label of the eval stage, got {params[key]!r}")
        others = params.get("others", [])
        if not isinstance(others, list) or not all(isinstance(label, str) for label in others):
            raise ValueError(f"others must be a list of model labels of the eval stage, got {others!r}")
        labels = [params["candidate"], params["baseline"], *others]
        if len(set(labels)) != len(labels):
            raise ValueError(f"candidate, baseline and others must be different labels, got {labels}")
        return [Ref("eval", stage_name(params, "eval"), ("evaluation",))]

    def run(self, params: Mapping[str, Any], inputs: Mapping[str, StageResult], folder: Path,
            ctx: StageContext) -> StageResult:
        from reports.compare import build_sections
        from reports.compare_html import html_page, markdown

        from reports import ranking

        evaluation = inputs[params["eval"]]
        runs: dict[str, dict[str, str]] = evaluation.facts["runs"]
        labels = [params["candidate"], params["baseline"], *params.get("others", [])]
        for label in labels:
            missing = [bench for bench, by_label in runs.items() if label not in by_label]
            if missing:
                raise HarnessError(f"report: the eval stage {params['eval']!r} has no model labelled "
                                   f"{label!r} (on {', '.join(missing)})")
        folders = {bench: {label: evaluation.folder / by_label[label] for label in labels}
                   for bench, by_label in runs.items()}
        n_boot = params.get("n_boot", 2000)
        sections = build_sections([f[params["candidate"]] for f in folders.values()],
                                  [f[params["baseline"]] for f in folders.values()], n_boot=n_boot, seed=ctx.seed)
        lineage = lineage_rows(inputs)
        tests = paired_test_rows(sections)
        folder.mkdir(parents=True, exist_ok=True)
        title = f"Pipeline report: {params['candidate']} vs {params['baseline']}"
        ranked: list = []
        md_ranking: list[str] = []
        html_ranking = ""
        if len(labels) > 2:
            title = f"Pipeline report: {', '.join(labels)}"
            ranked = ranking.rank(folders, labels, n_boot=n_boot, seed=ctx.seed)
            md_ranking = ["## Ranking", "", RANKING_NOTE, "", *md_table(ranking.RANK_HEADER, ranking.ranking_rows(ranked)),
                          "", "Every pair:", "", *md_table(ranking.PAIR_HEADER, ranking.pair_rows(ranked)), ""]
            grids = "".join(f"<h3>{html.escape(bench)}</h3>{grid}" for bench in folders
                            if (grid := ranking.side_by_side(folders[bench], labels,
                                                             prefer=(params["candidate"], params["baseline"]))))
            html_ranking = (f"<h2>Ranking</h2><p class='note'>{html.escape(RANKING_NOTE)}</p>"
                            f"{html_table(ranking.RANK_HEADER, ranking.ranking_rows(ranked))}<h3>Every pair</h3>"
                            f"{html_table(ranking.PAIR_HEADER, ranking.pair_rows(ranked))}"
                            + (f"<h2>The same items, side by side</h2><p class='note'>{html.escape(GRID_NOTE)}</p>"
                               f"{grids}" if grids else ""))
        compared = markdown(sections).replace("# Comparison report", "## Comparison (reports.compare)", 1)
        main_pair = f"{params['candidate']} vs {params['baseline']}"
        atomic_write_text(folder / "report.md", "\n".join([
            f"# {title}", "", "## Lineage", "", "Every stage's artifact (content hash) and the hashes it was made "
            "from; `pipeline.json` in the output folder has the timings.", "",
            *md_table(LINEAGE_HEADER, lineage), "", *md_ranking, f"## Paired tests ({main_pair})", "",
            *md_table(TESTS_HEADER, tests), "", compared]))
        page = html_page(sections)
        extra = (f"<h2>Lineage</h2>{html_table(LINEAGE_HEADER, lineage)}{html_ranking}"
                 f"<h2>Paired tests ({html.escape(main_pair)})</h2>{html_table(TESTS_HEADER, tests)}")
        page = page.replace("<title>Comparison report</title>", f"<title>{html.escape(title)}</title>", 1)
        page = page.replace("<h1>Comparison report</h1>", f"<h1>{html.escape(title)}</h1>{extra}", 1)
        if html_ranking:
            page = page.replace("</style>", f"{ranking.GRID_STYLE}</style>", 1)
        atomic_write_text(folder / "report.html", page)
        write_manifest(folder, "report", ["report.md", "report.html"],
                       {name: result.hash for name, result in inputs.items()})
        facts = {"candidate": params["candidate"], "baseline": params["baseline"],
                 "p": {s.benchmark: s.headline.p_value for s in sections if s.headline is not None},
                 "difference": {s.benchmark: s.headline.difference for s in sections if s.headline is not None}}
        if ranked:  # lists: kept in pipeline.json, not spelled out on the stage's line
            facts["ranking"] = [{"benchmark": r.benchmark, "order": r.order, "values": r.values,
                                 "line": ranking.ranking_line(r)} for r in ranked]
            facts["pairs"] = [pair.to_fact() for r in ranked for pair in r.pairs]
        return manifest_result(folder, facts, path=folder / "report.md")


LINEAGE_HEADER = ["stage", "kind", "artifact hash", "made from"]
RANKING_NOTE = ("Models ranked by each benchmark's headline; after each model, the benchmark's paired test "
                "against the model ranked just above it. Every pair below: difference = better - worse with a "
                "paired bootstrap 95% CI over items, the paired test, and Holm's correction over the pairs of "
                "the benchmark.")
GRID_NOTE = ("Two items of every category, those where the candidate scores most above the baseline first; "
             "each model's images of the item in its column (green border: the judge passed it, red: failed; "
             "hover for the reason).")
TESTS_HEADER = ["benchmark", "baseline", "candidate", "difference [95% CI]", "test", "p"]


def lineage_rows(results: Mapping[str, StageResult]) -> list[list[str]]:
    """One row per earlier stage, then this report's own (its hash covers this file: see artifact.json)."""
    rows = [[name, result.kind, result.hash,
             ", ".join(f"{source}={digest}" for source, digest in result.inputs.items()) or "(no stage inputs)"]
            for name, result in results.items()]
    return rows + [["(this report)", "report", "in artifact.json next to this file",
                    "every stage above"]]


def paired_test_rows(sections: list) -> list[list[str]]:
    from reports.compare_html import fmt_difference, fmt_p, fmt_value

    rows = []
    for section in sections:
        row = section.headline
        if row is None:
            rows.append([section.benchmark, "", "", "n/a", "; ".join(section.notes), ""])
            continue
        rows.append([f"{section.benchmark} ({row.label})", fmt_value(row.baseline, section),
                     fmt_value(row.candidate, section), fmt_difference(row, section), row.test, fmt_p(row.p_value)])
    return rows


def md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows])


def html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"
