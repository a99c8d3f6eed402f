"""Janus understanding (``JanusAdapter.answer``) on a freshly built tiny checkpoint loaded from disk."""
from __future__ import annotations

import hashlib
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from PIL import Image

from harness.errors import HarnessError
from harness.models.base import InputImage, Request
from harness.models.janus import JanusAdapter
from harness.models.tiny_janus import BOI, BOS, EOI, IMAGE, build_tiny_janus

# The deepseek VLChatProcessor system prompt, typed by hand; the processor ends it with a blank line.
SYSTEM_PROMPT = ("You are a helpful language and vision assistant. You are able to understand the visual "
                 "content that the user provides, and assist the user with a variety of tasks using natural "
                 "language.\n\n")

# Questions of different lengths (so batches need left padding).
QUESTIONS = [
    "is there a red circle in this image ? please answer yes or no .",
    "how many stars ?",
    "which option is right ? a . circle b . star c . square d . cross answer with the option ' s letter "
    "from the given choices directly .",
    "what",
    "is this a photo of two blue hexagons above a green star ?",
]
MAX_NEW_TOKENS = 10


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return build_tiny_janus(tmp_path_factory.mktemp("janus-answer") / "tiny", seed=0)


@pytest.fixture(scope="module")
def adapter(tiny_dir):
    return JanusAdapter(tiny_dir, batch_size=3, max_new_tokens=MAX_NEW_TOKENS)


def _noise(width: int, height: int, seed: int, mode: str = "RGB") -> Image.Image:
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)
    return Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode)


def _request(sample_id: str, prompt: str, image: Image.Image) -> Request:
    return Request(sample_id, prompt, seed=0, images=(InputImage(sample_id, lambda: image),))


def _answers(adapter: JanusAdapter, requests: list[Request], batch_size: int) -> list[str]:
    old, adapter.batch_size = adapter.batch_size, batch_size
    try:
        return adapter.answer(requests)
    finally:
        adapter.batch_size = old


def test_answer_equals_direct_transformers_generate(tiny_dir, adapter):
    from transformers import JanusForConditionalGeneration, JanusProcessor

    image = _noise(48, 30, seed=1)
    question = QUESTIONS[0]
    ours = adapter.answer([_request("q0", question, image)])

    # Independent computation: the deepseek layout typed by hand, the checkpoint's own processor
    # (which adds the system prompt and expands the image token), greedy model.generate.
    processor = JanusProcessor.from_pretrained(tiny_dir)
    model = JanusForConditionalGeneration.from_pretrained(tiny_dir).eval()
    text = f"<|User|>: {IMAGE}\n{question}\n\n<|Assistant|>:"
    inputs = processor(text=[text], images=[image], return_tensors="pt")
    eos = processor.tokenizer.eos_token_id
    with torch.inference_mode():
        output = model.generate(**inputs, do_sample=False, max_new_tokens=MAX_NEW_TOKENS, pad_token_id=eos)
    theirs = processor.tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert ours == [theirs]
    assert theirs.strip()  # the tiny model says something, so the comparison means something

    # The token layout: BOS, system prompt, user tag, BOI + 16 image tokens + EOI, question, assistant tag.
    tokenizer = adapter.processor.tokenizer
    built = adapter.build_question_inputs([question], [image])
    expected = ([BOS] + tokenizer.tokenize(SYSTEM_PROMPT) + ["<|User|>", ":", BOI] + [IMAGE] * 16 + [EOI]
                + tokenizer.tokenize(question) + ["<|Assistant|>", ":"])
    assert tokenizer.convert_ids_to_tokens(built["input_ids"][0].tolist()) == expected
    assert torch.equal(built["input_ids"].cpu(), inputs["input_ids"])


def test_image_preprocessing_pads_and_normalises_with_half(adapter):
    # 40x20 red: long side resized to 64 -> 64x32, centred on a 64x64 square of (127, 127, 127);
    # then (x / 255 - 0.5) / 0.5.
    pixels = adapter.build_question_inputs(["what"], [Image.new("RGB", (40, 20), (255, 0, 0))])["pixel_values"]
    assert pixels.shape == (1, 3, 64, 64)
    background = (127 / 255 - 0.5) / 0.5
    assert torch.allclose(pixels[0, :, 0, 0], torch.full((3,), background), atol=1e-5)  # padding row
    assert torch.allclose(pixels[0, :, 63, 32], torch.full((3,), background), atol=1e-5)
    assert torch.allclose(pixels[0, :, 32, 32], torch.tensor([1.0, -1.0, -1.0]), atol=1e-5)  # red


def test_batched_answers_equal_single_answers(adapter):
    sizes = [(48, 30), (64, 64), (30, 90), (128, 100), (20, 20), (77, 41), (64, 32)]
    requests = [_request(f"s{i}", QUESTIONS[i % len(QUESTIONS)], _noise(w, h, seed=10 + i))
                for i, (w, h) in enumerate(sizes)]
    single = _answers(adapter, requests, batch_size=1)
    batched = _answers(adapter, requests, batch_size=3)
    whole = _answers(adapter, requests[::-1], batch_size=len(requests))[::-1]
    assert single == batched == whole
    assert len(set(single)) > 1  # answers differ, so a mix-up between rows would show
    # The batch really was padded on the left (different prompt lengths).
    mask = adapter.build_question_inputs(QUESTIONS[:3], [r.images[0].load() for r in requests[:3]])["attention_mask"]
    assert len(set(mask.sum(dim=1).tolist())) == 3 and bool(mask[:, -1].all())


def test_rgba_and_greyscale_images_are_converted_to_rgb(adapter):
    rgba, grey = _noise(50, 40, seed=3, mode="RGBA"), _noise(40, 50, seed=4, mode="L")
    answers = adapter.answer([_request("rgba", QUESTIONS[1], rgba), _request("grey", QUESTIONS[1], grey)])
    expected = adapter.answer([_request("rgb1", QUESTIONS[1], rgba.convert("RGB")),
                               _request("rgb2", QUESTIONS[1], grey.convert("RGB"))])
    assert answers == expected and all(isinstance(a, str) for a in answers)


def test_max_new_tokens_is_respected(tiny_dir, adapter):
    short_adapter = JanusAdapter(tiny_dir, batch_size=3, max_new_tokens=3)
    requests = [_request(f"m{i}", q, _noise(40, 40, seed=20 + i)) for i, q in enumerate(QUESTIONS)]
    short, long = short_adapter.answer(requests), adapter.answer(requests)
    for s, l in zip(short, long):
        s_words, l_words = s.split(), l.split()  # word-level tokenizer: one word per token
        assert len(s_words) <= 3
        assert l_words[:len(s_words)] == s_words  # greedy: the short answer is a prefix
    assert any(len(s.split()) == 3 and len(l.split()) > 3 for s, l in zip(short, long))


def test_protocol_records_understanding_settings(tiny_dir, adapter):
    answer = adapter.protocol_for("answer")["answer"]
    assert answer["decoding"] == "greedy" and answer["max_new_tokens"] == MAX_NEW_TOKENS
    assert answer["system_prompt"] is True
    assert answer["system_prompt_sha256"] == hashlib.sha256(SYSTEM_PROMPT.encode()).hexdigest()[:16]
    assert answer["prompt_template"] == f"<|User|>: {IMAGE}\n{{prompt}}\n\n<|Assistant|>:"
    assert "answer" in JanusAdapter.capabilities and "text_to_image" in JanusAdapter.capabilities

    other = JanusAdapter(tiny_dir, max_new_tokens=MAX_NEW_TOKENS + 1)
    assert other.protocol_for("answer") != adapter.protocol_for("answer")
    assert other.protocol_for("answer")["answer"]["max_new_tokens"] == MAX_NEW_TOKENS + 1
    # answer settings never touch image cache keys, nor image settings answer keys
    assert other.protocol_for("text_to_image") == adapter.protocol_for("text_to_image")
    hotter = JanusAdapter(tiny_dir, max_new_tokens=MAX_NEW_TOKENS, cfg_weight=3.0)
    assert hotter.protocol_for("answer") == adapter.protocol_for("answer")
    assert hotter.protocol_for("text_to_image") != adapter.protocol_for("text_to_image")

    no_system = JanusAdapter(tiny_dir, max_new_tokens=MAX_NEW_TOKENS, system_prompt=False)
    assert no_system.protocol_for("answer")["answer"]["system_prompt"] is False
    assert no_system.protocol_for("answer")["answer"]["system_prompt_sha256"] is None


def test_request_without_exactly_one_image_is_refused(adapter):
    with pytest.raises(HarnessError, match="exactly one image"):
        adapter.answer([Request("none", "what", seed=0)])
    with pytest.raises(ValueError, match="max_new_tokens"):
        JanusAdapter(adapter.folder, max_new_tokens=0)
