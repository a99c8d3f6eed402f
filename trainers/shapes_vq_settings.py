"""The settings of the shapes VQ tokenizer (everything hashed into the artifact's inputs) and the
``JanusVQVAEConfig`` they make."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ShapesVQSettings:
    """Everything that determines the trained weights (hashed into the artifact's inputs)."""

    image_size: int = 64
    patch_size: int = 8
    steps: int = 400
    batch_size: int = 8  # 4x the steps of batch 32 per CPU second (not compared head to head)
    seed: int = 0
    codebook_size: int = 512
    embed_dim: int = 8
    base_channels: int = 32
    latent_channels: int = 32
    channel_multiplier: tuple[int, ...] | None = None  # None: all ones, one level per halving
    num_res_blocks: int = 1
    lr: float = 3e-3
    lr_floor: float = 0.05  # cosine decay from lr to lr_floor x lr over the run (a constant lr ends noisy)
    beta: float = 0.25  # commitment weight
    foreground_weight: float = 4.0  # extra reconstruction weight on object pixels
    edge_weight: float = 0.0  # extra weight on a 3x3 band around object outlines (where blur costs shapes)
    reseed_every: int = 50
    autoencoder_steps: int = 0  # first steps decode the continuous latents; then codes start from them
    reconstruction: str = "mse"  # "mse" weighs large (colour) errors up; "l1" tends to grey medians
    conv_init: str = "pytorch"  # "pytorch": torch's default conv init; "hf": the port's normal(0.02)
    profile: str = "full"  # the shapes-world profile its scenes are drawn from (shapes.world.PROFILES)
    #: pulls the encoder's (normalised) latents of pixel-identical patches of a batch together, so a
    #: patch gets the same code whatever surrounds it (docs/TRAINING.md: context codes are what the
    #: language model then has to learn); 0 = off
    consistency_weight: float = 0.0
    #: where dead codes are re-seeded: "random" encoder outputs of the batch, or "farthest": one at a
    #: time at the output farthest from every live code (and only while one is farther than
    #: ``reseed_distance``), so frequent patches (plain background) do not split over many codes
    reseed_from: str = "random"
    reseed_distance: float = 0.05
    #: for the first this many steps, training quantises each group of pixel-identical patches of a
    #: batch by its mean latent, so codes come to depend on the patch alone (with
    #: ``consistency_weight``); later steps quantise each patch on its own, as encoding does
    group_code_steps: int = 0

    def __post_init__(self) -> None:
        if self.reseed_from not in ("random", "farthest"):
            raise ValueError(f"reseed_from must be 'random' or 'farthest', got {self.reseed_from!r}")
        if self.consistency_weight < 0 or self.group_code_steps < 0:
            raise ValueError("consistency_weight and group_code_steps must be >= 0")

    def identity(self) -> dict[str, Any]:
        """The hashed settings; fields added later are left out at their defaults, so tokenizers
        made before them keep their hashes."""
        settings = asdict(self)
        for key, default in _LATER_FIELDS.items():
            if settings[key] == default:
                settings.pop(key)
        return settings

    def multiplier(self) -> list[int]:
        levels = int(round(np.log2(self.patch_size)))
        if 2 ** levels != self.patch_size:
            raise ValueError(f"patch_size must be a power of two; got {self.patch_size}")
        mult = list(self.channel_multiplier) if self.channel_multiplier else [1] * (levels + 1)
        if len(mult) != levels + 1:
            raise ValueError(f"channel_multiplier needs {levels + 1} levels for a {self.patch_size}x downsample")
        if any(self.base_channels * m % 32 for m in mult):  # GroupNorm(32) is hard-coded in the port
            raise ValueError("base_channels x every multiplier must be a multiple of 32")
        return mult


#: settings added after tokenizers were first made, with the default that leaves training as it was
_LATER_FIELDS: dict[str, Any] = {"profile": "full", "consistency_weight": 0.0, "reseed_from": "random",
                                  "reseed_distance": 0.05, "group_code_steps": 0}


def vq_config(settings: ShapesVQSettings, projection_dim: int = 64):
    """The ``JanusVQVAEConfig`` for ``settings`` (``projection_dim`` = the LM hidden size)."""
    from transformers import JanusVQVAEConfig

    if settings.image_size % settings.patch_size:
        raise ValueError("image_size must be a multiple of patch_size")
    return JanusVQVAEConfig(
        embed_dim=settings.embed_dim, num_embeddings=settings.codebook_size,
        latent_channels=settings.latent_channels, base_channels=settings.base_channels,
        channel_multiplier=settings.multiplier(), num_res_blocks=settings.num_res_blocks,
        num_patches=settings.image_size // settings.patch_size, projection_dim=projection_dim,
        image_token_embed_dim=projection_dim, num_hidden_layers=2,
    )
