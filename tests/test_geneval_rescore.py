"""GenEval aggregation, results I/O and rescoring, checked against pandas used as summary_scores.py
uses it."""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.geneval.aggregate import format_summary, summarize
from benchmarks.geneval.data import TAGS, packaged_file
from benchmarks.geneval.rescore import rescore_detections, rescore_results
from benchmarks.geneval.results_io import read_detections, read_results, write_results
from benchmarks.geneval.rules import GenEvalOptions
from harness.errors import InputError

FIELDS = ["filename", "tag", "prompt", "correct", "reason", "metadata", "details"]


def pandas_summary(df: pd.DataFrame) -> tuple[dict, str]:
    """What summary_scores.py computes and prints, done independently with pandas."""
    tasks, counts = {}, {}
    for tag, task_df in df.groupby("tag", sort=False):
        tasks[tag] = task_df["correct"].mean()
        counts[tag] = [int(task_df["correct"].sum()), len(task_df)]
    summary = {"images": len(df), "prompts": len(df.groupby("metadata")),
               "correct_images": df["correct"].mean(),
               "correct_prompts": df.groupby("metadata")["correct"].any().mean(),
               "tasks": tasks, "task_counts": counts, "overall": np.mean(list(tasks.values()))}
    text = [f"Summary\n=======\nTotal images: {len(df)}", f"Total prompts: {summary['prompts']}",
            f"% correct images: {summary['correct_images']:.2%}",
            f"% correct prompts: {summary['correct_prompts']:.2%}", "", "Task breakdown",
            "=============="]
    text += [f"{t:<16} = {tasks[t]:.2%} ({counts[t][0]} / {counts[t][1]})" for t in tasks]
    text += ["", f"Overall score (avg. over tasks): {summary['overall']:.5f}"]
    return summary, "\n".join(text)


def random_rows(seed: int) -> list[dict]:
    """Results with unequal tag sizes, prompts with 0-4 images, and shuffled order."""
    rng = random.Random(seed)
    tags = rng.sample(TAGS, rng.randint(2, len(TAGS)))
    rows = []
    for tag in tags:
        p_correct = rng.random()
        for p in range(rng.randint(1, 60)):
            meta = json.dumps({"tag": tag, "include": [{"class": "cat", "count": 1}],
                               "prompt": f"{tag} prompt {p}"})
            for k in range(rng.choice([0, 1, 3, 4, 4, 4])):
                rows.append({"filename": f"{p:05d}/samples/{k:04d}.png", "tag": tag,
                             "prompt": f"{tag} prompt {p}", "correct": rng.random() < p_correct,
                             "reason": "", "metadata": meta, "details": "{}"})
    rng.shuffle(rows)
    return rows or random_rows(seed + 1000)


@pytest.mark.parametrize("seed", range(8))
def test_summary_matches_pandas_exactly(seed):
    rows = random_rows(seed)
    expected, expected_text = pandas_summary(pd.DataFrame(rows))
    got = summarize(rows)
    assert got == expected                     # exact float equality, tag order included
    assert list(got["tasks"]) == list(expected["tasks"])
    assert format_summary(got) == expected_text


def test_janus_pro_7b_overall():
    means = dict(zip(TAGS, (0.99, 0.89, 0.59, 0.90, 0.79, 0.66)))
    rows = [{"tag": tag, "metadata": f"{tag}{i // 4}", "correct": i < round(mean * 100)}
            for tag, mean in means.items() for i in range(100)]
    summary = summarize(rows)
    assert summary["tasks"] == means
    assert f"{summary['overall']:.5f}" == "0.80333"          # 4.82 / 6
    assert summary["task_counts"]["counting"] == [59, 100]
    assert summary["correct_images"] == 482 / 600
    assert "Overall score (avg. over tasks): 0.80333" in format_summary(summary)


def test_summary_text_by_hand():
    rows = [{"tag": "counting", "metadata": "a", "correct": True},
            {"tag": "counting", "metadata": "a", "correct": False},
            {"tag": "colors", "metadata": "b", "correct": False}]
    assert format_summary(summarize(rows)) == "\n".join([
        "Summary", "=======", "Total images: 3", "Total prompts: 2", "% correct images: 33.33%",
        "% correct prompts: 50.00%", "", "Task breakdown", "==============",
        "counting         = 50.00% (1 / 2)", "colors           = 0.00% (0 / 1)", "",
        "Overall score (avg. over tasks): 0.25000"])


def test_summarize_nothing_is_an_error():
    with pytest.raises(InputError):
        summarize([])


# --- results.jsonl ------------------------------------------------------------------------------

def tricky_rows() -> list[dict]:
    meta = {"tag": "colors", "include": [{"class": "cup", "count": 1, "color": "red"}],
            "prompt": "a red cup/mug, café ☕ 😀"}
    return [
        {"filename": "images/00000/samples/0000.png", "tag": "colors", "prompt": meta["prompt"],
         "correct": False, "reason": "expected red cup>=1, found 0\nsecond \"line\" \\ \x7f\t",
         "metadata": json.dumps(meta),
         "details": json.dumps({"cup": [[0.0, 1.5, 2.0, 3.0, 0.25]]})},
        {"filename": "images/00000/samples/0001.png", "tag": "colors", "prompt": meta["prompt"],
         "correct": True, "reason": "", "metadata": json.dumps(meta), "details": "{}"},
    ]


def test_write_results_is_byte_identical_to_pandas(tmp_path):
    rows = tricky_rows() + random_rows(3)
    pd.DataFrame(rows)[FIELDS].to_json(tmp_path / "pandas.jsonl", orient="records", lines=True)
    write_results(rows, tmp_path / "ours.jsonl")
    ours = (tmp_path / "ours.jsonl").read_bytes()
    assert ours == (tmp_path / "pandas.jsonl").read_bytes()
    assert b"\\/" in ours and b"caf\\u00e9" in ours and b"\\ud83d\\ude00" in ours
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ours.jsonl", "pandas.jsonl"]  # no temp


def test_pandas_written_results_read_back_and_rescore_like_pandas(tmp_path):
    rows = tricky_rows() + random_rows(5)
    path = tmp_path / "results.jsonl"
    pd.DataFrame(rows).to_json(path, orient="records", lines=True)
    assert read_results(path) == rows
    expected, _ = pandas_summary(pd.read_json(path, orient="records", lines=True))
    assert rescore_results(path) == expected


def test_results_accept_01_correct_and_no_trailing_newline(tmp_path):
    path = tmp_path / "results.jsonl"
    lines = [json.dumps(dict(row, correct=int(row["correct"]))) for row in tricky_rows()]
    path.write_text("\n".join(lines))
    assert [r["correct"] for r in read_results(path)] == [False, True]


def write_lines(path: Path, lines: list) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def assert_input_error(call, path: Path, line: int | None):
    with pytest.raises(InputError) as caught:
        call(path)
    assert caught.value.line == line
    where = f"{path}:{line}:" if line is not None else f"{path}:"
    assert str(caught.value).startswith(where), str(caught.value)


@pytest.mark.parametrize("mutate, line", [
    (lambda rows: rows[:2] + ["{not json"] + rows[2:], 3),
    (lambda rows: [rows[0], {k: v for k, v in rows[1].items() if k != "correct"}], 2),
    (lambda rows: [rows[0], dict(rows[1], correct=2)], 2),
    (lambda rows: [rows[0], dict(rows[1], reason=None)], 2),
    (lambda rows: [dict(rows[0], metadata="{bad")] + rows[1:], 1),
    (lambda rows: [dict(rows[0], metadata="[1, 2]")] + rows[1:], 1),
    (lambda rows: [rows[0], [1, 2]], 2),
])
def test_malformed_results_name_file_and_line(tmp_path, mutate, line):
    path = write_lines(tmp_path / "results.jsonl", mutate(tricky_rows() * 2))
    assert_input_error(read_results, path, line)


def test_empty_files_are_errors(tmp_path):
    for name, reader in (("results.jsonl", read_results), ("detections.jsonl", read_detections)):
        path = tmp_path / name
        path.write_text("\n")
        assert_input_error(reader, path, None)


# --- rescoring detections ---------------------------------------------------------------------

METADATA = [
    {"tag": "single_object", "include": [{"class": "cat", "count": 1}],
     "prompt": "a photo of a cat"},
    {"tag": "two_object", "include": [{"class": "cat", "count": 1}, {"class": "dog", "count": 1}],
     "prompt": "a photo of a cat and a dog"},
    {"tag": "counting", "include": [{"class": "cat", "count": 2}],
     "exclude": [{"class": "cat", "count": 3}], "prompt": "a photo of two cats"},
    {"tag": "colors", "include": [{"class": "cup", "count": 1, "color": "red"}],
     "prompt": "a photo of a red cup"},
    {"tag": "position", "include": [{"class": "cat", "count": 1},
                                    {"class": "dog", "count": 1, "position": ["left of", 0]}],
     "prompt": "a photo of a dog left of a cat"},
    {"tag": "color_attr", "include": [{"class": "cup", "count": 1, "color": "red"},
                                      {"class": "dog", "count": 1, "color": "black"}],
     "prompt": "a photo of a red cup and a black dog"},
]


def d(label, score, box=(0, 0, 10, 10), color=None):
    return {"label": label, "score": score, "box": list(box), "color": color}


# (prompt_index, image, detections, expected verdict worked out by hand)
IMAGES = [
    (0, "0000.png", [d("cat", 0.5)], True),
    (0, "0001.png", [d("cat", 0.2)], False),
    (1, "0000.png", [d("cat", 0.9), d("dog", 0.35)], True),
    (2, "0000.png", [d("cat", 0.95), d("cat", 0.95, (20, 0, 30, 10)), d("cat", 0.92)], False),
    (2, "0001.png", [d("cat", 0.95), d("cat", 0.9, (20, 0, 30, 10))], False),
    (3, "0000.png", [d("cup", 0.9, color="red"), d("cup", 0.4, color="blue")], True),
    (4, "0000.png", [d("cat", 0.9, (20, 0, 30, 10)), d("dog", 0.9, (0, 0, 10, 10))], True),
    (4, "0001.png", [d("dog", 0.9)], False),
    (5, "0000.png", [d("cup", 0.9, color="red"), d("dog", 0.9, color="brown")], False),
    (5, "0001.png", [d("cup", 0.9, color="red"), d("dog", 0.9, color="black")], True),
]


@pytest.fixture
def files(tmp_path):
    meta = write_lines(tmp_path / "metadata.jsonl", METADATA)
    dets = write_lines(tmp_path / "detections.jsonl",
                       [{"prompt_index": i, "image": im, "detections": ds}
                        for i, im, ds, _ in IMAGES])
    return meta, dets


def test_rescore_detections_every_tag(files, tmp_path):
    meta, dets = files
    rows, summary = rescore_detections(dets, meta)
    assert [r["correct"] for r in rows] == [ok for *_, ok in IMAGES]
    assert rows[0]["filename"] == "00000/samples/0000.png"
    assert rows[4]["reason"] == "expected cat>=2, found 1"
    assert rows[8]["reason"] == "expected black dog>=1, found 0 black; and 1 brown"
    assert summary["tasks"] == {"single_object": 0.5, "two_object": 1.0, "counting": 0.0,
                                "colors": 1.0, "position": 0.5, "color_attr": 0.5}
    assert summary["overall"] == 3.5 / 6
    assert (summary["images"], summary["prompts"]) == (10, 6)
    assert (summary["correct_images"], summary["correct_prompts"]) == (0.5, 5 / 6)
    # the rows are a valid official results.jsonl: pandas summarizes them the same way
    write_results(rows, tmp_path / "results.jsonl")
    official_df = pd.read_json(tmp_path / "results.jsonl", orient="records", lines=True)
    expected, _ = pandas_summary(official_df)
    assert summary == expected == rescore_results(tmp_path / "results.jsonl")


def test_rescore_detections_uses_the_packaged_prompts(tmp_path):
    dets = write_lines(tmp_path / "detections.jsonl", [
        {"prompt_index": 0, "image": "0000.png", "detections": [d("bench", 0.8)]}])
    rows, summary = rescore_detections(dets)
    first_line = packaged_file("evaluation_metadata.jsonl").read_text().splitlines()[0]
    assert rows[0]["metadata"] == first_line          # json.dumps reproduces the file's own text
    assert rows[0]["correct"] is True and summary["overall"] == 1.0


def test_nms_option_reaches_rescoring(files):
    meta, dets = files
    rows, _ = rescore_detections(dets, meta)
    assert rows[3]["correct"] is False
    rows, _ = rescore_detections(dets, meta, GenEvalOptions(max_overlap=0.5))
    assert rows[3]["correct"] is True                 # the duplicate 0.92 box is suppressed


GOOD = {"prompt_index": 0, "image": "0000.png", "detections": [d("cat", 0.5)]}


@pytest.mark.parametrize("bad", [
    dict(GOOD, detections=[d("cat", 0.5, (10, 0, 5, 10))]),          # x1 > x2
    dict(GOOD, detections=[d("cat", 0.5, (0, 10, 5, 0))]),           # y1 > y2
    dict(GOOD, detections=[{"label": "cat", "score": 0.5, "box": [0, 0, 5]}]),
    dict(GOOD, detections=[d("cat", 0.5, (0, 0, "5", 5))]),
    dict(GOOD, detections=[d("cat", 0.5, color="teal")]),
    dict(GOOD, detections=[d("cat", "high")]),
    dict(GOOD, detections=[d("", 0.5)]),
    dict(GOOD, prompt_index=-1),
    dict(GOOD, prompt_index="0"),
    dict(GOOD, image=None),
    dict(GOOD, detections={}),
    GOOD,                                                            # duplicate of line 1
])
def test_malformed_detections_name_file_and_line(tmp_path, bad):
    path = write_lines(tmp_path / "detections.jsonl", [GOOD, bad, dict(GOOD, image="0009.png")])
    assert_input_error(read_detections, path, 2)


def test_detections_bad_json_names_line(tmp_path):
    path = write_lines(tmp_path / "detections.jsonl", [GOOD, dict(GOOD, image="0001.png"), "{oops"])
    assert_input_error(read_detections, path, 3)


def test_prompt_index_out_of_range(files, tmp_path):
    meta, _ = files
    path = write_lines(tmp_path / "detections.jsonl",
                       [GOOD, dict(GOOD, image="0001.png"), dict(GOOD, prompt_index=len(METADATA))])
    assert_input_error(lambda p: rescore_detections(p, meta), path, 3)


def test_colour_clause_needs_a_colour(files, tmp_path):
    meta, _ = files
    path = write_lines(tmp_path / "detections.jsonl", [
        GOOD, {"prompt_index": 3, "image": "0000.png", "detections": [d("cup", 0.9)]}])
    assert_input_error(lambda p: rescore_detections(p, meta), path, 2)
    # a colourless object that no colour clause asks about is fine
    path = write_lines(tmp_path / "detections.jsonl", [
        {"prompt_index": 3, "image": "0000.png",
         "detections": [d("cup", 0.9, color="red"), d("cup", 0.5)]}])
    rows, _ = rescore_detections(path, meta)
    assert rows[0]["correct"] is True
