"""Issue 17's acceptance for every shapes benchmark: what a benchmark draws from the ``grid`` profile
(prompts, questions, edit instructions, source and target scenes, the files its writer and
``harness shapes-data`` write) never holds a shape, colour, background, size or position outside the
profile; its judges choose only among the profile's shapes; two profiles give different protocol cards
and artifact hashes. Each table below lists every benchmark of ``shapes.suite``, so a new one must
join them."""
from __future__ import annotations

import base64
import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

from shapes.complex_edit_shapes import IMAGE_TYPES, LEVELS, complex_edit_shapes_items
from shapes.dense import dpg_shapes_items
from shapes.detector import ShapesDetector
from shapes.edits import apply_edits, imgedit_shapes_items
from shapes.gedit_shapes import TYPE_KINDS, gedit_shapes_items
from shapes.prompts import geneval_prompts
from shapes.suite import SHAPES_BENCHMARKS
from shapes.understanding import mme_shapes_items
from shapes.understanding_mmbench import mmbench_shapes_items
from shapes.vqa_judge import observe
from shapes.world import FULL, GRID, Scene, ShapeObject, WorldProfile, render, scene_for_metadata, scene_outside_profile
from tests.test_shapes_profiles import words_outside

Drawn = Iterator[tuple[str, list[Scene]]]  # (the item's text, its scenes: source, then targets)


def _geneval(profile: WorldProfile) -> Drawn:
    for n, metadata in enumerate(geneval_prompts(12, 0, profile=profile)):  # a scene that satisfies it
        yield metadata["prompt"], [scene_for_metadata(metadata, np.random.default_rng(n), distractors=2,
                                                      profile=profile)]


def _dpg(profile: WorldProfile) -> Drawn:
    for item in dpg_shapes_items(25, 0, profile):
        yield " ".join([item.prompt, *(p.question for p in item.propositions)]), [item.scene]


def _imgedit(profile: WorldProfile) -> Drawn:
    for n, item in enumerate(imgedit_shapes_items(30, 0, profile)):
        yield item.prompt, [item.scene, apply_edits(item.scene, item.edits, np.random.default_rng(n), profile)]


def _gedit(profile: WorldProfile) -> Drawn:
    for n, item in enumerate(gedit_shapes_items(40, 0, profile)):
        yield item.instruction, [item.scene, apply_edits(item.scene, item.edits, np.random.default_rng(n), profile)]


def _complex_edit(profile: WorldProfile) -> Drawn:
    for image_type in IMAGE_TYPES:
        for item in complex_edit_shapes_items(20, 0, image_type, profile):
            assert len(item.edits) == len(item.results) == LEVELS
            yield item.compound(LEVELS), [item.scene, *item.results]


def _mme(profile: WorldProfile) -> Drawn:
    for item in mme_shapes_items(6, 0, profile):
        yield item.yes_question + " " + item.no_question, [item.scene]


def _mmbench(profile: WorldProfile) -> Drawn:
    for item in mmbench_shapes_items(40, 0, profile):
        yield " ".join([item.question, item.hint or "", *item.options]), [item.scene]


DRAWN: dict[str, Callable[[WorldProfile], Drawn]] = {
    "geneval": _geneval, "dpg": _dpg, "imgedit": _imgedit, "gedit": _gedit, "complex_edit": _complex_edit,
    "mme": _mme, "mmbench": _mmbench}
#: the smallest data and benchmark sizes that still run each benchmark (eval stage parameters)
SMALL: dict[str, dict[str, int]] = {
    "geneval": {"per_tag": 1, "images_per_prompt": 1}, "dpg": {"items": 3}, "imgedit": {"items": 6},
    "gedit": {"items": 8}, "complex_edit": {"items": 3}, "mme": {"images_per_subtask": 2}, "mmbench": {"questions": 8}}


def test_every_benchmark_is_checked():
    assert set(DRAWN) == set(SMALL) == set(SHAPES_BENCHMARKS)


def test_the_profile_check_catches_each_way_out():
    """``scene_outside_profile``, which the tests below rely on, names every thing outside the grid world."""
    ok = ShapeObject("circle", "red", 0.25, 0.25, 0.25)  # cells [1, 3) x [1, 3)
    assert scene_outside_profile(Scene((ok, replace(ok, cx=0.75, cy=0.75))), GRID) == []
    outside = {
        "shape star": Scene((replace(ok, shape="star"),)),
        "background beige": Scene((ok,), "beige"),
        "off the grid": Scene((replace(ok, cx=0.3),)),
        "of side 1 cells": Scene((replace(ok, cx=0.1875, cy=0.1875, size=0.125),)),
        "on the border": Scene((replace(ok, cx=0.125, cy=0.125),)),
        "closer than the gap": Scene((ok, replace(ok, cx=0.5))),
        "boxes larger than 2 cells": Scene((replace(ok, cx=0.3125, cy=0.3125, size=0.375),
                                            replace(ok, cx=0.75, cy=0.25), replace(ok, cx=0.25, cy=0.75))),
        "5 objects": Scene(tuple(ShapeObject("square", "blue", (1 + 3 * (k % 2)) / 8, (1 + 2 * (k // 2)) / 8, 0.25)
                                 for k in range(5))),
    }
    for problem, scene in outside.items():
        assert any(problem in found for found in scene_outside_profile(scene, GRID)), problem
    few = WorldProfile("few", colors=("red", "blue"))
    assert scene_outside_profile(Scene((replace(ok, color="pink"),)), few) == ["colour pink"]


@pytest.mark.parametrize("name", list(DRAWN))
def test_what_every_benchmark_draws_stays_in_the_grid_profile(name):
    count = 0
    for text, scenes in DRAWN[name](GRID):
        assert words_outside(text, GRID) == [], text
        for scene in scenes:
            assert scene_outside_profile(scene, GRID) == [], f"{name}: {text}: {scene}"
            count += 1
    assert count >= 20
    if name in ("gedit", "complex_edit"):  # the full world is still drawn where no profile is given
        shapes = {o.shape for _, scenes in DRAWN[name](FULL) for scene in scenes for o in scene.objects}
        assert not shapes <= set(GRID.shapes)


def test_gedit_writes_only_the_types_the_profile_can_make():
    assert {item.task_type for item in gedit_shapes_items(10, 0)} == set(TYPE_KINDS)
    assert {item.task_type for item in gedit_shapes_items(10, 0, GRID)} == set(TYPE_KINDS) - {"background_change"}


# ------------------------------------------------------------------------------------- written files
def _written(path: Path) -> tuple[list[str], list[Image.Image]]:
    """Every text and image in what a writer wrote (PNG files, parquet cells, TSV cells, text files)."""
    texts: list[str] = []
    images: list[Image.Image] = []

    def take(value) -> None:
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            for part in value:
                take(part)
        elif isinstance(value, bytes):
            images.append(Image.open(io.BytesIO(value)).convert("RGB"))
        elif isinstance(value, str):
            texts.append(value)

    for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
        if file.suffix == ".png":
            images.append(Image.open(file).convert("RGB"))
        elif file.suffix == ".parquet":
            take(pq.read_table(file).to_pylist())
        elif file.suffix == ".tsv":
            frame = pd.read_csv(file, sep="\t", dtype=str, keep_default_na=False)
            take([base64.b64decode(cell) for cell in frame.pop("image") if len(cell) > 100])
            take(frame[["question", "hint", "A", "B", "C", "D"]].to_dict("records"))  # not "cross-instance"
        elif file.suffix in (".txt", ".json", ".csv"):
            texts.append(file.read_text(encoding="utf-8"))
    return texts, images


def _outside_in_files(path: Path, profile: WorldProfile) -> list[str]:
    """Words, and shapes, colours and backgrounds the full world's detector reads in the images,
    that the profile does not have."""
    texts, images = _written(path)
    assert texts and (images or path.name == "dpg"), path  # DPG's data are prompts only
    found = [word for text in texts for word in words_outside(text, profile)]
    detector = ShapesDetector()
    for image in images:
        view = observe(image, detector)
        found += [f"{d.color} {d.label}" for d in view.objects if d.label not in profile.shapes
                  or d.color not in profile.colors]
        found += [] if view.background in profile.backgrounds else [f"background {view.background}"]
    return found


@pytest.mark.parametrize("name", [name for name, entry in SHAPES_BENCHMARKS.items() if entry.writer is not None])
def test_every_writer_draws_its_files_from_the_profile(name, tmp_path):
    shapes = SHAPES_BENCHMARKS[name]
    data = {key: SMALL[name].get(key, default) for key, default in shapes.data.items()}
    path = tmp_path / f"{name}{shapes.suffix}"
    shapes.writer(path, data, 0, profile=GRID)
    assert _outside_in_files(path, GRID) == []


def test_shapes_data_takes_the_profile_and_records_it(tmp_path, capsys):
    from harness import registry
    from harness.cli import main
    from shapes.commands import KINDS, record_path

    for kind in KINDS:
        out = tmp_path / f"{kind}{SHAPES_BENCHMARKS[kind].suffix}"
        assert main(["shapes-data", kind, str(out), "--items", "4", "--profile", "grid"]) == 0
        assert str(out) in capsys.readouterr().out
        record = json.loads(record_path(out).read_text())
        assert record["shapes_profile"] == GRID.describe() and record["items"] == 4
        assert _outside_in_files(out, GRID) == []
        # the record beside the data does not disturb the benchmark's loader
        registry.build("benchmark", kind, **SHAPES_BENCHMARKS[kind].locate(out))
    assert main(["shapes-data", "mme", str(tmp_path / "full")]) == 0
    assert json.loads(record_path(tmp_path / "full").read_text())["shapes_profile"]["name"] == "full"
    with pytest.raises(SystemExit):
        main(["shapes-data", "mme", str(tmp_path / "x"), "--profile", "nope"])


# ------------------------------------------------------------------------------------------ judges
@pytest.mark.parametrize("kind", ["shapes-gedit-judge", "shapes-complex-edit-judge", "shapes-edit-judge", "shapes-vqa"])
def test_the_judges_read_only_the_profiles_shapes(kind):
    from harness import registry

    scene = Scene((ShapeObject("star", "red", 0.3, 0.3, 0.3), ShapeObject("diamond", "blue", 0.7, 0.7, 0.3)))
    image = render(scene, 128)
    role = "vqa" if kind == "shapes-vqa" else "chat"
    full, grid = registry.build(role, kind), registry.build(role, kind, profile="grid")
    assert full.detector.profile == "full" and grid.detector.profile == "grid"
    assert {d.label for d in observe(image, full.detector).objects} == {"star", "diamond"}
    assert {d.label for d in observe(image, grid.detector).objects} <= set(GRID.shapes)


# ------------------------------------------------------------------------------- cards and hashes
def test_two_profiles_give_different_cards_and_hashes_for_every_benchmark(tmp_path):
    from harness.runner import evaluate
    from harness.spec import ComponentSpec
    from shapes.eval_stage import EvalStage

    class Model:
        target = tmp_path / "model"

    params = {"models": {"m": "model"}, "benchmarks": [{"name": name, "params": dict(SMALL[name])} for name in SMALL]}
    specs = {profile: EvalStage().specs({**params, "profile": profile}, {"model": Model}, tmp_path / profile, seed=0)
             for profile in ("full", "grid")}
    for name, shapes in SHAPES_BENCHMARKS.items():
        full, grid = specs["full"][name]["m"], specs["grid"][name]["m"]
        assert full.hash != grid.hash and full.world is None and grid.world == {"shapes_profile": GRID.describe()}
        assert all(judge.params.get("profile") == "grid" for judge in grid.judges.values())
        runs = {}
        for profile, spec in (("full", full), ("grid", grid)):  # the procedural model that gets it right
            oracle = {**shapes.oracle[1], **({"profile": "grid"} if profile == "grid" else {})}
            spec = replace(spec, model=ComponentSpec(shapes.oracle[0], oracle))
            runs[profile] = evaluate(spec, tmp_path / "runs" / profile / name, show_progress=False)
        assert runs["full"].summary.protocol != runs["grid"].summary.protocol, name
        assert runs["grid"].summary.protocol["world"] == {"shapes_profile": GRID.describe()}
        assert "world" not in runs["full"].summary.protocol
        assert runs["full"].artifact.hash != runs["grid"].artifact.hash, name
        if name in ("gedit", "complex_edit"):  # the grid world's data, judged in the grid world: the ceiling
            assert runs["grid"].summary.scores["overall"] == 10.0, name


# ------------------------------------------------------------------------------ reference models
@pytest.mark.parametrize("kind", ["shapes-editor", "shapes-answerer"])
def test_the_reference_models_read_in_the_profile_and_say_so(kind):
    from harness import registry
    from harness.errors import InputError

    full, grid = registry.build("model", kind), registry.build("model", kind, profile="grid")
    assert full.detector.profile == "full" and grid.detector.profile == "grid"
    assert "profile" not in full.protocol and grid.protocol["profile"] == "grid"
    assert full.model_digest != grid.model_digest
    with pytest.raises(InputError, match="profile must be one of"):
        registry.build("model", kind, profile="nope")


def test_the_editor_places_added_objects_on_the_profiles_grid():
    """The editor reads the source from pixels and applies the edit in its profile: in the grid world
    its output is exactly the rendered scene graph edit with the same seed, added objects on the grid."""
    from harness import registry
    from harness.models.base import InputImage, Request
    from shapes.edits import imgedit_shapes_items

    editor = registry.build("model", "shapes-editor", profile="grid", size=32)
    items = [item for item in imgedit_shapes_items(30, 0, GRID) if item.edit_type == "add"][:4]
    assert items
    for n, item in enumerate(items):
        source = render(item.scene, 32)
        request = Request(f"{n}", item.prompt, seed=1000 + n, images=(InputImage(f"d{n}", lambda s=source: s),))
        edited = apply_edits(item.scene, item.edits, np.random.default_rng(1000 + n), GRID)
        assert scene_outside_profile(edited, GRID) == []
        expected = render(replace(edited, texture_seed=(1000 + n) % 2**31), 32)
        assert np.array_equal(np.asarray(editor.edit_one(request)), np.asarray(expected)), item.prompt
