"""The ``mplug`` judge against the official modelscope mPLUG pipeline, without downloading weights.

``tests/fixtures/mplug_official/mplug_tiny.json`` holds what the OFFICIAL pipeline (modelscope 1.40.2,
transformers 4.57, run by ``make_fixtures.py`` beside it) answered on a random tiny mPLUG. Here the
same random weights are written again (every tensor from a numpy generator seeded by its name) and
our judge must give: the same pre-processing bit for bit (pixel tensor and token ids), the same
answer token ids, beam scores within 1e-4, the same decoded answers. ``tox -e dpg-official``
rebuilds the official side and runs these tests again at the full mPLUG-large shapes
(``MPLUG_OFFICIAL_FIXTURE`` names its fixture).
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest
import torch

from benchmarks.dpg.judges import mplug_random
from benchmarks.dpg.judges.mplug_model import MPlugAnswerer, MPlugFormatError, QuestionTokenizer
from harness import registry
from harness.errors import HarnessError

FIXTURES = Path(__file__).parent / "fixtures" / "mplug_official"
SCORE_TOLERANCE = 1e-4


def _load_maker():
    spec = importlib.util.spec_from_file_location("mplug_make_fixtures", FIXTURES / "make_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


maker = _load_maker()
FIXTURE_FILES = [FIXTURES / "mplug_tiny.json"]
if os.environ.get("MPLUG_OFFICIAL_FIXTURE"):  # tox -e dpg-official: the large shapes, made just now
    FIXTURE_FILES.append(Path(os.environ["MPLUG_OFFICIAL_FIXTURE"]))


@pytest.fixture(scope="module", params=FIXTURE_FILES, ids=lambda p: p.stem)
def official(request, tmp_path_factory, one_torch_thread):
    """(fixture, answerer over the regenerated random folder, folder)."""
    fixture = json.loads(request.param.read_text(encoding="utf-8"))
    generator = fixture["generator"]
    assert generator["version"] == mplug_random.GENERATOR_VERSION, "regenerate the fixture (make_fixtures.py)"
    folder = mplug_random.write_random_mplug(tmp_path_factory.mktemp("mplug") / "model", generator["shapes"],
                                             generator["seed"])
    return fixture, MPlugAnswerer(folder), folder


def _pairs(fixture):
    images = maker.fixture_images()
    return ([images[case["image"]] for case in fixture["cases"]],
            [fixture["questions"][case["question"]] for case in fixture["cases"]])


def test_the_regenerated_weights_and_images_are_the_fixtures(official):
    fixture, _, _ = official
    shapes = mplug_random.SHAPES[fixture["generator"]["shapes"]]
    state = mplug_random.random_state_dict(shapes, fixture["generator"]["seed"])
    assert maker.state_digest(state) == fixture["weights_sha256"]
    assert [maker.image_digest(image) for image in maker.fixture_images()] == \
        [entry["sha256"] for entry in fixture["images"]]
    assert fixture["questions"] == maker.QUESTIONS


def test_preprocessing_is_bit_exact(official):
    fixture, answerer, _ = official
    images, questions = _pairs(fixture)
    for case, image, question in zip(fixture["cases"], images, questions):
        pixels = answerer.pixels(image)[None]
        assert list(pixels.shape) == case["pixel_shape"]
        assert maker.tensor_digest(pixels) == case["pixel_sha256"], (case["image"], question)
        ids, mask = answerer.tokenizer([question])
        assert ids[0].tolist() == case["input_ids"] and mask[0].tolist() == case["attention_mask"], question
    for check in fixture["tokenizer_checks"]:
        ids, mask = answerer.tokenizer([check["question"]])
        assert (ids[0].tolist(), mask[0].tolist()) == (check["input_ids"], check["attention_mask"]), check["question"]


def test_decoding_matches_the_official_tokenizer(official):
    fixture, answerer, _ = official
    for check in fixture["decode_checks"]:
        assert answerer.tokenizer.decode(check["ids"]) == check["text"], check["ids"]


def _compare(fixture, answers) -> float:
    worst = 0.0
    for case, answer in zip(fixture["cases"], answers, strict=True):
        assert answer.token_ids == case["token_ids"], (case["image"], case["question"])
        assert answer.text == case["answer"]
        worst = max(worst, abs(answer.score - case["beam_score"]))
    assert worst <= SCORE_TOLERANCE
    return worst


def test_answers_match_the_official_pipeline_batched_and_one_by_one(official):
    fixture, answerer, _ = official
    images, questions = _pairs(fixture)
    together = answerer.answer(images, questions)  # repeated images are encoded once
    worst = _compare(fixture, together)
    alone = [answerer.answer([image], [question])[0] for image, question in zip(images, questions)]
    worst = max(worst, _compare(fixture, alone))
    print(f"{fixture['generator']['shapes']}: {len(alone)} answers, token ids equal, "
          f"largest beam-score difference {worst:.2e}")


def test_the_plugin_answers_and_refuses_bad_folders(official, tmp_path):
    fixture, _, folder = official
    images, questions = _pairs(fixture)
    count = 2 if fixture["generator"]["shapes"] == "large" else len(questions)  # a ViT-L pass is ~20 s on a CPU
    registry.load_plugins()
    judge = registry.get("vqa", "mplug")(model=str(folder), batch_size=3, device="cpu")
    assert judge.answer(images[:count], questions[:count]) == [case["answer"] for case in fixture["cases"][:count]]
    assert judge.judge_id.startswith("mplug:model(image_res=")
    with pytest.raises(HarnessError, match="not a folder"):
        registry.get("vqa", "mplug")(model=str(tmp_path / "absent"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(HarnessError, match="no config.yaml"):
        registry.get("vqa", "mplug")(model=str(tmp_path / "empty"))


def test_a_checkpoint_missing_a_tensor_or_with_another_shape_is_refused(tmp_path, one_torch_thread):
    folder = mplug_random.write_random_mplug(tmp_path / "m", "tiny", 1)
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    # the official loader's conventions: a "model" entry, "model." in names
    torch.save({"model": {f"model.{name}": value for name, value in state.items()}}, folder / "pytorch_model.bin")
    MPlugAnswerer(folder)
    del state["text_encoder.embeddings.LayerNorm.bias"]
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(MPlugFormatError, match="text_encoder.embeddings.LayerNorm.bias"):
        MPlugAnswerer(folder)
    state["text_encoder.embeddings.LayerNorm.bias"] = torch.zeros(3)
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(MPlugFormatError, match="shapes differ"):
        MPlugAnswerer(folder)
    data = (folder / "pytorch_model.bin").read_bytes()
    (folder / "pytorch_model.bin").write_bytes(data[:len(data) // 2])  # a download cut short
    registry.load_plugins()
    with pytest.raises(HarnessError, match=r"pytorch_model.bin: cannot be read as a checkpoint"):
        registry.get("vqa", "mplug")(model=str(folder), device="cpu")
    torch.save({"weights": Path("not a tensor")}, folder / "pytorch_model.bin")  # unpickling would run code
    with pytest.raises(HarnessError, match=r"pytorch_model.bin: cannot be read as a checkpoint \(UnpicklingError"):
        registry.get("vqa", "mplug")(model=str(folder), device="cpu")


def test_decode_drops_special_tokens_and_joins_word_pieces(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "yes", "tri", "##angle", "?"]) + "\n",
                     encoding="utf-8")
    tokenizer = QuestionTokenizer(vocab)
    assert tokenizer.decode([2, 5, 3]) == "yes"
    assert tokenizer.decode([2, 6, 7, 8, 3, 0, 99]) == "triangle?"  # 99: past the vocabulary -> [UNK]


# ------------------------------------------------------------------------------ DPG with mplug

def test_dpg_runs_judged_by_mplug_are_comparable_and_others_are_not():
    registry.load_plugins()
    dpg = registry.get("benchmark", "dpg")
    official = {"prompt_set": "official", "tiles_per_prompt": 4, "mode": "official",
                "judges": {"vqa": {"name": "mplug", "params": {"model": "/models/mplug"}}}}
    assert dpg.departures_from_official(official) == []
    for other in ("hf-vqa", "openai-vqa", "shapes-vqa"):
        reasons = dpg.departures_from_official({**official, "judges": {"vqa": {"name": other}}})
        assert len(reasons) == 1 and "mPLUG-large" in reasons[0] and other in reasons[0]


def test_an_mplug_judge_counts_as_official_only_with_the_mplug_large_configuration():
    from benchmarks.dpg.judges.mplug_config import MPLUG_LARGE, MPlugConfig

    registry.load_plugins()
    dpg = registry.get("benchmark", "dpg")
    official = {"prompt_set": "official", "tiles_per_prompt": 4, "mode": "official",
                "judges": {"vqa": {"name": "mplug", "params": {"model": "/models/mplug"}}}}
    # the facts the judge records of a folder with mPLUG-large's config.yaml and config_bert.json
    large = mplug_random.LARGE
    config = MPlugConfig(image_res=large.image_res, vision_width=large.vision_width, vision_layers=large.vision_layers,
                         patch_size=large.patch_size, hidden=large.hidden, heads=large.heads,
                         intermediate=large.intermediate, vocab_size=large.vocab_size,
                         text_layers=large.text_layers, fusion_total=large.fusion_total,
                         fusion_layers=large.fusion_layers, stride_layer=large.stride_layer,
                         decoder_layers=large.decoder_layers)
    assert config.identifying_facts() == MPLUG_LARGE
    assert dpg.departures_from_official({**official, "vqa_model": config.identifying_facts()}) == []
    for key, value in (("vision_layers", 2), ("image_res", 384), ("fusion_layers", 4), ("vocab_size", 169),
                       ("decoder_layers", 2), ("max_length", 20)):
        reasons = dpg.departures_from_official({**official, "vqa_model": {**MPLUG_LARGE, key: value}})
        assert len(reasons) == 1 and f"{key} {value}" in reasons[0] and "not mPLUG-large" in reasons[0]
    reasons = dpg.departures_from_official({**official, "vqa_model": "the tiles' verdicts describe 2 models"})
    assert len(reasons) == 1 and "2 models" in reasons[0]


def test_a_shapes_dpg_run_through_mplug_end_to_end(tmp_path, one_torch_thread):
    from reports.protocols import official_departures
    from harness.runner import evaluate
    from harness.spec import ComponentSpec, RunSpec
    from shapes.dense import write_dpg_shapes

    data = write_dpg_shapes(tmp_path / "dpg", items=3, seed=4)
    folder = mplug_random.write_random_mplug(tmp_path / "mplug", "tiny", 0)
    spec = RunSpec(benchmark=ComponentSpec("dpg", {"csv": str(data / "dpg_bench.csv"),
                                                   "prompts": str(data / "prompts"), "tiles_per_prompt": 2}),
                   model=ComponentSpec("shapes-renderer", {"size": 64}),
                   judges={"vqa": ComponentSpec("mplug", {"model": str(folder), "device": "cpu"})})
    outcome = evaluate(spec, tmp_path / "run", cache_dir=tmp_path / "cache", show_progress=False)
    summary = outcome.summary
    assert summary.counts["samples"] == 6 and summary.counts["judge_failed"] == 0
    assert 0.0 <= summary.scores["overall"] <= 100.0
    records = [json.loads(line) for line in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    # every tile's answers are the judge's own answers to that tile
    registry.load_plugins()
    judge = registry.get("vqa", "mplug")(model=str(folder), device="cpu")
    from PIL import Image
    for record in records[:2]:
        tile = Image.open(tmp_path / "run" / record["output_path"]).convert("RGB")
        questions = record["verdict"]["questions"]
        assert record["verdict"]["answers"] == judge.answer([tile] * len(questions), questions)
    assert (tmp_path / "run" / "dpg_detail.txt").is_file()
    # the judge's code is the official one, its tiny random model is not (nor the shapes data)
    assert summary.protocol["vqa_model"] == judge.model_facts and judge.model_facts["vision_layers"] == 2
    assert all(record["verdict"]["vqa_model"] == judge.model_facts for record in records)
    reasons = official_departures(summary.protocol)
    vqa = [reason for reason in reasons if "VQA judge" in reason]
    assert len(vqa) == 1 and "not mPLUG-large" in vqa[0] and "vision_layers 2 (mPLUG-large: 24)" in vqa[0]
    again = evaluate(spec, tmp_path / "run", cache_dir=tmp_path / "cache", show_progress=False)
    assert (again.generated, again.judged) == (0, 0)
    assert again.summary.protocol == summary.protocol  # the facts come back from the cached verdicts


# ------------------------------------------------------------------------------ beam settings

def _config_folder(folder: Path, **changes) -> Path:
    """config.yaml and config_bert.json of the tiny shapes (``changes`` in config.yaml); the other
    files empty: the configuration is read, and refused, before them."""
    folder.mkdir()
    lines = mplug_random.config_yaml(mplug_random.TINY).splitlines()
    lines = [f"{line.split(':')[0]}: {json.dumps(changes[line.split(':')[0]])}" if line.split(":")[0] in changes
             else line for line in lines]
    (folder / "config.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "config_bert.json").write_text(json.dumps(mplug_random.config_bert(mplug_random.TINY)), encoding="utf-8")
    (folder / "vocab.txt").write_text("", encoding="utf-8")
    (folder / "pytorch_model.bin").write_bytes(b"")
    return folder


@pytest.mark.parametrize("changes, message", [
    ({"max_length": 0}, "max_length 0 is less than min_length 1"),
    ({"min_length": 0}, "min_length 0: an answer has at least 1 token"),
    ({"min_length": 11}, "max_length 10 is less than min_length 11"),
    ({"beam_size": 0}, "beam_size 0: the beam search needs at least 1 beam"),
    ({"beam_size": 500}, "beam_size 500 is more than the 169 words"),
    ({"max_length": 40}, "max_length 40 needs 41 decoder positions"),  # tiny: 40 positions
    ({"max_length": "ten"}, "is not a number"),
])
def test_config_yaml_beam_settings_the_search_cannot_use_are_refused(tmp_path, changes, message):
    from benchmarks.dpg.judges.mplug_config import read_config

    folder = _config_folder(tmp_path / "m", **changes)
    with pytest.raises(MPlugFormatError, match="config.yaml") as caught:
        read_config(folder)
    assert message in str(caught.value)
    registry.load_plugins()
    with pytest.raises(HarnessError, match=f"cannot load .*{message}"):
        registry.get("vqa", "mplug")(model=str(folder), device="cpu")


def test_a_beam_search_that_finishes_no_beam_raises_instead_of_dropping_answers(tmp_path, one_torch_thread):
    import dataclasses

    answerer = MPlugAnswerer(mplug_random.write_random_mplug(tmp_path / "m", "tiny", 1))
    images = maker.fixture_images()[:2]
    answerer.model.config = dataclasses.replace(answerer.model.config, max_length=0)  # what read_config refuses
    with pytest.raises(RuntimeError, match="finished no beam for 2 of 2 question"):
        answerer.answer(images, ["what colour is it?", "how many shapes?"])
