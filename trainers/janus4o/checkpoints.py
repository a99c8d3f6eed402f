"""Janus-4o training checkpoints: written so that a SIGKILL at any instant leaves a resumable folder.

Our format (plain and DDP engines; rank 0 writes it): ``step-NNNNNN/`` with ``model.safetensors``, the
optimiser state (``optimizer.safetensors`` + ``optimizer.json``), ``scheduler.json``, the RNG states
(``rng.safetensors``) and ``trainer_state.json``; no pickle. DeepSpeed's own format (``mp_rank_*`` /
``zero_pp_rank_*`` torch files, written by every rank) plus our ``trainer_state.json``.

Kill safety: a checkpoint is written under ``step-NNNNNN.partial`` and renamed when complete (a rename
within one folder is atomic), so a kill during the write leaves only a ``.partial`` folder, which
:func:`checkpoints` never lists (and the next run deletes). An old checkpoint is renamed to
``.stale`` before it is deleted, so a kill during the deletion cannot leave a half-deleted folder
that looks complete. A SIGKILL loses no written bytes (the page cache survives the process); only a
power cut could, which these renames do not guard against (no fsync).
"""
from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from harness.errors import HarnessError
from trainers.janus4o.engines import Engine

CHECKPOINT_NAME = re.compile(r"step-(\d+)")
STATE_FILE = "trainer_state.json"


@dataclass
class TrainerState:
    step: int = 0  # optimiser steps done
    records: list[dict[str, Any]] = field(default_factory=list)  # one per optimiser step
    samples: int = 0
    tokens: int = 0  # attended tokens fed to the language model (image + text)
    image_tokens: int = 0  # attended positions holding an image: output slots, SigLIP placeholders, VQ slots
    scored_tokens: int = 0  # image tokens in the loss
    wall_seconds: float = 0.0  # summed over the sessions, up to their last checkpoint
    gpu_seconds: float = 0.0  # wall seconds x processes, on CUDA only
    sessions: list[dict[str, Any]] = field(default_factory=list)  # per process launch: start step, steps done


def checkpoint_folder(out_dir: Path, step: int) -> Path:
    return out_dir / "checkpoints" / f"step-{step:06d}"


def checkpoints(out_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (``.partial`` and ``.stale`` folders are not checkpoints)."""
    found = [p for p in (out_dir / "checkpoints").glob("step-*")
             if CHECKPOINT_NAME.fullmatch(p.name) and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(CHECKPOINT_NAME.fullmatch(p.name).group(1)))  # type: ignore[union-attr]


def remove_leftovers(out_dir: Path) -> None:
    """Folders a killed run left behind: unfinished writes and unfinished deletions."""
    for path in (out_dir / "checkpoints").glob("step-*"):
        if path.name.endswith((".partial", ".stale")):
            shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(out_dir / "model.partial", ignore_errors=True)


def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for param_id, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{param_id}.{key}"] = value.contiguous()
            else:
                scalars[f"{param_id}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for flat, value in [*tensors.items(), *meta["scalars"].items()]:
        param_id, key = flat.split(".", 1)
        state.setdefault(int(param_id), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def _replace(partial: Path, folder: Path) -> None:
    """Move a complete ``partial`` folder to ``folder`` (an older one of that name is retired first)."""
    if folder.exists():
        _retire(folder)
    partial.rename(folder)


def _retire(folder: Path) -> None:
    stale = folder.with_name(folder.name + ".stale")
    shutil.rmtree(stale, ignore_errors=True)
    folder.rename(stale)  # no longer listed by checkpoints() from here on
    shutil.rmtree(stale)


def save_checkpoint(folder: Path, model: torch.nn.Module, engine: Engine, state: TrainerState) -> Path:
    """Write our format to ``folder`` atomically (rank 0 only)."""
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    save_model(model, str(partial / "model.safetensors"))  # handles tied weights
    tensors, meta = _flatten_optimizer(engine.optimizer)
    save_file(tensors, str(partial / "optimizer.safetensors"))
    (partial / "optimizer.json").write_text(json.dumps(meta))
    (partial / "scheduler.json").write_text(json.dumps(engine.scheduler.state_dict()))
    rng = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng.update({f"cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    save_file(rng, str(partial / "rng.safetensors"))
    (partial / STATE_FILE).write_text(json.dumps(asdict(state)))
    _replace(partial, folder)
    return folder


def load_checkpoint(folder: Path, model: torch.nn.Module, engine: Engine, device: torch.device) -> TrainerState:
    missing, unexpected = load_model(model, str(folder / "model.safetensors"), device=str(device))
    if unexpected:
        raise HarnessError(f"{folder}: checkpoint does not match the model ({len(unexpected)} unexpected tensors)")
    tensors = load_file(str(folder / "optimizer.safetensors"), device=str(device))
    meta = json.loads((folder / "optimizer.json").read_text())
    engine.optimizer.load_state_dict(_unflatten_optimizer(tensors, meta))
    engine.scheduler.load_state_dict(json.loads((folder / "scheduler.json").read_text()))
    rng = load_file(str(folder / "rng.safetensors"))
    torch.set_rng_state(rng["cpu"])
    cuda_states = [rng[f"cuda.{i}"] for i in range(len(rng) - 1)]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states)
    return read_state(folder)


def read_state(folder: Path) -> TrainerState:
    return TrainerState(**json.loads((folder / STATE_FILE).read_text()))


def write_checkpoint(folder: Path, model: torch.nn.Module, engine: Engine, state: TrainerState, keep: int) -> None:
    """Every rank calls this. Ours: rank 0 writes it. DeepSpeed's: every rank writes its shards into
    the ``.partial`` folder, then rank 0 adds the trainer state and renames it. Then the oldest
    checkpoints beyond ``keep`` are removed."""
    if engine.checkpoint_format == "deepspeed":
        partial = folder.with_name(folder.name + ".partial")
        if engine.is_main:
            shutil.rmtree(partial, ignore_errors=True)
        engine.barrier()
        engine.save(partial)  # type: ignore[attr-defined]  # DeepSpeedEngine.save: a collective
        engine.barrier()
        if engine.is_main:
            (partial / STATE_FILE).write_text(json.dumps(asdict(state)))
            _replace(partial, folder)
    elif engine.is_main:
        save_checkpoint(folder, model, engine, state)
    if engine.is_main:
        for old in checkpoints(folder.parent.parent)[:-max(1, keep)]:
            _retire(old)
    engine.barrier()
