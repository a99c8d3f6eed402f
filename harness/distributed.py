"""Sharding across ranks under ``torchrun``: each rank takes every world_size-th sample.

Seeds depend only on the sample, so any sharding gives the same per-sample results. Ranks talk
only through files and a barrier (gloo on CPU, nccl on GPUs).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence, TypeVar

T = TypeVar("T")


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> "DistContext":
        """Read torchrun's environment; join the process group when there is more than one rank."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        context = cls(rank=int(os.environ.get("RANK", "0")), world_size=world_size,
                      local_rank=int(os.environ.get("LOCAL_RANK", "0")))
        if world_size > 1:
            import torch
            import torch.distributed as dist

            if torch.cuda.is_available():
                torch.cuda.set_device(context.local_rank)
            if not dist.is_initialized():
                dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
        return context

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, items: Sequence[T]) -> list[T]:
        return list(items[self.rank::self.world_size])

    def barrier(self) -> None:
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.world_size > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
