"""MME: the official parsing rule, scores, both data layouts, results files, rescoring, a full run."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from benchmarks.mme.benchmark import MME, build_prompt
from benchmarks.mme.data import COGNITION, PERCEPTION, load_items
from benchmarks.mme.rescore import format_summary, rescore_folder
from benchmarks.mme.results_io import one_line, read_results_file, write_results_file
from benchmarks.mme.rules import parse_answer, score_subtask
from harness.errors import InputError
from harness.models.base import ModelAdapter, Request
from harness.registry import register
from harness.runner import evaluate, load_records, load_summary
from harness.spec import ComponentSpec, RunSpec

# PROTOCOLS 4.4 test vectors; labels worked out by hand from the rule
PARSE_VECTORS = [("Yes", "yes"), ("No, there is not.", "no"), ("Not sure", "no"), ("none", "no"),
                 ("know", "no"), ("Eyes open", "yes"), (" yes", "yes"), ("yes and no", "yes"),
                 ("The answer is yes.", "other"), ("I don't know", "other"), ("Y", "other"), ("", "other")]


@pytest.mark.parametrize("answer,label", PARSE_VECTORS)
def test_parse_answer_protocol_vectors(answer, label):
    assert parse_answer(answer) == label
    assert parse_answer(answer + "\n") == label  # as read from a results file


def test_parse_answer_only_first_four_characters_count():
    assert parse_answer("  yes") == "other"      # "  ye"
    assert parse_answer("YES\n") == "yes"
    assert parse_answer("ano") == "no"           # "no" inside the prefix
    assert parse_answer("Sure, no.") == "other"  # "sure"


def test_one_line_deletes_line_breaks_and_replaces_tabs():
    assert one_line("Yes\r\nit is\tred") == "Yesit is red"
    assert one_line("\nNo") == "No"
    assert one_line(" yes ") == " yes "


def test_llava_prompt_replaces_the_official_suffix():
    assert build_prompt("Is it red? Please answer yes or no.", "none") == "Is it red? Please answer yes or no."
    expected = "Is it red?\nAnswer the question using a single word or phrase."
    assert build_prompt("Is it red? Please answer yes or no.", "llava") == expected
    assert build_prompt("Is it red?  Please answer yes or no.", "llava") == expected  # two spaces
    assert build_prompt("Is it red?", "llava") == expected


def test_subtask_score_by_hand():
    gts = ["Yes", "No", "Yes", "No", "Yes", "No"]
    labels = ["yes", "no", "yes", "yes", "other", "no"]
    result = score_subtask(gts, labels)
    # 4 of 6 questions right; pairs: (right, right), (right, wrong), (wrong, right) -> 1 of 3
    assert (result.correct, result.correct_pairs, result.other) == (4, 1, 1)
    assert result.acc == 4 / 6 and result.acc_plus == 1 / 3
    assert result.score == pytest.approx(100.0)
    # gt yes: yes, yes, other -> tp 2, fn 0; gt no: no, yes, no -> tn 2, fp 1 ("other" in neither)
    assert (result.tp, result.fn, result.tn, result.fp) == (2, 0, 2, 1)


# (questions, correct answers, images with both answers correct) per subtask, counted from the
# LaVIN answers in eval_tool.zip; the expected strings are what the official calculation.py prints
# for them (PROTOCOLS 4.5 rounds them: perception 963.611, cognition 249.643).
LAVIN_COUNTS = {
    "existence": (60, 57, 27, "185.0"), "count": (60, 37, 8, "88.33333333333334"),
    "position": (60, 32, 3, "63.333333333333336"), "color": (60, 35, 5, "75.0"),
    "posters": (294, 174, 30, "79.59183673469389"), "celebrity": (340, 129, 16, "47.35294117647059"),
    "scene": (400, 315, 116, "136.75"), "landmark": (400, 256, 59, "93.5"), "artwork": (400, 237, 56, "87.25"),
    "OCR": (40, 27, 8, "107.5"), "commonsense_reasoning": (140, 82, 20, "87.14285714285714"),
    "numerical_calculation": (40, 22, 2, "65.0"), "text_translation": (40, 19, 0, "47.5"),
    "code_reasoning": (40, 20, 0, "50.0"),
}


def answers_with_counts(questions: int, correct: int, pairs: int) -> list[tuple[str, str, str, str]]:
    """Rows whose answers give exactly ``correct`` right answers and ``pairs`` fully right images."""
    singles = correct - 2 * pairs
    rows = []
    for image in range(questions // 2):
        right = 2 if image < pairs else (1 if image < pairs + singles else 0)
        answers = [("Yes", "No"), ("Yes", "Yes"), ("No", "Yes")][2 - right]
        rows += [(f"{image:04d}.png", f"q{image}a Please answer yes or no.", "Yes", answers[0]),
                 (f"{image:04d}.png", f"q{image}b Please answer yes or no.", "No", answers[1])]
    return rows


def test_rescore_reproduces_official_lavin_numbers_to_the_digit(tmp_path):
    for name, (questions, correct, pairs, _) in LAVIN_COUNTS.items():
        write_results_file(tmp_path / f"{name}.txt", answers_with_counts(questions, correct, pairs))
    summary = rescore_folder(tmp_path)
    assert {name: str(score) for name, score in summary["subtasks"].items()} == \
        {name: value[3] for name, value in LAVIN_COUNTS.items()}
    assert str(summary["perception"]) == "963.6114445778312"
    assert str(summary["cognition"]) == "249.64285714285714"
    assert round(summary["perception"], 3) == 963.611 and round(summary["cognition"], 3) == 249.643
    text = format_summary(summary)
    assert text.startswith("=========== Perception ===========\ntotal score: 963.6114445778312 \n\n"
                           "\t existence  score: 185.0\n\t count  score: 88.33333333333334\n")
    assert "\t OCR  score: 107.5\n\n\n=========== Cognition ===========\n" in text


def test_rescore_missing_files(tmp_path):
    write_results_file(tmp_path / "count.txt", answers_with_counts(4, 3, 1))
    with pytest.raises(InputError, match="existence.txt") as info:
        rescore_folder(tmp_path)
    assert "code_reasoning.txt" in str(info.value)
    summary = rescore_folder(tmp_path, present_only=True)
    assert summary["present"] == ["count"] and len(summary["missing"]) == 13
    # 3 of 4 right -> 75, 1 of 2 images -> 50
    assert summary["subtasks"] == {"count": 125.0} and summary["perception"] == 125.0
    assert summary["cognition"] is None
    assert "scored only the subtasks present: count" in format_summary(summary)


@pytest.mark.parametrize("content,line,message", [
    ("a.png\tQ?\tYes\tyes\na.png\tQ?\tNo\n", 2, "4 tab-separated"),
    ("a.png\tQ?\tMaybe\tyes\na.png\tQ?\tNo\tno\n", 1, "Yes or No"),
    ("a.png\tQ?\tYes\tyes\na.png\tQ?\tNo\tno\nb.png\tQ?\tYes\tyes\n", 3, "no partner"),
    ("a.png\tQ?\tYes\tyes\n\na.png\tQ?\tNo\tno\n", 2, "blank line"),
    ("a.png\tQ?\tYes\tyes\tmore\na.png\tQ?\tNo\tno\n", 1, "got 5"),
])
def test_malformed_results_file_names_file_and_line(tmp_path, content, line, message):
    path = tmp_path / "count.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message) as info:
        read_results_file(path)
    assert (info.value.path, info.value.line) == (path, line)
    assert f"count.txt:{line}:" in str(info.value)


# ------------------------------------------------------------------------ fake data

def png(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), color).save(buffer, format="PNG")
    return buffer.getvalue()


def qa(image: str, subtask: str) -> str:
    return (f"Is there a cat in {subtask} {image}? Please answer yes or no.\tYes\n"
            f"Is there a dog in {subtask} {image}? Please answer yes or no.\tNo\n")


def make_release(root: Path) -> Path:
    """existence: flat pairs (3 images, written out of order); artwork: images/ + questions_answers_YN/
    (2 images); code_reasoning: flat, with the same image names as existence."""
    release = root / "MME_Benchmark_release_version"
    for subtask, stems in (("existence", ["0003", "0001", "0002"]), ("code_reasoning", ["0002", "0001"])):
        folder = release / subtask
        folder.mkdir(parents=True)
        for index, stem in enumerate(stems):
            (folder / f"{stem}.png").write_bytes(png((index * 40, 10, 200 if subtask == "existence" else 90)))
            (folder / f"{stem}.txt").write_text(qa(f"{stem}.png", subtask), encoding="utf-8")
    (release / "artwork" / "images").mkdir(parents=True)
    (release / "artwork" / "questions_answers_YN").mkdir()
    for index, stem in enumerate(["10049", "10002"]):
        (release / "artwork" / "images" / f"{stem}.jpg").write_bytes(png((250, index * 90, 0)))
        (release / "artwork" / "questions_answers_YN" / f"{stem}.txt").write_text(qa(f"{stem}.jpg", "artwork"))
    return release


SUBSET = ["existence", "artwork", "code_reasoning"]


def test_release_layout_loads_in_official_order(tmp_path):
    make_release(tmp_path)
    layout, items = load_items(tmp_path, SUBSET)  # the parent of the release folder works too
    assert layout == "release"
    assert [item.item_id for item in items] == [
        "existence/0001.png", "existence/0002.png", "existence/0003.png",
        "artwork/10002.jpg", "artwork/10049.jpg", "code_reasoning/0001.png", "code_reasoning/0002.png"]
    first = items[0]
    assert first.questions[0].question == "Is there a cat in existence 0001.png? Please answer yes or no."
    assert [q.gt for q in first.questions] == ["Yes", "No"]
    assert first.load().size == (8, 6) and first.load().mode == "RGB"
    assert items[0].digest != items[5].digest  # same name, other subtask, other image
    _, everything = load_items(tmp_path)  # no subtasks named: all the data holds
    assert [item.item_id for item in everything] == [item.item_id for item in items]
    with pytest.raises(InputError, match=r"no data for MME subtask\(s\) \['count'\]"):
        load_items(tmp_path, ["existence", "count"])
    with pytest.raises(InputError, match="no MME subtask data here"):
        load_items(tmp_path / "MME_Benchmark_release_version" / "existence")


def test_eval_tool_lists_fix_the_order_and_must_match(tmp_path):
    release = make_release(tmp_path)
    lists = tmp_path / "eval_tool" / "Your_Results"
    lists.mkdir(parents=True)
    for subtask in SUBSET:
        _, items = load_items(release, [subtask])
        lines = [f"{item.image}\t{q.question}\t{q.gt}\n" for item in reversed(items) for q in item.questions]
        (lists / f"{subtask}.txt").write_text("".join(lines), encoding="utf-8")
    _, items = load_items(release, SUBSET, eval_tool=tmp_path / "eval_tool")
    assert [item.image for item in items[:3]] == ["0003.png", "0002.png", "0001.png"]
    text = (lists / "artwork.txt").read_text().replace("cat in artwork 10002", "cow in artwork 10002")
    (lists / "artwork.txt").write_text(text)
    with pytest.raises(InputError, match="question differs") as info:
        load_items(release, SUBSET, eval_tool=lists)
    assert info.value.line == 3


@pytest.mark.parametrize("content,line,message", [
    ("Q1?\tYes\nQ2?\tNo\nQ3?\tNo\n", 3, "exactly 2 questions"),
    ("Q1?\tNo\nQ2?\tYes\n", 1, "expected ground truth Yes"),
    ("Q1?\tYes\nQ2?\tPerhaps\n", 2, "Yes or No"),
    ("Q1?\tYes\nQ2? No\n", 2, "tab-separated"),
])
def test_malformed_question_file_names_file_and_line(tmp_path, content, line, message):
    release = make_release(tmp_path)
    bad = release / "existence" / "0002.txt"
    bad.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message) as info:
        load_items(release, ["existence"])
    assert (Path(info.value.path), info.value.line) == (bad, line)


def parquet_rows() -> list[dict]:
    rows = []
    for subtask, image, color in (("count", "b.jpg", (1, 2, 3)), ("OCR", "0001.jpg", (9, 9, 9)),
                                  ("count", "a.jpg", (200, 0, 0))):
        for gt in ("No", "Yes"):  # No first: the loader puts the Yes question first
            rows.append({"question_id": f"{subtask}/{image}", "image": {"bytes": png(color), "path": None},
                         "question": f"{subtask} {image} {gt}? Please answer yes or no.", "answer": gt,
                         "category": subtask})
    return rows


def write_parquet(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def test_parquet_layout_loads(tmp_path):
    rows = parquet_rows()
    write_parquet(tmp_path / "data" / "test-00000-of-00002.parquet", rows[:3])
    write_parquet(tmp_path / "data" / "test-00001-of-00002.parquet", rows[3:])
    layout, items = load_items(tmp_path, ["count", "OCR"])
    assert layout == "parquet"
    assert [item.item_id for item in items] == ["count/a.jpg", "count/b.jpg", "OCR/0001.jpg"]
    assert [q.question for q in items[0].questions] == ["count a.jpg Yes? Please answer yes or no.",
                                                        "count a.jpg No? Please answer yes or no."]
    assert items[0].load().getpixel((0, 0)) == (200, 0, 0)
    _, single = load_items(tmp_path / "data" / "test-00001-of-00002.parquet", ["count"])
    assert [item.item_id for item in single] == ["count/a.jpg"]


@pytest.mark.parametrize("mutate,line,message", [
    (lambda rows: rows[1].update(category="Count"), 2, "unknown category"),
    (lambda rows: rows[1].update(answer="No"), 2, "one Yes and one No"),
    (lambda rows: rows.append(dict(rows[0])), 7, "3 question row"),
    (lambda rows: rows[2].update(question="two\nlines"), 3, "one line"),
])
def test_malformed_parquet_names_file_and_row(tmp_path, mutate, line, message):
    rows = parquet_rows()
    mutate(rows)
    path = tmp_path / "mme.parquet"
    write_parquet(path, rows)
    with pytest.raises(InputError, match=message) as info:
        load_items(path, ["count", "OCR"])
    assert (Path(info.value.path), info.value.line) == (path, line)


# ------------------------------------------------------------------------ benchmark and runner

@register("model", "test-mme-always-yes")
class AlwaysYes(ModelAdapter):
    capabilities = frozenset({"answer"})
    model_digest = "always-yes"

    def answer(self, requests):
        for request in requests:
            assert len(request.images) == 1 and request.images[0].load().mode == "RGB"
        return ["Yes" for _ in requests]


def test_score_uses_the_written_line():
    cases = [("Yes\nNo", "Yes", "yes"), ("\n\nNo", "No", "no"), ("  yes", "Yes", "other")]
    bench = object.__new__(MME)  # scoring reads nothing from the data
    requests = [Request(f"count/{i}.png/0", "q", 0, extra={"item_id": f"count/{i}.png", "subtask": "count",
                                                              "image": f"{i}.png", "question": "q", "gt": gt})
                for i, (_, gt, _) in enumerate(cases)]
    records = bench.score(requests, [answer for answer, _, _ in cases], {})
    assert [r.verdict["label"] for r in records] == [label for _, _, label in cases]
    assert [r.correct for r in records] == [True, True, False]
    assert records[0].verdict["answer_line"] == "YesNo" and records[0].output_text == "Yes\nNo"


def test_end_to_end_run_always_yes_and_rescore_round_trip(tmp_path):
    release = make_release(tmp_path / "data")
    spec = RunSpec(benchmark=ComponentSpec("mme", {"data": str(release), "subtasks": SUBSET}),
                   model=ComponentSpec("test-mme-always-yes"))
    outcome = evaluate(spec, tmp_path / "run", show_progress=False)
    scores = outcome.summary.scores
    # "Yes" to everything: every Yes question right, every No question wrong -> acc 0.5, acc+ 0,
    # score 50 per subtask; perception = existence + artwork = 100, cognition = code_reasoning = 50
    assert scores["subtasks"] == {"existence": 50.0, "artwork": 50.0, "code_reasoning": 50.0}
    assert scores["acc"] == {name: 0.5 for name in SUBSET} and scores["acc_plus"] == {n: 0.0 for n in SUBSET}
    assert (scores["perception"], scores["cognition"], scores["overall"]) == (100.0, 50.0, 150.0)
    counts = outcome.summary.counts
    assert (counts["samples"], counts["scored"], counts["images"], counts["other"]) == (14, 14, 7, 0)
    assert outcome.summary.protocol["prompt_suffix"] == "none"

    lines = (tmp_path / "run" / "mme_results" / "existence.txt").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "0001.png\tIs there a cat in existence 0001.png? Please answer yes or no.\tYes\tYes"
    assert len(lines) == 6
    rescored = rescore_folder(tmp_path / "run" / "mme_results", SUBSET)
    for key in ("perception", "cognition", "overall", "subtasks", "acc", "acc_plus", "other"):
        assert rescored[key] == scores[key]
    assert load_summary(tmp_path / "run")["scores"]["overall"] == 150.0
    records = load_records(tmp_path / "run")
    assert records[0].sample_id == "existence/0001.png/0" and records[0].item_id == "existence/0001.png"
    assert records[0].output_path == "" and records[0].output_text == "Yes"

    again = evaluate(spec, tmp_path / "run", show_progress=False)  # everything cached
    assert again.generated == 0 and again.judged == 0


def test_round_trip_with_messy_answers_matches_rescore(tmp_path):
    release = make_release(tmp_path / "data")
    bench = MME(str(release), subtasks=SUBSET, prompt_suffix="llava")
    requests = bench.requests(run_seed=0)
    assert requests[0].prompt.endswith("?\nAnswer the question using a single word or phrase.")
    answers = ["Yes", "No\n", " no", "Eyes\tclosed", "", "yes and no", "\nNo", "The answer is no",
               "Not\r\nsure", "YES", "Y", "no", "know", "  yes"]
    records = bench.score(requests, answers, {})
    scores, counts = bench.summarize(records)
    written = bench.write_official(tmp_path / "run", records)
    assert written == [f"mme_results/{name}.txt" for name in SUBSET]
    rescored = rescore_folder(tmp_path / "run" / "mme_results", SUBSET)
    for key in ("perception", "cognition", "overall", "subtasks", "acc", "acc_plus", "other", "details"):
        assert rescored[key] == scores[key]
    # by hand: existence labels yes,no | no,yes | other,yes -> right, right | wrong, wrong | wrong, wrong
    assert scores["acc"]["existence"] == 2 / 6 and scores["acc_plus"]["existence"] == 1 / 3
    assert counts["other"] == 4  # "", "The answer is no", "Y", "  yes"
    json.dumps(scores)  # the summary must be JSON-serialisable


def test_bad_parameters():
    with pytest.raises(InputError, match="prompt_suffix"):
        MME("unused", prompt_suffix="vlmevalkit")
    with pytest.raises(InputError, match="unknown MME subtask"):
        load_items("unused", ["ocr"])
    assert len(PERCEPTION) == 10 and len(COGNITION) == 4
