"""Complex-Edit: reply validation, measurements and their means, parity with the upstream code, data
and prompt loading, rescoring, and whole runs on the shapes world and over HTTP with faults.

Expected values come from the upstream code read at UCSC-VLAA/Complex-Edit 3502eaa (``eval.py``,
``complex_edit/eval/{alignment,quality}.py``, ``complex_edit/utils``) and, for parity, from running
it: ``tests/fixtures/complex_edit_upstream/make_fixtures.py`` served the replies of ``replies.py``
(seed in the fixture) to ``eval.py`` through a stub OpenAI server and kept its per-sample files and
final means in ``expected.json``. The ``response_format`` objects come from running the SDK of
upstream's time on upstream's models (``make_response_formats.py``).
"""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

import benchmarks.complex_edit  # noqa: F401  (registers the benchmark)
from benchmarks.complex_edit.benchmark import ComplexEdit
from benchmarks.complex_edit.data import ComplexEditData
from benchmarks.complex_edit.prompts import (COT_SUFFIX, RESPONSE_FORMATS_FILE, UPSTREAM_RESPONSE_FORMATS_HASH,
                                             format_sentence, load_prompts, response_format, response_formats_hash)
from benchmarks.complex_edit.rescore import rescore_folder, rescore_replies
from benchmarks.complex_edit.benchmark import OFFICIAL_JUDGE
from benchmarks.complex_edit.rules import (ALIGNMENT_KEYS, QUALITY_KEYS, OutOfReplies, collect, item_means,
                                           level_means, read_reply)
from harness.cli import main
from harness.errors import HarnessError, InputError
from harness.runner import evaluate, load_records
from harness.spec import ComponentSpec, RunSpec
from harness.testing.fake_openai import Fault, FakeOpenAIServer, response_format_error, schema_instance
from reports.baselines import get_published
from reports.compare import build_sections
from shapes.complex_edit_shapes import complex_edit_shapes_items, write_complex_edit_shapes
from tests.edit_world import NoiseEditor  # noqa: F401  (registers test-noise-editor)
from tests.helpers import load_script

FIXTURES = Path(__file__).parent / "fixtures" / "complex_edit_upstream"


def _generator():
    return load_script(FIXTURES / "replies.py", "complex_edit_parity_replies")


# ------------------------------------------------------------------------- reply validation
@pytest.mark.parametrize("reply, expected", [
    ('{"reasoning": "ok", "instruction_following": "7", "identity_preservation": "10"}', (7, 10)),
    ('  {"identity_preservation": "0", "reasoning": "", "instruction_following": "3", "x": [1, NaN]} \n', (3, 0)),
    ('{"reasoning": "r", "instruction_following": "\\u0038", "identity_preservation": "8"}', (8, 8)),
    ('{"reasoning": "r", "instruction_following": 7, "identity_preservation": "8"}', None),  # a number
    ('{"reasoning": "r", "instruction_following": "11", "identity_preservation": "8"}', None),
    ('{"reasoning": "r", "instruction_following": "7.0", "identity_preservation": "8"}', None),
    ('{"reasoning": 3, "instruction_following": "7", "identity_preservation": "8"}', None),  # reasoning a number
    ('{"instruction_following": "7", "identity_preservation": "8"}', None),  # CoT: reasoning required
    ('```json\n{"reasoning": "r", "instruction_following": "7", "identity_preservation": "8"}\n```', None),
    ('{"reasoning": "r", "instruction_following": "12", "instruction_following": "7", "identity_preservation": "8"}',
     (7, 8)),  # a key twice: the last counts, as pydantic reads JSON
    ('{"reasoning": "\\ud800", "instruction_following": "7", "identity_preservation": "8"}', None),  # lone surrogate
    ("", None),
])
def test_replies_are_validated_as_pydantic_validates_the_structured_output(reply, expected) -> None:
    value = read_reply(reply, ALIGNMENT_KEYS, True)
    assert (None if value is None else tuple(value[k] for k in ALIGNMENT_KEYS)) == expected


def test_quality_replies_need_no_reasoning() -> None:
    assert read_reply('{"perceptual_quality": "6", "reasoning": 4}', QUALITY_KEYS, False) == {"perceptual_quality": 6}


# ---------------------------------------------------------------------------- measurements
def test_harness_asks_one_reply_per_call_and_asks_an_invalid_one_again() -> None:
    good = '{"perceptual_quality": "%d"}'
    found = collect([good % 4, "oops", good % 8, good % 9], QUALITY_KEYS, False, 3)
    assert [run["perceptual_quality"] for run in found.runs] == [4, 8, 9] and found.invalid == ["oops"]
    assert found.means() == {"perceptual_quality": 7.0}
    with pytest.raises(OutOfReplies):
        collect([good % 4], QUALITY_KEYS, False, 2)


def test_upstream_calls_are_thrown_away_whole_and_an_empty_reply_restarts_the_item() -> None:
    good = '{"perceptual_quality": "%d"}'
    # n=4, m=2: call 1 fails on "bad" (its good reply is thrown away too), then passes
    stream = [good % 1, "bad", good % 2, good % 3, good % 4, good % 5]
    assert [r["perceptual_quality"] for r in collect(stream, QUALITY_KEYS, False, 4, 2, upstream=True).runs] == [2, 3, 4, 5]
    # an empty reply is not validated by the SDK: its call passes, then the item starts over
    restart = [good % 1, "", good % 2, good % 3, good % 6, good % 6, good % 6, good % 6]
    assert collect(restart, QUALITY_KEYS, False, 4, 2, upstream=True).means() == {"perceptual_quality": 6.0}


def test_item_and_level_means_by_hand() -> None:
    item = item_means({"instruction_following": 8.0, "identity_preservation": 6.5}, {"perceptual_quality": 9.0})
    assert item["overall"] == (8.0 + 6.5 + 9.0) / 3
    level = level_means([item, item_means({"instruction_following": 2, "identity_preservation": 4},
                                          {"perceptual_quality": 3})])
    assert level["instruction_following"] == 5.0 and level["overall"] == (item["overall"] + 3.0) / 2


def test_gpt_image_edit_published_numbers_are_the_mean_of_their_metrics() -> None:
    ours = get_published("gpt-image-edit").scores["complex_edit"]
    assert round(sum(ours["metrics"].values()) / 3, 2) == ours["overall"] == 8.78
    assert get_published("gpt-image-edit").setup["complex_edit"]["judge_models"] == "gpt-4o-2024-11-20"


# -------------------------------------------------------------------------- parity (upstream)
@pytest.fixture(scope="module")
def parity():
    expected = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
    return expected, _generator().make_levels(expected["seed"])


def test_parity_replies_consumed_validated_and_averaged_as_upstream(parity) -> None:
    """Random replies (odd but valid forms, rejected forms that throw a call away, empty replies that
    restart an item), n=20 m=5 and n=2 m=5: per-sample and final means equal upstream's, bit for bit."""
    expected, levels = parity
    for level, upstream in zip(levels, expected["levels"]):
        items = []
        for item in level["items"]:
            alignment = collect(item["alignment"], ALIGNMENT_KEYS, True, level["n"], level["m"], upstream=True)
            quality = collect(item["quality"], QUALITY_KEYS, False, level["n"], level["m"], upstream=True)
            stored = json.loads(upstream["files"]["alignment_rubric_cot"][f"{item['name']}.json"])
            assert alignment.runs == stored["runs"]
            assert alignment.means() == {k: stored[k] for k in ALIGNMENT_KEYS}
            stored_q = json.loads(upstream["files"]["quality_rubric"][f"{item['name']}.json"])
            assert quality.means() == {"perceptual_quality": stored_q["perceptual_quality"]}
            items.append(item_means(alignment.means(), quality.means()))
        assert level_means(items) == upstream["finals"]["Final overall"], upstream["folder"]
        assert {k: level_means(items)[k] for k in ALIGNMENT_KEYS} == upstream["finals"]["Final alignment"]


def test_parity_rescore_of_upstream_files(parity, tmp_path, capsys) -> None:
    expected, _ = parity
    folders = []
    for upstream in expected["levels"]:
        folder = tmp_path / upstream["folder"]
        for sub, files in upstream["files"].items():
            (folder / sub).mkdir(parents=True)
            for name, text in files.items():
                (folder / sub / name).write_text(text, encoding="utf-8")
        summary = rescore_folder(folder)
        assert {k: summary[k] for k in upstream["finals"]["Final overall"]} == upstream["finals"]["Final overall"]
        folders.append(str(folder))
    assert main(["rescore", "complex_edit", *folders]) == 0
    out = capsys.readouterr().out
    last = json.loads(out.strip().splitlines()[-1])
    assert last["overall"] == expected["levels"][0]["finals"]["Final overall"]["overall"]
    assert set(last["levels"]) == {"C8 real", "C3 syn"} and "C3 syn: IF" in out


# ----------------------------------------------------------------------------- data, prompts
def test_data_splits_levels_and_edit_as_json_text(tmp_path) -> None:
    folder = write_complex_edit_shapes(tmp_path / "ce", items=3)
    real = ComplexEditData(folder, "real")
    items = complex_edit_shapes_items(3, 0, "real")
    assert [i.instructions[7] for i in real.items] == [item.compound(8) for item in items]
    assert real.items[0].instructions[0] + " Then " in real.items[0].instructions[1]
    image = io.BytesIO()
    Image.new("RGB", (8, 8)).save(image, format="PNG")
    edit = json.dumps({"compound": [{"compound_instruction": f"level {c}."} for c in range(1, 9)]})
    pq.write_table(pa.table({"image": [{"bytes": image.getvalue(), "path": "a.png"}], "edit": [edit]}),
                   tmp_path / "test_syn-00000.parquet")
    assert ComplexEditData(tmp_path / "test_syn-00000.parquet", "syn").items[0].instructions[2] == "level 3."
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="split 'test_real'"):
        ComplexEditData(tmp_path / "empty", "real")
    (tmp_path / "bad").mkdir()
    pq.write_table(pa.table({"image": [{"bytes": image.getvalue(), "path": "a.png"}],
                             "edit": [json.dumps({"compound": [{"compound_instruction": "x."}]})]}),
                   tmp_path / "bad" / "test_real-0.parquet")
    with pytest.raises(InputError, match="must list 8 levels"):
        ComplexEditData(tmp_path / "bad", "real")


def test_prompts_are_read_from_a_checkout_and_assembled_as_eval_py(tmp_path) -> None:
    folder = write_complex_edit_shapes(tmp_path / "ce", items=1)
    prompts = load_prompts(folder)
    assert prompts.alignment_system.endswith(COT_SUFFIX) and prompts.release.startswith("unknown")
    with pytest.raises(InputError, match="prompt_alignment.py not found"):
        load_prompts(tmp_path)
    bench = ComplexEdit(str(folder), str(folder), complexity=2)
    assert bench.requests(0)[0].prompt == bench.data.items[0].instructions[1]
    assert any("not upstream's" in r for r in ComplexEdit.departures_from_official(bench.protocol))
    assert "Reply with one JSON object" in format_sentence(ALIGNMENT_KEYS, True)
    with pytest.raises(HarnessError, match="complexity 9"):
        ComplexEdit(str(folder), str(folder), complexity=9)


# ------------------------------------------------------------------------------ whole runs
@pytest.fixture(scope="module")
def shapes_data(tmp_path_factory) -> Path:
    return write_complex_edit_shapes(tmp_path_factory.mktemp("ce") / "data", items=4)


def _spec(data: Path, model: str, judge: ComponentSpec, **params) -> RunSpec:
    return RunSpec(benchmark=ComponentSpec("complex_edit", {"data": str(data), "prompts": str(data), **params}),
                   model=ComponentSpec(model), judges={"judge": judge})


def test_shapes_world_correct_editor_tops_noise_bottoms_and_files_rescore(shapes_data, tmp_path, capsys) -> None:
    run = tmp_path / "editor"
    summary = evaluate(_spec(shapes_data, "shapes-editor", ComponentSpec("shapes-complex-edit-judge")), run,
                       show_progress=False).summary
    assert summary.scores["overall"] == 10.0 and summary.scores["metrics"]["identity_preservation"] == 10.0
    assert summary.scores["level"] == "C8" and summary.counts == {"items": 4, "scored": 4, "judge_failed": 0,
                                                                  "invalid_replies": 0}
    noise = evaluate(_spec(shapes_data, "test-noise-editor", ComponentSpec("shapes-complex-edit-judge"),
                           image_type="syn", complexity=4), tmp_path / "noise", show_progress=False).summary
    assert noise.scores["overall"] == pytest.approx(1 / 3) and noise.scores["instruction_following"] == 0.0
    folder = run / "complexity_8_real"
    assert json.loads((folder / "overall" / "final_result.json").read_text())["overall"] == 10.0
    record = json.loads((folder / "alignment_rubric_cot" / "00000.json").read_text())
    assert len(record["runs"]) == 20 and set(record["runs"][0]) == {"reasoning", *ALIGNMENT_KEYS}
    for rescored in (rescore_folder(folder), rescore_replies(folder / "judge_replies.jsonl")):
        assert rescored["overall"] == summary.scores["overall"]
    section = build_sections([run], get_published("gpt-image-edit"))[0]
    assert any("judged by shapes-complex-edit-judge" in reason for reason in section.not_comparable)
    assert not any("no structured output" in reason for reason in section.not_comparable)  # structured by default


# ------------------------------------------------------------------------------- over HTTP
JUDGE = "gpt-4o-2024-11-20"


def test_http_judge_with_faults_failures_are_never_scores_nor_cached(shapes_data, tmp_path) -> None:
    items = complex_edit_shapes_items(4, 0, "real")
    dead, flaky = items[0].compound(8), items[1].compound(8)
    state = {"flaky": 0}

    def responder(body):
        user = body["messages"][1]["content"]
        if sum(part["type"] == "image_url" for part in user) == 1:  # the quality call shows one image
            return '{"perceptual_quality": "9"}'
        if dead in user[-1]["text"]:
            return Fault.server_error(503)
        if flaky in user[-1]["text"] and state["flaky"] < 3:
            state["flaky"] += 1
            return "```json\n{\"instruction_following\": \"7\"}\n```"  # invalid: asked again
        return json.dumps({"reasoning": "fine", "instruction_following": "8", "identity_preservation": "6"})

    params = {"model": JUDGE, "api_key_env": "CE_TEST_UNSET_KEY", "temperature": 1.0, "max_tokens": 512,
              "image_detail": "high", "max_retries": 1, "max_concurrency": 2, "timeout_s": 5.0, "backoff_s": 0.01,
              "backoff_max_s": 0.02}
    with FakeOpenAIServer(responder, faults=[Fault.malformed_json()], served_model=JUDGE) as server:
        spec = _spec(shapes_data, "shapes-editor", ComponentSpec("openai-compatible", {
            "base_url": server.base_url, **params}), measurements=3)
        summary = evaluate(spec, tmp_path / "run", show_progress=False).summary
        bodies = [request.body for request in server.requests]
        assert summary.counts["judge_failed"] == 1 and summary.counts["scored"] == 3
        assert summary.counts["invalid_replies"] == 3
        assert summary.scores["overall"] == pytest.approx((8 + 6 + 9) / 3)
        records = {r.sample_id: r for r in load_records(tmp_path / "run")}
        assert records["00000"].judge_failed and "HTTP 503" in records["00000"].failure
        assert len(records["00001"].verdict["replies"]["alignment"]) == 3 + 3  # 3 invalid, 3 kept
        alignment = next(b for b in bodies if b and len(b["messages"][1]["content"]) == 3)
        assert alignment["temperature"] == 1.0 and alignment["max_tokens"] == 512
        parts = alignment["messages"][1]["content"]
        assert [p["type"] for p in parts] == ["image_url", "image_url", "text"]  # images, then the template
        assert all(p["image_url"]["detail"] == "high" for p in parts[:2])
        prompts = load_prompts(shapes_data)
        assert alignment["messages"][0]["content"] == prompts.alignment_system  # upstream's text, nothing added
        shown = Image.open(io.BytesIO(base64.b64decode(parts[1]["image_url"]["url"].split(",", 1)[1])))
        assert shown.size == (128, 128)
        quality = next(b for b in bodies if b and len(b["messages"][1]["content"]) == 1)
        assert [p["type"] for p in quality["messages"][1]["content"]] == ["image_url"]  # no empty text part
        assert quality["messages"][0]["content"] == prompts.quality_system
        # every call carries its type's response_format, byte for byte as eval.py's SDK sends it
        for body in bodies:
            kind = "alignment" if len(body["messages"][1]["content"]) == 3 else "quality"
            assert json.dumps(body["response_format"]) == json.dumps(response_format(kind))
        # a second run asks only about the failed item: no failure was kept as a verdict
        again = evaluate(spec, tmp_path / "run", show_progress=False)
        assert again.generated == 0 and again.judged == 1 and again.summary.counts["judge_failed"] == 1


def test_an_always_invalid_judge_is_a_failure_after_max_invalid(shapes_data, tmp_path) -> None:
    with FakeOpenAIServer(lambda body: "no JSON here", served_model=JUDGE) as server:
        spec = _spec(shapes_data, "shapes-editor", ComponentSpec("openai-compatible", {
            "base_url": server.base_url, "model": JUDGE, "api_key_env": "CE_TEST_UNSET_KEY", "max_retries": 0}),
            measurements=2, max_invalid=1)
        summary = evaluate(spec, tmp_path / "run", show_progress=False).summary
    assert summary.counts["judge_failed"] == 4 and summary.scores["overall"] is None
    assert "max_invalid 1" in load_records(tmp_path / "run")[0].failure


def test_structured_replies_from_the_sent_schema_validate_and_json_in_prompt_sends_none(shapes_data, tmp_path) -> None:
    """A server that answers from the request's schema (as structured outputs do) gives replies the
    benchmark accepts; json_in_prompt sends no response_format, says the keys, and is a departure."""
    def responder(body):
        fmt = body.get("response_format")
        if fmt is None:  # json_in_prompt: the keys the sentence names
            quality = len(body["messages"][1]["content"]) == 1
            return json.dumps({"perceptual_quality": "4"} if quality else
                              {"reasoning": "r", "instruction_following": "4", "identity_preservation": "4"})
        return json.dumps(schema_instance(fmt["json_schema"]["schema"], lambda options: options[7]))

    params = {"model": JUDGE, "api_key_env": "CE_TEST_UNSET_KEY", "temperature": 1.0, "max_tokens": 512,
              "image_detail": "high", "max_retries": 0}
    runs = {}
    with FakeOpenAIServer(responder, served_model=JUDGE) as server:
        for reply_format in ("structured", "json_in_prompt"):
            sent = len(server.requests)
            spec = _spec(shapes_data, "shapes-editor", ComponentSpec("openai-compatible", {
                "base_url": server.base_url, **params}), measurements=2, reply_format=reply_format)
            summary = evaluate(spec, tmp_path / reply_format, show_progress=False).summary
            runs[reply_format] = (summary, [r.body for r in server.requests[sent:]])
    structured, bodies = runs["structured"]
    assert structured.scores["overall"] == 7.0 and structured.counts["invalid_replies"] == 0
    assert len(bodies) == 4 * 2 * 2 and all(body["response_format"]["type"] == "json_schema" for body in bodies)
    plain, bodies = runs["json_in_prompt"]
    assert plain.scores["overall"] == 4.0 and not any("response_format" in body for body in bodies)
    alignment = next(b for b in bodies if len(b["messages"][1]["content"]) == 3)
    assert alignment["messages"][0]["content"].endswith(format_sentence(ALIGNMENT_KEYS, True))
    quality = next(b for b in bodies if len(b["messages"][1]["content"]) == 1)
    assert quality["messages"][0]["content"].endswith(format_sentence(QUALITY_KEYS, False))
    published = get_published("gpt-image-edit")
    reasons = {name: build_sections([tmp_path / name], published)[0].not_comparable for name in runs}
    assert not any("no structured output" in r for r in reasons["structured"])
    assert any("no structured output (response_format) requested; reply format: json_in_prompt" in r
               for r in reasons["json_in_prompt"])


def test_stored_response_formats_are_upstreams_and_agree_with_the_reply_rules() -> None:
    stored = json.loads(RESPONSE_FORMATS_FILE.read_text(encoding="utf-8"))
    assert response_formats_hash() == UPSTREAM_RESPONSE_FORMATS_HASH
    assert stored["sdk"]["openai"] == "1.75.0" and "make_response_formats.py" in stored["about"]
    model, decoding = OFFICIAL_JUDGE
    assert stored["request"] == {"model": model, "max_completion_tokens": decoding["max_tokens"], "n": 5,
                                 "stream": False, "temperature": decoding["temperature"]}
    literals = [str(value) for value in range(11)]
    for kind, name, keys, reasoning in (("alignment", "CoTAlignment", ALIGNMENT_KEYS, True),
                                        ("quality", "PerceptualQuality", QUALITY_KEYS, False)):
        fmt = response_format(kind)
        assert fmt == stored[kind] and response_format_error(fmt) is None
        assert list(fmt) == ["type", "json_schema"] and fmt["json_schema"]["name"] == name
        assert fmt["json_schema"]["strict"] is True
        schema = fmt["json_schema"]["schema"]
        assert schema["required"] == (["reasoning"] if reasoning else []) + list(keys)
        assert schema["additionalProperties"] is False and schema["title"] == name
        assert all(schema["properties"][key]["enum"] == literals for key in keys)
        # every reply the schema allows is one the rules accept, with the same scores
        for value in literals:
            reply = json.dumps(schema_instance(schema, lambda options, value=value: value))
            assert read_reply(reply, keys, reasoning) == dict.fromkeys(keys, int(value))


def test_departures() -> None:
    protocol = {"complexity": 8, "split": "test_real", "judge_prompts_release": "UCSC-VLAA/Complex-Edit 3502eaa",
                "reply_format": "structured", "response_formats": f"... ({response_formats_hash()})",
                "judges": {"judge": {"name": "openai-compatible", "params": {
                    "model": JUDGE, "temperature": 1.0, "max_tokens": 512, "image_detail": "high"}}}}
    assert ComplexEdit.departures_from_official(protocol) == []
    assert ComplexEdit.departures_from_official({**protocol, "reply_format": "json_in_prompt"}) == [
        "no structured output (response_format) requested; reply format: json_in_prompt"]
    assert "not the ones eval.py's SDK sends" in ComplexEdit.departures_from_official(
        {**protocol, "response_formats": "edited (0123456789abcdef)"})[0]
    reasons = ComplexEdit.departures_from_official({**protocol, "complexity": 3, "judges": {"judge": {
        "name": "openai-compatible", "params": {"model": JUDGE}}}})
    assert any("C3 test_real" in r for r in reasons) and any("eval.py sends" in r for r in reasons)
