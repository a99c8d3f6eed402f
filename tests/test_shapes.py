"""Tests of the shapes world: scene graph, renderer, prompt set, pixel detector.

Every check compares against the scene graph (or a rule written here independently of the code
under test), never against another output of the same code.
"""
from __future__ import annotations

import itertools
import json
import math
import time

import numpy as np
import pytest
from PIL import Image

from harness.judges.base import ColorClassifier, Detection, ObjectDetector
from shapes import world
from shapes.detector import ShapesColorClassifier, ShapesDetector
from shapes.prompts import TAGS, geneval_prompts
from shapes.world import (BACKGROUNDS, COLORS, PALETTE, SHAPES, Scene, ShapeObject,
                          random_scene, render, scene_for_metadata)

OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


# ------------------------------------------------------------- independent GenEval relation rule
def geneval_vector(a, b):
    """(dx, dy) of GenEval's relations(A, B) (PROTOCOLS.md 1.4), or None when there is none."""
    ca = ((a[0] + a[2]) / 2, (a[1] + a[3]) / 2)
    cb = ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
    dims = (a[2] - a[0] + b[2] - b[0], a[3] - a[1] + b[3] - b[1])
    offset = (ca[0] - cb[0], ca[1] - cb[1])
    revised = [max(abs(o) - 0.1 * d, 0) * (1 if o >= 0 else -1) for o, d in zip(offset, dims)]
    if abs(revised[0]) < 1e-3 and abs(revised[1]) < 1e-3:
        return None
    norm = math.sqrt(offset[0] ** 2 + offset[1] ** 2)
    return revised[0] / norm, revised[1] / norm


def geneval_relations(a, b):
    v = geneval_vector(a, b)
    if v is None:
        return set()
    out = set()
    out |= {"left of"} if v[0] < -0.5 else set()
    out |= {"right of"} if v[0] > 0.5 else set()
    out |= {"above"} if v[1] < -0.5 else set()
    out |= {"below"} if v[1] > 0.5 else set()
    return out


def near_cut(a, b, tol=0.03):
    """True when pixel rounding could flip the relation (a component within ``tol`` of +-0.5)."""
    v = geneval_vector(a, b)
    return v is None or any(abs(abs(c) - 0.5) < tol for c in v)


def test_relation_rule_vectors():
    assert geneval_relations((0, 0, 10, 10), (20, 0, 30, 10)) == {"left of"}
    assert geneval_vector((0, 0, 10, 10), (20, 0, 30, 10))[0] == pytest.approx(-0.9)
    assert geneval_vector((0, 0, 10, 10), (5, 0, 15, 10))[0] == pytest.approx(-0.6)
    assert geneval_relations((0, 0, 10, 10), (1, 0, 11, 10)) == set()
    assert geneval_relations((0, 0, 10, 10), (10, 10, 20, 20)) == {"left of", "above"}
    for a, b in [((0, 0, 10, 10), (20, 0, 30, 10)), ((3, 40, 9, 50), (30, 2, 41, 13))]:
        assert world.relations(a, b) == geneval_relations(a, b)


# ------------------------------------------------------------------------ vocabulary and render
def test_palette_and_backgrounds_are_far_apart():
    rgb = {name: np.array(PALETTE[name], float) for name in COLORS}
    assert set(COLORS) == {"red", "orange", "yellow", "green", "blue", "purple", "pink", "brown",
                           "black", "white"}
    for a, b in itertools.combinations(COLORS, 2):
        assert np.linalg.norm(rgb[a] - rgb[b]) >= 90, (a, b)
    for name, bg in BACKGROUNDS.items():
        for c in COLORS:
            assert np.linalg.norm(np.array(bg.rgb, float) - rgb[c]) >= 90, (name, c)


def test_bbox_matches_rendered_pixels():
    """The scene graph's boxes (used for relations below) are where the pixels are."""
    px = 256
    for shape in SHAPES:
        obj = ShapeObject(shape, "black", 0.43, 0.57, 0.3)
        img = np.asarray(render(Scene((obj,), "grey"), px), float)
        covered = np.abs(img - 150).max(axis=2) > 65  # more than half way to black (20)
        ys, xs = np.nonzero(covered)
        x1, y1, x2, y2 = (v * px for v in obj.bbox())
        assert abs(xs.min() - x1) <= 1.5 and abs(xs.max() + 1 - x2) <= 1.5, shape
        assert abs(ys.min() - y1) <= 1.5 and abs(ys.max() + 1 - y2) <= 1.5, shape
        assert obj.size * px * 0.9 <= xs.max() - xs.min() + 1 <= obj.size * px + 1.5


def test_render_and_json_round_trip():
    rng = np.random.default_rng(5)
    for _ in range(20):
        scene = random_scene(rng)
        back = Scene.from_dict(json.loads(json.dumps(scene.to_dict())))
        assert back == scene
        a, b = render(scene, 64), render(back, 64)
        assert a.mode == "RGB" and a.size == (64, 64)
        assert np.array_equal(np.asarray(a), np.asarray(b))
        corner = np.asarray(a, float)[0, 0]
        assert np.abs(corner - BACKGROUNDS[scene.background].rgb).max() <= world.TEXTURE_AMPLITUDE + 1
    with pytest.raises(ValueError):
        ShapeObject("hexagon", "red", 0.5, 0.5, 0.2)
    with pytest.raises(ValueError):
        ShapeObject("circle", "teal", 0.5, 0.5, 0.2)


# ------------------------------------------------------------------------------------- prompts
def test_prompts_deterministic_and_well_formed():
    a, b = geneval_prompts(per_tag=12, seed=3), geneval_prompts(per_tag=12, seed=3)
    assert a == b and json.dumps(a) == json.dumps(b)
    assert geneval_prompts(per_tag=12, seed=4) != a
    assert [p["tag"] for p in a] == [t for t in TAGS for _ in range(12)]
    assert list(TAGS) == ["single_object", "two_object", "counting", "colors", "position", "color_attr"]
    words = {2: "two", 3: "three", 4: "four"}
    for p in a:
        assert list(p) == (["tag", "include", "exclude", "prompt"] if p["tag"] == "counting"
                           else ["tag", "include", "prompt"])
        assert p["prompt"].startswith("a photo of ")
        inc = p["include"]
        assert all(c["class"] in SHAPES for c in inc)
        if p["tag"] == "single_object":
            assert inc == [{"class": inc[0]["class"], "count": 1}]
        elif p["tag"] == "two_object":
            assert len(inc) == 2 and inc[0]["class"] != inc[1]["class"]
            assert p["prompt"] == f"a photo of a {inc[0]['class']} and a {inc[1]['class']}"
        elif p["tag"] == "counting":
            n, cls = inc[0]["count"], inc[0]["class"]
            assert n in (2, 3, 4) and p["exclude"] == [{"class": cls, "count": n + 1}]
            assert p["prompt"].startswith(f"a photo of {words[n]} {cls[:3]}") and p["prompt"].endswith("s")
        elif p["tag"] == "colors":
            assert list(inc[0]) == ["class", "count", "color"] and inc[0]["color"] in COLORS
            assert p["prompt"].endswith(f"{inc[0]['color']} {inc[0]['class']}")
        elif p["tag"] == "position":
            rel, target = inc[1]["position"]
            assert target == 0 and rel in OPPOSITE and list(inc[1]) == ["class", "count", "position"]
            assert p["prompt"] == f"a photo of a {inc[1]['class']} {rel} a {inc[0]['class']}"
        elif p["tag"] == "color_attr":
            assert inc[0]["class"] != inc[1]["class"] and inc[0]["color"] != inc[1]["color"]
    for tag in TAGS[1:]:  # single_object has only 6 distinct prompts
        texts = [p["prompt"] for p in a if p["tag"] == tag]
        assert len(set(texts)) == len(texts), tag
    assert "a photo of an orange circle" in {p["prompt"] for p in geneval_prompts(60, 0)}


# ------------------------------------------------------------------ scenes from metadata
def _scene_facts_ok(scene: Scene, meta: dict) -> None:
    """Assert ``scene`` satisfies ``meta`` exactly, judged on the scene graph."""
    objs = scene.objects
    for o in objs:  # inside the image and not touching one another
        x1, y1, x2, y2 = o.bbox()
        assert 0.02 <= x1 and x2 <= 0.98 and 0.02 <= y1 and y2 <= 0.98
        assert o.size * 64 >= 12
    for p, q in itertools.combinations(objs, 2):
        a, b = p.bbox(), q.bbox()
        gap = max(b[0] - a[2], a[0] - b[2], b[1] - a[3], a[1] - b[3])
        assert gap >= 0.04
    groups = []
    for clause in meta["include"]:
        group = [o for o in objs if o.shape == clause["class"]]
        assert len(group) == clause["count"]  # exactly, so counting's exclude never fires
        if "color" in clause:
            assert all(o.color == clause["color"] for o in group)
        groups.append(group)
    for clause, group in zip(meta["include"], groups):
        if "position" in clause:
            rel, target = clause["position"]
            for a, b in itertools.product(group, groups[target]):
                v = geneval_vector(a.bbox(), b.bbox())
                assert geneval_relations(a.bbox(), b.bbox()) == {rel}
                axis = 0 if rel in ("left of", "right of") else 1
                assert abs(v[axis]) >= 0.6 and abs(v[1 - axis]) <= 0.4  # held with margin
    for clause in meta.get("exclude", []):
        assert sum(o.shape == clause["class"] for o in objs) < clause["count"]


def test_scene_for_metadata_satisfies_every_tag():
    rng = np.random.default_rng(11)
    prompts = geneval_prompts(per_tag=25, seed=1)
    for i, meta in enumerate(prompts):
        scene = scene_for_metadata(meta, rng, distractors=i % 3)
        _scene_facts_ok(scene, meta)
        named = {c["class"] for c in meta["include"]}
        extra = [o for o in scene.objects if o.shape not in named]
        assert len(extra) == (i % 3 if len(named) < len(SHAPES) else 0)


# ---------------------------------------------------------------------------------- detector
def _scene_recovered(scene: Scene, dets: list[Detection], px: int) -> bool:
    confident = [d for d in dets if d.score > 0.9]
    if len(confident) != len(scene.objects) or any(0.3 < d.score <= 0.9 for d in dets):
        return False
    matched = []
    for o in scene.objects:
        box = [v * px for v in o.bbox()]
        d = max(confident, key=lambda d: _iou(d.box, box))
        if _iou(d.box, box) < 0.7 or d.label != o.shape or d.color != o.color:
            return False
        matched.append(d)
    if len({id(d) for d in matched}) != len(matched):
        return False
    for (o1, d1), (o2, d2) in itertools.permutations(zip(scene.objects, matched), 2):
        truth = [v * px for v in o1.bbox()], [v * px for v in o2.bbox()]
        if not near_cut(*truth) and geneval_relations(*truth) != geneval_relations(d1.box, d2.box):
            return False
    return True


def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.parametrize("px", [64, 128])
def test_detector_recovers_random_scenes(px):
    detector = ShapesDetector()
    rng = np.random.default_rng(1000 + px)
    scenes = [random_scene(rng) for _ in range(300)]
    images = [render(s, px) for s in scenes]
    start = time.perf_counter()
    results = detector.detect(images)
    per_image_ms = 1000 * (time.perf_counter() - start) / len(images)
    ok = sum(_scene_recovered(s, d, px) for s, d in zip(scenes, results))
    rate = ok / len(scenes)
    print(f"\nshapes detector at {px}px: {rate:.2%} of {len(scenes)} scenes recovered, "
          f"{per_image_ms:.1f} ms/image")
    assert rate >= 0.99
    for dets in results:
        for d in dets:
            assert 0 < d.score <= 1 and d.mask.shape == (px, px) and d.mask.dtype == bool
    if px == 64:
        assert per_image_ms < 20


def _geneval_correct(meta: dict, image: Image.Image, dets: list[Detection],
                     colors: ShapesColorClassifier) -> bool:
    """GenEval's per-image rule (PROTOCOLS.md 1.4), written out here independently."""
    threshold = 0.9 if meta["tag"] == "counting" else 0.3
    by_class: dict[str, list[Detection]] = {}
    for d in sorted(dets, key=lambda d: -d.score):
        if d.score > threshold and len(by_class.setdefault(d.label, [])) < 16:
            by_class[d.label].append(d)
    found_per_clause = []
    for clause in meta["include"]:
        found = by_class.get(clause["class"], [])[: clause["count"]]
        found_per_clause.append(found)
        if len(found) < clause["count"]:
            return False
        if "color" in clause:
            names = colors.classify(image, found, clause["class"], list(COLORS))
            if sum(n == clause["color"] for n in names) < clause["count"]:
                return False
        if "position" in clause:
            rel, target = clause["position"]
            if not all(rel in geneval_relations(a.box, b.box)
                       for a in found for b in found_per_clause[target]):
                return False
    return not any(len(by_class.get(c["class"], [])) >= c["count"] for c in meta.get("exclude", []))


def _contradiction(meta: dict) -> dict:
    """A metadata dict the same scene must fail: another count, colour, relation or class."""
    bad = json.loads(json.dumps(meta))
    inc = bad["include"]
    if meta["tag"] == "counting":
        n = inc[0]["count"] + 1
        inc[0]["count"], bad["exclude"][0]["count"] = n, n + 1
    elif "position" in inc[-1]:
        inc[-1]["position"][0] = OPPOSITE[inc[-1]["position"][0]]
    elif "color" in inc[-1]:
        inc[-1]["color"] = next(c for c in COLORS if c != inc[-1]["color"])
    else:
        inc[-1]["class"] = next(s for s in SHAPES if s not in {c["class"] for c in inc})
    return bad


def test_geneval_end_to_end_on_rendered_prompts():
    detector, colors = ShapesDetector(), ShapesColorClassifier()
    rng = np.random.default_rng(7)
    prompts = geneval_prompts(per_tag=25, seed=2)
    right = wrong_rejected = 0
    for meta in prompts:
        image = render(scene_for_metadata(meta, rng), 64)
        dets = detector.detect([image], ["00000/0000"])[0]
        right += _geneval_correct(meta, image, dets, colors)
        wrong_rejected += not _geneval_correct(_contradiction(meta), image, dets, colors)
    print(f"\nGenEval rules on shapes scenes: {right}/{len(prompts)} correct, "
          f"{wrong_rejected}/{len(prompts)} contradicting prompts rejected")
    assert right / len(prompts) >= 0.99
    assert wrong_rejected / len(prompts) >= 0.99


def test_color_classifier_with_and_without_masks():
    rng = np.random.default_rng(3)
    classifier = ShapesColorClassifier()
    for _ in range(30):
        scene = random_scene(rng)
        image = render(scene, 64)
        for o in scene.objects:
            box = [v * 64 for v in o.bbox()]
            no_mask = Detection(label=o.shape, score=1.0, box=box)
            assert classifier.classify(image, [no_mask], o.shape, list(COLORS)) == [o.color]
            others = [c for c in COLORS if c != o.color]
            assert classifier.classify(image, [no_mask], o.shape, others)[0] in others
    for d in ShapesDetector().detect([image])[0]:
        assert classifier.classify(image, [d], d.label, list(COLORS)) == [d.color]


def test_noise_images_give_no_confident_detection():
    detector = ShapesDetector()
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(40)]
    # a noise patch on a clean background: the border test alone cannot reject it
    patch = np.full((64, 64, 3), 150, np.uint8)
    patch[8:56, 8:56] = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    images.append(Image.fromarray(patch))
    start = time.perf_counter()
    results = detector.detect(images)
    assert (time.perf_counter() - start) / len(images) < 0.02
    assert all(d.score <= 0.9 for dets in results for d in dets)
    assert sum(len(dets) for dets in results) <= len(images)


def test_plugin_registration_and_params():
    assert ShapesDetector.plugin_name == "shapes" and ShapesColorClassifier.plugin_name == "shapes"
    detector = ShapesDetector(min_area_fraction=0.01)
    assert isinstance(detector, ObjectDetector) and isinstance(ShapesColorClassifier(), ColorClassifier)
    assert "v1" in detector.judge_id and detector.params["min_area_fraction"] == 0.01
    # a 6x6 px square (under 1% of 64x64) is below this detector's minimum area
    tiny = Scene((ShapeObject("square", "red", 0.5, 0.5, 0.09),), "grey")
    assert detector.detect([render(tiny, 64)]) == [[]]
    assert [d.label for d in ShapesDetector().detect([render(tiny, 64)])[0]] == ["square"]
