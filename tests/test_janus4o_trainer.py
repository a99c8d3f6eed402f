"""Janus-4o trainer core: sequence layout, guidance dropout, the loss, the optimiser and schedule, the
loop (loss falls, checkpoints load in the ``janus`` adapter, an interrupted run resumes exactly)."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from harness.dataset_formats import ImageSample, read_sharegpt4o
from harness.errors import HarnessError
from trainers.janus4o.objective import (Dropout, apply_text_drop, encode_codes, image_token_loss, sample_dropout,
                                        scored_predictions)
from trainers.janus4o.optim import build_optimizer, build_scheduler, is_decayed, parameter_groups
from trainers.janus4o.sequences import build_example, collate, token_ids

N = 16  # image tokens of the tiny Janus (64 px, patch 16)
CONFIG_FOR_LOOP = dict(epochs=10, global_batch=4, micro_batch=2, learning_rate=1e-3, warmup_ratio=0.1)


@pytest.fixture(scope="module")
def loaded(tiny):
    from transformers import JanusForConditionalGeneration, JanusProcessor

    model = JanusForConditionalGeneration.from_pretrained(tiny, dtype=torch.float32)
    return model, JanusProcessor.from_pretrained(tiny)


@pytest.fixture(scope="module")
def trained(tiny, dataset, tmp_path_factory):
    from trainers.janus4o.loop import TrainConfig, train

    out = tmp_path_factory.mktemp("run")
    return train(tiny, dataset, out, TrainConfig(**CONFIG_FOR_LOOP)), out


def _sample(dataset, kind: str) -> ImageSample:
    return next(s for s in read_sharegpt4o(dataset) if s.is_edit == (kind == "edit"))


# -- sequences -----------------------------------------------------------------------------------


def test_text_to_image_layout_by_hand(loaded, dataset):
    _, processor = loaded
    tokenizer = processor.tokenizer
    sample = ImageSample("a photo of a green circle", _sample(dataset, "t2i").output_image, (), "s")
    example = build_example(sample, processor, N, 64)
    # BOS <|User|> : a photo of a green circle <|Assistant|> : BOI + 16 pads
    words = ["<|User|>", ":", "a", "photo", "of", "a", "green", "circle", "<|Assistant|>", ":"]
    expected = ([tokenizer.bos_token_id] + tokenizer.convert_tokens_to_ids(words)
                + [tokenizer.convert_tokens_to_ids(tokenizer.boi_token)] + [tokenizer.pad_token_id] * N)
    assert example.input_ids.tolist() == expected
    assert example.prompt_length == 11 and example.output_start == 12
    assert example.siglip_starts == () and example.input_pixels.shape == (0, 3, 64, 64)
    assert example.target_pixels.shape == (3, 64, 64)
    assert -1.0 <= float(example.target_pixels.min()) and float(example.target_pixels.max()) <= 1.0


def test_edit_layout_by_hand_and_left_padding(loaded, dataset):
    _, processor = loaded
    ids = token_ids(processor.tokenizer)
    edit = _sample(dataset, "edit")
    edit = ImageSample("remove the red circle", edit.output_image, edit.input_images, "e")
    example = build_example(edit, processor, N, 64, ids)
    row = example.input_ids
    # BOS <|User|> : | BOI(3) IMG x16 (4..19) EOI(20) | BOI(21) PAD x16 (22..37) EOI(38) | remove the red circle
    # <|Assistant|> : | BOI(45) PAD x16 (46..61)
    assert int(row[0]) == ids.bos and int(row[3]) == ids.boi
    assert row[4:20].tolist() == [ids.image] * N and int(row[20]) == ids.eoi
    assert int(row[21]) == ids.boi and row[22:38].tolist() == [ids.pad] * N and int(row[38]) == ids.eoi
    assert int(row[45]) == ids.boi and row[46:].tolist() == [ids.pad] * N and len(row) == 62
    assert example.siglip_starts == (4,) and example.vq_slot_starts == (22,)
    assert example.prompt_length == 45 and example.input_pixels.shape == (1, 3, 64, 64)

    t2i = build_example(ImageSample("a photo of a green circle", edit.output_image, (), "t"), processor, N, 64, ids)
    batch = collate([t2i, example], ids.pad, N)
    assert batch.input_ids.shape == (2, 62) and batch.first_columns == [62 - 28, 0]
    assert batch.attention_mask[0].tolist() == [0] * 34 + [1] * 28
    assert batch.position_ids[0, 34] == 0 and batch.position_ids[0, -1] == 27
    assert batch.siglip_starts == [(), (4,)] and batch.vq_slot_starts == [(), (22,)]
    # the output slots end at the last column in both rows
    assert bool((batch.input_ids[:, -N:] == ids.pad).all()) and bool((batch.input_ids[:, -N - 1] == ids.boi).all())


# -- dropout -----------------------------------------------------------------------------------------


def test_text_drop_rate_and_never_for_edits():
    draws = 4000
    dropped = sum(sample_dropout(42, f"s{i}", 0, False, 0).text_drop for i in range(draws))
    sd = math.sqrt(draws * 0.1 * 0.9)  # 19
    assert abs(dropped - 0.1 * draws) < 4 * sd
    assert not any(sample_dropout(42, f"s{i}", 0, True, 1).text_drop for i in range(1000))
    # a pure function of (seed, sample id, epoch): the same draw again, another epoch differs somewhere
    first = [sample_dropout(42, f"s{i}", 0, False, 0) for i in range(200)]
    assert first == [sample_dropout(42, f"s{i}", 0, False, 0) for i in range(200)]
    assert first != [sample_dropout(42, f"s{i}", 1, False, 0) for i in range(200)]


def test_vq_copy_rate_per_input_image():
    draws = [sample_dropout(7, f"e{i}", 2, True, 2).vq_copy for i in range(2000)]
    copies = sum(sum(d) for d in draws)
    sd = math.sqrt(4000 * 0.25)  # 31.6
    assert all(len(d) == 2 for d in draws) and abs(copies - 2000) < 4 * sd
    assert sample_dropout(7, "t", 0, False, 0).vq_copy == ()


def test_text_drop_keeps_only_bos_and_output_block(loaded, dataset):
    _, processor = loaded
    ids = token_ids(processor.tokenizer)
    short = build_example(ImageSample("a photo of a star", _sample(dataset, "t2i").output_image, (), "a"),
                          processor, N, 64, ids)
    long = build_example(ImageSample("a photo of a red star and a blue circle", _sample(dataset, "t2i").output_image,
                                     (), "b"), processor, N, 64, ids)
    batch = collate([short, long], ids.pad, N)
    dropped = apply_text_drop(batch.input_ids, batch, [Dropout(True, ()), Dropout(False, ())], ids.pad)
    assert batch.first_columns[0] == 5  # 5 left pads: the long prompt has 5 more words
    expected = [ids.pad] * 5 + [ids.bos] + [ids.pad] * 9 + [ids.boi] + [ids.pad] * N
    # BOS <|User|> : a photo of a star <|Assistant|> : -> n = 10; ids[1:10] = pad
    assert dropped[0].tolist() == expected
    assert short.prompt_length == 10 and torch.equal(dropped[1], batch.input_ids[1])


# -- objective --------------------------------------------------------------------------------------


def test_first_token_quirk_switch_by_hand():
    hidden = torch.arange(6, dtype=torch.float32).reshape(1, 6, 1)  # value = position
    codes = torch.tensor([[10, 11, 12]])  # N = 3: positions 3, 4, 5 hold codes 10, 11, 12; position 2 = BOI
    quirk_hidden, quirk_targets = scored_predictions(hidden, codes, first_token_quirk=True)
    assert quirk_hidden.flatten().tolist() == [3.0, 4.0] and quirk_targets.tolist() == [[11, 12]]
    full_hidden, full_targets = scored_predictions(hidden, codes, first_token_quirk=False)
    assert full_hidden.flatten().tolist() == [2.0, 3.0, 4.0] and full_targets.tolist() == [[10, 11, 12]]


def test_encode_codes_normalises_z_and_codebook(loaded):
    model, _ = loaded
    vq = model.model.vqmodel
    pixels = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        z = vq.quant_conv(vq.encoder(pixels)).permute(0, 2, 3, 1).reshape(-1, 8)
        book = vq.quantize.embedding.weight
        cosine = (z / z.norm(dim=1, keepdim=True)) @ (book / book.norm(dim=1, keepdim=True)).T
        by_hand = cosine.argmax(dim=1).reshape(2, N)
        unnormalised = vq.encode(pixels).image_tokens.reshape(2, N)
    codes = encode_codes(vq, pixels)
    assert codes.shape == (2, N) and codes.dtype == torch.long and not codes.requires_grad
    assert torch.equal(codes, by_hand)
    assert not torch.equal(codes, unnormalised)  # the random codebook rows are not unit vectors (pitfall 12)


@pytest.mark.parametrize("quirk", [True, False])
def test_initial_text_to_image_loss_is_near_ln_codebook(loaded, dataset, quirk):
    model, processor = loaded
    ids = token_ids(processor.tokenizer)
    samples = [s for s in read_sharegpt4o(dataset) if not s.is_edit][:4]
    batch = collate([build_example(s, processor, N, 64, ids) for s in samples], ids.pad, N)
    with torch.no_grad():
        out = image_token_loss(model, batch, [Dropout(False, ())] * 4, ids.pad, first_token_quirk=quirk)
    assert out.scored_tokens == 4 * (N - 1 if quirk else N)
    assert abs(float(out.loss) - math.log(512)) < 0.5  # 6.24; the tiny head's logits have std ~0.7


def test_edit_loss_uses_siglip_features_and_vq_copy(loaded, dataset):
    model, processor = loaded
    ids = token_ids(processor.tokenizer)
    batch = collate([build_example(_sample(dataset, "edit"), processor, N, 64, ids)], ids.pad, N)
    with torch.no_grad():
        copy = float(image_token_loss(model, batch, [Dropout(False, (True,))], ids.pad).loss)
        keep_pads = float(image_token_loss(model, batch, [Dropout(False, (False,))], ids.pad).loss)
        blank = dataclasses.replace(batch, input_pixels=torch.zeros_like(batch.input_pixels))
        other_source = float(image_token_loss(model, blank, [Dropout(False, (False,))], ids.pad).loss)
    assert copy != keep_pads and keep_pads != other_source


# -- optimiser and schedule ---------------------------------------------------------------------------


def test_schedule_by_hand():
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([parameter], lr=2.0)
    scheduler = build_scheduler(optimizer, total_steps=105)  # warm-up int(0.05 * 105) = 5 steps
    lrs = []
    for _ in range(106):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == 0.0  # the first optimiser step runs at lr 0, as upstream
    assert lrs[2] == pytest.approx(2.0 * 2 / 5)
    assert lrs[5] == pytest.approx(2.0)  # warm-up end: cosine at progress 0
    assert lrs[55] == pytest.approx(2.0 * (0.85 * 0.5 + 0.15))  # progress 0.5: cos = 0
    assert lrs[104] == pytest.approx(2.0 * (0.85 * 0.5 * (1 + math.cos(math.pi * 0.99)) + 0.15))
    assert lrs[105] == pytest.approx(2.0 * 0.15)  # the floor


def test_no_decay_groups_by_name(loaded):
    assert is_decayed("model.language_model.layers.0.input_layernorm.weight")  # RMSNorm: decayed, as upstream
    assert is_decayed("model.language_model.norm.weight") and is_decayed("model.aligner.fc1.weight")
    assert not is_decayed("model.aligner.fc1.bias") and not is_decayed("encoder.LayerNorm.weight")
    model, _ = loaded
    model.model.vqmodel.requires_grad_(False)
    try:
        decayed, plain = parameter_groups(model, 0.1)
    finally:
        model.model.vqmodel.requires_grad_(True)
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert "model.language_model.layers.0.post_attention_layernorm.weight" in decayed["param_names"]
    assert "model.generation_head.proj_out.bias" in plain["param_names"]
    assert all("bias" in n for n in plain["param_names"])  # the port names no parameter LayerNorm.weight
    assert not any(n.startswith("model.vqmodel.") for n in decayed["param_names"] + plain["param_names"])
    optimizer = build_optimizer(model)
    assert optimizer.param_groups[0]["lr"] == 5e-6 and optimizer.param_groups[0]["weight_decay"] == 0.1


# -- the loop ----------------------------------------------------------------------------------------


def test_loss_falls_and_outputs_are_written(trained):
    final, out = trained
    series = json.loads((out / "loss.json").read_text())
    losses = series["loss"]
    assert len(losses) == 30  # 12 samples / micro 2 = 6 micro-batches x 10 epochs / 2 per step
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.3
    assert series["lr"][0] == 0.0 and series["lr"][3] == pytest.approx(1e-3)
    assert (out / "loss.png").stat().st_size > 1000 and final == out / "model"
    budget = json.loads((out / "budget.json").read_text())
    assert budget["samples"] == 120 and budget["image_tokens_scored"] == 120 * (N - 1)
    assert json.loads((out / "train_config.json").read_text())["plan"]["total_steps"] == 30


def test_budget_counts_image_and_text_tokens_by_hand(trained, loaded, dataset):
    _, out = trained
    budget = json.loads((out / "budget.json").read_text())
    # every sample once per epoch, 10 epochs: 8 text-to-image samples hold the N output slots; 4 edits
    # with one input image hold N SigLIP placeholders + N VQ slots + N output slots
    assert budget["image_tokens"] == 10 * (8 * N + 4 * 3 * N)
    _, processor = loaded
    lengths = [len(build_example(s, processor, N, 64).input_ids) for s in read_sharegpt4o(dataset)]
    assert budget["tokens"] == 10 * sum(lengths)  # no padding is counted
    assert budget["text_tokens"] == budget["tokens"] - budget["image_tokens"] > 0
    assert budget["gpu_hours"] == 0.0 and budget["device"] == "cpu"  # no GPU was used: zero, not unknown
    assert budget["wall_seconds"] > 0 and budget["optimizer_steps"] == 30
    assert [(s["start_step"], s["steps"]) for s in budget["sessions"]] == [(0, 30)]


def test_finished_run_is_a_checkpoint_artifact_with_lineage(trained, tiny, dataset):
    from harness.artifacts import read_manifest, verify
    from harness.hashing import hash_file, hash_value
    from trainers.janus4o.loop import TrainConfig

    final, out = trained
    artifact = read_manifest(out)
    assert artifact is not None and artifact.kind == "checkpoint" and verify(out) == []
    assert {"model/model.safetensors", "model/config.json", "loss.json", "loss.png",
            "train_config.json"} <= set(artifact.files)
    assert "budget.json" not in artifact.files  # run time is not content; it is in info
    assert artifact.info["budget"] == json.loads((out / "budget.json").read_text())
    # lineage: the synth dataset's own hash, the base folder's files, the settings that decide the result
    dataset_hash = json.loads((dataset.parent / "artifact.json").read_text())["hash"]
    base_files = sorted(p.relative_to(tiny).as_posix() for p in tiny.rglob("*") if p.is_file())
    base_hash = hash_value({"files": {rel: hash_file(tiny / rel) for rel in base_files}})
    assert artifact.inputs == {"base_model": base_hash, "data": dataset_hash,
                               "config": hash_value(TrainConfig(**CONFIG_FOR_LOOP).identity())}
    assert artifact.spec["config"]["epochs"] == 10


def test_a_trained_model_names_its_checkpoint_as_base_and_copied_data_is_hashed(trained, dataset, tmp_path):
    from harness.artifacts import read_manifest
    from harness.hashing import hash_file, hash_value
    from trainers.janus4o.artifact import FileHasher, training_inputs

    final, out = trained
    copy = tmp_path / "copy.json"  # outside its dataset folder: hashed from the JSON and its images
    copy.write_text(json.dumps([{**r, "output_image": str(dataset.parent / r["output_image"]),
                                 "input_image": [str(dataset.parent / i) for i in r.get("input_image", [])]}
                                for r in json.loads(dataset.read_text())]))
    inputs = training_inputs(final, copy, {"seed": 1}, FileHasher())
    assert inputs["base_model"] == read_manifest(out).hash  # the lineage goes on through the trained model
    images = list(dict.fromkeys(p for s in read_sharegpt4o(copy) for p in (*s.input_images, s.output_image)))
    assert inputs["data"] == hash_value({"json": hash_file(copy), "images": [hash_file(p) for p in images]})


def test_trained_model_loads_in_the_janus_adapter_and_generates(trained):
    from harness.models.base import Request
    from harness.models.janus import JanusAdapter
    from harness.registry import build

    final, _ = trained
    adapter = build("model", "janus", path=str(final), device="cpu")  # registered by importing the module
    assert isinstance(adapter, JanusAdapter)
    images = adapter.generate_images([Request("r", "a photo of a red circle", 3)])
    assert images[0].size == (64, 64)


def test_interrupted_run_resumes_to_the_same_weights(tiny, dataset, tmp_path):
    from safetensors.torch import load_file

    from trainers.janus4o.loop import TrainConfig, checkpoints, train

    config = TrainConfig(**{**CONFIG_FOR_LOOP, "epochs": 3}, checkpoint_every=2)  # 9 steps
    whole = train(tiny, dataset, tmp_path / "whole", config)
    stopped = train(tiny, dataset, tmp_path / "resumed", dataclasses.replace(config, stop_after_steps=5))
    assert stopped == tmp_path / "resumed" and not (stopped / "model").exists()
    assert [p.name for p in checkpoints(stopped)] == ["step-000002", "step-000004"]  # step 5 is lost
    resumed = train(tiny, dataset, tmp_path / "resumed", config)
    a, b = load_file(str(whole / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    losses = [json.loads((p.parent / "loss.json").read_text())["loss"] for p in (whole, resumed)]
    assert losses[0] == losses[1] and len(losses[0]) == 9
    written = (resumed / "model.safetensors").stat().st_mtime_ns
    assert train(tiny, dataset, tmp_path / "resumed", config) == resumed  # finished: nothing is redone
    assert (resumed / "model.safetensors").stat().st_mtime_ns == written
    with pytest.raises(HarnessError, match="other settings"):
        train(tiny, dataset, tmp_path / "resumed", dataclasses.replace(config, seed=1))


def test_finished_artifact_returns_at_once_and_a_damaged_one_is_made_again(trained, tiny, dataset, monkeypatch):
    from transformers import JanusForConditionalGeneration

    from harness.artifacts import read_manifest, verify
    from trainers.janus4o.loop import TrainConfig, train

    final, out = trained
    before = read_manifest(out)

    def no_loading(*args, **kwargs):
        raise AssertionError("a finished run loaded the model again")

    with monkeypatch.context() as patch:
        patch.setattr(JanusForConditionalGeneration, "from_pretrained", no_loading)
        assert train(tiny, dataset, out, TrainConfig(**CONFIG_FOR_LOOP, checkpoint_every=7)) == final
    loss_file = out / "loss.json"
    loss_file.write_text(loss_file.read_text().replace("[", "[ ", 1))  # same numbers, other bytes
    assert verify(out) == ["loss.json"]
    assert train(tiny, dataset, out, TrainConfig(**CONFIG_FOR_LOOP)) == final  # trains again (no checkpoints)
    after = read_manifest(out)
    assert verify(out) == [] and after.hash == before.hash  # the same run gives the same artifact


def test_understanding_run_is_a_checkpoint_artifact_too(tiny, dataset, tmp_path, monkeypatch):
    from transformers import JanusForConditionalGeneration

    from harness.artifacts import read_manifest, verify
    from harness.hashing import hash_file, hash_value
    from trainers.janus4o.understanding import UnderstandingConfig, train_understanding

    samples = [s for s in read_sharegpt4o(dataset) if not s.is_edit][:4]
    llava = tmp_path / "llava.json"  # captions = the prompts (words the tiny tokenizer knows)
    llava.write_text(json.dumps([{"id": f"c{i}", "image": str(s.output_image), "conversations": [
        {"from": "human", "value": "<image>\ndescribe"}, {"from": "gpt", "value": s.prompt}]}
        for i, s in enumerate(samples)]))
    config = UnderstandingConfig(epochs=1, global_batch=2, micro_batch=2, learning_rate=1e-3)
    out = tmp_path / "sft"
    final = train_understanding(tiny, llava, out, config)
    artifact = read_manifest(out)
    assert artifact.kind == "checkpoint" and verify(out) == [] and "model/model.safetensors" in artifact.files
    images = hash_value({"json": hash_file(llava), "images": [hash_file(s.output_image) for s in samples]})
    assert artifact.inputs["data"] == images
    assert artifact.inputs["config"] == hash_value(dataclasses.asdict(config))
    budget = json.loads((out / "budget.json").read_text())
    assert budget["optimizer_steps"] == 2 and budget["samples"] == 4 and budget["image_tokens"] == 4 * N
    assert budget["text_tokens"] == budget["tokens"] - 4 * N and budget["gpu_hours"] == 0.0
    assert json.loads((out / "loss.json").read_text())["step"] == [1, 2] and (out / "loss.png").is_file()

    def no_loading(*args, **kwargs):
        raise AssertionError("a finished run loaded the model again")

    monkeypatch.setattr(JanusForConditionalGeneration, "from_pretrained", no_loading)
    assert train_understanding(tiny, llava, out, config) == final
