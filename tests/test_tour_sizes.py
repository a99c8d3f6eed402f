"""The tour's size flags, the eval stage's data-path parameters and the help's "start here" line come
from the packages that own them (the shapes suite table, the demo command), not from lists kept in
``demo/``, ``shapes/eval_stage.py`` or the CLI shell."""
import ast
from pathlib import Path

import pytest

from harness.cli import build_parser, main
from shapes.suite import SHAPES_BENCHMARKS, ShapesBenchmark, TourSize, tour_options

ROOT = Path(__file__).resolve().parents[1]

#: the tour's flags as users know them: flag -> (default, DemoSize key)
LEGACY = {"--per-tag": (8, "per_tag"), "--images-per-prompt": (4, "images_per_prompt"),
          "--mme-images": (10, "mme_images_per_subtask"), "--mmbench-questions": (40, "mmbench_questions"),
          "--dpg-items": (12, "dpg_items"), "--imgedit-items": (18, "imgedit_items"),
          "--gedit-items": (10, "gedit_items"), "--complex-edit-items": (6, "complex_edit_items")}


def _tour_args(argv):
    return build_parser().parse_args(["demo", "--tour", *argv])


def test_every_tour_flag_keeps_its_name_default_and_key():
    options = tour_options()
    assert {option.flag: (option.default, option.key) for option in options} == LEGACY
    assert len({option.key for option in options}) == len(options)
    args = _tour_args([])
    assert args.mme_images == 10 and args.per_tag == 8 and args.complex_edit_items == 6


def test_a_size_flag_reaches_its_benchmark(monkeypatch):
    import demo.tour

    seen = {}

    def run_demo(out, size, **options):
        seen["size"] = size
        return out / "report.html"

    monkeypatch.setattr(demo.tour, "run_demo", run_demo)
    assert main(["demo", "--tour", "--no-progress", "--out", "x", "--mme-images", "3", "--per-tag", "2"]) == 0
    size = seen["size"]
    assert size.mme_images_per_subtask == 3 and size.per_tag == 2 and size.dpg_items == 12
    sizes = demo.tour._sizes(size)
    assert sizes["mme"] == ({"images_per_subtask": 3}, {})
    assert sizes["geneval"] == ({}, {"per_tag": 2, "images_per_prompt": 4})


def test_a_size_below_one_is_refused(capsys):
    assert main(["demo", "--tour", "--mme-images", "0"]) == 2
    assert "--mme-images must be at least 1" in capsys.readouterr().err


def test_a_new_suite_entry_gets_its_tour_flag_without_touching_demo(monkeypatch, tmp_path, capsys):
    from demo.tour import DemoSize, _sizes, demo_data_paths

    toy = ShapesBenchmark({"items": 3}, {}, writer=lambda path, data, seed: None, paths={"data": ""},
                          tour_sizes=(TourSize("--toy-items", "items", 3, "toy shapes edits"),))
    monkeypatch.setitem(SHAPES_BENCHMARKS, "toy", toy)
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    assert "tour: toy shapes edits" in " ".join(capsys.readouterr().out.split())
    assert _tour_args(["--toy-items", "5"]).toy_items == 5
    size = DemoSize(toy_items=5)
    assert _sizes(size)["toy"] == ({"items": 5}, {})
    assert demo_data_paths(tmp_path, size, 0)["toy"] == tmp_path / "data" / "toy-shapes-5-seed0"
    assert _sizes(DemoSize())["toy"] == ({"items": 3}, {})
    with pytest.raises(TypeError, match="no size"):
        DemoSize(nonsense=1)


def test_the_eval_stage_takes_its_data_path_params_from_the_suite():
    from harness import registry
    from shapes.eval_stage import EvalStage, _benchmark_params

    registry.load_plugins()
    for name, shapes in SHAPES_BENCHMARKS.items():
        assert not set(shapes.paths) & _benchmark_params(name)
    stage = EvalStage()
    with pytest.raises(ValueError, match="unknown params"):
        stage.check({"models": {"a": "m"}, "benchmarks": [{"name": "dpg", "params": {"csv": "x.csv"}}]})
    stage.check({"models": {"a": "m"}, "benchmarks": [{"name": "dpg", "params": {"items": 2, "mode": "fixed"}}]})
    source = (ROOT / "shapes" / "eval_stage.py").read_text()
    assert "judge_prompts" not in source and '"csv"' not in source


def test_the_start_here_line_comes_from_the_registered_command():
    from demo.command import DemoCommand

    assert DemoCommand.start_here
    assert build_parser().epilog == f"{DemoCommand.start_here} Docs: README.md and docs/."
    tree = ast.parse((ROOT / "harness" / "cli.py").read_text())
    strings = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)]
    assert not [text for text in strings if "harness demo" in text]
