"""Which protocol cards match the official setups behind published numbers."""
from harness import registry


def _departures(benchmark: str, protocol: dict) -> list[str]:
    return registry.get("benchmark", benchmark).departures_from_official(protocol)


OFFICIAL_GENEVAL = {
    "prompt_set": "official", "images_per_prompt": 4,
    "options": {"threshold": 0.3, "counting_threshold": 0.9, "max_objects": 16, "max_overlap": 1.0,
                "position_threshold": 0.1},
    "judges": {"detector": {"name": "mmdet-mask2former", "params": {}},
               "color_classifier": {"name": "open-clip", "params": {"model": "ViT-L-14", "pretrained": "openai"}}},
}


def test_the_official_geneval_setup_has_no_departures_and_each_change_is_named():
    assert _departures("geneval", OFFICIAL_GENEVAL) == []
    shapes = {**OFFICIAL_GENEVAL, "prompt_set": "shapes", "images_per_prompt": 1,
              "options": {**OFFICIAL_GENEVAL["options"], "threshold": 0.5},
              "judges": {"detector": {"name": "mask2former-hf"}, "color_classifier": {"name": "shapes"}}}
    reasons = _departures("geneval", shapes)
    assert len(reasons) == 5
    assert any("not the official 553" in r for r in reasons) and any("mask2former-hf" in r for r in reasons)


def test_understanding_setups():
    assert _departures("mme", {"complete_release": True}) == []
    assert "4 of 14 subtasks" in _departures("mme", {"complete_release": False, "subtasks": ["a"] * 4, "images": 40})[0]
    judged = {"questions": 1164, "data_file": "MMBench_DEV_EN.tsv", "circular": "rows",
              "judges": {"choice_extractor": {"name": "openai-compatible"}}}
    assert _departures("mmbench", judged) == []
    assert len(_departures("mmbench", {**judged, "data_file": "MMBench_DEV_CN.tsv"})) == 1  # published: EN
    assert len(_departures("mmbench", {**judged, "circular": "off"})) == 1  # published: CircularEval
    shapes = {"questions": 40, "data_file": "mmbench-shapes-40-seed0.tsv", "circular": "rows", "judges": {}}
    assert len(_departures("mmbench", shapes)) == 3


def test_a_limited_run_is_never_the_official_setup():
    from reports.protocols import official_departures

    full = {"benchmark": "mme", "complete_release": True, "limit": None}
    assert official_departures(full) == []
    assert official_departures({**full, "limit": 5}) == ["limit 5: only the first items were evaluated"]


def test_dpg_is_official_only_when_judged_by_the_mplug_port():
    protocol = {"prompt_set": "official", "tiles_per_prompt": 4, "mode": "official",
                "judges": {"vqa": {"name": "hf-vqa"}}}
    assert len(_departures("dpg", protocol)) == 1 and "mPLUG" in _departures("dpg", protocol)[0]
    protocol["judges"]["vqa"]["name"] = "mplug"
    assert _departures("dpg", protocol) == []


def test_an_imgedit_number_is_comparable_only_with_runs_judged_by_the_same_family():
    from reports.baselines import get_published
    from reports.compare import _judge_mismatch

    def judged_by(model):
        return {"judges": {"judge": {"name": "openai-compatible", "params": {"model": model}}}}

    gpt41, paper = get_published("janus-4o-7b-gpt41"), get_published("janus-4o-7b")
    assert _judge_mismatch(judged_by("gpt-4.1-2025-04-14"), gpt41, "imgedit") == []
    assert "gpt-4.1" in _judge_mismatch(judged_by("gpt-4o-2024-08-06"), gpt41, "imgedit")[0]
    assert _judge_mismatch(judged_by("gpt-4o-2024-08-06"), paper, "imgedit") == []
    assert _judge_mismatch(judged_by("gpt-4.1-2025-04-14"), paper, "imgedit") != []
