"""The published-baseline registry: PROTOCOLS.md section 7 on the harness's scales, lookups, checks.

Expected numbers are typed in from PROTOCOLS.md section 7 (and converted by hand: MMBench 79.2 ->
0.792), never read back from reports/published.yaml.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import InputError
from reports.baselines import Published, get_published, load_published, parse_baseline, published_names


def test_every_section_7_entry_is_there():
    gpt_image_edit_readme = {"gpt-image-edit", "flux-kontext-dev-by-gpt-image-edit", "step1x-edit-by-gpt-image-edit",
                             "step1x-edit-v1.1-by-gpt-image-edit"}  # GEdit/Complex-Edit tables: tests/test_gedit.py
    assert set(published_names()) == {
        "janus-pro-7b", "janus-pro-1b", "janus-4o-7b", "janus-4o-7b-gpt41",
        "janus-pro-7b-remeasured-by-janus4o", "sharegpt4v-7b", "llava-1.5-7b"} | gpt_image_edit_readme


def test_janus_pro_geneval_tags_and_headline():
    seven = get_published("janus-pro-7b").scores["geneval"]
    assert seven["overall"] == 0.80
    assert seven["tasks"] == {"single_object": 0.99, "two_object": 0.89, "counting": 0.59, "colors": 0.90,
                              "position": 0.79, "color_attr": 0.66}
    # PROTOCOLS 1.5 / 7: the tag means give 0.80333, printed 0.80
    assert sum(seven["tasks"].values()) / 6 == pytest.approx(0.80333, abs=5e-6)
    one = get_published("janus-pro-1b").scores["geneval"]
    assert one["overall"] == 0.73 and one["tasks"]["position"] == 0.65 and one["tasks"]["color_attr"] == 0.56


def test_dpg_l1_uses_the_benchmark_names_on_the_0_100_scale():
    seven = get_published("janus-pro-7b").scores["dpg"]
    assert seven == {"overall": 84.19, "l1": {"global": 86.90, "entity": 88.90, "attribute": 89.40,
                                              "relation": 89.32, "other": 89.48}}
    assert get_published("janus-pro-1b").scores["dpg"]["l1"]["global"] == 87.58
    assert get_published("janus-4o-7b").scores["dpg"] == {"overall": 85.71}  # the suspicious Global left out
    assert get_published("janus-pro-7b-remeasured-by-janus4o").scores["dpg"] == {"overall": 84.12}


def test_mmbench_on_the_0_1_scale_with_its_setup():
    assert get_published("janus-pro-7b").scores["mmbench"] == {"overall": 0.792}
    assert get_published("janus-pro-1b").scores["mmbench"]["overall"] == 0.755
    assert get_published("sharegpt4v-7b").scores["mmbench"]["overall"] == 0.688
    assert get_published("llava-1.5-7b").scores["mmbench"]["overall"] == 0.643
    assert get_published("janus-pro-7b").setup["mmbench"]["split"] == "not stated"
    share = get_published("sharegpt4v-7b").setup["mmbench"]
    assert share["split"].startswith("dev") and share["language"] == "en" and share["cn_overall"] == 0.622
    assert get_published("llava-1.5-7b").setup["mmbench"]["cn_overall"] == 0.583


def test_mme_points():
    assert get_published("janus-pro-7b").scores["mme"] == {"overall": None, "perception": 1567.1, "cognition": None}
    assert get_published("janus-pro-1b").scores["mme"]["perception"] == 1444.0
    assert get_published("llava-1.5-7b").scores["mme"]["perception"] == 1510.7
    share = get_published("sharegpt4v-7b").scores["mme"]
    assert (share["perception"], share["cognition"]) == (1567.4, 376.4)
    assert share["overall"] == pytest.approx(1567.4 + 376.4)


def test_imgedit_judges_are_separate_entries():
    gpt41 = get_published("janus-4o-7b-gpt41")
    types = {"add": 3.35, "adjust": 3.35, "extract": 2.25, "replace": 3.01, "remove": 2.18, "background": 3.32,
             "style": 4.71, "compose": 2.49, "action": 4.04}
    assert gpt41.scores["imgedit"] == {"overall": 3.19, "types": types}
    assert sum(types.values()) / 9 == pytest.approx(3.18889, abs=5e-6)  # PROTOCOLS 7 fixture
    assert "GPT-4.1" in gpt41.setup["imgedit"]["judge"]
    paper = get_published("janus-4o-7b").scores["imgedit"]
    assert paper == {"overall": 3.26, "types": {"action": 4.13, "style": 4.47, "replace": 3.27, "background": 3.32}}
    assert get_published("janus-4o-7b").setup["imgedit"]["judge"].startswith("the paper's judge")


def test_verified_flags_follow_the_warning_of_section_7():
    assert get_published("janus-pro-7b").verified == {"geneval": True, "dpg": True, "mme": True, "mmbench": True}
    assert get_published("sharegpt4v-7b").verified == {"mme": True, "mmbench": True}
    assert get_published("llava-1.5-7b").verified == {"mme": True, "mmbench": True}
    for name in ("janus-4o-7b", "janus-4o-7b-gpt41", "janus-pro-7b-remeasured-by-janus4o"):
        assert not any(get_published(name).verified.values()), name
    assert "(secondary)" in get_published("janus-4o-7b").provenance("geneval")
    assert "(verified)" in get_published("janus-pro-7b").provenance("dpg")


def test_lookup_is_case_insensitive_and_returns_a_copy():
    entry = get_published("Janus-Pro-7B")
    assert entry.model == "Janus-Pro-7B" and "2501.17811" in entry.source
    entry.scores["geneval"]["overall"] = 0.0
    assert get_published("janus-pro-7b").scores["geneval"]["overall"] == 0.80


def test_unknown_name_suggests_the_close_one():
    with pytest.raises(InputError, match=r"did you mean 'janus-pro-7b'"):
        get_published("janus-pro-7")
    with pytest.raises(InputError, match=r"did you mean 'llava-1.5-7b'"):
        parse_baseline("published:llava-15-7b")


def test_parse_baseline(tmp_path: Path):
    entry = parse_baseline("published:janus-pro-1b")
    assert isinstance(entry, Published) and entry.scores["geneval"]["overall"] == 0.73
    assert parse_baseline(str(tmp_path)) == tmp_path
    with pytest.raises(InputError, match="neither"):
        parse_baseline(str(tmp_path / "missing"))


GOOD_ENTRY = """\
version: 1
entries:
  fine:
    model: Fine
    source: somewhere
    benchmarks:
      mme: {verified: true, scores: {overall: null, perception: 1500.0, cognition: null}, setup: {}}
  bad-entry:
    model: Bad
    source: somewhere else
    benchmarks:
"""


@pytest.mark.parametrize("block, message", [
    ("      mmbench: {verified: true, scores: {overall: 79.2}}\n", r"mmbench.overall = 79.2 is off the harness scale"),
    ("      genevl: {verified: true, scores: {overall: 0.5}}\n", r"did you mean 'geneval'"),
    ("      geneval: {verified: true, scores: {overall: 0.5, tasks: {colours: 0.5}}}\n", r"did you mean 'colors'"),
    ("      dpg: {scores: {overall: 80.0}}\n", r"'verified' must be true"),
    ("      imgedit: {verified: false, scores: {overall: 3.5, types: {add: 3, adjust: 3, extract: 3, replace: 3,"
     " remove: 3, background: 3, style: 3, compose: 3, action: 3}}}\n", r"mean of its types is 3.00000"),
    ("      mme: {verified: true, scores: {overall: 2000.0, perception: 1500.0, cognition: 400.0}}\n",
     r"perception \+ cognition"),
    ("      dpg: {verified: true, scores: {l1: {global: 80}}}\n", r"'overall'"),
])
def test_bad_entries_are_input_errors_naming_file_and_entry(tmp_path: Path, block: str, message: str):
    path = tmp_path / "published.yaml"
    path.write_text(GOOD_ENTRY + block, encoding="utf-8")
    with pytest.raises(InputError, match=message) as caught:
        load_published(path)
    assert "entry 'bad-entry'" in str(caught.value)
    assert caught.value.path == path and caught.value.line == 8  # the line of the entry's name


def test_a_good_file_loads_and_syntax_errors_name_the_line(tmp_path: Path):
    path = tmp_path / "published.yaml"
    path.write_text(GOOD_ENTRY.split("  bad-entry:")[0], encoding="utf-8")
    assert load_published(path)["fine"].scores["mme"]["perception"] == 1500.0
    path.write_text("version: 1\nentries:\n  x: [unclosed\n", encoding="utf-8")
    with pytest.raises(InputError, match="not valid YAML") as caught:
        load_published(path)
    assert caught.value.path == path and caught.value.line is not None
