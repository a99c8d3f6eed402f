"""The Janus generation engine: batch invariance of its samples (text-to-image and editing), the
counter-based Gumbel-max sampler drawing from softmax(l / T) (and a test that can tell a wrong sampler),
understanding answers identical to ``generate``, the fixed-shape step CUDA graphs capture, protocol."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from scipy import stats

from harness.errors import HarnessError
from harness.models import janus_engine, janus_sampler, janus_weights
from harness.models.base import InputImage, Request
from harness.models.janus import ADAPTER_VERSION, JanusAdapter
from harness.models.tiny_janus import build_tiny_janus, build_tokenizer, tiny_janus_config
from shapes.world import Scene, ShapeObject, render

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Prompts of different lengths (left padding), two of them repeated (rows shared at the prefill).
PROMPTS = ["a photo of a red circle", "two", "a photo of three blue stars above a green hexagon",
           "a photo of a red circle", "a white cross left of a brown diamond", "two", "  hexagon  ",
           "a photo of four purple squares"]
SEEDS = [11, 12, 13, 14, 15, 16, 17, 18]
EDITS = ["make the circle blue", "red", "make the square green and the circle a star above it", "red"]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A tiny model whose decoder matters: with the default init (std 0.02, norm weights 1) attention is
    nearly uniform and the norms are identities, so a wrong rotation or norm weight would go unseen.
    Variance-preserving projections and random norm weights make every part change the tokens."""
    from transformers import JanusForConditionalGeneration

    words = ["make", "circle", "square", "star", "green", "blue", "red", "above", "it", "stars", "squares"]
    path = build_tiny_janus(tmp_path_factory.mktemp("janus-engine") / "tiny", words=words, seed=3)
    model = JanusForConditionalGeneration.from_pretrained(path)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, parameter in model.model.language_model.named_parameters():
            if name.endswith("norm.weight"):
                parameter.copy_(0.5 + torch.rand(parameter.shape, generator=generator))
            elif name.startswith("layers.") and parameter.dim() == 2:
                torch.nn.init.normal_(parameter, std=2 * parameter.shape[1] ** -0.5, generator=generator)
        for linear in model.model.generation_aligner.modules():  # image tokens that differ, feed differently
            if isinstance(linear, torch.nn.Linear):
                torch.nn.init.normal_(linear.weight, std=linear.in_features ** -0.5, generator=generator)
        torch.nn.init.normal_(model.model.generation_embeddings.weight, std=1.0, generator=generator)
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def engine(tiny_dir):
    return JanusAdapter(tiny_dir, device="cpu", dtype="float32", batch_size=8)


@pytest.fixture(scope="module")
def reference(tiny_dir):
    return JanusAdapter(tiny_dir, device="cpu", dtype="float32", batch_size=8, sampler="reference")


def _tokens(adapter, prompts, seeds, batch_size):
    with torch.inference_mode():
        return torch.cat([adapter.generate_image_tokens(prompts[i:i + batch_size], seeds[i:i + batch_size])
                          for i in range(0, len(prompts), batch_size)])


def _source(index: int):
    scenes = [Scene((ShapeObject("circle", "red", 0.3, 0.4, 0.3), ShapeObject("square", "blue", 0.7, 0.65, 0.25))),
              Scene((ShapeObject("triangle", "yellow", 0.5, 0.5, 0.5),), background="beige"),
              Scene((ShapeObject("star", "green", 0.6, 0.3, 0.3),), background="grey_gradient")]
    return render(scenes[index % len(scenes)], size=80)


# -- batch invariance ------------------------------------------------------------------------------


def test_text_to_image_tokens_equal_at_batch_1_and_8_in_any_order(engine):
    alone = _tokens(engine, PROMPTS, SEEDS, 1)
    engine.profile = True
    try:
        batched = _tokens(engine, PROMPTS, SEEDS, 8)
        shared = engine.timings
    finally:
        engine.profile = False
    order = [5, 2, 7, 0, 3, 6, 1, 4]
    shuffled = _tokens(engine, [PROMPTS[i] for i in order], [SEEDS[i] for i in order], 8)
    assert torch.equal(alone, batched)
    assert torch.equal(shuffled, batched[order])
    assert alone.shape == (8, 16) and len({tuple(row) for row in alone.tolist()}) == 8
    # Rows really were shared: 6 distinct prompts -> 6 conditional rows; uncond rows by length.
    assert shared.rows == 16 and shared.distinct_prompt_rows < 16
    # The same seed gives the same tokens for the same prompt; another seed other tokens.
    assert torch.equal(_tokens(engine, PROMPTS[:1], [11], 1), alone[:1])
    assert not torch.equal(_tokens(engine, PROMPTS[:1], [999], 1), alone[:1])


def test_images_equal_at_batch_1_and_8_in_any_order(engine):
    requests = [Request(f"s{i}", p, s) for i, (p, s) in enumerate(zip(PROMPTS, SEEDS))]
    old = engine.batch_size
    try:
        engine.batch_size = 1
        alone = [image.tobytes() for image in engine.generate_images(requests)]
        engine.batch_size = 8
        batched = [image.tobytes() for image in engine.generate_images(requests)]
        reordered = [image.tobytes() for image in engine.generate_images(requests[::-1])][::-1]
    finally:
        engine.batch_size = old
    assert alone == batched == reordered  # the VQ decoder always runs on chunks of the same size (8 on CPU)
    assert len(set(alone)) == 8


def test_edit_tokens_equal_at_batch_1_and_8_in_any_order(engine):
    instructions = [EDITS[i % len(EDITS)] for i in range(8)]
    sources = [_source(i) for i in range(8)]
    seeds = [21, 22, 23, 24, 25, 26, 27, 28]

    def run(indices, batch_size):
        out = []
        with torch.inference_mode():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start:start + batch_size]
                out.append(engine.edit_image_tokens([instructions[i] for i in chunk], [sources[i] for i in chunk],
                                                    [seeds[i] for i in chunk]))
        return torch.cat(out)

    alone = run(list(range(8)), 1)
    batched = run(list(range(8)), 8)
    order = [3, 7, 0, 5, 1, 6, 2, 4]
    assert torch.equal(alone, batched)
    assert torch.equal(run(order, 8), batched[order])
    assert len({tuple(row) for row in alone.tolist()}) == 8


def test_reference_sampler_stays_selectable_and_batch_invariant(reference, engine):
    assert torch.equal(_tokens(reference, PROMPTS, SEEDS, 1), _tokens(reference, PROMPTS, SEEDS, 8))
    # The two samplers are different random streams for the same seeds.
    assert not torch.equal(_tokens(reference, PROMPTS, SEEDS, 8), _tokens(engine, PROMPTS, SEEDS, 8))


# -- the engine's arithmetic ---------------------------------------------------------------------------


def test_greedy_engine_equals_the_reference_loop(tiny_dir):
    """Without sampling both samplers pick the argmax of the same guided logits: equal tokens show that
    the engine's decoder, cache, prefill sharing and guidance compute what the transformers model does."""
    kwargs = dict(device="cpu", dtype="float32", temperature=0)
    for cfg in (5.0, 1.0):
        ours = JanusAdapter(tiny_dir, cfg_weight=cfg, **kwargs)
        theirs = JanusAdapter(tiny_dir, cfg_weight=cfg, sampler="reference", **kwargs)
        assert torch.equal(_tokens(ours, PROMPTS, SEEDS, 8), _tokens(theirs, PROMPTS, SEEDS, 8))


def test_greedy_engine_edits_equal_the_reference_loop(tiny_dir):
    """Three rows per request, two guidance scales, shared full/part/uncond prefill rows: same argmax."""
    kwargs = dict(device="cpu", dtype="float32", temperature=0)
    ours, theirs = JanusAdapter(tiny_dir, **kwargs), JanusAdapter(tiny_dir, sampler="reference", **kwargs)
    instructions, sources = EDITS + EDITS[:1], [_source(i) for i in (0, 1, 2, 1, 0)]  # two repeated requests
    with torch.inference_mode():
        expected = theirs.edit_image_tokens(instructions, sources, [0] * 5)
        assert torch.equal(ours.edit_image_tokens(instructions, sources, [0] * 5), expected)
    assert len({tuple(row) for row in expected.tolist()}) == 3


@pytest.mark.parametrize("prepack", [False, True])
def test_large_model_paths_equal_the_reference_loop(tiny_dir, monkeypatch, prepack):
    """Large models run unfused projections, on CPU with oneDNN-prepacked weights: forced here on the tiny
    model, greedy tokens and answers still equal the transformers model's."""
    monkeypatch.setattr(janus_engine, "FUSE_LIMIT_BYTES", 0)
    ours = JanusAdapter(tiny_dir, device="cpu", dtype="float32", temperature=0, max_new_tokens=6)
    ours.engine.prepack = prepack
    theirs = JanusAdapter(tiny_dir, device="cpu", dtype="float32", temperature=0, max_new_tokens=6,
                          sampler="reference")
    assert torch.equal(_tokens(ours, PROMPTS, SEEDS, 8), _tokens(theirs, PROMPTS, SEEDS, 8))
    requests = [Request(f"q{i}", "how many stars ?", 0, (InputImage(f"i{i}", lambda i=i: _noise_image(i, 40, 30)),))
                for i in range(3)]
    assert ours.answer(requests) == theirs.answer(requests)
    weights = ours.engine._weights()
    assert weights.layers[0].qkv is None and weights.layers[0].q is not None
    assert ours.engine.prepacked == (prepack and janus_weights.prepack_available())
    assert ours.engine._weights() is weights  # built once
    # A parameter changed in place is seen: the engine rebuilds its copies.
    with torch.no_grad():
        ours.model.model.language_model.layers[0].mlp.down_proj.weight.mul_(2)
    assert ours.engine._weights() is not weights


def test_fixed_shape_step_equals_the_default_step(engine):
    """The step CUDA graphs capture (whole-cache attention, device-side counters) run eagerly on CPU."""
    batch = engine.build_batch(PROMPTS)
    prompt = janus_engine.PromptRows(engine.model.get_input_embeddings()(batch.input_ids), batch.attention_mask,
                                     batch.position_ids, torch.arange(len(batch.input_ids)))
    runs = [engine.engine.sample_image_tokens(prompt, 2, engine._guide, SEEDS, 1.0, engine.image_tokens,
                                              static=static) for static in (False, True)]
    assert torch.equal(runs[0], runs[1])
    assert torch.equal(runs[0], _tokens(engine, PROMPTS, SEEDS, 8))  # and sharing rows changes nothing


def test_grouped_query_attention_matches_generate(tiny_dir):
    """A model with fewer key/value heads than query heads: greedy engine tokens equal generate's."""
    from transformers import JanusForConditionalGeneration, JanusProcessor

    processor = JanusProcessor.from_pretrained(tiny_dir)
    config = tiny_janus_config(build_tokenizer(["apple"]).get_vocab(), 64, 16, 64, 2)
    config.text_config.num_key_value_heads = 2
    config.text_config.vocab_size = len(processor.tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = JanusForConditionalGeneration(config).eval()
        head = model.model.generation_head
        for linear in (head.proj_out, head.vision_head):
            torch.nn.init.normal_(linear.weight, std=linear.in_features ** -0.5)
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    boi = processor.tokenizer.convert_tokens_to_ids("<begin_of_image>")
    model.generation_config.generation_kwargs = {"boi_token_id": boi}
    adapter = JanusAdapter.from_loaded(model, processor, device="cpu", dtype="float32", temperature=0)
    prompts = PROMPTS[:4]
    inputs = processor(text=[adapter.render_prompt(p) for p in prompts], generation_mode="image", padding=True,
                       return_tensors="pt")
    with torch.inference_mode():
        theirs = model.generate(**inputs, generation_mode="image", do_sample=False, guidance_scale=5.0)
    assert torch.equal(_tokens(adapter, prompts, [0] * 4, 4), theirs)
    with pytest.raises(HarnessError, match="in memory"):
        adapter.model_digest


# -- the sampler -----------------------------------------------------------------------------------------

LOGITS = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0, -3.0, 0.3])
TEMPERATURE = 0.8
DRAWS = (2000, 20)  # seeds x steps = 40,000 draws


def _chi_square_p(tokens: torch.Tensor, probabilities: torch.Tensor) -> float:
    counts = torch.bincount(tokens, minlength=len(probabilities)).double()
    expected = probabilities.double() * len(tokens)
    statistic = float(((counts - expected) ** 2 / expected).sum())
    return float(stats.chi2.sf(statistic, len(probabilities) - 1))


def _keys():
    return janus_sampler.step_keys(range(DRAWS[0]), DRAWS[1])  # (seeds, steps, 2)


def test_sampler_draws_from_softmax_of_logits_over_temperature():
    keys = _keys().reshape(-1, 2)
    tokens = janus_sampler.draw(LOGITS.expand(len(keys), -1), janus_sampler.gumbel_noise(keys, 7), TEMPERATURE)
    assert _chi_square_p(tokens, torch.softmax(LOGITS / TEMPERATURE, dim=-1)) > 1e-3
    # Temperature 0 is the argmax, and draws are a pure function of (seed, step).
    assert bool((janus_sampler.draw(LOGITS.expand(3, -1), None, 0) == 0).all())
    again = janus_sampler.step_keys([5, 7], 3)
    assert torch.equal(again, janus_sampler.step_keys([5, 7], 3)) and torch.equal(again[1], _keys()[7, :3])


def test_draws_are_independent_across_steps_and_neighbouring_seeds():
    keys = _keys()
    noise = janus_sampler.gumbel_noise(keys, 7)  # (seeds, steps, 7)
    tokens = janus_sampler.draw(LOGITS.expand(*noise.shape[:2], -1), noise, TEMPERATURE)
    for first, second in ((tokens[:, 0], tokens[:, 1]),      # consecutive steps of one seed
                          (tokens[0::2, 3], tokens[1::2, 3])):  # the same step of seeds s and s+1
        table = torch.zeros(7, 7)
        for a, b in zip(first.tolist(), second.tolist()):
            table[a, b] += 1
        table = table[table.sum(1) > 0][:, table.sum(0) > 0]
        assert stats.chi2_contingency(table.numpy())[1] > 1e-3


def test_the_chi_square_test_rejects_samplers_that_are_slightly_off():
    """The test above would catch a sampler that is a little wrong: each of these fails it."""
    keys = _keys().reshape(-1, 2)
    target = torch.softmax(LOGITS / TEMPERATURE, dim=-1)
    logits = LOGITS.expand(len(keys), -1)
    noise = janus_sampler.gumbel_noise(keys, 7)
    bits = janus_sampler.uniform_bits(keys, 7).double()
    wrong = {
        "temperature 5% too high": janus_sampler.draw(logits, noise, TEMPERATURE * 1.05),
        "exponential instead of Gumbel noise": janus_sampler.draw(logits, -torch.log((bits + 0.5) / 2**32),
                                                                  TEMPERATURE),
        "uniform noise of the same spread": janus_sampler.draw(logits, (bits / 2**32) * 1.28 * 12 ** 0.5, TEMPERATURE),
    }
    for name, tokens in wrong.items():
        assert _chi_square_p(tokens, target) < 1e-6, name


# -- understanding ---------------------------------------------------------------------------------------


def _noise_image(seed: int, width: int, height: int):
    import numpy as np
    from PIL import Image

    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_understanding_answers_are_token_identical_to_generate(tiny_dir):
    questions = ["is there a red circle in this image ? please answer yes or no .", "how many stars ?", "what",
                 "which option is right ? a . circle b . star", "is this a photo of two blue squares ?"]
    requests = [Request(f"q{i}", questions[i % len(questions)], 0,
                        (InputImage(f"i{i}", lambda i=i: _noise_image(i, 30 + 9 * i, 70 - 5 * i)),)) for i in range(7)]
    for max_new_tokens in (3, 12):
        ours = JanusAdapter(tiny_dir, device="cpu", dtype="float32", batch_size=3, max_new_tokens=max_new_tokens)
        theirs = JanusAdapter(tiny_dir, device="cpu", dtype="float32", batch_size=3, max_new_tokens=max_new_tokens,
                              sampler="reference")
        expected = theirs.answer(requests)
        assert ours.answer(requests) == expected
        ours.batch_size = 7
        assert ours.answer(requests) == expected
        assert len(set(expected)) > 1 and all(len(a.split()) <= max_new_tokens for a in expected)
    # Rows that stop early: call a word the answers use "EOS" (for both paths), so some rows finish
    # mid-batch and must get EOS from then on while the others go on.
    tokenizer = theirs.processor.tokenizer
    counts: dict[str, int] = {}
    for answer in expected:
        for word in set(answer.split()):
            counts[word] = counts.get(word, 0) + 1
    word = max((w for w in counts if counts[w] < len(requests)), key=counts.get)
    for adapter in (ours, theirs):
        adapter.eos_id = tokenizer.convert_tokens_to_ids(word)
        adapter.batch_size = 7
    stopped = theirs.answer(requests)
    assert ours.answer(requests) == stopped and stopped != expected


# -- settings and protocol ----------------------------------------------------------------------------------


def test_protocol_records_the_sampler_and_the_new_version(engine, reference, tiny_dir):
    assert ADAPTER_VERSION == "janus-adapter/2"
    for capability in ("text_to_image", "edit", "answer"):
        ours, theirs = engine.protocol_for(capability), reference.protocol_for(capability)
        assert ours["adapter_version"] == theirs["adapter_version"] == ADAPTER_VERSION
        assert ours["sampler"] == "engine" and theirs["sampler"] == "reference"
        assert ours != theirs  # never the same cache keys
    assert janus_sampler.SAMPLER_VERSION in engine.protocol["sampling"]
    assert "chunks of 8" in engine.protocol["decode"]  # CPU: 64 px, 32 base channels
    with pytest.raises(ValueError, match="sampler"):
        JanusAdapter(tiny_dir, sampler="fast")
    with pytest.raises(ValueError, match="batch_size"):
        JanusAdapter(tiny_dir, batch_size="large")
    assert JanusAdapter(tiny_dir, device="cpu", batch_size="auto").batch_size == 16  # CPU: a fixed size


def test_the_kv_cache_goes_under_the_name_the_installed_transformers_takes(engine):
    import warnings

    from transformers import DynamicCache

    class Old(torch.nn.Module):  # transformers 5.0
        def forward(self, inputs_embeds=None, past_key_values=None, use_cache=None):
            return past_key_values

    class New(torch.nn.Module):  # later 5.x: the old name warns, and goes in 5.40
        def forward(self, inputs_embeds=None, cache=None, use_cache=None, **kwargs):
            return cache

    marker = object()
    assert janus_engine.cache_argument(Old(), marker) == {"past_key_values": marker}
    assert janus_engine.cache_argument(New(), marker) == {"cache": marker}
    language_model = engine.model.model.language_model
    cache = DynamicCache(config=language_model.config)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # the installed release takes it without a warning
        language_model(inputs_embeds=torch.zeros(1, 3, language_model.config.hidden_size), use_cache=True,
                       **janus_engine.cache_argument(language_model, cache))
    assert cache.get_seq_length() == 3  # and it filled the cache it was given
