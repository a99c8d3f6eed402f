"""A single-process Janus-4o training loop with exact resume.

Upstream (``train_janus.py`` at FreedomIntelligence/ShareGPT-4o-Image commit
19ac7d779d8b893b549c2640373c78947ee4b6d5) runs Accelerate + DeepSpeed ZeRO-1 on 8 GPUs, one sample
per GPU, gradient accumulation 16 (global batch 128), bf16, 3 epochs, shuffled with ``drop_last``;
``total = len(loader) * epochs // accumulation // world``. Here one process does the same arithmetic
with ``world = 1``: each epoch is a permutation of the samples (seeded by (seed, epoch)), cut into
micro-batches (an incomplete last one is dropped), and consecutive micro-batches form optimiser steps
across epoch boundaries, as upstream's running counter does.

The forward pass, backward and optimiser step go through an engine (``trainers.janus4o.engines``:
plain, DDP or DeepSpeed ZeRO 1/2/3). With ``W`` processes the run's micro-batches are the same as with
one: step ``s`` takes global micro-batches ``s*A*W ... (s+1)*A*W - 1`` and rank ``r`` does those with
index ``= r (mod W)``, so 1 and 2 processes see the same samples with the same dropout; rank 0
writes the logs, checkpoints and the final model. Precision: bf16 autocast over fp32 weights where the GPU has
bf16, else fp32 (upstream keeps bf16 weights with fp32 master copies in DeepSpeed).

Checkpoints (every ``checkpoint_every`` optimiser steps; ``trainers.janus4o.checkpoints``) hold the
model, the optimiser and scheduler state, the RNG states and the step, in safetensors and JSON (no
pickle); with DeepSpeed they are DeepSpeed's own format (same stage and world size to resume) plus our
``trainer_state.json``. Each is written to a ``.partial`` folder and renamed, so a SIGKILL at any
moment leaves the previous checkpoints intact. Data order and dropout are pure functions of (seed,
epoch, sample id), so the step alone fixes where the data resumes: a killed run, started again,
ends with the same weights bit for bit (plain engine, same device and thread count).

The finished run is a ``checkpoint`` artifact (``trainers.janus4o.artifact``): ``model/``,
``loss.json``, ``loss.png``, ``train_config.json``, ``budget.json`` and ``artifact.json`` last.
"""
from __future__ import annotations

import contextlib
import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from harness.dataset_formats import ImageSample, read_sharegpt4o
from harness.errors import HarnessError
from harness.fileio import atomic_write_text
from harness.seeds import sample_seed
from trainers.janus4o.artifact import (HASH_CACHE, FileHasher, finished_artifact, training_inputs,
                                       write_checkpoint_artifact)
from trainers.janus4o.checkpoints import (TrainerState, checkpoint_folder, checkpoints, load_checkpoint,
                                          read_state, remove_leftovers, write_checkpoint)
from trainers.janus4o.engines import ENGINES, build_engine, init_distributed
from trainers.janus4o.objective import sample_dropout
from trainers.janus4o.optim import build_optimizer, build_scheduler
from trainers.janus4o.sequences import build_example, collate, token_ids

UPSTREAM = "FreedomIntelligence/ShareGPT-4o-Image train_janus.py @ 19ac7d779d8b893b549c2640373c78947ee4b6d5"


@dataclass
class OptimisationConfig:
    """What every Janus training run shares (image generation and understanding SFT); defaults are
    upstream's (docs/JANUS.md section 4)."""

    seed: int = 42
    epochs: int = 3
    global_batch: int = 128
    micro_batch: int = 1
    learning_rate: float = 5e-6
    weight_decay: float = 0.1
    warmup_ratio: float = 0.05
    min_lr_ratio: float = 0.15
    max_grad_norm: float = 1.0
    precision: str = "auto"  # "auto" (bf16 autocast on a bf16 GPU, else fp32), "bf16", "fp32"
    device: str = "auto"


@dataclass
class TrainConfig(OptimisationConfig):
    """Janus-4o image training: the shared settings plus dropout, the loss quirk, checkpoints, engine."""

    text_drop: float = 0.1
    vq_copy: float = 0.5
    first_token_quirk: bool = True
    checkpoint_every: int = 0  # optimiser steps; 0 = no intermediate checkpoints
    keep_checkpoints: int = 5
    stop_after_steps: int | None = None  # stop (without a checkpoint) after this many steps: an interruption
    engine: str = "plain"  # "plain", "ddp" (launch with torchrun) or "deepspeed"
    zero_stage: int = 1  # DeepSpeed only (upstream: 1)

    def identity(self) -> dict[str, Any]:
        """The settings a resumed run must share with the run it continues."""
        settings = asdict(self)
        # plain and DDP checkpoints are interchangeable (same samples for any world size)
        for name in ("checkpoint_every", "keep_checkpoints", "stop_after_steps", "device", "engine", "zero_stage"):
            settings.pop(name)
        return settings


@dataclass(frozen=True)
class Plan:
    micro_per_epoch: int
    accumulation: int  # micro-batches per optimiser step on each rank
    total_steps: int
    world: int = 1

    @property
    def micro_per_step(self) -> int:
        return self.accumulation * self.world


def make_plan(sample_count: int, config: OptimisationConfig, world: int = 1) -> Plan:
    if config.global_batch % (config.micro_batch * world):
        raise HarnessError(f"global_batch {config.global_batch} is not a multiple of micro_batch {config.micro_batch}"
                           f" x {world} process(es)")
    micro_per_epoch = sample_count // config.micro_batch
    accumulation = config.global_batch // (config.micro_batch * world)
    total = micro_per_epoch * config.epochs // (accumulation * world)
    if total < 1:
        raise HarnessError(f"{sample_count} samples x {config.epochs} epochs make no optimiser step of "
                           f"{config.global_batch} samples")
    return Plan(micro_per_epoch, accumulation, total, world)


def micro_batch(sample_count: int, config: OptimisationConfig, plan: Plan, index: int) -> tuple[int, list[int]]:
    """(epoch, sample indices) of micro-batch ``index`` of the whole run (a pure function)."""
    epoch, position = divmod(index, plan.micro_per_epoch)
    generator = torch.Generator().manual_seed(sample_seed(config.seed, "janus4o-order", f"epoch-{epoch}"))
    order = torch.randperm(sample_count, generator=generator)
    return epoch, order[position * config.micro_batch:(position + 1) * config.micro_batch].tolist()


# -- outputs -----------------------------------------------------------------------------------


class _ExampleCache:
    """Built examples (token ids and pixels) kept for later epochs while they fit in ``budget`` bytes:
    small-image runs (the shapes world) stop re-reading and re-processing every image each epoch.
    An example is a pure function of its sample, so the batches are the same with or without it."""

    def __init__(self, build, budget: int = 512 * 2**20):
        self.build, self.budget, self.used = build, budget, 0
        self.kept: dict[int, Any] = {}

    def get(self, index: int):
        example = self.kept.get(index)
        if example is None:
            example = self.build(index)
            size = sum(t.numel() * t.element_size() for t in (example.input_ids, example.input_pixels,
                                                              example.target_pixels))
            if self.used + size <= self.budget:
                self.kept[index] = example
                self.used += size
        return example


def _progress_bar(show: bool, total: int, done: int):
    """A tqdm bar of optimiser steps on stderr, or None."""
    if not show:
        return None
    import sys

    from tqdm import tqdm

    return tqdm(total=total, initial=done, desc="train", unit="step", file=sys.stderr, dynamic_ncols=True)


def write_loss_files(out_dir: Path, records: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {key: [r[key] for r in records] for key in ("step", "loss", "lr", "grad_norm", "micro_losses")}
    (out_dir / "loss.json").write_text(json.dumps(series, indent=1))
    figure, axis = plt.subplots(figsize=(6, 3.5))
    axis.plot(series["step"], series["loss"], lw=1)
    axis.set_xlabel("optimiser step")
    axis.set_ylabel("image-token cross-entropy")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(out_dir / "loss.png", dpi=100)
    plt.close(figure)


def _source_dtype(model_dir: Path) -> torch.dtype:
    config = json.loads((model_dir / "config.json").read_text())
    name = config.get("dtype") or config.get("torch_dtype") or "float32"
    return torch.bfloat16 if name == "bfloat16" else torch.float32


def device_and_autocast(config: OptimisationConfig) -> tuple[torch.device, Any]:
    """The device to train on and a context for the forward pass (bf16 autocast or nothing)."""
    device = torch.device("cuda" if config.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if config.device == "auto" else config.device))
    bf16_available = device.type == "cuda" and torch.cuda.is_bf16_supported()
    if config.precision not in ("auto", "bf16", "fp32"):
        raise HarnessError(f"precision must be auto, bf16 or fp32; got {config.precision!r}")
    use_bf16 = config.precision == "bf16" or (config.precision == "auto" and bf16_available)
    if use_bf16:
        return device, lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return device, contextlib.nullcontext


# -- the loop ----------------------------------------------------------------------------------


def budget_of(state: TrainerState, world_size: int, engine: str, device: torch.device) -> dict[str, Any]:
    """What the run cost. ``gpu_hours`` is 0.0 on CPU (no GPU was used, which is known, so not null);
    on CUDA it is wall time x processes (one GPU each), summed over sessions. Time after a session's
    last checkpoint is lost with a kill and is not counted; the steps it redoes are."""
    return {"optimizer_steps": state.step, "samples": state.samples, "tokens": state.tokens,
            "image_tokens": state.image_tokens, "text_tokens": state.tokens - state.image_tokens,
            "image_tokens_scored": state.scored_tokens, "wall_seconds": round(state.wall_seconds, 3),
            "seconds_per_step": round(state.wall_seconds / max(1, state.step), 4),
            "gpu_hours": round(state.gpu_seconds / 3600, 6), "device": device.type, "world_size": world_size,
            "engine": engine, "sessions": state.sessions}


def train(model_dir: str | Path, dataset_json: str | Path, out_dir: str | Path,
          config: TrainConfig | None = None, progress: bool = False) -> Path:
    """Fine-tune the Janus checkpoint in ``model_dir`` on a ShareGPT-4o-Image layout file.

    Returns ``out_dir/model`` (model + processor, loadable by the ``janus`` adapter); ``out_dir`` is then
    a ``checkpoint`` artifact (``artifact.json``, see ``trainers.janus4o.artifact``). A finished, intact
    artifact made from the same inputs is returned at once; one made from other inputs is refused.
    Otherwise resumes from the latest checkpoint in ``out_dir/checkpoints`` if there is one (same
    settings required). A run stopped by ``stop_after_steps`` returns ``out_dir`` and leaves only its
    periodic checkpoints. With ``config.engine`` "ddp" or "deepspeed" every process of the launch calls
    this; rank 0 writes the outputs. ``progress``: a progress bar of the optimiser steps on stderr (rank 0).
    """
    from transformers import JanusForConditionalGeneration, JanusProcessor

    config = config or TrainConfig()
    if config.engine not in ENGINES:
        raise HarnessError(f"engine must be one of {', '.join(ENGINES)}; got {config.engine!r}")
    model_dir, out_dir, dataset_json = Path(model_dir), Path(out_dir), Path(dataset_json)
    samples: list[ImageSample] = read_sharegpt4o(dataset_json)
    hasher = FileHasher(out_dir / HASH_CACHE)
    inputs = training_inputs(model_dir, dataset_json, config.identity(), hasher)
    final = out_dir / "model"
    if finished_artifact(out_dir, inputs) is not None:
        return final  # every rank sees it: no process group is even started
    session_start = time.monotonic()
    device, autocast = device_and_autocast(config)
    world = init_distributed(config.engine, device.type)
    plan = make_plan(len(samples), config, world.size)
    if world.rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        hasher.save()
        remove_leftovers(out_dir)

    model = JanusForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).to(device)
    model.train()
    model.model.vqmodel.requires_grad_(False)  # targets only: the VQ model gets no gradient
    processor = JanusProcessor.from_pretrained(model_dir)
    processor.tokenizer.padding_side = "left"
    ids = token_ids(processor.tokenizer)
    image_tokens = int(model.config.vision_config.num_image_tokens)
    image_size = int(model.config.vision_config.image_size)

    optimizer = build_optimizer(model, config.learning_rate, config.weight_decay)
    scheduler = build_scheduler(optimizer, plan.total_steps, config.warmup_ratio, config.min_lr_ratio)
    engine = build_engine(config.engine, model, optimizer, scheduler, accumulation=plan.accumulation,
                          micro_batch=config.micro_batch, max_grad_norm=config.max_grad_norm, world=world,
                          pad_id=ids.pad, first_token_quirk=config.first_token_quirk, zero_stage=config.zero_stage,
                          bf16=autocast is not contextlib.nullcontext)

    run_identity = {"inputs": inputs, "samples": len(samples), **config.identity(), "checkpoint_format": (
        f"deepspeed-zero{config.zero_stage}-world{world.size}" if engine.checkpoint_format == "deepspeed"
        else "safetensors")}
    config_file = out_dir / "train_config.json"
    state = TrainerState()
    engine.barrier()  # rank 0 made out_dir
    existing = checkpoints(out_dir)
    recorded = json.loads(config_file.read_text()).get("identity") if config_file.is_file() else None
    if existing and recorded != run_identity:
        raise HarnessError(f"{out_dir} holds a run with other settings; use another out_dir")
    if existing and engine.checkpoint_format == "deepspeed":
        engine.load(existing[-1])  # type: ignore[attr-defined]
        state = read_state(existing[-1])
    elif existing:
        state = load_checkpoint(existing[-1], model, engine, device)
    engine.barrier()  # every rank has read the old config before rank 0 rewrites it
    if engine.is_main:
        (out_dir / "artifact.json").unlink(missing_ok=True)  # a damaged one: made again at the end
        atomic_write_text(config_file, json.dumps({
            "identity": run_identity, "config": asdict(config), "plan": asdict(plan), "upstream": UPSTREAM,
            "image_tokens": image_tokens, "image_size": image_size, "device": device.type,
            "world_size": world.size, "autocast_bf16": autocast is not contextlib.nullcontext}, indent=1))

    state.sessions.append({"start_step": state.step, "steps": 0, "world_size": world.size, "engine": config.engine})
    wall_before, gpu_before = state.wall_seconds, state.gpu_seconds
    bar = _progress_bar(progress and engine.is_main, plan.total_steps, state.step)
    examples = _ExampleCache(lambda i: build_example(samples[i], processor, image_tokens, image_size, ids))
    while state.step < plan.total_steps:
        micro_losses, counts = [], [0.0] * 4  # samples, attended, image and scored tokens (this rank)
        for micro in range(plan.accumulation):
            index = state.step * plan.micro_per_step + micro * world.size + world.rank
            epoch, indices = micro_batch(len(samples), config, plan, index)
            chosen = [samples[i] for i in indices]
            batch = collate([examples.get(i) for i in indices], ids.pad, image_tokens).to(device)
            dropout = [sample_dropout(config.seed, s.id, epoch, s.is_edit, len(s.input_images),
                                      config.text_drop, config.vq_copy) for s in chosen]
            with engine.accumulating(micro < plan.accumulation - 1):
                with autocast():
                    out = engine.loss(batch, dropout, ids.pad, config.first_token_quirk)
                engine.backward(out.loss)
            micro_losses.append(float(out.loss.detach()))
            # per input image a SigLIP block and a VQ block of N positions each, plus the N output slots
            image_positions = image_tokens * sum(2 * len(starts) + 1 for starts in batch.siglip_starts)
            counts = [counts[0] + len(chosen), counts[1] + int(batch.attention_mask.sum()),
                      counts[2] + image_positions, counts[3] + out.scored_tokens]
        lr = engine.lr
        grad_norm = engine.step()
        by_rank = engine.all_gather(micro_losses)
        ordered = [by_rank[r][a] for a in range(plan.accumulation) for r in range(world.size)]  # global order
        samples_done, tokens, image_positions, scored = (int(x) for x in engine.all_sum(counts))
        state.samples, state.tokens = state.samples + samples_done, state.tokens + tokens
        state.image_tokens, state.scored_tokens = state.image_tokens + image_positions, state.scored_tokens + scored
        state.step += 1
        elapsed = time.monotonic() - session_start
        state.wall_seconds = wall_before + elapsed
        state.gpu_seconds = gpu_before + (elapsed * world.size if device.type == "cuda" else 0.0)
        state.sessions[-1]["steps"] += 1
        state.records.append({"step": state.step, "loss": sum(ordered) / len(ordered), "lr": lr,
                              "grad_norm": grad_norm, "micro_losses": ordered})
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{state.records[-1]['loss']:.3f}", refresh=False)
        if config.checkpoint_every and state.step % config.checkpoint_every == 0 and state.step < plan.total_steps:
            write_checkpoint(checkpoint_folder(out_dir, state.step), model, engine, state, config.keep_checkpoints)
        interrupted = config.stop_after_steps is not None and state.step >= config.stop_after_steps
        if interrupted and state.step < plan.total_steps:
            if bar is not None:
                bar.close()
            engine.barrier()
            return out_dir
    if bar is not None:
        bar.close()

    gathered = engine.full_state_dict()  # ZeRO-3: a collective on every rank
    if engine.is_main:
        model.eval()
        model.to(_source_dtype(model_dir))
        model.generation_config._from_model_config = False  # else a reload drops generation_kwargs (pitfall 3)
        partial = out_dir / "model.partial"  # renamed when complete: a kill never leaves half a model
        shutil.rmtree(partial, ignore_errors=True)
        model.save_pretrained(partial, state_dict=gathered)
        processor.save_pretrained(partial)
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
        write_loss_files(out_dir, state.records)
        budget = budget_of(state, world.size, config.engine, device)
        atomic_write_text(out_dir / "budget.json", json.dumps(budget, indent=1))
        write_checkpoint_artifact(  # last: its presence marks the run finished
            out_dir, inputs, spec={"trainer": "janus4o", "config": asdict(config), "upstream": UPSTREAM},
            info={"budget": budget, "model_dir": str(model_dir.resolve()), "dataset": str(dataset_json.resolve())})
    engine.barrier()
    return final
