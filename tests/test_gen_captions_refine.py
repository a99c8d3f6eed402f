"""ShareGPT4V captions and GPT-Image-Edit refinement, end to end against the loopback fake server."""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from PIL import Image

import generators.gpt_image_edit  # noqa: F401 - registers rewrite-instruction
import generators.image_steps  # noqa: F401
import generators.sharegpt4v  # noqa: F401 - registers detailed-caption
import generators.sources  # noqa: F401
from generators.gpt_image_edit import parse_rewrite_reply
from generators.sharegpt4v import refusal_reason
from harness.dataset_formats import read_llava, read_sharegpt4o
from harness.recipe import RecipeSpec
from harness.synth import synthesize
from harness.testing.fake_openai import FakeOpenAIServer, message_texts

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)
# what the fake VLM says about each colour (red: a refusal, blue: an empty reply)
CAPTIONS = {RED: "I'm sorry, but I can't help with that.", GREEN: "A flat green square fills the frame.",
            BLUE: "   ", WHITE: "A plain white image with nothing in it."}


def png(colour: tuple[int, int, int], size: int = 16) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def request_images(body: dict) -> list[bytes]:
    """The images of a chat request (data URLs), decoded."""
    images = []
    for message in body["messages"]:
        if isinstance(message["content"], list):
            images += [base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
                       for part in message["content"] if part["type"] == "image_url"]
    return images


def colour_of(data: bytes) -> tuple[int, int, int]:
    return Image.open(io.BytesIO(data)).convert("RGB").getpixel((0, 0))


def caption_reply(body: dict) -> str:
    return CAPTIONS[colour_of(request_images(body)[0])]


def client(server: FakeOpenAIServer, model: str = "gpt-4o") -> dict:
    return {"base_url": server.base_url, "model": model, "max_concurrency": 4, "backoff_s": 0, "max_retries": 1,
            "prices": {"prompt_per_1k": 0.0025, "completion_per_1k": 0.01}}


def caption_recipe(server: FakeOpenAIServer, folder: Path, source_type: str) -> RecipeSpec:
    return RecipeSpec.from_dict({
        "name": f"captions-{source_type}", "seed": 3, "clients": {"vlm": client(server)},
        "steps": [{"name": "image-folder", "params": {"path": str(folder), "source_type": source_type}},
                  {"name": "detailed-caption", "params": {"client": "vlm", "batch_size": 2}}],
        "export": ["llava"]})


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for name, colour in [("red.png", RED), ("green.png", GREEN), ("blue.png", BLUE), ("white.png", WHITE)]:
        (folder / name).write_bytes(png(colour))
    return folder


def test_refusal_and_rewrite_parsing_by_hand():
    assert refusal_reason("") == "empty caption reply"
    assert refusal_reason("I\u2019m sorry, I cannot describe people.") is not None
    assert refusal_reason("**I can't** identify this person.") is not None
    assert refusal_reason("A dog. I'm sorry to say it is wet.") is None  # only the opening counts
    assert parse_rewrite_reply("KEEP") == (False, None)
    assert parse_rewrite_reply("\n keep.\n") == (False, None)
    assert parse_rewrite_reply('REWRITE: "Turn the car blue."\nbecause ...') == (True, "Turn the car blue.")
    assert parse_rewrite_reply("REWRITE:") is None
    assert parse_rewrite_reply("I think we should keep it") is None
    assert parse_rewrite_reply("") is None


def test_captions_end_to_end(tmp_path: Path, image_folder: Path):
    with FakeOpenAIServer(caption_reply) as server:
        natural = synthesize(caption_recipe(server, image_folder, "natural"), out=tmp_path / "nat",
                             show_progress=False)
        natural_prompts = {t for r in server.requests for t in message_texts(r.body)}
        assert len(server.requests) == 4  # one call per image
        art = synthesize(caption_recipe(server, image_folder, "art"), out=tmp_path / "art", show_progress=False)
        art_prompts = {t for r in server.requests[4:] for t in message_texts(r.body)}

        # one prompt per source, and the source-specific part really differs
        assert len(natural_prompts) == 1 and len(art_prompts) == 1
        (natural_prompt,), (art_prompt,) = natural_prompts, art_prompts
        assert "artist" in art_prompt and "artist" not in natural_prompt
        assert "everyday photograph" in natural_prompt and "everyday photograph" not in art_prompt

        for outcome in (natural, art):
            records = read_llava(outcome.folder / "llava.json")
            rows = [json.loads(line) for line in (outcome.folder / "rows.jsonl").read_text().splitlines()]
            assert sorted(r.id for r in records) == ["green.png", "white.png"]
            by_id = {row["id"]: row for row in rows}
            for record in records:
                assert record.image is not None and record.image.is_file()
                assert colour_of(record.image.read_bytes()) == {"green.png": GREEN, "white.png": WHITE}[record.id]
                (human, question), (gpt, caption) = record.turns
                assert (human, gpt) == ("human", "gpt")
                assert question == "<image>\n" + by_id[record.id]["question"]
                assert by_id[record.id]["question"].endswith("?") or by_id[record.id]["question"].endswith(".")
                assert caption == CAPTIONS[{"green.png": GREEN, "white.png": WHITE}[record.id]].strip()
            dropped = {d["id"]: d for d in map(json.loads, (outcome.folder / "dropped.jsonl").read_text().splitlines())}
            assert set(dropped) == {"red.png", "blue.png"}
            assert "declined" in dropped["red.png"]["reason"] and "empty" in dropped["blue.png"]["reason"]
        # the question depends on (seed, row id) only, not on the source type or the batch
        assert [json.loads(x)["question"] for x in (natural.folder / "rows.jsonl").read_text().splitlines()] == \
            [json.loads(x)["question"] for x in (art.folder / "rows.jsonl").read_text().splitlines()]

        sent = len(server.requests)
        again = synthesize(caption_recipe(server, image_folder, "natural"), out=tmp_path / "nat",
                           show_progress=False)
        assert again.skipped
        elsewhere = synthesize(caption_recipe(server, image_folder, "natural"), out=tmp_path / "nat2",
                               cache_dir=tmp_path / "nat" / "cache", show_progress=False)
        assert len(server.requests) == sent  # everything came from the caches
        assert (elsewhere.folder / "llava.json").read_text() == (natural.folder / "llava.json").read_text()


def test_unknown_source_type_fails_clearly(tmp_path: Path, image_folder: Path):
    with FakeOpenAIServer(caption_reply) as server:
        outcome = synthesize(caption_recipe(server, image_folder, "medical"), out=tmp_path / "ds",
                             show_progress=False)
        assert server.requests == []
    failures = [json.loads(line) for line in (outcome.folder / "failures.jsonl").read_text().splitlines()]
    assert len(failures) == 4
    assert all("'medical'" in f["error"] and "text-rich" in f["error"] for f in failures)


# ----------------------------------------------------------------------------------------------
# GPT-Image-Edit refinement

TRIPLETS = [("t-keep", "Make the background green.", GREEN),
            ("t-rewrite", "Add a dog.", BLUE),
            ("t-garbled", "Do something.", WHITE)]
REPLIES = {"Make the background green.": "KEEP",
           "Add a dog.": "REWRITE: Paint the whole picture a different colour.\nThe dog is not there.",
           "Do something.": "Hmm, hard to say."}


def rewrite_reply(body: dict) -> str:
    text = message_texts(body)[-1]
    return next(reply for instruction, reply in REPLIES.items() if f'"{instruction}"' in text)


def test_refinement_end_to_end(tmp_path: Path):
    data = tmp_path / "triplets"
    data.mkdir()
    records = []
    for row_id, prompt, colour in TRIPLETS:
        (data / f"{row_id}-src.png").write_bytes(png(colour))
        (data / f"{row_id}-out.png").write_bytes(png(RED))  # the old outputs: all red
        records.append({"id": row_id, "input_prompt": prompt, "input_image": [f"{row_id}-src.png"],
                        "output_image": f"{row_id}-out.png"})
    (data / "data.json").write_text(json.dumps(records))

    with FakeOpenAIServer(rewrite_reply) as server:
        spec = RecipeSpec.from_dict({
            "name": "refine", "seed": 0,
            "clients": {"image_model": client(server, "gpt-image-1"), "vlm": client(server)},
            "steps": [{"name": "sharegpt4o-json", "params": {"path": str(data / "data.json")}},
                      {"name": "edit-image", "params": {"client": "image_model"}},
                      {"name": "rewrite-instruction", "params": {"client": "vlm"}}],
            "export": ["sharegpt4o"]})
        outcome = synthesize(spec, out=tmp_path / "ds", show_progress=False)
        edits = [r for r in server.requests if r.path.endswith("/images/edits")]
        chats = [r for r in server.requests if r.path.endswith("/chat/completions")]
    assert len(edits) == 3 and len(chats) == 5  # the garbled reply is asked three times in all

    folder = outcome.folder
    rows = {row["id"]: row for row in map(json.loads, (folder / "rows.jsonl").read_text().splitlines())}
    assert set(rows) == {"t-keep", "t-rewrite"}
    assert rows["t-keep"]["input_prompt"] == "Make the background green."
    assert rows["t-keep"]["instruction_rewritten"] is False
    assert rows["t-rewrite"]["input_prompt"] == "Paint the whole picture a different colour."
    assert rows["t-rewrite"]["instruction_rewritten"] is True
    assert rows["t-rewrite"]["original_prompt"] == "Add a dog."
    dropped = [json.loads(line) for line in (folder / "dropped.jsonl").read_text().splitlines()]
    assert [(d["id"], d["step"]) for d in dropped] == [("t-garbled", "rewrite-instruction")]
    assert "unusable reply after 3 attempt(s)" in dropped[0]["reason"] and "neither" in dropped[0]["reason"]

    for chat in chats:  # the VLM saw the source and the NEW output, in that order
        source, output = request_images(chat.body)
        instruction = next(i for i in REPLIES if f'"{i}"' in message_texts(chat.body)[-1])
        row_id, _, colour = next(t for t in TRIPLETS if t[1] == instruction)
        assert colour_of(source) == colour
        if row_id in rows:
            assert output == (folder / rows[row_id]["output_image"]).read_bytes()
            assert output != (folder / rows[row_id]["original_output_image"]).read_bytes()
            assert colour_of(output) != RED

    samples = {s.id: s for s in read_sharegpt4o(folder / "sharegpt4o.json")}
    assert samples["t-rewrite"].prompt == "Paint the whole picture a different colour."
    assert samples["t-keep"].prompt == "Make the background green."
    assert colour_of(samples["t-keep"].input_images[0].read_bytes()) == GREEN
    assert colour_of(samples["t-keep"].output_image.read_bytes()) not in (RED, GREEN)
