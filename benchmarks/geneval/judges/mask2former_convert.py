"""mmdetection 2.x's Mask2Former checkpoint -> transformers' ``Mask2FormerForUniversalSegmentation``.

The two implementations compute the same network (JUDGES.md lists what was compared); only names and
a few layouts differ:

- Swin's fused ``qkv`` and the decoder self-attention's ``in_proj`` split into q/k/v (the decoder's
  cross-attention keeps ``in_proj``, as both use ``nn.MultiheadAttention`` there);
- patch merging: mmdet gathers each 2x2 neighbourhood with ``nn.Unfold`` (feature index ``c*4 + k``,
  positions k in the order top-left, top-right, bottom-left, bottom-right), transformers concatenates
  four strided views (index ``k*C + c``, order top-left, bottom-left, top-right, bottom-right), so the
  ``reduction`` columns and the ``norm`` entries are permuted;
- mmcv's ``ConvModule`` (``conv``, ``gn``) becomes a ``Sequential`` (``0``, ``1``), its ``FFN``
  (``layers.0.0``, ``layers.1``) becomes ``fc1``/``fc2``, and the head's ``mask_embed.{0,2,4}`` become
  ``mask_embedder.{0,1,2}.0``.
"""
from __future__ import annotations

from typing import Callable

import torch

from benchmarks.geneval.judges.mask2former_random import Mask2FormerShapes
from harness.errors import HarnessError

#: transformers' patch-merging position k holds mmdet's position MERGE_ORDER[k]
MERGE_ORDER = (0, 2, 1, 3)

BACKBONE = "model.pixel_level_module.encoder."
PIXEL_DECODER = "model.pixel_level_module.decoder."
TRANSFORMER = "model.transformer_module."


def hf_config(shapes: Mask2FormerShapes):
    """The transformers config of the network that an mmdet checkpoint of these shapes holds."""
    from transformers import Mask2FormerConfig, SwinConfig

    backbone = SwinConfig(embed_dim=shapes.embed_dims, depths=list(shapes.depths),
                          num_heads=list(shapes.swin_heads), window_size=shapes.window_size, mlp_ratio=4.0,
                          qkv_bias=True, drop_path_rate=0.0, layer_norm_eps=1e-5, patch_size=4, image_size=224,
                          out_features=[f"stage{i + 1}" for i in range(len(shapes.depths))])
    return Mask2FormerConfig(
        backbone_config=backbone, num_labels=shapes.num_classes, num_queries=shapes.num_queries,
        feature_size=shapes.feat_channels, mask_feature_size=shapes.feat_channels,
        hidden_dim=shapes.feat_channels, num_attention_heads=shapes.heads,
        encoder_layers=shapes.encoder_layers, encoder_feedforward_dim=shapes.encoder_ffn,
        decoder_layers=shapes.decoder_layers + 1,  # transformers counts the query-only prediction
        dim_feedforward=shapes.decoder_ffn, feature_strides=[4, 8, 16, 32], pre_norm=False, dropout=0.0)


def _merge_permutation(tensor: torch.Tensor, channels: int) -> torch.Tensor:
    """Reorder the last dimension of a patch-merging tensor from mmdet's layout to transformers'."""
    lead = tensor.shape[:-1]
    grouped = tensor.reshape(*lead, channels, 4)[..., list(MERGE_ORDER)]
    return grouped.transpose(-1, -2).reshape(*lead, 4 * channels)


def _split3(tensor: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.chunk(tensor, 3, dim=0))


def _backbone_key(rest: str) -> str | None:
    """The transformers name of an mmdet backbone key without its fused/permuted cases (or None)."""
    renames = [("patch_embed.projection.", "swin.embeddings.patch_embeddings.projection."),
               ("patch_embed.norm.", "swin.embeddings.norm.")]
    for old, new in renames:
        if rest.startswith(old):
            return new + rest[len(old):]
    parts = rest.split(".")
    if parts[0].startswith("norm") and parts[0][4:].isdigit():
        return f"hidden_states_norms.stage{int(parts[0][4:]) + 1}.{parts[1]}"
    if parts[0] != "stages":
        return None
    stage = f"swin.encoder.layers.{parts[1]}."
    if parts[2] == "blocks":
        block, tail = stage + f"blocks.{parts[3]}.", ".".join(parts[4:])
        table = {"norm1.": "layernorm_before.", "norm2.": "layernorm_after.",
                 "attn.w_msa.proj.": "attention.o_proj.",
                 "attn.w_msa.relative_position_bias_table": "attention.relative_position_bias.relative_position_bias_table",
                 "ffn.layers.0.0.": "mlp.fc1.", "ffn.layers.1.": "mlp.fc2."}
        for old, new in table.items():
            if tail.startswith(old):
                return block + new + tail[len(old):]
    return None


def _pixel_decoder_key(rest: str) -> str | None:
    parts = rest.split(".")
    if parts[0] == "input_convs":
        return f"input_projections.{parts[1]}.{'0' if parts[2] == 'conv' else '1'}.{parts[3]}"
    if parts[0] in ("lateral_convs", "output_convs"):
        name = "adapter" if parts[0] == "lateral_convs" else "layer"
        return f"{name}_{int(parts[1]) + 1}.{'0' if parts[2] == 'conv' else '1'}.{parts[3]}"
    if rest == "level_encoding.weight":
        return "level_embed"
    if parts[0] == "mask_feature":
        return f"mask_projection.{parts[1]}"
    if parts[0] == "encoder":
        layer, tail = f"encoder.layers.{parts[2]}.", ".".join(parts[3:])
        table = {"attentions.0.": "self_attn.", "norms.0.": "self_attn_layer_norm.",
                 "norms.1.": "final_layer_norm.", "ffns.0.layers.0.0.": "fc1.", "ffns.0.layers.1.": "fc2."}
        for old, new in table.items():
            if tail.startswith(old):
                return layer + new + tail[len(old):]
    return None


def _head_key(rest: str) -> str | None:
    simple = {"query_embed.weight": TRANSFORMER + "queries_embedder.weight",
              "query_feat.weight": TRANSFORMER + "queries_features.weight",
              "level_embed.weight": TRANSFORMER + "level_embed.weight",
              "cls_embed.weight": "class_predictor.weight", "cls_embed.bias": "class_predictor.bias"}
    if rest in simple:
        return simple[rest]
    parts = rest.split(".")
    if parts[0] == "mask_embed":
        return TRANSFORMER + f"decoder.mask_predictor.mask_embedder.{int(parts[1]) // 2}.0.{parts[2]}"
    if parts[0] != "transformer_decoder":
        return None
    if parts[1] == "post_norm":
        return TRANSFORMER + f"decoder.layernorm.{parts[2]}"
    layer, tail = TRANSFORMER + f"decoder.layers.{parts[2]}.", ".".join(parts[3:])
    table = {"attentions.0.attn.": "cross_attn.", "attentions.1.attn.out_proj.": "self_attn.out_proj.",
             "norms.0.": "cross_attn_layer_norm.", "norms.1.": "self_attn_layer_norm.",
             "norms.2.": "final_layer_norm.", "ffns.0.layers.0.0.": "fc1.", "ffns.0.layers.1.": "fc2."}
    for old, new in table.items():
        if tail.startswith(old):
            return layer + new + tail[len(old):]
    return None


def _fused(name: str, tensor: torch.Tensor) -> dict[str, torch.Tensor] | None:
    """Keys whose tensor is split (qkv, in_proj of self-attention) or permuted (patch merging)."""
    if name.startswith("backbone.stages.") and ".attn.w_msa.qkv." in name:
        stage, block, leaf = name.split(".")[2], name.split(".")[4], name.rsplit(".", 1)[-1]
        prefix = f"{BACKBONE}swin.encoder.layers.{stage}.blocks.{block}.attention."
        return {f"{prefix}{p}_proj.{leaf}": t for p, t in zip("qkv", _split3(tensor))}
    if name.startswith("backbone.stages.") and ".downsample." in name:
        stage, module, leaf = name.split(".")[2], name.split(".")[4], name.rsplit(".", 1)[-1]
        channels = tensor.shape[-1] // 4
        return {f"{BACKBONE}swin.encoder.layers.{stage}.downsample.{module}.{leaf}":
                _merge_permutation(tensor, channels).contiguous()}
    if name.startswith("panoptic_head.transformer_decoder.layers.") and ".attentions.1.attn.in_proj_" in name:
        layer, leaf = name.split(".")[3], name.rsplit("_", 1)[-1]
        prefix = f"{TRANSFORMER}decoder.layers.{layer}.self_attn."
        return {f"{prefix}{p}_proj.{leaf}": t for p, t in zip("qkv", _split3(tensor))}
    return None


SECTIONS: list[tuple[str, str, Callable[[str], str | None]]] = [
    ("backbone.", BACKBONE, _backbone_key),
    ("panoptic_head.pixel_decoder.", PIXEL_DECODER, _pixel_decoder_key),
    ("panoptic_head.", "", _head_key),
]


def convert_state_dict(mmdet_state: dict[str, torch.Tensor], expected: set[str]) -> dict[str, torch.Tensor]:
    """transformers' state dict from mmdet's; ``expected`` is the set the model needs (checked)."""
    converted: dict[str, torch.Tensor] = {}
    unknown = []
    for name, tensor in mmdet_state.items():
        if name.endswith("relative_position_index"):
            continue  # a buffer both sides compute the same way
        fused = _fused(name, tensor)
        if fused is not None:
            converted.update(fused)
            continue
        for prefix, target, mapper in SECTIONS:
            if name.startswith(prefix):
                new = mapper(name[len(prefix):])
                if new is not None:
                    converted[target + new] = tensor
                    break
        else:
            unknown.append(name)
    if unknown:
        raise HarnessError(f"mmdet checkpoint has {len(unknown)} keys the Mask2Former conversion does not know "
                           f"(first: {unknown[:3]}); is it the GenEval Mask2Former (Swin) checkpoint?")
    missing = sorted(expected - set(converted))
    extra = sorted(set(converted) - expected)
    if missing or extra:
        raise HarnessError(f"converted Mask2Former weights do not fit the transformers model: missing "
                           f"{missing[:3]} ({len(missing)}), unexpected {extra[:3]} ({len(extra)}); the key "
                           f"names of transformers' Mask2Former/Swin may have changed in this version")
    return converted


def hf_model_from_mmdet(mmdet_state: dict[str, torch.Tensor], shapes: Mask2FormerShapes):
    """A transformers Mask2Former in eval mode holding the mmdet weights, fp32, on the CPU."""
    from transformers import Mask2FormerForUniversalSegmentation

    model = Mask2FormerForUniversalSegmentation(hf_config(shapes))
    # parameters the conversion must fill; the model's own buffers (and the loss's class weights and
    # the Swin's final norm, unused by the segmentation model) keep their values
    unused = {"criterion.empty_weight", BACKBONE + "swin.layernorm.weight", BACKBONE + "swin.layernorm.bias"}
    expected = {name for name, _ in model.named_parameters()} - unused
    state = convert_state_dict(mmdet_state, expected)
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    return model.float().eval()
