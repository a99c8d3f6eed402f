"""A Janus-4o training process killed with SIGKILL resumes from its last checkpoint and ends with the
same weights, loss curve and artifact hash as an uninterrupted run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch


REPO = Path(__file__).resolve().parents[1]
# 12 samples x 4 epochs / global batch 2 = 24 optimiser steps, a checkpoint after each
ARGS = ["--engine", "plain", "--global-batch", "2", "--micro-batch", "1", "--epochs", "4", "--lr", "1e-3",
        "--checkpoint-every", "1", "--set", "keep_checkpoints=3"]
TOTAL_STEPS = 24


def _command(tiny: Path, dataset: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "trainers.janus4o", "--model", str(tiny), "--data", str(dataset),
            "--out", str(out), *ARGS]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(PYTHONPATH=str(REPO), JANUS4O_THREADS="1", OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    return env


def _steps(out: Path) -> list[int]:
    from trainers.janus4o.loop import checkpoints

    return [int(p.name.split("-")[1]) for p in checkpoints(out)]


def _kill_after_checkpoint(command: list[str], out: Path, step: int) -> None:
    """Start the run; SIGKILL it as soon as a complete checkpoint for ``step`` or later exists."""
    process = subprocess.Popen(command, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    try:
        while not (out.is_dir() and any(s >= step for s in _steps(out))):
            assert process.poll() is None, f"the run ended before it was killed: {process.stderr.read()[-2000:]!r}"
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    assert process.returncode == -signal.SIGKILL


def test_sigkilled_run_resumes_to_the_uninterrupted_result(tiny, dataset, tmp_path, capsys):
    from safetensors.torch import load_file

    from harness.artifacts import read_manifest, verify
    from trainers.janus4o.__main__ import _parser, config_from_args, main
    from trainers.janus4o.loop import train

    out = tmp_path / "killed"
    command = _command(tiny, dataset, out)
    _kill_after_checkpoint(command, out, step=2)
    kept = _steps(out)
    assert kept and 2 <= kept[-1] < TOTAL_STEPS and len(kept) <= 3
    assert not (out / "model").exists() and read_manifest(out) is None
    resume_step = kept[-1]

    # what a kill during a checkpoint write or deletion leaves, made by hand: the next run must ignore them
    folders = out / "checkpoints"
    partial = folders / f"step-{TOTAL_STEPS - 1:06d}.partial"  # a write in flight (renamed only when complete)
    partial.mkdir()
    (partial / "trainer_state.json").write_text(json.dumps({"step": TOTAL_STEPS - 1}))
    (folders / f"step-{resume_step + 1:06d}").mkdir(exist_ok=True)  # a DeepSpeed-style folder without its state
    stale = folders / "step-000000.stale"  # a deletion in flight
    stale.mkdir()
    (stale / "trainer_state.json").write_text("{")

    # the same command again, in this process (a second interpreter start would cost ~10 s of imports);
    # this process's global RNG is not the killed one's, so the checkpoint's RNG state must be restored
    assert main(command[3:]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out / "model")
    assert not list(folders.glob("*.partial")) and not list(folders.glob("*.stale"))

    budget = json.loads((out / "budget.json").read_text())
    sessions = [(s["start_step"], s["steps"]) for s in budget["sessions"]]
    # the killed session is known up to its last checkpoint; the second one did only the rest
    assert sessions == [(0, resume_step), (resume_step, TOTAL_STEPS - resume_step)]
    assert budget["optimizer_steps"] == TOTAL_STEPS and budget["samples"] == TOTAL_STEPS * 2

    reference_out = tmp_path / "whole"
    config = config_from_args(_parser().parse_args(command[3:]))
    reference = train(tiny, dataset, reference_out, config)  # the same settings, never interrupted
    a, b = load_file(str(reference / "model.safetensors")), load_file(str(out / "model" / "model.safetensors"))
    start = load_file(str(tiny / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bit for bit
    assert max(float((a[k] - start[k]).abs().max()) for k in a) > 1e-3  # and training did move them
    losses = [json.loads((folder / "loss.json").read_text()) for folder in (reference_out, out)]
    assert losses[0] == losses[1] and len(losses[1]["loss"]) == TOTAL_STEPS
    assert verify(out) == [] and read_manifest(out).hash == read_manifest(reference_out).hash
