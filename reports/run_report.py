"""A report of one or more finished runs: Markdown for reading in a terminal or a PR, and a
self-contained HTML page (inline CSS, plots and images as data URLs) to open in a browser.

Runs are grouped by benchmark; each benchmark gets a score table, a bar chart of its breakdown
(GenEval tags, MME subtasks, MMBench L2 categories) and examples to look at: an image grid for
generation benchmarks, questions with each model's answer for understanding benchmarks.
Comparisons with statistics and baselines belong to ``harness compare``.
"""
from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from harness import registry
from harness.artifacts import read_manifest
from harness.fileio import atomic_write_text
from harness.runner import load_records, load_summary
from harness.schema import SampleRecord


@dataclass
class RunView:
    name: str
    folder: Path
    summary: dict
    records: list[SampleRecord]
    artifact_hash: str

    @classmethod
    def load(cls, folder: Path) -> "RunView":
        manifest = read_manifest(folder)
        return cls(name=folder.name, folder=folder, summary=load_summary(folder),
                   records=load_records(folder), artifact_hash=manifest.hash if manifest else "unfinished")

    @property
    def benchmark(self) -> str:
        return self.summary["benchmark"]

    @property
    def benchmark_class(self):
        return registry.get("benchmark", self.benchmark)

    @property
    def groups(self) -> dict[str, float]:
        key = self.benchmark_class.breakdown
        return dict(self.summary["scores"].get(key, {})) if key else {}


def _fmt(value: float | None, scale_max: float = 1.0) -> str:
    """Four decimals on a 0-1 scale, two on wider ones (MME points, DPG 0-100, ImgEdit 1-5)."""
    if value is None:
        return "n/a"
    return f"{value:.4f}" if scale_max <= 1.0 else f"{value:.2f}"


def _by_benchmark(runs: Sequence[RunView]) -> dict[str, list[RunView]]:
    grouped: dict[str, list[RunView]] = {}
    for run in runs:
        grouped.setdefault(run.benchmark, []).append(run)
    return grouped


def _score_table(runs: Sequence[RunView]) -> tuple[list[str], list[list[str]]]:
    groups: list[str] = []
    for run in runs:
        groups += [g for g in run.groups if g not in groups]
    header = ["run", "model", "overall", *groups, "samples", "judge failures"]
    rows = []
    scale_max = runs[0].benchmark_class.breakdown_range[1] if runs else 1.0
    for run in runs:
        protocol = run.summary["protocol"]
        model = protocol.get("model", {}).get("name", "?")
        overall = run.summary["scores"].get("overall")
        rows.append([run.name, model, _fmt(overall, max(scale_max, abs(overall or 0))),
                     *[_fmt(run.groups.get(g), scale_max) for g in groups],
                     str(run.summary["counts"].get("scored", "")),
                     str(run.summary["counts"].get("judge_failed", 0))])
    return header, rows


def _flat(values: dict, prefix: str = "") -> list[str]:
    """``key=value`` pairs of the scalars in ``values``, one level of nesting as ``outer.inner``,
    newlines shown as ``\\n`` so that each stays on one line."""
    pairs = []
    for key, value in values.items():
        if isinstance(value, dict) and not prefix:
            pairs += _flat(value, f"{key}.")
        elif isinstance(value, (str, int, float, bool)):
            pairs.append(f"{prefix}{key}={value}".replace("\n", "\\n"))
    return pairs


def _protocol_lines(run: RunView) -> list[str]:
    protocol = run.summary["protocol"]
    model = {k: v for k, v in protocol.get("model", {}).items() if k != "name"}
    judges = ", ".join(f"{role}={spec['name']}" for role, spec in protocol.get("judges", {}).items())
    shown = {k: v for k, v in protocol.items()
             if k not in ("benchmark", "model", "judges", "run_seed", "limit", "seed_policy")}
    return [
        f"benchmark {protocol.get('benchmark')}: " + ", ".join(_flat(shown)),
        f"model {protocol.get('model', {}).get('name')}: " + ", ".join(_flat(model)),
        f"judges: {judges or 'none (rule-based scoring)'}",
        f"run seed {protocol.get('run_seed')}; spec {run.summary['spec_hash']}; "
        f"model digest {run.summary['model_digest']}; results artifact {run.artifact_hash}",
    ]


def markdown(runs: Sequence[RunView]) -> str:
    lines = ["# Evaluation report"]
    for benchmark, members in _by_benchmark(runs).items():
        header, rows = _score_table(members)
        lines += ["", f"## {benchmark}", "", f"Scale: {members[0].benchmark_class.scale_note}", "",
                  "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        for run in members:
            lines += ["", f"### {run.name}", ""] + [f"- {line}" for line in _protocol_lines(run)]
    lines.append("")
    return "\n".join(lines)


def _bar_chart(runs: Sequence[RunView]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    header, _ = _score_table(runs)
    groups = header[3:-2]
    low, high = runs[0].benchmark_class.breakdown_range
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(groups) + 3), 3.4), dpi=100)
    width = 0.8 / max(1, len(runs))
    for i, run in enumerate(runs):
        values = [run.groups.get(g) or 0.0 for g in groups]
        ax.bar([x + i * width for x in range(len(groups))], values, width, label=run.name)
    ax.set_xticks([x + width * (len(runs) - 1) / 2 for x in range(len(groups))], groups,
                  rotation=25, ha="right", fontsize=8)
    ax.set_ylim(low, high * 1.05)
    ax.set_ylabel("score")
    ax.set_title(runs[0].benchmark, fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _state(record: SampleRecord) -> str:
    return "fail" if record.judge_failed else ("pass" if record.correct else "wrong")


def _examples(run: RunView, items_per_group: int = 2) -> dict[str, list[list[SampleRecord]]]:
    """A few items per group, each with all its samples, in run order."""
    by_item: dict[str, list[SampleRecord]] = {}
    for record in run.records:
        by_item.setdefault(record.item_id, []).append(record)
    chosen: dict[str, list[list[SampleRecord]]] = {}
    for records in by_item.values():
        group = chosen.setdefault(records[0].group, [])
        if len(group) < items_per_group:
            group.append(records)
    return chosen


def _image_grid(run: RunView) -> str:
    """Every image of a few prompts per group, bordered green (pass) or red (fail)."""
    rows = []
    for group, items in _examples(run).items():
        for records in items:
            prompt = records[0].verdict.get("prompt", "")
            cells = []
            for record in records:
                data = base64.b64encode((run.folder / record.output_path).read_bytes()).decode()
                tip = html.escape(record.failure or record.rationale or "correct")
                cells.append(f'<img class="{_state(record)}" title="{tip}" src="data:image/png;base64,{data}">')
            rows.append(f"<tr><td>{html.escape(group)}</td><td>{html.escape(prompt)}</td>"
                        f"<td>{''.join(cells)}</td></tr>")
    return ("<table class='grid'><tr><th>group</th><th>prompt</th><th>images (hover for the judge's reason)"
            "</th></tr>" + "".join(rows) + "</table>")


def _answer_table(run: RunView) -> str:
    """A few questions per group with the model's raw answer, green (right) or red (wrong)."""
    rows = []
    for group, items in _examples(run).items():
        for records in items:
            for record in records:
                question = record.verdict.get("question", record.sample_id)
                reason = record.failure or record.rationale
                rows.append(f"<tr class='{_state(record)}'><td>{html.escape(group)}</td>"
                            f"<td>{html.escape(str(question))}</td>"
                            f"<td><code>{html.escape(record.output_text or '')}</code></td>"
                            f"<td>{html.escape(reason)}</td></tr>")
    return ("<table class='answers'><tr><th>group</th><th>question</th><th>answer (raw)</th><th>verdict</th></tr>"
            + "".join(rows) + "</table>")


STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;font-size:14px}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.grid img{width:96px;height:96px;image-rendering:pixelated;margin:2px;border:3px solid #999}
.grid img.pass{border-color:#2a2}.grid img.wrong{border-color:#d33}.grid img.fail{border-color:#888;opacity:.5}
.answers td{font-size:13px;max-width:420px}.answers tr.pass td:first-child{border-left:5px solid #2a2}
.answers tr.wrong td:first-child{border-left:5px solid #d33}.answers tr.fail{opacity:.6}
.proto{font-size:13px;color:#555}.scale{font-size:13px;color:#555}
"""


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    table = "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"
    for row in rows:
        table += "<tr>" + "".join(f"<td class='{'num' if i > 1 else ''}'>{html.escape(c)}</td>"
                                  for i, c in enumerate(row)) + "</tr>"
    return table + "</table>"


def html_page(runs: Sequence[RunView]) -> str:
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>Evaluation report</title>",
             f"<style>{STYLE}</style></head><body><h1>Evaluation report</h1>"]
    for benchmark, members in _by_benchmark(runs).items():
        parts.append(f"<h2>{html.escape(benchmark)}</h2>"
                     f"<p class='scale'>Scale: {html.escape(members[0].benchmark_class.scale_note)}</p>")
        parts.append(_html_table(*_score_table(members)))
        if members[0].groups:
            parts.append(f"<img alt='{html.escape(benchmark)} scores by category' "
                         f"src='data:image/png;base64,{_bar_chart(members)}'>")
        for run in members:
            parts.append(f"<h3>{html.escape(run.name)}</h3><ul class='proto'>"
                         + "".join(f"<li>{html.escape(line)}</li>" for line in _protocol_lines(run)) + "</ul>")
            text = any(record.output_text is not None for record in run.records)
            parts.append(_answer_table(run) if text else _image_grid(run))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(run_folders: Sequence[str | Path], out_dir: str | Path) -> list[Path]:
    runs = [RunView.load(Path(folder)) for folder in run_folders]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "report.md", markdown(runs))
    atomic_write_text(out_dir / "report.html", html_page(runs))
    return [out_dir / "report.md", out_dir / "report.html"]
