"""A leaderboard of headline numbers from finished runs, rescored official files and published entries.

One row per model: runs of the same model (same protocol-card name, run folder name and weights
digest) on several benchmarks share a row; a rescored file or a published entry is a row of its own.
Every cell keeps where its number came from. A run whose protocol is not the official setup
(``Benchmark.departures_from_official``), or a rescored file that visibly is not (missing subtasks,
edit types, prompts), is marked "†" with a footnote giving the reasons: its number is shown, but it
is not comparable with published numbers. Published numbers from secondary sources are marked "(S)".
The leaderboard never subtracts one number from another; ``harness compare`` does that, with
statistics, where it is allowed.

The leaderboard names no benchmark: its columns are the registered benchmarks'
``leaderboard_columns`` (in ``leaderboard_order``), and an official result file is rescored by
whichever registered rescorer ``claims`` it.
"""
from __future__ import annotations

import csv
import html
import io
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from harness import registry
from harness.artifacts import read_manifest
from harness.benchmark import Column
from harness.commands import Rescored
from harness.errors import InputError
from harness.fileio import atomic_write_text
from harness.runner import load_summary
from reports.protocols import official_departures
from reports.baselines import get_published

@dataclass(frozen=True)
class BoardColumn(Column):
    """A benchmark's leaderboard column, with the benchmark it belongs to."""

    benchmark: str = ""


def _columns_of(benchmark: str) -> list[BoardColumn]:
    """The benchmark's ``leaderboard_columns`` (by default one column: its ``overall``)."""
    columns = registry.get("benchmark", benchmark).leaderboard_columns or (Column(benchmark, "overall", 3, ""),)
    return [BoardColumn(**asdict(column), benchmark=benchmark) for column in columns]


def board_columns() -> tuple[BoardColumn, ...]:
    """Every registered benchmark's columns, in ``leaderboard_order`` (then by name)."""
    def order(name: str) -> tuple[int, str]:
        return registry.get("benchmark", name).leaderboard_order, name

    return tuple(column for name in sorted(registry.names("benchmark"), key=order) for column in _columns_of(name))


@dataclass(frozen=True)
class Cell:
    """One number: ``value`` None with ``reported`` False means the source has the benchmark but not
    this number (published "n/r"); None with ``reported`` True means the run has none (e.g. no
    cognition subtask)."""

    value: float | None
    provenance: str
    departures: tuple[str, ...] = ()
    secondary: bool = False
    reported: bool = True

    @property
    def comparable(self) -> bool:
        return not self.departures


@dataclass
class Row:
    name: str
    kind: str  # "run", "rescored" or "published"
    model: str
    cells: dict[str, Cell] = field(default_factory=dict)  # column label -> cell
    notes: list[str] = field(default_factory=list)

    @property
    def provenance(self) -> list[str]:
        lines: list[str] = []
        for column in board_columns():
            cell = self.cells.get(column.label)
            if cell is not None and cell.provenance not in lines:
                lines.append(cell.provenance)
        return lines


@dataclass
class Leaderboard:
    rows: list[Row]
    columns: tuple[BoardColumn, ...] = field(default_factory=board_columns)

    def row(self, name: str) -> Row:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"no row {name!r}; rows: {[r.name for r in self.rows]}")

    def footnotes(self) -> dict[tuple[str, tuple[str, ...]], int]:
        """(benchmark, reasons) -> footnote number, in table order; equal reasons share a number."""
        notes: dict[tuple[str, tuple[str, ...]], int] = {}
        for row in self.rows:
            for column in self.columns:
                cell = row.cells.get(column.label)
                if cell is not None and cell.departures:
                    notes.setdefault((column.benchmark, cell.departures), len(notes) + 1)
        return notes


class _Builder:
    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.run_rows: dict[tuple[str, str, str], Row] = {}

    def _new_row(self, name: str, kind: str, model: str) -> Row:
        taken = {row.name for row in self.rows}
        unique, n = name, 2
        while unique in taken:
            unique, n = f"{name} #{n}", n + 1
        row = Row(unique, kind, model)
        self.rows.append(row)
        return row

    def add_run(self, run_dir: Path) -> None:
        summary = load_summary(run_dir)
        name = summary.get("benchmark", "")
        try:
            registry.get("benchmark", name)
        except KeyError as exc:
            raise InputError(f"unknown benchmark {name!r} ({exc.args[0]})", run_dir / "summary.json") from None
        protocol = summary.get("protocol", {})
        model = (protocol.get("model") or {}).get("name", "?")
        manifest = read_manifest(run_dir)
        provenance = (f"run {run_dir}, artifact {manifest.hash if manifest else 'unfinished'}, "
                      f"spec {summary.get('spec_hash', '?')}")
        key = (model, run_dir.name, summary.get("model_digest", ""))
        row = self.run_rows.get(key)
        columns = _columns_of(name)
        if row is None or any(column.label in row.cells for column in columns):
            row = self._new_row(run_dir.name, "run", model)
            self.run_rows.setdefault(key, row)
        departures = tuple(official_departures(protocol))
        for column in columns:
            value = summary["scores"].get(column.key)
            row.cells[column.label] = Cell(value, provenance, departures if value is not None else ())
        failed = summary.get("counts", {}).get("judge_failed", 0)
        if failed:
            row.notes.append(f"{name}: {failed} judge failure(s) excluded from the scores")

    def add_rescored(self, benchmark: str, rescored: Rescored) -> None:
        row = self._new_row(rescored.label, "rescored", "?")
        for column in _columns_of(benchmark):
            value, departures = rescored.values.get(column.key, (None, ()))
            row.cells[column.label] = Cell(value, rescored.provenance, departures)
        row.notes += [f"{benchmark}: {note}" for note in rescored.notes]

    def add_published(self, name: str) -> None:
        entry = get_published(name)
        row = self._new_row(f"published:{entry.name}", "published", entry.model)
        for benchmark, scores in entry.scores.items():
            for column in _columns_of(benchmark):
                value = scores.get(column.key)
                row.cells[column.label] = Cell(value, entry.provenance(benchmark),
                                               secondary=not entry.verified[benchmark],
                                               reported=value is not None)
            setup = "; ".join(f"{k}: {v!s}".replace("\n", "\\n") for k, v in entry.setup[benchmark].items())
            if setup:
                row.notes.append(f"{benchmark}: {setup}")


def _rescore(builder: _Builder, source: str) -> bool:
    """Rescore ``source`` with the registered rescorer that claims it; False when none does."""
    for name in registry.names("rescore"):
        rescorer = registry.get("rescore", name)()
        if rescorer.claims(source):
            builder.add_rescored(name, rescorer.leaderboard_entry(source))
            return True
    return False


def _known_sources() -> str:
    return ", ".join(registry.get("rescore", name).source_help or name for name in registry.names("rescore"))


def _add_source(builder: _Builder, source: str | Path) -> None:
    path = Path(source)
    summaries = sorted(path.rglob("summary.json")) if path.is_dir() else []
    if path.is_file() and path.name.lower() == "summary.json":
        summaries = [path]
    if summaries:
        for summary in summaries:
            builder.add_run(summary.parent)
    elif _rescore(builder, str(source)):
        return
    elif path.is_dir():
        raise InputError(f"no run folder (summary.json) below this folder, and no known result files in it "
                         f"({_known_sources()})", path)
    elif path.is_file():
        raise InputError(f"not a known result file ({_known_sources()})", path)
    else:
        raise InputError("leaderboard source not found", path)


def build_leaderboard(sources: Sequence[str | Path], published: Sequence[str] = ()) -> Leaderboard:
    """Rows from run folders (found below each folder by ``summary.json``), official result files
    rescored by the benchmarks' own rescorers, and published entries, in that order."""
    builder = _Builder()
    for source in sources:
        _add_source(builder, source)
    for name in dict.fromkeys(published):  # each entry once, in the order given
        builder.add_published(name)
    return Leaderboard(builder.rows)


# ---- output: Markdown, self-contained HTML (inline CSS and JS, no links), CSV ----------------------

def _cell_text(cell: Cell | None, column: Column, footnotes: dict) -> str:
    if cell is None:
        return ""
    if cell.value is None:
        text = "n/a" if cell.reported else "n/r"
    else:
        text = f"{cell.value:.{column.decimals}f}"
    if cell.secondary:
        text += " (S)"
    if cell.departures:
        text += f" \u2020{footnotes[(column.benchmark, cell.departures)]}"
    return text


def _legend(board: Leaderboard) -> list[str]:
    scales = ", ".join(f"{c.label} {c.scale}" for c in board.columns)
    return [f"Scales (the harness's): {scales}.",
            "\u2020N: not the official setup, so not comparable with published numbers (reason N below); "
            "(S): secondary source; n/r: not reported by the source; n/a: no such number in the run."]


def _footnote_lines(board: Leaderboard) -> list[str]:
    return [f"\u2020{n} {benchmark}: {'; '.join(reasons)}" for (benchmark, reasons), n in board.footnotes().items()]


def _markdown(board: Leaderboard) -> str:
    notes = board.footnotes()

    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["# Leaderboard", "", *_legend(board), "",
             "| entry | kind | model | " + " | ".join(c.label for c in board.columns) + " |",
             "|---|---|---|" + "---:|" * len(board.columns)]
    for row in board.rows:
        cells = [_cell_text(row.cells.get(c.label), c, notes) for c in board.columns]
        lines.append("| " + " | ".join(esc(x) for x in [row.name, row.kind, row.model, *cells]) + " |")
    if notes:
        lines += ["", "## Not comparable with published numbers", ""] + [f"- {x}" for x in _footnote_lines(board)]
    lines += ["", "## Provenance and notes", ""]
    for row in board.rows:
        lines.append(f"- **{esc(row.name)}**: " + "; ".join(row.provenance + row.notes))
    return "\n".join(lines) + "\n"


_STYLE = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
          "th,td{border:1px solid #ccc;padding:4px 8px}td.n{text-align:right}"
          "th{cursor:pointer;background:#f3f3f3}tr.published td{color:#555}.bad{color:#a33}")
# click a header to sort by it (numbers numerically, empty cells last)
_SORT_JS = """document.querySelectorAll('th').forEach(function(th,i){th.addEventListener('click',function(){
var body=th.closest('table').tBodies[0],rows=Array.prototype.slice.call(body.rows),asc=th.dataset.asc!=='1';
th.dataset.asc=asc?'1':'0';rows.sort(function(a,b){var x=a.cells[i].dataset.v,y=b.cells[i].dataset.v;
if(!x)return 1;if(!y)return -1;var nx=parseFloat(x),ny=parseFloat(y);
var c=(!isNaN(nx)&&!isNaN(ny))?nx-ny:x.localeCompare(y);return asc?c:-c;});
rows.forEach(function(r){body.appendChild(r);});});});"""


def _html(board: Leaderboard) -> str:
    notes = board.footnotes()
    esc = html.escape
    head = "".join(f"<th>{esc(x)}</th>" for x in ["entry", "kind", "model", *(c.label for c in board.columns)])
    body = []
    for row in board.rows:
        tds = [f'<td data-v="{esc(x)}">{esc(x)}</td>' for x in (row.name, row.kind, row.model)]
        for column in board.columns:
            cell = row.cells.get(column.label)
            value = "" if cell is None or cell.value is None else repr(cell.value)
            css = "n bad" if cell is not None and cell.departures else "n"
            tds.append(f'<td class="{css}" data-v="{value}" title="{esc(cell.provenance if cell else "")}">'
                       f"{esc(_cell_text(cell, column, notes))}</td>")
        body.append(f'<tr class="{row.kind}">{"".join(tds)}</tr>')
    details = "".join(f"<li><b>{esc(row.name)}</b>: {esc('; '.join(row.provenance + row.notes))}</li>"
                      for row in board.rows)
    footnotes = "".join(f"<li>{esc(x)}</li>" for x in _footnote_lines(board))
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Leaderboard</title>"
            f"<style>{_STYLE}</style></head><body><h1>Leaderboard</h1>"
            + "".join(f"<p>{esc(x)}</p>" for x in _legend(board))
            + f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
            + (f"<h2>Not comparable with published numbers</h2><ul>{footnotes}</ul>" if footnotes else "")
            + f"<h2>Provenance and notes</h2><ul>{details}</ul><script>{_SORT_JS}</script></body></html>\n")


def _csv(board: Leaderboard) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["entry", "kind", "model", *(c.label for c in board.columns),
                     "not_comparable", "secondary", "provenance", "notes"])
    for row in board.rows:
        cells = [row.cells.get(c.label) for c in board.columns]
        values = ["" if cell is None or cell.value is None else repr(cell.value) for cell in cells]
        flagged = [c.label for c, cell in zip(board.columns, cells) if cell is not None and cell.departures]
        secondary = [c.label for c, cell in zip(board.columns, cells) if cell is not None and cell.secondary]
        reasons = [f"{c.label} not comparable: {'; '.join(cell.departures)}"
                   for c, cell in zip(board.columns, cells) if cell is not None and cell.departures]
        writer.writerow([row.name, row.kind, row.model, *values, " ".join(flagged), " ".join(secondary),
                         " | ".join(row.provenance), " | ".join(reasons + row.notes)])
    return out.getvalue()


def write_leaderboard(board: Leaderboard, out_dir: str | Path) -> list[Path]:
    """Write ``leaderboard.md``, ``leaderboard.html`` and ``leaderboard.csv``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "leaderboard.md", out / "leaderboard.html", out / "leaderboard.csv"]
    for path, text in zip(paths, (_markdown(board), _html(board), _csv(board))):
        atomic_write_text(path, text)
    return paths
