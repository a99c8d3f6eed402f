"""The weights the Janus engine multiplies with (``janus_engine.py``), built from a transformers model.

* **Fused (small models).** The q, k and v projections and the ``rotate_half`` of q and k become one
  matrix, gate and up another, with the RMSNorm weight folded into their columns: fewer operations per
  step, which is what a small model's step costs.
* **Prepacked (large models on CPU).** oneDNN multiplies on prepacked copies of the weights: more memory,
  much faster than the BLAS behind ``nn.Linear`` on the CPU measured in docs/PERFORMANCE.md.
* Otherwise the model's own weight tensors, used in place.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F


def prepack_available() -> bool:
    """Whether oneDNN's prepacked linear (the operator torch.compile uses on CPU) exists here."""
    mkldnn = getattr(torch.ops, "mkldnn", None)
    if not (torch.backends.mkldnn.is_available() and hasattr(mkldnn, "_linear_pointwise")
            and hasattr(mkldnn, "_reorder_linear_weight")):
        return False
    try:
        weight = torch.ops.mkldnn._reorder_linear_weight(torch.ones(3, 2), None)
        out = torch.ops.mkldnn._linear_pointwise(torch.ones(1, 2), weight, None, "none", [], "")
        return bool(torch.equal(out, torch.full((1, 3), 2.0)))
    except (RuntimeError, TypeError):
        return False


class _Linear:
    """``x @ weight.T + bias``: ``F.linear``, or oneDNN on a prepacked copy of the weight (CPU)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, prepack: bool) -> None:
        self.bias = bias
        self.packed = prepack
        self.weight = torch.ops.mkldnn._reorder_linear_weight(weight, None) if prepack else weight

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.packed:
            return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")
        return F.linear(x, self.weight, self.bias)


def _linear(module: torch.nn.Linear, prepack: bool) -> _Linear:
    return _Linear(module.weight, module.bias, prepack)


def _rotate_rows(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """Rows of a projection whose output is ``rotate_half`` of the original's, head by head."""
    per_head = weight.reshape(heads, 2, -1, *weight.shape[1:])
    return torch.cat([-per_head[:, 1], per_head[:, 0]], dim=1).reshape(weight.shape)


def _fused(linears: Sequence[torch.nn.Linear], norm: torch.Tensor, prepack: bool,
           rotated: Sequence[tuple[torch.nn.Linear, int]] = ()) -> _Linear:
    """One linear for several that read the same normed input: their outputs concatenated, then the
    ``rotate_half`` of the ``rotated`` ones (module, heads). The RMSNorm weight ``norm`` is folded into
    the columns (computed in float32), so the decoder applies the norm without its weight."""
    weights = [linear.weight.float() for linear in linears] + [_rotate_rows(m.weight.float(), h) for m, h in rotated]
    zeros = [torch.zeros(m.out_features, device=m.weight.device) for m in linears]
    biases = [z if m.bias is None else m.bias.float() for m, z in zip(linears, zeros)]
    biases += [torch.zeros(m.out_features, device=m.weight.device) if m.bias is None
               else _rotate_rows(m.bias.float(), h) for m, h in rotated]
    has_bias = any(m.bias is not None for m in list(linears) + [m for m, _ in rotated])
    dtype = linears[0].weight.dtype
    weight = (torch.cat(weights) * norm.float()).to(dtype)
    return _Linear(weight, torch.cat(biases).to(dtype) if has_bias else None, prepack)


@dataclass
class Layer:
    """One decoder layer. Small models: ``qkv`` gives q, k, v, rotate_half(q), rotate_half(k) in one
    product and ``gate_up`` gate and up, both with the norm weights folded in (``in_norm`` and
    ``post_norm`` are None then). Otherwise ``q``, ``k``, ``v`` / ``gate``, ``up`` run one by one."""

    in_norm: torch.Tensor | None
    post_norm: torch.Tensor | None
    qkv: _Linear | None
    q: _Linear | None
    k: _Linear | None
    v: _Linear | None
    o: _Linear
    gate_up: _Linear | None
    gate: _Linear | None
    up: _Linear | None
    down: _Linear
    act: Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Weights:
    """What the engine multiplies with, built from the model's parameters (and rebuilt when one of them
    is replaced or changed in place)."""

    layers: list[Layer]
    head: tuple[_Linear, Callable, _Linear]  # the generation head: linear, activation, linear
    fused: bool
    fingerprint: tuple


def build_weights(language_model: Any, generation_head: Any, heads: int, kv_heads: int, fuse: bool,
                  prepack: bool, fingerprint: tuple) -> Weights:
    """The decoder's and generation head's weights as the engine uses them: with ``fuse``, q/k/v (plus
    the ``rotate_half`` of q and k) and gate/up in one matrix each, norm weights folded in; with
    ``prepack``, oneDNN-prepacked copies (CPU)."""
    built = []
    for layer in language_model.layers:
        attention, mlp = layer.self_attn, layer.mlp
        act = F.silu if getattr(language_model.config, "hidden_act", None) == "silu" else mlp.act_fn
        projections = (attention.q_proj, attention.k_proj, attention.v_proj)
        in_norm, post_norm = layer.input_layernorm.weight, layer.post_attention_layernorm.weight
        if fuse:
            rotated = ((attention.q_proj, heads), (attention.k_proj, kv_heads))
            built.append(Layer(None, None, _fused(projections, in_norm, prepack, rotated), None, None, None,
                                _linear(attention.o_proj, prepack),
                                _fused((mlp.gate_proj, mlp.up_proj), post_norm, prepack), None, None,
                                _linear(mlp.down_proj, prepack), act))
        else:
            built.append(Layer(in_norm, post_norm, None, *(_linear(m, prepack) for m in projections),
                                _linear(attention.o_proj, prepack), None, _linear(mlp.gate_proj, prepack),
                                _linear(mlp.up_proj, prepack), _linear(mlp.down_proj, prepack), act))
    head = (_linear(generation_head.proj_out, prepack), generation_head.activation_fn,
            _linear(generation_head.vision_head, prepack))
    return Weights(layers=built, head=head, fused=fuse, fingerprint=fingerprint)
