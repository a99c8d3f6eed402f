"""The understanding side of ``harness run``: a yes/no question recipe (LLaVA export), understanding SFT
as a stage, MME on the tiny model before and after, and the report comparing them."""
from __future__ import annotations

import io
import json
import shutil
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from harness.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# The example pipeline at tiny sizes: 16 questions, a one-layer model, 2 optimiser steps, 8 MME questions.
TINY = ["stages.questions.params.overrides={steps.0.params.count: 16}",
        "stages.untrained.params.hidden=32", "stages.untrained.params.layers=1",
        "stages.tuned.params.epochs=1", "stages.tuned.params.global_batch=8", "stages.tuned.params.micro_batch=8",
        "stages.eval.params.benchmarks=[{name: mme, params: {images_per_subtask: 1}}]",
        "stages.eval.params.answer_tokens=2", "stages.report.params.n_boot=100"]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    folder = tmp_path_factory.mktemp("understanding")
    for name in ("shapes-understanding-pipeline.yaml", "shapes-questions-recipe.yaml", "shapes-recipe.yaml"):
        shutil.copy(EXAMPLES / name, folder / name)
    return folder / "shapes-understanding-pipeline.yaml"


@pytest.fixture(scope="module")
def run(pipeline, tmp_path_factory, one_torch_thread):
    out = tmp_path_factory.mktemp("out") / "run"
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        assert main(["run", str(pipeline), "--out", str(out), "--no-progress",
                     *[a for s in TINY for a in ("--set", s)]]) == 0
    return out, buffer.getvalue().splitlines(), json.loads((out / "pipeline.json").read_text())["stages"]


def test_understanding_sft_runs_as_a_stage_with_its_lineage(run):
    out, lines, stages = run
    assert list(stages) == ["questions", "untrained", "tuned", "eval", "report"]
    assert stages["tuned"]["kind"] == "train-understanding"
    assert stages["tuned"]["inputs"] == {"untrained": stages["untrained"]["hash"],
                                         "questions": stages["questions"]["hash"]}
    assert stages["tuned"]["facts"]["steps"] == 2  # 16 conversations, global batch 8, one epoch
    config = json.loads((out / "tuned" / "train_config.json").read_text())
    assert config["config"]["freeze_vision"] is True and config["config"]["learning_rate"] == 0.002
    # the tuned model is a Janus checkpoint the eval stage loaded and asked the MME questions
    assert (out / "tuned" / "model" / "config.json").is_file()
    assert set(stages["eval"]["facts"]["overall"]["mme"]) == {"untrained", "tuned"}
    assert "mme (overall)" in (out / "report" / "report.md").read_text()


def test_the_tiny_model_learns_the_words_of_the_questions(run):
    out, _, stages = run
    import re

    conversations = json.loads((out / "questions" / "llava.json").read_text())  # no sharegpt4o export here
    words = {w for c in conversations for turn in c["conversations"] for w in re.findall(r"\w+", turn["value"].lower())}
    assert {"please", "yes", "no"} <= words and stages["untrained"]["facts"]["words"] == len(words)
    vocabulary = json.loads((out / "untrained" / "tokenizer.json").read_text())["model"]["vocab"]
    assert words <= set(vocabulary)


def test_a_dataset_without_a_llava_export_is_a_clear_error(pipeline, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["run", str(pipeline), "--out", str(out), "--no-progress",
                 "--set", "stages.questions.params.recipe=shapes-recipe.yaml",
                 "--set", "stages.questions.params.overrides={steps.0.params.t2i: 4, steps.0.params.edits: 0}",
                 *[a for s in TINY[1:] for a in ("--set", s)]])
    assert code != 0
    assert "has no llava.json: add llava to the recipe's export list" in capsys.readouterr().err
