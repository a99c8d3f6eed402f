"""Janus-4o training sequences: one ``ImageSample`` -> token ids, pixels and slot positions.

Layout (docs/JANUS.md section 4; upstream FreedomIntelligence/ShareGPT-4o-Image ``train_janus.py`` at
commit 19ac7d779d8b893b549c2640373c78947ee4b6d5, ``SftDataset.collate_fn``), rendered with the deepseek
template and an empty system prompt, BOS from the tokenizer::

    BOS <|User|>: [BOI IMG*N EOI  BOI PAD*N EOI] * k  instruction \\n\\n <|Assistant|>:  BOI PAD*N

Per input image a SigLIP block (placeholders, overwritten by SigLIP features) and a VQ block (pads,
sometimes overwritten by the input image's VQ code embeddings), then the instruction without a
separator; after the assistant tag the output block: BOI + N slots, no closing EOI. The slots are
overwritten by the target image's code embeddings, so the last N positions are always the target.

Batches are left padded, so every row's output slots occupy the same last N columns.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

import torch
from PIL import Image

from harness.dataset_formats import ImageSample
from harness.errors import HarnessError
from harness.models.janus import JanusAdapter
from harness.models.janus_edit import EditTokenIds, edit_user_content, special_strings


@dataclass(frozen=True)
class TrainingExample:
    """One sample's token ids and pixels; positions index ``input_ids``."""

    sample_id: str
    input_ids: torch.Tensor  # (L,) long
    prompt_length: int  # tokens of the rendered prompt without the output block (BOS included)
    siglip_starts: tuple[int, ...]  # per input image: first placeholder (N placeholders follow)
    vq_slot_starts: tuple[int, ...]  # per input image: first VQ slot (= SigLIP EOI + 2)
    input_pixels: torch.Tensor  # (k, 3, S, S) in [-1, 1]; k = 0 for text-to-image
    target_pixels: torch.Tensor  # (3, S, S) in [-1, 1]

    @property
    def is_edit(self) -> bool:
        return len(self.siglip_starts) > 0

    @property
    def output_start(self) -> int:
        """First output slot (the output BOI is just before it)."""
        return self.prompt_length + 1


@dataclass
class TrainingBatch:
    """Left-padded examples; positions are batch columns."""

    sample_ids: list[str]
    input_ids: torch.Tensor  # (B, L)
    attention_mask: torch.Tensor  # (B, L); 0 only on the left padding
    position_ids: torch.Tensor  # (B, L); 0 at each row's BOS, as in inference
    first_columns: list[int]  # per row: column of BOS
    prompt_lengths: list[int]  # per row: n (text drop pads columns first+1 ... first+n-1)
    siglip_starts: list[tuple[int, ...]]  # per row, per input image
    vq_slot_starts: list[tuple[int, ...]]  # per row, per input image
    input_pixels: torch.Tensor  # (sum k, 3, S, S): inputs of row 0, then row 1, ...
    target_pixels: torch.Tensor  # (B, 3, S, S)
    image_tokens: int  # N

    @property
    def is_edit(self) -> list[bool]:
        return [len(starts) > 0 for starts in self.siglip_starts]

    def to(self, device: torch.device | str) -> "TrainingBatch":
        return replace(self, input_ids=self.input_ids.to(device), attention_mask=self.attention_mask.to(device),
                       position_ids=self.position_ids.to(device), input_pixels=self.input_pixels.to(device),
                       target_pixels=self.target_pixels.to(device))


def token_ids(tokenizer: Any) -> EditTokenIds:
    """BOS, pad, BOI, EOI and placeholder ids, looked up from the tokenizer (never hard-coded)."""
    found = {name: tokenizer.convert_tokens_to_ids(token) for name, token in (
        ("bos", tokenizer.bos_token), ("pad", tokenizer.pad_token), ("boi", tokenizer.boi_token),
        ("eoi", tokenizer.eoi_token), ("image", tokenizer.image_token))}
    missing = [name for name, value in found.items() if value is None or value == tokenizer.unk_token_id]
    if missing:
        raise HarnessError(f"the tokenizer defines no {', '.join(missing)} token(s); Janus-4o training needs them")
    return EditTokenIds(**{name: int(value) for name, value in found.items()})


def render_training_prompt(tokenizer: Any, instruction: str, input_count: int, image_tokens: int) -> tuple[str, str]:
    """(prompt text, output block text): the user turn with k image block pairs, and BOI + N pads."""
    strings = special_strings(tokenizer)
    blocks = edit_user_content("", image_tokens, strings) * input_count
    # The inference adapters strip the user text; strip only the instruction so the blocks stay first.
    prompt = JanusAdapter.render_prompt(blocks + instruction.strip())
    return prompt, strings["boi"] + strings["pad"] * image_tokens


def load_pixels(image_processor: Any, paths: Sequence[Any], image_size: int) -> torch.Tensor:
    """Images -> (k, 3, S, S): long side resized, padded square, mean = std = 0.5 (the Janus processor)."""
    if not paths:
        return torch.zeros(0, 3, image_size, image_size)
    images = []
    for path in paths:
        with Image.open(path) as image:
            images.append(image.convert("RGB"))  # RGBA crashes the normalisation (deepseek-ai/Janus #192)
    pixels = image_processor(images=images, return_tensors="pt")["pixel_values"].float()
    if tuple(pixels.shape[-2:]) != (image_size, image_size):
        raise HarnessError(f"the image processor gives {tuple(pixels.shape[-2:])} pixels; the model reads "
                           f"{image_size}x{image_size}")
    return pixels


def build_example(sample: ImageSample, processor: Any, image_tokens: int, image_size: int,
                  ids: EditTokenIds | None = None) -> TrainingExample:
    """Token ids, pixels and block positions for one sample; the layout is checked token by token."""
    tokenizer = processor.tokenizer
    ids = ids or token_ids(tokenizer)
    count = len(sample.input_images)
    prompt, output_block = render_training_prompt(tokenizer, sample.prompt, count, image_tokens)
    prompt_ids = tokenizer(prompt)["input_ids"]
    full = torch.tensor(tokenizer(prompt + output_block)["input_ids"], dtype=torch.long)
    n = len(prompt_ids)
    name = sample.id or str(sample.output_image)
    if (full.shape[0] != n + 1 + image_tokens or full[:n].tolist() != list(prompt_ids) or int(full[0]) != ids.bos
            or int(full[n]) != ids.boi or not bool((full[n + 1:] == ids.pad).all())):
        raise HarnessError(f"{name}: the training prompt does not tokenise to BOS ... BOI + {image_tokens} pads "
                           "(does the instruction contain a special token string?)")
    placeholders = (full == ids.image).nonzero().flatten().tolist()
    if len(placeholders) != count * image_tokens:
        raise HarnessError(f"{name}: expected {count * image_tokens} image placeholders, found {len(placeholders)}")
    siglip_starts = tuple(placeholders[i * image_tokens] for i in range(count))
    slot_starts = tuple(start + image_tokens + 2 for start in siglip_starts)
    for start, slots in zip(siglip_starts, slot_starts):
        if not (int(full[start - 1]) == ids.boi and bool((full[start:start + image_tokens] == ids.image).all())
                and int(full[start + image_tokens]) == ids.eoi and int(full[slots - 1]) == ids.boi
                and bool((full[slots:slots + image_tokens] == ids.pad).all())
                and int(full[slots + image_tokens]) == ids.eoi):
            raise HarnessError(f"{name}: image blocks are not BOI + placeholders + EOI + BOI + pads + EOI")
    return TrainingExample(
        sample_id=sample.id, input_ids=full, prompt_length=n, siglip_starts=siglip_starts,
        vq_slot_starts=slot_starts,
        input_pixels=load_pixels(processor.image_processor, list(sample.input_images), image_size),
        target_pixels=load_pixels(processor.image_processor, [sample.output_image], image_size)[0])


def collate(examples: Sequence[TrainingExample], pad_id: int, image_tokens: int) -> TrainingBatch:
    """Left-pad into a batch: the output slots of every row end at the last column."""
    length = max(int(e.input_ids.shape[0]) for e in examples)
    input_ids = torch.full((len(examples), length), pad_id, dtype=torch.long)
    attention_mask = torch.zeros(len(examples), length, dtype=torch.long)
    firsts = []
    for row, example in enumerate(examples):
        first = length - int(example.input_ids.shape[0])
        input_ids[row, first:] = example.input_ids
        attention_mask[row, first:] = 1
        firsts.append(first)
    position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
    inputs = [e.input_pixels for e in examples]
    return TrainingBatch(
        sample_ids=[e.sample_id for e in examples], input_ids=input_ids, attention_mask=attention_mask,
        position_ids=position_ids, first_columns=firsts, prompt_lengths=[e.prompt_length for e in examples],
        siglip_starts=[tuple(f + s for s in e.siglip_starts) for f, e in zip(firsts, examples)],
        vq_slot_starts=[tuple(f + s for s in e.vq_slot_starts) for f, e in zip(firsts, examples)],
        input_pixels=torch.cat(inputs) if inputs else torch.zeros(0),
        target_pixels=torch.stack([e.target_pixels for e in examples]), image_tokens=image_tokens)
