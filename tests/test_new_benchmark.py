"""A new benchmark needs its package, one entry-point line, its docs and tests, and nothing else.

``tests/fixtures/coinflip_bench`` is a benchmark written only inside ``tests/``. Registered here
through a temporary ``harness.plugins`` entry point (as an installed outside package would be), it
gets ``harness rescore``, ``harness eval``, ``harness report``, the leaderboard (its runs and its
own result files), the gate's default margin and the published-numbers checks, with no other file
of the project touched. The registry is restored afterwards, so other tests never see it.
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

from harness import registry
from harness.cli import main
from harness.errors import InputError
from reports.baselines import load_published
from reports.leaderboard import build_leaderboard

FIXTURES = Path(__file__).parent / "fixtures"
NAME = "coinflip"
CALLS = "coinflip_calls.tsv"


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """coinflip_bench installed by one entry-point line; the registry, sys.path and sys.modules are
    put back afterwards."""
    site = tmp_path_factory.mktemp("site")
    dist = site / "coinflip_bench-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: coinflip-bench\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[harness.plugins]\ncoinflip = coinflip_bench\n")
    registry.load_plugins()  # the project's own plugins, so that the copy below holds them
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(site))
        patch.syspath_prepend(str(FIXTURES))
        patch.setattr(registry, "_registry", {kind: dict(plugins) for kind, plugins in registry._registry.items()})
        patch.setattr(registry, "_loaded", False)
        assert NAME in registry.names("benchmark") and NAME in registry.names("rescore")
        yield
    sys.modules.pop("coinflip_bench", None)


def _last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def runs(registered, tmp_path_factory) -> dict[str, Path]:
    """Two runs of 20 flips (every fourth lands tails): one calling heads (0.75), one tails (0.25)."""
    root = tmp_path_factory.mktemp("runs")
    folders = {}
    for call in ("heads", "tails"):
        spec = root / f"{call}.yaml"
        spec.write_text(f"benchmark: {{name: {NAME}, params: {{flips: 20}}}}\n"
                        f"model: {{name: coin-caller, params: {{call: {call}}}}}\n", encoding="utf-8")
        folders[call] = root / call
        assert main(["eval", str(spec), "--out", str(folders[call]), "--no-progress"]) == 0
    return folders


def test_rescore_command(registered, tmp_path, capsys):
    calls = tmp_path / CALLS
    calls.write_text("".join(f"flip{i:03d}\theads\n" for i in range(8)), encoding="utf-8")
    assert main(["rescore", NAME, str(calls)]) == 0
    assert _last_json(capsys.readouterr().out) == {"overall": 0.75, "sides": {"heads": 1.0, "tails": 0.0}}


def test_eval_writes_a_run_and_report_reads_it(runs, capsys):
    summary = json.loads((runs["heads"] / "summary.json").read_text(encoding="utf-8"))
    assert summary["benchmark"] == NAME and summary["scores"]["overall"] == 0.75
    assert (runs["heads"] / CALLS).read_text(encoding="utf-8").startswith("flip000\theads\n")
    capsys.readouterr()
    assert main(["report", str(runs["heads"]), str(runs["tails"])]) == 0
    report = (runs["heads"] / "report.md").read_text(encoding="utf-8")
    assert "0-1: share of flips called right" in report


def test_leaderboard_takes_its_runs_and_its_result_files(runs, tmp_path, capsys):
    calls = runs["tails"] / CALLS
    assert main(["leaderboard", str(runs["heads"]), str(calls), "--out", str(tmp_path)]) == 0
    with (tmp_path / "leaderboard.csv").open(encoding="utf-8", newline="") as handle:
        rows = {row["kind"]: row for row in csv.DictReader(handle)}
    assert float(rows["run"]["Coin"]) == 0.75
    assert float(rows["rescored"]["Coin"]) == 0.25
    assert rows["rescored"]["not_comparable"] == "Coin"
    assert "20 flips (the official set has 100)" in rows["rescored"]["notes"]
    markdown = (tmp_path / "leaderboard.md").read_text(encoding="utf-8")
    # after the project's own columns (other test benchmarks registered in the session may follow)
    assert markdown.index("Coin 0-1") > markdown.index("MMBench 0-1, papers print x100")
    assert main(["leaderboard", str(tmp_path / "leaderboard.md"), "--out", str(tmp_path / "again")]) == 2
    assert "not a known result file" in capsys.readouterr().err
    with pytest.raises(InputError, match=r"not a known result file \(coin flip coinflip_calls.tsv, .*dpg:DETAIL_TXT:CSV"):
        build_leaderboard([tmp_path / "leaderboard.md"])


def test_gate_uses_its_default_margin(runs, capsys):
    capsys.readouterr()
    assert main(["compare", str(runs["heads"]), str(runs["heads"]), "--gate"]) == 0
    passed = capsys.readouterr().out
    assert "PASS coinflip" in passed and "margin 0.1000" in passed
    assert "default margin assumes 100 items, here 20" in passed
    assert main(["compare", str(runs["tails"]), str(runs["heads"]), "--gate"]) == 1
    assert "FAIL coinflip  estimate -0.5000" in capsys.readouterr().out


@pytest.mark.parametrize("scores, message", [
    ("{overall: 50, sides: {heads: 0.5}}", r"coinflip.overall = 50 is off the harness scale \[0, 1\]"),
    ("{overall: 0.5, sides: {edge: 0.5}}", "unknown category 'edge'"),
])
def test_published_numbers_are_checked_on_its_scale(registered, tmp_path, scores, message):
    path = tmp_path / "published.yaml"
    entry = ("version: 1\nentries:\n  lucky:\n    model: Lucky\n    source: a paper\n    benchmarks:\n"
             f"      {NAME}: {{verified: true, scores: {{overall: 0.5, sides: {{heads: 0.6, tails: 0.4}}}}}}\n")
    path.write_text(entry, encoding="utf-8")
    assert load_published(path)["lucky"].scores[NAME] == {"overall": 0.5, "sides": {"heads": 0.6, "tails": 0.4}}
    path.write_text(entry.replace("{overall: 0.5, sides: {heads: 0.6, tails: 0.4}}", scores), encoding="utf-8")
    with pytest.raises(InputError, match=message):
        load_published(path)
