"""The leaderboard: rows from demo runs, rescored official files and published entries; its files.

The demo runs are the session's small demo (tests/conftest.py), copied without images and caches. Values of the procedural models are exact by construction (they draw, edit and answer
everything right); the tiny Janus values are read from its summary.json files directly.
"""
from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from benchmarks.geneval.benchmark import GenEval
from harness.errors import InputError
from reports.leaderboard import Row, build_leaderboard, write_leaderboard

@pytest.fixture(scope="module")
def demo(tmp_path_factory, small_demo) -> Path:
    root = tmp_path_factory.mktemp("demo")
    skip = shutil.ignore_patterns("cache", "images", "tiles", "grids", "*.png")
    shutil.copytree(small_demo / "runs", root / "runs", ignore=skip)
    shutil.copytree(small_demo / "data", root / "data", ignore=skip)
    return root


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def _geneval_results(path: Path) -> Path:
    """Three official rows: single_object 1 of 2 right, two_object 1 of 1 -> overall (0.5 + 1) / 2."""
    def row(index: int, tag: str, correct: bool) -> str:
        meta = json.dumps({"tag": tag, "include": [{"class": "dog", "count": 1}], "prompt": f"p{index}"})
        return json.dumps({"filename": f"{index:05d}/samples/0000.png", "tag": tag, "prompt": f"p{index}",
                           "correct": correct, "reason": "", "metadata": meta, "details": "{}"})
    path.write_text("\n".join([row(0, "single_object", True), row(1, "single_object", False),
                               row(2, "two_object", True)]) + "\n", encoding="utf-8")
    return path


def _imgedit_files(folder: Path) -> tuple[Path, Path]:
    """Two add items (scores 4 and 5) and one remove item (3): types add 4.5, remove 3 -> overall 3.75."""
    edits = {"1": {"id": "a.jpg", "prompt": "add a hat", "edit_type": "add"},
             "2": {"id": "b.jpg", "prompt": "add a cat", "edit_type": "add"},
             "3": {"id": "c.jpg", "prompt": "remove the dog", "edit_type": "remove"}}
    replies = {"1": "Brief reasoning: ok\nPrompt Compliance: 4\nVisual Naturalness: 4\nPhysical & Detail Integrity: 4",
               "2": "Prompt Compliance: 5\nVisual Naturalness: 5\nPhysical & Detail Integrity: 5",
               "3": "Object Identity: 3\nMask Precision: 3\nVisual Quality: 3"}
    (folder / "basic_edit.json").write_text(json.dumps(edits), encoding="utf-8")
    (folder / "result.json").write_text(json.dumps(replies), encoding="utf-8")
    return folder / "result.json", folder / "basic_edit.json"


@pytest.fixture(scope="module")
def board(demo: Path, tmp_path_factory):
    extra = tmp_path_factory.mktemp("official")
    results = _geneval_results(extra / "results.jsonl")
    result_json, edits_json = _imgedit_files(extra)
    dpg = demo / "runs/dpg/shapes-renderer/dpg_detail.txt"
    sources = [demo / "runs", str(results), f"imgedit:{result_json}:{edits_json}",
               demo / "runs/mme/shapes-answerer/mme_results",
               demo / "runs/mmbench/shapes-answerer/mmbench_predictions.tsv",
               f"dpg:{dpg}:{next((demo / 'data').glob('dpg-shapes-*/dpg_bench.csv'))}"]
    built = build_leaderboard(sources, ["janus-pro-7b", "janus-4o-7b-gpt41", "sharegpt4v-7b", "janus-pro-7b"])
    return built, {"results": results, "result_json": result_json, "edits_json": edits_json, "dpg": dpg}


def _value(board, row: str, column: str):
    return board.row(row).cells[column].value


def test_runs_of_one_model_share_a_row(board, demo: Path):
    board, _ = board
    assert _value(board, "shapes-renderer", "GenEval") == 1.0 and _value(board, "shapes-renderer", "DPG") == 100.0
    assert set(board.row("shapes-renderer").cells) == {"GenEval", "DPG"}
    assert _value(board, "shapes-editor", "ImgEdit") == 5.0
    assert _value(board, "shapes-answerer", "MME-P") == 800.0  # 4 subtasks x 200
    assert _value(board, "shapes-answerer", "MMBench") == 1.0
    janus = board.row("tiny-janus")
    assert janus.kind == "run" and janus.model == "janus"
    for column, benchmark, key in [("GenEval", "geneval", "overall"), ("DPG", "dpg", "overall"),
                                   ("ImgEdit", "imgedit", "overall"), ("MME-P", "mme", "perception"),
                                   ("MMBench", "mmbench", "overall")]:
        summary = json.loads((demo / "runs" / benchmark / "tiny-janus/summary.json").read_text())
        assert janus.cells[column].value == summary["scores"][key], column
    assert janus.cells["MME-C"].value is None  # the demo has no cognition subtask


def test_run_provenance_names_folder_artifact_and_spec(board, demo: Path):
    board, _ = board
    run = demo / "runs/imgedit/tiny-janus"
    artifact = json.loads((run / "artifact.json").read_text())["hash"]
    spec = json.loads((run / "summary.json").read_text())["spec_hash"]
    assert board.row("tiny-janus").cells["ImgEdit"].provenance == f"run {run}, artifact {artifact}, spec {spec}"


def test_rescored_files(board):
    board, files = board
    geneval = _row_of(board, files["results"])
    assert geneval.kind == "rescored" and geneval.cells["GenEval"].value == 0.75
    assert geneval.cells["GenEval"].provenance == f"rescored {files['results']} ({_sha(files['results'])})"
    assert any("3 prompts" in reason for reason in geneval.cells["GenEval"].departures)
    imgedit = _row_of(board, files["result_json"])
    assert imgedit.cells["ImgEdit"].value == pytest.approx(3.75)
    assert imgedit.cells["ImgEdit"].departures == ("2 of 9 edit types scored (none: adjust, extract, replace, "
                                                   "background, style, compose, action)",)
    assert _sha(files["edits_json"]) in imgedit.cells["ImgEdit"].provenance
    mme = _row_of(board, "mme_results")
    assert mme.cells["MME-P"].value == 800.0 and mme.cells["MME-C"].value is None
    assert "4 of 10 perception subtasks present" in mme.cells["MME-P"].departures[0]
    assert _row_of(board, "mmbench_predictions.tsv").cells["MMBench"].value == 1.0
    assert _row_of(board, files["dpg"]).cells["DPG"].value == 100.0


def _row_of(board, path) -> Row:
    """The rescored row whose provenance names ``path`` (a path or a file name)."""
    rows = [row for row in board.rows if row.kind == "rescored" and str(path) in " ".join(row.provenance)]
    assert len(rows) == 1, [row.name for row in board.rows]
    return rows[0]


def test_published_rows(board):
    board, _ = board
    names = [row.name for row in board.rows if row.kind == "published"]
    assert names == ["published:janus-pro-7b", "published:janus-4o-7b-gpt41", "published:sharegpt4v-7b"]
    janus = board.row("published:janus-pro-7b")
    assert (janus.cells["GenEval"].value, janus.cells["DPG"].value) == (0.80, 84.19)
    assert (janus.cells["MME-P"].value, janus.cells["MMBench"].value) == (1567.1, 0.792)
    assert janus.cells["MME-C"].value is None and not janus.cells["MME-C"].reported
    assert "ImgEdit" not in janus.cells
    assert "arXiv 2501.17811" in janus.cells["GenEval"].provenance and "(verified)" in janus.cells["GenEval"].provenance
    gpt41 = board.row("published:janus-4o-7b-gpt41").cells["ImgEdit"]
    assert gpt41.value == 3.19 and gpt41.secondary and "(secondary)" in gpt41.provenance
    assert board.row("published:sharegpt4v-7b").cells["MME-C"].value == 376.4


def test_departures_mark_the_cell_and_name_the_reasons(demo: Path, monkeypatch, tmp_path: Path):
    runs = demo / "runs/geneval"
    monkeypatch.setattr(GenEval, "departures_from_official",
                        classmethod(lambda cls, protocol: ["cfg 3.0, not the official 5.0"]))
    marked = build_leaderboard([runs], ["janus-pro-7b"])
    assert marked.row("shapes-renderer").cells["GenEval"].departures == ("cfg 3.0, not the official 5.0",)
    markdown = write_leaderboard(marked, tmp_path / "marked")[0].read_text(encoding="utf-8")
    assert "| shapes-renderer | run | shapes-renderer | 1.000 \u20201 |" in markdown
    assert "\u20201 geneval: cfg 3.0, not the official 5.0" in markdown
    assert "| 0.800 |" in markdown  # the published number carries no mark
    monkeypatch.setattr(GenEval, "departures_from_official", classmethod(lambda cls, protocol: []))
    clean = build_leaderboard([runs], [])
    assert clean.row("shapes-renderer").cells["GenEval"].comparable
    markdown = write_leaderboard(clean, tmp_path / "clean")[0].read_text(encoding="utf-8")
    assert "| 1.000 |" in markdown and "\u2020" not in markdown.split("## Provenance")[0].split("| entry")[1]


def test_written_files(board, tmp_path: Path):
    board, _ = board
    md, page, table = write_leaderboard(board, tmp_path)
    assert [p.name for p in (md, page, table)] == ["leaderboard.md", "leaderboard.html", "leaderboard.csv"]
    with table.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["entry"] for row in rows] == [row.name for row in board.rows]
    for written, row in zip(rows, board.rows):
        for column in board.columns:
            cell = row.cells.get(column.label)
            expected = "" if cell is None or cell.value is None else cell.value
            assert (float(written[column.label]) if written[column.label] else "") == expected, (row.name, column)
        assert written["provenance"] == " | ".join(row.provenance)
    janus = next(r for r in rows if r["entry"] == "published:janus-pro-7b")
    assert float(janus["MMBench"]) == 0.792 and janus["kind"] == "published"
    assert next(r for r in rows if r["entry"] == "published:janus-4o-7b-gpt41")["secondary"] == "ImgEdit"
    html_text = page.read_text(encoding="utf-8")
    assert "http://" not in html_text and "https://" not in html_text
    assert "<link" not in html_text and " src=" not in html_text and "<script>" in html_text
    assert "published:sharegpt4v-7b" in html_text and "376.40" in html_text
    assert "| published:janus-pro-7b | published | Janus-Pro-7B | 0.800 | 84.19 |  | 1567.10 | n/r | 0.792 |" \
        in md.read_text(encoding="utf-8")


def test_bad_sources(tmp_path: Path):
    detail = tmp_path / "x_detail.txt"
    detail.write_text("", encoding="utf-8")
    with pytest.raises(InputError, match="dpg:DETAIL_TXT:CSV"):
        build_leaderboard([detail], [])
    with pytest.raises(InputError, match="file not found"):
        build_leaderboard([f"imgedit:{tmp_path / 'result.json'}:{tmp_path / 'basic_edit.json'}"], [])
    with pytest.raises(InputError, match="no run folder"):
        build_leaderboard([tmp_path], [])
    with pytest.raises(InputError, match="did you mean 'janus-pro-1b'"):
        build_leaderboard([], ["janus-pro-1"])
