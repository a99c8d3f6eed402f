"""The recipe runner: the shapes recipe offline, the call cache, accounting, validation, skipping."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.artifacts import read_manifest
from harness.cache import KeyedLog
from harness.clients.call_cache import BlobStore, CachedClient
from harness.clients.openai_compat import OpenAICompatClient
from harness.dataset_formats import read_sharegpt4o
from harness.errors import HarnessError, InputError
from harness.fileio import read_jsonl
from harness.recipe import RecipeSpec
from shapes.detector import ShapesDetector
from shapes.world import Scene, render
from harness.synth import synthesize
from harness.testing.fake_openai import Fault, FakeOpenAIServer

SHAPES_RECIPE = Path(__file__).resolve().parents[1] / "examples" / "shapes-recipe.yaml"


def shapes_recipe(t2i: int = 12, edits: int = 6, **overrides) -> RecipeSpec:
    return RecipeSpec.load(SHAPES_RECIPE).with_overrides(
        {"steps.0.params.t2i": t2i, "steps.0.params.edits": edits, **overrides})


def rows_of(folder: Path) -> list[dict]:
    return [row for _, row in read_jsonl(folder / "rows.jsonl")]


def test_shapes_recipe_images_show_what_the_text_says(tmp_path):
    outcome = synthesize(shapes_recipe(), tmp_path / "ds", show_progress=False)
    samples = read_sharegpt4o(outcome.folder / "sharegpt4o.json")
    assert len(samples) == 18 and sum(s.is_edit for s in samples) == 6
    rows = {row["id"]: row for row in rows_of(outcome.folder)}
    detector = ShapesDetector()
    from PIL import Image
    for sample in samples:
        row = rows[sample.id]
        # the image on disk is the render of the row's scene graph, byte for byte in pixels
        expected = np.asarray(render(Scene.from_dict(row["scene"]), 64))
        assert np.array_equal(np.asarray(Image.open(sample.output_image).convert("RGB")), expected)
        # and the pixel-only detector finds exactly the scene's shapes
        found = detector.detect_one(Image.open(sample.output_image).convert("RGB"))
        assert sorted((d.label, d.color) for d in found) == \
            sorted((o["shape"], o["color"]) for o in row["scene"]["objects"])
        if sample.is_edit:
            source = np.asarray(render(Scene.from_dict(row["input_scene"]), 64))
            assert np.array_equal(np.asarray(Image.open(sample.input_images[0]).convert("RGB")), source)
    manifest = read_manifest(outcome.folder)
    assert manifest.kind == "dataset" and manifest.info["rows"] == 18 and manifest.info["failed"] == 0
    assert set(manifest.files) >= {"rows.jsonl", "sharegpt4o.json"}


def test_rows_depend_only_on_seed_and_id_and_a_finished_dataset_is_not_rebuilt(tmp_path):
    small = synthesize(shapes_recipe(t2i=4, edits=2), tmp_path / "small", show_progress=False)
    large = synthesize(shapes_recipe(t2i=8, edits=3), tmp_path / "large", show_progress=False)
    small_rows, large_rows = rows_of(small.folder), {r["id"]: r for r in rows_of(large.folder)}
    assert all(large_rows[row["id"]] == row for row in small_rows)  # more rows do not change earlier ones
    other_seed = synthesize(shapes_recipe(t2i=4, edits=2, seed=1), tmp_path / "seed1", show_progress=False)
    assert rows_of(other_seed.folder) != small_rows

    again = synthesize(shapes_recipe(t2i=4, edits=2), tmp_path / "small", show_progress=False)
    assert again.skipped and again.artifact.hash == small.artifact.hash
    with pytest.raises(HarnessError, match="another recipe"):
        synthesize(shapes_recipe(t2i=5, edits=2), tmp_path / "small", show_progress=False)
    source_only = RecipeSpec.from_dict({"name": "s", "steps": [{"name": "shapes-world", "params": {"t2i": 4, "edits": 2}}],
                                        "export": []})
    with pytest.raises(HarnessError, match="another recipe"):  # a step less is another recipe, not a skip
        synthesize(source_only, tmp_path / "small", show_progress=False)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(HarnessError, match="not empty and holds no dataset"):
        synthesize(shapes_recipe(t2i=4, edits=2), tmp_path / "mine", show_progress=False)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_two_steps_of_the_same_plugin_draw_different_samples(tmp_path):
    with FakeOpenAIServer() as server:
        spec = RecipeSpec.from_dict({
            "name": "twice", "export": [],
            "clients": {"image_model": {"base_url": server.base_url, "model": "gpt-image-1", "backoff_s": 0}},
            "steps": [{"name": "shapes-world", "params": {"t2i": 3}},
                      {"name": "render-image", "params": {"client": "image_model"}},
                      {"name": "render-image", "params": {"client": "image_model", "output": "alt_image"}}]})
        synthesize(spec, tmp_path / "ds", show_progress=False)
        assert len(server.requests) == 6  # the second step is not served from the first one's cache


def test_recipe_errors_name_the_file_and_the_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsteps:\n  - {name: shapes-render}\n")
    with pytest.raises(InputError, match="first step must be a source"):
        synthesize(RecipeSpec.load(bad), tmp_path / "out", show_progress=False)
    bad.write_text("name: x\nsteps:\n  - {name: shapes-world}\n  - {name: shapes-render}\nexport: [llava]\n")
    with pytest.raises(InputError, match=r"export 'llava' needs fields \['image', 'caption'\]"):
        synthesize(RecipeSpec.load(bad), tmp_path / "out", show_progress=False)
    bad.write_text("name: x\nsteps:\n  - {name: shapes-world}\n  - {name: render-image}\n")
    with pytest.raises(InputError, match=r"bad.yaml: steps\[1\] 'render-image' uses client 'image_model', which"):
        synthesize(RecipeSpec.load(bad), tmp_path / "out", show_progress=False)
    bad.write_text("name: x\nclients: {llm: {base_url: 'https://a.example/v1', model: m, api_key: sk-secret-1}}\n"
                   "steps: [{name: shapes-world}]\n")
    with pytest.raises(InputError, match=r"bad.yaml: clients.llm.api_key: looks like a secret"):
        synthesize(RecipeSpec.load(bad), tmp_path / "out", show_progress=False)
    assert not (tmp_path / "out").exists()  # refused before anything was written
    bad.write_text("name: x\nclients: {llm: {base_url: 'https://a.example/v1', model: m, timeout: 5}}\n"
                   "steps: [{name: shapes-world}]\n")  # timeout_s misspelt: named, with the known names
    with pytest.raises(InputError, match=r"bad.yaml: clients.llm: unknown keys \['timeout'\] \(allowed: .*timeout_s"):
        synthesize(RecipeSpec.load(bad), tmp_path / "out", show_progress=False)
    assert not (tmp_path / "out").exists()
    bad.write_text("name: x\nsteps:\n  - {name: shapes-world, params: {t2i: ten}}\n")
    with pytest.raises(InputError, match=r"bad.yaml: steps\[0\] 'shapes-world'"):
        synthesize(RecipeSpec.load(bad), tmp_path / "out", show_progress=False)
    bad.write_text("name: x\nsteps:\n  - {name: shapes-world, params: {colour: 3}}\n")
    with pytest.raises(InputError, match=r"bad.yaml: steps\[0\].*colour"):
        synthesize(RecipeSpec.load(bad), tmp_path / "out", show_progress=False)
    bad.write_text("name: x\nsteps: [{name: shapes-wrld}]\n")
    with pytest.raises(InputError, match="Did you mean 'shapes-world'"):
        synthesize(RecipeSpec.load(bad), tmp_path / "out", show_progress=False)
    bad.write_text("name: x\nsteps: [\n")
    with pytest.raises(InputError, match=r"bad.yaml:\d+: not valid YAML"):
        RecipeSpec.load(bad)


# ----------------------------------------------------------------------------------------------
# the call cache


def _cached(server: FakeOpenAIServer, folder: Path, prices=None) -> CachedClient:
    client = OpenAICompatClient(server.base_url, "gemini-2.5-pro", max_concurrency=4, backoff_s=0)
    return CachedClient(client, KeyedLog(folder, "calls"), BlobStore(folder / "blobs"), prices)


def test_call_cache_pays_once_keeps_seeds_apart_and_does_not_cache_failures(tmp_path):
    conversations = [[{"role": "user", "content": f"hello number {i}"}] for i in range(3)]
    with FakeOpenAIServer(faults=[]) as server:
        first = _cached(server, tmp_path, {"prompt_per_1k": 1.0, "completion_per_1k": 2.0, "per_request": 0.5})
        replies = first.chat_many(conversations, seeds=[1, 2, 3])
        assert [r.text for r in replies] == [f"echo: hello number {i}" for i in range(3)]
        assert len(server.requests) == 3
        # same content and seed: from the cache, even in a new client (a new process)
        second = _cached(server, tmp_path, {"prompt_per_1k": 1.0, "completion_per_1k": 2.0, "per_request": 0.5})
        assert [r.text for r in second.chat_many(conversations, seeds=[1, 2, 3])] == [r.text for r in replies]
        assert len(server.requests) == 3
        # same content, another seed: another sample, asked again
        second.chat_many(conversations[:1], seeds=[9])
        assert len(server.requests) == 4
        # a failure is not cached: asked again next time
        server.add_faults(Fault.client_error(400))
        failed = second.chat_many([[{"role": "user", "content": "new one"}]], seeds=[1])
        assert failed[0].error and len(server.requests) == 5
        assert second.chat_many([[{"role": "user", "content": "new one"}]], seeds=[1])[0].text == "echo: new one"
        assert len(server.requests) == 6
    # accounting by hand: the fake counts words. "hello number i" = 3 prompt words, "echo: hello number i"
    # = 4 completion words -> 3/1000*1 + 4/1000*2 + 0.5 per call
    usage = second.usage()
    per_call = 3 / 1000 * 1.0 + 4 / 1000 * 2.0 + 0.5
    new_one = 2 / 1000 * 1.0 + 3 / 1000 * 2.0 + 0.5
    assert usage["dataset"]["calls"] == 5
    assert usage["dataset"]["cost_usd"] == pytest.approx(4 * per_call + new_one)
    assert usage["this_run"]["calls_sent"] == 3 and usage["this_run"]["failures"] == 1
    assert usage["this_run"]["cost_usd"] == pytest.approx(per_call + new_one)  # the 400 cost nothing


def test_an_unusable_reply_is_asked_again_and_every_attempt_is_cached(tmp_path):
    replies = iter(["", "A red circle.", "", "", ""])
    with FakeOpenAIServer(lambda body: next(replies)) as server:
        conversation = [[{"role": "user", "content": "compose a prompt"}]]
        check = lambda index, text: None if text.strip() else "empty reply"  # noqa: E731
        first = _cached(server, tmp_path).chat_many(conversation, seeds=[5], unusable=check)
        assert first[0].text == "A red circle." and len(server.requests) == 2  # attempt 0 empty, attempt 1 good
        again = _cached(server, tmp_path).chat_many(conversation, seeds=[5], unusable=check)
        assert again[0].text == "A red circle." and len(server.requests) == 2  # both attempts replayed
        # another sample that never gets a usable reply: an error after max_attempts, and a re-run
        # replays the cached attempts instead of paying again
        gave_up = _cached(server, tmp_path).chat_many(conversation, seeds=[6], unusable=check, max_attempts=3)
        assert gave_up[0].text is None and gave_up[0].error.startswith("unusable reply after 3 attempt(s): empty reply")
        assert len(server.requests) == 5
        _cached(server, tmp_path).chat_many(conversation, seeds=[6], unusable=check, max_attempts=3)
        assert len(server.requests) == 5


def test_shapes_world_backgrounds_limit_text_to_image_scenes(tmp_path):
    def recipe(**params):
        return RecipeSpec.from_dict({"name": "bg", "export": [],
                                     "steps": [{"name": "shapes-world", "params": {"t2i": 12, **params}}]})

    def backgrounds(outcome):
        return [row["scene"]["background"] for row in rows_of(outcome.folder)]

    everything = backgrounds(synthesize(recipe(), tmp_path / "all", show_progress=False))
    plain = backgrounds(synthesize(recipe(backgrounds=["grey", "beige"]), tmp_path / "plain", show_progress=False))
    assert len(set(everything)) >= 3  # 12 draws from 5 backgrounds
    assert set(plain) <= {"grey", "beige"} and len(plain) == 12
    with pytest.raises(HarnessError, match="backgrounds from"):
        synthesize(recipe(backgrounds=["tartan"]), tmp_path / "bad", show_progress=False)
