"""A single-process Janus-4o training loop with exact resume.

Upstream (``train_janus.py`` at FreedomIntelligence/ShareGPT-4o-Image commit
19ac7d779d8b893b549c2640373c78947ee4b6d5) runs Accelerate + DeepSpeed ZeRO-1 on 8 GPUs, one sample
per GPU, gradient accumulation 16 (global batch 128), bf16, 3 epochs, shuffled with ``drop_last``;
``total = len(loader) * epochs // accumulation // world``. Here one process does the same arithmetic
with ``world = 1``: each epoch is a permutation of the samples (seeded by (seed, epoch)), cut into
micro-batches (an incomplete last one is dropped), and consecutive micro-batches form optimiser steps
across epoch boundaries, as upstream's running counter does.

The model and the optimiser step go through :class:`Engine` (``backward``, ``step``), the seam where a
DDP or DeepSpeed engine will go later. Precision: bf16 autocast over fp32 weights where the GPU has
bf16, else fp32 (upstream keeps bf16 weights with fp32 master copies in DeepSpeed).

Checkpoints (every ``checkpoint_every`` optimiser steps) hold the model, the optimiser and scheduler
state, the RNG states and the step, in safetensors and JSON (no pickle). Data order and dropout are
pure functions of (seed, epoch, sample id), so the step alone fixes where the data resumes.
"""
from __future__ import annotations

import contextlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from harness.dataset_formats import ImageSample, read_sharegpt4o
from harness.errors import HarnessError
from harness.seeds import sample_seed
from trainers.janus4o.objective import image_token_loss, sample_dropout
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
    """Janus-4o image training: the shared settings plus dropout, the loss quirk and checkpoints."""

    text_drop: float = 0.1
    vq_copy: float = 0.5
    first_token_quirk: bool = True
    checkpoint_every: int = 0  # optimiser steps; 0 = no intermediate checkpoints
    keep_checkpoints: int = 5
    stop_after_steps: int | None = None  # stop (without a checkpoint) after this many steps: an interruption

    def identity(self) -> dict[str, Any]:
        """The settings a resumed run must share with the run it continues."""
        settings = asdict(self)
        for name in ("checkpoint_every", "keep_checkpoints", "stop_after_steps", "device"):
            settings.pop(name)
        return settings


@dataclass
class TrainerState:
    step: int = 0  # optimiser steps done
    records: list[dict[str, Any]] = field(default_factory=list)  # one per optimiser step
    samples: int = 0
    tokens: int = 0  # attended tokens fed to the language model
    scored_tokens: int = 0  # image tokens in the loss
    wall_seconds: float = 0.0  # summed over resumed sessions


@dataclass(frozen=True)
class Plan:
    micro_per_epoch: int
    accumulation: int
    total_steps: int


def make_plan(sample_count: int, config: OptimisationConfig) -> Plan:
    if config.global_batch % config.micro_batch:
        raise HarnessError(f"global_batch {config.global_batch} is not a multiple of micro_batch {config.micro_batch}")
    micro_per_epoch = sample_count // config.micro_batch
    accumulation = config.global_batch // config.micro_batch
    total = micro_per_epoch * config.epochs // accumulation
    if total < 1:
        raise HarnessError(f"{sample_count} samples x {config.epochs} epochs make no optimiser step of "
                           f"{config.global_batch} samples")
    return Plan(micro_per_epoch, accumulation, total)


def micro_batch(sample_count: int, config: OptimisationConfig, plan: Plan, index: int) -> tuple[int, list[int]]:
    """(epoch, sample indices) of micro-batch ``index`` of the whole run (a pure function)."""
    epoch, position = divmod(index, plan.micro_per_epoch)
    generator = torch.Generator().manual_seed(sample_seed(config.seed, "janus4o-order", f"epoch-{epoch}"))
    order = torch.randperm(sample_count, generator=generator)
    return epoch, order[position * config.micro_batch:(position + 1) * config.micro_batch].tolist()


class Engine:
    """Backward and optimiser step for one process; DDP/DeepSpeed engines will offer the same calls."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler, accumulation: int, max_grad_norm: float) -> None:
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.accumulation, self.max_grad_norm = accumulation, max_grad_norm

    def backward(self, loss: torch.Tensor) -> None:
        # the step's gradient is the mean of the micro-batch means, as DeepSpeed's loss scaling gives
        (loss / self.accumulation).backward()

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def step(self) -> float:
        """Clip, step, advance the schedule, clear gradients; return the pre-clip gradient norm."""
        parameters = [p for group in self.optimizer.param_groups for p in group["params"]]
        limit = self.max_grad_norm if self.max_grad_norm > 0 else float("inf")  # 0 = no clipping, as upstream
        norm = torch.nn.utils.clip_grad_norm_(parameters, limit)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)


# -- checkpoints -------------------------------------------------------------------------------


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


def save_checkpoint(folder: Path, model: torch.nn.Module, engine: Engine, state: TrainerState) -> Path:
    """Write ``folder`` atomically (a temporary folder renamed at the end)."""
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
    (partial / "trainer_state.json").write_text(json.dumps(asdict(state)))
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
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
    return TrainerState(**json.loads((folder / "trainer_state.json").read_text()))


def checkpoints(out_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    found = [p for p in (out_dir / "checkpoints").glob("step-*") if (p / "trainer_state.json").is_file()
             and not p.name.endswith(".partial")]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


# -- outputs -----------------------------------------------------------------------------------


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


def train(model_dir: str | Path, dataset_json: str | Path, out_dir: str | Path,
          config: TrainConfig | None = None) -> Path:
    """Fine-tune the Janus checkpoint in ``model_dir`` on a ShareGPT-4o-Image layout file.

    Resumes from the latest checkpoint in ``out_dir/checkpoints`` if there is one (same settings
    required). Returns ``out_dir/model`` (model + processor, loadable by the ``janus`` adapter); a run
    stopped by ``stop_after_steps`` returns ``out_dir`` and leaves only its periodic checkpoints.
    """
    from transformers import JanusForConditionalGeneration, JanusProcessor

    config = config or TrainConfig()
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    samples: list[ImageSample] = read_sharegpt4o(dataset_json)
    plan = make_plan(len(samples), config)
    device, autocast = device_and_autocast(config)

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
    engine = Engine(model, optimizer, scheduler, plan.accumulation, config.max_grad_norm)

    run_identity = {"model_dir": str(model_dir.resolve()), "dataset": str(Path(dataset_json).resolve()),
                    "samples": len(samples), **config.identity()}
    config_file = out_dir / "train_config.json"
    state = TrainerState()
    final = out_dir / "model"
    existing = checkpoints(out_dir)
    recorded = json.loads(config_file.read_text()).get("identity") if config_file.is_file() else None
    if (existing or (out_dir / "budget.json").is_file()) and recorded != run_identity:
        raise HarnessError(f"{out_dir} holds a run with other settings; use another out_dir")
    if (out_dir / "budget.json").is_file() and (final / "config.json").is_file():
        return final  # finished earlier with these settings
    if existing:
        state = load_checkpoint(existing[-1], model, engine, device)
    config_file.write_text(json.dumps({
        "identity": run_identity, "config": asdict(config), "plan": asdict(plan), "upstream": UPSTREAM,
        "image_tokens": image_tokens, "image_size": image_size, "device": str(device),
        "autocast_bf16": autocast is not contextlib.nullcontext}, indent=1))

    session_start = time.monotonic()
    wall_before = state.wall_seconds
    while state.step < plan.total_steps:
        micro_losses = []
        for micro in range(plan.accumulation):
            epoch, indices = micro_batch(len(samples), config, plan, state.step * plan.accumulation + micro)
            chosen = [samples[i] for i in indices]
            batch = collate([build_example(s, processor, image_tokens, image_size, ids) for s in chosen],
                            ids.pad, image_tokens).to(device)
            dropout = [sample_dropout(config.seed, s.id, epoch, s.is_edit, len(s.input_images),
                                      config.text_drop, config.vq_copy) for s in chosen]
            with autocast():
                out = image_token_loss(model, batch, dropout, ids.pad, config.first_token_quirk)
            engine.backward(out.loss)
            micro_losses.append(float(out.loss.detach()))
            state.samples += len(chosen)
            state.tokens += int(batch.attention_mask.sum())
            state.scored_tokens += out.scored_tokens
        lr = engine.lr
        grad_norm = engine.step()
        state.step += 1
        state.wall_seconds = wall_before + time.monotonic() - session_start
        state.records.append({"step": state.step, "loss": sum(micro_losses) / len(micro_losses), "lr": lr,
                              "grad_norm": grad_norm, "micro_losses": micro_losses})
        if config.checkpoint_every and state.step % config.checkpoint_every == 0 and state.step < plan.total_steps:
            save_checkpoint(out_dir / "checkpoints" / f"step-{state.step:06d}", model, engine, state)
            for old in checkpoints(out_dir)[:-max(1, config.keep_checkpoints)]:
                shutil.rmtree(old)
        interrupted = config.stop_after_steps is not None and state.step >= config.stop_after_steps
        if interrupted and state.step < plan.total_steps:
            return out_dir

    model.eval()
    model.to(_source_dtype(model_dir))
    model.generation_config._from_model_config = False  # else a reload drops generation_kwargs (pitfall 3)
    model.save_pretrained(final)
    processor.save_pretrained(final)
    write_loss_files(out_dir, state.records)
    (out_dir / "budget.json").write_text(json.dumps({
        "optimizer_steps": state.step, "samples": state.samples, "tokens": state.tokens,
        "image_tokens_scored": state.scored_tokens, "wall_seconds": round(state.wall_seconds, 3),
        "seconds_per_step": round(state.wall_seconds / max(1, state.step), 4)}, indent=1))
    return final
