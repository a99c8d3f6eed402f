"""The command line: rescore's last-line JSON, clear errors, demo and report end to end."""
import json
import re
from pathlib import Path

import pytest

from harness.cli import main


def _metadata(tag, cls):
    return json.dumps({"tag": tag, "include": [{"class": cls, "count": 1}], "prompt": f"a photo of a {cls}"})


def _row(tag, cls, correct):
    return {"filename": f"x/{cls}.png", "tag": tag, "prompt": f"a photo of a {cls}", "correct": correct,
            "reason": "", "metadata": _metadata(tag, cls), "details": "{}"}


def test_rescore_results_prints_official_numbers_as_last_line(tmp_path, capsys):
    rows = [_row("single_object", "cat", True), _row("single_object", "cat", False),
            _row("single_object", "dog", True), _row("counting", "cow", False), _row("counting", "cow", False)]
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(r).replace("/", "\\/") + "\n" for r in rows))
    assert main(["rescore", "geneval", str(path)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    last = json.loads(out[-1])
    # by hand: single_object 2/3, counting 0/2; overall = (2/3 + 0) / 2; prompts = cat, dog, cow
    assert last == {"overall": (2 / 3 + 0.0) / 2, "tasks": {"single_object": 2 / 3, "counting": 0.0},
                    "images": 5, "prompts": 3}
    assert "Overall score (avg. over tasks): 0.33333" in out


def test_rescore_bad_line_exits_nonzero_naming_file_and_line(tmp_path, capsys):
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps(_row("single_object", "cat", True)) + "\n{not json\n")
    assert main(["rescore", "geneval", str(path)]) == 2
    assert f"{path}:2" in capsys.readouterr().err


def test_rescore_from_detections(tmp_path, capsys):
    # prompt 0 of the official metadata is "a photo of a bench" (single_object)
    lines = [{"prompt_index": 0, "image": "0000.png",
              "detections": [{"label": "bench", "score": 0.95, "box": [1, 2, 30, 40], "color": None}]},
             {"prompt_index": 0, "image": "0001.png",
              "detections": [{"label": "bench", "score": 0.2, "box": [1, 2, 30, 40], "color": None}]}]
    path = tmp_path / "detections.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert main(["rescore", "geneval", str(path), "--from-detections"]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last == {"overall": 0.5, "tasks": {"single_object": 0.5}, "images": 2, "prompts": 1}
    lines[1]["detections"][0]["color"] = "magenta"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert main(["rescore", "geneval", str(path), "--from-detections"]) == 2
    assert f"{path}:2" in capsys.readouterr().err


def test_unknown_plugin_in_a_spec_suggests_the_right_name(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text("benchmark: {name: geneval, params: {prompts: shapes, per_tag: 1}}\n"
                    "model: {name: shapes-renderr}\njudges: {detector: shapes, color_classifier: shapes}\n")
    assert main(["eval", str(spec), "--out", str(tmp_path / "run")]) == 2
    assert "Did you mean 'shapes-renderer'" in capsys.readouterr().err


def test_demo_writes_a_report_with_table_and_image_grid(tmp_path, capsys):
    assert main(["demo", "--tour", "--out", str(tmp_path), "--per-tag", "1", "--images-per-prompt", "2",
                 "--mme-images", "2", "--mmbench-questions", "6", "--dpg-items", "3",
                 "--imgedit-items", "7", "--no-progress"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "Loading weights" not in captured.err  # transformers' bars follow --no-progress too
    assert out.strip().splitlines()[-1] == f"report: {tmp_path / 'report.html'}"
    assert "geneval shapes-renderer: overall 1.0000" in out
    # four shapes subtasks, every question right: 4 x (100 + 100) points; every MMBench question right
    assert "mme shapes-answerer: perception 800.00" in out
    assert "mmbench shapes-answerer: overall 1.0000" in out
    # procedural models that draw and edit correctly get full marks from the procedural judges
    assert "dpg shapes-renderer: overall 100.00" in out and "imgedit shapes-editor: overall 5.00" in out
    page = (tmp_path / "report.html").read_text()
    assert "<table" in page and page.count("data:image/png;base64") >= 2 * 6 * 2
    assert "http://" not in page and "https://" not in page  # self-contained
    assert all(f"<h2>{name}</h2>" in page for name in ("geneval", "dpg", "imgedit", "mme", "mmbench"))
    assert "answer (raw)" in page
    markdown = (tmp_path / "report.md").read_text()
    assert "| tiny-janus | janus |" in markdown and "| shapes-renderer | shapes-renderer | 1.0000 |" in markdown
    assert "| shapes-answerer | shapes-answerer | 800.00 | 200.00 | 200.00 | 200.00 | 200.00 |" in markdown


# The demo's pipeline (examples/shapes-pipeline.yaml) at tiny sizes: every stage runs for real.
_TINY_TRAIN = ["epochs=1", "global_batch=4", "micro_batch=4"]
TINY_DEMO = ["stages.data.params.overrides={steps.0.params.t2i: 12}",
             "stages.wrong-captions-data.params.overrides={steps.0.params.t2i: 12}",
             "stages.vq.params={profile: grid, image_size: 32, patch_size: 4, num_res_blocks: 0, steps: 5, "
             "batch_size: 2, eval_scenes: 0}",
             "stages.untrained.params.hidden=32", "stages.untrained.params.layers=1",
             *[f"stages.{name}.params.{value}" for name in ("shapes", "wrong-captions") for value in _TINY_TRAIN],
             "stages.eval.params.benchmarks=[{name: geneval, params: {per_tag: 1, images_per_prompt: 1}}]",
             "stages.report.params.n_boot=100"]


def test_demo_runs_the_shapes_pipeline_and_prints_the_ranking(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--no-progress", *[a for s in TINY_DEMO for a in ("--set", s)]]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == f"report: {out / 'report' / 'report.html'}"
    stages = json.loads((out / "pipeline.json").read_text())["stages"]
    assert list(stages) == ["data", "wrong-captions-data", "vq", "untrained", "shapes", "wrong-captions", "eval",
                            "report"]
    assert [line.split()[1] for line in lines[:8]] == list(stages)  # one line per stage, then the headline
    number = r"(?:[\d.e+-]+|n/a)"
    p_value = r"\(p (?:= [\d.e-]+|< 0\.0001)\)"
    assert re.fullmatch(rf"geneval: [a-z-]+ {number}(?: [>=] [a-z-]+ {number} (?:{p_value}|\(not comparable\)))"
                        r"{2}", lines[8]), lines[8]
    assert re.fullmatch(r"geneval: shapes - wrong-captions = [-+][\d.e-]+ \(paired test p = [\d.e-]+\)", lines[9])
    assert re.fullmatch(r"geneval: shapes - untrained = [-+][\d.e-]+ \(paired test p = [\d.e-]+\)", lines[10])
    page = (out / "report" / "report.html").read_text()
    assert all(stage["hash"] in page for name, stage in stages.items() if name != "report")
    assert "Ranking" in page and "side by side" in page
    summary = json.loads((out / "eval" / "runs" / "geneval" / "shapes" / "summary.json").read_text())
    assert summary["protocol"]["world"]["shapes_profile"]["name"] == "grid"


@pytest.mark.parametrize("override, message", [
    ("benchmark.params.bogus=1", "unexpected keyword argument 'bogus'"),
    ("benchmark.params.options={threshold: abc}", "threshold"),
    ("benchmark.params.options={bgcolor: original}", "is a judge setting"),
    ("benchmark.params.images_per_prompt=0", "at least 1"),
    ("model={name: janus, params: {path: /nonexistent/janus}}", "/nonexistent/janus' does not exist"),
    ("model.params.colour=red", "unexpected keyword argument 'colour'"),
])
def test_bad_spec_values_are_one_line_errors(tmp_path, capsys, override, message):
    spec = tmp_path / "spec.yaml"
    spec.write_text("benchmark: {name: geneval, params: {prompts: shapes, per_tag: 1}}\n"
                    "model: {name: shapes-renderer}\n"
                    "judges: {detector: shapes, color_classifier: shapes}\n")
    code = main(["eval", str(spec), "--out", str(tmp_path / "run"), "--set", override, "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


MME_SUBTASKS = ["existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark",
                "artwork", "OCR", "commonsense_reasoning", "numerical_calculation", "text_translation",
                "code_reasoning"]


def test_rescore_mme_prints_official_totals_as_last_line(tmp_path, capsys):
    for name in MME_SUBTASKS:
        # one image: the Yes question answered "Yes", the No question answered "Yes" (wrong), except in
        # existence where both are right: acc 1/2, acc+ 0 -> 50 points; existence 200 points
        second = "No" if name == "existence" else "Yes"
        (tmp_path / f"{name}.txt").write_text(f"1.png\tIs it? Please answer yes or no.\tYes\tYes\n"
                                              f"1.png\tIs it not? Please answer yes or no.\tNo\t{second}\n")
    assert main(["rescore", "mme", str(tmp_path)]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["perception"] == 200 + 9 * 50 and last["cognition"] == 4 * 50
    assert last["subtasks"]["existence"] == 200 and last["subtasks"]["OCR"] == 50

    (tmp_path / "count.txt").write_text("1.png\tIs it?\tYes\n")  # three fields, not four
    assert main(["rescore", "mme", str(tmp_path)]) == 2
    assert f"{tmp_path / 'count.txt'}:1" in capsys.readouterr().err


def test_rescore_mmbench_prints_circular_accuracy_as_last_line(tmp_path, capsys):
    header = "index\tquestion\tA\tB\tanswer\tcategory\tl2-category\tsplit\tprediction\n"
    rows = [  # question 0 right in both passes; question 1 wrong in its second pass
        "0\tWhich?\tred\tblue\tA\tattribute_recognition\tfinegrained_perception (instance-level)\tdev\tA\n",
        "1000000\tWhich?\tblue\tred\tB\tattribute_recognition\tfinegrained_perception (instance-level)\tdev\tThe answer is B\n",
        "1\tWhere?\tleft\tright\tB\tobject_localization\tfinegrained_perception (instance-level)\tdev\tB\n",
        "1000001\tWhere?\tright\tleft\tA\tobject_localization\tfinegrained_perception (instance-level)\tdev\tB\n",
    ]
    path = tmp_path / "preds.tsv"
    path.write_text(header + "".join(rows))
    assert main(["rescore", "mmbench", str(path)]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["overall"] == 0.5
    assert last["l3"] == {"attribute_recognition": 1.0, "object_localization": 0.0}
    assert list(last["l2"].values()) == [0.5]


@pytest.mark.parametrize("edit, message", [
    (lambda text: text.replace("\tA\tattribute", "\t\tattribute", 1), "has no answer"),
    (lambda text: text + text.splitlines()[1] + "\n", "appears twice"),  # refused with --strict (below)
    (lambda text: text.replace("\tprediction\n", "\tprediction\thit\n").replace("\tB\n", "\tB\t1\n"), "result file"),
])
def test_rescore_mmbench_refuses_files_it_cannot_score_honestly(tmp_path, capsys, edit, message):
    header = "index\tquestion\tA\tB\tanswer\tcategory\tl2-category\tsplit\tprediction\n"
    rows = ["0\tWhich?\tred\tblue\tA\tattribute_recognition\tfinegrained_perception (instance-level)\tdev\tA\n",
            "1000000\tWhich?\tblue\tred\tB\tattribute_recognition\tfinegrained_perception (instance-level)\tdev\tB\n"]
    path = tmp_path / "preds.tsv"
    path.write_text(edit(header + "".join(rows)))
    assert main(["rescore", "mmbench", str(path), "--strict"]) == 2  # without it, a repeated index is scored
    err = capsys.readouterr().err                                    # as upstream does, with a warning
    assert message in err and str(path) in err and "Traceback" not in err


DPG_CSV = """item_id,text,keywords,proposition_id,dependency,category_broad,category_detailed,tuple,question_natural_language
first,t,k,1,0,entity,whole,entity - whole (x),Is there an x?
a,t,k,1,0,entity,whole,entity - whole (cat),Is there a cat?
a,t,k,2,1,attribute,color,"attribute - color (cat, black)","Is the cat, the one here, black?"
b,t,k,1,0,entity,whole,entity - whole (dog),Is there a dog?
b,t,k,2,1,attribute,color,"attribute - color (dog, white)",Is the dog white?
"""


def test_rescore_dpg_replays_a_detail_file_through_the_official_arithmetic(tmp_path, capsys):
    (tmp_path / "dpg_bench.csv").write_text(DPG_CSV)
    detail = tmp_path / "dpg_detail.txt"
    detail.write_text("out/a.png, (0, 0, 384, 384), Is there a cat?, yes\n"
                      "out/a.png, (0, 0, 384, 384), Is the cat, the one here, black?, no\n"
                      "out/b.png, (0, 0, 384, 384), Is there a dog?, no\n"
                      "out/b.png, (0, 0, 384, 384), Is the dog white?, yes\n")
    assert main(["rescore", "dpg", str(detail), "--csv", str(tmp_path / "dpg_bench.csv")]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # a: 1 and 0 -> 0.5; b: "no" zeroes its dependant -> 0; overall 100 * (0.5 + 0) / 2 = 25
    assert last["overall"] == pytest.approx(25.0) and last["images"] == 2
    # categories use raw answers (before zeroing): whole [1, 0], color [0, 1]
    assert last["l2"] == {"attribute - color": pytest.approx(50.0), "entity - whole": pytest.approx(50.0)}
    assert last["l1"] == {"attribute": pytest.approx(50.0), "entity": pytest.approx(50.0)}


def test_rescore_imgedit_prints_type_means_and_counts_judge_errors_apart(tmp_path, capsys):
    edits = {"1": {"id": "x/1.jpg", "prompt": "Add a cat.", "edit_type": "add"},
             "2": {"id": "x/2.jpg", "prompt": "Remove the dog.", "edit_type": "remove"},
             "3": {"id": "x/3.jpg", "prompt": "Add a hat.", "edit_type": "add"}}
    results = {"1": "Brief reasoning: fine.\nPrompt Compliance: 4\nVisual Naturalness: 3\nPhysical: 3",
               "2": "Brief reasoning: good.\nA: 5\nB: 5\nC: 5",
               "3": {"error": "Rate limit reached"}}
    (tmp_path / "basic_edit.json").write_text(json.dumps(edits))
    (tmp_path / "result.json").write_text(json.dumps(results, indent=4))
    args = ["rescore", "imgedit", str(tmp_path / "result.json"), "--edits", str(tmp_path / "basic_edit.json")]
    assert main(args) == 0
    captured = capsys.readouterr()
    last = json.loads(captured.out.strip().splitlines()[-1])
    assert last["types"]["add"] == 3.33 and last["types"]["remove"] == 5.0  # round(10/3, 2); item 3 excluded
    assert last["overall"] == pytest.approx((3.33 + 5.0) / 2)
    assert main(args + ["--strict"]) == 2 and "3" in capsys.readouterr().err


@pytest.mark.parametrize("example", sorted((Path(__file__).parents[1] / "examples").glob("*.yaml")),
                         ids=lambda path: path.name)
def test_every_example_spec_loads_and_names_registered_plugins(example):
    import yaml

    from harness import registry
    from harness.spec import RunSpec

    data = yaml.safe_load(example.read_text())
    if "stages" in data:  # a pipeline: stage kinds, params and references are checked at load
        from harness.pipeline import PipelineSpec

        stages = PipelineSpec.load(example).stages
        assert stages[0].kind == "synth" and stages[-1].kind == "report"  # from a recipe to a report
        return
    if "steps" in data:  # a data recipe: its steps build and connect
        from harness.recipe import RecipeSpec
        from harness.synth import build_plugins

        recipe = RecipeSpec.load(example)
        assert len(build_plugins(recipe)) == len(recipe.steps) >= 2
        return
    spec = RunSpec.load(example)
    benchmark = registry.get("benchmark", spec.benchmark.name)
    registry.get("model", spec.model.name)
    for role, component in spec.judges.items():
        registry.get(benchmark.judge_roles[role], component.name)


def test_compare_gate_exits_1_on_a_regression_and_0_otherwise(small_demo, capsys):
    runs = small_demo / "runs" / "geneval"
    assert main(["compare", str(runs / "shapes-renderer"), str(runs / "shapes-renderer"), "--gate"]) == 0
    assert "gate PASSED" in capsys.readouterr().out
    # the untrained model against the procedural one: a drop of 1.0, far beyond any margin
    assert main(["compare", str(runs / "tiny-janus"), str(runs / "shapes-renderer"), "--gate",
                 "--margin", "geneval=0.05"]) == 1
    out = capsys.readouterr().out
    assert "FAIL geneval" in out and "margin 0.0500" in out and "gate FAILED" in out


def test_report_against_a_published_baseline_refuses_a_misleading_difference(small_demo, tmp_path, capsys):
    run = small_demo / "runs" / "geneval" / "shapes-renderer"
    assert main(["report", str(run), "--baseline", "published:janus-pro-7b", "--out", str(tmp_path)]) == 0
    markdown = (tmp_path / "report.md").read_text()
    # the shapes world's 1.0 against the paper's 0.80: no "+0.2000", a reason instead
    assert "not comparable" in markdown.lower() and "+0.2000" not in markdown
    assert "not the official 553" in markdown
    assert main(["report", str(run), "--baseline", "published:janus-pro-8b", "--out", str(tmp_path)]) == 2
    assert "janus-pro-7b" in capsys.readouterr().err  # did you mean


def test_leaderboard_command_writes_three_files(small_demo, tmp_path, capsys):
    assert main(["leaderboard", str(small_demo / "runs"), "--published", "janus-pro-7b", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["leaderboard.csv", "leaderboard.html", "leaderboard.md"]
    assert "| published:janus-pro-7b | published | Janus-Pro-7B | 0.800 |" in (tmp_path / "leaderboard.md").read_text()
    assert main(["leaderboard", "--out", str(tmp_path)]) == 2
