"""Janus-4o editing on a tiny random checkpoint: prompt layout, three streams, seeding, batching."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from harness.errors import HarnessError
from harness.models import janus_edit
from harness.models.base import InputImage, Request
from harness.models.janus import JanusAdapter
from harness.models.tiny_janus import ASSISTANT, BOI, BOS, EOI, IMAGE, PAD, USER, build_tiny_janus
from shapes.world import Scene, ShapeObject, render

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N = 16  # image tokens of the tiny model (64 px / 16 px patches, squared)
# Instructions of different lengths, so a batch needs left padding.
INSTRUCTIONS = ["make the circle blue", "red", "make the square green and the circle a star above it"]


def _source(index: int) -> Image.Image:
    scenes = [
        Scene((ShapeObject("circle", "red", 0.3, 0.4, 0.3), ShapeObject("square", "blue", 0.7, 0.65, 0.25))),
        Scene((ShapeObject("triangle", "yellow", 0.5, 0.5, 0.5),), background="beige"),
        Scene((ShapeObject("star", "green", 0.6, 0.3, 0.3),), background="grey_gradient"),
    ]
    image = render(scenes[index % len(scenes)], size=96)  # not the model's size: resized on the way in
    return image.crop((0, 0, 96, 72)) if index == 2 else image  # one non-square source: padded


def _requests(seeds, instructions=INSTRUCTIONS):
    return [Request(f"e{i}", instructions[i % len(instructions)], seed,
                    (InputImage(f"img{i}", lambda i=i: _source(i)),)) for i, seed in enumerate(seeds)]


def _pixels(images):
    return [image.tobytes() for image in images]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from transformers import JanusForConditionalGeneration

    words = ["make", "circle", "square", "star", "green", "blue", "red", "above", "it"]
    path = build_tiny_janus(tmp_path_factory.mktemp("janus-edit") / "tiny", words=words, seed=0)
    # With the default init (std 0.02) the source's VQ code embeddings are ~1e-4: the full and part
    # streams then give logits within 0.03 of each other and no test could see the second scale.
    # A variance-preserving init of the generation embeddings and aligner makes them matter.
    model = JanusForConditionalGeneration.from_pretrained(path)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        torch.nn.init.normal_(model.model.generation_embeddings.weight, std=1.0, generator=generator)
        for linear in model.model.generation_aligner.modules():
            if isinstance(linear, torch.nn.Linear):
                torch.nn.init.normal_(linear.weight, std=linear.in_features ** -0.5, generator=generator)
                torch.nn.init.zeros_(linear.bias)
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def adapter(tiny_dir):
    return JanusAdapter(tiny_dir, batch_size=3)


def _ids(adapter, *tokens):
    return [adapter.processor.tokenizer.convert_tokens_to_ids(t) for t in tokens]


def test_edit_end_to_end_gives_images_of_model_size(adapter):
    images = adapter.edit_images(_requests([1, 2, 3, 4]))
    assert [(image.size, image.mode) for image in images] == [((64, 64), "RGB")] * 4
    assert len(set(_pixels(images))) == 4
    assert "edit" in JanusAdapter.capabilities
    protocol = adapter.protocol_for("edit")
    assert protocol["cfg_weight"] == 5.0 and protocol["cfg_weight2"] == 5.0 and protocol["temperature"] == 1.0
    assert protocol["guidance"] == "l_cond=(l_full+s2*l_part)/(1+s2); l=l_uncond+s1*(l_cond-l_uncond)"
    assert protocol["prompt_template"] == (f"<|User|>: {BOI}{IMAGE}x16{EOI}{BOI}{PAD}x16{EOI}{{instruction}}"
                                           f"\n\n<|Assistant|>:{BOI}")
    assert protocol["image_size"] == 64 and protocol["top_k"] is None
    # The second scale is an editing parameter only: text-to-image cache keys do not see it.
    assert "cfg_weight2" not in adapter.protocol_for("text_to_image")


def test_three_row_layout(adapter):
    bos, pad, boi, eoi, image, user, assistant, colon = _ids(adapter, BOS, PAD, BOI, EOI, IMAGE, USER, ASSISTANT, ":")
    instructions = ["make the circle blue", "red"]
    sources = [_source(0), _source(1)]
    rows, embeds, codes = adapter.build_edit_inputs(instructions, sources)
    assert rows.input_ids.shape[0] == 6 and embeds.shape[:2] == rows.input_ids.shape
    for i, instruction in enumerate(instructions):
        full, part, uncond = (rows.input_ids[3 * i + k] for k in range(3))
        mask = rows.attention_mask[3 * i]
        first = int(mask.nonzero()[0])
        words = _ids(adapter, *instruction.split())
        expected = ([bos, user, colon, boi] + [image] * N + [eoi, boi] + [pad] * N + [eoi] + words
                    + [assistant, colon, boi])
        assert full[first:].tolist() == expected and part[first:].tolist() == expected
        assert (full[:first] == pad).all() and (mask[:first] == 0).all() and (mask[first:] == 1).all()
        assert uncond[first] == bos and uncond[-1] == boi and (uncond[first + 1:-1] == pad).all()
        assert all(torch.equal(rows.attention_mask[3 * i + k], mask) for k in range(3))
        assert rows.position_ids[3 * i, first] == 0 and rows.position_ids[3 * i, -1] == len(expected) - 1
        # Where the reference writes the VQ embeddings: two past the first EOI of the full row.
        first_eoi = first + expected.index(eoi)
        assert rows.slot_starts[i] == first_eoi + 2 and rows.image_starts[i] == first + 4

        token_embeds = adapter.model.get_input_embeddings()(rows.input_ids[3 * i:3 * i + 3])
        pixels = janus_edit.preprocess_sources(adapter.processor.image_processor, [sources[i]], 64)
        siglip = adapter.model.model.get_image_features(pixels).pooler_output[0]
        vq = adapter.model.model.generation_aligner(adapter.model.model.generation_embeddings(codes[i]))
        placeholders = slice(rows.image_starts[i], rows.image_starts[i] + N)
        slots = slice(rows.slot_starts[i], rows.slot_starts[i] + N)
        full_e, part_e, uncond_e = embeds[3 * i], embeds[3 * i + 1], embeds[3 * i + 2]
        assert torch.allclose(full_e[placeholders], siglip) and torch.allclose(part_e[placeholders], siglip)
        assert torch.allclose(full_e[slots], vq)  # VQ slots filled in the full row only
        assert torch.equal(part_e[slots], token_embeds[1][slots])  # part: the pad embedding stays
        assert not torch.allclose(part_e[slots], full_e[slots])
        assert torch.equal(uncond_e, token_embeds[2])  # uncond: no pixels at all
        outside = torch.ones(embeds.shape[1], dtype=torch.bool)
        outside[placeholders] = outside[slots] = False
        assert torch.equal(full_e[outside], token_embeds[0][outside])


def test_vq_codes_use_normalised_search(adapter):
    """Pitfall 12: codes are nearest by direction (deepseek), not the port's raw distance."""
    pixels = janus_edit.preprocess_sources(adapter.processor.image_processor, [_source(0), _source(1)], 64)
    vqmodel = adapter.model.model.vqmodel
    with torch.no_grad():
        ours = janus_edit.encode_vq_codes(vqmodel, pixels)
        latent = vqmodel.quant_conv(vqmodel.encoder(pixels)).permute(0, 2, 3, 1).reshape(-1, 8)
        cosine = F.normalize(latent, dim=-1) @ F.normalize(vqmodel.quantize.embedding.weight, dim=-1).T
        port = vqmodel.encode(pixels).image_tokens.reshape(2, -1)
    assert ours.shape == (2, N)
    assert torch.equal(ours, cosine.argmax(dim=-1).reshape(2, -1))
    # The tiny codebook's rows are far from unit length, so the port's search picks other codes.
    assert not torch.equal(ours, port)


def test_guidance_arithmetic_by_hand():
    # one request: full, part, uncond rows over a 2-token vocabulary
    logits = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    # s2 = 1: cond = (full + part) / 2 = [0.5, 0.5]; s1 = 2: uncond + 2 (cond - uncond) = [1, 1]
    assert torch.equal(janus_edit.guided_edit_logits(logits, 2.0, 1.0), torch.tensor([[1.0, 1.0]]))
    # s2 = 3: cond = [0.25, 0.75]; s1 = 4: [1, 3]
    assert torch.equal(janus_edit.guided_edit_logits(logits, 4.0, 3.0), torch.tensor([[1.0, 3.0]]))
    # s2 = 0: the full stream alone; s1 = 1: no guidance
    assert torch.equal(janus_edit.guided_edit_logits(logits, 1.0, 0.0), torch.tensor([[1.0, 0.0]]))


def test_batching_does_not_change_images(adapter):
    requests = _requests([31, 32, 33, 34, 35])
    old = adapter.batch_size
    try:
        adapter.batch_size = 1
        alone = _pixels(adapter.edit_images(requests))
        adapter.batch_size = 3
        batched = _pixels(adapter.edit_images(requests))
        reordered = _pixels(adapter.edit_images(requests[::-1]))[::-1]
    finally:
        adapter.batch_size = old
    assert alone == batched == reordered
    # Another seed gives another image; the same seed again the same one.
    other = _requests([999])
    assert _pixels(adapter.edit_images(other)) != alone[:1]
    assert _pixels(adapter.edit_images(requests[:1])) == alone[:1]


def test_second_scale_changes_the_output(tiny_dir, adapter):
    # Eight requests: on this tiny model a change of s2 moves about one image in two (either sampler),
    # so three requests could all stay the same by chance (they do with the engine's sampler).
    requests = _requests(list(range(41, 49)))
    default = _pixels(adapter.edit_images(requests))
    only_full = JanusAdapter(tiny_dir, batch_size=3, cfg_weight2=0.0)
    assert only_full.protocol_for("edit")["cfg_weight2"] == 0.0
    assert _pixels(only_full.edit_images(requests)) != default
    with pytest.raises(ValueError, match="cfg_weight2"):
        JanusAdapter(tiny_dir, cfg_weight2=-1)


def test_greedy_loop_matches_a_plain_reference_loop(tiny_dir):
    """The batched, left-padded, KV-cached loop gives the tokens of the reference's plain loop: one
    request at a time, no padding, no mask, every step recomputed from the whole sequence."""
    greedy = JanusAdapter(tiny_dir, temperature=0, batch_size=3)
    sources = [_source(i) for i in range(3)]
    s1, s2 = greedy.cfg_weight, greedy.cfg_weight2
    with torch.inference_mode():
        ours = greedy.edit_image_tokens(INSTRUCTIONS, sources, seeds=[0, 0, 0])
        janus = greedy.model.model
        for i, (instruction, source) in enumerate(zip(INSTRUCTIONS, sources)):
            _, sequence, _ = greedy.build_edit_inputs([instruction], [source])  # (3, L): no padding
            tokens = []
            for _ in range(N):
                hidden = janus.language_model(inputs_embeds=sequence).last_hidden_state[:, -1]
                full, part, uncond = janus.generation_head(hidden)
                cond = (full + s2 * part) / (1 + s2)
                token = int((uncond + s1 * (cond - uncond)).argmax())
                tokens.append(token)
                fed = janus.generation_aligner(janus.generation_embeddings(torch.tensor([token])))
                sequence = torch.cat([sequence, fed.expand(3, 1, -1)], dim=1)
            assert ours[i].tolist() == tokens


def test_requests_need_exactly_one_source_image(adapter):
    bad = Request("two-sources", "red", 1, (InputImage("a", _source), InputImage("b", _source)))
    with pytest.raises(HarnessError, match="two-sources"):
        adapter.edit_images([bad])
    with pytest.raises(HarnessError, match="image placeholders"):  # a special string in the instruction
        adapter.edit_images([Request("sneaky", f"red {EOI}", 1, (InputImage("a", lambda: _source(0)),))])
