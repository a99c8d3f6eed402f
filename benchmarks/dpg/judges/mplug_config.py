"""The mPLUG judge's configuration: what the VQA path reads from a ModelScope folder's ``config.yaml``
and ``config_bert.json``, checked, and the error for a folder it cannot read."""
from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

START_TOKEN, END_TOKEN = 101, 102
FILES = ("config.yaml", "config_bert.json", "vocab.txt", "pytorch_model.bin")


class MPlugFormatError(ValueError):
    """The folder is not a ModelScope mPLUG VQA folder the mPLUG judge can read."""


#: what identifies mPLUG-large in a folder's configuration (modelscope's ``MPlugConfig`` defaults and
#: the large model's ``config_bert.json``: ViT-L/14 at 504 px, 24 layers; BERT-base, 6 text layers,
#: fusion 6 of 12, 12 decoder layers, 30522 words) and the official beam settings (beam 5, answers of
#: 1 to 10 tokens). The ``mplug`` judge puts these fields of the folder it loaded on DPG's protocol
#: card; DPG counts a run as the official setup only when they are these values.
MPLUG_LARGE: dict[str, Any] = {
    "clip_name": "ViT-L-14", "image_res": 504, "vision_width": 1024, "vision_layers": 24, "patch_size": 14,
    "hidden": 768, "text_layers": 6, "fusion_total": 12, "fusion_layers": 6, "decoder_layers": 12,
    "vocab_size": 30522, "beam_size": 5, "min_length": 1, "max_length": 10,
}


@dataclass(frozen=True)
class MPlugConfig:
    """What the VQA path needs from ``config.yaml`` and ``config_bert.json`` (defaults: modelscope's)."""
    image_res: int = 504
    clip_name: str = "ViT-L-14"
    vision_width: int = 1024
    vision_layers: int = 24
    patch_size: int = 14
    beam_size: int = 5
    min_length: int = 1
    max_length: int = 10
    hidden: int = 768
    heads: int = 12
    intermediate: int = 3072
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"
    vocab_size: int = 30522
    max_positions: int = 512
    type_vocab_size: int = 2
    text_layers: int = 6
    fusion_total: int = 12
    fusion_layers: int = 6
    stride_layer: int = 100
    decoder_layers: int = 12

    @property
    def fusion_start(self) -> int:
        return max(0, self.fusion_total - self.fusion_layers)

    @property
    def projects_vision(self) -> bool:
        return self.hidden != self.vision_width

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def identifying_facts(self) -> dict[str, Any]:
        """The fields that tell mPLUG-large from another mPLUG (``MPLUG_LARGE``'s keys)."""
        return {key: getattr(self, key) for key in MPLUG_LARGE}


def read_config(folder: Path) -> MPlugConfig:
    import yaml

    try:
        main = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8")) or {}
        bert_name = main.get("bert_config", "config_bert.json")
        bert = json.loads((folder / bert_name).read_text(encoding="utf-8"))
    except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError, AttributeError) as exc:
        raise MPlugFormatError(f"unreadable configuration in {folder}: {exc}") from exc
    clip_name = str(main.get("clip_name", "ViT-L-14"))
    try:
        config = MPlugConfig(
            image_res=int(main.get("image_res", 504)), clip_name=clip_name,
            vision_width=int(main.get("clip_vision_width", 1024)),
            vision_layers=int(main.get("clip_vision_layers", 24)),
            patch_size=int(main.get("clip_vision_patch_size", 14)),
            beam_size=int(main.get("beam_size", 5)), min_length=int(main.get("min_length", 1)),
            max_length=int(main.get("max_length", 10)),
            hidden=int(bert["hidden_size"]), heads=int(bert["num_attention_heads"]),
            intermediate=int(bert["intermediate_size"]), layer_norm_eps=float(bert.get("layer_norm_eps", 1e-12)),
            hidden_act=str(bert.get("hidden_act", "gelu")), vocab_size=int(bert["vocab_size"]),
            max_positions=int(bert.get("max_position_embeddings", 512)),
            type_vocab_size=int(bert.get("type_vocab_size", 2)),
            text_layers=int(bert["text_encoder_layers"]), fusion_total=int(bert["num_hidden_layers"]),
            fusion_layers=int(bert["fusion_layers"]), stride_layer=int(bert.get("stride_layer", 100)),
            decoder_layers=int(bert["text_decode_layers"]))
    except KeyError as exc:
        raise MPlugFormatError(f"{folder / bert_name} has no {exc.args[0]!r}") from exc
    except (TypeError, ValueError) as exc:  # e.g. max_length: ten
        raise MPlugFormatError(f"a value in {folder / 'config.yaml'} or {folder / bert_name} is not a "
                               f"number: {exc}") from exc
    _check_beam(config, folder / "config.yaml", folder / bert_name)
    # the official code sizes the position table by name: ViT-B-16 -> 768 wide, /16; else 1024, /14
    width = 768 if "ViT-B-16" in clip_name else 1024
    if config.vision_width != width:
        raise MPlugFormatError(f"clip_vision_width {config.vision_width} does not fit {clip_name!r} (the "
                               f"official code fixes the position table at {width} wide)")
    if config.hidden_act != "gelu":
        raise MPlugFormatError(f"hidden_act {config.hidden_act!r}: only BERT's 'gelu' is implemented")
    if config.vocab_size <= END_TOKEN:
        raise MPlugFormatError(f"vocab_size {config.vocab_size}: the beam search needs ids {START_TOKEN} and {END_TOKEN}")
    if config.hidden % config.heads:
        raise MPlugFormatError(f"hidden size {config.hidden} is not a multiple of {config.heads} heads")
    return config


def _check_beam(config: MPlugConfig, main: Path, bert: Path) -> None:
    """What the beam search assumes: at least one beam, no more beams than words, answers of
    ``min_length`` to ``max_length`` tokens (at least one: a search of 0 steps finishes no beam),
    and a decoder position for each of the ``max_length`` + 1 tokens (the start token first)."""
    if config.beam_size < 1:
        raise MPlugFormatError(f"{main}: beam_size {config.beam_size}: the beam search needs at least 1 beam")
    if config.beam_size > config.vocab_size:
        raise MPlugFormatError(f"{main}: beam_size {config.beam_size} is more than the {config.vocab_size} "
                               f"words of {bert.name}'s vocab_size")
    if config.min_length < 1:
        raise MPlugFormatError(f"{main}: min_length {config.min_length}: an answer has at least 1 token")
    if config.max_length < config.min_length:
        raise MPlugFormatError(f"{main}: max_length {config.max_length} is less than min_length "
                               f"{config.min_length}: no answer could be finished")
    if config.max_length + 1 > config.max_positions:
        raise MPlugFormatError(f"{main}: max_length {config.max_length} needs {config.max_length + 1} decoder "
                               f"positions; {bert.name}'s max_position_embeddings is {config.max_positions}")
    if config.stride_layer < 1:
        raise MPlugFormatError(f"{bert}: stride_layer {config.stride_layer} must be at least 1")
