"""Re-scoring other people's official files: official behaviour where the harness differed, oddities
the official scorers accept (scored as they score them, with a warning; ``--strict`` refuses), and
bad input that used to give a traceback or a quiet score (issue 16, items 7-12, benchmark side).

Every bad input is generated here at test time. Each CLI case asserts exit status 2, a one-line
message naming the file (and the line where there is one) and no traceback.
"""
from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import benchmarks.dpg  # noqa: F401  (registers the benchmarks and their rescorers)
import benchmarks.geneval  # noqa: F401
import benchmarks.imgedit  # noqa: F401
import benchmarks.mmbench  # noqa: F401
import benchmarks.mme  # noqa: F401
from benchmarks.geneval.rules import GenEvalOptions
from benchmarks.mmbench.data import load_mmbench
from benchmarks.mmbench.rescore import rescore_predictions
from harness.cli import main
from harness.errors import InputError


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def refused(capsys, *argv, names: str | Path, line: int | None = None, says: str = "") -> str:
    """Exit 2 with a one-line message naming ``names`` (and ``:line``), no traceback."""
    code, out, err = run(capsys, *argv)
    message = err.strip()
    assert code == 2, (code, out, err)
    assert "\n" not in message and message.startswith("harness: error: "), err
    where = f"{names}:{line}:" if line is not None else str(names)
    assert where in message, (where, message)
    assert says in message, (says, message)
    assert "Traceback" not in err
    return message


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def warnings_of(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("harness: warning: ")]


# --- MMBench prediction files ----------------------------------------------------------------------

COLUMNS = ["index", "question", "A", "B", "C", "answer", "category", "l2-category", "split", "prediction"]


def mmbench_row(index, options, answer, prediction, category="image_style", l2="coarse_perception", **extra):
    cells = dict(zip("ABC", list(options) + [""] * (3 - len(options))))
    return {"index": index, "question": "Which one?", **cells, "answer": answer, "category": category,
            "l2-category": l2, "split": "dev", "prediction": prediction, **extra}


def write_rows(path: Path, rows: list[dict]) -> Path:
    """A TSV as VLMEvalKit dumps it: every column, blanks for missing cells."""
    columns = list(dict.fromkeys(c for row in rows for c in [*COLUMNS, *row]))
    lines = ["\t".join(columns)] + ["\t".join(str(row.get(c, "")) for c in columns) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def circular_tool_rows(offset: int) -> list[dict]:
    """Two 2-option questions whose indices reach 1e6, circularised as VLMEvalKit's CIRCULAR tool
    does it (copy offset 1e7, a g_index column); question 1_000_001 right twice, 1_000_002 wrong once."""
    rows = []
    for index, options, answer, predictions in ((1_000_001, ["red", "blue"], "A", ["A", "B"]),
                                                (1_000_002, ["cat", "dog"], "B", ["B", "B"])):
        rows.append(mmbench_row(index, options, answer, predictions[0], g_index=index))
        rotated = options[1:] + options[:1]
        rows.append(mmbench_row(index + offset, rotated, "AB"[("AB".index(answer) - 1) % 2], predictions[1],
                                g_index=index))
    return rows


def test_item7_g_index_groups_the_passes_as_upstream_does(tmp_path, capsys):
    path = write_rows(tmp_path / "circular_MMBench.tsv", circular_tool_rows(10_000_000))
    code, out, err = run(capsys, "rescore", "mmbench", path)
    # before: grouped by index % 1e6, no main row anywhere, "overall": null with exit 0
    assert code == 0 and last_json(out)["overall"] == 0.5, (out, err)
    summary = rescore_predictions(path)
    assert summary["counts"]["questions"] == 2 and summary["grouping"] == "g_index"
    # the same file without its g_index column cannot be grouped: no main row, refused (never null)
    plain = write_rows(tmp_path / "plain.tsv", [{k: v for k, v in row.items() if k != "g_index"}
                                                for row in circular_tool_rows(10_000_000)])
    refused(capsys, "rescore", "mmbench", plain, names=plain, says="no main row")


def test_item7_a_dataset_with_a_g_index_column_loads_its_questions(tmp_path):
    import base64

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (255, 0, 0)).save(buffer, format="PNG")
    image = base64.b64encode(buffer.getvalue()).decode()
    rows = [{**{k: v for k, v in row.items() if k != "prediction"},
             "image": image if row["index"] == row["g_index"] else str(row["g_index"])}
            for row in circular_tool_rows(10_000_000)]
    data = load_mmbench(write_rows(tmp_path / "MMBench_circular.tsv", rows))
    assert data.circular == "rows"
    assert [[(p.index, p.g_index, p.pass_number) for p in q] for q in data.questions] == [
        [(1_000_001, 1_000_001, 0), (11_000_001, 1_000_001, 1)],
        [(1_000_002, 1_000_002, 0), (11_000_002, 1_000_002, 1)]]
    # without copies, generated passes take the CIRCULAR tool's offset (1e7 here), not 1e6
    mains = load_mmbench(write_rows(tmp_path / "mains.tsv", rows[::2]))
    assert mains.circular == "generated"
    assert [p.index for p in mains.questions[0]] == [1_000_001, 11_000_001]
    assert {p.g_index for p in mains.questions[0]} == {1_000_001}


def test_item7_no_scorable_question_is_never_null_with_exit_0(tmp_path, capsys):
    # every row is a copy (index >= 1e6 and no g_index column): upstream would report nothing
    path = write_rows(tmp_path / "copies.tsv", [mmbench_row(1_000_005, ["a", "b"], "A", "A"),
                                               mmbench_row(2_000_005, ["b", "a"], "B", "B")])
    refused(capsys, "rescore", "mmbench", path, names=path, says="no main row")


def test_item7_a_judge_that_fails_on_every_question_is_not_a_null_score(tmp_path, capsys, monkeypatch):
    from harness.judges.base import ChatReply

    class DownJudge:
        judge_id, usage = "down", {}

        def __init__(self, **_):
            pass

        def ask(self, prompts):
            return [ChatReply(None, error="HTTP 503 after 5 tries") for _ in prompts]

    monkeypatch.setattr("harness.judges.chat.OpenAIChatJudge", DownJudge)
    path = write_rows(tmp_path / "riddles.tsv", [mmbench_row(1, ["red", "blue"], "A", "the warm one"),
                                                mmbench_row(1_000_001, ["blue", "red"], "B", "the warm one")])
    refused(capsys, "rescore", "mmbench", path, "--judge-url", "http://127.0.0.1:9/v1", "--judge-model",
            "judge-2024-01-01", names=path, says="no question could be scored")


def numeric_option_rows() -> list[dict]:
    # option columns hold only numbers; C has a blank (question 2 has two options): pandas reads
    # A and B as integers ("4") and C as floats ("6.0")
    return [mmbench_row(1, ["4", "5", "6"], "C", "6"), mmbench_row(2, ["7", "8"], "B", "B")]


def test_item8_tables_are_read_with_pandas_defaults_as_upstream(tmp_path, capsys):
    path = write_rows(tmp_path / "numbers.tsv", numeric_option_rows())
    upstream = pd.read_csv(path, sep="\t")  # VLMEvalKit's load() for a .tsv
    assert (str(upstream.loc[0, "A"]), str(upstream.loc[0, "C"])) == ("4", "6.0")
    code, out, _ = run(capsys, "rescore", "mmbench", path)
    # "6" is not the option text "6.0": exact matching reads no option, question 1 is wrong
    assert code == 0 and last_json(out)["overall"] == 0.5
    code, out, _ = run(capsys, "rescore", "mmbench", path, "--lenient-cells")
    assert code == 0 and last_json(out)["overall"] == 1.0  # every cell as its text: "6" matches "6"
    summary = rescore_predictions(path, cells="text")
    assert summary["cell_reading"] == "text"


def test_item8_the_benchmark_prompts_show_what_upstream_shows(tmp_path):
    import base64

    from PIL import Image

    from benchmarks.mmbench.benchmark import MMBench

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (0, 0, 255)).save(buffer, format="PNG")
    image = base64.b64encode(buffer.getvalue()).decode()
    rows = [{**{k: v for k, v in row.items() if k != "prediction"}, "image": image} for row in numeric_option_rows()]
    path = write_rows(tmp_path / "numbers_data.tsv", rows)
    data = load_mmbench(path, circular="off")
    assert data.questions[0][0].options == {"A": "4", "B": "5", "C": "6.0"}
    bench = MMBench(str(path), circular="off")
    assert "C. 6.0\n" in bench.requests(0)[0].prompt and bench.protocol["cell_reading"] == "pandas"
    assert not [r for r in MMBench.departures_from_official(bench.protocol) if "cells" in r]
    lenient = MMBench(str(path), circular="off", lenient_cells=True)
    assert "C. 6\n" in lenient.requests(0)[0].prompt and lenient.protocol["cell_reading"] == "text"
    assert [r for r in MMBench.departures_from_official(lenient.protocol) if "cells read as text" in r]


def test_item10_mmbench_duplicate_indices_score_as_upstream_with_a_warning(tmp_path, capsys):
    rows = [mmbench_row(1, ["red", "blue"], "A", "A"), mmbench_row(1_000_001, ["blue", "red"], "B", "B"),
            mmbench_row(2, ["cat", "dog"], "B", "A"), mmbench_row(1_000_002, ["dog", "cat"], "A", "A")]
    path = write_rows(tmp_path / "dup.tsv", rows + [rows[0]])  # question 1's main row given twice
    code, out, err = run(capsys, "rescore", "mmbench", path)
    # upstream: the main-row table holds question 1 twice, each a hit; question 2 is a miss -> 2 / 3
    assert code == 0 and last_json(out)["overall"] == pytest.approx(2 / 3), err
    (warning,) = warnings_of(err)
    assert "index 1 on lines 2, 6" in warning and str(path) in warning
    refused(capsys, "rescore", "mmbench", path, "--strict", names=path, line=6, says="appears twice")


def test_item11_a_garbage_xlsx_is_a_one_line_error(tmp_path, capsys):
    path = tmp_path / "model_MMBench_DEV_EN.xlsx"
    path.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)  # a zip signature, then junk: BadZipFile
    refused(capsys, "rescore", "mmbench", path, names=path, says="unreadable xlsx")
    path.write_bytes(b"\x00\x01garbage")
    refused(capsys, "rescore", "mmbench", path, names=path, says="unreadable xlsx")


def test_item12_a_truncated_table_is_refused_not_scored_as_split_none(tmp_path, capsys):
    path = write_rows(tmp_path / "cut.tsv", [mmbench_row(1, ["red", "blue"], "A", "A"),
                                            mmbench_row(2, ["cat", "dog"], "B", "B")])
    text = path.read_text(encoding="utf-8")
    path.write_text(text[:text.rindex("\tdev\t")] + "\n", encoding="utf-8")  # the download stopped mid-row
    refused(capsys, "rescore", "mmbench", path, names=path, line=3, says="truncated or ragged")


def test_item12_an_xlsx_formula_without_a_cached_value_is_refused(tmp_path, capsys):
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(COLUMNS)
    sheet.append([1, "Which one?", "red", "blue", None, "A", "image_style", "coarse_perception", "dev", "A"])
    sheet.append([2, "Which one?", "cat", "dog", None, "B", "image_style", "coarse_perception", "dev",
                  '=IF(1=1,"B","A")'])  # openpyxl writes no cached value: pandas reads an empty cell
    path = tmp_path / "formula.xlsx"
    book.save(path)
    assert pd.isna(pd.read_excel(path).loc[1, "prediction"])  # what upstream would score: "nan"
    refused(capsys, "rescore", "mmbench", path, names=path, line=3, says="J3 holds a formula")


# --- DPG detail files ------------------------------------------------------------------------------

DPG_CSV = ("item_id,text,keywords,proposition_id,dependency,category_broad,category_detailed,tuple,"
           "question_natural_language\n"
           "first,t,k,1,0,entity,whole,entity - whole (x),Is there an x?\n"
           "a,t,k,1,0,entity,whole,entity - whole (cat),Is there a cat?\n"
           "a,t,k,2,0,entity,whole,entity - whole (hat),Is there a hat?\n"
           "b,t,k,1,0,entity,whole,entity - whole (dog),Is there a dog?\n")


def dpg_files(tmp_path: Path, lines: list[str]) -> tuple[Path, Path]:
    csv = tmp_path / "dpg_bench.csv"
    csv.write_text(DPG_CSV, encoding="utf-8")
    detail = tmp_path / "dpg_detail.txt"
    detail.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return detail, csv


def test_item9_an_answer_holding_comma_space_is_split_at_the_known_question(tmp_path, capsys):
    detail, csv = dpg_files(tmp_path, ["out/a.png, (0, 0, 64, 64), Is there a cat?, no, yes",
                                       "out/a.png, (0, 0, 64, 64), Is there a hat?, yes",
                                       "out/b.png, (0, 0, 64, 64), Is there a dog?, yes"])
    code, out, err = run(capsys, "rescore", "dpg", detail, "--csv", csv)
    # a: "no, yes" is not "yes" -> 0, hat 1 -> 0.5; b: 1.0. Before: a was dropped as incomplete (100.0)
    assert code == 0, err
    assert last_json(out)["images"] == 2 and last_json(out)["overall"] == pytest.approx(75.0)


def test_item11_non_utf8_bytes_in_dpg_files_name_the_line(tmp_path, capsys):
    detail, csv = dpg_files(tmp_path, ["out/b.png, (0, 0, 64, 64), Is there a dog?, yes"])
    detail.write_bytes(detail.read_bytes() + b"out/a.png, (0, 0, 64, 64), Is there a cat?, s\xed\n")
    refused(capsys, "rescore", "dpg", detail, "--csv", csv, names=detail, line=2, says="not UTF-8")
    detail.write_text("out/b.png, (0, 0, 64, 64), Is there a dog?, yes\n", encoding="utf-8")
    csv.write_bytes(csv.read_bytes().replace(b"Is there a hat?", b"Is there a h\xe2t?"))
    refused(capsys, "rescore", "dpg", detail, "--csv", csv, names=csv, line=4, says="not UTF-8")


def test_item12_dpg_duplicate_lines_conflicting_are_refused_identical_are_warned(tmp_path, capsys):
    lines = ["out/b.png, (0, 0, 64, 64), Is there a dog?, yes",
             "out/a.png, (0, 0, 64, 64), Is there a cat?, yes",
             "out/a.png, (0, 0, 64, 64), Is there a hat?, no"]
    detail, csv = dpg_files(tmp_path, lines + ["out/a.png, (0, 0, 64, 64), Is there a hat?, yes"])
    refused(capsys, "rescore", "dpg", detail, "--csv", csv, names=detail, line=4, says="different answers")
    detail, csv = dpg_files(tmp_path, lines + [lines[2]])
    code, out, err = run(capsys, "rescore", "dpg", detail, "--csv", csv)
    assert code == 0 and last_json(out)["overall"] == pytest.approx(75.0)
    assert len(warnings_of(err)) == 1 and "duplicate" in err
    refused(capsys, "rescore", "dpg", detail, "--csv", csv, "--strict", names=detail, line=4, says="duplicate")


# --- GenEval results -------------------------------------------------------------------------------

def geneval_row(tag, cls, correct):
    meta = json.dumps({"tag": tag, "include": [{"class": cls, "count": 1}], "prompt": f"a photo of a {cls}"})
    return {"filename": f"x/{cls}.png", "tag": tag, "prompt": f"a photo of a {cls}", "correct": correct,
            "reason": "", "metadata": meta, "details": "{}"}


def summary_scores(path: Path) -> tuple[float, str]:
    """What djghosh13/geneval evaluation/summary_scores.py computes and prints (its code, inlined)."""
    df = pd.read_json(path, orient="records", lines=True)
    task_scores, lines = [], []
    for tag, task_df in df.groupby("tag", sort=False):
        task_scores.append(task_df["correct"].mean())
        lines.append(f"{tag:<16} = {task_df['correct'].mean():.2%} ({task_df['correct'].sum()} / {len(task_df)})")
    return float(np.mean(task_scores)), "\n".join(lines)


def test_item10_geneval_null_verdicts_are_skipped_as_summary_scores_does(tmp_path, capsys):
    rows = [geneval_row("single_object", "cat", True), geneval_row("single_object", "dog", None),
            geneval_row("single_object", "cow", False), geneval_row("counting", "cup", None),
            geneval_row("counting", "cup", True)]
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    official, breakdown = summary_scores(path)
    code, out, err = run(capsys, "rescore", "geneval", path)
    assert code == 0, err
    assert last_json(out)["overall"] == official == (1 / 2 + 1 / 1) / 2
    assert breakdown in out  # "(1.0 / 3)": the null made the column floats
    (warning,) = warnings_of(err)
    assert "null" in warning and "line 2, 4" in warning
    refused(capsys, "rescore", "geneval", path, "--strict", names=path, line=2, says="null")
    # a tag with no verdict at all has no score (upstream prints nan): refused, not printed
    path.write_text("".join(json.dumps(row) + "\n" for row in rows[:3] + [rows[3]]), encoding="utf-8")
    assert math.isnan(summary_scores(path)[0])
    refused(capsys, "rescore", "geneval", path, names=path, line=4, says="no score")


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_item12_geneval_thresholds_must_be_finite(tmp_path, capsys, value):
    with pytest.raises(InputError, match="finite"):
        GenEvalOptions.from_options({"threshold": value})
    detections = tmp_path / "detections.jsonl"
    detections.write_text(json.dumps({"prompt_index": 0, "image": "0000.png", "detections": []}) + "\n")
    refused(capsys, "rescore", "geneval", detections, "--from-detections", "--options", f"threshold={value}",
            names="threshold", says="finite")


@pytest.mark.parametrize("yaml_value", [".nan", ".inf", "-.inf"])
def test_item12_geneval_spec_thresholds_must_be_finite(tmp_path, capsys, yaml_value):
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"benchmark: {{name: geneval, params: {{prompts: shapes, per_tag: 1, "
                    f"options: {{counting_threshold: {yaml_value}}}}}}}\n"
                    "model: {name: shapes-renderer}\njudges: {detector: shapes, color_classifier: shapes}\n")
    code, _, err = run(capsys, "eval", spec, "--out", tmp_path / "run", "--no-progress")
    assert code == 2 and "finite" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


# --- ImgEdit result files --------------------------------------------------------------------------

EDITS = {"22": {"id": "a/1.jpg", "prompt": "Add a cat.", "edit_type": "add"},
         "31": {"id": "a/2.jpg", "prompt": "Remove the dog.", "edit_type": "remove"},
         "40": {"id": "a/3.jpg", "prompt": "Add a hat.", "edit_type": "add"}}
REPLY = "Brief reasoning: ok.\nPrompt Compliance: {0}\nVisual Naturalness: {0}\nPhysical: {0}"


def imgedit_files(tmp_path: Path, result_text: str) -> tuple[Path, Path]:
    edits = tmp_path / "basic_edit.json"
    edits.write_text(json.dumps(EDITS, indent=4), encoding="utf-8")
    result = tmp_path / "result.json"
    result.write_text(result_text, encoding="utf-8")
    return result, edits


def test_item10_imgedit_duplicate_keys_last_wins_with_a_warning(tmp_path, capsys):
    text = ('{\n    "22": ' + json.dumps(REPLY.format(2)) + ',\n    "31": ' + json.dumps(REPLY.format(5))
            + ',\n    "40": ' + json.dumps(REPLY.format(4)) + ',\n    "22": ' + json.dumps(REPLY.format(3)) + "\n}")
    result, edits = imgedit_files(tmp_path, text)
    official = json.loads(text)  # json.load, as step 1 reads the file: the last "22" wins
    assert official["22"] == REPLY.format(3)
    code, out, err = run(capsys, "rescore", "imgedit", result, "--edits", edits)
    assert code == 0 and last_json(out)["types"] == {"add": 3.5, "remove": 5.0}, err
    (warning,) = warnings_of(err)
    assert "'22' appears 2 times (lines 2, 5)" in warning
    refused(capsys, "rescore", "imgedit", result, "--edits", edits, "--strict", names=result, line=5,
            says="appears 2 times")


def test_item10_imgedit_official_crashes_keep_the_documented_behaviour(tmp_path, capsys):
    # a BOM (json.load stops on it) is read; an {"error": ...} entry is a judge failure, left out
    text = json.dumps({"22": REPLY.format(4), "31": {"error": "Error code: 500"}, "40": REPLY.format(2)}, indent=4)
    result, edits = imgedit_files(tmp_path, text)
    result.write_bytes(b"\xef\xbb\xbf" + result.read_bytes())
    code, out, err = run(capsys, "rescore", "imgedit", result, "--edits", edits)
    assert code == 0 and last_json(out)["types"] == {"add": 3.0} and not warnings_of(err)
    assert "judge failures (excluded) 1" in out


def test_item11_non_utf8_imgedit_files_name_the_line(tmp_path, capsys):
    text = json.dumps({"22": REPLY.format(4), "31": REPLY.format(5), "40": REPLY.format(2)}, indent=4)
    result, edits = imgedit_files(tmp_path, text)
    result.write_bytes(result.read_bytes().replace(b"Brief reasoning: ok.", b"Brief reasoning: \xff.", 1))
    refused(capsys, "rescore", "imgedit", result, "--edits", edits, names=result, line=2, says="not UTF-8")
    result.write_text(text, encoding="utf-8")
    edits.write_bytes(edits.read_bytes().replace(b"Remove the dog.", b"Remove the d\xf6g."))
    refused(capsys, "rescore", "imgedit", result, "--edits", edits, names=edits, line=9, says="not UTF-8")


@pytest.mark.parametrize("value, shown", [("4.33", "a number (4.33)"), ("NaN", "a number (NaN)"),
                                          ("Infinity", "a number (Infinity)"), ("true", "a boolean (true)")])
def test_item12_imgedit_scores_instead_of_replies_are_refused(tmp_path, capsys, value, shown):
    text = '{\n    "22": ' + json.dumps(REPLY.format(4)) + ',\n    "31": ' + value + ',\n    "40": 3\n}'
    result, edits = imgedit_files(tmp_path, text)
    refused(capsys, "rescore", "imgedit", result, "--edits", edits, names=result, line=3,
            says=f"item '31' holds {shown}, not a judge reply")


# --- MME results folders ---------------------------------------------------------------------------

def mme_file(path: Path, images: list[str], answers: tuple[str, str] = ("Yes", "No")) -> Path:
    path.write_text("".join(f"{image}\tIs it? Please answer yes or no.\tYes\t{answers[0]}\n"
                            f"{image}\tIs it not? Please answer yes or no.\tNo\t{answers[1]}\n" for image in images))
    return path


def test_item10_mme_all_other_subtask_keeps_the_documented_score(tmp_path, capsys):
    # calculation.py (scikit-learn >= 1.4) crashes here; the documented behaviour is acc 0, acc+ 0
    mme_file(tmp_path / "existence.txt", ["1.png"], ("maybe", "perhaps"))
    code, out, err = run(capsys, "rescore", "mme", tmp_path, "--present-only")
    assert code == 0 and last_json(out)["subtasks"] == {"existence": 0.0}, err


def test_item12_mme_an_image_pair_listed_twice_is_warned_or_refused(tmp_path, capsys):
    path = mme_file(tmp_path / "existence.txt", ["1.png", "2.png", "1.png"])
    code, out, err = run(capsys, "rescore", "mme", tmp_path, "--present-only")
    assert code == 0 and last_json(out)["subtasks"] == {"existence": 200.0}  # counted as calculation.py does
    (warning,) = warnings_of(err)
    assert f"{path}:5:" in warning and "'1.png' is listed twice (lines 1 and 5)" in warning
    refused(capsys, "rescore", "mme", tmp_path, "--present-only", "--strict", names=path, line=5,
            says="listed twice")


def test_item12_mme_a_misspelt_or_folder_subtask_file_is_not_ignored(tmp_path, capsys):
    mme_file(tmp_path / "existence.txt", ["1.png"])
    colour = mme_file(tmp_path / "colour.txt", ["1.png"])
    refused(capsys, "rescore", "mme", tmp_path, "--present-only", names=colour, says="did you mean color.txt")
    colour.unlink()
    (tmp_path / "color.txt").mkdir()
    refused(capsys, "rescore", "mme", tmp_path, "--present-only", names=tmp_path / "color.txt", says="is a folder")
    (tmp_path / "color.txt").rmdir()
    notes = tmp_path / "notes.txt"
    notes.write_text("what I ran\n")
    code, out, err = run(capsys, "rescore", "mme", tmp_path, "--present-only")
    assert code == 0 and str(notes) in err and "ignored" in err
    refused(capsys, "rescore", "mme", tmp_path, "--present-only", "--strict", names=notes, says="not an MME subtask")
