"""GenEval's Mask2Former in mmdetection 2.x's checkpoint layout: its shapes, and random weights.

``mmdet_parameters(shapes)`` lists every parameter of mmdet's ``Mask2Former`` (Swin backbone,
``Mask2FormerHead`` with the ``MSDeformAttnPixelDecoder``) by its state-dict name and shape, in the
layout of the official checkpoint ``mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco_20220504_001756-
743b7d99.pth``. ``write_random_checkpoint(path, shapes, seed)`` saves such a checkpoint with random
values: each parameter comes from its own numpy generator seeded by sha256 of ``"<seed>/<name>"``, so
its bytes depend on nothing but the seed, its name and its shape, on any machine.

Two shapes: ``SWIN_S`` (the official config) and ``TINY`` (a narrow Swin and a small head with the
same structure, seconds on a CPU). The parity fixtures (``tests/fixtures/geneval_mask2former_official``)
feed such a checkpoint to mmdet; the tests write it again and feed it to ``geneval-mask2former``.

This module imports only numpy, torch and the standard library, so the official side (mmdet 2.x, no
harness installed) loads it by file path.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

GENERATOR_VERSION = 1
#: scales the mask logits: with logits far from 0 few pixels sit on the mask threshold, where the
#: last float bits of two implementations decide a pixel (and, inside the decoder, an attention mask)
MASK_LOGIT_SCALE = 8.0


@dataclass(frozen=True)
class Mask2FormerShapes:
    """The numbers that fix every tensor's shape; the rest is the official config's."""
    name: str
    embed_dims: int                  # Swin's width at stage 1 (doubles per stage)
    depths: tuple[int, ...]
    swin_heads: tuple[int, ...]
    window_size: int
    feat_channels: int               # the head's width (pixel decoder and transformer decoder)
    heads: int                       # attention heads of the pixel and the transformer decoder
    encoder_layers: int              # deformable-attention layers of the pixel decoder
    encoder_ffn: int
    decoder_layers: int              # masked-attention layers of the transformer decoder (mmdet's count)
    decoder_ffn: int
    num_queries: int
    num_classes: int = 80
    num_levels: int = 3              # feature levels the deformable attention reads
    num_points: int = 4

    @property
    def stage_dims(self) -> list[int]:
        return [self.embed_dims * 2 ** i for i in range(len(self.depths))]

    def as_dict(self) -> dict:
        return asdict(self)


SWIN_S = Mask2FormerShapes(name="swin-s", embed_dims=96, depths=(2, 2, 18, 2), swin_heads=(3, 6, 12, 24),
                           window_size=7, feat_channels=256, heads=8, encoder_layers=6, encoder_ffn=1024,
                           decoder_layers=9, decoder_ffn=2048, num_queries=100)
TINY = Mask2FormerShapes(name="tiny", embed_dims=32, depths=(2, 2, 2, 2), swin_heads=(1, 2, 4, 8),
                         window_size=7, feat_channels=64, heads=4, encoder_layers=2, encoder_ffn=128,
                         decoder_layers=3, decoder_ffn=128, num_queries=20)
SHAPES = {shapes.name: shapes for shapes in (SWIN_S, TINY)}


def _linear(prefix: str, out_dim: int, in_dim: int, bias: bool = True) -> Iterator[tuple[str, tuple]]:
    yield f"{prefix}.weight", (out_dim, in_dim)
    if bias:
        yield f"{prefix}.bias", (out_dim,)


def _norm(prefix: str, dim: int) -> Iterator[tuple[str, tuple]]:
    yield f"{prefix}.weight", (dim,)
    yield f"{prefix}.bias", (dim,)


def _ffn(prefix: str, dim: int, hidden: int) -> Iterator[tuple[str, tuple]]:
    """mmcv's ``FFN``: ``layers.0`` is (Linear, act, Dropout), ``layers.1`` the second Linear."""
    yield from _linear(f"{prefix}.layers.0.0", hidden, dim)
    yield from _linear(f"{prefix}.layers.1", dim, hidden)


def _conv_module(prefix: str, out_dim: int, in_dim: int, kernel: int, bias: bool) -> Iterator[tuple[str, tuple]]:
    """mmcv's ``ConvModule`` with a GroupNorm: ``conv`` then ``gn``."""
    yield f"{prefix}.conv.weight", (out_dim, in_dim, kernel, kernel)
    if bias:
        yield f"{prefix}.conv.bias", (out_dim,)
    yield from _norm(f"{prefix}.gn", out_dim)


def _backbone(s: Mask2FormerShapes) -> Iterator[tuple[str, tuple]]:
    dims = s.stage_dims
    yield "backbone.patch_embed.projection.weight", (dims[0], 3, 4, 4)
    yield "backbone.patch_embed.projection.bias", (dims[0],)
    yield from _norm("backbone.patch_embed.norm", dims[0])
    table = (2 * s.window_size - 1) ** 2
    for i, (depth, heads, dim) in enumerate(zip(s.depths, s.swin_heads, dims)):
        for j in range(depth):
            block = f"backbone.stages.{i}.blocks.{j}"
            yield from _norm(f"{block}.norm1", dim)
            yield f"{block}.attn.w_msa.relative_position_bias_table", (table, heads)
            yield from _linear(f"{block}.attn.w_msa.qkv", 3 * dim, dim)
            yield from _linear(f"{block}.attn.w_msa.proj", dim, dim)
            yield from _norm(f"{block}.norm2", dim)
            yield from _ffn(f"{block}.ffn", dim, 4 * dim)
        if i < len(s.depths) - 1:
            yield from _norm(f"backbone.stages.{i}.downsample.norm", 4 * dim)
            yield from _linear(f"backbone.stages.{i}.downsample.reduction", 2 * dim, 4 * dim, bias=False)
    for i, dim in enumerate(dims):
        yield from _norm(f"backbone.norm{i}", dim)


def _pixel_decoder(s: Mask2FormerShapes) -> Iterator[tuple[str, tuple]]:
    c, dims = s.feat_channels, s.stage_dims
    p = "panoptic_head.pixel_decoder"
    for k, level in enumerate(range(len(dims) - 1, len(dims) - 1 - s.num_levels, -1)):
        yield from _conv_module(f"{p}.input_convs.{k}", c, dims[level], 1, bias=True)
    for k in range(s.encoder_layers):
        layer = f"{p}.encoder.layers.{k}"
        attention = f"{layer}.attentions.0"
        yield from _linear(f"{attention}.sampling_offsets", s.heads * s.num_levels * s.num_points * 2, c)
        yield from _linear(f"{attention}.attention_weights", s.heads * s.num_levels * s.num_points, c)
        yield from _linear(f"{attention}.value_proj", c, c)
        yield from _linear(f"{attention}.output_proj", c, c)
        yield from _ffn(f"{layer}.ffns.0", c, s.encoder_ffn)
        yield from _norm(f"{layer}.norms.0", c)
        yield from _norm(f"{layer}.norms.1", c)
    yield f"{p}.level_encoding.weight", (s.num_levels, c)
    for k, level in enumerate(range(len(dims) - 1 - s.num_levels, -1, -1)):
        yield from _conv_module(f"{p}.lateral_convs.{k}", c, dims[level], 1, bias=False)
        yield from _conv_module(f"{p}.output_convs.{k}", c, c, 3, bias=False)
    yield f"{p}.mask_feature.weight", (c, c, 1, 1)  # a 1x1 Conv2d
    yield f"{p}.mask_feature.bias", (c,)


def _transformer_decoder(s: Mask2FormerShapes) -> Iterator[tuple[str, tuple]]:
    c = s.feat_channels
    p = "panoptic_head.transformer_decoder"
    for k in range(s.decoder_layers):
        layer = f"{p}.layers.{k}"
        for a in (0, 1):  # 0: cross-attention, 1: self-attention (operation order cross, self, ffn)
            yield f"{layer}.attentions.{a}.attn.in_proj_weight", (3 * c, c)
            yield f"{layer}.attentions.{a}.attn.in_proj_bias", (3 * c,)
            yield from _linear(f"{layer}.attentions.{a}.attn.out_proj", c, c)
        yield from _ffn(f"{layer}.ffns.0", c, s.decoder_ffn)
        for n in range(3):
            yield from _norm(f"{layer}.norms.{n}", c)
    yield from _norm(f"{p}.post_norm", c)
    yield "panoptic_head.query_embed.weight", (s.num_queries, c)
    yield "panoptic_head.query_feat.weight", (s.num_queries, c)
    yield "panoptic_head.level_embed.weight", (s.num_levels, c)
    yield from _linear("panoptic_head.cls_embed", s.num_classes + 1, c)
    for k in (0, 2, 4):
        yield from _linear(f"panoptic_head.mask_embed.{k}", c, c)


def mmdet_parameters(shapes: Mask2FormerShapes) -> dict[str, tuple[int, ...]]:
    """Every parameter of mmdet's Mask2Former at these shapes: state-dict name -> shape."""
    params: dict[str, tuple[int, ...]] = {}
    for generator in (_backbone, _pixel_decoder, _transformer_decoder):
        for name, shape in generator(shapes):
            params[name] = tuple(shape)
    return params


def _generator(seed: int, name: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}/{name}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def random_parameter(name: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """One parameter's values: norms near 1, weights scaled by fan-in, embeddings standard normal.

    The class head is scaled up so that some class scores pass GenEval's thresholds, and the
    sampling offsets' biases spread the deformable attention over a few pixels.
    """
    rng = _generator(seed, name)
    leaf = name.rsplit(".", 1)[-1]
    is_norm = any(part.startswith("norm") or part in ("gn", "post_norm") for part in name.split(".")[:-1])
    if is_norm:
        values = (1.0 + 0.1 * rng.standard_normal(shape)) if leaf == "weight" else 0.1 * rng.standard_normal(shape)
    elif leaf in ("bias", "in_proj_bias"):
        values = (1.0 if "sampling_offsets" in name else 0.1) * rng.standard_normal(shape)
    elif "relative_position_bias_table" in name:
        values = 0.5 * rng.standard_normal(shape)
    elif len(shape) == 2 and any(key in name for key in ("query_", "level_e")):
        values = rng.standard_normal(shape)
    else:
        fan_in = int(np.prod(shape[1:]))
        values = rng.standard_normal(shape) / np.sqrt(fan_in)
        if "cls_embed" in name:
            values = values * 4.0
        if name.startswith("panoptic_head.mask_embed.4"):
            values = values * MASK_LOGIT_SCALE
    return values.astype(np.float32)


def random_state_dict(shapes: Mask2FormerShapes, seed: int = 0) -> dict:
    """The checkpoint's ``state_dict`` as torch tensors (float32)."""
    import torch
    return {name: torch.from_numpy(random_parameter(name, shape, seed))
            for name, shape in mmdet_parameters(shapes).items()}


def write_random_checkpoint(path: str | Path, shapes: Mask2FormerShapes, seed: int = 0) -> Path:
    """Save ``{"meta": ..., "state_dict": ...}`` as mmdet's published checkpoints are laid out."""
    import torch
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"generator": "recipe-harness mask2former_random", "generator_version": GENERATOR_VERSION,
            "shapes": shapes.name, "seed": seed}
    torch.save({"meta": meta, "state_dict": random_state_dict(shapes, seed)}, path)
    return path
