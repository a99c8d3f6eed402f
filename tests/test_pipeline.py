"""``harness run PIPELINE.yaml``: a tiny pipeline (synth -> VQ -> tiny Janus -> train -> eval -> report)
runs end to end, a second run skips every stage and touches no artifact, a changed training
parameter re-runs only training and what follows, and bad pipeline files fail in one line."""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import InputError
from harness.pipeline import PipelineSpec

RECIPE = Path(__file__).resolve().parent.parent / "examples" / "shapes-recipe.yaml"
STAGES = ["data", "vq", "untrained", "trained", "eval", "report"]

# Real stages at tiny sizes: 16 rows, a 32 px VQ trained 5 steps, 2 optimiser steps, 6 GenEval
# images and 8 MME questions per model.
TINY = """\
name: tiny
seed: 0
stages:
  - name: data
    kind: synth
    params: {recipe: recipe.yaml, overrides: {steps.0.params.t2i: 12, steps.0.params.edits: 4}}
  - name: vq
    kind: shapes-vq
    params: {image_size: 32, patch_size: 8, steps: 5, batch_size: 2, eval_scenes: 0}
  - name: untrained
    kind: tiny-janus
    params: {vq: vq, words: data, hidden: 32, layers: 1}
  - name: trained
    kind: train
    params: {model: untrained, data: data, epochs: 1, global_batch: 8, micro_batch: 4, learning_rate: 0.001}
  - name: eval
    kind: eval
    params:
      models: {untrained: untrained, trained: trained}
      answer_tokens: 2
      benchmarks:
        - {name: geneval, params: {per_tag: 1, images_per_prompt: 1}}
        - {name: mme, params: {images_per_subtask: 1}}
  - name: report
    kind: report
    params: {eval: eval, candidate: trained, baseline: untrained, n_boot: 100}
"""


def _run(pipeline: Path, out: Path, *extra: str) -> list[str]:
    """``harness run`` in this process; its stdout lines (capsys is per test, these run in fixtures)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(["run", str(pipeline), "--out", str(out), "--no-progress", *extra]) == 0
    return buffer.getvalue().strip().splitlines()


def _record(out: Path) -> dict:
    return json.loads((out / "pipeline.json").read_text())["stages"]


def _snapshot(out: Path) -> dict[str, tuple[int, int]]:
    """Every file but the pipeline record and its lock (which holds the pid of the last run): (mtime in ns, size)."""
    return {str(p.relative_to(out)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in out.rglob("*") if p.is_file() and p.name not in ("pipeline.json", ".harness.lock")}


@pytest.fixture(scope="module")
def pipeline_file(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pipeline")
    shutil.copy(RECIPE, folder / "recipe.yaml")  # found relative to the pipeline file
    (folder / "tiny.yaml").write_text(TINY)
    return folder / "tiny.yaml"


@pytest.fixture(scope="module")
def first(pipeline_file, tmp_path_factory, one_torch_thread):
    out = tmp_path_factory.mktemp("out") / "run"
    return out, _run(pipeline_file, out), _record(out)


def test_first_run_prints_each_stage_with_its_hash_and_the_report_last(first):
    out, lines, record = first
    assert [line.split()[:2] for line in lines[:-1]] == [["done", stage] for stage in STAGES]
    assert lines[-1] == str(out / "report" / "report.md")
    assert list(record) == STAGES
    for line, stage in zip(lines, STAGES):
        manifest = json.loads((out / record[stage]["folder"] / "artifact.json").read_text())
        assert line.split()[2] == record[stage]["hash"] == manifest["hash"]
        assert record[stage]["skipped"] is False and record[stage]["seconds"] > 0


def test_lineage_links_each_stage_to_the_hashes_it_was_made_from(first):
    out, _, record = first
    hashes = {stage: record[stage]["hash"] for stage in STAGES}
    assert record["untrained"]["inputs"] == {"vq": hashes["vq"], "data": hashes["data"]}
    assert record["trained"]["inputs"] == {"untrained": hashes["untrained"], "data": hashes["data"]}
    assert record["eval"]["inputs"] == {"untrained": hashes["untrained"], "trained": hashes["trained"]}
    assert record["report"]["inputs"] == {s: hashes[s] for s in STAGES[:-1]}
    # the model artifact lists its weights by their sha256 (first 16 hex digits)
    weights = out / "untrained" / "model.safetensors"
    manifest = json.loads((out / "untrained" / "artifact.json").read_text())
    assert manifest["files"]["model.safetensors"] == hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    assert (out / "trained" / "model" / "config.json").is_file()


def test_report_shows_every_stage_hash_and_the_paired_tests(first):
    out, _, record = first
    report = (out / "report" / "report.md").read_text()
    for stage in STAGES[:-1]:
        assert f"| {stage} | {record[stage]['kind']} | {record[stage]['hash']} |" in report
    tests = report.split("## Paired tests")[1].split("## Comparison")[0]
    assert "geneval (overall)" in tests and "mme (overall)" in tests
    assert "McNemar on 6 samples" in tests  # 6 tags x 1 prompt x 1 image, paired by sample id
    assert "McNemar on 8 samples" in tests  # 4 subtasks x 1 image x 2 questions
    html = (out / "report" / "report.html").read_text()
    assert all(record[stage]["hash"] in html for stage in STAGES[:-1])


@pytest.fixture(scope="module")
def second(first, pipeline_file):
    out = first[0]
    before = _snapshot(out)
    lines = _run(pipeline_file, out)
    return before, _snapshot(out), lines, _record(out)


def test_second_run_skips_every_stage_and_changes_no_file(first, second):
    before, after, lines, record = second
    assert lines[:-1] == [f"skip {stage} {first[2][stage]['hash']}" for stage in STAGES]
    assert all(record[stage]["skipped"] for stage in STAGES)
    assert after == before


@pytest.fixture(scope="module")
def third(second, first, pipeline_file):
    lines = _run(pipeline_file, first[0], "--set", "stages.trained.params.learning_rate=0.002")
    return lines, _record(first[0])


def test_changed_training_parameter_reruns_training_and_what_follows(first, third):
    lines, record = third
    old = first[2]
    assert [line.split()[0] for line in lines[:-1]] == ["skip", "skip", "skip", "done", "done", "done"]
    for stage in ("data", "vq", "untrained"):
        assert record[stage]["hash"] == old[stage]["hash"] and record[stage]["skipped"]
    assert record["trained"]["hash"] != old["trained"]["hash"]
    assert record["eval"]["inputs"]["trained"] == record["trained"]["hash"]
    train_config = json.loads((first[0] / "trained" / "train_config.json").read_text())
    assert train_config["config"]["learning_rate"] == 0.002


def test_a_changed_artifact_file_is_made_again(third, first, pipeline_file):
    out = first[0]
    (out / "report" / "report.md").write_text("edited by hand\n")
    lines = _run(pipeline_file, out, "--set", "stages.trained.params.learning_rate=0.002")
    assert [line.split()[0] for line in lines[:-1]] == ["skip"] * 5 + ["done"]
    assert "## Lineage" in (out / "report" / "report.md").read_text()


def test_a_pipeline_killed_during_evaluation_resumes_to_the_same_artifacts(first, pipeline_file, tmp_path):
    """SIGKILL once evaluation has written something; the next run skips the finished stages, resumes
    the evaluation and ends with the hashes of the uninterrupted run (``first``)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "harness", "run", str(pipeline_file), "--out", str(out),
                                "--no-progress", "--threads", "1"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.monotonic() + 600
    runs = out / "eval" / "runs"
    while not (runs.is_dir() and any(runs.rglob("*.jsonl"))):  # some outputs or verdicts are written
        assert process.poll() is None, "the pipeline ended before its evaluation wrote anything"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert _record(out)["eval"]["status"] == "started"  # killed inside the stage
    lines = _run(pipeline_file, out)
    assert [line.split()[0] for line in lines[:-1]] == ["skip"] * 4 + ["done", "done"]
    assert {stage: entry["hash"] for stage, entry in _record(out).items()} == \
        {stage: entry["hash"] for stage, entry in first[2].items()}


# ------------------------------------------------------------------------------------------ bad input


def _error(tmp_path, capsys, text: str) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0], err
    assert not (tmp_path / "out").exists()  # refused before anything ran
    return err[0]


HEAD = "name: bad\nstages:\n  - {name: data, kind: synth, params: {recipe: r.yaml}}\n"


def test_unknown_stage_kind_is_one_line_naming_file_and_line(tmp_path, capsys):
    message = _error(tmp_path, capsys, HEAD + "  - {name: model, kind: tiny-janis}\n")
    assert f"{tmp_path / 'bad.yaml'}:4:" in message
    assert "no stage plugin named 'tiny-janis'" in message and "tiny-janus" in message


def test_reference_to_an_undefined_or_later_stage_is_refused(tmp_path, capsys):
    message = _error(tmp_path, capsys, HEAD + "  - {name: t, kind: train, params: {model: m, data: data}}\n"
                                               "  - {name: m, kind: tiny-janus}\n")
    assert "model names stage 'm', which is not defined earlier" in message and ":4:" in message


def test_reference_to_a_stage_of_the_wrong_output_is_refused(tmp_path, capsys):
    message = _error(tmp_path, capsys, HEAD + "  - {name: t, kind: train, params: {model: data, data: data}}\n")
    assert "model names stage 'data', which makes a dataset; expected model" in message


def test_unknown_parameter_is_refused(tmp_path, capsys):
    message = _error(tmp_path, capsys, HEAD + "  - {name: vq, kind: shapes-vq, params: {stepz: 3}}\n")
    assert "unknown params ['stepz']" in message


def test_unknown_benchmark_is_refused(tmp_path, capsys):
    message = _error(tmp_path, capsys, HEAD + "  - {name: m, kind: tiny-janus}\n"
                     "  - {name: e, kind: eval, params: {models: {a: m}, benchmarks: [genevals]}}\n")
    assert "no shapes-world benchmark 'genevals'" in message and ":5:" in message


def test_overrides_by_stage_index_or_name(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(HEAD + "  - {name: vq, kind: shapes-vq, params: {steps: 3}}\n")
    spec = PipelineSpec.load(path)
    assert spec.with_overrides({"stages.1.params.steps": 7}).stage("vq").params["steps"] == 7
    assert spec.with_overrides({"stages.vq.params.steps": 9}).stage("vq").params["steps"] == 9
    with pytest.raises(InputError, match="names nothing"):
        spec.with_overrides({"stages.nope.params.steps": 1})
    with pytest.raises(InputError, match="unknown params"):
        spec.with_overrides({"stages.vq.params.stepz": 1})


def test_a_folder_that_is_not_a_pipeline_folder_is_refused(tmp_path, capsys):
    path = tmp_path / "p.yaml"
    path.write_text(HEAD)
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    assert main(["run", str(path), "--out", str(out)]) == 2
    assert "not a pipeline folder" in capsys.readouterr().err
    assert (out / "precious.txt").read_text() == "keep me"


def test_the_example_pipeline_loads_with_every_shapes_benchmark():
    from harness.stage import StageContext, stage_plugin

    path = RECIPE.parent / "shapes-pipeline.yaml"
    spec = PipelineSpec.load(path)
    assert [(s.name, s.kind) for s in spec.stages] == [
        ("data", "synth"), ("wrong-captions-data", "synth"), ("vq", "shapes-vq"), ("untrained", "tiny-janus"),
        ("shapes", "train"), ("wrong-captions", "train"), ("eval", "eval"), ("report", "report")]
    benchmarks = {entry["name"] for entry in spec.stage("eval").params["benchmarks"]}
    assert benchmarks == {"geneval", "dpg", "imgedit", "mme", "mmbench"}
    assert spec.stage("eval").params["models"] == {"shapes": "shapes", "wrong-captions": "wrong-captions",
                                                   "untrained": "untrained"}
    # the two recipes, (a) and (b), differ only in the wrong-captions step, and both are the grid world's
    training = [{k: v for k, v in spec.stage(name).params.items() if k != "data"} for name in ("shapes", "wrong-captions")]
    assert training[0] == training[1]
    assert spec.stage("eval").params["profile"] == spec.stage("vq").params["profile"] == "grid"
    # the recipes are found next to the pipeline file, whatever the current folder
    ctx = StageContext(seed=0, base_dir=Path(spec.base_dir), out=Path("unused"))
    steps = [[step["name"] for step in stage_plugin("synth").identity(spec.stage(name).params, ctx)["recipe"]["steps"]]
             for name in ("data", "wrong-captions-data")]
    assert steps == [["shapes-world", "shapes-render"], ["shapes-world", "shapes-wrong-captions", "shapes-render"]]


@pytest.mark.parametrize("params, message", [
    ("{model: m, data: data, epochs: two}", "epochs must be an integer, got 'two'"),
    ("{model: m, data: data, learning_rate: fast}", "learning_rate must be a number, got 'fast'"),
    ("{model: m, data: data, first_token_quirk: 1}", "first_token_quirk must be true or false"),
])
def test_training_values_of_the_wrong_type_are_refused_at_load(tmp_path, capsys, params, message):
    text = HEAD + "  - {name: m, kind: tiny-janus}\n" + f"  - {{name: t, kind: train, params: {params}}}\n"
    assert message in _error(tmp_path, capsys, text)


def test_a_vq_patch_size_that_is_not_a_power_of_two_is_refused_at_load(tmp_path, capsys):
    message = _error(tmp_path, capsys, HEAD + "  - {name: vq, kind: shapes-vq, params: {patch_size: 6}}\n")
    assert "patch_size must be a power of two" in message and ":4:" in message


def test_training_numbers_in_yaml_exponent_form_are_numbers_and_checkpoint_cadence_is_not_identity(tmp_path):
    from harness.stage import StageContext, stage_plugin

    path = tmp_path / "p.yaml"  # YAML 1.1 reads 5e-6 (no dot) as a string
    path.write_text(HEAD + "  - {name: m, kind: tiny-janus}\n"
                    "  - {name: t, kind: train, params: {model: m, data: data, learning_rate: 5e-6}}\n")
    stage = PipelineSpec.load(path).stage("t")
    assert stage.params["learning_rate"] == "5e-6"
    plugin, ctx = stage_plugin("train"), StageContext(seed=0, base_dir=tmp_path, out=tmp_path)
    assert plugin._config(stage.params).learning_rate == 5e-6
    assert plugin._config(stage.params).checkpoint_every == 100  # an interrupted pipeline resumes its training
    resumable = {**stage.params, "checkpoint_every": 7, "keep_checkpoints": 2}
    assert plugin.identity(resumable, ctx) == plugin.identity(stage.params, ctx)
    assert plugin.identity({**stage.params, "epochs": 4}, ctx) != plugin.identity(stage.params, ctx)


def test_a_stage_named_like_the_pipeline_record_is_refused(tmp_path, capsys):
    message = _error(tmp_path, capsys, HEAD + "  - {name: pipeline.json, kind: tiny-janus}\n")
    assert "pipeline.json is the pipeline's own record" in message and ":4:" in message


def _pipeline_folder(tmp_path: Path) -> tuple[Path, Path]:
    """A pipeline file and an output folder that already holds a finished-looking stage."""
    path = tmp_path / "p.yaml"
    path.write_text(HEAD)
    out = tmp_path / "out"
    (out / "data").mkdir(parents=True)
    (out / "data" / "made.txt").write_text("by the first run")
    (out / "pipeline.json").write_text('{"stages": {}}')
    return path, out


def test_a_second_run_into_a_folder_in_use_is_refused_and_touches_nothing(tmp_path, capsys):
    import fcntl
    import os

    path, out = _pipeline_folder(tmp_path)
    with open(out / ".harness.lock", "w") as held:  # another run holds the lock
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write(f"{os.getpid()}\n")
        held.flush()
        assert main(["run", str(path), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"is in use by another harness process (pid {os.getpid()})" in err
    assert (out / "data" / "made.txt").read_text() == "by the first run"


def test_the_lock_of_a_killed_run_does_not_block_the_next(tmp_path, capsys):
    import signal
    import subprocess
    import sys

    path, out = _pipeline_folder(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time\n"
        f"h = open({str(out / '.harness.lock')!r}, 'w'); fcntl.flock(h, fcntl.LOCK_EX)\n"
        "print('locked', flush=True); time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    assert main(["run", str(path), "--out", str(out), "--no-progress"]) == 2  # held: refused
    assert "in use by another harness process" in capsys.readouterr().err
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    main(["run", str(path), "--out", str(out), "--no-progress"])  # the recipe r.yaml is missing ...
    err = capsys.readouterr().err
    assert "in use" not in err and "r.yaml" in err  # ... so it fails there, past the lock
