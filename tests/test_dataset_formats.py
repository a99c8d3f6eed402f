"""Dataset layouts: the parquet export loads in Hugging Face ``datasets``; the JSON readers check records."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

import generators.shapes  # noqa: F401 - registers shapes-world / shapes-render
from harness import dataset_parquet
from harness.dataset_formats import LLAVA_FILE, SHAREGPT4O_FILE, read_llava, read_sharegpt4o
from harness.dataset_parquet import PARQUET_FILE, write_parquet
from harness.errors import HarnessError, InputError
from harness.recipe import RecipeSpec
from harness.synth import synthesize

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def hf_datasets():
    import datasets  # slow-ish import: once per module

    datasets.disable_progress_bars()
    return datasets


@pytest.fixture(scope="module")
def shapes_dataset(tmp_path_factory) -> Path:
    """The shapes recipe, small: 6 text-to-image rows and 4 edit rows."""
    spec = RecipeSpec.load(ROOT / "examples/shapes-recipe.yaml").with_overrides(
        {"steps.0.params.t2i": 6, "steps.0.params.edits": 4})
    folder = tmp_path_factory.mktemp("shapes") / "ds"
    synthesize(spec, out=folder, show_progress=False)
    return folder


@pytest.fixture(scope="module")
def hf_cache(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("hf-cache"))


def _rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "rows.jsonl").read_text(encoding="utf-8").splitlines()]


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def _png(path: Path, color: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), color).save(path)


# ----------------------------------------------------------------------------------------------
# parquet export of a synthesized dataset


def test_parquet_schema_carries_the_features_datasets_reads(shapes_dataset):
    schema = pq.read_schema(shapes_dataset / PARQUET_FILE)
    assert schema.names == ["id", "input_prompt", "output_image", "input_image"]
    features = json.loads(schema.metadata[b"huggingface"])["info"]["features"]
    assert features == {"id": {"dtype": "string", "_type": "Value"},
                        "input_prompt": {"dtype": "string", "_type": "Value"},
                        "output_image": {"_type": "Image"},
                        "input_image": {"feature": {"_type": "Image"}, "_type": "Sequence"}}
    assert not [p.name for p in (shapes_dataset / "data").iterdir() if p.name != "train-00000-of-00001.parquet"]


def test_parquet_export_loads_with_pil_images(shapes_dataset, hf_datasets, hf_cache):
    loaded = hf_datasets.load_dataset("parquet", data_files=str(shapes_dataset / "data" / "*.parquet"),
                                      split="train", cache_dir=hf_cache)
    rows = _rows(shapes_dataset)
    assert len(loaded) == 10 and len(rows) == 10
    assert loaded["id"] == [row["id"] for row in rows]
    assert loaded["input_prompt"] == [row["input_prompt"] for row in rows]
    for record, row in zip(loaded, rows):
        assert isinstance(record["output_image"], Image.Image)
        assert np.array_equal(_pixels(record["output_image"]),
                              _pixels(Image.open(shapes_dataset / row["output_image"])))
        if record["id"].startswith("edit-"):
            assert len(record["input_image"]) == 1
            assert np.array_equal(_pixels(record["input_image"][0]),
                                  _pixels(Image.open(shapes_dataset / row["input_image"][0])))
        else:
            assert record["input_image"] == []
    assert sum(record["id"].startswith("edit-") for record in loaded) == 4


def test_dataset_folder_loads_by_its_path(shapes_dataset, hf_datasets, hf_cache):
    """``load_dataset(folder)`` finds data/train-*.parquet by the Hub's file naming."""
    loaded = hf_datasets.load_dataset(str(shapes_dataset), split="train", cache_dir=hf_cache)
    assert loaded.column_names == ["id", "input_prompt", "output_image", "input_image"]
    assert len(loaded) == 10
    assert isinstance(loaded[0]["output_image"], Image.Image)


# ----------------------------------------------------------------------------------------------
# read_sharegpt4o


def test_read_sharegpt4o_on_the_export(shapes_dataset):
    samples = read_sharegpt4o(shapes_dataset / SHAREGPT4O_FILE)
    assert len(samples) == 10
    assert [s.is_edit for s in samples] == [False] * 6 + [True] * 4
    assert [s.id for s in samples] == [f"t2i-{i:05d}" for i in range(6)] + [f"edit-{i:05d}" for i in range(4)]
    for sample in samples:
        assert sample.output_image.is_file() and sample.output_image.parent == shapes_dataset / "images"
        assert all(path.is_file() for path in sample.input_images)
        assert len(sample.input_images) == (1 if sample.is_edit else 0)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def sharegpt_folder(tmp_path) -> Path:
    _png(tmp_path / "images" / "out.png", (255, 0, 0))
    _png(tmp_path / "images" / "in.png", (0, 0, 255))
    return tmp_path


def test_read_sharegpt4o_hand_written(sharegpt_folder):
    path = _write(sharegpt_folder / "data.json", json.dumps([
        {"input_prompt": "a red square", "output_image": "images/out.png"},
        {"id": "e1", "input_prompt": "make it red", "output_image": "images/out.png",
         "input_image": ["images/in.png"]}]))
    first, second = read_sharegpt4o(path)
    assert (first.id, first.prompt, first.is_edit) == ("0", "a red square", False)
    assert first.output_image == sharegpt_folder / "images" / "out.png"
    assert (second.id, second.is_edit, second.input_images) == ("e1", True, (sharegpt_folder / "images" / "in.png",))


@pytest.mark.parametrize("text, message, line", [
    ('[\n {"input_prompt": "a",\n  "output_image": }\n]', "not valid JSON", 3),
    ('{"input_prompt": "a", "output_image": "images/out.png"}', "expected a JSON list", None),
    ('[{"input_prompt": "a", "output_image": "images/out.png"}, {"output_image": "images/out.png"}]',
     "record 1: input_prompt must be a string", None),
    ('[{"input_prompt": "a", "output_image": "images/gone.png"}]', "record 0: output_image 'images/gone.png' does not exist", None),
    ('[{"input_prompt": "a", "output_image": "images/out.png", "input_image": "images/in.png"}]',
     "record 0: input_image must be a list", None),
    ('[{"input_prompt": "a", "output_image": "images/out.png", "input_image": ["images/gone.png"]}]',
     "record 0: input_image 'images/gone.png' does not exist", None),
    ('["just text"]', "record 0: expected an object", None),
])
def test_read_sharegpt4o_names_file_and_record(sharegpt_folder, text, message, line):
    path = _write(sharegpt_folder / "bad.json", text)
    with pytest.raises(InputError) as caught:
        read_sharegpt4o(path)
    assert message in str(caught.value)
    assert str(caught.value).startswith(str(path))
    assert caught.value.line == line


def test_read_sharegpt4o_missing_file(tmp_path):
    with pytest.raises(InputError, match="dataset file not found"):
        read_sharegpt4o(tmp_path / "nothing.json")


# ----------------------------------------------------------------------------------------------
# read_llava


def test_read_llava_hand_written(sharegpt_folder):
    path = _write(sharegpt_folder / LLAVA_FILE, json.dumps([
        {"id": "a", "image": "images/out.png", "conversations": [
            {"from": "human", "value": "<image>\nWhat colour?"}, {"from": "gpt", "value": "Red."}]},
        {"id": "b", "conversations": [{"from": "human", "value": "Hello"}]}]))
    first, second = read_llava(path)
    assert first.id == "a" and first.image == sharegpt_folder / "images" / "out.png"
    assert first.turns == (("human", "<image>\nWhat colour?"), ("gpt", "Red."))
    assert second.image is None and second.turns == (("human", "Hello"),)


@pytest.mark.parametrize("records, message", [
    ([{"id": "a", "image": "images/out.png"}], "record 0: conversations must be a non-empty list"),
    ([{"id": "a", "conversations": []}], "record 0: conversations must be a non-empty list"),
    ([{"id": "a", "conversations": [{"from": "human", "value": "hi"}]},
      {"id": "b", "conversations": [{"from": "system", "value": "hi"}]}], "record 1: conversations"),
    ([{"id": "a", "conversations": [{"from": "gpt", "value": 3}]}], "record 0: conversations"),
    ([{"id": "a", "image": "images/gone.png", "conversations": [{"from": "gpt", "value": "x"}]}],
     "record 0: image 'images/gone.png' does not exist"),
    ([{"id": "a", "image": 7, "conversations": [{"from": "gpt", "value": "x"}]}],
     "record 0: image must be a non-empty path string"),
])
def test_read_llava_names_file_and_record(sharegpt_folder, records, message):
    path = _write(sharegpt_folder / "bad.json", json.dumps(records))
    with pytest.raises(InputError) as caught:
        read_llava(path)
    assert message in str(caught.value)
    assert str(caught.value).startswith(str(path))


# ----------------------------------------------------------------------------------------------
# write_parquet on other row shapes


def test_llava_rows_round_trip_through_datasets(sharegpt_folder, hf_datasets, hf_cache):
    rows = [{"id": "a", "image": "images/out.png", "caption": "A red square.", "question": "What is it?"},
            {"id": "b", "image": "images/in.png", "caption": "Blue."}]
    assert write_parquet(rows, sharegpt_folder) == ["data/train-00000-of-00001.parquet"]
    loaded = hf_datasets.load_dataset("parquet", data_files=str(sharegpt_folder / PARQUET_FILE),
                                      split="train", cache_dir=hf_cache)
    assert loaded.column_names == ["id", "image", "conversations"]
    assert loaded[0]["conversations"] == [{"from": "human", "value": "<image>\nWhat is it?"},
                                          {"from": "gpt", "value": "A red square."}]
    assert loaded[1]["conversations"] == [{"from": "human", "value": "<image>\nDescribe this image in detail."},
                                          {"from": "gpt", "value": "Blue."}]
    assert _pixels(loaded[0]["image"])[0, 0].tolist() == [255, 0, 0]
    assert _pixels(loaded[1]["image"])[0, 0].tolist() == [0, 0, 255]


def test_other_rows_keep_scalar_fields_and_images(sharegpt_folder, hf_datasets, hf_cache, monkeypatch):
    monkeypatch.setattr(dataset_parquet, "ROW_GROUP_ROWS", 2)
    rows = [{"id": f"r{i}", "picture": "images/out.png" if i % 2 else "images/in.png", "score": [1, 2.5, 3, 0, 4][i],
             "kept": i != 2, "label": None if i == 3 else f"L{i}", "meta": {"k": i}, "refs": ["images/in.png"] * i}
            for i in range(5)]
    write_parquet(rows, sharegpt_folder)
    assert pq.ParquetFile(sharegpt_folder / PARQUET_FILE).metadata.num_row_groups == 3
    loaded = hf_datasets.load_dataset("parquet", data_files=str(sharegpt_folder / PARQUET_FILE),
                                      split="train", cache_dir=hf_cache)
    assert loaded.column_names == ["id", "picture", "score", "kept", "label", "refs"]  # meta: a dict, left out
    assert loaded["score"] == [1.0, 2.5, 3.0, 0.0, 4.0]
    assert loaded["kept"] == [True, True, False, True, True]
    assert loaded["label"] == ["L0", "L1", "L2", None, "L4"]
    assert [len(refs) for refs in loaded["refs"]] == [0, 1, 2, 3, 4]
    assert [_pixels(record["picture"])[0, 0].tolist() for record in loaded] == [
        [0, 0, 255], [255, 0, 0], [0, 0, 255], [255, 0, 0], [0, 0, 255]]


def test_missing_image_fails_and_keeps_the_old_file(sharegpt_folder):
    write_parquet([{"id": "a", "image": "images/out.png", "caption": "x"}], sharegpt_folder)
    before = (sharegpt_folder / PARQUET_FILE).read_bytes()
    with pytest.raises(HarnessError, match="images/gone.png"):
        write_parquet([{"id": "a", "image": "images/gone.png", "caption": "x"}], sharegpt_folder)
    assert (sharegpt_folder / PARQUET_FILE).read_bytes() == before
    assert sorted(p.name for p in (sharegpt_folder / "data").iterdir()) == ["train-00000-of-00001.parquet"]
