"""World profiles: a scene, prompt, question or edit drawn from a profile never holds anything outside
it (every benchmark's writer, the recipe, the tokenizer's scenes and edits); the full profile is the
default and changes nothing; the detector chooses only among the profile's shapes; two profiles
give different protocol cards and hashes and are never compared."""
from __future__ import annotations

import re

import numpy as np
import pytest

from shapes.dense import BACKGROUND_PHRASES, dpg_shapes_items
from shapes.edits import EDIT_TYPES, apply_edits, edit_types, imgedit_shapes_items, random_edit
from shapes.prompts import geneval_prompts, prompt_set_name, random_geneval_prompt
from shapes.understanding import mme_shapes_items
from shapes.understanding_mmbench import KINDS, mmbench_shapes_items, question_kinds
from shapes.world import (COLORS, FULL, GRID, PLURALS, SHAPES, Scene, ShapeObject, WorldProfile,
                          get_profile, random_scene, render, scene_for_metadata, scene_outside_profile)

#: every word of the full world that names a thing a profile may lack
_NAMES = {**{s: ("shape", s) for s in SHAPES}, **{p: ("shape", s) for s, p in PLURALS.items()},
          **{c: ("color", c) for c in COLORS}}


def words_outside(text: str, profile: WorldProfile) -> list[str]:
    """Shape, colour and background words in ``text`` that the profile does not have."""
    found = []
    for word in re.findall(r"[a-z]+", text.lower()):
        kind, name = _NAMES.get(word, (None, None))
        if (kind == "shape" and name not in profile.shapes) or (kind == "color" and name not in profile.colors):
            found.append(word)
    for name, phrase in BACKGROUND_PHRASES.items():
        if name not in profile.backgrounds and re.search(rf"\b{phrase}\b", text.lower()):
            found.append(phrase)
    return found


def test_the_grid_profile_is_the_measured_one():
    assert GRID.shapes == ("circle", "square", "triangle") and GRID.colors == COLORS
    assert GRID.backgrounds == ("grey",) and GRID.image_size == 32 and GRID.grid == 8
    assert GRID.grid_sides == (2, 3) and GRID.sides_for(3) == (2,)
    assert get_profile(None) is FULL and get_profile("grid") is GRID and get_profile(GRID) is GRID
    with pytest.raises(ValueError, match="unknown shapes-world profile"):
        get_profile("nope")
    with pytest.raises(ValueError, match="unknown"):
        WorldProfile("bad", shapes=("hexagon",))


def test_the_full_profile_is_the_default_and_changes_nothing():
    assert geneval_prompts(12, 3) == geneval_prompts(12, 3, profile=FULL) == geneval_prompts(12, 3, profile="full")
    for make in (lambda p: random_scene(np.random.default_rng(4), profile=p),
                 lambda p: scene_for_metadata(random_geneval_prompt(np.random.default_rng(5), profile=p),
                                              np.random.default_rng(6), distractors=2, profile=p)):
        assert make(None) == make(FULL)
    assert [i.prompt for i in dpg_shapes_items(6, 1)] == [i.prompt for i in dpg_shapes_items(6, 1, FULL)]
    assert [i.prompt for i in imgedit_shapes_items(14, 2)] == [i.prompt for i in imgedit_shapes_items(14, 2, FULL)]
    assert edit_types() == EDIT_TYPES and question_kinds() == KINDS
    assert prompt_set_name(FULL) == "shapes" and prompt_set_name(GRID) == "shapes-grid"


def _check_scene(scene: Scene, profile: WorldProfile, where: str) -> None:
    assert scene_outside_profile(scene, profile) == [], f"{where}: {scene}"


@pytest.mark.parametrize("profile", [GRID, WorldProfile("two", shapes=("square", "star"), colors=("red", "blue"),
                                                        backgrounds=("beige", "grey_gradient"))])
def test_nothing_drawn_from_a_profile_leaves_it(profile):
    for seed in range(40):
        rng = np.random.default_rng(seed)
        _check_scene(random_scene(rng, profile=profile), profile, "random_scene")
        metadata = random_geneval_prompt(rng, profile=profile)
        assert words_outside(metadata["prompt"], profile) == []
        _check_scene(scene_for_metadata(metadata, rng, distractors=3, profile=profile), profile, metadata["prompt"])
    for metadata in geneval_prompts(20, 0, profile=profile):  # GenEval
        assert words_outside(metadata["prompt"], profile) == [], metadata["prompt"]
    for item in dpg_shapes_items(25, 0, profile):  # DPG: prompt, questions, scene
        assert words_outside(item.prompt, profile) == [], item.prompt
        assert all(words_outside(p.question, profile) == [] for p in item.propositions)
        _check_scene(item.scene, profile, item.prompt)
    for item in mme_shapes_items(8, 0, profile):  # MME: both questions and the scene
        assert words_outside(item.yes_question + item.no_question, profile) == []
        _check_scene(item.scene, profile, item.yes_question)
    for item in mmbench_shapes_items(36, 0, profile):  # MMBench: question, every option, the scene
        assert len(item.options) >= 2
        assert words_outside(" ".join([item.question, *item.options]), profile) == [], item
        _check_scene(item.scene, profile, item.question)
    for index, item in enumerate(imgedit_shapes_items(35, 0, profile)):  # ImgEdit: source, instruction, result
        assert words_outside(item.prompt, profile) == [], item.prompt
        _check_scene(item.scene, profile, item.prompt)
        _check_scene(apply_edits(item.scene, item.edits, np.random.default_rng(index), profile), profile,
                     f"after {item.prompt}")


def test_edits_with_three_shapes_make_every_type_they_can():
    assert edit_types(GRID) == ("add", "remove", "replace", "adjust", "extract", "compose")
    for edit_type in edit_types(GRID):
        for seed in range(60):  # add and replace need a shape the scene lacks: this used to crash
            rng = np.random.default_rng(seed)
            scene, edits = random_edit(rng, edit_type, GRID)
            target = apply_edits(scene, edits, rng, GRID)
            _check_scene(target, GRID, edit_type)
            if edit_type in ("add", "replace"):
                assert target != scene
    with pytest.raises(ValueError, match="cannot make 'background' edits"):
        random_edit(np.random.default_rng(0), "background", GRID)


def test_the_recipe_and_the_tokenizer_draw_from_the_profile():
    from harness.recipe import StepContext
    from generators.shapes import ShapesRender, ShapesWorld, ShapesWrongCaptions
    from trainers.shapes_vq import held_out_scenes

    ctx = StepContext(0, "shapes-world", None, {})
    rows = ShapesWorld(t2i=60, edits=20, profile="grid").rows(ctx)
    for row in rows:
        assert words_outside(row["input_prompt"], GRID) == []
        _check_scene(Scene.from_dict(row["scene"]), GRID, row["input_prompt"])
        if row["input_scene"]:
            _check_scene(Scene.from_dict(row["input_scene"]), GRID, row["input_prompt"])
    assert ShapesRender(profile="grid").size == 32 and ShapesRender().size == 64
    with pytest.raises(ValueError, match="backgrounds from"):
        ShapesWorld(profile="grid", backgrounds=["beige"])
    wrong = ShapesWrongCaptions(share=1.0, profile="grid").generate(rows, StepContext(0, "wrong", None, {}))
    for row, out in zip(rows, wrong):
        assert out["true_prompt"] == row["input_prompt"] and words_outside(out["input_prompt"], GRID) == []
        named = row["task"] in ("colors", "color_attr", "counting")
        assert bool(out["caption_error"]) == named and (out["input_prompt"] != row["input_prompt"]) == named
    kept = ShapesWrongCaptions(share=0.0).generate(rows, StepContext(0, "wrong", None, {}))
    assert all(out["input_prompt"] == row["input_prompt"] for row, out in zip(rows, kept))
    for scene in held_out_scenes(40, profile="grid"):
        _check_scene(scene, GRID, "tokenizer scene")


def test_the_detector_chooses_only_among_the_profiles_shapes():
    from harness.judges.base import Detection
    from shapes.detector import ShapesColorClassifier, ShapesDetector

    scene = Scene((ShapeObject("star", "red", 0.3, 0.3, 0.3), ShapeObject("diamond", "blue", 0.7, 0.7, 0.3)))
    image = render(scene, 64)
    assert {d.label for d in ShapesDetector().detect_one(image)} == {"star", "diamond"}
    assert {d.label for d in ShapesDetector(profile="grid").detect_one(image)} <= set(GRID.shapes)
    few = WorldProfile("few", colors=("red", "green"))
    colours = ShapesColorClassifier(profile=few).classify(image, [Detection("star", 1.0, [15, 15, 24, 24])],
                                                         "star", COLORS)
    assert colours == ["red"] and {d.color for d in ShapesDetector(profile=few).detect_one(image)} <= {"red", "green"}
    with pytest.raises(ValueError, match="unknown shapes-world profile"):
        ShapesDetector(profile="nope")


def test_the_grid_world_is_drawn_and_read_back_exactly(tmp_path):
    """The shapes renderer in the grid profile passes every shapes-grid GenEval prompt at 32 px."""
    from harness.runner import evaluate
    from harness.spec import ComponentSpec, RunSpec

    judges = {"detector": ComponentSpec("shapes", {"profile": "grid"}),
              "color_classifier": ComponentSpec("shapes", {"profile": "grid"})}
    spec = RunSpec(ComponentSpec("geneval", {"prompts": "shapes-grid", "per_tag": 4, "images_per_prompt": 2}),
                   ComponentSpec("shapes-renderer", {"size": 32, "profile": "grid"}), judges, seed=0)
    assert evaluate(spec, tmp_path / "run", show_progress=False).summary.scores["overall"] == 1.0


def test_two_profiles_give_different_cards_and_hashes_and_are_never_compared(tmp_path):
    from harness.runner import evaluate
    from harness.spec import ComponentSpec, RunSpec
    from reports.compare import build_sections
    from shapes.eval_stage import EvalStage
    from trainers.shapes_vq import ShapesVQSettings

    stage = EvalStage()
    params = {"models": {"m": "model"}, "benchmarks": ["geneval", "dpg", "imgedit", "mme", "mmbench"]}

    class Model:
        target = tmp_path / "model"

    full = stage.specs(params, {"model": Model}, tmp_path / "full", seed=0)
    grid = stage.specs({**params, "profile": "grid"}, {"model": Model}, tmp_path / "grid", seed=0)
    for name in params["benchmarks"]:
        ours, theirs = full[name]["m"], grid[name]["m"]
        assert ours.hash != theirs.hash and ours.world is None
        assert theirs.world["shapes_profile"]["name"] == "grid"
        assert all(judge.params.get("profile") == "grid" for judge in theirs.judges.values())
    assert grid["geneval"]["m"].benchmark.params["prompts"] == "shapes-grid"
    assert ShapesVQSettings(profile="grid").identity() != ShapesVQSettings().identity()
    assert "profile" not in ShapesVQSettings().identity()  # tokenizers made before profiles keep their hashes

    # the same procedural model on both worlds: different cards and artifact hashes, not compared
    runs = {}
    for profile, size in (("full", 64), ("grid", 32)):
        world = None if profile == "full" else {"shapes_profile": get_profile(profile).describe()}
        judges = {role: ComponentSpec("shapes", {} if profile == "full" else {"profile": profile})
                  for role in ("detector", "color_classifier")}
        spec = RunSpec(ComponentSpec("geneval", {"prompts": prompt_set_name(profile), "per_tag": 2,
                                                 "images_per_prompt": 1}),
                       ComponentSpec("shapes-renderer", {"size": size}), judges, seed=0, world=world)
        runs[profile] = (tmp_path / profile, evaluate(spec, tmp_path / profile, show_progress=False))
    (full_dir, full_run), (grid_dir, grid_run) = runs["full"], runs["grid"]
    assert full_run.summary.protocol != grid_run.summary.protocol
    assert "world" in grid_run.summary.protocol and "world" not in full_run.summary.protocol
    assert full_run.artifact.hash != grid_run.artifact.hash
    (section,) = build_sections([grid_dir], [full_dir], n_boot=50)
    assert section.not_comparable and all(row.difference is None for row in section.rows)


def test_patch_groups_and_consistency_see_only_identical_pixels():
    import torch

    from trainers.shapes_vq import to_pixels
    from trainers.shapes_vq_training import _patch_consistency, _patch_groups

    scene = Scene((ShapeObject("square", "red", 0.25, 0.25, 0.25), ShapeObject("circle", "blue", 0.6875, 0.6875, 0.375)))
    pixels = to_pixels([render(scene, 32), render(Scene((), "grey"), 32)])
    groups = _patch_groups(pixels, 4).tolist()
    tiles = [pixels[i // 64, :, (i % 64) // 8 * 4:(i % 64) // 8 * 4 + 4, i % 8 * 4:i % 8 * 4 + 4] for i in range(128)]
    assert len(groups) == 128 and groups[0] == groups[127]  # the grey corners of both images
    for i in range(0, 128, 3):
        for j in range(i + 1, 128, 5):
            assert (groups[i] == groups[j]) == bool(torch.equal(tiles[i], tiles[j]))
    same = torch.nn.functional.normalize(torch.ones(128, 8), dim=1)
    assert float(_patch_consistency(same, pixels, 4)) < 1e-9
    spread = same.clone()
    spread[0] = -spread[0]
    assert float(_patch_consistency(spread, pixels, 4)) > 1e-3


def test_a_context_free_tokenizer_trains_in_the_grid_world(tmp_path):
    from harness.artifacts import read_manifest
    from trainers.shapes_vq import ShapesVQSettings, train_shapes_vq

    settings = dict(profile="grid", image_size=32, patch_size=4, num_res_blocks=0, steps=12, batch_size=2,
                    autoencoder_steps=4, consistency_weight=1.0, group_code_steps=8, reseed_from="farthest",
                    reseed_every=4, eval_scenes=4)
    out = train_shapes_vq(tmp_path / "vq", **settings)
    info = read_manifest(out).info
    assert 0.0 <= info["held_out_accuracy"] <= 1.0 and info["codes_reseeded"] > 0
    assert read_manifest(out).spec["profile"] == "grid" and read_manifest(out).spec["reseed_from"] == "farthest"
    with pytest.raises(ValueError, match="reseed_from"):
        ShapesVQSettings(reseed_from="nearest")
