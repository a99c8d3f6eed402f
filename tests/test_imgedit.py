"""ImgEdit-Bench Basic: reply parsing, type means and overall, data checks, rescoring, and whole runs
with an in-test judge and with the real OpenAI-compatible judge against a loopback server.

Expected values are worked out by hand from PROTOCOLS.md section 3 and from the upstream scripts
read at PKU-YuanGroup/ImgEdit 547185d (``Benchmark/Basic/step1_get_avgscore.py``,
``step2_typescore.py``, ``basic_bench.py``).
"""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from PIL import Image, ImageOps

import benchmarks.imgedit  # noqa: F401  (registers the benchmark)
from benchmarks.imgedit.data import EDIT_TYPES, load_edits, load_judge_prompts
from benchmarks.imgedit.rescore import format_summary, rescore_results
from benchmarks.imgedit.rules import OfficialCrash, overall_score, parse_reply, type_means
from harness.errors import HarnessError, InputError
from harness.judges.base import ChatPrompt, ChatReply
from harness.models.base import ModelAdapter, Request
from harness.registry import register
from harness.runner import evaluate, load_records
from harness.spec import ComponentSpec, RunSpec
from harness.testing.fake_openai import Fault, FakeOpenAIServer

PROTOCOLS_EXAMPLE = ("Brief reasoning: …\nPrompt Compliance: 4\nVisual Naturalness: 3\n"
                     "Physical & Detail Integrity: 3")


@pytest.mark.parametrize("reply, scores", [
    ("Prompt Compliance: 4/5", ()),
    ("Prompt Compliance: 4.", ()),
    ("Prompt Compliance: 4 (good)", ()),
    ("**Prompt Compliance:** 4", ()),  # the colon is followed by "**", so no ": " at all
    ("**Prompt Compliance**: 4", (4,)),
    ("Prompt Compliance:  4", ()),  # two spaces: the second part is " 4"
    ("   Prompt Compliance: 4   ", (4,)),  # the line is stripped first
    ("Prompt Compliance: 4\nVisual Naturalness: 3\nOverall: 4", (4, 3, 4)),  # an extra line counts
    ("Prompt Compliance: 10", (10,)),  # out of the 1-5 range, still counted
    ("Time: 10: 4", ()),  # three parts
    ("Brief reasoning: 3", (3,)),  # the reasoning line counts when it is a bare number
    ("Brief reasoning: the hat is there but blurry.", ()),  # reasoning only: dropped
    ("Prompt Compliance: 4\r\nVisual Naturalness: 2", (4, 2)),  # str.splitlines, CRLF too
])
def test_reply_lines_kept_as_step_1_keeps_them(reply: str, scores: tuple) -> None:
    parsed = parse_reply(reply)
    assert parsed.scores == scores
    assert parsed.item_score == (round(sum(scores) / len(scores), 2) if scores else None)


def test_item_scores_by_hand() -> None:
    assert parse_reply(PROTOCOLS_EXAMPLE).item_score == 3.33  # 10 / 3
    # the upstream README says 3.3333 for this reply of item 1068; the code gives 9 / 3
    assert parse_reply("Brief reasoning: No fur change.\nPrompt Compliance: 1\nVisual Seamlessness: 4\n"
                       "Physical & Detail Fidelity: 4").item_score == 3.0
    assert parse_reply("A: 5\nB: 5\nC: 4").item_score == 4.67  # 14 / 3
    assert parse_reply("A: 2\nB: 1\nC: 2\nOverall: 1").item_score == 1.5  # 6 / 4


def test_a_digit_int_cannot_read_is_where_step_1_would_crash() -> None:
    with pytest.raises(OfficialCrash, match="isdigit"):
        parse_reply("Prompt Compliance: ²")  # '²'.isdigit() is True, int('²') raises


def test_type_means_and_overall_by_hand() -> None:
    scored = [("add", 3.33), ("adjust", 1.0), ("add", 4.67), ("add", 2.5), ("adjust", 2.0)]
    means = type_means(scored)
    assert means == {"add": 3.5, "adjust": 1.5}  # 10.5 / 3 and 3 / 2, first-seen order
    assert list(means) == ["add", "adjust"]
    assert type_means([("style", 4.33), ("style", 4.0), ("style", 3.0)]) == {"style": 3.78}  # 11.33/3=3.7767
    assert overall_score({"add": 3.5, "adjust": 1.5, "style": 3.78}) == pytest.approx(8.78 / 3)
    assert overall_score({}) is None


def test_janus_4o_gpt41_type_means_give_the_published_overall() -> None:
    # PROTOCOLS.md section 7: Add 3.35, Adjust 3.35, Extract 2.25, Replace 3.01, Remove 2.18,
    # Background 3.32, Style 4.71, Hybrid (compose) 2.49, Action 4.04; 28.70 / 9 = 3.18889
    published = dict(zip(EDIT_TYPES, (3.35, 3.35, 2.25, 3.01, 2.18, 3.32, 4.71, 2.49, 4.04)))
    overall = overall_score(published)
    assert overall == pytest.approx(3.18889, abs=5e-6)
    assert round(overall, 2) == 3.19


# -- data ------------------------------------------------------------------------------------------

SOURCES = {"animal/a.jpg": (200, 40, 40), "style/c.jpg": (30, 160, 60), "daily object/d.jpg": (20, 40, 220),
           "human/e.jpg": (240, 200, 20)}
#: key -> (source, instruction, edit type, the judge's reply; None: the judge call fails)
ITEMS = {
    "22": ("animal/a.jpg", "Add a red hat to the dog.", "add", PROTOCOLS_EXAMPLE),
    "31": ("animal/a.jpg", "Add a bird on the fence.", "add",
           "Brief reasoning: good.\nPrompt Compliance: 5\nVisual Naturalness: 5\n"
           "Physical & Detail Coherence: 4\nOverall: 5"),
    "40": ("style/c.jpg", "Make it a watercolour painting.", "style",
           "**Style Fidelity**: 2\n**Content Preservation:** 5\nRendering Quality: 2"),
    "57": ("daily object/d.jpg", "Remove the cup.", "remove", "Brief reasoning: the cup is still there."),
    "63": ("human/e.jpg", "Make the person wave.", "action", None),
    "1172": ("animal/a.jpg", "Change the dog's fur to black.", "adjust",
             "Brief reasoning: No fur change.\nPrompt Compliance: 1\nVisual Seamlessness: 4\n"
             "Physical & Detail Fidelity: 4"),
}
# by hand: 22 -> 10/3 = 3.33; 31 -> 19/4 = 4.75; 40 -> (2+2)/2 = 2.0 ("**...:** 5" ignored);
# 57 -> no score (a rescore drops it; a run asks again, then counts a judge failure); 63 -> judge failure;
# 1172 -> 9/3 = 3.0
# add = (3.33 + 4.75) / 2 = 4.04, style = 2.0, adjust = 3.0; overall = 9.04 / 3
EXPECTED_TYPES = {"add": 4.04, "adjust": 3.0, "style": 2.0}
EXPECTED_OVERALL = 9.04 / 3


def judge_template(edit_type: str) -> str:
    return (f"\nYou grade {edit_type} edits.\nPrompt Compliance: A number from 1 to 5.\n"
            "editing instruction is : <edit_prompt>.\n\nBelow are the images before and after editing:\n")


@pytest.fixture
def data(tmp_path: Path) -> dict[str, Path]:
    images = tmp_path / "images"
    for name, color in SOURCES.items():
        (images / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40, 30), color).save(images / name, format="JPEG")
    edits = {key: {"id": source, "prompt": prompt, "edit_type": kind}
             for key, (source, prompt, kind, _) in ITEMS.items()}
    (tmp_path / "basic_edit.json").write_text(json.dumps(edits, indent=4), encoding="utf-8")
    prompts = {kind: judge_template(kind) for kind in EDIT_TYPES}
    (tmp_path / "prompts.json").write_text(json.dumps(prompts, indent=2), encoding="utf-8")
    return {"edits": tmp_path / "basic_edit.json", "images": images, "judge_prompts": tmp_path / "prompts.json"}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_edit_list_errors_name_the_key_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "e.json", '{\n  "5": {"id": "a/1.jpg", "prompt": "p", "edit_type": "add"},\n'
                                      '  "9": {"id": "a/2.jpg", "prompt": "p", "edit_type": "recolor"}\n}')
    with pytest.raises(InputError, match=r"e\.json:3: item '9': unknown edit_type 'recolor'"):
        load_edits(path)
    write(path, '{\n  "5": {"id": "a/1.jpg", "prompt": "p", "edit_type": "alter"}\n}')
    with pytest.raises(InputError, match=r"e\.json:2: item '5' has edit_type 'alter'.*b3eb8e7"):
        load_edits(path)
    write(path, '{"5": {"id": "a/1.jpg", "edit_type": "add"}}')
    with pytest.raises(InputError, match="field 'prompt' missing"):
        load_edits(path)
    write(path, '{\n"5": {"id": "a", "prompt": "p", "edit_type": "add"},\n"5": {"id": "b", "prompt": "q", '
                '"edit_type": "add"}\n}')
    with pytest.raises(InputError, match="key '5' appears twice"):
        load_edits(path)


def test_judge_prompts_must_cover_the_types_and_hold_the_placeholder(tmp_path: Path) -> None:
    path = write(tmp_path / "p.json", json.dumps({"add": "grade <edit_prompt>", "style": "grade it"}))
    with pytest.raises(InputError, match="'style' has no <edit_prompt>"):
        load_judge_prompts(path, {"add"})
    write(path, json.dumps({"add": "grade <edit_prompt>"}))
    with pytest.raises(InputError, match="no judge prompt for edit type.*adjust, style"):
        load_judge_prompts(path, {"add", "style", "adjust"})
    assert load_judge_prompts(path, {"add"}) == {"add": "grade <edit_prompt>"}


def test_requests_carry_the_source_image_and_the_instruction(data: dict[str, Path]) -> None:
    from benchmarks.imgedit.benchmark import ImgEdit
    from harness.hashing import hash_file
    from harness.seeds import sample_seed

    bench = ImgEdit(**{name: str(path) for name, path in data.items()})
    requests = bench.requests(run_seed=7, limit=4)
    assert [r.sample_id for r in requests] == ["22", "31", "40", "57"]  # file order
    first = requests[0]
    assert first.prompt == "Add a red hat to the dog." and first.seed == sample_seed(7, "imgedit", "22")
    assert first.images[0].digest == hash_file(data["images"] / "animal" / "a.jpg")
    assert first.images[0].load().size == (40, 30)
    assert bench.output_path(requests[3]) == "edited/57.png"
    assert bench.protocol["items_per_type"] == {"add": 2, "adjust": 1, "remove": 1, "style": 1, "action": 1}
    assert bench.protocol["edits_release"].startswith("unknown")
    (data["images"] / "human" / "e.jpg").unlink()
    with pytest.raises(InputError, match="source image of item '63' not found"):
        bench.requests(run_seed=7)


# -- rescoring -------------------------------------------------------------------------------------

def test_rescore_counts_failures_drops_unparsable_replies_and_strict_stops(tmp_path: Path, data) -> None:
    results = {key: reply if reply is not None else {"error": "Error code: 500"}
               for key, (_, _, _, reply) in ITEMS.items()}
    results["999"] = "Prompt Compliance: 5"  # not in the edit list: step 2 leaves it out
    path = write(tmp_path / "result.json", json.dumps(results, indent=4))
    summary = rescore_results(path, data["edits"])
    assert summary["types"] == EXPECTED_TYPES
    assert summary["overall"] == pytest.approx(EXPECTED_OVERALL)
    assert (summary["items"], summary["scored"], summary["no_score"], summary["judge_failed"],
            summary["not_in_edits"], summary["missing"], summary["types_scored"]) == (7, 4, 1, 1, 1, 0, 3)
    assert summary["failed_keys"] == ["63"]
    text = format_summary(summary)
    assert "Overall      3.01333 (printed as 3.01)" in text and "Add          4.04" in text
    assert "only 3 of 9 edit types scored" in text
    with pytest.raises(InputError, match=r"result\.json:\d+: item '63' holds an error entry"):
        rescore_results(path, data["edits"], strict=True)


# -- whole runs --------------------------------------------------------------------------------------

@register("model", "test-imgedit-inverter")
class InvertingEditor(ModelAdapter):
    """Edits by inverting the source image (so the judge's two images differ, predictably)."""

    capabilities = frozenset({"edit"})
    model_digest = "test-imgedit-inverter"

    def edit_images(self, requests: list[Request]) -> list[Image.Image]:
        return [ImageOps.invert(request.images[0].load()) for request in requests]


@register("chat", "test-imgedit-scripted-judge")
class ScriptedJudge:
    """Replies from ``ITEMS`` by the instruction found in the prompt text; records every prompt."""

    received: list[ChatPrompt] = []
    judge_id = "test-imgedit-scripted-judge"
    usage: dict = {}

    def ask(self, prompts: list[ChatPrompt]) -> list[ChatReply]:
        ScriptedJudge.received.extend(prompts)
        replies = []
        for prompt in prompts:
            reply = next(r for _, instruction, _, r in ITEMS.values() if f": {instruction}." in prompt.text)
            replies.append(ChatReply(reply, model="scripted-2025-01-01") if reply is not None
                           else ChatReply(None, error="HTTP 500: boom (gave up after 3 attempts)", attempts=3))
        return replies


def pixels(image: Image.Image) -> list:
    return list(image.convert("RGB").getdata())


def test_a_run_sends_the_official_prompt_and_image_order_and_writes_official_files(tmp_path, data) -> None:
    ScriptedJudge.received = []
    spec = RunSpec(benchmark=ComponentSpec("imgedit", {k: str(v) for k, v in data.items()}),
                   model=ComponentSpec("test-imgedit-inverter"),
                   judges={"judge": ComponentSpec("test-imgedit-scripted-judge")})
    run = tmp_path / "run"
    summary = evaluate(spec, run, show_progress=False).summary
    assert summary.scores["types"] == EXPECTED_TYPES
    assert summary.scores["overall"] == pytest.approx(EXPECTED_OVERALL)
    assert summary.scores["judge_models"] == ["scripted-2025-01-01"]
    # 57's reply has no score line: asked three times, then a judge failure (issue 16 item 6)
    assert summary.counts == {"items": 6, "scored": 4, "no_score": 0, "judge_failed": 2, "types_scored": 3}

    by_text = {prompt.text: prompt for prompt in ScriptedJudge.received}
    expected_text = judge_template("adjust").replace("<edit_prompt>", "Change the dog's fur to black.")
    prompt = by_text[expected_text]  # the adjust template, the instruction filled in verbatim
    assert prompt.images_after_text is True and len(prompt.images) == 2
    source = Image.open(data["images"] / "animal" / "a.jpg").convert("RGB")
    assert pixels(prompt.images[0]) == pixels(source)  # the original first
    assert pixels(prompt.images[1]) == pixels(ImageOps.invert(source))  # then the edited image
    assert pixels(Image.open(run / "edited" / "1172.png")) == pixels(ImageOps.invert(source))

    result_text = (run / "edited" / "result.json").read_text(encoding="utf-8")
    result = json.loads(result_text)
    assert list(result) == list(ITEMS)  # every item, in edit-list order
    assert result["22"] == PROTOCOLS_EXAMPLE and result["63"]["error"].startswith("judge error after 3")
    assert result_text.startswith('{\n    "22": "Brief reasoning: \\u2026') and not result_text.endswith("\n")
    averages = json.loads((run / "edited" / "average_score.json").read_text())
    assert averages == {"22": 3.33, "31": 4.75, "40": 2.0, "1172": 3.0}
    assert json.loads((run / "edited" / "typescore.json").read_text()) == {"add": 4.04, "style": 2.0, "adjust": 3.0}

    records = {r.sample_id: r for r in load_records(run)}
    assert records["57"].score is None and records["57"].judge_failed and "after 3 asks" in records["57"].failure
    assert records["40"].verdict["kept_lines"] == ["**Style Fidelity**: 2", "Rendering Quality: 2"]
    assert records["63"].judge_failed and "HTTP 500" in records["63"].failure
    # the official file rescored gives the run's numbers (the failure excluded, as in the run)
    rescored = rescore_results(run / "edited" / "result.json", data["edits"])
    assert rescored["types"] == summary.scores["types"] and rescored["overall"] == summary.scores["overall"]

    # a second run regenerates nothing and asks the judge again only about the failed items
    ScriptedJudge.received = []
    again = evaluate(spec, run, show_progress=False)
    assert (again.generated, again.judged) == (0, 2)
    assert sorted(p.text for p in ScriptedJudge.received) == sorted(
        [judge_template("action").replace("<edit_prompt>", "Make the person wave.")]
        + [judge_template("remove").replace("<edit_prompt>", "Remove the cup.")] * 3)


JUDGE_MODEL = "judge-2025-04-14"


def official_reply(body: dict) -> str | Fault:
    """The loopback judge: a reply in the official format, by the instruction it is shown; the
    instruction of item 63 fails every time."""
    text = body["messages"][-1]["content"][0]["text"]
    if "Make the person wave." in text:
        return Fault.server_error(503)
    for _, instruction, _, reply in ITEMS.values():
        if f": {instruction}." in text:
            return reply


def test_the_openai_compatible_judge_over_http_retries_and_counts_a_permanent_failure(tmp_path, data) -> None:
    params = {"base_url": "", "model": JUDGE_MODEL, "api_key_env": "IMGEDIT_TEST_UNSET_KEY",
              "temperature": None, "max_tokens": None, "max_retries": 2, "max_concurrency": 1,
              "timeout_s": 5.0, "backoff_s": 0.01, "backoff_max_s": 0.02}
    with FakeOpenAIServer(official_reply, faults=[Fault.server_error(500), Fault.malformed_json()],
                          served_model=JUDGE_MODEL) as server:
        params["base_url"] = server.base_url
        spec = RunSpec(benchmark=ComponentSpec("imgedit", {k: str(v) for k, v in data.items()}),
                       model=ComponentSpec("test-imgedit-inverter"),
                       judges={"judge": ComponentSpec("openai-compatible", params)})
        summary = evaluate(spec, tmp_path / "run", show_progress=False).summary
        bodies = [request.body for request in server.requests]
    # item 22 goes first and absorbs both faults (2 retries); 5 other items once each, except
    # item 63 which is tried 1 + max_retries = 3 times and item 57, whose reply has no score line,
    # asked 3 times in all
    assert len(bodies) == (1 + 2) + 4 + 3 + 2
    assert summary.counts == {"items": 6, "scored": 4, "no_score": 0, "judge_failed": 2, "types_scored": 3}
    assert summary.scores["types"] == EXPECTED_TYPES and summary.scores["judge_models"] == [JUDGE_MODEL]
    usage = summary.usage["judge:judge"]
    assert usage["retries"] == 2 + 2 and usage["failures"] == 1 and usage["models"] == [JUDGE_MODEL]

    body = bodies[0]
    assert "temperature" not in body and "max_tokens" not in body  # API defaults, as basic_bench.py
    parts = body["messages"][0]["content"]
    assert [part["type"] for part in parts] == ["text", "image_url", "image_url"]
    assert parts[0]["text"] == judge_template("add").replace("<edit_prompt>", "Add a red hat to the dog.")
    shown = [Image.open(io.BytesIO(base64.b64decode(part["image_url"]["url"].removeprefix(
        "data:image/png;base64,")))) for part in parts[1:]]
    source = Image.open(data["images"] / "animal" / "a.jpg").convert("RGB")
    assert pixels(shown[0]) == pixels(source) and pixels(shown[1]) == pixels(ImageOps.invert(source))
    result = json.loads((tmp_path / "run" / "edited" / "result.json").read_text())
    assert "HTTP 503" in result["63"]["error"]


def test_an_undated_judge_alias_stops_the_run_before_generation(tmp_path, data) -> None:
    spec = RunSpec(benchmark=ComponentSpec("imgedit", {k: str(v) for k, v in data.items()}),
                   model=ComponentSpec("test-imgedit-inverter"),
                   judges={"judge": ComponentSpec("openai-compatible", {
                       "base_url": "http://127.0.0.1:9/v1", "model": "gpt-4o", "api_key_env": "IMGEDIT_TEST_UNSET_KEY"})})
    with pytest.raises(HarnessError, match="undated alias"):
        evaluate(spec, tmp_path / "run", show_progress=False)
    assert not (tmp_path / "run" / "edited").exists()
