"""Rendering of a comparison (``reports.compare``): Markdown tables, and a self-contained HTML page
with the same tables, plots and flipped samples (inline CSS; plots and images as data URLs)."""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any, Sequence

from harness.fileio import atomic_write_text
from harness.schema import SampleRecord
from reports.compare import Flip, Flips, Row, Section, build_sections
from reports.run_report import _fmt

# ------------------------------------------------------------------------------------ formatting


def verdict(section: Section, row: Row | None) -> str:
    """An arrow: better / worse when the 95% interval excludes no change, else about the same."""
    if section.not_comparable:
        return "not comparable"
    if row is None or row.ci is None or row.candidate is None or row.baseline is None:
        return "n/a"
    low, high = row.ci
    if section.published is not None:  # the candidate's own interval: where is the published value?
        low, high = low - row.baseline, high - row.baseline
    if low > 0:
        return "▲ better"
    if high < 0:
        return "▼ worse"
    return "≈ no clear difference"


def flip_labels(flips: Flips) -> dict[str, str]:
    if flips.kind == "value":
        return {"lost": "items whose value dropped most", "gained": "items whose value rose most"}
    return {"lost": f"{flips.kind}s that passed in the baseline and fail in the candidate",
            "gained": f"{flips.kind}s that failed in the baseline and pass in the candidate"}


def _digits(section: Section) -> int:
    return 4 if section.scale_max <= 1.0 else 2


def fmt_value(value: float | None, section: Section) -> str:
    return _fmt(value, max(section.scale_max, abs(value or 0)))


def fmt_difference(row: Row, section: Section) -> str:
    """``+0.1234 [+0.05, +0.20]`` against a run; against a published number, the difference alone
    (the interval there is the candidate's own, shown in its column)."""
    if section.not_comparable:
        return "not comparable"
    if row.difference is None:
        return "n/a"
    digits = _digits(section) if abs(row.candidate or 0) <= section.scale_max else 2
    text = f"{row.difference:+.{digits}f}"
    if row.ci is not None and section.baseline_run is not None:
        text += f" [{row.ci[0]:+.{digits}f}, {row.ci[1]:+.{digits}f}]"
    return text


def fmt_ci(row: Row, section: Section) -> str:
    if row.ci is None:
        return ""
    digits = _digits(section) if abs(row.candidate or 0) <= section.scale_max else 2
    return f"[{row.ci[0]:.{digits}f}, {row.ci[1]:.{digits}f}]"


def fmt_p(p: float | None) -> str:
    if p is None:
        return ""
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def result_table(section: Section) -> tuple[list[str], list[list[str]]]:
    if section.published is not None:
        header = ["", "candidate", "candidate 95% CI", "published", "difference", "note"]
        return header, [[row.label, fmt_value(row.candidate, section), fmt_ci(row, section),
                         fmt_value(row.baseline, section), fmt_difference(row, section), row.note]
                        for row in section.rows]
    header = ["", "candidate", "baseline", "difference [95% CI]", "paired items", "test", "p", "Holm p", "note"]
    return header, [[row.label, fmt_value(row.candidate, section), fmt_value(row.baseline, section),
                     fmt_difference(row, section), str(row.n_items or ""), row.test, fmt_p(row.p_value),
                     fmt_p(row.p_holm), row.note] for row in section.rows]


def summary_table(sections: Sequence[Section]) -> tuple[list[str], list[list[str]]]:
    header = ["benchmark", "candidate", "baseline", "candidate value", "baseline value",
              "difference [95% CI]", "verdict"]
    rows = []
    for section in sections:
        row = section.headline
        label = f" ({row.label})" if row is not None and row.label != "overall" else ""
        secondary = " (secondary)" if section.verified is False else ""
        rows.append([section.benchmark + label, section.candidate.name, section.baseline_name + secondary,
                     fmt_value(row.candidate if row else None, section),
                     fmt_value(row.baseline if row else None, section),
                     fmt_difference(row, section) if row else "n/a", verdict(section, row)])
    return header, rows


def _published_lines(section: Section) -> list[str]:
    published = section.published
    kind = "primary, verified" if section.verified else "SECONDARY source: check against the paper"
    setup = json.dumps(published.setup.get(section.benchmark, {}), ensure_ascii=False)
    return [f"Published: {published.model}, {published.source} ({kind}).", f"Published setup: {setup}"]


def _not_comparable_means(section: Section) -> str:
    if section.published is not None:
        return ("the run is not the official setup behind the published number: values only, no "
                "difference (the candidate's own 95% CI is shown)")
    return "the protocols differ in the benchmark or the judges: values only, no difference, no statistics"


def _mark(section: Section, index: int) -> str:
    row = section.protocol_rows[index]
    return "!" if row.blocks_comparison else ("~" if row.differs else "")


def _prompt_of(records: Sequence[SampleRecord], fallback: str) -> str:
    verdict_fields = records[0].verdict if records else {}
    for key in ("prompt", "instruction", "question"):
        if isinstance(verdict_fields.get(key), str):
            return verdict_fields[key]
    return fallback


def _reason(record: SampleRecord) -> str:
    return record.failure or record.rationale or ("correct" if record.correct else "")


def _describe(flip: Flip, kind: str) -> str:
    if kind == "value":
        return f"item value {flip.baseline_value:.4g} -> {flip.candidate_value:.4g}"
    return f"baseline: {_side(flip.baseline)}; candidate: {_side(flip.candidate)}"


def _side(records: Sequence[SampleRecord]) -> str:
    if not records:
        return "(no sample)"
    if records[0].output_text is not None:
        return ", ".join(f"{r.output_text!r} ({_reason(r)})" for r in records)
    return ", ".join(_reason(r) for r in records)


def _flip_title(flips: Flips, direction: str) -> str:
    shown, total = getattr(flips, direction), flips.totals[direction]
    return (f"{flip_labels(flips)[direction].capitalize()}: {total}"
            + (f" (showing {len(shown)})" if total > len(shown) else ""))


# ------------------------------------------------------------------------------------ Markdown


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    return (["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows])


def markdown(sections: Sequence[Section]) -> str:
    lines = ["# Comparison report", ""]
    for section in sections:
        if section.not_comparable:
            lines += [f"> **NOT COMPARABLE: {section.benchmark}** ({section.candidate.name} vs "
                      f"{section.baseline_name}): " + "; ".join(section.not_comparable), ""]
    lines += _md_table(*summary_table(sections))
    for section in sections:
        lines += ["", f"## {section.benchmark}: {section.candidate.name} vs {section.baseline_name}", "",
                  f"Scale: {section.benchmark_class.scale_note}", ""]
        if section.published is not None:
            lines += [*_published_lines(section), ""]
        if section.not_comparable:
            lines += [f"**NOT COMPARABLE**: {_not_comparable_means(section)}", ""]
            lines += [f"- {reason}" for reason in section.not_comparable] + [""]
        lines += [f"- {note}" for note in section.notes]
        if section.rows:
            lines += _md_table(*result_table(section))
        if section.protocol_rows and section.published is not None:
            lines += ["", f"Protocol card of the candidate: {len(section.protocol_rows)} keys (in report.html); "
                      "its departures from the official setup are listed above."]
        elif section.protocol_rows:
            differing = [(i, row) for i, row in enumerate(section.protocol_rows) if row.differs]
            same = len(section.protocol_rows) - len(differing)
            lines += ["", f"Protocol cards: {len(differing)} keys differ (`!` blocks the comparison, `~` is "
                      f"the model being compared); {same} keys are identical (all of them in report.html).", ""]
            if differing:
                lines += _md_table(["", "part", "key", "candidate", "baseline"],
                                   [[_mark(section, i), row.part, row.key, row.candidate or "", row.baseline or ""]
                                    for i, row in differing]) + [""]
        if section.flips is not None:
            for direction in ("lost", "gained"):
                shown = getattr(section.flips, direction)
                lines += ["", _flip_title(section.flips, direction)]
                if shown:
                    lines += [""] + [f"- `{flip.key}` ({flip.group}): {_describe(flip, section.flips.kind)}"
                                     for flip in shown]
    lines.append("")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ plots


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")  # keeps the legends below the axes
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def plot(section: Section) -> str | None:
    """Bars of candidate and baseline per category; against a run, a second panel with each paired
    difference and its 95% CI; against a published number, the candidate's own CI on its bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [row for row in section.rows if not row.headline] or section.rows[:1]
    if not rows:
        return None
    paired = section.baseline_run is not None and not section.not_comparable
    fig, axes = plt.subplots(1, 2 if paired else 1, figsize=(11 if paired else 7, 3.6), dpi=100, squeeze=False)
    bars = axes[0][0]
    xs = list(range(len(rows)))
    width = 0.38
    cand = [row.candidate or 0.0 for row in rows]
    errors = None
    if section.published is not None and all(row.ci is not None for row in rows):
        errors = [[max(0.0, c - row.ci[0]) for c, row in zip(cand, rows)],
                  [max(0.0, row.ci[1] - c) for c, row in zip(cand, rows)]]
    bars.bar([x - width / 2 for x in xs], cand, width, yerr=errors, capsize=3, color="#3b7dd8",
             label=f"candidate ({section.candidate.name})" + (" ±95% CI" if errors else ""))
    bars.bar([x + width / 2 for x in xs], [row.baseline or 0.0 for row in rows], width, color="#c9a227",
             label=section.baseline_name)
    bars.set_xticks(xs, [row.label for row in rows], rotation=25, ha="right", fontsize=8)
    low, high = section.benchmark_class.breakdown_range
    top = max([high, *cand, *[row.baseline or 0 for row in rows]])
    bars.set_ylim(low, top * 1.08)
    bars.set_title(f"{section.benchmark}: " + ("values only (not comparable)" if section.not_comparable
                                                else "candidate vs baseline"), fontsize=10)
    bars.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.32), ncol=2, frameon=False)
    if paired:
        diff = axes[0][1]
        values = [row.difference or 0.0 for row in rows]
        with_ci = [i for i, row in enumerate(rows) if row.ci is not None]
        diff.axhline(0.0, color="#555", linewidth=0.8)
        diff.scatter(xs, values, color="#3b7dd8", zorder=3, label="difference")
        if with_ci:
            diff.errorbar([xs[i] for i in with_ci], [values[i] for i in with_ci],
                          yerr=[[values[i] - rows[i].ci[0] for i in with_ci],
                                [rows[i].ci[1] - values[i] for i in with_ci]],
                          fmt="none", ecolor="#3b7dd8", capsize=4, label="paired bootstrap 95% CI")
        diff.set_xticks(xs, [row.label for row in rows], rotation=25, ha="right", fontsize=8)
        diff.set_title("candidate − baseline, with 95% CI", fontsize=10)
        diff.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.32), ncol=2, frameon=False)
    fig.tight_layout()
    return _png(fig)


# ------------------------------------------------------------------------------------ HTML

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1150px;color:#222;padding:0 1em}
h1{margin-bottom:.2em}h2{margin-top:2em;border-bottom:2px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.8em 0}
td,th{border:1px solid #ccc;padding:4px 8px;font-size:14px;vertical-align:top}
th{background:#f1f3f6;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.alert{background:#fdecea;border:2px solid #d33;border-radius:6px;padding:.6em 1em;margin:1em 0}
.alert b{color:#b00}.note{color:#555;font-size:13px}.secondary{color:#b36b00;font-weight:bold}
.better{color:#1a7f37;font-weight:bold}.worse{color:#c62828;font-weight:bold}.same{color:#555}
.nc{color:#b00;font-weight:bold}
table.proto td{font-size:12px;font-family:ui-monospace,monospace;max-width:420px;word-break:break-all}
table.proto td:first-child{word-break:normal}
tr.block td{background:#fde2e0}tr.model td{background:#fff6d6}
.flips td{font-size:13px}.flips img{width:96px;height:auto;image-rendering:pixelated;margin:2px;border:3px solid #999}
.flips img.pass{border-color:#2a2}.flips img.fail{border-color:#d33}
.flips figure{display:inline-block;width:120px;margin:0 4px 4px 0;vertical-align:top}.flips figcaption{font-size:11px}
.answer{border-left:4px solid #bbb;padding-left:6px;margin:2px 0}
.answer.pass{border-color:#2a2}.answer.fail{border-color:#d33}
.flips code{background:#f4f4f4;padding:1px 4px}details{margin:.5em 0}summary{cursor:pointer;color:#235}
"""

THUMBNAIL = 192  # pixels, longest side of the flipped images embedded in the page
_VERDICT_CLASS = {"▲": "better", "▼": "worse", "≈": "same"}


def _table(header: list[str], rows: list[list[str]], css: str = "", row_classes: Sequence[str] = (),
           verdicts: bool = False, numbers: bool = True) -> str:
    out = [f"<table class='{css}'><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
    for index, row in enumerate(rows):
        cls = row_classes[index] if index < len(row_classes) else ""
        cells = []
        for i, cell in enumerate(row):
            kind = "num" if numbers and i and (cell[:1] in "+-[<" or cell[:1].isdigit()) else ""
            if cell.startswith("not comparable"):
                kind = "nc"
            elif verdicts and cell[:1] in _VERDICT_CLASS and i == len(row) - 1:
                kind = _VERDICT_CLASS[cell[:1]]
            cells.append(f"<td class='{kind}'>{html.escape(cell)}</td>")
        out.append(f"<tr class='{cls}'>" + "".join(cells) + "</tr>")
    return "".join(out) + "</table>"


def _thumbnail(path: Path, side: int = THUMBNAIL) -> str:
    """A PNG data URL no larger than ``side`` pixels: 384-pixel Janus images would make the page heavy."""
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        if max(image.size) <= side:
            return base64.b64encode(path.read_bytes()).decode()
        image.thumbnail((side, side))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _image_cell(section: Section, side: str, records: Sequence[SampleRecord], value: float | None) -> str:
    run = section.baseline_run if side == "baseline" else section.candidate
    parts = [] if value is None else [f"<div>item value {value:.4g}</div>"]
    for record in records:
        reason = html.escape(_reason(record))
        state = "pass" if record.correct else ("fail" if record.correct is False else "")
        if record.output_text is not None:
            parts.append(f"<div class='answer {state}'><code>{html.escape(record.output_text)}</code> "
                         f"<span class='note'>{reason}</span></div>")
            continue
        path = run.folder / record.output_path if run is not None else None
        if path is None or not path.is_file():
            parts.append(f"<div class='note'>missing image {html.escape(record.output_path)}</div>")
            continue
        data = _thumbnail(path)
        parts.append(f"<figure><img class='{state}' title='{reason}' alt='{html.escape(record.sample_id)}' "
                     f"src='data:image/png;base64,{data}'><figcaption class='note'>{reason}</figcaption></figure>")
    return "".join(parts)


def _flips_html(section: Section) -> str:
    flips = section.flips
    if flips is None:
        return ""
    out = []
    for direction in ("lost", "gained"):
        shown = getattr(flips, direction)
        title = _flip_title(flips, direction)
        if not shown:
            out.append(f"<p class='note'>{html.escape(title)}</p>")
            continue
        rows = "".join(
            f"<tr><td>{html.escape(flip.key)}<div class='note'>{html.escape(flip.group)}</div></td>"
            f"<td>{html.escape(_prompt_of(flip.baseline or flip.candidate, flip.key))}</td>"
            f"<td>{_image_cell(section, 'baseline', flip.baseline, flip.baseline_value)}</td>"
            f"<td>{_image_cell(section, 'candidate', flip.candidate, flip.candidate_value)}</td></tr>"
            for flip in shown)
        out.append(f"<details open><summary>{html.escape(title)}</summary><table class='flips'><tr><th>unit</th>"
                   f"<th>prompt / question</th><th>baseline ({html.escape(section.baseline_name)})</th>"
                   f"<th>candidate ({html.escape(section.candidate.name)})</th></tr>{rows}</table></details>")
    return "<h3>Flipped outcomes</h3>" + "".join(out)


def _protocol_html(section: Section) -> str:
    if not section.protocol_rows:
        return ""
    classes = ["block" if r.blocks_comparison else ("model" if r.differs else "") for r in section.protocol_rows]
    rows = [[r.part, r.key, r.candidate or "", r.baseline or ""] for r in section.protocol_rows]
    legend = ("red rows differ in the benchmark or the judges (they block the comparison); yellow rows "
              "differ in the model, which is what is compared")
    if section.published is not None:
        return ("<details><summary>Protocol card of the candidate</summary><p class='note'>Published numbers "
                "come with no card; the setup the source states is quoted above.</p>"
                + _table(["part", "key", "candidate"], [row[:3] for row in rows], "proto", numbers=False) + "</details>")
    return (f"<details><summary>Protocol cards ({sum(r.differs for r in section.protocol_rows)} keys differ)"
            f"</summary><p class='note'>{legend}</p>"
            + _table(["part", "key", "candidate", "baseline"], rows, "proto", classes, numbers=False) + "</details>")


def _section_html(section: Section) -> str:
    parts = [f"<h2 id='{html.escape(section.benchmark)}'>{html.escape(section.benchmark)}: "
             f"{html.escape(section.candidate.name)} vs {html.escape(section.baseline_name)}</h2>",
             f"<p class='note'>Scale: {html.escape(section.benchmark_class.scale_note)}</p>"]
    if section.published is not None:
        lines = _published_lines(section)
        css = "" if section.verified else "secondary"
        parts.append(f"<p class='{css}'>{html.escape(lines[0])}</p><p class='note'>{html.escape(lines[1])}</p>")
    if section.not_comparable:
        parts.append(f"<div class='alert'><b>NOT COMPARABLE</b>: {html.escape(_not_comparable_means(section))}<ul>"
                     + "".join(f"<li>{html.escape(r)}</li>" for r in section.not_comparable) + "</ul></div>")
    parts += [f"<p class='note'>{html.escape(note)}</p>" for note in section.notes]
    if section.rows:
        parts.append(_table(*result_table(section), "results"))
        image = plot(section)
        if image:
            parts.append(f"<img alt='{html.escape(section.benchmark)} plot' src='data:image/png;base64,{image}'>")
    parts += [_protocol_html(section), _flips_html(section)]
    return "".join(parts)


def html_page(sections: Sequence[Section]) -> str:
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>Comparison report</title>",
             f"<style>{STYLE}</style></head><body><h1>Comparison report</h1>"]
    flagged = [s for s in sections if s.not_comparable]
    if flagged:
        parts.append("<div class='alert'>" + "".join(
            f"<p><b>NOT COMPARABLE: {html.escape(s.benchmark)}</b> ({html.escape(s.candidate.name)} vs "
            f"{html.escape(s.baseline_name)}): {html.escape('; '.join(s.not_comparable))}</p>" for s in flagged)
            + "</div>")
    parts.append(_table(*summary_table(sections), "summary", verdicts=True))
    parts.append("<p class='note'>Against a run: difference = candidate − baseline with a paired bootstrap "
                 "95% CI over items; ▲/▼ when the CI excludes 0. Against a published number: the "
                 "candidate's own 95% CI; ▲/▼ when it excludes the published value. See docs/REPORTS.md.</p>")
    parts += [_section_html(section) for section in sections]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_comparison(candidates: Sequence[Path], baseline: Sequence[Path] | Any, out_dir: Path, *,
                     n_boot: int = 2000, seed: int = 0) -> list[Path]:
    """Compare ``candidates`` (run folders, or folders of runs) with ``baseline`` (run folders matched
    by benchmark name, or a ``reports.baselines.Published``); write ``report.md`` and a
    self-contained ``report.html`` to ``out_dir`` and return their paths."""
    sections = build_sections(candidates, baseline, n_boot=n_boot, seed=seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "report.md", markdown(sections))
    atomic_write_text(out_dir / "report.html", html_page(sections))
    return [out_dir / "report.md", out_dir / "report.html"]
