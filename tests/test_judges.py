"""GenEval judges: the open_clip colour classifier and the Mask2Former detectors.

Models are built from tiny configs with random weights; nothing touches the network. Expected values
are recomputed here independently (numpy pixel maths, open_clip called directly).
"""
from __future__ import annotations

import importlib.util
import os
import urllib.request

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers / open_clip are imported

import huggingface_hub.constants
import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from benchmarks.geneval.data import COLORS, load_class_names
from harness.errors import HarnessError
from harness.judges.base import ColorClassifier, Detection, ObjectDetector
from harness.judges.clip_color import OpenClipColorClassifier, build_crop
from benchmarks.geneval.judges.mask2former_hf import HFMask2FormerDetector, normalise_label
from benchmarks.geneval.judges.mmdet_mask2former import MMDetMask2FormerDetector, detections_from_mmdet_result

CLASS_NAMES = load_class_names()
GRAY = 0x99  # "#999"

TINY_CLIP = {
    "embed_dim": 16,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}

# transformers' COCO checkpoints spell three classes differently from GenEval
HF_COCO_LABELS = [{"computer mouse": "mouse", "tv remote": "remote", "computer keyboard": "keyboard"}.get(n, n)
                  for n in CLASS_NAMES]
TINY_M2F = {
    "backbone_config": {"model_type": "swin", "embed_dim": 16, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 2, 2],
                        "window_size": 4, "out_features": ["stage1", "stage2", "stage3", "stage4"]},
    "feature_size": 32, "mask_feature_size": 32, "hidden_dim": 32, "encoder_feedforward_dim": 64,
    "encoder_layers": 1, "decoder_layers": 2, "num_attention_heads": 2, "dim_feedforward": 64, "num_queries": 8,
    "id2label": dict(enumerate(HF_COCO_LABELS)),
}
SMALL_RESIZE = {"size": {"shortest_edge": 64, "longest_edge": 128}}


def pattern_image(width: int = 50, height: int = 40) -> tuple[Image.Image, np.ndarray]:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels), pixels


def disc_mask(width: int = 50, height: int = 40) -> np.ndarray:
    yy, xx = np.mgrid[:height, :width]
    return (xx - 25) ** 2 + (yy - 18) ** 2 < 12 ** 2


@pytest.fixture(scope="module")
def clip_judge() -> OpenClipColorClassifier:
    torch.manual_seed(0)
    return OpenClipColorClassifier(model_config=TINY_CLIP, pretrained=None, device="cpu")


@pytest.fixture()
def offline_empty_cache(monkeypatch, tmp_path):
    """Offline mode with an empty hub cache, whatever this machine has downloaded."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # older open_clip caches OpenAI's .pt there

    def no_network(*args, **kwargs):
        raise OSError("network access is disabled in tests")
    monkeypatch.setattr(urllib.request, "urlopen", no_network)  # older open_clip downloads by URL


# ------------------------------------------------------------------------------------ (a) colour
def test_crop_pastes_through_mask_onto_gray_and_crops_to_rounded_box():
    image, pixels = pattern_image()
    mask = disc_mask()
    obj = Detection("car", 0.9, [10.4, 5.6, 40.5, 30.5], mask=mask)
    # PIL rounds half to even: x 10.4 -> 10, 40.5 -> 40; y 5.6 -> 6, 30.5 -> 30
    composite = np.where(mask[..., None], pixels, np.uint8(GRAY))
    assert np.array_equal(np.asarray(build_crop(image, obj)), composite[6:30, 10:40])
    assert np.array_equal(np.asarray(build_crop(image, obj, bgcolor="original")), pixels[6:30, 10:40])
    assert np.array_equal(np.asarray(build_crop(image, obj, crop=False)), composite)
    no_mask = Detection("car", 0.9, [10.4, 5.6, 40.5, 30.5])
    assert np.array_equal(np.asarray(build_crop(image, no_mask)), pixels[6:30, 10:40])
    with pytest.raises(ValueError, match="mask shape"):
        build_crop(image, Detection("car", 0.9, [0, 0, 5, 5], mask=np.ones((5, 5), bool)))


def test_text_classifier_is_renormalised_mean_of_normalised_templates(clip_judge):
    weights = clip_judge.text_classifier("fire hydrant", COLORS)
    assert weights.shape == (TINY_CLIP["embed_dim"], len(COLORS))
    assert torch.allclose(weights.norm(dim=0), torch.ones(len(COLORS)), atol=1e-5)
    with torch.no_grad():
        for column, color in enumerate(COLORS):
            texts = [f"a photo of a {color} fire hydrant", f"a photo of a {color}-colored fire hydrant",
                     f"a photo of a {color} object"]
            embeddings = clip_judge.model.encode_text(open_clip.tokenize(texts))
            embeddings = embeddings / embeddings.norm(dim=-1, keepdim=True)
            expected = embeddings.mean(dim=0)
            expected = expected / expected.norm()
            assert torch.allclose(weights[:, column], expected, atol=1e-5), color
    assert clip_judge.text_classifier("fire hydrant", COLORS) is weights  # cached per class


def test_classify_feeds_official_crops_and_takes_argmax(clip_judge, monkeypatch):
    image, pixels = pattern_image()
    mask_a = disc_mask()
    mask_b = np.zeros_like(mask_a)
    mask_b[2:12, 30:48] = True
    objects = [Detection("car", 0.9, [13.0, 6.0, 38.0, 31.0], mask=mask_a),
               Detection("car", 0.8, [30.2, 1.7, 47.9, 12.2], mask=mask_b)]
    fed: list[np.ndarray] = []
    clip_judge.model  # load, so that _preprocess exists
    transform = clip_judge._preprocess
    monkeypatch.setattr(clip_judge, "_preprocess", lambda crop: (fed.append(np.asarray(crop)), transform(crop))[1])

    colors = clip_judge.classify(image, objects, "car", COLORS)

    assert len(colors) == 2 and all(c in COLORS for c in colors)
    expected_a = np.where(mask_a[..., None], pixels, np.uint8(GRAY))[6:31, 13:38]
    expected_b = np.where(mask_b[..., None], pixels, np.uint8(GRAY))[2:12, 30:48]
    assert np.array_equal(fed[0], expected_a) and np.array_equal(fed[1], expected_b)
    # independent zero-shot scoring of the same crops
    with torch.no_grad():
        features = clip_judge.model.encode_image(torch.stack([transform(Image.fromarray(a)) for a in fed]))
        features = F.normalize(features, dim=-1)
        logits = 100.0 * features @ clip_judge.text_classifier("car", COLORS)
    assert colors == [COLORS[i] for i in logits.argmax(dim=1).tolist()]
    assert clip_judge.classify(image, [], "car", COLORS) == []
    assert isinstance(clip_judge, ColorClassifier) and "v1" in clip_judge.judge_id


def test_clip_loads_a_local_checkpoint_file(clip_judge, tmp_path):
    path = tmp_path / "tiny.pt"
    torch.save(clip_judge.model.state_dict(), path)
    torch.manual_seed(123)  # a different random init, overwritten by the checkpoint
    loaded = OpenClipColorClassifier(model_config=TINY_CLIP, pretrained=str(path), device="cpu")
    assert torch.allclose(loaded.text_classifier("dog", COLORS), clip_judge.text_classifier("dog", COLORS))
    assert "tiny.pt" in loaded.judge_id


def test_an_inline_clip_config_leaves_no_temporary_folder(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where TemporaryDirectory/mkdtemp write
    config = {**TINY_CLIP, "embed_dim": TINY_CLIP["embed_dim"] + 8}  # a name this process has not registered
    judge = OpenClipColorClassifier(model_config=config, pretrained=None, device="cpu")
    assert judge.text_classifier("dog", COLORS).shape == (config["embed_dim"], len(COLORS))  # built from it
    assert list(tmp_path.iterdir()) == []


def test_clip_default_judge_id_and_registration():
    judge = OpenClipColorClassifier()  # lazy: nothing is loaded yet
    assert judge.judge_id == "open-clip:ViT-L-14:openai:v1" and judge._model is None
    assert OpenClipColorClassifier.plugin_name == "open-clip"
    with pytest.raises(HarnessError, match="random weights"):
        OpenClipColorClassifier(model_config=TINY_CLIP)  # pretrained="openai" makes no sense here


# ------------------------------------------------------------------------------------ (b) HF detector
@pytest.fixture(scope="module")
def hf_detector() -> HFMask2FormerDetector:
    torch.manual_seed(0)
    return HFMask2FormerDetector(config=TINY_M2F, device="cpu", processor_kwargs=SMALL_RESIZE)


def expected_query_masks(detector: HFMask2FormerDetector, image: Image.Image) -> list[np.ndarray]:
    """Every query's binary mask, recomputed: logits at 384x384 > 0, nearest-resized to the image."""
    inputs = detector._processor(images=[image], return_tensors="pt")
    with torch.no_grad():
        logits = detector._model(pixel_values=inputs["pixel_values"]).masks_queries_logits
    logits = F.interpolate(logits, size=(384, 384), mode="bilinear", align_corners=False)
    binary = F.interpolate((logits > 0).float(), size=(image.height, image.width), mode="nearest")[0]
    return [m.numpy().astype(bool) for m in binary]


def test_hf_detector_masks_boxes_and_labels(hf_detector):
    images = [pattern_image(64, 64)[0], pattern_image(96, 80)[0]]
    results = hf_detector.detect(images)
    assert len(results) == 2 and isinstance(hf_detector, ObjectDetector)
    for image, detections in zip(images, results):
        assert detections, "random weights should still give some non-empty masks"
        query_masks = expected_query_masks(hf_detector, image)
        for det in detections:
            assert det.label in CLASS_NAMES and 0.0 <= det.score <= 1.0
            assert det.mask.dtype == bool and det.mask.shape == (image.height, image.width)
            ys, xs = np.nonzero(det.mask)
            assert det.box == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            assert 0 <= det.box[0] < det.box[2] <= image.width and 0 <= det.box[1] < det.box[3] <= image.height
            assert any(np.array_equal(det.mask, m) for m in query_masks)
    # same-size images share a batch, others do not: a result does not depend on its batch-mates
    again = hf_detector.detect([images[1], images[0], images[1]])
    for got, want in zip(again, [results[1], results[0], results[1]]):
        assert [(d.label, d.box, d.score) for d in got] == [(d.label, d.box, d.score) for d in want]


def test_hf_detector_loads_a_local_folder(hf_detector, tmp_path):
    image = pattern_image(64, 64)[0]
    hf_detector._model.save_pretrained(tmp_path)
    hf_detector._processor.save_pretrained(tmp_path)
    local = HFMask2FormerDetector(path=str(tmp_path), device="cpu", processor_kwargs=SMALL_RESIZE)
    got, want = local.detect([image])[0], hf_detector.detect([image])[0]
    assert [(d.label, d.box) for d in got] == [(d.label, d.box) for d in want]
    assert [d.score for d in got] == pytest.approx([d.score for d in want], abs=1e-5)


def test_hf_label_names_are_normalised_or_rejected():
    assert normalise_label("mouse", CLASS_NAMES) == "computer mouse"
    assert normalise_label("Dining_Table", CLASS_NAMES) == "dining table"
    assert normalise_label("tvmonitor", CLASS_NAMES) == "tv"
    with pytest.raises(HarnessError, match="LABEL_0"):
        HFMask2FormerDetector(config={**TINY_M2F, "id2label": None}, device="cpu").detect([pattern_image()[0]])


# ------------------------------------------------------------------------------------ (c) mmdet conversion
def test_detections_from_mmdet_result():
    empty = np.zeros((0, 5), np.float32)
    bboxes = [empty.copy() for _ in CLASS_NAMES]
    masks: list[list[np.ndarray]] = [[] for _ in CLASS_NAMES]
    bboxes[0] = np.array([[1, 2, 10, 20, 0.95]], np.float32)
    bboxes[2] = np.array([[5, 5, 15, 12, 0.4], [0, 0, 8, 8, 0.7]], np.float32)
    for index, count in ((0, 1), (2, 2)):
        for k in range(count):
            mask = np.zeros((24, 32), bool)
            mask[k:k + 3, index:index + 4] = True
            masks[index].append(mask)
    detections = detections_from_mmdet_result((bboxes, masks), CLASS_NAMES)
    assert [(d.label, d.box) for d in detections] == [
        ("person", [1.0, 2.0, 10.0, 20.0]), ("car", [5.0, 5.0, 15.0, 12.0]), ("car", [0.0, 0.0, 8.0, 8.0])]
    assert [d.score for d in detections] == pytest.approx([0.95, 0.4, 0.7])
    assert np.array_equal(detections[0].mask, masks[0][0]) and np.array_equal(detections[2].mask, masks[2][1])
    bare = detections_from_mmdet_result(bboxes, CLASS_NAMES)
    assert len(bare) == 3 and all(d.mask is None for d in bare)
    with pytest.raises(HarnessError, match="class names"):
        detections_from_mmdet_result(bboxes[:79], CLASS_NAMES)


def test_mmdet_detector_without_mmdet_says_how_to_install(tmp_path):
    if importlib.util.find_spec("mmdet") is not None:
        pytest.skip("mmdet is installed here")
    detector = MMDetMask2FormerDetector(checkpoint=str(tmp_path / "missing.pth"), device="cpu")
    with pytest.raises(HarnessError, match=r"build_mmdet.sh.*geneval-mask2former"):
        detector.detect([pattern_image()[0]])


# ------------------------------------------------------------------------------------ (d) offline
def test_offline_hf_detector_hub_id_fails_clearly(offline_empty_cache):
    detector = HFMask2FormerDetector(device="cpu")
    with pytest.raises(HarnessError, match="facebook/mask2former-swin-small-coco-instance.*path="):
        detector.detect([pattern_image()[0]])


def test_offline_open_clip_pretrained_fails_clearly(offline_empty_cache):
    judge = OpenClipColorClassifier(device="cpu")
    source = r"(vit_large_patch14_clip_224\.openai|ViT-L-14\.pt)"  # hub repo (open_clip 3.x) or URL (2.x)
    with pytest.raises(HarnessError, match=rf"ViT-L-14/openai.*{source}.*pretrained="):
        judge.classify(pattern_image()[0], [Detection("car", 0.9, [0, 0, 5, 5])], "car", COLORS)
