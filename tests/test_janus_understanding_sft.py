"""Understanding SFT for Janus on LLaVA-layout data: the rendered sequence and its answer-only labels,
agreement with the adapter's inference prompt, the loss, and a short run that learns shapes captions."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from harness.dataset_formats import Conversation, read_llava
from harness.errors import HarnessError
from harness.models.tiny_janus import ASSISTANT, BOI, BOS, EOI, EOS, IMAGE, USER
from trainers.janus4o.understanding import (IGNORE, UnderstandingConfig, build_understanding_example,
                                            collate_understanding, train_understanding, understanding_loss)

N = 16  # image tokens of the tiny Janus (64 px, patch 16)
QUESTION = "Describe this image in detail."
# (colour, shape, colour, shape) per image; every caption differs, so a right answer needs the image
SCENES = [("red", "circle", "blue", "square"), ("green", "triangle", "yellow", "star"),
          ("purple", "diamond", "orange", "cross"), ("blue", "star", "red", "triangle"),
          ("yellow", "square", "green", "circle"), ("orange", "circle", "purple", "star")]


@pytest.fixture(scope="module")
def llava_json(tmp_path_factory, one_torch_thread):
    from shapes.world import Scene, ShapeObject, render

    folder = tmp_path_factory.mktemp("captions")
    records = []
    for index, (colour1, shape1, colour2, shape2) in enumerate(SCENES):
        scene = Scene((ShapeObject(shape1, colour1, 0.3, 0.5, 0.3), ShapeObject(shape2, colour2, 0.72, 0.5, 0.3)))
        render(scene).save(folder / f"scene{index}.png")
        records.append({"id": f"scene{index}", "image": f"scene{index}.png", "conversations": [
            {"from": "human", "value": f"<image>\n{QUESTION}"},
            {"from": "gpt", "value": f"a {colour1} {shape1} and a {colour2} {shape2}"}]})
    path = folder / "llava.json"
    path.write_text(json.dumps(records))
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, one_torch_thread):
    from harness.models.tiny_janus import build_tiny_janus

    return build_tiny_janus(tmp_path_factory.mktemp("tiny"), words=["describe", "detail"])


@pytest.fixture(scope="module")
def processor(tiny):
    from transformers import JanusProcessor

    return JanusProcessor.from_pretrained(tiny)


def _ids(processor, *tokens: str) -> list[int]:
    return [processor.tokenizer.convert_tokens_to_ids(t) for t in tokens]


def _system_ids(processor) -> list[int]:
    from transformers.models.janus.processing_janus import DEFAULT_SYSTEM_PROMPT

    return processor.tokenizer(DEFAULT_SYSTEM_PROMPT, add_special_tokens=False)["input_ids"]


def test_labels_cover_only_answers_and_eos(processor, llava_json):
    image = read_llava(llava_json)[0].image
    conversation = Conversation("two-turns", image, (
        ("human", "<image>\nwhat is this?"), ("gpt", "a red circle"),
        ("human", "how many?"), ("gpt", "two")))
    example = build_understanding_example(conversation, processor)

    first_question = (_ids(processor, BOS) + _system_ids(processor) + _ids(processor, USER, ":", BOI)
                      + _ids(processor, IMAGE) * N + _ids(processor, EOI, "what", "is", "this", "?", ASSISTANT, ":"))
    first_answer = _ids(processor, "a", "red", "circle", EOS)
    second_question = _ids(processor, USER, ":", "how", "many", "?", ASSISTANT, ":")
    second_answer = _ids(processor, "two", EOS)
    assert example.input_ids.tolist() == first_question + first_answer + second_question + second_answer
    hidden = [IGNORE]
    assert example.labels.tolist() == (hidden * len(first_question) + first_answer
                                       + hidden * len(second_question) + second_answer)
    assert int((example.input_ids == processor.tokenizer.convert_tokens_to_ids(IMAGE)).sum()) == N


def test_prompt_matches_the_adapter_inference_prompt(tiny, processor, llava_json):
    from PIL import Image

    from harness.models.janus import JanusAdapter

    conversation = read_llava(llava_json)[1]
    example = build_understanding_example(conversation, processor)
    adapter = JanusAdapter(tiny, device="cpu", dtype="float32")
    with Image.open(conversation.image) as image:
        inputs = adapter.build_question_inputs([QUESTION], [image.copy()])
    answer_length = len("a green triangle and a yellow star".split()) + 1  # words + EOS
    assert example.input_ids[:-answer_length].tolist() == inputs["input_ids"][0].tolist()
    assert (example.labels[:-answer_length] == IGNORE).all()
    assert torch.equal(example.pixel_values, inputs["pixel_values"])
    assert example.pixel_values.shape == (1, 3, 64, 64)


def test_unmarked_image_goes_first_and_bad_layouts_are_refused(processor, llava_json):
    image = read_llava(llava_json)[0].image
    marked = build_understanding_example(Conversation("a", image, (("human", "<image>\nwhat?"), ("gpt", "two"))),
                                         processor)
    unmarked = build_understanding_example(Conversation("b", image, (("human", "what?"), ("gpt", "two"))),
                                           processor)
    assert torch.equal(marked.input_ids, unmarked.input_ids)
    text_only = build_understanding_example(Conversation("c", None, (("human", "what?"), ("gpt", "two"))), processor)
    assert text_only.pixel_values.shape[0] == 0 and BOI not in processor.tokenizer.decode(text_only.input_ids)
    with pytest.raises(HarnessError, match="alternate"):
        build_understanding_example(Conversation("d", image, (("gpt", "two"), ("human", "what?"))), processor)
    with pytest.raises(HarnessError, match="no image"):
        build_understanding_example(Conversation("e", None, (("human", "<image>\nwhat?"), ("gpt", "two"))), processor)


def test_loss_is_cross_entropy_on_answer_tokens_with_image_features(tiny, processor, llava_json):
    from transformers import JanusForConditionalGeneration

    model = JanusForConditionalGeneration.from_pretrained(tiny, dtype=torch.float32).eval()
    examples = [build_understanding_example(c, processor) for c in read_llava(llava_json)[:2]]
    examples.append(build_understanding_example(Conversation("t", None, (("human", "what?"), ("gpt", "two"))),
                                                processor))
    pad = processor.tokenizer.convert_tokens_to_ids(processor.tokenizer.pad_token)
    batch = collate_understanding(examples, pad)
    assert batch.pixel_values.shape[0] == 2 and (batch.labels[batch.attention_mask == 0] == IGNORE).all()
    with torch.no_grad():
        loss = understanding_loss(model, batch)
        # by hand: SigLIP + aligner features over each image row's 16 placeholders, then next-token CE
        janus = model.model
        embeds = model.get_input_embeddings()(batch.input_ids)
        features = janus.aligner(janus.vision_model(batch.pixel_values).last_hidden_state)
        for row in range(2):
            positions = (batch.input_ids[row] == processor.tokenizer.convert_tokens_to_ids(IMAGE)).nonzero().flatten()
            embeds[row, positions] = features[row]
        hidden = janus.language_model(inputs_embeds=embeds, attention_mask=batch.attention_mask,
                                      position_ids=batch.position_ids).last_hidden_state
        logits = model.lm_head(hidden)[:, :-1]
        targets = batch.labels[:, 1:]
        scored = targets != IGNORE
        expected = F.cross_entropy(logits[scored], targets[scored])
    assert scored.sum() == 2 * (7 + 1) + 2  # two 7-word captions + EOS each, "two" + EOS
    assert torch.allclose(loss, expected, atol=1e-5)


def test_training_learns_the_captions(tiny, llava_json, tmp_path):
    from PIL import Image

    from harness.models.janus import JanusAdapter

    conversations = read_llava(llava_json)
    captions = [c.turns[1][1] for c in conversations]
    images = [Image.open(c.image).convert("RGB") for c in conversations]

    def exact_answers(path) -> int:
        adapter = JanusAdapter(path, device="cpu", dtype="float32", max_new_tokens=12, batch_size=6)
        return sum(a.strip() == c for a, c in zip(adapter.answer_batch([QUESTION] * 6, images), captions))

    before = exact_answers(tiny)
    config = UnderstandingConfig(epochs=40, global_batch=6, micro_batch=3, learning_rate=3e-3, warmup_ratio=0.1)
    final = train_understanding(tiny, llava_json, tmp_path, config)
    losses = json.loads((tmp_path / "loss.json").read_text())["loss"]
    assert len(losses) == 40  # 6 conversations x 40 epochs / 6 per step
    assert losses[-1] < 0.1 * losses[0]
    assert before == 0
    assert exact_answers(final) >= 4  # measured 5 of 6
