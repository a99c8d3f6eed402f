"""A tiny, randomly initialised Janus checkpoint for CPU tests.

The folder written by :func:`build_tiny_janus` loads exactly like a converted Janus-Pro checkpoint
(``JanusForConditionalGeneration`` + ``JanusProcessor``), so the adapter, benchmarks and caches can
be exercised end to end in seconds without downloading 15 GB. The images are noise and the answers
word salad, of course.

Recipe and pitfalls: ``docs/JANUS.md`` section 7 (word-level tokenizer with the Janus special
strings registered as special tokens, BOS prepended, left padding; image processor with
mean = std = 0.5; generation config that survives a reload).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import torch

# Janus special strings (the same strings as the real DeepSeek tokenizer; ids differ).
BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
PAD = "<｜▁pad▁｜>"
UNK = "<unk>"
IMAGE = "<image_placeholder>"
BOI = "<begin_of_image>"
EOI = "<end_of_image>"
USER = "<|User|>"
ASSISTANT = "<|Assistant|>"
SPECIAL_TOKENS = (BOS, EOS, PAD, UNK, IMAGE, BOI, EOI, USER, ASSISTANT)

_NUMBER_WORDS = "zero one two three four five six seven eight nine ten eleven twelve".split()
_COLOURS = "red orange yellow green blue purple pink brown black white".split()
_GLUE = "a photo of an and left right of above below the is on in".split()
_SHAPES = "circle square triangle star cross diamond hexagon".split()
_PUNCTUATION = [":", ".", ",", "!", "?", "-", "'"]
# Understanding: the words of the processor's default system prompt and of the MME / MMBench
# instructions, so the tiny model reads them instead of <unk>, and answer words it can write.
# The normalizer lowercases every input, so the capital option letters are output-only tokens.
_ANSWER_WORDS = (
    "you are helpful language vision assistant able to understand visual content that user provides "
    "assist with variety tasks using natural please answer yes no or option letter s from given "
    "choices directly question hint there this image what how many which b c d A B C D"
).split()

#: plain words every tiny model knows; more can be added with ``words=``
DEFAULT_WORDS: tuple[str, ...] = tuple(
    [str(d) for d in range(10)] + _NUMBER_WORDS + _COLOURS + _GLUE + _SHAPES
    + [s + ("es" if s.endswith("x") or s.endswith("ss") else "s") for s in _SHAPES] + _PUNCTUATION
    + _ANSWER_WORDS
)

# Renders [{"role": "user", "content": ...}] as the converted Janus-Pro template does:
# "<|User|>: {content}\n\n<|Assistant|>:". Content is a string or a list of parts; an image part
# becomes the image token, set off from its neighbours by "\n"; neighbouring text parts are joined
# by a space; the first part is left-stripped and the last right-stripped. So one image and a
# question give "<|User|>: <image_placeholder>\n{question}\n\n<|Assistant|>:", the deepseek
# understanding layout. Written for this project; system turns are ignored (the processor adds
# the default system prompt itself).
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] | lower == 'user' -%}"
    "{{ '<|User|>: ' }}"
    "{%- if message['content'] is string -%}{{ message['content'] | trim }}"
    "{%- else -%}{%- set parts = message['content'] -%}"
    "{%- for part in parts -%}"
    "{%- if part['type'] == 'image' -%}"
    "{%- if not loop.first -%}{{ '\\n' }}{%- endif -%}"
    "{{ '" + IMAGE + "' }}"
    "{%- if not loop.last -%}{{ '\\n' }}{%- endif -%}"
    "{%- elif part['type'] == 'text' -%}"
    "{%- set text = part['text'] -%}"
    "{%- if loop.first -%}{%- set text = text.lstrip() -%}{%- endif -%}"
    "{%- if loop.last -%}{%- set text = text.rstrip() -%}{%- endif -%}"
    "{%- if not loop.first and parts[loop.index0 - 1]['type'] == 'text' -%}{{ ' ' }}{%- endif -%}"
    "{{ text }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{ '\\n\\n' }}"
    "{%- elif message['role'] | lower == 'assistant' and message['content'] -%}"
    "{{ '<|Assistant|>:' }}{%- if message['content'] is string -%}{{ ' ' + (message['content'] | trim) }}"
    "{%- endif -%}{{ '" + EOS + "' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|Assistant|>:' }}{%- endif -%}"
)


def _vocabulary(words: Iterable[str]) -> dict[str, int]:
    """Special strings first (stable ids), then the default words, then the caller's words."""
    vocab: dict[str, int] = {}
    for token in (*SPECIAL_TOKENS, *DEFAULT_WORDS, *(w.lower() for w in words)):
        if token not in vocab:
            vocab[token] = len(vocab)
    return vocab


def build_tokenizer(words: Iterable[str] = ()):
    """A word-level fast tokenizer that behaves like the Janus one where it matters.

    Special strings are registered as special tokens (otherwise the pre-tokenizer splits
    ``<|User|>`` into UNKs), BOS is prepended by the post-processor, padding is on the left, and
    ``image_token`` / ``boi_token`` / ``eoi_token`` are defined for ``JanusProcessor``.
    """
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = _vocabulary(words)
    core = Tokenizer(WordLevel(vocab=vocab, unk_token=UNK))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.add_special_tokens(list(SPECIAL_TOKENS))
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, vocab[BOS])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK,
        padding_side="left",
        extra_special_tokens={"image_token": IMAGE, "boi_token": BOI, "eoi_token": EOI},
        chat_template=CHAT_TEMPLATE,
    )


def tiny_janus_config(vocab: dict[str, int], image_size: int, patch_size: int, hidden: int, layers: int):
    """A ``JanusConfig`` whose sizes agree with each other (JANUS.md section 7, "sizes that must agree")."""
    from transformers import JanusConfig, JanusVisionConfig, JanusVQVAEConfig, LlamaConfig

    if image_size % patch_size:
        raise ValueError(f"image_size {image_size} must be a multiple of patch_size {patch_size}")
    levels = math.log2(patch_size)
    if levels != int(levels):
        raise ValueError(f"patch_size must be a power of two (the VQ decoder upsamples by 2); got {patch_size}")
    grid = image_size // patch_size
    text = LlamaConfig(
        vocab_size=len(vocab), hidden_size=hidden, intermediate_size=2 * hidden,
        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=4,
        max_position_embeddings=512, bos_token_id=vocab[BOS], eos_token_id=vocab[EOS],
        pad_token_id=vocab[PAD],
        # Untied so the text head can get its own scale (see build_tiny_janus); image generation
        # never uses it.
        tie_word_embeddings=False,
    )
    vision = JanusVisionConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, mlp_ratio=2,
        image_size=image_size, patch_size=patch_size, num_image_tokens=grid * grid,
        projection_dim=hidden, depth=2,
    )
    # GroupNorm(32) is hard-coded in the VQ encoder/decoder: channels must be multiples of 32, and
    # the up-sampling factor 2 ** (levels) must equal patch_size for the image to come out right.
    vq = JanusVQVAEConfig(
        embed_dim=8, num_embeddings=512, latent_channels=32, base_channels=32,
        channel_multiplier=[1] * (int(levels) + 1), num_res_blocks=1,
        projection_dim=hidden, image_token_embed_dim=hidden, num_hidden_layers=2,
    )
    return JanusConfig(text_config=text, vision_config=vision, vq_config=vq, image_token_id=vocab[IMAGE],
                       tie_word_embeddings=False)


def build_tiny_janus(
    path: str | Path,
    words: Iterable[str] = (),
    seed: int = 0,
    image_size: int = 64,
    patch_size: int = 16,
    hidden: int = 64,
    layers: int = 2,
) -> Path:
    """Write a tiny random Janus checkpoint (model, processor, tokenizer) to ``path``; return it.

    Same arguments and seed give identical weights. With the defaults the model has about 0.65 M
    parameters, 16 image tokens per image and decodes 64x64 images.
    """
    from transformers import GenerationConfig, JanusForConditionalGeneration, JanusProcessor
    from transformers.models.janus.image_processing_pil_janus import JanusImageProcessorPil

    path = Path(path)
    tokenizer = build_tokenizer(words)
    vocab = tokenizer.get_vocab()
    config = tiny_janus_config(vocab, image_size, patch_size, hidden, layers)

    # Random init draws from the global torch RNG; fork it so building a model in the middle of a
    # run does not change anyone else's random numbers.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = JanusForConditionalGeneration(config).eval()
        # The default init (std 0.02) gives image logits with std ~0.01: sampling is then nearly
        # uniform and ignores the prompt and the guidance, so tests could not tell them apart.
        # A variance-preserving init of the generation head gives logits with std ~0.7.
        head = model.model.generation_head
        for linear in (head.proj_out, head.vision_head):
            torch.nn.init.normal_(linear.weight, std=linear.in_features ** -0.5)
            torch.nn.init.zeros_(linear.bias)
        # Same for understanding: with std 0.02 the image features and the text head are so small
        # that every answer is the same token repeated, whatever the image or the question. These
        # modules are not used by image generation, and are drawn after the generation head.
        understanding = [m for m in model.model.aligner.modules() if isinstance(m, torch.nn.Linear)]
        for linear in (*understanding, model.lm_head):
            torch.nn.init.normal_(linear.weight, std=linear.in_features ** -0.5)
            if linear.bias is not None:
                torch.nn.init.zeros_(linear.bias)

    generation_config = GenerationConfig(
        bos_token_id=vocab[BOS], eos_token_id=vocab[EOS], pad_token_id=vocab[PAD],
        generation_kwargs={"boi_token_id": vocab[BOI]},
        guidance_scale=5.0, temperature=1.0,
    )
    # Without this the config is saved as "from model config" and the reload drops
    # generation_kwargs, which image-mode generate() needs (JANUS.md pitfall 3).
    generation_config._from_model_config = False
    model.generation_config = generation_config

    image_processor = JanusImageProcessorPil(
        size={"height": image_size, "width": image_size}, image_mean=[0.5] * 3, image_std=[0.5] * 3,
    )
    processor = JanusProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE,
        # as in converted checkpoints: text mode (understanding) puts the default system prompt first
        use_default_system_prompt=True, num_image_tokens=config.vision_config.num_image_tokens,
    )
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
