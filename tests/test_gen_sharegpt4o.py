"""ShareGPT-4o-Image generator recipes, end to end against the loopback fake OpenAI server."""
from __future__ import annotations

import base64
import io
import json
import math
import random
import re
from pathlib import Path

import pytest
from PIL import Image

import generators.image_steps  # noqa: F401 - registers render-image / edit-image
import generators.sharegpt4o  # noqa: F401 - registers the plugins under test
import generators.sources  # noqa: F401 - registers image-folder
from generators.sharegpt4o.attributes import load_vocabulary, sample_attributes
from generators.sharegpt4o.edits import EDIT_TAXONOMY
from harness.dataset_formats import read_sharegpt4o
from harness.errors import InputError
from harness.recipe import RecipeSpec
from harness.synth import build_plugins, synthesize
from harness.testing.fake_openai import FakeOpenAIServer, message_texts

COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 20)]


# ----------------------------------------------------------------------------------------------
# a fake model that answers each step according to what it is asked


def _image_colour(body: dict) -> str:
    """The colour of the (solid) image a chat request carries, as "r,g,b"."""
    for message in body["messages"]:
        for part in message["content"] if isinstance(message["content"], list) else []:
            if part.get("type") == "image_url":
                data = base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
                return ",".join(str(c) for c in Image.open(io.BytesIO(data)).convert("RGB").getpixel((0, 0)))
    return "no-image"


def responder(body: dict) -> str:
    text = message_texts(body)[-1]
    if "Combine the attributes below" in text:
        objects = re.search(r"^Objects: (.*)$", text, re.M).group(1)
        return f'**Prompt:** "A photo of {objects}."'
    if "would regenerate it" in text:
        return f"A solid {_image_colour(body)} square."
    if "Write the complete text content of" in text:
        topic = re.search(r"^Topic: (.*)\.$", text, re.M).group(1)
        return f"Title: {topic} in numbers\nBullet: 42 % growth"
    if text.startswith("Turn the "):
        category = text.split()[2]
        title = re.search(r"^Title: (.*)$", text, re.M).group(1)
        return f'```\nPrompt: A {category} titled "{title}"\n```'
    if "Write one editing instruction" in text:
        task = re.search(r"Edit task: (.*?) --", text).group(1)
        return "SKIP" if task == "skip me" else f"Instruction: apply {task} to the {_image_colour(body)} square."
    return "unexpected request"


def clients(server: FakeOpenAIServer) -> dict:
    common = {"base_url": server.base_url, "max_concurrency": 4, "backoff_s": 0}
    prices = {"prompt_per_1k": 0.00125, "completion_per_1k": 0.01}
    return {"llm": {**common, "model": "gemini-2.5-pro", "prices": prices},
            "image_model": {**common, "model": "gpt-image-1"}}


def run(server: FakeOpenAIServer, steps: list, out: Path, **extra) -> list[dict]:
    spec = RecipeSpec.from_dict({"name": "t", "seed": 3, "clients": clients(server), "steps": steps,
                                 "export": ["sharegpt4o"], **extra})
    synthesize(spec, out=out, show_progress=False)
    return [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]


def chat_bodies(server: FakeOpenAIServer) -> list[str]:
    return [json.dumps(r.body) for r in server.requests if r.path.endswith("/chat/completions")]


def check_export(out: Path, count: int, edits: bool) -> None:
    samples = read_sharegpt4o(out / "sharegpt4o.json")  # checks that every named image exists
    assert len(samples) == count
    for sample in samples:
        assert sample.output_image.is_file() and sample.prompt
        assert sample.is_edit == edits and all(p.is_file() for p in sample.input_images)


@pytest.fixture()
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, colour in enumerate(COLOURS):
        Image.new("RGB", (32, 32), colour).save(folder / f"p{i}.png")
    return folder


# ----------------------------------------------------------------------------------------------
# the attribute sampler


@pytest.mark.parametrize("decay", [0.5, 1.2])
def test_object_count_follows_exponential_weights(decay):
    vocabulary = load_vocabulary()
    rng, draws = random.Random(11), 20000
    counts = [len(sample_attributes(rng, vocabulary, decay, 100)["objects"]) for _ in range(draws)]
    ratio = math.exp(-decay)
    total = (1 - ratio ** 100) / (1 - ratio)  # sum over k = 1..100 of exp(-decay (k-1)), closed form
    for k in (1, 2, 3):
        expected = ratio ** (k - 1) / total
        stderr = math.sqrt(expected * (1 - expected) / draws)
        assert abs(counts.count(k) / draws - expected) < 4 * stderr, (k, counts.count(k) / draws, expected)
    assert 1 <= min(counts) and max(counts) <= 100


def test_attributes_cover_six_dimensions_with_distinct_objects():
    vocabulary = load_vocabulary()
    rng = random.Random(0)
    for _ in range(200):
        attributes = sample_attributes(rng, vocabulary, decay=0.1, max_objects=100)
        assert list(attributes) == ["objects", "background", "style", "lighting", "camera", "composition"]
        assert len(set(attributes["objects"])) == len(attributes["objects"])
    capped = sample_attributes(random.Random(1), vocabulary, decay=0.0, max_objects=3)  # uniform over 1..3
    assert 1 <= len(capped["objects"]) <= 3


def test_replacement_vocabulary(tmp_path):
    path = tmp_path / "vocab.yaml"
    path.write_text("objects: [kettle, lamp]\nmood:\n  feeling: [calm]\n")
    attributes = sample_attributes(random.Random(0), load_vocabulary(path), decay=0.0, max_objects=100)
    assert set(attributes["objects"]) <= {"kettle", "lamp"} and attributes["mood"] == {"feeling": "calm"}
    path.write_text("objects: []\n")
    with pytest.raises(InputError):
        load_vocabulary(path)


# ----------------------------------------------------------------------------------------------
# the four recipes


PROMPT_FIRST = [{"name": "sharegpt4o-attributes", "params": {"count": 6}},
                {"name": "compose-prompt"}, {"name": "render-image"}]


def test_prompt_first_recipe_resumes_and_is_deterministic(tmp_path):
    with FakeOpenAIServer(responder) as server:
        rows = run(server, PROMPT_FIRST, tmp_path / "a")
        assert len(rows) == 6 and len(server.requests) == 12  # 6 chats + 6 images
        for row in rows:
            assert row["input_prompt"] == f"A photo of {', '.join(row['attributes']['objects'])}."
            assert row["object_count"] == len(row["attributes"]["objects"])
            assert (tmp_path / "a" / row["output_image"]).is_file()
        check_export(tmp_path / "a", 6, edits=False)
        before = len(server.requests)
        run(server, PROMPT_FIRST, tmp_path / "a")
        assert len(server.requests) == before  # a finished dataset is not asked again
        spec = RecipeSpec.from_dict({"name": "t", "seed": 3, "clients": clients(server), "steps": PROMPT_FIRST})
        synthesize(spec, out=tmp_path / "c", cache_dir=tmp_path / "a" / "cache", show_progress=False)
        assert len(server.requests) == before  # every call answered from the call cache
        run(server, PROMPT_FIRST, tmp_path / "b")
    assert (tmp_path / "a" / "rows.jsonl").read_bytes() == (tmp_path / "b" / "rows.jsonl").read_bytes()


def test_empty_reply_is_asked_again_then_dropped_and_a_rerun_pays_nothing(tmp_path):
    with FakeOpenAIServer(lambda body: "  ") as server:
        rows = run(server, PROMPT_FIRST[:2], tmp_path / "ds", export=[])
        assert len(server.requests) == 6 * 3  # three attempts per row (ChatStep's default max_attempts)
        dropped = [json.loads(line) for line in (tmp_path / "ds" / "dropped.jsonl").read_text().splitlines()]
        assert rows == [] and len(dropped) == 6 and {d["step"] for d in dropped} == {"compose-prompt"}
        assert all("unusable reply after 3 attempt(s)" in d["reason"] for d in dropped)
        run(server, PROMPT_FIRST[:2], tmp_path / "ds", export=[])  # finished: nothing asked again
        assert len(server.requests) == 18
    assert (tmp_path / "ds" / "failures.jsonl").read_text() == ""


@pytest.mark.parametrize("keep_original", [False, True])
def test_image_first_recipe(tmp_path, photos, keep_original):
    last = {"name": "use-source-image"} if keep_original else {"name": "render-image"}
    steps = [{"name": "image-folder", "params": {"path": str(photos)}}, {"name": "regeneration-prompt"}, last]
    with FakeOpenAIServer(responder) as server:
        rows = run(server, steps, tmp_path / "a")
        bodies = chat_bodies(server)
        run(server, steps, tmp_path / "b")
    assert len(rows) == 4 and len(bodies) == 4 and all('"data:image/png;base64,' in b for b in bodies)
    for row, colour in zip(rows, COLOURS):  # rows come in file order p0..p3
        assert row["input_prompt"] == f"A solid {','.join(map(str, colour))} square."
        assert (row["output_image"] == row["image"]) == keep_original
    check_export(tmp_path / "a", 4, edits=False)
    assert (tmp_path / "a" / "rows.jsonl").read_bytes() == (tmp_path / "b" / "rows.jsonl").read_bytes()


def test_document_recipe(tmp_path):
    steps = [{"name": "document-topics", "params": {"count": 5}}, {"name": "document-content"},
             {"name": "document-template-prompt"}, {"name": "render-image"}]
    with FakeOpenAIServer(responder) as server:
        rows = run(server, steps, tmp_path / "a")
        assert len(server.requests) == 15  # 5 contents, 5 template prompts, 5 images
        before = len(server.requests)
        run(server, steps, tmp_path / "a")
        assert len(server.requests) == before
        run(server, steps, tmp_path / "b")
    assert len(rows) == 5
    for row in rows:
        assert row["category"] in {"slide", "paper", "document", "infographic", "poster"}
        assert row["document_content"] == f"Title: {row['topic']} in numbers\nBullet: 42 % growth"
        assert row["input_prompt"] == f'A {row["category"]} titled "{row["topic"]} in numbers"'
    check_export(tmp_path / "a", 5, edits=False)
    assert (tmp_path / "a" / "rows.jsonl").read_bytes() == (tmp_path / "b" / "rows.jsonl").read_bytes()


EDITS = [{"name": "assign-edit-task"}, {"name": "edit-instruction"}, {"name": "set-input-image"},
         {"name": "edit-image"}]


def test_edit_recipe(tmp_path, photos):
    steps = [{"name": "image-folder", "params": {"path": str(photos)}}, *EDITS]
    with FakeOpenAIServer(responder) as server:
        rows = run(server, steps, tmp_path / "a")
        bodies = chat_bodies(server)
        edits = [r for r in server.requests if r.path.endswith("/images/edits")]
        before = len(server.requests)
        run(server, steps, tmp_path / "a")
        assert len(server.requests) == before
        run(server, steps, tmp_path / "b")
    assert len(rows) == 4 and len(bodies) == 4 and len(edits) == 4
    tasks = {task: category for category, group in EDIT_TAXONOMY.items() for task in group}
    assert len(EDIT_TAXONOMY) == 5 and len(tasks) == 14
    for row, colour in zip(rows, COLOURS):
        source = (tmp_path / "a" / row["image"]).read_bytes()
        data_url = "data:image/png;base64," + base64.b64encode(source).decode("ascii")
        assert sum(data_url in body for body in bodies) >= 1  # the VLM saw this row's own image
        assert tasks[row["edit_task"]] == row["edit_category"]
        assert row["input_prompt"] == f"apply {row['edit_task']} to the {','.join(map(str, colour))} square."
        assert row["input_image"] == [row["image"]] and row["output_image"] != row["image"]
    check_export(tmp_path / "a", 4, edits=True)
    assert (tmp_path / "a" / "rows.jsonl").read_bytes() == (tmp_path / "b" / "rows.jsonl").read_bytes()


def test_custom_taxonomy_and_skip_drops(tmp_path, photos):
    taxonomy = {"keep": {"recolor": "change a colour"}, "drop": {"skip me": "a task that never fits"}}
    steps = [{"name": "image-folder", "params": {"path": str(photos)}},
             {"name": "assign-edit-task", "params": {"taxonomy": taxonomy}}, *EDITS[1:]]
    with FakeOpenAIServer(responder) as server:
        rows = run(server, steps, tmp_path / "ds")
    dropped = [json.loads(line) for line in (tmp_path / "ds" / "dropped.jsonl").read_text().splitlines()]
    assert len(rows) + len(dropped) == 4
    assert all(row["edit_task"] == "recolor" and row["edit_category"] == "keep" for row in rows)
    assert all(d["step"] == "edit-instruction" and "skip me" in d["reason"] for d in dropped)


def test_recipe_refuses_a_step_reading_an_unwritten_field(tmp_path):
    steps = [{"name": "sharegpt4o-attributes", "params": {"count": 2}}, {"name": "document-template-prompt"},
             {"name": "render-image"}]
    with FakeOpenAIServer(responder) as server:
        with pytest.raises(InputError, match="document_content"):
            run(server, steps, tmp_path / "ds")
        assert server.requests == []


def test_editing_a_vocabulary_or_taxonomy_file_changes_the_recipe_identity(tmp_path):
    vocabulary, taxonomy = tmp_path / "vocab.yaml", tmp_path / "tasks.yaml"
    clients = {role: {"base_url": "http://127.0.0.1:9/v1", "model": "m"} for role in ("llm", "image_model")}
    spec = RecipeSpec.from_dict({"name": "t", "clients": clients, "steps": [
        {"name": "sharegpt4o-attributes", "params": {"count": 1, "vocabulary": str(vocabulary)}},
        {"name": "compose-prompt"}, {"name": "render-image", "params": {"output": "image"}},  # edit generated images
        {"name": "assign-edit-task", "params": {"taxonomy": str(taxonomy)}}], "export": []})

    def identity() -> dict:
        return spec.identity(build_plugins(spec))

    vocabulary.write_text("objects: [kettle]\n")
    taxonomy.write_text("keep: {recolor: change a colour}\n")
    first = identity()
    vocabulary.write_text("objects: [lamp]\n")
    second = identity()
    taxonomy.write_text("keep: {recolor: change one colour}\n")
    assert first != second != identity()
