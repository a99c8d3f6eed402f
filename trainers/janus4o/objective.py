"""Janus-4o forward pass and loss: dropout for guidance, VQ targets, next-image-token cross-entropy.

Behaviour of upstream ``train_janus.py`` (FreedomIntelligence/ShareGPT-4o-Image, commit
19ac7d779d8b893b549c2640373c78947ee4b6d5; docs/JANUS.md section 4), on the transformers port:

* text ids -> embeddings; SigLIP features (vision model + aligner) over the placeholders, always;
* the input images' VQ codes (no gradient) -> generation embeddings + aligner over the VQ-block
  slots, each input image with probability ``vq_copy`` (0.5), else the slots keep the pad embedding;
* target image -> VQ codes (no gradient) -> generation embeddings over the last N positions;
* the language model with the attention mask, the generation head on the hidden states, and
  cross-entropy over the codebook on image tokens only.
* Text drop (text-to-image only, p = 0.1): ids[1:n] = pad, n = prompt tokens without the output
  block, so only BOS and the output BOI + slots survive (the inference unconditional row).

Differences from upstream, on purpose: every random draw comes from a ``torch.Generator`` seeded by
(run seed, sample id, epoch) instead of Python's global ``random`` (a sample's dropout does not depend
on batch position, rank or worker); VQ codes are searched like deepseek's quantizer (z and codebook
L2-normalised, docs/JANUS.md pitfall 12) because the port's ``vqmodel.encode`` normalises neither;
position ids start at 0 at each row's BOS (upstream ran one sample per GPU, so never padded).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from harness.models.janus_edit import encode_vq_codes
from harness.seeds import sample_seed
from trainers.janus4o.sequences import TrainingBatch

TEXT_DROP = 0.1  # text-to-image samples: probability of the unconditional prompt
VQ_COPY = 0.5  # edit samples: probability, per input image, that its VQ codes are written in


@dataclass(frozen=True)
class Dropout:
    """One sample's guidance dropout for one epoch."""

    text_drop: bool
    vq_copy: tuple[bool, ...]  # per input image: write its VQ code embeddings over the slots


@dataclass
class LossOutput:
    loss: torch.Tensor  # mean cross-entropy over the scored image tokens of the batch
    scored_tokens: int
    target_codes: torch.Tensor  # (B, N)


def dropout_generator(run_seed: int, sample_id: str, epoch: int) -> torch.Generator:
    """The generator behind one sample's draws in one epoch: never seeded by batch position."""
    return torch.Generator(device="cpu").manual_seed(sample_seed(run_seed, f"janus4o-dropout/epoch-{epoch}", sample_id))


def draw_dropout(generator: torch.Generator, is_edit: bool, input_count: int,
                 text_drop: float = TEXT_DROP, vq_copy: float = VQ_COPY) -> Dropout:
    """Draw 1 + k uniforms always (same stream shape for every sample kind), then decide.

    Edit samples are never text-dropped; text-to-image samples have no VQ blocks.
    """
    uniforms = torch.rand(1 + input_count, generator=generator).tolist()
    return Dropout(text_drop=(not is_edit) and uniforms[0] < text_drop,
                   vq_copy=tuple(u < vq_copy for u in uniforms[1:]))


def sample_dropout(run_seed: int, sample_id: str, epoch: int, is_edit: bool, input_count: int,
                   text_drop: float = TEXT_DROP, vq_copy: float = VQ_COPY) -> Dropout:
    return draw_dropout(dropout_generator(run_seed, sample_id, epoch), is_edit, input_count, text_drop, vq_copy)


def apply_text_drop(input_ids: torch.Tensor, batch: TrainingBatch, dropout: Sequence[Dropout],
                    pad_id: int) -> torch.Tensor:
    """A copy of the ids with ids[first+1 : first+n] = pad in the text-dropped rows."""
    ids = input_ids.clone()
    for row, drop in enumerate(dropout):
        if drop.text_drop:
            first = batch.first_columns[row]
            ids[row, first + 1:first + batch.prompt_lengths[row]] = pad_id
    return ids


@torch.no_grad()
def encode_codes(vqmodel: Any, pixels: torch.Tensor) -> torch.Tensor:
    """(B, 3, S, S) pixels -> (B, N) codes: encoder + quant_conv, then the nearest codebook row with z
    and the codebook both L2-normalised (deepseek's quantizer), float32. No gradient."""
    return encode_vq_codes(vqmodel, pixels)


def scored_predictions(hidden: torch.Tensor, codes: torch.Tensor, first_token_quirk: bool = True
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Pair hidden states with the codes they predict: ``(hidden (B, M, H), targets (B, M))``.

    ``hidden`` is the language model's last hidden state (B, L, H) whose last N positions hold the
    target code embeddings. Position j predicts the code at j + 1. Upstream applies the head to the
    last N states and the causal-LM shift drops the last one, so slot k predicts code k + 1 and code 0
    (predicted by the output BOI at -(N+1)) is never trained: M = N - 1 (``first_token_quirk``).
    Without the quirk the states at -(N+1) ... -2 predict codes 0 ... N-1: M = N.
    """
    n = codes.shape[1]
    if first_token_quirk:
        return hidden[:, -n:-1], codes[:, 1:]
    return hidden[:, -(n + 1):-1], codes


def image_token_loss(model: Any, batch: TrainingBatch, dropout: Sequence[Dropout], pad_id: int,
                     first_token_quirk: bool = True) -> LossOutput:
    """Forward pass of ``JanusForConditionalGeneration`` on a training batch; loss on image tokens only."""
    janus = model.model
    n = batch.image_tokens
    ids = apply_text_drop(batch.input_ids, batch, dropout, pad_id)
    embeds = model.get_input_embeddings()(ids)
    parameters_dtype = embeds.dtype

    if batch.input_pixels.shape[0]:
        pixels = batch.input_pixels.to(embeds.device)
        features = janus.get_image_features(pixels.to(janus.vision_model.dtype)).pooler_output  # (K, N, H)
        input_codes = encode_codes(janus.vqmodel, pixels)
        copied = model.prepare_embeddings_for_image_generation(input_codes)  # (K, N, H)
        image = 0
        for row, (siglip_starts, slot_starts) in enumerate(zip(batch.siglip_starts, batch.vq_slot_starts)):
            for start, slots, copy in zip(siglip_starts, slot_starts, dropout[row].vq_copy):
                embeds[row, start:start + n] = features[image].to(parameters_dtype)
                if copy:
                    embeds[row, slots:slots + n] = copied[image].to(parameters_dtype)
                image += 1

    target_codes = encode_codes(janus.vqmodel, batch.target_pixels.to(embeds.device))  # (B, N), no gradient
    embeds[:, -n:] = model.prepare_embeddings_for_image_generation(target_codes).to(parameters_dtype)

    hidden = janus.language_model(inputs_embeds=embeds, attention_mask=batch.attention_mask,
                                  position_ids=batch.position_ids, use_cache=False).last_hidden_state
    scored_hidden, targets = scored_predictions(hidden, target_codes, first_token_quirk)
    logits = janus.generation_head(scored_hidden).float()  # cross-entropy in float32, as HF's loss does
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    return LossOutput(loss=loss, scored_tokens=int(targets.numel()), target_codes=target_codes)
