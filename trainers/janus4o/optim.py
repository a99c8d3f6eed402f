"""Janus-4o optimiser and learning-rate schedule.

As upstream ``train_janus.py`` (FreedomIntelligence/ShareGPT-4o-Image, commit
19ac7d779d8b893b549c2640373c78947ee4b6d5; docs/JANUS.md section 4):

* ``torch.optim.AdamW(lr=5e-6)`` with torch's default betas (0.9, 0.999) and eps 1e-8; weight decay
  0.1 except for parameter names containing ``bias`` or ``LayerNorm.weight``. Llama's RMSNorm weights
  are named ``*_layernorm.weight`` / ``norm.weight`` (lower case), so they **are** decayed, as upstream.
* ``LambdaLR`` with ``get_custom_cosine_schedule_with_warmup``: ``warmup = int(0.05 * total)``;
  factor ``step / max(1, warmup)`` while ``step < warmup`` (so the first optimiser step runs at lr 0),
  then ``(1 - r) * 0.5 * (1 + cos(pi * progress)) + r`` with ``r = min_lr_ratio = 0.15`` and
  ``progress = (step - warmup) / max(1, total - warmup)``. The scheduler steps after each optimiser
  step, so optimiser step k (from 0) uses factor(k); the last step (total - 1) stays just above r.

One deliberate difference: parameters that can get no gradient (the VQ model, frozen by the loop)
are left out of the optimiser. Upstream handed all parameters to DeepSpeed ZeRO-1, which treats a
missing gradient as zero, so the VQ weights only shrank by weight decay (about 0.1% over 2K steps).
"""
from __future__ import annotations

import math
from typing import Any

import torch

LEARNING_RATE = 5e-6
WEIGHT_DECAY = 0.1
WARMUP_RATIO = 0.05
MIN_LR_RATIO = 0.15
NO_DECAY_MARKERS = ("bias", "LayerNorm.weight")


def is_decayed(name: str) -> bool:
    """Upstream's rule, by substring of the parameter name (case-sensitive)."""
    return not any(marker in name for marker in NO_DECAY_MARKERS)


def parameter_groups(model: torch.nn.Module, weight_decay: float = WEIGHT_DECAY) -> list[dict[str, Any]]:
    """[decayed group, no-decay group] of the trainable parameters, each with its ``param_names``."""
    groups: list[dict[str, Any]] = [
        {"params": [], "param_names": [], "weight_decay": weight_decay},
        {"params": [], "param_names": [], "weight_decay": 0.0},
    ]
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        group = groups[0] if is_decayed(name) else groups[1]
        group["params"].append(parameter)
        group["param_names"].append(name)
    return groups


def build_optimizer(model: torch.nn.Module, lr: float = LEARNING_RATE, weight_decay: float = WEIGHT_DECAY
                    ) -> torch.optim.AdamW:
    return torch.optim.AdamW(parameter_groups(model, weight_decay), lr=lr)


def warmup_steps(total_steps: int, warmup_ratio: float = WARMUP_RATIO) -> int:
    return int(warmup_ratio * total_steps)


def lr_factor(step: int, warmup: int, total_steps: int, min_lr_ratio: float = MIN_LR_RATIO,
              num_cycles: float = 0.5) -> float:
    """Multiplier of the peak learning rate at optimiser step ``step`` (upstream's lambda)."""
    if step < warmup:
        return float(step) / float(max(1, warmup))
    progress = float(step - warmup) / float(max(1, total_steps - warmup))
    cosine = 0.5 * (1.0 + math.cos(math.pi * 2 * num_cycles * progress))
    return (1 - min_lr_ratio) * cosine + min_lr_ratio


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float = WARMUP_RATIO,
                    min_lr_ratio: float = MIN_LR_RATIO) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = warmup_steps(total_steps, warmup_ratio)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, warmup, total_steps, min_lr_ratio))
