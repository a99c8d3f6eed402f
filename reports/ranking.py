"""Ranking several models evaluated on the same benchmarks: every pair compared with the paired
statistics of ``reports.compare`` (bootstrap CI over items, the benchmark's paired test), Holm's
correction over the pairs of a benchmark, and image grids of the same items side by side.

The pipeline's ``report`` stage uses it when it names more than two models (``others``). Pairs whose
protocol cards differ in anything but the model are not compared (no difference, no test), exactly
as in a two-model comparison.
"""
from __future__ import annotations

import base64
import html
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from harness.schema import SampleRecord
from reports import stats
from reports.compare import Section, build_sections
from reports.items import run_items
from reports.run_report import RunView


@dataclass
class Pair:
    """``better`` against ``worse`` on one benchmark (ordered by headline value, higher first)."""

    benchmark: str
    better: str
    worse: str
    better_value: float | None
    worse_value: float | None
    difference: float | None = None  # better - worse
    ci: tuple[float, float] | None = None
    test: str = ""
    p_value: float | None = None
    p_holm: float | None = None
    not_comparable: tuple[str, ...] = ()

    def to_fact(self) -> dict:
        return {"benchmark": self.benchmark, "better": self.better, "worse": self.worse,
                "difference": self.difference, "p": self.p_value, "p_holm": self.p_holm}


@dataclass
class Ranking:
    benchmark: str
    order: list[str]  # labels, best first
    values: dict[str, float | None]
    pairs: list[Pair]
    scale_note: str = ""

    def pair(self, first: str, second: str) -> Pair | None:
        """The pair of two labels, whichever ranked higher."""
        return next((p for p in self.pairs if {p.better, p.worse} == {first, second}), None)


def _headline(section: Section, side: str) -> float | None:
    run = section.candidate if side == "candidate" else section.baseline_run
    return None if run is None else run.summary["scores"].get("overall")


def rank(runs: Mapping[str, Mapping[str, Path]], labels: Sequence[str], *, n_boot: int = 2000,
         seed: int = 0) -> list[Ranking]:
    """``runs``: benchmark -> label -> run folder. Every pair of ``labels`` is compared on every
    benchmark; the models are ranked by headline value, and each pair is reported better - worse."""
    rankings = []
    for benchmark, by_label in runs.items():
        present = [label for label in labels if label in by_label]
        values: dict[str, float | None] = {}
        pairs: list[Pair] = []
        note = ""
        for first, second in itertools.combinations(present, 2):
            (section,) = build_sections([by_label[first]], [by_label[second]], n_boot=n_boot, seed=seed)
            note = section.benchmark_class.scale_note
            values[first], values[second] = _headline(section, "candidate"), _headline(section, "baseline")
            row = section.headline
            flip = (values[second] or 0.0) > (values[first] or 0.0)
            pair = Pair(benchmark, second if flip else first, first if flip else second,
                        values[second] if flip else values[first], values[first] if flip else values[second],
                        not_comparable=tuple(section.not_comparable))
            if row is not None and not section.not_comparable:
                sign = -1.0 if flip else 1.0
                pair.difference = None if row.difference is None else sign * row.difference
                if row.ci is not None:
                    low, high = (sign * row.ci[0], sign * row.ci[1])
                    pair.ci = (min(low, high), max(low, high))
                pair.test, pair.p_value = row.test, row.p_value
            pairs.append(pair)
        adjusted = stats.holm({f"{p.better}>{p.worse}": p.p_value for p in pairs if p.p_value is not None})
        for pair in pairs:
            pair.p_holm = adjusted.get(f"{pair.better}>{pair.worse}")
        order = sorted(present, key=lambda label: -(values.get(label) if values.get(label) is not None
                                                     else float("-inf")))
        rankings.append(Ranking(benchmark, order, values, pairs, note))
    return rankings


def _fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}g}"


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "n/a"
    return "< 0.0001" if p < 1e-4 else f"{p:.2g}"


def ranking_line(ranking: Ranking) -> str:
    """"shapes 0.31 > noisy 0.12 (p = 0.001) > untrained 0.02 (p < 0.0001)": each model, then the
    paired test against the one before it ("=" between equal headlines)."""
    parts = []
    for index, label in enumerate(ranking.order):
        if index:
            tie = ranking.values.get(label) == ranking.values.get(ranking.order[index - 1])
            parts.append(" = " if tie else " > ")
        text = f"{label} {_fmt(ranking.values.get(label))}"
        if index:
            pair = ranking.pair(ranking.order[index - 1], label)
            if pair is not None and pair.not_comparable:
                text += " (not comparable)"
            elif pair is not None:
                shown = _fmt_p(pair.p_value)
                text += f" (p {shown})" if shown.startswith("<") else f" (p = {shown})"
        parts.append(text)
    return "".join(parts)


RANK_HEADER = ["benchmark", "ranking (headline; paired test against the model before)"]
PAIR_HEADER = ["benchmark", "better", "worse", "difference [95% CI]", "test", "p", "p (Holm, over pairs)"]


def ranking_rows(rankings: Sequence[Ranking]) -> list[list[str]]:
    return [[r.benchmark, ranking_line(r)] for r in rankings]


def pair_rows(rankings: Sequence[Ranking]) -> list[list[str]]:
    rows = []
    for ranking in rankings:
        for pair in ranking.pairs:
            if pair.not_comparable:
                rows.append([pair.benchmark, pair.better, pair.worse, "not comparable",
                             "; ".join(pair.not_comparable), "", ""])
                continue
            ci = "" if pair.ci is None else f" [{pair.ci[0]:+.4g}, {pair.ci[1]:+.4g}]"
            difference = "n/a" if pair.difference is None else f"{pair.difference:+.4g}{ci}"
            rows.append([pair.benchmark, pair.better, pair.worse, difference, pair.test,
                         _fmt_p(pair.p_value), _fmt_p(pair.p_holm)])
    return rows


# ------------------------------------------------------------------------------- image grids


def _state(record: SampleRecord) -> str:
    return "fail" if record.judge_failed else ("pass" if record.correct else "wrong")


def _items(run: RunView) -> dict[str, list[SampleRecord]]:
    by_item: dict[str, list[SampleRecord]] = {}
    for record in run.records:
        by_item.setdefault(record.item_id, []).append(record)
    return by_item


def side_by_side(runs: Mapping[str, Path], labels: Sequence[str], items_per_group: int = 2,
                 prefer: tuple[str, str] | None = None) -> str:
    """HTML: a few items of each group, every model's images of the item in its own column
    (green border: the judge passed it, red: failed); empty for text-answer benchmarks.

    With ``prefer=(a, b)``, each group shows first the items where model ``a`` scores most above
    model ``b`` (by the benchmark's own per-item values, those of the paired tests), then the rest
    in item order."""
    views = {label: RunView.load(runs[label]) for label in labels if label in runs}
    if not views:
        return ""
    first = next(iter(views.values()))
    if any(record.output_text is not None for record in first.records):
        return ""
    items = {label: _items(view) for label, view in views.items()}
    values = ([run_items(runs[label]).values for label in prefer]
              if prefer is not None and all(label in views for label in prefer) else None)
    candidates: dict[str, list[tuple[float, int, str]]] = {}
    for order, (item_id, records) in enumerate(items[next(iter(items))].items()):
        if all(r.score is None and r.correct is None for r in records):
            continue  # not scored (e.g. DPG's official quirk skips it): show items that count
        gain = 0.0
        if values is not None and item_id in values[0] and item_id in values[1]:
            gain = values[0][item_id][1] - values[1][item_id][1]
        candidates.setdefault(records[0].group, []).append((-gain, order, item_id))
    chosen = {group: [item_id for _, _, item_id in sorted(entries)[:items_per_group]]
              for group, entries in candidates.items()}
    head = "".join(f"<th>{html.escape(label)}</th>" for label in views)
    rows = []
    for group, item_ids in chosen.items():
        for item_id in item_ids:
            records = items[next(iter(items))][item_id]
            prompt = records[0].verdict.get("prompt") or records[0].verdict.get("instruction") or item_id
            cells = []
            for label, view in views.items():
                images = []
                for record in items[label].get(item_id, []):
                    path = view.folder / record.output_path
                    if not record.output_path or not path.is_file():
                        continue
                    data = base64.b64encode(path.read_bytes()).decode()
                    tip = html.escape(record.failure or record.rationale or "correct")
                    images.append(f"<img class='{_state(record)}' title='{tip}' src='data:image/png;base64,{data}'>")
                cells.append(f"<td>{''.join(images)}</td>")
            rows.append(f"<tr><td>{html.escape(group)}</td><td>{html.escape(str(prompt))}</td>{''.join(cells)}</tr>")
    return (f"<table class='grid'><tr><th>group</th><th>prompt</th>{head}</tr>" + "".join(rows) + "</table>")


GRID_STYLE = """
.grid img{width:64px;height:64px;image-rendering:pixelated;margin:1px;border:3px solid #999}
.grid img.pass{border-color:#2a2}.grid img.wrong{border-color:#d33}.grid img.fail{border-color:#888;opacity:.5}
"""
