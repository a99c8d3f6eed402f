"""Torch devices for plugins that run a network (judges, detectors): one rule for ``"auto"``.

Kernel module: any plugin or benchmark package may import it. torch is imported when a device is
resolved, so importing this module stays light.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def resolve_device(device: str) -> "torch.device":
    """``"auto"`` picks the GPU when there is one; anything else is passed to torch as is."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
