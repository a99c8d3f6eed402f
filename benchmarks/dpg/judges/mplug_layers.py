"""The building blocks of the mPLUG VQA model: CLIP's vision tower and the BERT parts (attention,
layers, embeddings, prediction head), with the official checkpoint's parameter names."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.dpg.judges.mplug_config import MPlugConfig

MASKED = -10000.0  # BERT's additive mask for self-attention


# ------------------------------------------------------------------------------ vision

class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class VisionBlock(nn.Module):
    """Pre-norm CLIP block over (tokens, batch, width) tensors."""

    def __init__(self, width: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, width // 64)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, 4 * width))
        self.mlp.add_module("gelu", QuickGELU())
        self.mlp.add_module("c_proj", nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = self.ln_1(x)
        x = x + self.attn(normed, normed, normed, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class VisionTower(nn.Module):
    def __init__(self, config: MPlugConfig):
        super().__init__()
        width, patch = config.vision_width, config.patch_size
        positions = int(config.image_res * config.image_res / ((16 * 16) if width == 768 else (14 * 14))) + 1
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch, stride=patch, bias=False)
        self.class_embedding = nn.Parameter(torch.zeros(width))
        self.positional_embedding = nn.Parameter(torch.zeros(positions, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = nn.Module()
        self.transformer.resblocks = nn.ModuleList(VisionBlock(width) for _ in range(config.vision_layers))
        self.ln_post = nn.LayerNorm(width)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.conv1(pixels)
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
        first = self.class_embedding + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype, device=x.device)
        x = torch.cat([first, x], dim=1)
        x = x + self.positional_embedding[:x.shape[1], :]
        x = self.ln_pre(x).permute(1, 0, 2)
        for block in self.transformer.resblocks:
            x = block(x)
        return self.ln_post(x.permute(1, 0, 2))


# ------------------------------------------------------------------------------ BERT parts

class Projections(nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.query, self.key, self.value = (nn.Linear(hidden, hidden) for _ in range(3))


class AddNorm(nn.Module):
    def __init__(self, size_in: int, hidden: int, eps: float):
        super().__init__()
        self.dense = nn.Linear(size_in, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class Attention(nn.Module):
    """Multi-head attention with BERT's arithmetic: (q k^T) / sqrt(d) + additive mask, softmax."""

    def __init__(self, config: MPlugConfig):
        super().__init__()
        self.heads, self.head_size = config.heads, config.hidden // config.heads
        self.add_module("self", Projections(config.hidden))
        self.output = AddNorm(config.hidden, config.hidden, config.layer_norm_eps)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(*x.shape[:-1], self.heads, self.head_size).transpose(-3, -2)

    def keys_values(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        projections = self._modules["self"]
        return self.split(projections.key(states)), self.split(projections.value(states))

    def forward(self, x: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                mask: torch.Tensor | None) -> torch.Tensor:
        query = self.split(self._modules["self"].query(x))
        scores = torch.matmul(query, keys.transpose(-1, -2)) / math.sqrt(self.head_size)
        if mask is not None:
            scores = scores + mask
        context = torch.matmul(torch.softmax(scores, dim=-1), values)
        context = context.transpose(-3, -2).reshape(*x.shape[:-1], -1)
        return self.output(context, x)

    def self_attend(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        keys, values = self.keys_values(x)
        return self.forward(x, keys, values, mask)


class BertLayer(nn.Module):
    def __init__(self, config: MPlugConfig, cross: bool):
        super().__init__()
        self.attention = Attention(config)
        if cross:
            self.crossattention = Attention(config)
        self.intermediate = nn.Module()
        self.intermediate.dense = nn.Linear(config.hidden, config.intermediate)
        self.output = AddNorm(config.intermediate, config.hidden, config.layer_norm_eps)

    def feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(F.gelu(self.intermediate.dense(x)), x)


class Embeddings(nn.Module):
    def __init__(self, config: MPlugConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden)
        self.position_embeddings = nn.Embedding(config.max_positions, config.hidden)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden)
        self.LayerNorm = nn.LayerNorm(config.hidden, eps=config.layer_norm_eps)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[-1], device=ids.device)
        x = self.word_embeddings(ids) + self.token_type_embeddings(torch.zeros_like(ids))
        return self.LayerNorm(x + self.position_embeddings(positions))


class BertStack(nn.Module):
    def __init__(self, config: MPlugConfig, layers: int, cross: bool, embeddings: bool):
        super().__init__()
        if embeddings:
            self.embeddings = Embeddings(config)
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList(BertLayer(config, cross) for _ in range(layers))


class PredictionHead(nn.Module):
    def __init__(self, config: MPlugConfig):
        super().__init__()
        self.transform = nn.Module()
        self.transform.dense = nn.Linear(config.hidden, config.hidden)
        self.transform.LayerNorm = nn.LayerNorm(config.hidden, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.hidden, config.vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform.LayerNorm(F.gelu(self.transform.dense(x))))


def extended_mask(mask: torch.Tensor) -> torch.Tensor:
    """(batch, keys) 1/0 -> (batch, 1, 1, keys) additive: 0 kept, -10000 masked."""
    return (1.0 - mask[:, None, None, :].to(torch.float32)) * MASKED
