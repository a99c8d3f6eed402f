"""The shapes VQ tokenizer trainer: a short run learns, the artifact is cached, the codebook is
usable by the stock HF encode/decode, and a tiny Janus carrying it loads through the adapter."""
import json

import numpy as np
import pytest
import torch

from harness.models.base import Request
from shapes.world import SHAPES, Scene, ShapeObject, render
from trainers import shapes_vq
from trainers.shapes_vq import (load_vq, reconstruct, scene_read_correctly, tiny_janus_with_vq,
                                to_pixels, train_shapes_vq)

# 32 px images, 4x4 codes, a few steps: seconds instead of minutes
SMALL = dict(image_size=32, patch_size=8, steps=30, batch_size=4, seed=3, eval_scenes=0, lr=3e-3)


def _fixed_images(count: int = 8) -> list:
    rng = np.random.default_rng(12345)
    return [render(shapes_vq.training_scene(rng), 32) for _ in range(count)]


def _l1(vq, images) -> float:
    """Stock-path reconstruction error, in pixel levels (0-255)."""
    recon = np.stack([np.asarray(i, dtype=np.float32) for i in reconstruct(vq, images)])
    original = np.stack([np.asarray(i, dtype=np.float32) for i in images])
    return float(np.abs(recon - original).mean())


@pytest.fixture(scope="module")
def trained(tmp_path_factory, one_torch_thread):
    return train_shapes_vq(tmp_path_factory.mktemp("vq"), **SMALL)


def test_short_training_lowers_reconstruction_error(trained):
    from transformers import JanusVQVAE

    images = _fixed_images()
    settings = shapes_vq.ShapesVQSettings(**{k: v for k, v in SMALL.items() if k != "eval_scenes"})
    torch.manual_seed(settings.seed)
    untrained = JanusVQVAE(shapes_vq.vq_config(settings)).eval()
    before, after = _l1(untrained, images), _l1(load_vq(trained), images)
    assert after < 0.8 * before, (before, after)
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["final_reconstruction_loss"] < metrics["first_reconstruction_loss"]


def test_codebook_rows_are_unit_norm(trained):
    norms = load_vq(trained).quantize.embedding.weight.norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)


def test_hf_encode_picks_the_normalised_nearest_codes(trained):
    vq = load_vq(trained)
    pixels = to_pixels(_fixed_images())
    with torch.no_grad():
        hf_codes = vq.encode(pixels).image_tokens.view(len(pixels), -1)
        latents = vq.quant_conv(vq.encoder(pixels))  # (B, D, 4, 4)
    # deepseek's search written out: cosine similarity of each latent with each codebook row
    z = latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1])
    z = z / z.norm(dim=1, keepdim=True)
    rows = vq.quantize.embedding.weight
    rows = rows / rows.norm(dim=1, keepdim=True)
    expected = (z @ rows.T).argmax(dim=1).view(len(pixels), -1)
    assert hf_codes.shape == (8, 16)
    assert torch.equal(hf_codes, expected)


def test_second_call_returns_the_cached_artifact(trained, monkeypatch):
    manifest = (trained / "artifact.json").read_text()

    def no_training(*args, **kwargs):
        raise AssertionError("trained again instead of using the cached artifact")

    monkeypatch.setattr(shapes_vq, "train_vq_model", no_training)
    assert train_shapes_vq(trained, **SMALL) == trained
    assert (trained / "artifact.json").read_text() == manifest
    with pytest.raises(ValueError, match="other settings"):
        train_shapes_vq(trained, **{**SMALL, "steps": 31})


def test_damaged_artifact_is_retrained(tmp_path, monkeypatch):
    calls = []
    real = shapes_vq.train_vq_model
    monkeypatch.setattr(shapes_vq, "train_vq_model",
                        lambda *args: calls.append(1) or real(*args))
    tiny = {**SMALL, "steps": 2}
    train_shapes_vq(tmp_path, **tiny)
    (tmp_path / "vq.safetensors").write_bytes(b"damaged")
    train_shapes_vq(tmp_path, **tiny)
    assert len(calls) == 2
    load_vq(tmp_path)  # readable again


def test_scene_read_correctly_checks_kinds_and_positions():
    from harness.judges.base import Detection

    scene = Scene((ShapeObject("circle", "red", 0.25, 0.25, 0.3), ShapeObject("star", "blue", 0.75, 0.7, 0.3)))

    def det(label, color, cx, cy, score=0.99):  # a box of 16 px round a centre given in pixels (64 px)
        return Detection(label=label, score=score, box=[cx - 8, cy - 8, cx + 8, cy + 8], color=color)

    right = [det("circle", "red", 16, 16), det("star", "blue", 48, 45)]
    assert scene_read_correctly(scene, right, 64)
    assert not scene_read_correctly(scene, right[:1], 64)  # one missing
    assert not scene_read_correctly(scene, [right[0], det("star", "green", 48, 45)], 64)  # wrong colour
    assert not scene_read_correctly(scene, [right[0], det("star", "blue", 48, 45, score=0.5)], 64)
    swapped = [det("circle", "red", 48, 45), det("star", "blue", 16, 16)]
    assert not scene_read_correctly(scene, swapped, 64)
    assert scene_read_correctly(scene, swapped, 64, position_tolerance=None)


def test_tiny_janus_with_vq_loads_in_the_adapter_and_decodes_like_the_tokenizer(trained, tmp_path,
                                                                               one_torch_thread):
    from harness.registry import build

    folder = tiny_janus_with_vq(tmp_path / "janus", trained, words=SHAPES)
    adapter = build("model", "janus", path=str(folder), device="cpu")
    assert adapter.image_tokens == 16 and adapter.image_size == 32
    images = adapter.generate_images([Request("a", "a photo of a red circle", 0)])
    assert images[0].size == (32, 32) and images[0].mode == "RGB"

    scene = Scene((ShapeObject("square", "yellow", 0.5, 0.5, 0.4),), "grey")
    image = render(scene, 32)
    with torch.no_grad():
        codes = adapter.model.model.vqmodel.encode(to_pixels([image])).image_tokens.view(1, -1)
    through_janus = np.asarray(adapter.decode(codes)[0])
    through_tokenizer = np.asarray(reconstruct(load_vq(trained), [image])[0])
    assert np.array_equal(through_janus, through_tokenizer)
    # the text side is build_tiny_janus's, unchanged
    from transformers import JanusForConditionalGeneration

    from harness.models.tiny_janus import build_tiny_janus
    plain = JanusForConditionalGeneration.from_pretrained(
        build_tiny_janus(tmp_path / "plain", words=SHAPES, image_size=32, patch_size=8))
    assert torch.equal(plain.model.language_model.embed_tokens.weight,
                       adapter.model.model.language_model.embed_tokens.weight)


def test_training_again_gives_the_same_content_hash(trained, tmp_path):
    """Timings stay out of the hashed files, so the lineage of a re-made tokenizer is unchanged."""
    from harness.artifacts import read_manifest

    again = train_shapes_vq(tmp_path / "again", **{**SMALL, "eval_scenes": 0})
    first, second = read_manifest(trained), read_manifest(again)
    assert second.files == first.files and second.hash == first.hash
    assert "train_seconds" in second.info and "train_seconds" not in json.loads((again / "metrics.json").read_text())
    assert second.info["device"] == "cpu"  # recorded where it was trained, outside the hash
