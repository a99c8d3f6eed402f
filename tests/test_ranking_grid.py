"""The report's image grids: which items they show."""
from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

from harness.schema import SampleRecord
from reports import ranking
from reports.run_report import RunView


def _view(folder: Path, passes: dict[str, list[bool]]) -> RunView:
    """A run whose item ``i`` (in group ``g`` by its name ``g/i``) has one sample per entry of passes[i]."""
    records = []
    for item_id, outcomes in passes.items():
        for index, passed in enumerate(outcomes):
            name = f"{item_id}/{index}.png"
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(b"png")
            records.append(SampleRecord(sample_id=f"{item_id}/{index}", item_id=item_id, group=item_id.split("/")[0],
                                        seed=index, output_path=name, output_hash="", score=float(passed),
                                        correct=passed, verdict={"prompt": f"prompt {item_id}"}))
    return RunView(name=folder.name, folder=folder, summary={}, records=records, artifact_hash="h")


def _shown(html: str) -> list[str]:
    return re.findall(r"<td>prompt ([^<]+)</td>", html)


def test_the_grid_shows_first_the_items_where_the_candidate_beats_the_baseline(tmp_path, monkeypatch):
    runs = {"a": tmp_path / "a", "b": tmp_path / "b"}
    # group x: x/1 and x/2 tie, a beats b on x/3 by 1.0 and on x/4 by 0.5; group y: b beats a on y/1
    views = {
        "a": _view(runs["a"], {"x/1": [True, False], "x/2": [False, False], "x/3": [True, True],
                               "x/4": [True, False], "y/1": [False, False], "y/2": [True, True]}),
        "b": _view(runs["b"], {"x/1": [True, False], "x/2": [False, False], "x/3": [False, False],
                               "x/4": [False, False], "y/1": [True, True], "y/2": [True, True]}),
    }
    # the benchmark's per-item values (what the paired tests use), written out by hand: the pass rates
    values = {"a": {"x/1": 0.5, "x/2": 0.0, "x/3": 1.0, "x/4": 0.5, "y/1": 0.0, "y/2": 1.0},
              "b": {"x/1": 0.5, "x/2": 0.0, "x/3": 0.0, "x/4": 0.0, "y/1": 1.0, "y/2": 1.0}}
    monkeypatch.setattr(ranking.RunView, "load", classmethod(lambda cls, folder: views[folder.name]))
    monkeypatch.setattr(ranking, "run_items", lambda folder: SimpleNamespace(
        values={item: (item.split("/")[0], value) for item, value in values[Path(folder).name].items()}))
    assert _shown(ranking.side_by_side(runs, ["a", "b"])) == ["x/1", "x/2", "y/1", "y/2"]  # item order
    assert _shown(ranking.side_by_side(runs, ["a", "b"], prefer=("a", "b"))) == ["x/3", "x/4", "y/2", "y/1"]
    assert _shown(ranking.side_by_side(runs, ["a", "b"], prefer=("b", "a"))) == ["x/1", "x/2", "y/1", "y/2"]
    html = ranking.side_by_side(runs, ["a", "b"], prefer=("a", "b"))
    # x/3: a 2 pass, b 2 wrong; x/4: a 1 + 1, b 2 wrong; y/2: 2 + 2 pass; y/1: a 2 wrong, b 2 pass
    assert html.count("class='pass'") == 2 + 1 + 4 + 2 and html.count("class='wrong'") == 2 + 1 + 2 + 2
