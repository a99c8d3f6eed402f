"""Engines behind the Janus-4o loop: one process (``plain``), ``torch.nn.parallel.DistributedDataParallel``
(``ddp``) and DeepSpeed ZeRO 1/2/3 (``deepspeed``), all with the same calls:

* ``accumulating(flag)``: context for one micro-batch (DDP skips the gradient all-reduce inside it);
* ``loss(batch, dropout, pad_id, quirk)``: the forward pass, through the wrapper so DDP/ZeRO hooks run;
* ``backward(loss)``, ``step() -> pre-clip gradient norm``, ``lr``;
* ``all_sum``/``all_gather``/``barrier`` for the log, and ``is_main`` (rank 0 writes files).

DeepSpeed (ZeRO 1/2 measured against one process on CPU): ZeRO takes a missing gradient as zero, so a
trainable parameter unused in a whole step (the text ``lm_head`` always; SigLIP and the aligner in a
step without edits) still gets AdamW's weight decay and moment updates, as upstream's ZeRO-1 run did;
torch's AdamW (plain, DDP) skips it. Everything else matches one process to ~2e-7 with ZeRO-1 on 1 and
2 ranks and ZeRO-2 on 1 and 2 ranks (ZeRO-2 needs :class:`_GradientGate`: its reduce bucket follows the
order of the gradient hooks, which differs between ranks doing different kinds of samples). ZeRO-3
runs on one process only (ranks with different samples gather different parameters in the forward).

Loss scaling (checked by hand): one process takes ``A = G / m`` micro-batches per step and backs up
``loss / A``, so the step gradient is ``(1/A) sum_a g_a``. With ``W`` ranks each rank takes
``A_r = G / (m W)`` micro-batches and backs up ``loss / A_r``; DDP (and ZeRO) then *average* over the
``W`` ranks: ``(1/W) sum_r (1/A_r) sum_a g_ra = (1/A) sum g``, the same gradient. DeepSpeed divides by
its ``gradient_accumulation_steps`` (= ``A_r``) itself, so its engine backs up the raw loss.
"""
from __future__ import annotations

import contextlib
import importlib
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
import torch.distributed as dist

from harness.errors import HarnessError
from trainers.janus4o.objective import Dropout, LossOutput, image_token_loss
from trainers.janus4o.sequences import TrainingBatch

ENGINES = ("plain", "ddp", "deepspeed")
DEEPSPEED_CONFIGS = Path(__file__).parent / "deepspeed"


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def init_distributed(engine: str, device_type: str) -> World:
    """Join (or, for a lone process, create) the process group the launcher describes in the environment.

    ``plain`` needs none and refuses a multi-process launch (every rank would train alone)."""
    if engine not in ENGINES:
        raise HarnessError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if engine == "plain":
        if size > 1:
            raise HarnessError(f"WORLD_SIZE={size}: launch several processes with --engine ddp or deepspeed")
        return World()
    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("LOCAL_RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    if "MASTER_PORT" not in os.environ:
        if size > 1:
            raise HarnessError("MASTER_PORT is not set: start several processes with torchrun or deepspeed")
        os.environ["MASTER_PORT"] = str(_free_port())
    local_rank = int(os.environ["LOCAL_RANK"])
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    backend = "nccl" if device_type == "cuda" else "gloo"
    if not dist.is_initialized():
        if engine == "deepspeed":
            deepspeed = _import_deepspeed()
            with _without_shm_op(device_type == "cpu"):
                deepspeed.init_distributed(dist_backend=backend)
        else:
            dist.init_process_group(backend=backend)
    return World(dist.get_rank(), dist.get_world_size(), local_rank)


@contextlib.contextmanager
def _without_shm_op(active: bool) -> Iterator[None]:
    """On CPU, DeepSpeed's ``TorchBackend`` JIT-compiles a shared-memory all-reduce op when it is made
    (about a minute per process, needs a C++ compiler; checked with deepspeed 0.19.8: no setting turns
    it off, and a ``DS_BUILD_OPS=0`` install still marks it compatible). gloo alone is enough for us,
    so ``deepspeed.comm.torch.build_shm_op`` (a module-level function the backend calls by name) answers
    None, which DeepSpeed treats as "no shm op", while the backend is made; it is put back afterwards.
    A DeepSpeed without that function is left alone."""
    # importlib: ``deepspeed.comm.torch`` as an attribute path resolves to the torch package itself
    module = importlib.import_module("deepspeed.comm.torch")
    original = getattr(module, "build_shm_op", None)
    if not active or original is None:
        yield
        return
    module.build_shm_op = lambda: None
    try:
        yield
    finally:
        module.build_shm_op = original


def _import_deepspeed() -> Any:
    try:
        import deepspeed
    except ImportError as error:
        raise HarnessError(f"--engine deepspeed needs the deepspeed package ({error}); "
                           'install it with pip install -e ".[train]" (or pip install "deepspeed>=0.14")') from error
    return deepspeed


class _GradientGate(torch.autograd.Function):
    """Identity on the trainable parameters whose backward hands every gradient over at once, in the
    parameters' fixed order (a missing one as zeros).

    Why ZeRO-2 needs it: ZeRO-2 copies each gradient into a flat reduce bucket from a per-parameter
    hook, in the order the hooks fire, and all-reduces / reduce-scatters the bucket element by
    element across ranks. That order follows the backward graph, which differs between a rank doing a
    text-to-image micro-batch and one doing an edit (SigLIP, VQ copy), so the ranks' buckets lay the
    parameters out differently and their sum mixes one parameter's gradient into another's (measured on
    CPU, 2 ranks: step-1 pre-clip norm 57.42 vs 53.74 in one process, and SigLIP's key bias, whose true
    gradient is 0, moved by a full learning-rate step; with the gate: 53.74, weights within 2e-7 after
    3 steps). Behind the gate every parameter's gradient accumulator runs after the whole graph, queued
    by the gate's backward in parameter order, so the hooks fire in one order on every rank."""

    @staticmethod
    def forward(ctx: Any, *parameters: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(p.view_as(p) for p in parameters)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return grads  # None gradients arrive materialised as zeros (ctx.set_materialize_grads default)


class LossModule(torch.nn.Module):
    """The Janus model with the training loss as ``forward``: DDP and DeepSpeed only sync gradients
    (and ZeRO-3 only gathers parameters) for computation that runs through the wrapper's forward.
    ``gate_gradients``: route the trainable parameters through :class:`_GradientGate` (ZeRO-2)."""

    def __init__(self, janus: torch.nn.Module, pad_id: int, first_token_quirk: bool,
                 gate_gradients: bool = False) -> None:
        super().__init__()
        self.janus, self.pad_id, self.first_token_quirk = janus, pad_id, first_token_quirk
        self.gate_gradients = gate_gradients

    def forward(self, batch: TrainingBatch, dropout: Sequence[Dropout],
                gated: bool = False) -> tuple[torch.Tensor, torch.Tensor, int]:
        if self.gate_gradients and not gated:
            names, parameters = zip(*[(n, p) for n, p in self.named_parameters() if p.requires_grad])
            views = dict(zip(names, _GradientGate.apply(*parameters)))
            # this module again, on the gated views for this call only (its parameters are put back after)
            return torch.func.functional_call(self, views, (batch, dropout), {"gated": True})
        out = image_token_loss(self.janus, batch, dropout, self.pad_id, self.first_token_quirk)
        return out.loss, out.target_codes, out.scored_tokens


class Engine:
    """One process: backward with ``loss / accumulation``, then clip, step, schedule, clear."""

    checkpoint_format = "safetensors"

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler, accumulation: int, max_grad_norm: float,
                 world: World = World()) -> None:
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.accumulation, self.max_grad_norm, self.world = accumulation, max_grad_norm, world

    @property
    def is_main(self) -> bool:
        return self.world.rank == 0

    def accumulating(self, flag: bool) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def _forward(self, batch: TrainingBatch, dropout: Sequence[Dropout]) -> tuple[torch.Tensor, torch.Tensor, int]:
        module = getattr(self, "loss_module", None)
        if module is None:
            out = image_token_loss(self.model, batch, dropout, self.pad_id, self.first_token_quirk)
            return out.loss, out.target_codes, out.scored_tokens
        return module(batch, dropout)

    def loss(self, batch: TrainingBatch, dropout: Sequence[Dropout], pad_id: int,
             first_token_quirk: bool = True) -> LossOutput:
        self.pad_id, self.first_token_quirk = pad_id, first_token_quirk
        loss, codes, scored = self._forward(batch, dropout)
        return LossOutput(loss=loss, scored_tokens=int(scored), target_codes=codes)

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

    # -- collectives (no-ops for one process) --

    def all_sum(self, values: list[float]) -> list[float]:
        if self.world.size == 1:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(tensor)
        return tensor.tolist()

    def all_gather(self, values: list[float]) -> list[list[float]]:
        """Every rank's list (all of the same length), by rank."""
        if self.world.size == 1:
            return [list(values)]
        tensor = torch.tensor(values, dtype=torch.float64, device=self._comm_device())
        gathered = [torch.empty_like(tensor) for _ in range(self.world.size)]
        dist.all_gather(gathered, tensor)
        return [g.tolist() for g in gathered]

    def barrier(self) -> None:
        if self.world.size > 1:
            dist.barrier()

    def _comm_device(self) -> torch.device:
        return torch.device("cuda") if dist.get_backend() == "nccl" else torch.device("cpu")

    # -- DeepSpeed only --

    def full_state_dict(self) -> dict[str, torch.Tensor] | None:
        """A gathered state dict when the model's parameters are partitioned (ZeRO-3), else None."""
        return None


class DDPEngine(Engine):
    """DistributedDataParallel over the loss wrapper; ``no_sync`` on all but the last micro-batch."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler, accumulation: int, max_grad_norm: float,
                 world: World, pad_id: int, first_token_quirk: bool) -> None:
        super().__init__(model, optimizer, scheduler, accumulation, max_grad_norm, world)
        device = next(model.parameters()).device
        # find_unused_parameters: a text-to-image micro-batch leaves SigLIP and the aligner unused
        self.loss_module = torch.nn.parallel.DistributedDataParallel(
            LossModule(model, pad_id, first_token_quirk), device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=True)

    def accumulating(self, flag: bool) -> contextlib.AbstractContextManager:
        return self.loss_module.no_sync() if flag else contextlib.nullcontext()


def deepspeed_config(stage: int, micro_batch: int, accumulation: int, world_size: int, max_grad_norm: float,
                     bf16: bool) -> dict[str, Any]:
    """``deepspeed/zero{stage}.json`` with its "auto" fields filled from our plan."""
    path = DEEPSPEED_CONFIGS / f"zero{stage}.json"
    if not path.is_file():
        raise HarnessError(f"ZeRO stage must be 1, 2 or 3; got {stage}")
    config = json.loads(path.read_text())
    filled = {"train_micro_batch_size_per_gpu": micro_batch, "gradient_accumulation_steps": accumulation,
              "train_batch_size": micro_batch * accumulation * world_size, "gradient_clipping": max_grad_norm}
    for key, value in filled.items():
        if config.get(key, "auto") == "auto":
            config[key] = value
    config["bf16"] = {**config.get("bf16", {}), "enabled": bf16}
    return config


class DeepSpeedEngine(Engine):
    """``deepspeed.initialize`` with our torch AdamW and LambdaLR (no fused ops to build). DeepSpeed
    counts micro-steps itself: ``engine.step()`` is called after every micro-batch and only steps the
    optimiser (clip, step, schedule) at the accumulation boundary."""

    checkpoint_format = "deepspeed"

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler, accumulation: int, max_grad_norm: float,
                 world: World, pad_id: int, first_token_quirk: bool, config: dict[str, Any]) -> None:
        super().__init__(model, optimizer, scheduler, accumulation, max_grad_norm, world)
        deepspeed = _import_deepspeed()
        self.stage = int(config["zero_optimization"]["stage"])
        self.ds, self.optimizer, _, self.scheduler = deepspeed.initialize(
            model=LossModule(model, pad_id, first_token_quirk, gate_gradients=self.stage == 2), optimizer=optimizer,
            lr_scheduler=scheduler,
            config=config)
        self.loss_module = self.ds

    def backward(self, loss: torch.Tensor) -> None:
        self.ds.backward(loss)  # DeepSpeed divides by gradient_accumulation_steps
        if not self.ds.is_gradient_accumulation_boundary():
            self.ds.step()  # counts the micro-step; the last one is stepped in step()

    @property
    def lr(self) -> float:
        return float(self.ds.get_lr()[0])

    def step(self) -> float:
        self.ds.step()
        norm = self.ds.get_global_grad_norm()
        return float(norm) if norm is not None else float("nan")

    def save(self, folder: Path) -> None:
        """DeepSpeed's own checkpoint format (``mp_rank_*``/``zero_pp_rank_*`` files; a collective call),
        readable only by ``load`` with the same ZeRO stage and world size."""
        self.ds.save_checkpoint(str(folder.parent), tag=folder.name, save_latest=False)  # we pick the tag

    def load(self, folder: Path) -> None:
        path, _ = self.ds.load_checkpoint(str(folder.parent), tag=folder.name)
        if path is None:
            raise HarnessError(f"{folder}: DeepSpeed could not load this checkpoint")

    def full_state_dict(self) -> dict[str, torch.Tensor] | None:
        if self.stage < 3:
            return None
        state = self.ds._zero3_consolidated_16bit_state_dict()  # collective; filled on rank 0 only
        prefix = "janus."
        return {k[len(prefix):]: v for k, v in state.items()} if state is not None else None


def build_engine(name: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler, *, accumulation: int, micro_batch: int,
                 max_grad_norm: float, world: World, pad_id: int, first_token_quirk: bool, zero_stage: int = 1,
                 bf16: bool = False) -> Engine:
    if name == "plain":
        return Engine(model, optimizer, scheduler, accumulation, max_grad_norm, world)
    if name == "ddp":
        return DDPEngine(model, optimizer, scheduler, accumulation, max_grad_norm, world, pad_id, first_token_quirk)
    if name == "deepspeed":
        if zero_stage == 3 and world.size > 1:
            # measured on CPU/gloo: ranks whose micro-batches use different parameters (text-to-image
            # vs edit) issue different ZeRO-3 collectives in backward and the run dies (or hangs on NCCL)
            raise HarnessError("ZeRO-3 with more than one process is not supported by this trainer; use --zero 1 "
                               "(upstream's) or 2")
        config = deepspeed_config(zero_stage, micro_batch, accumulation, world.size, max_grad_norm, bf16)
        return DeepSpeedEngine(model, optimizer, scheduler, accumulation, max_grad_norm, world, pad_id,
                               first_token_quirk, config)
    raise HarnessError(f"engine must be one of {', '.join(ENGINES)}; got {name!r}")


@contextlib.contextmanager
def process_group() -> Iterator[None]:
    """Tear the process group down at the end (a lingering gloo group makes torchrun wait)."""
    try:
        yield
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
