"""Random mPLUG checkpoints in the official ModelScope layout, the same bytes on every machine.

``write_random_mplug(folder, shapes, seed)`` writes ``config.yaml``, ``config_bert.json``,
``configuration.json``, ``vocab.txt`` and ``pytorch_model.bin`` as the ModelScope folder
``damo/mplug_visual-question-answering_coco_large_en`` lays them out, with random weights: each
parameter comes from its own numpy generator, seeded by sha256 of ``"<seed>/<parameter name>"``, so a
parameter's values depend on nothing but the seed, its name and its shape. The parity fixtures
(``tests/fixtures/mplug_official/make_fixtures.py``) feed such a folder to the official modelscope
pipeline; the tests write the same folder again and feed it to the ``mplug`` judge.

Two shapes: ``TINY`` (a 2-layer ViT at the ViT-L-14 width, a 64-wide BERT with 2 text, 4 fusion and
2 decoder layers, a 150-word vocabulary: seconds on a CPU) and ``LARGE`` (mPLUG-large: ViT-L/14 at
504 px, BERT-base text encoder 6 layers, fusion 6 of 12, decoder 12, the 30522-word vocabulary shape).

This module imports only numpy, torch and the standard library, so the official side (transformers
4.x, no harness installed) loads it by file path.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

GENERATOR_VERSION = 1

#: the vocabulary of the tiny shapes: BERT's special-token positions (the beam search starts at 101
#: and ends at 102), then words and word pieces that the fixture questions use
TINY_WORDS = ("yes no is there a an the are two three of on in to left right above below next "
              "red green blue yellow white black big small circle square triangle star cat dog "
              "photo picture image color shape , . ? ! ' s t tri ##angle ##s ##ing ##ed cafe "
              "which what how many does it its this that and or with behind front").split()


@dataclass(frozen=True)
class MPlugShapes:
    """The numbers that fix every tensor's shape (and the config files)."""
    name: str
    image_res: int
    vision_layers: int
    vision_width: int          # 1024 for the ViT-L-14 code path (the official code fixes it)
    patch_size: int
    clip_embed_dim: int
    hidden: int
    heads: int
    intermediate: int
    text_layers: int
    fusion_total: int          # config_bert num_hidden_layers: the fusion encoder has this many
    fusion_layers: int         # ... of which the last fusion_layers run
    stride_layer: int
    decoder_layers: int
    vocab_size: int            # words in vocab.txt; the decoder predicts over the same count
    max_positions: int

    @property
    def patches(self) -> int:
        return (self.image_res // self.patch_size) ** 2


TINY = MPlugShapes(name="tiny", image_res=42, vision_layers=2, vision_width=1024, patch_size=14,
                   clip_embed_dim=16, hidden=64, heads=4, intermediate=128, text_layers=2, fusion_total=5,
                   fusion_layers=4, stride_layer=2, decoder_layers=2, vocab_size=104 + len(TINY_WORDS),
                   max_positions=40)
LARGE = MPlugShapes(name="large", image_res=504, vision_layers=24, vision_width=1024, patch_size=14,
                    clip_embed_dim=768, hidden=768, heads=12, intermediate=3072, text_layers=6, fusion_total=12,
                    fusion_layers=6, stride_layer=3, decoder_layers=12, vocab_size=30522, max_positions=512)
SHAPES = {shape.name: shape for shape in (TINY, LARGE)}


def vocabulary(shapes: MPlugShapes) -> list[str]:
    """BERT-uncased positions for the special tokens: [PAD] 0, [unused*], [UNK] 100, [CLS] 101,
    [SEP] 102, [MASK] 103, then words (made-up ``w<i>`` fill the large vocabulary's size)."""
    words = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words += list(TINY_WORDS)
    words += [f"w{i}" for i in range(shapes.vocab_size - len(words))]
    return words[:shapes.vocab_size]


def config_yaml(shapes: MPlugShapes) -> str:
    """``config.yaml`` as the official folder has it (the keys MPlugConfig reads)."""
    values = {
        "task": "visual-question-answering", "bert_config": "config_bert.json",
        "image_res": shapes.image_res, "batch_size_train": 128, "vision_width": shapes.vision_width,
        "distill": True, "clip_name": "ViT-L-14", "batch_size_test": 64, "k_test": 128, "alpha": 0.4,
        "warm_up": True, "eos": "[SEP]", "min_length": 1, "max_length": 10, "beam_size": 5,
        "add_ocr": False, "add_object": False, "text_encoder": "bert-base-uncased",
        "text_decoder": "bert-base-uncased", "clip_embed_dim": shapes.clip_embed_dim,
        "clip_image_resolution": shapes.image_res, "clip_vision_layers": shapes.vision_layers,
        "clip_vision_width": shapes.vision_width, "clip_vision_patch_size": shapes.patch_size,
        # CLIP's text tower is built by the official code but never used for VQA: keep it small
        "clip_context_length": 8, "clip_vocab_size": 64, "clip_transformer_width": 64,
        "clip_transformer_heads": 2, "clip_transformer_layers": 1,
    }
    return "".join(f"{key}: {json.dumps(value)}\n" for key, value in values.items())


def config_bert(shapes: MPlugShapes) -> dict:
    return {
        "architectures": ["BertForMaskedLM"], "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "hidden_size": shapes.hidden, "initializer_range": 0.02,
        "intermediate_size": shapes.intermediate, "layer_norm_eps": 1e-12,
        "max_position_embeddings": shapes.max_positions, "model_type": "bert",
        "num_attention_heads": shapes.heads, "num_hidden_layers": shapes.fusion_total, "pad_token_id": 0,
        "type_vocab_size": 2, "vocab_size": shapes.vocab_size, "encoder_width": shapes.hidden,
        "add_cross_attention": False, "use_cache": False, "gradient_checkpointing": False,
        "text_encoder_layers": shapes.text_layers, "fusion_layers": shapes.fusion_layers,
        "text_decode_layers": shapes.decoder_layers, "stride_layer": shapes.stride_layer,
    }


CONFIGURATION_JSON = {"framework": "pytorch", "task": "visual-question-answering",
                      "model": {"type": "mplug"}, "pipeline": {"type": "visual-question-answering"}}


# ------------------------------------------------------------------------------ parameters

def _bert_layer(prefix: str, h: int, i: int, cross: bool) -> Iterator[tuple[str, tuple[int, ...]]]:
    blocks = ["attention"] + (["crossattention"] if cross else [])
    for block in blocks:
        for proj in ("query", "key", "value"):
            yield f"{prefix}.{block}.self.{proj}.weight", (h, h)
            yield f"{prefix}.{block}.self.{proj}.bias", (h,)
        yield f"{prefix}.{block}.output.dense.weight", (h, h)
        yield f"{prefix}.{block}.output.dense.bias", (h,)
        yield f"{prefix}.{block}.output.LayerNorm.weight", (h,)
        yield f"{prefix}.{block}.output.LayerNorm.bias", (h,)


def _bert_ffn(prefix: str, h: int, inter: int) -> Iterator[tuple[str, tuple[int, ...]]]:
    yield f"{prefix}.intermediate.dense.weight", (inter, h)
    yield f"{prefix}.intermediate.dense.bias", (inter,)
    yield f"{prefix}.output.dense.weight", (h, inter)
    yield f"{prefix}.output.dense.bias", (h,)
    yield f"{prefix}.output.LayerNorm.weight", (h,)
    yield f"{prefix}.output.LayerNorm.bias", (h,)


def _embeddings(prefix: str, s: MPlugShapes) -> Iterator[tuple[str, tuple[int, ...]]]:
    yield f"{prefix}.word_embeddings.weight", (s.vocab_size, s.hidden)
    yield f"{prefix}.position_embeddings.weight", (s.max_positions, s.hidden)
    yield f"{prefix}.token_type_embeddings.weight", (2, s.hidden)
    yield f"{prefix}.LayerNorm.weight", (s.hidden,)
    yield f"{prefix}.LayerNorm.bias", (s.hidden,)


def parameter_shapes(s: MPlugShapes) -> list[tuple[str, tuple[int, ...]]]:
    """Every tensor the VQA path reads, under its official name (the distillation copies ``*_m``
    and CLIP's unused text tower are left out: the official code does not use them for answers)."""
    w = s.vision_width
    out: list[tuple[str, tuple[int, ...]]] = [
        ("visual_encoder.visual.conv1.weight", (w, 3, s.patch_size, s.patch_size)),
        ("visual_encoder.visual.class_embedding", (w,)),
        ("visual_encoder.visual.positional_embedding", (s.patches + 1, w)),
        ("visual_encoder.visual.ln_pre.weight", (w,)), ("visual_encoder.visual.ln_pre.bias", (w,)),
    ]
    for i in range(s.vision_layers):
        p = f"visual_encoder.visual.transformer.resblocks.{i}"
        out += [(f"{p}.attn.in_proj_weight", (3 * w, w)), (f"{p}.attn.in_proj_bias", (3 * w,)),
                (f"{p}.attn.out_proj.weight", (w, w)), (f"{p}.attn.out_proj.bias", (w,)),
                (f"{p}.ln_1.weight", (w,)), (f"{p}.ln_1.bias", (w,)),
                (f"{p}.mlp.c_fc.weight", (4 * w, w)), (f"{p}.mlp.c_fc.bias", (4 * w,)),
                (f"{p}.mlp.c_proj.weight", (w, 4 * w)), (f"{p}.mlp.c_proj.bias", (w,)),
                (f"{p}.ln_2.weight", (w,)), (f"{p}.ln_2.bias", (w,))]
    out += [("visual_encoder.visual.ln_post.weight", (w,)), ("visual_encoder.visual.ln_post.bias", (w,)),
            ("visual_encoder.visual.proj", (w, s.clip_embed_dim))]
    if s.hidden != w:
        out += [("visn_fc.weight", (s.hidden, w)), ("visn_fc.bias", (s.hidden,)),
                ("visn_layer_norm.weight", (s.hidden,)), ("visn_layer_norm.bias", (s.hidden,))]
    out += list(_embeddings("text_encoder.embeddings", s))
    for i in range(s.text_layers):
        out += list(_bert_layer(f"text_encoder.encoder.layer.{i}", s.hidden, i, cross=False))
        out += list(_bert_ffn(f"text_encoder.encoder.layer.{i}", s.hidden, s.intermediate))
    for i in range(s.fusion_total):  # the first fusion_total - fusion_layers exist but never run
        out += list(_bert_layer(f"fusion_encoder.encoder.layer.{i}", s.hidden, i, cross=True))
        out += list(_bert_ffn(f"fusion_encoder.encoder.layer.{i}", s.hidden, s.intermediate))
    out += list(_embeddings("text_decoder.bert.embeddings", s))
    for i in range(s.decoder_layers):
        out += list(_bert_layer(f"text_decoder.bert.encoder.layer.{i}", s.hidden, i, cross=True))
        out += list(_bert_ffn(f"text_decoder.bert.encoder.layer.{i}", s.hidden, s.intermediate))
    out += [("text_decoder.cls.predictions.bias", (s.vocab_size,)),
            ("text_decoder.cls.predictions.transform.dense.weight", (s.hidden, s.hidden)),
            ("text_decoder.cls.predictions.transform.dense.bias", (s.hidden,)),
            ("text_decoder.cls.predictions.transform.LayerNorm.weight", (s.hidden,)),
            ("text_decoder.cls.predictions.transform.LayerNorm.bias", (s.hidden,))]
    return out


#: tied tensors in the official model: the checkpoint holds both names with the same values
TIED = {"text_decoder.cls.predictions.decoder.weight": "text_decoder.bert.embeddings.word_embeddings.weight",
        "text_decoder.cls.predictions.decoder.bias": "text_decoder.cls.predictions.bias"}


def _scale(name: str, shape: tuple[int, ...], s: MPlugShapes) -> tuple[float, float]:
    """(offset, standard deviation): layer norms around 1, weights ~ 1/sqrt(fan-in) so that every
    layer keeps its activations near unit size, and word embeddings (also the output layer) wide
    enough that answers are clear winners rather than near-ties."""
    last = name.rsplit(".", 1)[-1]
    norm = any(tag in name for tag in ("LayerNorm", "ln_", "layer_norm"))
    if norm:
        return (1.0, 0.1) if last == "weight" else (0.0, 0.1)
    if name.endswith("word_embeddings.weight"):
        return 0.0, 1.5 / float(np.sqrt(s.hidden))
    if name == OUTPUT_BIAS:
        return 0.0, 1.0
    if len(shape) == 1 or name.endswith(("_embeddings.weight", "class_embedding", "positional_embedding")):
        return 0.0, 0.1 if len(shape) == 1 and "embedding" not in name else float(shape[-1]) ** -0.5
    fan_in = int(np.prod(shape[1:]))
    return 0.0, fan_in ** -0.5


#: the output layer's bias: a thumb on the scale so that random answers use the words (not the
#: ``[unused*]`` slots), often say yes or no, and end with [SEP] after a few tokens, which exercises
#: every branch of the beam search (finished hypotheses, early stops, the length cap)
OUTPUT_BIAS = "text_decoder.cls.predictions.bias"
BIAS_BOOST = {"words": 1.5, "[SEP]": 4.0, "yes": 3.5, "no": 2.5}


def random_tensor(name: str, shape: tuple[int, ...], s: MPlugShapes, seed: int) -> np.ndarray:
    key = int.from_bytes(hashlib.sha256(f"{seed}/{name}".encode()).digest()[:8], "little")
    offset, std = _scale(name, shape, s)
    values = np.random.default_rng(key).standard_normal(shape, dtype=np.float32) * np.float32(std)
    if offset:
        values = values + np.float32(offset)
    if name == OUTPUT_BIAS:
        words = vocabulary(s)
        values[104:] += np.float32(BIAS_BOOST["words"])
        for token in ("[SEP]", "yes", "no"):
            values[words.index(token)] += np.float32(BIAS_BOOST[token])
    return values


def random_state_dict(s: MPlugShapes, seed: int) -> dict:
    import torch

    state = {name: torch.from_numpy(random_tensor(name, shape, s, seed)) for name, shape in parameter_shapes(s)}
    for alias, source in TIED.items():
        state[alias] = state[source]
    return state


def write_random_mplug(folder: str | Path, shapes: MPlugShapes | str = "tiny", seed: int = 0) -> Path:
    """Write a complete random ModelScope mPLUG folder; returns it."""
    import torch

    s = SHAPES[shapes] if isinstance(shapes, str) else shapes
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(config_yaml(s), encoding="utf-8")
    (folder / "config_bert.json").write_text(json.dumps(config_bert(s), indent=2) + "\n", encoding="utf-8")
    (folder / "configuration.json").write_text(json.dumps(CONFIGURATION_JSON, indent=2) + "\n", encoding="utf-8")
    (folder / "vocab.txt").write_text("".join(f"{word}\n" for word in vocabulary(s)), encoding="utf-8")
    (folder / "random_weights.json").write_text(json.dumps(
        {"generator_version": GENERATOR_VERSION, "seed": seed, "shapes": asdict(s)}, indent=2) + "\n",
        encoding="utf-8")
    torch.save(random_state_dict(s, seed), folder / "pytorch_model.bin")
    return folder
