"""Quality filters: the Oasis four-dimension LLM rating and the CLIP image-text score."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

import generators.filters  # noqa: F401 - registers clip-filter and llm-rating
import generators.sources  # noqa: F401
from generators.filters import ClipFilter, LlmRating, extract_score
from harness.clients.call_cache import BlobStore
from harness.recipe import Drop, RecipeSpec, StepContext
from harness.synth import synthesize
from harness.testing.fake_openai import Fault, FakeOpenAIServer, message_texts

TINY_CLIP = {
    "embed_dim": 16,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def png(colour: tuple[int, int, int], size: int = 16) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="PNG")
    return buffer.getvalue()


# ----------------------------------------------------------------------------------------------
# llm-rating


@pytest.mark.parametrize("text, expected", [
    ("[[4]]", 4), ("score 3", 3), ("[[9]]", -1), ("", -1), ("no number here", -1),
    ("first [[2]], on reflection [[5]]", 5), ("[[4]] out of 5", 4), ("rated 0", -1), ("[[ 3 ]]", 3),
    ("1, 2, then 6", -1),
])
def test_extract_score_by_hand(text: str, expected: int):
    assert extract_score(text) == expected


def ratings(s: int, h: int, c: int, n: int) -> dict:
    return {"solvability": s, "hallucination": h, "clarity": c, "nonsense": n}


def test_keep_rule_by_hand():
    oasis = LlmRating()
    assert oasis.keep(ratings(5, 5, 5, 5))
    assert oasis.keep(ratings(4, 5, 3, 5))          # 4 + 3 = 7
    assert not oasis.keep(ratings(3, 5, 3, 5))      # 3 + 3 = 6 < 7
    assert not oasis.keep(ratings(5, 4, 5, 5))      # hallucination must be 5
    assert not oasis.keep(ratings(5, 5, 5, 4))      # nonsense must be 5
    assert not oasis.keep(ratings(2, 5, 5, 5))      # solvability >= 3
    assert not oasis.keep(ratings(5, 5, 2, 5))      # clarity >= 3
    assert not oasis.keep(ratings(5, 5, 5, -1))     # unreadable
    lenient = LlmRating(min_hallucination=4, min_solvability_plus_clarity=6)
    assert lenient.keep(ratings(5, 4, 5, 5)) and lenient.keep(ratings(3, 5, 3, 5))
    assert not lenient.keep(ratings(5, 3, 5, 5))


# the fake judge's answers: query -> {dimension: reply}; the dimension is told by its prompt wording
DIMENSION_MARKERS = {"supports answering": "solvability", "faithful": "hallucination",
                     "clearly the query states": "clarity", "as text only": "nonsense"}
JUDGED = {
    "What colour is the square?": {"solvability": "[[5]]", "hallucination": "[[5]]", "clarity": "[[4]]",
                                   "nonsense": "Fine. [[5]]"},
    "How many dogs are there?": {"solvability": "[[4]]", "hallucination": "[[4]]", "clarity": "[[5]]",
                                 "nonsense": "[[5]]"},
    "Colour what the?": {"solvability": "[[3]]", "hallucination": "[[5]]", "clarity": "[[4]]",
                         "nonsense": "I cannot rate this."},
    "Is it square?": {"solvability": "[[5]]", "hallucination": "[[5]]", "clarity": "FAIL", "nonsense": "[[5]]"},
}


def judge(body: dict) -> str | Fault:
    text = message_texts(body)[-1]
    dimension = next(dim for marker, dim in DIMENSION_MARKERS.items() if marker in text)
    query = next(q for q in JUDGED if f"\n\n{q}\n\n" in text)
    reply = JUDGED[query][dimension]
    return Fault.server_error(500) if reply == "FAIL" else reply


def test_llm_rating_end_to_end(tmp_path: Path):
    data = tmp_path / "data"
    data.mkdir()
    records = []
    for i, query in enumerate(JUDGED):
        (data / f"{i}.png").write_bytes(png((40 * i, 0, 0)))
        records.append({"id": f"q{i}", "input_prompt": query, "input_image": [f"{i}.png"], "output_image": f"{i}.png"})
    (data / "data.json").write_text(json.dumps(records))

    with FakeOpenAIServer(judge) as server:
        def client(model: str) -> dict:
            return {"base_url": server.base_url, "model": model, "backoff_s": 0, "max_retries": 1}
        spec = RecipeSpec.from_dict({
            "name": "rated", "seed": 1, "clients": {"vlm": client("qwen-vl"), "llm": client("qwen-text")},
            "steps": [{"name": "sharegpt4o-json", "params": {"path": str(data / "data.json")}},
                      {"name": "llm-rating", "params": {"client": "vlm", "text_client": "llm",
                                                        "image_field": "input_image"}}],
            "export": ["parquet"]})
        outcome = synthesize(spec, out=tmp_path / "ds", show_progress=False)
        chats = [r.body for r in server.requests]

    # 4 rows x 4 dimensions, plus one retry of the failing clarity call
    assert len(chats) == 17
    for body in chats:
        text = message_texts(body)[-1]
        content = body["messages"][-1]["content"]
        images = [part for part in content if part["type"] == "image_url"] if isinstance(content, list) else []
        if "as text only" in text:  # nonsense: text-only, on the text model
            assert body["model"] == "qwen-text" and images == []
        else:
            assert body["model"] == "qwen-vl" and len(images) == 1
        assert "[[" in text  # the reply format is asked for

    folder = outcome.folder
    rows = [json.loads(line) for line in (folder / "rows.jsonl").read_text().splitlines()]
    assert [(r["id"], r["ratings"]) for r in rows] == [("q0", ratings(5, 5, 4, 5))]
    dropped = {d["id"]: d["reason"] for d in map(json.loads, (folder / "dropped.jsonl").read_text().splitlines())}
    assert set(dropped) == {"q1", "q2"}
    assert "'hallucination': 4" in dropped["q1"] and "'nonsense': -1" in dropped["q2"]
    failures = [json.loads(line) for line in (folder / "failures.jsonl").read_text().splitlines()]
    assert [f["id"] for f in failures] == ["q3"] and "clarity" in failures[0]["error"]


# ----------------------------------------------------------------------------------------------
# clip-filter


def test_clip_filter_scores_and_threshold(tmp_path: Path):
    torch.manual_seed(0)
    ctx = StepContext(0, "clip-filter", BlobStore(tmp_path / "blobs"), {})
    rows = [{"id": "a", "image": ctx.save_image(png((250, 10, 10))), "caption": "a red square"},
            {"id": "b", "image": [ctx.save_image(png((10, 10, 250)))], "caption": "a photo of a blue dog on grass"}]
    step = ClipFilter(pretrained=None, model_config=TINY_CLIP, device="cpu", threshold=-1000)
    assert step.clip._model is None  # loaded lazily
    kept = step.generate(rows, ctx)
    model = step.clip.model

    # by hand: encode each pair with the same model and take 100 x the cosine
    expected = []
    with torch.no_grad():
        for ref, text in [(rows[0]["image"], "a red square"), (rows[1]["image"][0], "a photo of a blue dog on grass")]:
            pixels = step.clip._preprocess(Image.open(ctx.image_path(ref)).convert("RGB")).unsqueeze(0)
            image_vec = model.encode_image(pixels)[0]
            text_vec = model.encode_text(step.clip._tokenizer([text]))[0]
            cosine = float(image_vec @ text_vec) / (float(image_vec.norm()) * float(text_vec.norm()))
            expected.append(100 * cosine)
    assert [r["clip_score"] for r in kept] == pytest.approx(expected, abs=1e-3)
    assert expected[0] != pytest.approx(expected[1], abs=1e-2)

    # a threshold between the two scores keeps the higher one only; the model is not loaded again
    low, high = sorted(expected)
    step.threshold = (low + high) / 2
    results = step.generate(rows, ctx)
    assert step.clip.model is model
    for result, score in zip(results, expected):
        if score == high:
            assert result == {"clip_score": pytest.approx(score, abs=1e-3)}
        else:
            assert isinstance(result, Drop) and f"{score:.2f}" in result.reason and "threshold" in result.reason
