"""Understanding SFT for Janus on LLaVA / ShareGPT4V-layout conversations (caption and question-answer data).

Sequences are rendered exactly as the ``janus`` adapter renders a question at inference (docs/JANUS.md
section 3; ``JanusAdapter.render_question`` + ``JanusProcessor`` in text mode): BOS, the processor's
default system prompt (when the checkpoint enables it), then per human turn the checkpoint's chat
template for one user message with the generation prompt, ``"<|User|>: <image_placeholder>\\n{q}\\n\\n
<|Assistant|>:"``, the placeholder expanded to BOI + N image tokens + EOI. Each gpt turn follows as
``" " + answer + EOS``, the deepseek sft format (separator after an assistant turn = EOS), so a second
human turn continues ``...answer<EOS><|User|>: ...``. LLaVA's ``<image>`` marker becomes the image part
of the user message (an image with no marker goes first, as LLaVA does).

Labels are the token ids of the gpt turns (answer and EOS) and -100 elsewhere: no loss on the system
prompt, questions, role tags or image tokens. Tokens are assigned to turns by character offsets of one
tokenisation of the whole text, so the ids are those the model reads at inference.

The loss is ``JanusForConditionalGeneration.forward(input_ids, pixel_values, labels=...)``: the HF
port already writes the aligned SigLIP features over the ``image_token_id`` positions
(``masked_scatter``, images in row order) and computes the shifted causal-LM cross-entropy (float32,
mean over labelled tokens, -100 ignored), which is what deepseek's ``prepare_inputs_embeds`` + LM does.

The loop reuses the Janus-4o core's optimiser, schedule, data order and :class:`Engine` (clip, step,
schedule); it has no checkpoint/resume. The finished run is a ``checkpoint`` artifact like the image
trainer's (``trainers.janus4o.artifact``; data hashed from the LLaVA JSON and its images), and a
finished, intact one made from the same inputs is returned at once. By default SigLIP, the VQ model
and the generation modules are frozen (Janus SFT keeps both encoders frozen; the generation modules
get no gradient from text).
"""
from __future__ import annotations

import contextlib
import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from PIL import Image

from harness.dataset_formats import Conversation, read_llava
from harness.errors import HarnessError
from harness.fileio import atomic_write_text
from trainers.janus4o.artifact import (HASH_CACHE, FileHasher, finished_artifact, llava_images, training_inputs,
                                       write_checkpoint_artifact)
from trainers.janus4o.engines import Engine
from trainers.janus4o.loop import OptimisationConfig, device_and_autocast, make_plan, micro_batch, write_loss_files
from trainers.janus4o.optim import build_optimizer, build_scheduler

IGNORE = -100
LLAVA_IMAGE_MARKER = "<image>"


@dataclass(frozen=True)
class UnderstandingExample:
    conversation_id: str
    input_ids: torch.Tensor  # (L,) long, BOS first
    labels: torch.Tensor  # (L,) long; answer tokens and EOS, -100 elsewhere
    pixel_values: torch.Tensor  # (k, 3, S, S), k = 0 or 1


@dataclass
class UnderstandingBatch:
    input_ids: torch.Tensor  # (B, L), left padded
    attention_mask: torch.Tensor  # (B, L)
    position_ids: torch.Tensor  # (B, L); 0 at each row's BOS
    labels: torch.Tensor  # (B, L); -100 on padding
    pixel_values: torch.Tensor | None  # (images, 3, S, S) in row order, None when no row has an image

    def to(self, device: torch.device | str) -> "UnderstandingBatch":
        pixels = None if self.pixel_values is None else self.pixel_values.to(device)
        return UnderstandingBatch(self.input_ids.to(device), self.attention_mask.to(device),
                                  self.position_ids.to(device), self.labels.to(device), pixels)


def _user_parts(text: str, with_image: bool) -> list[dict[str, str]]:
    """Chat-template content parts: the ``<image>`` marker becomes an image part."""
    pieces = text.split(LLAVA_IMAGE_MARKER)
    parts: list[dict[str, str]] = []
    for index, piece in enumerate(pieces):
        if index:
            parts.append({"type": "image"})
        if piece.strip():
            parts.append({"type": "text", "text": piece})
    if with_image and len(pieces) == 1:
        parts.insert(0, {"type": "image"})  # LLaVA puts an unmarked image before the first question
    return parts


def render_conversation(conversation: Conversation, processor: Any) -> tuple[str, list[tuple[int, int]]]:
    """(text before placeholder expansion and BOS, character spans of the answers incl. their EOS)."""
    turns = conversation.turns
    if len(turns) < 2 or len(turns) % 2 or any(
            role != ("human" if i % 2 == 0 else "gpt") for i, (role, _) in enumerate(turns)):
        raise HarnessError(f"{conversation.id}: turns must alternate human, gpt, ... and end with gpt")
    markers = sum(value.count(LLAVA_IMAGE_MARKER) for _, value in turns)
    if conversation.image is None and markers:
        raise HarnessError(f"{conversation.id}: {LLAVA_IMAGE_MARKER} marker but no image")
    if conversation.image is not None and markers > 1:
        raise HarnessError(f"{conversation.id}: one image but {markers} {LLAVA_IMAGE_MARKER} markers")
    if processor.image_token in "".join(value for _, value in turns):
        raise HarnessError(f"{conversation.id}: the text contains the raw image token {processor.image_token!r}")
    eos = processor.tokenizer.eos_token
    text = _system_prompt(processor)
    spans = []
    for index in range(0, len(turns), 2):
        question, answer = turns[index][1], turns[index + 1][1]
        with_image = conversation.image is not None and index == 0 and markers == 0
        messages = [{"role": "user", "content": _user_parts(question, with_image)}]
        text += processor.apply_chat_template(messages, add_generation_prompt=True)
        start = len(text)
        text += " " + answer.strip() + eos
        spans.append((start, len(text)))
    return text, spans


def _system_prompt(processor: Any) -> str:
    from transformers.models.janus.processing_janus import DEFAULT_SYSTEM_PROMPT

    return DEFAULT_SYSTEM_PROMPT if processor.use_default_system_prompt else ""


def _expand_placeholders(text: str, spans: list[tuple[int, int]], processor: Any
                         ) -> tuple[str, list[tuple[int, int]]]:
    """BOI + N image tokens + EOI for each placeholder (as ``JanusProcessor.replace_image_token``)."""
    image = processor.image_token
    block = processor.image_start_token + image * processor.num_image_tokens + processor.image_end_token
    growth = len(block) - len(image)
    shifted = []
    for start, end in spans:
        before = text[:start].count(image)
        shifted.append((start + before * growth, end + before * growth))
    return text.replace(image, block), shifted


def load_understanding_pixels(processor: Any, path: Path) -> torch.Tensor:
    """(1, 3, S, S) through the Janus image processor, as the adapter's ``build_question_inputs``."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")  # RGBA crashes the normalisation (deepseek-ai/Janus #192)
    return processor.image_processor(images=[rgb], return_tensors="pt")["pixel_values"].float()


def build_understanding_example(conversation: Conversation, processor: Any, max_length: int | None = None
                                ) -> UnderstandingExample:
    """Token ids, answer-only labels and pixels for one conversation (see the module docstring)."""
    tokenizer = processor.tokenizer
    raw, raw_spans = render_conversation(conversation, processor)
    text, spans = _expand_placeholders(raw, raw_spans, processor)
    encoded = tokenizer(text, return_offsets_mapping=True)
    ids = torch.tensor(encoded["input_ids"], dtype=torch.long)
    labels = torch.full_like(ids, IGNORE)
    for position, (start, end) in enumerate(encoded["offset_mapping"]):
        if end > start and any(s <= start and end <= e for s, e in spans):
            labels[position] = ids[position]
    image_id = tokenizer.convert_tokens_to_ids(processor.image_token)
    expected = processor.num_image_tokens * (conversation.image is not None)
    if int((ids == image_id).sum()) != expected:
        raise HarnessError(f"{conversation.id}: {int((ids == image_id).sum())} image tokens, expected {expected}")
    eos_id = tokenizer.convert_tokens_to_ids(tokenizer.eos_token)
    if int((labels == eos_id).sum()) != len(spans):
        raise HarnessError(f"{conversation.id}: every answer must end in one labelled EOS")
    if max_length is not None and ids.shape[0] > max_length:
        last_image = int((ids == image_id).nonzero().max()) if expected else -1
        if last_image >= max_length:
            raise HarnessError(f"{conversation.id}: max_length {max_length} would cut the image tokens")
        ids, labels = ids[:max_length], labels[:max_length]
    pixels = (load_understanding_pixels(processor, conversation.image) if conversation.image is not None
              else torch.zeros(0, 3, 1, 1))
    return UnderstandingExample(conversation.id, ids, labels, pixels)


def collate_understanding(examples: Sequence[UnderstandingExample], pad_id: int) -> UnderstandingBatch:
    """Left padding (as the adapter's batched prompts): padding is masked and unlabelled."""
    length = max(int(e.input_ids.shape[0]) for e in examples)
    input_ids = torch.full((len(examples), length), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), length), IGNORE, dtype=torch.long)
    attention_mask = torch.zeros(len(examples), length, dtype=torch.long)
    for row, example in enumerate(examples):
        first = length - int(example.input_ids.shape[0])
        input_ids[row, first:] = example.input_ids
        labels[row, first:] = example.labels
        attention_mask[row, first:] = 1
    position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
    images = [e.pixel_values for e in examples if e.pixel_values.shape[0]]
    return UnderstandingBatch(input_ids, attention_mask, position_ids, labels,
                              torch.cat(images) if images else None)


def understanding_loss(model: Any, batch: UnderstandingBatch) -> torch.Tensor:
    """Causal-LM cross-entropy on the labelled (answer) tokens; SigLIP features on the image tokens."""
    pixels = None if batch.pixel_values is None else batch.pixel_values.to(model.model.vision_model.dtype)
    output = model(input_ids=batch.input_ids, pixel_values=pixels, attention_mask=batch.attention_mask,
                   position_ids=batch.position_ids, labels=batch.labels, use_cache=False)
    return output.loss


@dataclass
class UnderstandingConfig(OptimisationConfig):
    """The shared training settings plus what only understanding SFT needs."""

    max_length: int | None = 4096  # tokens; longer conversations are cut (never inside the image block)
    freeze_vision: bool = True  # SigLIP stays frozen (the aligner trains)


def freeze_for_understanding(model: Any, freeze_vision: bool) -> None:
    """Modules a text loss cannot train (VQ, generation path) and, optionally, SigLIP: no gradient."""
    janus = model.model
    for module in (janus.vqmodel, janus.generation_embeddings, janus.generation_aligner, janus.generation_head):
        module.requires_grad_(False)
    if freeze_vision:
        janus.vision_model.requires_grad_(False)


def train_understanding(model_dir: str | Path, llava_json: str | Path, out_dir: str | Path,
                        config: UnderstandingConfig | None = None) -> Path:
    """Fine-tune ``model_dir`` on a LLaVA-layout file; return ``out_dir/model`` (``janus`` adapter loadable).

    Also writes ``out_dir/loss.json`` and ``loss.png`` (per optimiser step: loss, lr, grad norm),
    ``train_config.json``, ``budget.json`` and, last, ``artifact.json``.
    """
    from transformers import JanusForConditionalGeneration, JanusProcessor

    config = config or UnderstandingConfig()
    model_dir, out_dir, llava_json = Path(model_dir), Path(out_dir), Path(llava_json)
    hasher = FileHasher(out_dir / HASH_CACHE)
    inputs = training_inputs(model_dir, llava_json, asdict(config), hasher, llava_images)
    final = out_dir / "model"
    if finished_artifact(out_dir, inputs) is not None:
        return final
    start = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    hasher.save()
    (out_dir / "artifact.json").unlink(missing_ok=True)  # a damaged one: made again at the end
    conversations = read_llava(llava_json)
    plan = make_plan(len(conversations), config)  # type: ignore[arg-type]  # same field names
    device, autocast = device_and_autocast(config)

    source_config = json.loads((model_dir / "config.json").read_text())
    source_dtype = torch.bfloat16 if (source_config.get("dtype") or source_config.get("torch_dtype")) == "bfloat16" \
        else torch.float32
    model = JanusForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).to(device)
    model.train()
    freeze_for_understanding(model, config.freeze_vision)
    processor = JanusProcessor.from_pretrained(model_dir)
    tokenizer = processor.tokenizer
    pad_id = int(tokenizer.convert_tokens_to_ids(tokenizer.pad_token))

    optimizer = build_optimizer(model, config.learning_rate, config.weight_decay)
    scheduler = build_scheduler(optimizer, plan.total_steps, config.warmup_ratio, config.min_lr_ratio)
    engine = Engine(model, optimizer, scheduler, plan.accumulation, config.max_grad_norm)
    atomic_write_text(out_dir / "train_config.json", json.dumps({
        "inputs": inputs, "conversations": len(conversations), "config": asdict(config), "plan": asdict(plan),
        "device": device.type, "autocast_bf16": autocast is not contextlib.nullcontext}, indent=1))

    records: list[dict[str, Any]] = []
    counts = {"samples": 0, "tokens": 0, "image_tokens": 0, "labelled_tokens": 0}
    for step in range(plan.total_steps):
        micro_losses = []
        for micro in range(plan.accumulation):
            _, indices = micro_batch(len(conversations), config, plan,  # type: ignore[arg-type]
                                     step * plan.accumulation + micro)
            examples = [build_understanding_example(conversations[i], processor, config.max_length)
                        for i in indices]
            batch = collate_understanding(examples, pad_id).to(device)
            with autocast():
                loss = understanding_loss(model, batch)
            engine.backward(loss)
            micro_losses.append(float(loss.detach()))
            counts["samples"] += len(examples)
            counts["tokens"] += int(batch.attention_mask.sum())
            counts["image_tokens"] += processor.num_image_tokens * sum(int(e.pixel_values.shape[0]) for e in examples)
            counts["labelled_tokens"] += int((batch.labels[:, 1:] != IGNORE).sum())
        lr = engine.lr
        grad_norm = engine.step()
        records.append({"step": step + 1, "loss": sum(micro_losses) / len(micro_losses), "lr": lr,
                        "grad_norm": grad_norm, "micro_losses": micro_losses})

    model.eval()
    model.to(source_dtype)
    model.generation_config._from_model_config = False  # else a reload drops generation_kwargs (pitfall 3)
    partial = out_dir / "model.partial"  # renamed when complete: a kill never leaves half a model
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    processor.save_pretrained(partial)
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    write_loss_files(out_dir, records)
    wall = time.monotonic() - start
    budget = {"optimizer_steps": plan.total_steps, **counts, "text_tokens": counts["tokens"] - counts["image_tokens"],
              "wall_seconds": round(wall, 3), "gpu_hours": round(wall / 3600 if device.type == "cuda" else 0.0, 6),
              "device": device.type, "world_size": 1, "engine": "plain"}
    atomic_write_text(out_dir / "budget.json", json.dumps(budget, indent=1))
    write_checkpoint_artifact(out_dir, inputs, spec={"trainer": "janus-understanding", "config": asdict(config)},
                              info={"budget": budget, "model_dir": str(model_dir.resolve()),
                                    "dataset": str(llava_json.resolve())})
    return final
