"""``geneval-mask2former`` against the official mmdet 2.x Mask2Former, without downloading weights.

``tests/fixtures/geneval_mask2former_official/mask2former_tiny.json`` holds what the OFFICIAL detector
(mmdet 2.28.2, mmcv-full 1.7.2, run by ``make_fixtures.py`` beside it) returned for a random tiny
Mask2Former (a narrow Swin and a small head, the official structure). Here the same random checkpoint
is written again and our detector must give: the network's input bit for bit, the same detections
(class and box exact, scores within 1e-4) and masks differing in fewer than 1e-5 of their pixels.
``tox -e geneval-official`` rebuilds the official side and runs these tests again at the official
Swin-S shapes (``GENEVAL_OFFICIAL_FIXTURE`` names its fixture).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.geneval.judges import mask2former_random
from benchmarks.geneval.judges.geneval_mask2former import GenEvalMask2FormerDetector
from benchmarks.geneval.judges.mask2former_convert import MERGE_ORDER, _merge_permutation
from benchmarks.geneval.judges.mask2former_pipeline import preprocess
from harness import registry
from harness.errors import HarnessError
from tests.helpers import load_script

FIXTURES = Path(__file__).parent / "fixtures" / "geneval_mask2former_official"
SCORE_TOLERANCE = 1e-4
MASK_PIXEL_TOLERANCE = 1e-5

maker = load_script(FIXTURES / "make_fixtures.py", "mask2former_make_fixtures")
FIXTURE_FILES = [FIXTURES / "mask2former_tiny.json"]
if os.environ.get("GENEVAL_OFFICIAL_FIXTURE"):  # tox -e geneval-official: the Swin-S shapes, made just now
    FIXTURE_FILES.append(Path(os.environ["GENEVAL_OFFICIAL_FIXTURE"]))


@pytest.fixture(scope="module", params=FIXTURE_FILES, ids=lambda p: p.stem)
def official(request, tmp_path_factory):
    """(fixture, detector over the regenerated random checkpoint, its shapes name)."""
    fixture = json.loads(request.param.read_text(encoding="utf-8"))
    assert fixture["generator_version"] == mask2former_random.GENERATOR_VERSION, "regenerate the fixture"
    shapes = fixture["shapes"]["name"]
    path = mask2former_random.write_random_checkpoint(tmp_path_factory.mktemp("m2f") / "checkpoint.pth",
                                                      mask2former_random.SHAPES[shapes], fixture["seed"])
    detector = GenEvalMask2FormerDetector(checkpoint=str(path), shapes=shapes, device="cpu", sha256="")
    return fixture, detector, shapes


def test_the_regenerated_weights_are_the_fixtures(official):
    fixture, _, shapes = official
    assert mask2former_random.SHAPES[shapes].as_dict() == {k: tuple(v) if isinstance(v, list) else v
                                                           for k, v in fixture["shapes"].items()}
    state = mask2former_random.random_state_dict(mask2former_random.SHAPES[shapes], fixture["seed"])
    assert maker.state_digest(state) == fixture["state_sha256"]


def test_preprocessing_is_bit_exact(official):
    fixture, _, shapes = official
    for image, expected in zip(maker.fixture_images(shapes), fixture["images"], strict=True):
        pixels, meta = preprocess(image)
        assert list(pixels.shape) == expected["input_shape"]
        assert [list(meta.original), list(meta.resized), list(meta.padded)] == \
            [expected["ori_shape"], expected["img_shape"], expected["pad_shape"]]
        assert maker.tensor_digest(pixels) == expected["input_sha256"]


def _match(ours, theirs, size):
    """Pair every official detection with one of ours of the same class and box whose score is
    within the tolerance; returns the differing mask pixels and the largest score difference."""
    height, width = size[1], size[0]
    assert len(ours) == len(theirs)
    unused = list(range(len(ours)))
    differing, worst = 0, 0.0
    for expected in sorted(theirs, key=lambda d: -d["score"]):
        candidates = [i for i in unused if ours[i]["label"] == expected["label"] and ours[i]["box"] == expected["box"]
                      and abs(ours[i]["score"] - expected["score"]) <= SCORE_TOLERANCE]
        assert candidates, f"no detection matches the official {expected['label']} {expected['box']} " \
                           f"{expected['score']:.6f}"
        best = min(candidates, key=lambda i: abs(ours[i]["score"] - expected["score"]))
        unused.remove(best)
        worst = max(worst, abs(ours[best]["score"] - expected["score"]))
        official_mask = maker.decode_mask(expected["mask"], (height, width))
        differing += int((ours[best]["mask"] != official_mask).sum())
    return differing, worst


def _as_records(detections, class_names):
    return [{"label": class_names.index(d.label), "box": d.box, "score": d.score, "mask": d.mask}
            for d in detections]


@pytest.mark.parametrize("batch_size", [1, 3])
def test_detections_match_the_official_detector(official, batch_size):
    fixture, detector, shapes = official
    detector.batch_size = batch_size
    images = maker.fixture_images(shapes)
    results = detector.detect(images)
    differing = total = 0
    worst = 0.0
    for image, expected, detections in zip(images, fixture["images"], results, strict=True):
        ours = _as_records(detections, detector.class_names)
        pixels, score_difference = _match(ours, expected["detections"], image.size)
        differing, worst = differing + pixels, max(worst, score_difference)
        total += len(ours) * image.size[0] * image.size[1]
    print(f"\n{shapes}, batch {batch_size}: {sum(len(r) for r in results)} detections, boxes and classes equal, "
          f"largest score difference {worst:.2e}, {differing} of {total} mask pixels differ")
    assert differing / total < MASK_PIXEL_TOLERANCE, f"{differing} of {total} mask pixels differ"


def test_the_patch_merging_permutation_matches_an_unfold(one_torch_thread):
    """mmdet's PatchMerging reads 2x2 neighbourhoods with nn.Unfold; transformers concatenates four
    strided views. The converted reduction must give the same output on the same features."""
    torch.manual_seed(0)
    channels, out = 3, 5
    features = torch.randn(1, channels, 4, 6)
    weight = torch.randn(out, 4 * channels)
    unfolded = torch.nn.functional.unfold(features, kernel_size=2, stride=2)       # (1, C*4, L)
    mmdet_out = weight @ unfolded[0]                                                 # (out, L)
    x = features[0].permute(1, 2, 0)                                                 # (H, W, C)
    views = [x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2]]
    hf_in = torch.cat(views, dim=-1).reshape(-1, 4 * channels)                      # (L, 4C)
    hf_out = hf_in @ _merge_permutation(weight, channels).T
    assert MERGE_ORDER == (0, 2, 1, 3)
    torch.testing.assert_close(hf_out.T, mmdet_out)


def test_a_wrong_corrupt_or_incomplete_checkpoint_is_refused(tmp_path):
    good = mask2former_random.write_random_checkpoint(tmp_path / "tiny.pth", mask2former_random.TINY, 0)
    with pytest.raises(HarnessError, match="sha256 .* is not the official"):
        GenEvalMask2FormerDetector(checkpoint=str(good), shapes="swin-s", device="cpu").detect([])
    broken = tmp_path / "broken.pth"
    broken.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(HarnessError, match="broken.pth: cannot be read"):
        GenEvalMask2FormerDetector(checkpoint=str(broken), shapes="tiny", device="cpu").detect([])
    state = mask2former_random.random_state_dict(mask2former_random.TINY, 0)
    del state["panoptic_head.cls_embed.weight"]
    torch.save({"meta": {}, "state_dict": state}, tmp_path / "missing.pth")
    with pytest.raises(HarnessError, match="missing .*class_predictor.weight"):
        GenEvalMask2FormerDetector(checkpoint=str(tmp_path / "missing.pth"), shapes="tiny", device="cpu").detect([])
    with pytest.raises(HarnessError, match="checkpoint not found"):
        GenEvalMask2FormerDetector(checkpoint=str(tmp_path / "absent.pth"), shapes="tiny").detect([])


def test_a_checkpoint_whose_meta_holds_numpy_scalars_loads(tmp_path):
    """mmcv saves the run's seed as a numpy integer; loading must not need unsafe unpickling."""
    from benchmarks.geneval.judges.geneval_mask2former import load_mmdet_state_dict

    state = {"w": torch.ones(2)}
    torch.save({"meta": {"seed": np.int64(7), "CLASSES": ("person",), "hook_msgs": {"best": np.float64(0.5)}},
                "state_dict": state}, tmp_path / "c.pth")
    assert torch.equal(load_mmdet_state_dict(tmp_path / "c.pth")["w"], state["w"])


def test_geneval_runs_judged_by_it_are_comparable_and_others_are_not():
    registry.load_plugins()
    geneval = registry.get("benchmark", "geneval")
    official = {"prompt_set": "official", "images_per_prompt": 4,
                "judges": {"detector": {"name": "geneval-mask2former", "params": {"checkpoint": "/m/x.pth"}},
                           "color_classifier": {"name": "open-clip", "params": {"model": "ViT-L-14"}}}}
    assert geneval.departures_from_official(official) == []
    tiny = {**official, "judges": {**official["judges"], "detector": {"name": "geneval-mask2former",
                                                                      "params": {"shapes": "tiny"}}}}
    assert any("Swin-S" in reason for reason in geneval.departures_from_official(tiny))
    for other in ("mask2former-hf", "shapes"):
        changed = {**official, "judges": {**official["judges"], "detector": {"name": other}}}
        reasons = geneval.departures_from_official(changed)
        assert len(reasons) == 1 and other in reasons[0]


def _with_detector_params(official: dict, **params) -> dict:
    detector = official["judges"]["detector"]
    return {**official, "judges": {**official["judges"],
                                   "detector": {**detector, "params": {**detector["params"], **params}}}}


def test_a_checkpoint_hash_check_turned_off_or_changed_is_a_departure():
    registry.load_plugins()
    geneval = registry.get("benchmark", "geneval")
    official = {"prompt_set": "official", "images_per_prompt": 4,
                "judges": {"detector": {"name": "geneval-mask2former", "params": {"checkpoint": "/m/x.pth"}},
                           "color_classifier": {"name": "open-clip", "params": {}}}}
    for same in (None, "743b7d99", "743B7D99", "743b7d99" + "0" * 56):  # the default, the prefix, a full hash
        assert geneval.departures_from_official(_with_detector_params(official, sha256=same)) == [], same
    for other in ("", "0123abcd", "743b7d9"):
        reasons = geneval.departures_from_official(_with_detector_params(official, sha256=other))
        assert len(reasons) == 1 and "743b7d99" in reasons[0], other
    assert "hash check turned off" in geneval.departures_from_official(_with_detector_params(official, sha256=""))[0]


def test_the_colour_classifier_must_be_vit_l_14_with_openai_weights():
    registry.load_plugins()
    geneval = registry.get("benchmark", "geneval")
    official = {"prompt_set": "official", "images_per_prompt": 4,
                "judges": {"detector": {"name": "mmdet-mask2former", "params": {}},
                           "color_classifier": {"name": "open-clip", "params": {"model": "ViT-L-14",
                                                                                "pretrained": "openai"}}}}
    assert geneval.departures_from_official(official) == []
    for params in ({"pretrained": "laion2b_s32b_b82k"}, {"pretrained": None}, {"pretrained": "/w/ViT-L-14.pt"},
                   {"model": "ViT-B-32"}):
        colors = {"name": "open-clip", "params": {**official["judges"]["color_classifier"]["params"], **params}}
        reasons = geneval.departures_from_official({**official, "judges": {**official["judges"],
                                                                           "color_classifier": colors}})
        assert len(reasons) == 1 and "pretrained='openai'" in reasons[0], params


def test_a_shapes_geneval_run_through_it_end_to_end(tmp_path, one_torch_thread):
    from harness.runner import evaluate
    from harness.spec import ComponentSpec, RunSpec
    from reports.protocols import official_departures

    checkpoint = mask2former_random.write_random_checkpoint(tmp_path / "m2f.pth", mask2former_random.TINY, 0)
    spec = RunSpec(benchmark=ComponentSpec("geneval", {"prompts": "shapes", "per_tag": 1, "images_per_prompt": 1}),
                   model=ComponentSpec("shapes-renderer", {"size": 32}),
                   judges={"detector": ComponentSpec("geneval-mask2former", {"checkpoint": str(checkpoint),
                                                                             "shapes": "tiny", "device": "cpu",
                                                                             "batch_size": 4}),
                           "color_classifier": ComponentSpec("shapes")},
                   limit=3)
    outcome = evaluate(spec, tmp_path / "run", cache_dir=tmp_path / "cache", show_progress=False)
    summary = outcome.summary
    assert summary.counts["samples"] == 3 and summary.counts["judge_failed"] == 0
    assert 0.0 <= summary.scores["overall"] <= 1.0
    records = [json.loads(line) for line in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    assert all("correct" in record["verdict"] for record in records)
    reasons = official_departures(summary.protocol)
    # the judge's code is the official one; the tiny network and the shapes data are not
    assert any("Swin-S" in reason for reason in reasons)
    assert not any("not the official mmdet" in reason for reason in reasons)
    again = evaluate(spec, tmp_path / "run", cache_dir=tmp_path / "cache", show_progress=False)
    assert (again.generated, again.judged) == (0, 0)
