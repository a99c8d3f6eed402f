"""Janus adapter on a tiny random checkpoint: protocol, seeding, guidance arithmetic, loading."""
from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

from harness.models import janus_loading
from harness.models.base import Request
from harness.models.janus import JanusAdapter, JanusLoadError, checkpoint_digest
from harness.models.tiny_janus import BOI, BOS, PAD, USER, build_tiny_janus

# Prompts of different lengths, so batching needs left padding.
PROMPTS = [
    "a photo of a red apple",
    "two",
    "a photo of three blue circles above a green star and a white hexagon",
    "  hexagon  ",
    "a photo of a purple cross left of a brown diamond",
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return build_tiny_janus(tmp_path_factory.mktemp("janus") / "tiny", words=["apple"], seed=0)


@pytest.fixture(scope="module")
def adapter(tiny_dir):
    return JanusAdapter(tiny_dir, batch_size=4)


def _requests(seeds):
    return [Request(f"s{i}", PROMPTS[i % len(PROMPTS)], seed) for i, seed in enumerate(seeds)]


def _pixels(images):
    return [image.tobytes() for image in images]


def _generate(adapter, requests, batch_size):
    old, adapter.batch_size = adapter.batch_size, batch_size
    try:
        return adapter.generate_images(requests)
    finally:
        adapter.batch_size = old


def test_batch_of_prompts_gives_images_of_model_size(adapter):
    images = adapter.generate_images(_requests([11, 12, 13, 14, 15, 16]))
    assert len(images) == 6
    assert all(image.size == (64, 64) and image.mode == "RGB" for image in images)
    assert len(set(_pixels(images))) == 6
    protocol = adapter.protocol
    assert protocol["cfg_weight"] == 5.0 and protocol["temperature"] == 1.0 and protocol["top_k"] is None
    assert protocol["image_tokens"] == 16 and protocol["image_size"] == 64
    assert protocol["prompt_template"] == "<|User|>: {prompt}\n\n<|Assistant|>:<begin_of_image>"
    assert protocol["cfg_layout"] == "deepseek-interleaved" and protocol["dtype"] == "float32"
    assert JanusAdapter.plugin_name == "janus" and "text_to_image" in JanusAdapter.capabilities


def test_images_do_not_depend_on_batching(adapter):
    requests = _requests([101, 102, 103, 104, 105, 106, 107])
    alone = _pixels(_generate(adapter, requests, batch_size=1))
    batched = _pixels(_generate(adapter, requests, batch_size=4))
    reordered = _pixels(_generate(adapter, requests[::-1], batch_size=4))[::-1]
    assert alone == batched == reordered
    # Same prompt, other seed: another image. Same seed again: the same image.
    other = _pixels(adapter.generate_images([Request("x", PROMPTS[0], 999)]))
    assert other[0] != alone[0]
    assert _pixels(adapter.generate_images(requests[:1])) == alone[:1]


def test_greedy_manual_loop_matches_transformers_generate(tiny_dir):
    greedy = JanusAdapter(tiny_dir, temperature=0)
    inputs = greedy.processor(text=[greedy.render_prompt(p) for p in PROMPTS], generation_mode="image",
                              padding=True, return_tensors="pt")
    with torch.inference_mode():
        ours = greedy.generate_image_tokens(PROMPTS, seeds=[0] * len(PROMPTS))
        theirs = greedy.model.generate(**inputs, generation_mode="image", do_sample=False, guidance_scale=5.0)
        unguided = JanusAdapter(tiny_dir, temperature=0, cfg_weight=1).generate_image_tokens(PROMPTS, [0] * 5)
    assert ours.shape == (len(PROMPTS), 16)
    assert torch.equal(ours, theirs)
    assert not torch.equal(ours, unguided)  # guidance really changes the tokens on this model


def test_unconditional_rows_keep_only_bos_and_boi(adapter):
    tokenizer = adapter.processor.tokenizer
    bos, pad, boi = (tokenizer.convert_tokens_to_ids(t) for t in (BOS, PAD, BOI))
    prompts = [PROMPTS[0], PROMPTS[1]]
    batch = adapter.build_batch(prompts)
    assert batch.rows_per_request == 2 and batch.input_ids.shape[0] == 4
    for i, prompt in enumerate(prompts):
        cond, uncond = batch.input_ids[2 * i], batch.input_ids[2 * i + 1]
        mask = batch.attention_mask[2 * i]
        assert torch.equal(mask, batch.attention_mask[2 * i + 1])
        real = mask.nonzero().flatten()
        start = int(real[0])
        assert cond[start] == bos and cond[start + 1] == tokenizer.convert_tokens_to_ids(USER) and cond[-1] == boi
        assert uncond[start] == bos and uncond[-1] == boi
        assert (uncond[start + 1:-1] == pad).all() and (uncond[:start] == pad).all()
        assert (mask[:start] == 0).all() and (mask[start:] == 1).all()
        assert batch.position_ids[2 * i, start] == 0 and batch.position_ids[2 * i, -1] == len(real) - 1
        expected = tokenizer(adapter.render_prompt(prompt) + BOI)["input_ids"]
        assert cond[start:].tolist() == expected
    assert adapter.render_prompt("  two ") == "<|User|>: two\n\n<|Assistant|>:"
    # The checkpoint's own chat template renders the same text.
    messages = [{"role": "user", "content": [{"type": "text", "text": "two"}]}]
    assert adapter.processor.apply_chat_template(messages, add_generation_prompt=True) == adapter.render_prompt("two")


def test_unguided_sampling_runs_and_differs(tiny_dir, adapter):
    requests = _requests([7, 8])
    unguided = JanusAdapter(tiny_dir, cfg_weight=1)
    assert unguided.build_batch(PROMPTS[:2]).rows_per_request == 1
    images = unguided.generate_images(requests)
    assert [image.size for image in images] == [(64, 64)] * 2
    assert _pixels(images) != _pixels(adapter.generate_images(requests))


def test_hub_id_offline_fails_with_clear_message(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(JanusLoadError) as info:
        JanusAdapter("deepseek-community/Janus-Pro-7B")
    message = str(info.value)
    for part in ("could not be found locally", "HF_HUB_OFFLINE", "hf download deepseek-community/Janus-Pro-7B",
                 "--local-dir"):
        assert part in message
    with pytest.raises(JanusLoadError, match="deepseek-community/Janus-Pro-7B"):
        JanusAdapter("deepseek-ai/Janus-Pro-7B")
    with pytest.raises(JanusLoadError, match="does not exist"):
        JanusAdapter(tmp_path / "missing")
    original = tmp_path / "original"
    original.mkdir()
    (original / "config.json").write_text(json.dumps({"model_type": "multi_modality"}))
    with pytest.raises(JanusLoadError, match="converted copy"):
        JanusAdapter(original)


def test_save_reload_round_trip(tmp_path, adapter):
    from transformers import GenerationConfig

    copy = tmp_path / "copy"
    adapter.model.save_pretrained(copy)
    adapter.processor.save_pretrained(copy)
    boi = adapter.processor.tokenizer.convert_tokens_to_ids(BOI)
    assert GenerationConfig.from_pretrained(copy).generation_kwargs == {"boi_token_id": boi}
    reloaded = JanusAdapter(copy, batch_size=4)
    assert list(reloaded.processor.image_processor.image_mean) == [0.5] * 3
    requests = _requests([21, 22, 23])
    assert _pixels(reloaded.generate_images(requests)) == _pixels(adapter.generate_images(requests))
    # generate() in image mode needs generation_kwargs["boi_token_id"]; it must survive the reload.
    inputs = reloaded.processor(text=[reloaded.render_prompt("two")], generation_mode="image", return_tensors="pt")
    tokens = reloaded.model.generate(**inputs, generation_mode="image", do_sample=False, guidance_scale=5.0)
    assert tokens.shape == (1, 16)


def test_model_digest_tracks_weights(tmp_path, tiny_dir, adapter):
    same_seed = build_tiny_janus(tmp_path / "again", words=["apple"], seed=0)
    other_seed = build_tiny_janus(tmp_path / "other", words=["apple"], seed=1)
    digest = adapter.model_digest
    assert len(digest) == 16 and digest == adapter.model_digest
    janus_loading._DIGEST_CACHE.clear()  # recomputed from the files: stable across runs
    assert checkpoint_digest(tiny_dir) == digest
    assert checkpoint_digest(same_seed) == digest  # same seed, same weights
    assert checkpoint_digest(other_seed) != digest
