"""GEdit-Bench: VIEScore reply parsing and re-asks, the official averages, parity with the upstream
code, data loading, rescoring, and whole runs on the shapes world and over HTTP with faults.

Expected values come from the upstream code read at stepfun-ai/Step1X-Edit e78b811
(``GEdit-Bench/viescore/utils.py``, ``viescore/__init__.py``, ``test_gedit_score.py``,
``calculate_statistics.py``) and, for parity, from running that code itself:
``tests/fixtures/gedit_upstream/make_fixtures.py`` fed the replies of ``replies.py`` (seed in the
fixture) to it through a stub judge and kept its CSVs and averages in ``expected.json``.
"""
from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

import benchmarks.gedit  # noqa: F401  (registers the benchmark)
from benchmarks.gedit.benchmark import GEdit
from benchmarks.gedit.data import TASK_TYPES, GEditData, calculate_dimensions
from benchmarks.gedit.parsing import fix_json, parse_reply
from benchmarks.gedit.prompts import as_sent_by_gpt4o, pq_text, sc_text, vie_prompts
from benchmarks.gedit.rescore import rescore, rescore_csv, rescore_replies
from benchmarks.gedit.results import write_replies
from benchmarks.gedit.rules import Judging, Row, averages, replay
from harness.cli import main
from harness.errors import HarnessError, InputError
from harness.runner import evaluate, load_records
from harness.spec import ComponentSpec, RunSpec
from harness.testing.fake_openai import Fault, FakeOpenAIServer
from reports.baselines import get_published
from reports.compare import build_sections
from shapes.gedit_shapes import gedit_shapes_items, write_gedit_shapes
from tests.edit_world import NoiseEditor  # noqa: F401  (registers test-noise-editor)
from tests.helpers import load_script

FIXTURES = Path(__file__).parent / "fixtures" / "gedit_upstream"


def _generator():
    return load_script(FIXTURES / "replies.py", "gedit_parity_replies")


# ------------------------------------------------------------------------------- reply parsing
@pytest.mark.parametrize("reply, give_up, kind, score", [
    ('||V^=^V||\n{\n"score" : [5, 10],\n"reasoning" : "ok"\n}\n||V^=^V||', False, "value", [5, 10]),
    ('Sure! {"score": [7, 3], "reasoning": "x"} Done.', False, "value", [7, 3]),
    ('```json\n{"score": 6, "reasoning": "x"}\n```', False, "value", [6]),  # a scalar is wrapped
    ("[6, 0]", False, "value", [6, 0]),  # two numbers and nothing else: the list path
    ("[6,0]", False, "value", [6, 0]),
    ("[6, 0, 1]", False, "unparsed", None),  # the list path takes exactly two numbers
    (" 7\n", False, "value", [7]),  # int(reply) in 0..10
    ("11", False, "unparsed", None),
    ("{score: 7, reasoning: fine}", False, "value", [7]),  # fix_json quotes keys, wraps the number
    ('{"score": [7, 8', False, "unparsed", None),  # no closing brace: not JSON, no list
    ('{"score": [7, 8', True, "guess", None),  # ... and on a re-ask upstream would guess
    ("[6, 0]", True, "guess", None),  # the re-ask's guess comes before the list path
    ("I cannot rate this.", True, "guess", None),
    ('{"score": [7, 8}', True, "unparsed", None),  # braces present: no guess, asked again
    ("rate_limit_exceeded", False, "rate_limit", None),
    ("[٣, 4]", False, "crash", None),  # \d matches an Arabic-Indic digit, json.loads does not
    ('{"score": [1,\n2], "reasoning": "a\nb"}', False, "value", [1, 2]),  # newlines removed first
])
def test_replies_parse_as_mllm_output_to_dict(reply, give_up, kind, score) -> None:
    parsed = parse_reply(reply, give_up)
    assert parsed.kind == kind
    if score is not None:
        assert parsed.value["score"] == score


def test_fix_json_by_hand() -> None:
    assert fix_json('{score: 7, reasoning: fine}') == '{"score": [7], "reasoning": "fine"}'
    # a dict without "score" after fixing is returned as it is: evaluate fails on it later
    assert parse_reply("{reasoning: none}").value == {"reasoning": "none"}


def test_an_unparsed_reply_asks_both_prompts_again_and_the_second_pair_counts() -> None:
    judging = Judging()
    assert judging.feed("no idea", '{"score": [9, 9]}') == "ask"  # the good PQ is discarded too
    assert judging.feed('{"score": [6, 8]}', '{"score": [4, 7]}') == "done"
    assert judging.scores == (6, 4, math.sqrt(24))
    assert [call["attempt"] for call in judging.calls] == [1, 2]


def test_failed_evaluations_start_again_and_caps_end_in_a_failure_never_a_score() -> None:
    judging = Judging()
    assert judging.feed('{"score": [-2, 5]}', '{"score": [6, 7]}') == "ask"  # sqrt of a negative product
    assert judging.feed('{"score": []}', '{"score": [6]}') == "ask"  # min of an empty list
    assert judging.feed('{"score": [8, 9]}', "rate_limit_exceeded") == "failed"  # the third round
    assert judging.scores is None and "3 rounds failed" in judging.failure
    guess = Judging()
    assert guess.feed("", "") == "ask"
    assert guess.feed("", '{"score": [5, 5]}') == "failed"
    assert "random score" in guess.failure and guess.scores is None
    stubborn = replay([('{"score": [7, 8}', '{this is not json}')] * 5)
    assert stubborn.failure.startswith("no parsable reply pair in 3 attempts")
    assert replay([]).failure.startswith("incomplete")


# ---------------------------------------------------------------------------------- averages
def test_averages_by_hand() -> None:
    rows = [Row("color_alter", 8, 2, True, "en"), Row("color_alter", 6, 6, False, "en"),
            Row("subject-add", 9, 4, True, "en"), Row("subject-add", 1, 1, True, "cn")]
    result = averages(rows, "en", TASK_TYPES)
    color = result["full"]["types"]["color_alter"]
    assert (color["semantics"], color["quality"], color["overall"]) == (7.0, 4.0, (4.0 + 6.0) / 2)
    assert result["full"]["types"]["subject-add"]["overall"] == 6.0
    assert result["full"]["overall"] == pytest.approx((5.0 + 6.0) / 2) and result["full"]["types_scored"] == 2
    assert result["intersection"]["types"]["color_alter"]["items"] == 1
    assert averages(rows, "cn", TASK_TYPES)["full"]["overall"] == 1.0


def test_averages_sum_as_numpy_does() -> None:
    """np.mean sums pairwise (eight accumulators below 128 values), so the harness uses it too."""
    values = [0.1 * i + 1 / 3 for i in range(11)]
    rows = [Row(name, v, v, True, "en") for name, v in zip(TASK_TYPES, values)]
    assert averages(rows, "en", TASK_TYPES)["full"]["semantics"] == float(np.mean(values))


def test_calculate_dimensions_as_generate_image_example() -> None:
    assert calculate_dimensions(512 * 512, 1.0) == (512, 512)
    assert calculate_dimensions(512 * 512, 4 / 3) == (608, 448)  # 576 x 448 < 512^2, so 32 wider


# -------------------------------------------------------------------------- parity (upstream)
@pytest.fixture(scope="module")
def parity():
    expected = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
    items = _generator().make_items(expected["seed"])
    return expected, items


def _compare(upstream: dict, mine: dict) -> None:
    for key in ("overall", "semantics", "quality"):
        assert mine[key] == upstream[key], key
    for name, values in upstream["types"].items():
        assert mine["types"][name] == values["overall"], name
        assert mine["types_semantics"][name] == values["semantics"], name
        assert mine["types_quality"][name] == values["quality"], name


@pytest.mark.parametrize("language", ["en", "cn"])
def test_parity_replies_parsed_and_averaged_as_upstream(parity, tmp_path, language) -> None:
    """The same random replies (odd formats, re-asks, failed evaluations, items upstream leaves
    out) give the numbers upstream computed, to the last bit, per type and overall, full set and
    intersection."""
    expected, items = parity
    replies = tmp_path / "vie_replies.jsonl"
    write_replies(replies, [{"sample_id": f"{i['task_type']}/{i['instruction_language']}/{i['key']}",
                             "task_type": i["task_type"], "instruction_language": i["instruction_language"],
                             "intersection_exist": i["Intersection_exist"],
                             "calls": [{"sc": sc, "pq": pq} for sc, pq in zip(i["sc"], i["pq"])]} for i in items])
    summary = rescore_replies(replies, language)
    _compare(expected["stats"][language]["full"], summary)
    _compare(expected["stats"][language]["intersection"], summary["intersection"])
    upstream_rows = "".join(expected["csv"].values()).count(f",{language}\r\n")
    assert summary["scored"] == upstream_rows and summary["judge_failed"] > 0  # the same items left out


def test_parity_item_scores_match_upstream_csv_rows(parity) -> None:
    import csv

    expected, items = parity
    upstream = {row["instruction"]: (row["sementics_score"], row["quality_score"])
                for text in expected["csv"].values() for row in csv.DictReader(io.StringIO(text))}
    for item in items:
        judging = replay(list(zip(item["sc"], item["pq"])))
        mine = None if judging.scores is None else tuple(str(v) for v in judging.scores[:2])
        assert mine == upstream.get(item["instruction"]), (item["scenario"], item["instruction"])


@pytest.mark.parametrize("language", ["en", "cn"])
def test_parity_rescore_of_upstream_csvs(parity, tmp_path, language, capsys) -> None:
    expected, _ = parity
    folder = tmp_path / "parity" / "gpt4o" / "eval_results_new"
    folder.mkdir(parents=True)
    for name, text in expected["csv"].items():
        (folder / f"{expected['model']}_{name}_gpt_score.csv").write_bytes(text.encode("utf-8"))
    summary = rescore_csv(tmp_path / "parity", language)
    _compare(expected["stats"][language]["full"], summary)
    _compare(expected["stats"][language]["intersection"], summary["intersection"])
    assert main(["rescore", "gedit", str(folder), "--language", language]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["overall"] == expected["stats"][language]["full"]["overall"]
    assert last["intersection"]["types"] == {k: v["overall"] for k, v in
                                             expected["stats"][language]["intersection"]["types"].items()}


def test_rescore_errors_name_the_file(tmp_path, capsys) -> None:
    folder = tmp_path / "eval_results_new"
    folder.mkdir()
    header = "source_image,edited_image,instruction,sementics_score,quality_score,intersection_exist,instruction_language\r\n"
    (folder / "m_background_change_gpt_score.csv").write_text(header + "a,b,c,7,8,True,en\r\n")
    assert main(["rescore", "gedit", str(folder)]) == 2
    assert "m_color_alter_gpt_score.csv is missing" in capsys.readouterr().err
    for name in TASK_TYPES[1:]:
        (folder / f"m_{name}_gpt_score.csv").write_text(header)
    (folder / "m_tone_transfer_gpt_score.csv").write_text(header + "a,b,c,7,8,maybe,en\r\n")
    with pytest.raises(InputError, match="m_tone_transfer_gpt_score.csv:2: intersection_exist 'maybe'"):
        rescore_csv(folder)
    (folder / "m_tone_transfer_gpt_score.csv").write_text(header)
    summary = rescore_csv(folder)  # one type has rows: upstream prints nan for the others
    assert summary["types"] == {"background_change": math.sqrt(56)} and summary["types_scored"] == 1
    with pytest.raises(InputError, match="'zh'"):
        rescore_csv(folder, "zh")


# ---------------------------------------------------------------------------------------- data
def _cn_parquet(path: Path) -> Path:
    """Two rows per key, EN and CN, as the release has them; one key repeated within a type."""
    image = io.BytesIO()
    Image.new("RGB", (20, 10), (10, 20, 30)).save(image, format="PNG")
    cell = {"bytes": image.getvalue(), "path": "x.png"}
    rows = [("subject-add", "k1", "Add a cat.", "en", True), ("subject-add", "k1", "添加一只猫。", "cn", True),
            ("tone_transfer", "k2", "Make it warm.", "en", False), ("tone_transfer", "k2", "暖色调。", "cn", False),
            ("tone_transfer", "k2", "Make it warmer.", "en", True)]
    table = pa.table({"task_type": [r[0] for r in rows], "key": [r[1] for r in rows],
                      "instruction": [r[2] for r in rows], "instruction_language": [r[3] for r in rows],
                      "input_image": [cell] * len(rows), "input_image_raw": [cell] * len(rows),
                      "Intersection_exist": [r[4] for r in rows]})
    path.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path / "train-00000-of-00001.parquet", row_group_size=2)
    return path


def test_data_languages_subsets_and_duplicate_keys(tmp_path) -> None:
    data = GEditData(_cn_parquet(tmp_path / "data"))
    assert [i.sample_id for i in data.select("en", "full")] == ["subject-add/en/k1", "tone_transfer/en/k2",
                                                                "tone_transfer/en/k2__2"]
    assert [i.instruction for i in data.select("cn", "intersection")] == ["添加一只猫。"]
    assert data.duplicates == 1
    assert data.image(data.items[4], "input_image").size == (20, 10)  # the third row group, read on demand
    bench = GEdit(str(tmp_path / "data"), language="cn")
    assert bench.protocol["items"] == 2 and bench.protocol["items_per_type"] == {"subject-add": 1, "tone_transfer": 1}
    with pytest.raises(HarnessError, match="language 'zh'"):
        GEdit(str(tmp_path / "data"), language="zh")


def test_data_errors_name_the_file(tmp_path) -> None:
    pq.write_table(pa.table({"task_type": ["x"]}), tmp_path / "bad.parquet")
    with pytest.raises(InputError, match="lacks column"):
        GEditData(tmp_path / "bad.parquet")
    with pytest.raises(InputError, match="dataset not found"):
        GEditData(tmp_path / "nowhere")


def test_model_input_is_the_raw_image_resized_as_upstream(tmp_path) -> None:
    folder = write_gedit_shapes(tmp_path / "d", items=2)
    bench = GEdit(str(folder))
    request = bench.requests(0)[0]
    raw = bench.data.image(bench.items[0], "input_image_raw")
    assert raw.size == (384, 384) and request.images[0].load().size == (512, 512)
    assert request.prompt == bench.items[0].instruction


# ------------------------------------------------------------------------------ whole runs
@pytest.fixture(scope="module")
def shapes_data(tmp_path_factory) -> Path:
    return write_gedit_shapes(tmp_path_factory.mktemp("gedit") / "data", items=10)


def _spec(data: Path, model: str, judge: ComponentSpec, **params) -> RunSpec:
    return RunSpec(benchmark=ComponentSpec("gedit", {"data": str(data), **params}), model=ComponentSpec(model),
                   judges={"judge": judge})


def test_shapes_world_correct_editor_tops_noise_bottoms_and_files_rescore(shapes_data, tmp_path, capsys) -> None:
    run = tmp_path / "editor"
    summary = evaluate(_spec(shapes_data, "shapes-editor", ComponentSpec("shapes-gedit-judge")), run,
                       show_progress=False).summary
    assert summary.scores["overall"] == 10.0 and summary.counts["types_scored"] == 5
    assert set(summary.scores["types"]) == {"background_change", "color_alter", "subject-add", "subject-remove",
                                            "subject-replace"}
    assert summary.scores["intersection"]["overall"] == 10.0
    noise = evaluate(_spec(shapes_data, "test-noise-editor", ComponentSpec("shapes-gedit-judge")), tmp_path / "noise",
                     show_progress=False).summary
    assert noise.scores["overall"] == 0.0 and noise.scores["quality"] == 1.0
    folder = run / "gpt4o" / "eval_results_new"
    assert sorted(p.name for p in folder.glob("*.csv"))[:2] == ["run_background_change_gpt_score.csv",
                                                               "run_color_alter_gpt_score.csv"]
    csv_text = (folder / "run_subject-add_gpt_score.csv").read_bytes().decode()
    assert csv_text.startswith("source_image,edited_image,instruction,sementics_score,quality_score,"
                               "intersection_exist,instruction_language\r\n")
    assert (folder / "run_text_change_gpt_score.csv").read_text().count("\n") == 1  # header only
    for rescored in (rescore(folder), rescore(folder / "vie_replies.jsonl"), rescore(run)):
        assert rescored["overall"] == summary.scores["overall"] and rescored["types"] == summary.scores["types"]
    capsys.readouterr()
    assert main(["rescore", "gedit", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "only 5 of 11 edit types scored" in out and "Average: 10.000, 10.000, 10.000" in out
    # a run judged by the shapes judge is not comparable with GPT-4.1's published numbers
    section = build_sections([run], get_published("gpt-image-edit"))[0]
    assert any("judged by shapes-gedit-judge" in reason for reason in section.not_comparable)
    assert any("not a model behind the openai-compatible judge" in r for r in section.not_comparable)


# ------------------------------------------------------------------------------- over HTTP
JUDGE = "gpt-4.1-2025-04-14"


def _http_judge(server: FakeOpenAIServer) -> ComponentSpec:
    return ComponentSpec("openai-compatible", {
        "base_url": server.base_url, "model": JUDGE, "api_key_env": "GEDIT_TEST_UNSET_KEY", "temperature": None,
        "max_tokens": 1400, "max_retries": 1, "max_concurrency": 1, "timeout_s": 5.0, "backoff_s": 0.01,
        "backoff_max_s": 0.02})


def test_http_judge_with_faults_failures_are_never_scores_nor_cached(shapes_data, tmp_path) -> None:
    from collections import Counter

    counts = Counter(item.instruction for item in gedit_shapes_items(10))
    dead, garbled, reasked = sorted(text for text, count in counts.items() if count == 1)[:3]
    state = {"reasked": 0}

    def responder(body):
        content = body["messages"][0]["content"]
        text = content[0]["text"]
        if "Editing instruction:" not in text:
            return '{"score": [9, 8], "reasoning": "natural"}'
        instruction = text.rsplit("Editing instruction: ", 1)[1].strip()
        if instruction == dead:
            return Fault.server_error(503)
        if instruction == garbled:
            return ""  # empty every time: re-asked, then a would-be guess -> a judge failure
        if instruction == reasked and state["reasked"] == 0:
            state["reasked"] += 1
            return "I am not sure."
        return '||V^=^V||\n{"score": [10, 6], "reasoning": "done"}\n||V^=^V||'

    with FakeOpenAIServer(responder, faults=[Fault.server_error(500)], served_model=JUDGE) as server:
        spec = _spec(shapes_data, "shapes-editor", _http_judge(server))
        summary = evaluate(spec, tmp_path / "run", show_progress=False).summary
        bodies = [request.body for request in server.requests]
        assert summary.counts["judge_failed"] == 2 and summary.counts["scored"] == 8
        assert summary.counts["reasked"] >= 2
        assert summary.scores["overall"] == pytest.approx(math.sqrt(6 * 8))  # min(10, 6) x min(9, 8)
        records = {r.verdict["instruction"]: r for r in load_records(tmp_path / "run")}
        assert records[dead].judge_failed and "HTTP 503" in records[dead].failure and records[dead].score is None
        assert records[garbled].judge_failed and "random score" in records[garbled].failure
        assert [c["sc"] for c in records[reasked].verdict["calls"]][0] == "I am not sure."
        assert not records[reasked].judge_failed and len(records[reasked].verdict["calls"]) == 2
        # the call as upstream makes it: text first, then the JPEG-decoded images; decoding as sent
        first = next(b for b in bodies if "Editing instruction:" in b["messages"][0]["content"][0]["text"])
        assert "temperature" not in first and first["max_tokens"] == 1400 and first["model"] == JUDGE
        parts = first["messages"][0]["content"]
        assert [p["type"] for p in parts] == ["text", "image_url", "image_url"]
        instruction = parts[0]["text"].rsplit("Editing instruction: ", 1)[1].strip()
        assert parts[0]["text"] == sc_text(instruction)
        sent = Image.open(io.BytesIO(base64.b64decode(parts[1]["image_url"]["url"].split(",", 1)[1])))
        bench = GEdit(str(shapes_data))
        original = bench.data.image(next(i for i in bench.items if i.instruction == instruction), "input_image")
        assert list(sent.convert("RGB").getdata()) == list(as_sent_by_gpt4o(original).getdata())
        pq_body = next(b for b in bodies if b["messages"][0]["content"][0]["text"] == pq_text())
        assert [p["type"] for p in pq_body["messages"][0]["content"]] == ["text", "image_url"]
        # a second run asks only about the two failures: no failure was cached as a verdict
        before = len(server.requests)
        again = evaluate(spec, tmp_path / "run", show_progress=False)
        assert again.generated == 0 and again.judged == 2 and again.summary.counts["judge_failed"] == 2
        assert len(server.requests) > before
    # the same model and data judged by another judge: a comparison is refused, never a difference
    other = tmp_path / "shapes-judge"
    evaluate(_spec(shapes_data, "shapes-editor", ComponentSpec("shapes-gedit-judge")), other, show_progress=False)
    section = build_sections([tmp_path / "run"], [other])[0]
    assert any("judges" in reason for reason in section.not_comparable)
    assert all(row.difference is None for row in section.rows)


def test_departures_and_judge_pinning() -> None:
    base = {"language": "en", "subset": "full", "items": 606, "judge_format": "gpt4o",
            "model_input": "input_image_raw resized ...",
            "judges": {"judge": {"name": "openai-compatible", "params": {"model": JUDGE, "temperature": None,
                                                                          "max_tokens": 1400}}}}
    assert GEdit.departures_from_official(base) == []
    default_decoding = {**base, "judges": {"judge": {"name": "openai-compatible", "params": {"model": JUDGE}}}}
    assert any("upstream sends {'temperature': None, 'max_tokens': 1400}" in r
               for r in GEdit.departures_from_official(default_decoding))
    qwen = {**base, "judge_format": "qwen25vl", "judges": {"judge": {"name": "openai-compatible", "params": {
        "model": "Qwen/Qwen2.5-VL-72B-Instruct-AWQ", "allow_alias": True, "temperature": 0.0, "max_tokens": 512}}}}
    assert GEdit.departures_from_official(qwen) == []
    assert any("GEdit-Bench-EN" in r for r in GEdit.departures_from_official({**base, "language": "cn"}))
    assert any("intersection" in r for r in GEdit.departures_from_official({**base, "subset": "intersection"}))


def test_published_numbers_load_with_their_judge() -> None:
    ours = get_published("gpt-image-edit")
    assert ours.scores["gedit"]["overall"] == 7.24 and ours.scores["gedit"]["types"]["motion_change"] == 7.75
    assert ours.setup["gedit"]["judge_models"] == "gpt-4.1"
    kontext = get_published("flux-kontext-dev-by-gpt-image-edit")
    assert kontext.scores["gedit"]["overall"] == 6.26 and not kontext.verified["gedit"]


def test_prompts_are_upstream_text() -> None:
    prompts = vie_prompts()
    assert "Step1X-Edit e78b811" in prompts["source"]
    text = sc_text("Add a hat.")
    assert text.startswith("You are a professional digital artist.") and text.endswith("Editing instruction: Add a hat.\n")
    assert "RULES:\n\nTwo images will be provided" in text and "<instruction>" not in text
    assert pq_text().endswith("Put the score in a list such that output score = [naturalness, artifacts]\n")


def test_an_image_api_model_edits_over_http(shapes_data, tmp_path) -> None:
    """The openai-images adapter (images.edit) runs GEdit-Bench end to end: the loopback server
    answers each edit with a solid colour, which the shapes judge scores near the bottom."""
    with FakeOpenAIServer() as server:
        spec = RunSpec(benchmark=ComponentSpec("gedit", {"data": str(shapes_data)}),
                       model=ComponentSpec("openai-images", {"base_url": server.base_url, "model": "gpt-image-1",
                                                             "api_key_env": "GEDIT_TEST_UNSET_KEY", "size": "256x256"}),
                       judges={"judge": ComponentSpec("shapes-gedit-judge")}, limit=3)
        summary = evaluate(spec, tmp_path / "run", show_progress=False).summary
        edits = [r for r in server.requests if r.path.endswith("/images/edits")]
    first = {item.instruction for item in GEdit(str(shapes_data)).items[:3]}
    assert len(edits) == 3 and {request.form()["prompt"] for request in edits} == first
    assert summary.counts["scored"] == 3 and summary.scores["overall"] < 5.0
