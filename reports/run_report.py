"""A report of one or more finished runs: Markdown for reading in a terminal or a PR, and a
self-contained HTML page (inline CSS, plots and images as data URLs) to open in a browser.

Comparisons with statistics and baselines belong to ``harness compare``; this report shows what
each run scored, under which protocol, with an image grid to look at.
"""
from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

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
    def groups(self) -> dict[str, float]:
        return dict(self.summary["scores"].get("tasks", {}))


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _score_table(runs: Sequence[RunView]) -> tuple[list[str], list[list[str]]]:
    groups: list[str] = []
    for run in runs:
        groups += [g for g in run.groups if g not in groups]
    header = ["run", "model", "overall", *groups, "samples", "judge failures"]
    rows = []
    for run in runs:
        protocol = run.summary["protocol"]
        model = protocol.get("model", {}).get("name", "?")
        rows.append([run.name, model, _fmt(run.summary["scores"].get("overall")),
                     *[_fmt(run.groups.get(g)) for g in groups],
                     str(run.summary["counts"].get("scored", "")),
                     str(run.summary["counts"].get("judge_failed", 0))])
    return header, rows


def _protocol_lines(run: RunView) -> list[str]:
    protocol = run.summary["protocol"]
    model = protocol.get("model", {})
    judges = ", ".join(f"{role}={spec['name']}" for role, spec in protocol.get("judges", {}).items())
    return [
        f"benchmark {protocol.get('benchmark')} ({protocol.get('prompt_set', '?')} prompts, "
        f"{protocol.get('prompts', '?')} prompts x {protocol.get('images_per_prompt', '?')} images)",
        f"model {model.get('name')}: " + ", ".join(f"{k}={v}" for k, v in model.items()
                                                  if k in ("cfg_weight", "temperature", "top_k", "image_size", "dtype")),
        f"judges: {judges}",
        f"run seed {protocol.get('run_seed')}; spec {run.summary['spec_hash']}; "
        f"model digest {run.summary['model_digest']}; results artifact {run.artifact_hash}",
    ]


def markdown(runs: Sequence[RunView]) -> str:
    header, rows = _score_table(runs)
    lines = ["# Evaluation report", "", "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    for run in runs:
        lines += ["", f"## {run.name}", ""] + [f"- {line}" for line in _protocol_lines(run)]
    lines += ["", "Scores are on the benchmark's own scale (GenEval: 0-1, mean of per-tag accuracies).", ""]
    return "\n".join(lines)


def _bar_chart(runs: Sequence[RunView]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    header, _ = _score_table(runs)
    groups = header[3:-2]
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(groups) + 2), 3.2), dpi=100)
    width = 0.8 / max(1, len(runs))
    for i, run in enumerate(runs):
        values = [run.groups.get(g) or 0.0 for g in groups]
        ax.bar([x + i * width for x in range(len(groups))], values, width, label=run.name)
    ax.set_xticks([x + width * (len(runs) - 1) / 2 for x in range(len(groups))], groups, rotation=20)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _image_grid(run: RunView, prompts_per_group: int = 2) -> str:
    """A few prompts per group, every image of each, bordered green (pass) or red (fail)."""
    by_item: dict[str, list[SampleRecord]] = {}
    for record in run.records:
        by_item.setdefault(record.item_id, []).append(record)
    shown: dict[str, int] = {}
    rows = []
    for item_id, records in by_item.items():
        group = records[0].group
        if shown.get(group, 0) >= prompts_per_group:
            continue
        shown[group] = shown.get(group, 0) + 1
        prompt = records[0].verdict.get("prompt", "")
        cells = []
        for record in records:
            data = base64.b64encode((run.folder / record.output_path).read_bytes()).decode()
            state = "fail" if record.judge_failed else ("pass" if record.correct else "wrong")
            tip = html.escape(record.failure or record.rationale or "correct")
            cells.append(f'<img class="{state}" title="{tip}" src="data:image/png;base64,{data}">')
        rows.append(f"<tr><td>{html.escape(group)}</td><td>{html.escape(prompt)}</td>"
                    f"<td>{''.join(cells)}</td></tr>")
    return ("<table class='grid'><tr><th>tag</th><th>prompt</th><th>images (hover for the judge's reason)"
            "</th></tr>" + "".join(rows) + "</table>")


STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;font-size:14px}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.grid img{width:96px;height:96px;image-rendering:pixelated;margin:2px;border:3px solid #999}
.grid img.pass{border-color:#2a2}.grid img.wrong{border-color:#d33}.grid img.fail{border-color:#888;opacity:.5}
.proto{font-size:13px;color:#555}
"""


def html_page(runs: Sequence[RunView]) -> str:
    header, rows = _score_table(runs)
    table = "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"
    for row in rows:
        table += "<tr>" + "".join(f"<td class='{'num' if i > 1 else ''}'>{html.escape(c)}</td>"
                                  for i, c in enumerate(row)) + "</tr>"
    table += "</table>"
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>Evaluation report</title>",
             f"<style>{STYLE}</style></head><body><h1>Evaluation report</h1>", table,
             f"<img alt='scores by tag' src='data:image/png;base64,{_bar_chart(runs)}'>"]
    for run in runs:
        parts.append(f"<h2>{html.escape(run.name)}</h2><ul class='proto'>"
                     + "".join(f"<li>{html.escape(line)}</li>" for line in _protocol_lines(run)) + "</ul>")
        parts.append(_image_grid(run))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(run_folders: Sequence[str | Path], out_dir: str | Path) -> list[Path]:
    runs = [RunView.load(Path(folder)) for folder in run_folders]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "report.md", markdown(runs))
    atomic_write_text(out_dir / "report.html", html_page(runs))
    return [out_dir / "report.md", out_dir / "report.html"]
