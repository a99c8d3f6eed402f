"""Scaling the Janus-4o trainer: rank sharding, a two-process torchrun DDP run equal to one process,
the ZeRO-2 gradient gate, DeepSpeed ZeRO-2 on two CPU ranks (interrupted and resumed), and the CLI's one-line errors."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harness.dataset_formats import read_sharegpt4o
from harness.errors import HarnessError

REPO = Path(__file__).resolve().parents[1]
DDP_ARGS = ["--global-batch", "4", "--micro-batch", "1", "--epochs", "2", "--lr", "1e-3"]  # 12 samples: 6 steps
DS_ARGS = ["--global-batch", "12", "--micro-batch", "2", "--epochs", "3", "--lr", "1e-3"]  # every sample each step


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(PYTHONPATH=str(REPO), JANUS4O_THREADS="1", OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    return env


def _run(command: list[str]) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=REPO, env=_child_env(), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _plain_run(tiny, dataset, out, args: list[str]) -> Path:
    """The single-process reference, in this process."""
    from trainers.janus4o.__main__ import _parser, config_from_args
    from trainers.janus4o.loop import train

    config = config_from_args(_parser().parse_args(["--model", str(tiny), "--data", str(dataset), "--out", str(out),
                                                    *args]))
    assert config.engine == "plain"
    return train(tiny, dataset, out, config)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


# -- sharding -----------------------------------------------------------------------------------------


def test_plan_and_rank_slices_by_hand():
    from trainers.janus4o.loop import TrainConfig, make_plan, micro_batch

    config = TrainConfig(global_batch=4, micro_batch=1, epochs=2)
    one, two = make_plan(12, config, 1), make_plan(12, config, 2)
    assert (one.accumulation, one.total_steps) == (4, 6)  # 12 x 2 / 4
    assert (two.accumulation, two.total_steps, two.micro_per_step) == (2, 6, 4)  # 2 per rank x 2 ranks
    for step in range(6):
        alone = [micro_batch(12, config, one, step * 4 + a)[1][0] for a in range(4)]
        ranks = [[micro_batch(12, config, two, step * 4 + a * 2 + r)[1][0] for a in range(2)] for r in range(2)]
        assert not set(ranks[0]) & set(ranks[1]) and sorted(ranks[0] + ranks[1]) == sorted(alone)
    with pytest.raises(HarnessError, match="not a multiple"):
        make_plan(12, TrainConfig(global_batch=6, micro_batch=2), 2)  # 6 / (2 x 2)


# -- the CLI ------------------------------------------------------------------------------------------


def _cli_error(capsys, argv: list[str]) -> str:
    from trainers.janus4o.__main__ import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    return err


def test_cli_rejects_bad_input_in_one_line(tiny, dataset, tmp_path, capsys, monkeypatch):
    out = str(tmp_path / "out")
    assert "not a model folder" in _cli_error(capsys, ["--model", str(tmp_path / "nowhere"), "--data", str(dataset),
                                                       "--out", out])
    assert "no such file" in _cli_error(capsys, ["--model", str(tiny), "--data", str(tmp_path / "x.json"), "--out", out])
    base = ["--model", str(tiny), "--data", str(dataset), "--out", out]
    assert "--global-batch 5 is not divisible" in _cli_error(capsys, base + ["--global-batch", "5", "--micro-batch", "2"])
    assert "--zero needs --engine deepspeed" in _cli_error(capsys, base + ["--zero", "2"])
    assert "--set 'nonsense=1'" in _cli_error(capsys, base + ["--set", "nonsense=1"])
    monkeypatch.setenv("WORLD_SIZE", "2")  # 6 is a multiple of micro 2, not of 2 x 2 ranks
    assert "x 2 process(es)" in _cli_error(capsys, base + ["--global-batch", "6", "--micro-batch", "2"])
    assert not (tmp_path / "out").exists()


# -- DDP -----------------------------------------------------------------------------------------------


def test_two_process_torchrun_ddp_equals_one_process(tiny, dataset, tmp_path):
    out = tmp_path / "ddp"
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
          "-m", "trainers.janus4o", "--model", str(tiny), "--data", str(dataset), "--out", str(out),
          "--engine", "ddp", *DDP_ARGS])
    single = _plain_run(tiny, dataset, tmp_path / "single", DDP_ARGS)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.safetensors")) == ["model/model.safetensors"]
    budget = json.loads((out / "budget.json").read_text())
    assert budget["world_size"] == 2 and budget["optimizer_steps"] == 6 and budget["samples"] == 24
    assert budget["image_tokens_scored"] == 24 * 15  # N - 1 = 15 scored tokens per sample
    assert budget["image_tokens"] == 2 * (8 * 16 + 4 * 3 * 16)  # summed over both ranks: 8 t2i, 4 edits x 2
    assert budget["sessions"] == [{"start_step": 0, "steps": 6, "world_size": 2, "engine": "ddp"}]
    a, b, start = _weights(single), _weights(out / "model"), _weights(tiny)
    assert a.keys() == b.keys()
    assert max(float((a[k] - start[k]).abs().max()) for k in a) > 1e-3  # training moved the weights
    assert all(torch.allclose(a[k], b[k], rtol=0, atol=2e-6) for k in a)
    losses = [json.loads((p.parent / "loss.json").read_text()) for p in (single, out / "model")]
    flat = [[x for step in series["micro_losses"] for x in step] for series in losses]
    assert flat[0] == pytest.approx(flat[1], abs=1e-5)  # the same micro-batches in the same global order
    # AdamW and clipping hide the gradient's scale from the weights; the logged pre-clip norm does not
    assert losses[0]["grad_norm"] == pytest.approx(losses[1]["grad_norm"], rel=1e-5)


# -- DeepSpeed ------------------------------------------------------------------------------------------


def _hook_order_and_grads(model, module, batch, dropout) -> tuple[list[str], dict[str, torch.Tensor]]:
    """The order in which the trainable parameters' gradient hooks fire in one backward (ZeRO-2 fills
    its reduce bucket in this order), and the gradients."""
    order: list[str] = []
    handles = [p.register_post_accumulate_grad_hook(lambda _, name=name: order.append(name))
               for name, p in model.named_parameters() if p.requires_grad]
    module(batch, dropout)[0].backward()
    for handle in handles:
        handle.remove()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return order, grads


def test_zero2_gradient_gate_makes_the_hook_order_the_same_for_every_batch(tiny, dataset):
    from transformers import JanusForConditionalGeneration, JanusProcessor

    from trainers.janus4o.engines import LossModule
    from trainers.janus4o.objective import Dropout
    from trainers.janus4o.sequences import build_example, collate, token_ids

    model = JanusForConditionalGeneration.from_pretrained(tiny, dtype=torch.float32)
    model.model.vqmodel.requires_grad_(False)
    processor = JanusProcessor.from_pretrained(tiny)
    ids = token_ids(processor.tokenizer)
    samples = read_sharegpt4o(dataset)
    t2i, edit = (next(s for s in samples if s.is_edit == kind) for kind in (False, True))
    batches = [(collate([build_example(s, processor, 16, 64, ids)], ids.pad, 16), [d])
               for s, d in ((t2i, Dropout(False, ())), (edit, Dropout(False, (True,))))]
    trainable = sorted(n for n, p in model.named_parameters() if p.requires_grad)

    plain, gated = LossModule(model, ids.pad, True), LossModule(model, ids.pad, True, gate_gradients=True)
    (t2i_order, _), (edit_order, edit_grads) = (_hook_order_and_grads(model, plain, *b) for b in batches)
    # the premise: the graphs differ, so do the orders (SigLIP's parameters get no gradient without edits)
    assert not any("vision_model" in n for n in t2i_order) and any("vision_model" in n for n in edit_order)
    # a bucket filled in hook order puts other parameters at the same offsets (SigLIP's come between)
    assert edit_order[:len(t2i_order)] != t2i_order
    (t2i_gated, t2i_grads), (edit_gated, edit_gated_grads) = (_hook_order_and_grads(model, gated, *b)
                                                              for b in batches)
    assert t2i_gated == edit_gated and sorted(t2i_gated) == trainable  # every parameter, one fixed order
    assert all(float(t2i_grads[n].abs().max()) == 0.0 for n in trainable if "vision_model" in n)
    assert all(torch.equal(edit_gated_grads[n], edit_grads[n]) for n in edit_grads)  # the gate is the identity
    assert all(float(edit_gated_grads[n].abs().max()) == 0.0 for n in set(trainable) - set(edit_grads))
    assert dict(model.named_parameters()).keys() >= set(trainable)  # the model's own parameters are back
    assert all(isinstance(p, torch.nn.Parameter) for p in model.parameters())



def test_deepspeed_zero2_on_two_cpu_ranks_resumes_and_matches_one_process(tiny, dataset, tmp_path):
    import deepspeed  # noqa: F401  (a missing deepspeed fails this test; it is never skipped)

    out = tmp_path / "zero2"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "trainers.janus4o", "--model", str(tiny), "--data", str(dataset), "--out", str(out),
               "--engine", "deepspeed", "--zero", "2", "--checkpoint-every", "1", *DS_ARGS]
    _run(command + ["--set", "stop_after_steps=2"])  # interrupted after step 2
    assert sorted(p.name for p in (out / "checkpoints").glob("step-*")) == ["step-000001", "step-000002"]
    shards = sorted(p.name for p in (out / "checkpoints" / "step-000002").glob("*optim_states.pt"))
    assert len(shards) == 2 and shards[0].startswith("zero_pp_rank_0")  # DeepSpeed's own format, one per rank
    assert not list((out / "checkpoints").glob("*.partial")) and not (out / "checkpoints" / "latest").exists()
    _run(command)
    series = json.loads((out / "loss.json").read_text())
    assert len(series["loss"]) == 3 and all(math.isfinite(x) for x in series["loss"])
    budget = json.loads((out / "budget.json").read_text())
    assert [(s["start_step"], s["steps"], s["world_size"]) for s in budget["sessions"]] == [(0, 2, 2), (2, 1, 2)]
    assert json.loads((out / "artifact.json").read_text())["kind"] == "checkpoint"  # written by rank 0
    assert series["loss"][-1] < series["loss"][0] - 0.1

    single = _plain_run(tiny, dataset, tmp_path / "single", DS_ARGS)
    reference = json.loads((single.parent / "loss.json").read_text())
    assert series["grad_norm"] == pytest.approx(reference["grad_norm"], rel=1e-5)  # resumed step 3 included
    a, b, start = _weights(single), _weights(out / "model"), _weights(tiny)
    assert all(torch.allclose(a[k], b[k], rtol=0, atol=2e-6) for k in a if k != "lm_head.weight")
    # the text head gets no gradient: torch's AdamW skips it, ZeRO takes the gradient as zero, so only
    # weight decay moves it: w x (1 - lr_k x 0.1) with lr factors 1, 0.7875, 0.3625 (3 steps, no warm-up)
    assert torch.equal(a["lm_head.weight"], start["lm_head.weight"])
    shrink = (1 - 1e-4) * (1 - 0.7875e-4) * (1 - 0.3625e-4)
    assert torch.allclose(b["lm_head.weight"], start["lm_head.weight"] * shrink, rtol=1e-6, atol=1e-9)

    from harness.models.base import Request
    from harness.registry import build

    adapter = build("model", "janus", path=str(out / "model"), device="cpu")
    assert adapter.generate_images([Request("r", "a photo of a red circle", 3)])[0].size == (64, 64)


def test_deepspeed_zero1_single_process_on_cpu_matches_plain_training(tiny, dataset, tmp_path):
    """Upstream's stage: ZeRO-1, one process, gloo on CPU, launched as a plain ``python -m`` (the
    trainer sets up a one-rank process group itself when no launcher did)."""
    import deepspeed  # noqa: F401  (a missing deepspeed fails this test; it is never skipped)

    out = tmp_path / "zero1"
    _run([sys.executable, "-m", "trainers.janus4o", "--model", str(tiny), "--data", str(dataset), "--out", str(out),
          "--engine", "deepspeed", "--zero", "1", *DS_ARGS])
    series = json.loads((out / "loss.json").read_text())
    reference = json.loads((_plain_run(tiny, dataset, tmp_path / "plain", DS_ARGS).parent / "loss.json").read_text())
    assert series["grad_norm"] == pytest.approx(reference["grad_norm"], rel=1e-5)
    a, b = _weights(tmp_path / "plain" / "model"), _weights(out / "model")
    assert all(torch.allclose(a[k], b[k], rtol=0, atol=2e-6) for k in a if k != "lm_head.weight")
    assert json.loads((out / "budget.json").read_text())["engine"] == "deepspeed"
