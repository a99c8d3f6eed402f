"""The bad-input corpus (docs/RELIABILITY.md): every case is generated here, at test time, and run
through the command line as a user would. For each one: exit status 2 and a one-line message (or
a documented acceptance), no traceback, nothing written outside the output folder, and nothing
already computed lost.

A case is a function that builds its inputs under ``root`` and returns the command's arguments
(and, optionally, the text the message must hold). Add a case for every bad input found.
"""
from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Callable

import pytest
from PIL import Image

from harness.cli import main
from tests.edit_world import edit_data, edit_spec, reset_judge, tree, write_spec


@pytest.fixture(autouse=True)
def fresh_judge():
    reset_judge()

EXAMPLES = Path(__file__).parents[1] / "examples"
FAKE_KEY = "sk-" + "x" * 24  # shaped like a key, made here (never a real one)
CASES: dict[str, Callable[[Path], tuple[list[str], str]]] = {}


def case(function: Callable[[Path], tuple[list[str], str]]) -> Callable:
    CASES[function.__name__] = function
    return function


def huge_png(path: Path, side: int = 20000) -> Path:
    """A PNG header announcing ``side`` x ``side`` pixels (no pixel data): PIL refuses it on open."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    return path


def eval_args(root: Path, spec_text: str) -> list[str]:
    (root / "spec.yaml").write_text(spec_text, encoding="utf-8")
    return ["eval", str(root / "spec.yaml"), "--out", str(root / "run"), "--no-progress"]


def imgedit_eval(root: Path, keys=("1", "2"), image_id: str = "a.jpg") -> list[str]:
    data = edit_data(root / "data", list(keys), image_id=image_id)
    return ["eval", str(write_spec(root / "spec.yaml", edit_spec(data))), "--out", str(root / "run"),
            "--no-progress"]


# -- specs and overrides ------------------------------------------------------------------------------

@case
def spec_not_yaml(root):
    return eval_args(root, "benchmark: [unclosed\n"), "spec.yaml"


@case
def spec_unknown_key(root):
    return eval_args(root, "benchmark: x\nmodel: y\nbenchmarks: z\n"), "unknown keys ['benchmarks']"


@case
def spec_unknown_benchmark(root):
    return eval_args(root, "benchmark: imgedits\nmodel: janus\n"), "Did you mean 'imgedit'"


@case
def set_without_equals(root):
    return [*imgedit_eval(root), "--set", "seed"], "KEY=VALUE"


@case
def set_a_value_that_is_not_yaml(root):
    return [*imgedit_eval(root), "--set", "seed=[1,"], "--set seed: not valid YAML"


@case
def set_a_key(root):
    return [*imgedit_eval(root), "--set", "model.params.api_key=" + FAKE_KEY], "api_key_env"


@case
def misspelt_judge_role(root):
    args = imgedit_eval(root)
    spec = Path(args[1])
    spec.write_text(spec.read_text().replace("judge:\n", "judges:\n", 1))
    return args, "did you mean 'judge'"


@pytest.mark.parametrize("value", ['"3"', "-1", "2.5"])
def test_a_shapes_geneval_spec_with_a_bad_per_tag_is_refused(tmp_path, capsys, value):
    args = eval_args(tmp_path, f"benchmark: {{name: geneval, params: {{prompts: shapes, per_tag: {value}}}}}\n"
                               "model: shapes-renderer\njudges: {detector: shapes, color_classifier: shapes}\n")
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("harness: error: benchmark 'geneval': ") and "per_tag" in err and "\n" not in err
    assert not (tmp_path / "run" / "spec.yaml").exists()


# -- data that becomes paths, and files that are not what they claim ------------------------------------

@case
def edit_key_climbs_out(root):
    return imgedit_eval(root, keys=("1", "../../../outside")), "basic_edit.json:3"


@case
def edit_image_id_absolute(root):
    return imgedit_eval(root, image_id="/etc/hostname"), "basic_edit.json:3"


@case
def edit_list_not_utf8(root):
    args = imgedit_eval(root)
    path = root / "data" / "basic_edit.json"
    path.write_bytes(path.read_bytes().replace(b"Add a hat 1.", b"Add a h\xe4t 1."))
    return args, "basic_edit.json:3: not UTF-8"


@case
def source_image_corrupt(root):
    args = imgedit_eval(root)
    (root / "data" / "images" / "a.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return args, "a.jpg"


@case
def source_image_decompression_bomb(root):
    args = imgedit_eval(root)
    huge_png(root / "data" / "images" / "a.jpg")
    return args, "too large to open safely"


# -- data recipes and pipelines -------------------------------------------------------------------------

@case
def synth_out_is_a_file(root):
    (root / "taken").write_text("a file")
    return ["synth", str(EXAMPLES / "shapes-recipe.yaml"), "--out", str(root / "taken")], "not a folder"


@case
def recipe_holds_a_key(root):
    (root / "r.yaml").write_text("name: x\nclients: {llm: {base_url: 'https://a.example/v1', model: m, "
                                 "api_key: " + FAKE_KEY + "}}\nsteps: [{name: shapes-world}]\n")
    return ["synth", str(root / "r.yaml"), "--out", str(root / "data")], "looks like a secret"


@case
def recipe_url_with_credentials(root):
    (root / "r.yaml").write_text("name: x\nclients: {llm: {base_url: 'https://me:pw@a.example/v1', model: m}}\n"
                                 "steps: [{name: shapes-world}]\n")
    return ["synth", str(root / "r.yaml"), "--out", str(root / "data")], "credentials"


@case
def pipeline_not_yaml(root):
    (root / "p.yaml").write_text("name: p\nstages: {a: [\n")
    return ["run", str(root / "p.yaml"), "--out", str(root / "out"), "--no-progress"], "p.yaml"


# -- reports on things that are not runs ----------------------------------------------------------------

@case
def report_on_an_empty_folder(root):
    (root / "empty").mkdir()
    return ["report", str(root / "empty"), "--out", str(root / "report")], "empty"


@case
def compare_with_a_missing_folder(root):
    (root / "a").mkdir()
    return ["compare", str(root / "a"), str(root / "missing")], "no run folders"


@case
def leaderboard_of_an_unknown_file(root):
    (root / "scores.txt").write_text("1 2 3\n")
    return ["leaderboard", str(root / "scores.txt"), "--out", str(root / "board")], "scores.txt"


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_bad_input_is_one_line_exit_2_and_writes_nothing_outside(tmp_path, capsys, name):
    root = tmp_path / "case"
    root.mkdir()
    args, expected = CASES[name](root)
    outside = tmp_path.parent / "outside.png"
    before = tree(tmp_path)
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    errors = [line for line in err.splitlines() if line.startswith("harness: error: ")]
    assert "Traceback" not in err and len(errors) == 1 and err.splitlines()[-1] == errors[0], err
    assert expected in errors[0], err  # progress lines may come before the one error line
    out = {"run", "data", "out", "report", "board"}
    new = [name for name in tree(tmp_path) if name not in before
           and not any(name.startswith(f"case/{folder}/") for folder in out)]
    assert new == [] and not outside.exists()


def test_a_bad_second_spec_loses_nothing_a_run_computed(tmp_path, capsys):
    args = imgedit_eval(tmp_path)
    assert main(args) == 0
    run = tmp_path / "run"
    finished = tree(run)
    Path(args[1]).write_text(Path(args[1]).read_text().replace("seed: 0", "seed: 1"))
    assert main(args) == 2
    assert "already holds a run of a different spec" in capsys.readouterr().err
    assert tree(run) == finished
    cache = run / "cache" / "generations.rank0.jsonl"  # a corrupt line: set aside, the run goes on
    cache.write_bytes(b'{"key": broken\n' + cache.read_bytes())
    Path(args[1]).write_text(Path(args[1]).read_text().replace("seed: 1", "seed: 0"))
    assert main(args) == 0
    assert json.loads((run / "summary.json").read_text())["scores"]["overall"] == 4.0
    assert (run / "cache" / "generations.rank0.jsonl.corrupt").read_bytes() == b'{"key": broken\n'
    assert Image.open(run / "edited" / "1.png").size == (24, 16)
