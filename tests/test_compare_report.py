"""The comparison report (reports/compare.py): candidate runs against baseline runs or published
numbers, on a small offline demo (procedural models that get everything right vs a tiny random
Janus that gets everything wrong). Expected values are worked out by hand from the demo sizes and
the runs' own summary.json files."""
from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.geneval.benchmark import GenEval
from benchmarks.mmbench.benchmark import MMBench
from benchmarks.mmbench.circular import L2_ABBREVIATIONS
from harness.errors import InputError
from reports.compare import build_sections, find_runs
from reports.compare_html import write_comparison

# 12 GenEval prompts x 2 images; MME 4 subtasks x 3 images x 2 questions; 12 MMBench questions
PROCEDURAL = {"geneval": "shapes-renderer", "dpg": "shapes-renderer", "imgedit": "shapes-editor",
              "mme": "shapes-answerer", "mmbench": "shapes-answerer"}
N_BOOT = 200


@pytest.fixture(scope="module")
def runs(small_demo) -> Path:
    return small_demo / "runs"


def procedural(runs: Path) -> list[Path]:
    return [runs / benchmark / model for benchmark, model in PROCEDURAL.items()]


def tiny_janus(runs: Path) -> list[Path]:
    return [runs / benchmark / "tiny-janus" for benchmark in PROCEDURAL]


def summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def table(markdown: str, after: str, first_cell: str = "") -> dict[str, list[str]]:
    """Rows (first cell -> cells) of the first Markdown table after the line starting with ``after``."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(after))
    rows, seen = {}, False
    for line in lines[start + 1:]:
        if line.startswith("|"):
            seen = True
            cells = [cell.strip() for cell in line.strip("|").split(" | ")]
            rows[cells[0]] = cells
        elif seen:
            break
    return rows


def report(runs: Path, out: Path, candidates: list[Path], baseline) -> tuple[str, str]:
    markdown_path, html_path = write_comparison(candidates, baseline, out, n_boot=N_BOOT)
    return markdown_path.read_text(), html_path.read_text()


def test_against_runs_differences_statistics_flips_and_plots(runs, tmp_path):
    markdown, page = report(runs, tmp_path, procedural(runs), tiny_janus(runs))
    assert "NOT COMPARABLE" not in markdown  # only the model part differs: that is the comparison
    top = table(markdown, "# Comparison report")
    for benchmark, model in PROCEDURAL.items():
        cand, base = summary(runs / benchmark / model)["scores"], summary(runs / benchmark / "tiny-janus")["scores"]
        digits = 4 if benchmark in ("geneval", "mmbench") else 2
        row = top[benchmark]
        assert row[1:5] == [model, "tiny-janus", f"{cand['overall']:.{digits}f}", f"{base['overall']:.{digits}f}"]
        assert row[5].startswith(f"{cand['overall'] - base['overall']:+.{digits}f} [")
        assert row[6] == "▲ better"

    geneval = table(markdown, "## geneval")
    # 2 images x 2 prompts per tag, all wrong before and right after: 4 discordant pairs per tag,
    # exact p = 2 * 0.5**4 = 0.125; Holm over six equal p-values: min(1, 6 * 0.125) = 0.75
    for tag in ("single_object", "two_object", "counting", "colors", "position", "color_attr"):
        cells = geneval[tag]
        assert cells[1:4] == ["1.0000", "0.0000", "+1.0000 [+1.0000, +1.0000]"]
        assert cells[4:8] == ["2", "McNemar on 4 samples (0 pass→fail, 4 fail→pass)", "0.1250", "0.7500"]
    assert geneval["overall"][5] == "McNemar on 24 samples (0 pass→fail, 24 fail→pass)"
    assert geneval["overall"][6] == "<0.0001"  # 2 * 0.5**24

    mme = table(markdown, "## mme")  # 3 images x 2 questions per subtask; 200 points each
    assert mme["overall"][5] == "McNemar on 24 samples (0 pass→fail, 24 fail→pass)"
    assert mme["existence"][1:4] == ["200.00", "0.00", "+200.00 [+200.00, +200.00]"]
    assert table(markdown, "## mmbench")["overall"][5] == "McNemar on 12 items (0 pass→fail, 12 fail→pass)"
    imgedit = table(markdown, "## imgedit")
    base_types = summary(runs / "imgedit" / "tiny-janus")["scores"]["types"]
    assert imgedit["overall"][5] == "Wilcoxon signed-rank on 8 items"
    for edit_type, value in base_types.items():
        assert imgedit[edit_type][1:3] == ["5.00", f"{value:.2f}"]

    assert "Samples that failed in the baseline and pass in the candidate: 24 (showing 6)" in markdown
    assert "Samples that passed in the baseline and fail in the candidate: 0" in markdown
    assert "Items that failed in the baseline and pass in the candidate: 12 (showing 6)" in markdown  # MMBench
    assert "Items whose value rose most: 8 (showing 6)" in markdown  # ImgEdit: 1-5 scores, no pass/fail

    assert "http://" not in page and "https://" not in page
    assert page.count("class='summary'") == 1
    assert page.count("alt='geneval plot'") == 1 and page.count("plot' src='data:image/png;base64,") == 5
    assert page.count("<img class='pass'") == 6 and page.count("<img class='fail'") == 6  # GenEval flips
    assert "protocol cards (" in page.lower()


def test_reversed_direction_reports_losses(runs, tmp_path):
    markdown, _ = report(runs, tmp_path, [runs / "geneval" / "tiny-janus"], [runs / "geneval" / "shapes-renderer"])
    assert table(markdown, "# Comparison report")["geneval"][5:] == ["-1.0000 [-1.0000, -1.0000]", "▼ worse"]
    assert "Samples that passed in the baseline and fail in the candidate: 24 (showing 6)" in markdown


def _altered_copy(run: Path, dest: Path, change) -> Path:
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("cache"))
    data = summary(dest)
    change(data["protocol"])
    (dest / "summary.json").write_text(json.dumps(data))
    return dest


def test_protocol_mismatch_is_flagged_at_the_top(runs, tmp_path):
    other_judge = _altered_copy(runs / "geneval" / "tiny-janus", tmp_path / "judge" / "tiny-janus",
                                lambda p: p["judges"]["detector"].update(name="mask2former-hf"))
    other_data = _altered_copy(runs / "mme" / "tiny-janus", tmp_path / "data" / "tiny-janus",
                               lambda p: p.update(data_hash="0000000000000000"))
    candidates = [runs / "geneval" / "shapes-renderer", runs / "mme" / "shapes-answerer",
                  runs / "dpg" / "shapes-renderer"]
    markdown, page = report(runs, tmp_path / "out", candidates, [other_judge, other_data, runs / "dpg" / "tiny-janus"])
    header = markdown.index("| benchmark |")
    assert markdown.index("NOT COMPARABLE: geneval") < header and markdown.index("NOT COMPARABLE: mme") < header
    assert 'judges part differs: judges.detector.name = "shapes" vs "mask2former-hf"' in markdown
    data_hash = summary(runs / "mme" / "shapes-answerer")["protocol"]["data_hash"]
    assert f'benchmark part differs: data_hash = "{data_hash}" vs "0000000000000000"' in markdown[:header]
    top = table(markdown, "# Comparison report")
    assert top["geneval"][5:] == ["not comparable", "not comparable"]
    assert top["mme"][5:] == ["not comparable", "not comparable"]
    assert top["dpg"][6] == "▲ better"  # the untouched benchmark is still compared
    geneval = table(markdown, "## geneval")
    assert geneval["overall"][1:4] == ["1.0000", "0.0000", "not comparable"]  # values shown, no difference
    assert "McNemar" not in markdown.split("## geneval")[1].split("## mme")[0]
    assert "flipped outcomes" not in page.split("id='geneval'")[1].split("id='mme'")[0].lower()
    assert page.index("NOT COMPARABLE: geneval") < page.index("class='summary'")


@dataclass(frozen=True)
class StandIn:
    """The fields of reports.baselines.Published, with Janus-Pro-7B's GenEval numbers
    (PROTOCOLS.md section 7), marked secondary to check the flag."""

    name: str = "stand-in"
    model: str = "Janus-Pro-7B"
    source: str = "PROTOCOLS.md section 7"
    scores: dict = None
    verified: dict = None
    setup: dict = None


JANUS_PRO_7B_GENEVAL = {"overall": 0.80, "tasks": {"single_object": 0.99, "two_object": 0.89, "counting": 0.59,
                                                   "colors": 0.90, "position": 0.79, "color_attr": 0.66}}


def test_published_baseline_marks_the_shapes_world_not_comparable(runs, tmp_path):
    from reports.baselines import get_published

    markdown, page = report(runs, tmp_path, procedural(runs), get_published("janus-pro-7b"))
    top = table(markdown, "# Comparison report")
    assert top["geneval"][2:] == ["published:janus-pro-7b", "1.0000", "0.8000", "not comparable", "not comparable"]
    assert top["mme (perception)"][3:5] == ["800.00", "1567.10"]
    assert top["mmbench"][3:5] == ["1.0000", "0.7920"]
    protocol = summary(runs / "geneval" / "shapes-renderer")["protocol"]
    reasons = GenEval.departures_from_official(protocol)
    assert reasons and all(reason in markdown for reason in reasons)
    assert markdown.index("NOT COMPARABLE: geneval") < markdown.index("| benchmark |")
    assert "+0.2000" not in markdown and "+0.2000" not in page
    geneval = table(markdown, "## geneval")
    assert geneval["counting"][1:5] == ["1.0000", "[1.0000, 1.0000]", "0.5900", "not comparable"]
    assert "published:janus-pro-7b has no imgedit numbers" in markdown


def test_published_difference_only_for_the_official_setup(runs, tmp_path, monkeypatch):
    monkeypatch.setattr(GenEval, "departures_from_official", classmethod(lambda cls, protocol: []))
    stand_in = StandIn(scores={"geneval": JANUS_PRO_7B_GENEVAL}, verified={"geneval": False},
                       setup={"geneval": {"images_per_prompt": "not published"}})
    markdown, page = report(runs, tmp_path, [runs / "geneval" / "shapes-renderer"], stand_in)
    assert "NOT COMPARABLE" not in markdown
    top = table(markdown, "# Comparison report")
    # 1.0 - 0.80; the candidate's interval [1, 1] lies above the published value
    assert top["geneval"][2:] == ["published:stand-in (secondary)", "1.0000", "0.8000", "+0.2000", "▲ better"]
    geneval = table(markdown, "## geneval")
    assert geneval["counting"][4] == "+0.4100" and geneval["single_object"][4] == "+0.0100"
    assert "SECONDARY source" in markdown and "class='secondary'" in page


def test_mmbench_categories_get_statistics_through_the_group_key_hook(runs):
    """MMBench records carry full L2 names while its summary abbreviates them (CP, FP-S)."""
    assert MMBench.breakdown_key_of_group("coarse_perception") == L2_ABBREVIATIONS["coarse_perception"]
    candidate, baseline = runs / "mmbench" / "shapes-answerer", runs / "mmbench" / "tiny-janus"
    (section,) = build_sections([candidate], [baseline], n_boot=N_BOOT)
    categories = [row for row in section.rows if not row.headline]
    assert {row.label for row in categories} == set(summary(candidate)["scores"]["l2"])
    assert sum(row.n_items for row in categories) == 12  # every question in exactly one L2 category
    assert all(row.test.startswith("McNemar") and row.p_holm is not None for row in categories)


def test_run_folders_are_found_and_baselines_must_be_unique(runs, tmp_path):
    assert find_runs([runs / "geneval"]) == [runs / "geneval" / "shapes-renderer", runs / "geneval" / "tiny-janus"]
    with pytest.raises(InputError, match="two baseline runs of 'geneval'"):
        write_comparison([runs / "geneval" / "shapes-renderer"], [runs / "geneval"], tmp_path)
    with pytest.raises(InputError, match="no finished run"):
        find_runs([tmp_path])


def test_html_renders_in_headless_chromium(runs, tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not installed")
    _, html_path = write_comparison(procedural(runs), tiny_janus(runs), tmp_path / "out", n_boot=N_BOOT)
    common = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
              f"--user-data-dir={tmp_path / 'profile'}"]
    url = html_path.resolve().as_uri()
    screenshot = tmp_path / "shot.png"
    shot = subprocess.run([*common, f"--screenshot={screenshot}", "--window-size=1200,2400", url],
                          capture_output=True, text=True, timeout=120)
    assert shot.returncode == 0, shot.stderr[-2000:]
    dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert '<table class="summary">' in dom.stdout and "▲ better" in dom.stdout
    with Image.open(screenshot) as image:
        assert image.format == "PNG" and image.size == (1200, 2400)
        pixels = np.asarray(image.convert("L"), dtype=float)
    assert pixels.std() > 20  # text, tables and plots, not a blank page


def test_runs_whose_data_moved_show_values_without_statistics(runs, tmp_path):
    moved = []
    for model in ("shapes-answerer", "tiny-janus"):
        dest = tmp_path / "moved" / model
        shutil.copytree(runs / "mmbench" / model, dest, ignore=shutil.ignore_patterns("cache"))
        spec = dest / "spec.yaml"
        data = summary(dest)["protocol"]["data_file"]
        spec.write_text(spec.read_text().replace(f"/{data}", "/moved-away.tsv"))
        moved.append(dest)
    markdown, _ = report(runs, tmp_path / "out", [moved[0]], [moved[1]])
    assert "no statistics for shapes-answerer" in markdown and "no statistics for tiny-janus" in markdown
    top = table(markdown, "# Comparison report")
    assert top["mmbench"][3:] == ["1.0000", "0.0000", "+1.0000", "n/a"]  # a difference, no interval


def test_large_images_are_embedded_as_thumbnails(tmp_path):
    import base64
    import io

    from reports.compare_html import THUMBNAIL, _thumbnail

    Image.new("RGB", (384, 256), "red").save(tmp_path / "big.png")
    with Image.open(io.BytesIO(base64.b64decode(_thumbnail(tmp_path / "big.png")))) as image:
        assert image.size == (THUMBNAIL, THUMBNAIL * 256 // 384)
