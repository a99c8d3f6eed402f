"""MMBench: extraction rules, CircularEval, prompts, TSV loading, the LLM path, rescoring, a run.

Expected values are worked out by hand from PROTOCOLS.md section 5 and the upstream code read at
VLMEvalKit e8e78f0 / LLaVA c121f04 (see docs/MMBENCH.md).
"""
from __future__ import annotations

import base64
import io
import random
import re
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

import benchmarks.mmbench  # noqa: F401  (registers the benchmark)
from benchmarks.mmbench.benchmark import MMBench
from benchmarks.mmbench.circular import PassOutcome, aggregate
from benchmarks.mmbench.data import load_mmbench
from benchmarks.mmbench.extract import can_infer
from benchmarks.mmbench.matching import ChoiceItem, extract_choices
from benchmarks.mmbench.prompts import judge_prompt, llava_options, llava_prompt, vlmevalkit_prompt
from benchmarks.mmbench.rescore import format_summary, rescore_predictions
from harness.errors import InputError
from harness.judges.base import ChatReply
from harness.models.base import ModelAdapter, Request
from harness.registry import register
from harness.runner import evaluate, load_records
from harness.schema import SampleRecord
from harness.spec import ComponentSpec, RunSpec

NEW, MID, OLD = "2026-06-17", "2025-08-04", "2024-02-04"
PETS = {"A": "dog", "B": "cat", "C": "bird"}  # option texts: 10 characters, so the limit is 20
LONG_B = "B. The cat is on the mat because it is warm there"


@pytest.mark.parametrize("answer, expected", [
    ("A", {NEW: "A", MID: "A", OLD: "A"}),
    ("(C)", {NEW: "C", MID: "C", OLD: "C"}),
    ("I think B is right", {NEW: "B", MID: "B", OLD: "B"}),  # B is the 3rd of 5 tokens: among the last 4
    ("So B is the answer", {NEW: "B", MID: "B", OLD: "B"}),  # 2nd of 5 tokens: 4th from the end
    ("B is my final answer", {NEW: None, MID: None, OLD: "B"}),  # 1st of 5 tokens: 5th from the end
    ("A or B", {NEW: None, MID: None, OLD: None}),  # two letters: no letter, no text
    ("A or B, otherwise Z", {NEW: None, MID: None, OLD: None}),  # Z counts only without letters
    (LONG_B, {NEW: None, MID: None, OLD: "B"}),  # B is the 1st of 12 tokens; 49 chars > 20
    ("A dog is sitting on the grass", {NEW: None, MID: None, OLD: "A"}),  # the article "A"
    ("a dog", {NEW: "A", MID: "A", OLD: "A"}),  # option text, 5 chars <= 20
    ("dog and cat", {NEW: None, MID: None, OLD: None}),  # two option texts
    ("The correct answer is **C**, not A", {NEW: "C", MID: None, OLD: None}),  # two letters; regex
    ("the answer is b", {NEW: "B", MID: None, OLD: None}),  # lower-case b is no token; regex ignores case
    ("The answer is D", {NEW: None, MID: None, OLD: None}),  # D is not an option here
    ("None of them fits: Z", {NEW: "Z", MID: "Z", OLD: "Z"}),
    ("Sorry, Cannot determine the answer from it. A", {NEW: "Z", MID: "Z", OLD: "Z"}),  # refusal first
    ("Failed to obtain answer via API. B", {NEW: None, MID: None, OLD: None}),
])
def test_can_infer_by_rule_version(answer: str, expected: dict) -> None:
    for version, letter in expected.items():
        assert can_infer(answer, dict(PETS), version) == letter, (version, answer)


def test_api_failure_text_still_goes_through_option_text_matching() -> None:
    # upstream: can_infer_option returns no match, then can_infer_text runs (old rules: no length limit)
    assert can_infer("Failed to obtain answer via API", {"A": "api", "B": "cat"}, OLD) == "A"


def passes(*specs) -> list[PassOutcome]:
    """(index, correct, l2, l3[, fallback]) -> PassOutcome in split 'dev'."""
    return [PassOutcome(index, "dev", l3, l2, correct, *rest) for index, correct, l2, l3, *rest in specs]


def test_circular_eval_hits_judge_failures_and_fallbacks() -> None:
    outcomes = passes(
        (1, True, "coarse_perception", "image_style"), (1_000_001, True, "coarse_perception", "image_style"),
        (2, True, "coarse_perception", "image_scene"), (1_000_002, False, "coarse_perception", "image_scene"),
        (3, True, "logic_reasoning", "future_prediction"), (1_000_003, None, "logic_reasoning", "future_prediction"),
        (4, None, "logic_reasoning", "future_prediction"), (1_000_004, False, "logic_reasoning", "future_prediction"),
        (5, True, "logic_reasoning", "structuralized_imagetext_understanding", True),
        (2_000_005, True, "logic_reasoning", "structuralized_imagetext_understanding"),
        (7_000_009, True, "logic_reasoning", "future_prediction"),  # no main row: no question
    )
    scores, counts = aggregate(outcomes)
    # q1 hit, q2 miss, q3 judge failure (excluded), q4 miss (a wrong pass decides it), q5 hit
    assert scores["overall"] == 2 / 4
    assert scores["l2"] == {"CP": 1 / 2, "LR": 1 / 2}
    assert scores["l3"] == {"future_prediction": 0.0, "image_scene": 0.0, "image_style": 1.0,
                            "structuralized_imagetext_understanding": 1.0}
    assert scores["single_pass"] == 4 / 4  # pass 0 of q1, q2, q3, q5 right; q4's pass 0 failed
    assert counts == {"passes": 11, "questions": 5, "scored": 4, "judge_failed": 1,
                      "judge_failed_passes": 2, "random_fallbacks": 1, "orphan_passes": 1}
    assert "splits" not in scores


def test_several_splits_are_reported_apart() -> None:
    outcomes = [PassOutcome(1, "dev", "x", "coarse_perception", True),
                PassOutcome(2, "test", "x", "coarse_perception", False)]
    scores, _ = aggregate(outcomes)
    assert scores["overall"] == 0.5
    assert scores["splits"]["dev"]["overall"] == 1.0 and scores["splits"]["test"]["overall"] == 0.0


def test_prompt_texts_exactly() -> None:
    assert vlmevalkit_prompt("Which pet?", "Look left.", PETS) == (
        "Hint: Look left.\nQuestion: Which pet?\nOptions:\nA. dog\nB. cat\nC. bird\n"
        "Please select the correct answer from the options above. \n")
    assert vlmevalkit_prompt("Which pet?", None, {}) == "Question: Which pet?\n"
    assert llava_prompt("Which pet?", "Look left.", ["dog", "cat"], "en") == (
        "Look left.\nWhich pet?\nA. dog\nB. cat\nAnswer with the option's letter from the given choices directly.")
    assert llava_prompt("哪个?", None, ["狗"], "auto") == "哪个?\nA. 狗\n请直接回答选项字母。"
    assert llava_options({"A": "dog", "B": None, "C": "bird"}) == ["dog"]  # stops at the first gap
    assert llava_options({"A": "dog", "B": "NONE"}) == ["dog"]


def test_judge_prompt_structure() -> None:
    text = judge_prompt("Which pet", {"A": "dog", "B": "cat"}, "a puppy")
    assert text.startswith("You are an AI assistant who will help me to match an answer with several options")
    assert text.count("Example ") == 3 and "Answer: Spider\nYour output: Z\n" in text
    assert text.endswith("Example 3: \nQuestion: Which pet?\nOptions: There are several options: \n"
                         "A. dog\nB. cat\n\nAnswer: a puppy\nYour output: ")
    chinese = judge_prompt("哪个宠物", {"A": "狗"}, "小狗")
    assert chinese.startswith("你是一个帮助我匹配答案") and chinese.endswith(
        "例 3: \n问题: 哪个宠物?\n选项: There are several options: \nA. 狗\n\n答案: 小狗\n输出: ")


# --- data files written by the tests -------------------------------------------------------------

COLOURS = {"red": (255, 0, 0), "green": (0, 128, 0), "blue": (0, 0, 255), "yellow": (255, 255, 0)}


def png64(colour: str) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), COLOURS[colour]).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def question(index, options, answer, colour, l2, l3, hint=None, image=None, **extra) -> dict:
    cells = dict(zip("ABCD", options + [None] * (4 - len(options))))
    return {"index": index, "question": "Which colour is shown?", "hint": hint, **cells, "answer": answer,
            "category": l3, "l2-category": l2, "split": "dev", "image": image or png64(colour), **extra}


def rotated(row: dict, k: int, reference: bool) -> dict:
    """Circular copy k: options rotated left k times, answer remapped, image referenced or repeated."""
    texts = [row[c] for c in "ABCD" if row[c] is not None]
    new = texts[k:] + texts[:k]
    answer = "ABCD"[(texts.index(row[row["answer"]]) - k) % len(texts)]
    return {**row, **dict(zip("ABCD", new + [None] * (4 - len(new)))), "answer": answer,
            "index": row["index"] + k * 1_000_000, "image": str(row["index"]) if reference else row["image"]}


def base_questions() -> list[dict]:
    return [question(1, ["red", "green", "blue", "yellow"], "A", "red", "coarse_perception", "image_style"),
            question(2, ["green", "blue"], "A", "green", "coarse_perception", "image_scene"),
            question(3, ["red", "blue", "yellow"], "B", "blue", "finegrained_perception (instance-level)",
                     "attribute_recognition", hint="Think of the sky.")]


def with_copies(rows: list[dict], reference: bool = True) -> list[dict]:
    copies = [rotated(row, k, reference) for row in rows for k in range(1, sum(row[c] is not None for c in "ABCD"))]
    return rows + copies


def write_tsv(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
    return path


def test_vlmevalkit_tsv_with_referenced_copies(tmp_path) -> None:
    data = load_mmbench(write_tsv(tmp_path / "MMBench_DEV_EN.tsv", with_copies(base_questions())))
    assert data.circular == "rows" and [len(q) for q in data.questions] == [4, 2, 3]
    q1 = data.questions[0]
    assert [row.index for row in q1] == [1, 1_000_001, 2_000_001, 3_000_001]
    assert q1[1].options == {"A": "green", "B": "blue", "C": "yellow", "D": "red"} and q1[1].answer == "D"
    assert len({row.image_digest for row in q1}) == 1
    assert q1[3].load_image().getpixel((0, 0)) == (255, 0, 0)
    assert data.questions[1][0].options == {"A": "green", "B": "blue"}  # missing C, D cells dropped
    assert data.questions[2][0].hint == "Think of the sky." and data.questions[1][0].hint is None


def test_passes_are_generated_when_the_file_has_no_copies(tmp_path) -> None:
    data = load_mmbench(write_tsv(tmp_path / "plain.tsv", base_questions()))
    assert data.circular == "generated" and [len(q) for q in data.questions] == [4, 2, 3]
    q3 = data.questions[2]  # red, blue, yellow; answer B (blue)
    assert [(row.index, row.options, row.answer) for row in q3] == [
        (3, {"A": "red", "B": "blue", "C": "yellow"}, "B"),
        (1_000_003, {"A": "blue", "B": "yellow", "C": "red"}, "A"),
        (2_000_003, {"A": "yellow", "B": "red", "C": "blue"}, "C")]
    off = load_mmbench(write_tsv(tmp_path / "copies.tsv", with_copies(base_questions())), circular="off")
    assert off.circular == "off" and [len(q) for q in off.questions] == [1, 1, 1]


def test_legacy_tsv_repeats_images_and_keeps_extra_columns(tmp_path) -> None:
    rows = [{**row, "source": "MMBench", "comment": None} for row in base_questions()]
    data = load_mmbench(write_tsv(tmp_path / "mmbench_dev_20230712.tsv", with_copies(rows, reference=False)))
    assert data.circular == "rows" and [len(q) for q in data.questions] == [4, 2, 3]
    assert "source" in data.columns and "image" not in data.columns
    assert len({row.image_digest for row in data.questions[0]}) == 1


def test_pandas_missing_value_strings_drop_options(tmp_path) -> None:
    rows = [question(1, ["red", "None", "blue"], "B", "red", "coarse_perception", "image_style")]
    data = load_mmbench(write_tsv(tmp_path / "na.tsv", rows))
    assert data.questions[0][0].options == {"A": "red", "C": "blue"}
    assert data.options_without_answer == 1


def test_an_answer_that_pandas_reads_as_missing_is_scored_as_nan(tmp_path) -> None:
    # upstream reads predictions back from its prediction file: "None" becomes NaN, then "nan"
    rows = [question(1, ["no", "yes"], "A", "red", "coarse_perception", "image_style")]
    bench = MMBench(str(write_tsv(tmp_path / "yn.tsv", rows)), circular="off")
    (record,) = bench.score(bench.requests(0), ["None"], {})
    assert record.output_text == "None" and record.verdict["prediction"] is None and record.correct is False
    assert can_infer("None", {"A": "no", "B": "yes"}) == "A"  # what the raw text would have matched


@pytest.mark.parametrize("text, line, message", [
    ("index\tquestion\tA\tanswer\timage\n1\tq\tx\tA\t{img}\n2x\tq\tx\tA\t{img}\n", 3, "non-negative integer"),
    ('index\tquestion\tA\tanswer\timage\n1\t"two\nlines"\tx\tA\t{img}\n2\tq\tx\tA\t77\n', 4, "reference"),
    ('index\tquestion\tA\tanswer\timage\n1\t"two\nlines"\tx\tA\t{img}\n2\tq\tx\tA\t{img}\textra\n', 4, "malformed"),
    ("index\tquestion\tA\tanswer\timage\n1\tq\tx\tA\t{img}\n1000002\tq\tx\tA\t1\n", 3, "no main row"),
    ("index\tquestion\tA\tanswer\timage\n1\tq\tx\t\t{img}\n", 2, "no answer"),
    ("index\tquestion\tA\tanswer\timage\n1\tq\tx\tA\t{img}\n1\tq\tx\tA\t{img}\n", 3, "twice"),
    ("index\tquestion\tA\timage\n1\tq\tx\t{img}\n", 1, "missing column"),
])
def test_malformed_tsv_names_file_and_line(tmp_path, text: str, line: int, message: str) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text(text.replace("{img}", png64("red")), encoding="utf-8")
    with pytest.raises(InputError, match=message) as caught:
        load_mmbench(path)
    assert str(caught.value).startswith(f"{path}:{line}:")


# --- the LLM choice extractor --------------------------------------------------------------------

class ScriptedJudge:
    """A chat judge that replies from a script, one list of replies per ``ask`` call."""

    judge_id = "scripted"

    def __init__(self, script: list[list[ChatReply]]):
        self.script, self.calls, self.usage = list(script), [], {}

    def ask(self, prompts):
        self.calls.append([p.text for p in prompts])
        return self.script.pop(0)


def items(*predictions: str, seed: int = 7) -> list[ChoiceItem]:
    return [ChoiceItem("Which pet", dict(PETS), p, seed + i) for i, p in enumerate(predictions)]


def test_llm_reply_is_parsed_and_rule_matches_skip_the_judge() -> None:
    from benchmarks.mmbench.extract import RULE_VERSIONS
    judge = ScriptedJudge([[ChatReply("B", model="judge-snapshot")]])
    choices = extract_choices(items("C", "my favourite pet"), lambda: judge, RULE_VERSIONS[NEW])
    assert [(c.letter, c.method) for c in choices] == [("C", "rule"), ("B", "llm")]
    assert len(judge.calls) == 1 and judge.calls[0][0].endswith("Answer: my favourite pet\nYour output: ")
    assert choices[1].judge_model == "judge-snapshot" and choices[1].attempts == 1
    never = extract_choices(items("C"), lambda: pytest.fail("judge built for nothing"), RULE_VERSIONS[NEW])
    assert never[0].letter == "C"


def test_three_unreadable_replies_give_a_seeded_reproducible_fallback() -> None:
    from benchmarks.mmbench.extract import RULE_VERSIONS

    def run():
        judge = ScriptedJudge([[ChatReply("hmm")], [ChatReply("no idea")], [ChatReply("both?")]])
        return extract_choices(items("my favourite pet", seed=11), lambda: judge, RULE_VERSIONS[NEW]), judge

    (first,), judge = run()
    (second,), _ = run()
    assert len(judge.calls) == 3 and first.attempts == 3 and first.replies == ["hmm", "no idea", "both?"]
    assert first.method == "fallback" and first.letter == random.Random(11).choice(["A", "B", "C", "Z"])
    assert (second.letter, second.method) == (first.letter, first.method) and not first.judge_failed
    failing = ScriptedJudge([[ChatReply("hmm")], [ChatReply("no idea")], [ChatReply("both?")]])
    (strict,) = extract_choices(items("my favourite pet"), lambda: failing, RULE_VERSIONS[NEW], "fail")
    assert strict.judge_failed and strict.letter is None


def test_judge_errors_are_judge_failures_counted_apart(tmp_path) -> None:
    bench = MMBench(str(write_tsv(tmp_path / "q.tsv", base_questions())), circular="off")
    requests = bench.requests(run_seed=3)
    judge = ScriptedJudge([[ChatReply(None, error="HTTP 503 after 5 tries"), ChatReply("zzz")],
                           [ChatReply("zzz")], [ChatReply("zzz")]])
    records = bench.score(requests, ["A", "the first one", "perhaps"], {"choice_extractor": judge})
    assert [r.verdict["method"] for r in records] == ["rule", "", "fallback"]
    assert records[1].judge_failed and records[1].score is None and "HTTP 503" in records[1].failure
    fallback = random.Random(requests[2].seed).choice(["A", "B", "C", "Z"])
    assert records[2].verdict["prediction"] == fallback and records[2].verdict["fallback"]
    assert records[2].correct == (fallback == "B")
    scores, counts = bench.summarize(records)
    assert counts["judge_failed"] == 1 and counts["random_fallbacks"] == 1 and counts["scored"] == 2
    assert scores["overall"] == (1 + (fallback == "B")) / 2
    # the record the runner writes when scoring raised has no verdict: still a judge failure
    crashed = SampleRecord(sample_id="1", item_id="1", group="", seed=0, output_path="", output_hash="",
                           score=None, correct=None, judge_failed=True, failure="boom", output_text="A")
    _, counts = bench.summarize([crashed, *records[1:]])
    assert counts["judge_failed"] == 2 and counts["scored"] == 1
    bench.write_official(tmp_path / "run", [crashed, *records[1:]])
    result = pd.read_csv(tmp_path / "run" / "mmbench_result.tsv", sep="\t")
    assert result["hit"].isna().tolist() == [True, True, False] and "judge failed" in result["log"][0]


# --- rescoring prediction files ------------------------------------------------------------------

def prediction_rows() -> list[dict]:
    """Questions 1-3 with copies; q1 right on every pass, q2 wrong on pass 1, q3 right via text."""
    rows = with_copies(base_questions())
    answers = {1: "A", 1_000_001: "D", 2_000_001: "C", 3_000_001: "B", 2: "A", 1_000_002: "A",
               3: "It is blue.", 1_000_003: "It is blue.", 2_000_003: "It is blue."}
    return [{**{k: v for k, v in row.items() if k != "image"}, "prediction": answers[row["index"]]} for row in rows]


def test_rescore_a_vlmevalkit_tsv(tmp_path) -> None:
    path = write_tsv(tmp_path / "model_MMBench_DEV_EN.tsv", prediction_rows())
    summary = rescore_predictions(path)
    assert summary["overall"] == 2 / 3 and summary["single_pass"] == 1.0
    assert summary["l2"] == {"CP": 0.5, "FP-S": 1.0}
    assert summary["l3"] == {"attribute_recognition": 1.0, "image_scene": 0.0, "image_style": 1.0}
    assert summary["counts"]["questions"] == 3 and summary["judge"] == "exact_matching"
    assert "Overall      0.6667" in format_summary(summary)
    # old rules read "It is blue." the same way (short answer, one option text)
    assert rescore_predictions(path, rule_version=OLD)["overall"] == 2 / 3


def test_rescore_a_llava_submission_xlsx_joins_categories_from_the_data(tmp_path) -> None:
    drop = {"hint", "category", "source", "image", "comment", "l2-category"}
    rows = [{k: v for k, v in row.items() if k not in drop} for row in prediction_rows()]
    path = tmp_path / "llava-v1.5.xlsx"
    pd.DataFrame(rows).to_excel(path, index=False)
    data = write_tsv(tmp_path / "mmbench_dev.tsv", with_copies(base_questions(), reference=False))
    summary = rescore_predictions(path, data=data)
    assert summary["overall"] == 2 / 3 and summary["l2"] == {"CP": 0.5, "FP-S": 1.0}
    alone = rescore_predictions(path)
    assert alone["overall"] == 2 / 3 and alone["l2"] == {} and not alone["categories"]


# --- an end-to-end run ---------------------------------------------------------------------------

@register("model", "mmbench-test-colour-reader")
class ColourReader(ModelAdapter):
    """Answers with the letter of the image's colour; on green images always "A"; on blue ones
    with a riddle only the judge can read."""

    capabilities = frozenset({"answer"})
    model_digest = "colour-reader-1"

    def answer(self, requests: list[Request]) -> list[str]:
        answers = []
        for request in requests:
            pixel = request.images[0].load().getpixel((0, 0))
            colour = next(name for name, rgb in COLOURS.items() if rgb == pixel)
            options = dict(re.findall(r"^([A-Z])\. (.*)$", request.prompt, flags=re.M))
            letter = next(k for k, v in options.items() if v == colour)
            answers.append({"green": "A", "blue": "The colour of the sky."}.get(colour, letter))
        return answers


@register("chat", "mmbench-test-sky-judge")
class SkyJudge:
    """Reads "sky" as the letter of the option "blue"."""

    judge_id = "sky-judge"
    usage: dict = {}

    def ask(self, prompts):
        replies = []
        for prompt in prompts:
            options = dict(re.findall(r"^([A-Z])\. (\w+)$", prompt.text.split("Example 3")[1], flags=re.M))
            blue = next(k for k, v in options.items() if v == "blue")
            replies.append(ChatReply(blue if "sky" in prompt.text.split("Answer: ")[-1] else "?"))
        return replies


def test_end_to_end_run_with_the_choice_extractor(tmp_path) -> None:
    data = write_tsv(tmp_path / "MMBench_DEV_EN.tsv", with_copies(base_questions()))
    spec = RunSpec(benchmark=ComponentSpec("mmbench", {"data": str(data)}),
                   model=ComponentSpec("mmbench-test-colour-reader"),
                   judges={"choice_extractor": ComponentSpec("mmbench-test-sky-judge")})
    outcome = evaluate(spec, tmp_path / "run", show_progress=False)
    scores, counts = outcome.summary.scores, outcome.summary.counts
    # q1 right on all 4 passes; q2 "A" is wrong on pass 1; q3 read by the judge on all 3 passes
    assert scores["overall"] == 2 / 3 and scores["l2"] == {"CP": 0.5, "FP-S": 1.0}
    assert counts["passes"] == 9 and counts["questions"] == 3 and counts["judge_failed"] == 0
    run = tmp_path / "run"
    predictions = pd.read_csv(run / "mmbench_predictions.tsv", sep="\t")
    assert len(predictions) == 9 and list(predictions.columns)[-1] == "prediction"
    acc = pd.read_csv(run / "mmbench_acc.csv")
    assert list(acc.columns) == ["split", "Overall", "CP", "FP-S", "attribute_recognition", "image_scene",
                                 "image_style"]
    assert acc.loc[0, "Overall"] == pytest.approx(2 / 3) and acc.loc[0, "image_scene"] == 0.0
    result = pd.read_csv(run / "mmbench_result.tsv", sep="\t")
    assert list(result["hit"]) == [1, 0, 1]
    # our prediction file rescored: exact matching cannot read the riddle, the judge can
    assert rescore_predictions(run / "mmbench_predictions.tsv")["overall"] == 1 / 3
    assert rescore_predictions(run / "mmbench_predictions.tsv", judge=SkyJudge())["overall"] == 2 / 3


@register("chat", "mmbench-test-flaky-sky-judge")
class FlakySkyJudge(SkyJudge):
    """``SkyJudge``, but garbled (no letter in any reply) while ``garbled`` is set."""

    garbled = True
    asked = 0

    def ask(self, prompts):
        FlakySkyJudge.asked += len(prompts)
        replies = super().ask(prompts)
        return [ChatReply("?!#") for _ in replies] if FlakySkyJudge.garbled else replies


def test_a_fallback_after_garbled_replies_is_scored_but_asked_again_next_run(tmp_path) -> None:
    """Issue 16 item 6: the seeded fallback is the official outcome of three unreadable replies, so
    it is scored; it is never kept as a verdict (nor are the unreadable replies), so the next run
    asks the extractor again."""
    data = write_tsv(tmp_path / "MMBench_DEV_EN.tsv", with_copies(base_questions()))
    spec = RunSpec(benchmark=ComponentSpec("mmbench", {"data": str(data)}),
                   model=ComponentSpec("mmbench-test-colour-reader"),
                   judges={"choice_extractor": ComponentSpec("mmbench-test-flaky-sky-judge")})
    FlakySkyJudge.garbled, FlakySkyJudge.asked = True, 0
    first = evaluate(spec, tmp_path / "run", show_progress=False).summary
    assert first.counts["random_fallbacks"] == 3 and FlakySkyJudge.asked == 3 * 3  # 3 passes, 3 asks each
    records = {r.sample_id: r for r in load_records(tmp_path / "run")}
    assert sum(r.provisional for r in records.values()) == 3
    FlakySkyJudge.garbled, FlakySkyJudge.asked = False, 0
    second = evaluate(spec, tmp_path / "run", show_progress=False)
    assert second.judged == 3 and FlakySkyJudge.asked == 3  # only the stand-ins, once each
    assert second.summary.counts["random_fallbacks"] == 0 and second.summary.scores["overall"] == 2 / 3
