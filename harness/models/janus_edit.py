"""Janus-4o image editing: prompt rows, input embeddings and the three-stream sampling loop.

Behaviour of the reference edit loop (FreedomIntelligence/ShareGPT-4o-Image, ``demo/app_janus4o.py``;
docs/JANUS.md section 5), re-implemented on the transformers port:

* User content ``BOI + N x <image_placeholder> + EOI + BOI + N x pad + EOI + instruction``, rendered
  with the deepseek template, empty system prompt, stripped, then BOI appended; BOS from the tokenizer.
* Three rows per request: **full** (SigLIP features on the placeholders and the source image's VQ code
  embeddings on the N pad slots of the second block), **part** (SigLIP features only; the slots keep
  the pad-token embedding), **uncond** (every token but the row's BOS and final BOI replaced by pad,
  no pixels).
* ``l_cond = (l_full + s2 * l_part) / (1 + s2)``, ``l = l_uncond + s1 * (l_cond - l_uncond)``,
  ``p = softmax(l / T)`` over the full image vocabulary; the drawn token is fed to all three rows.

VQ codes of the source image (docs/JANUS.md pitfall 12): deepseek's quantizer L2-normalises the
encoder output and the codebook before the nearest-code search; the port's
``JanusVQVAEVectorQuantizer.forward`` normalises neither, so it picks other codes unless the stored
codebook rows happen to be unit vectors. :func:`encode_vq_codes` therefore runs the port's encoder and
``quant_conv`` and then searches like deepseek (both sides normalised, squared-distance argmin).

Where we differ from the reference, for the same reasons as the text-to-image loop in ``janus.py``:
requests of different lengths share a batch (left padding masked, position ids from each row's BOS;
inside its own span the uncond row attends its pads, as in the reference); each request's draw
depends only on its own seed (the engine's counter-based Gumbel-max by default, one CPU
``torch.Generator`` per request with ``sampler: reference``); SigLIP and VQ encodings are computed
one image at a time, so nothing depends on the batch. With the engine, the full and part rows of
requests that share an instruction and a source image, and the uncond rows of prompts of the same
length, are prefilled once (:func:`edit_prompt_rows`). The reference finds the VQ slots by counting
EOI tokens across the whole batch (one input image assumed); we locate them per row and check the
layout token by token.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Hashable, Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from harness.errors import HarnessError
from harness.models.janus_engine import PromptRows, cache_argument, distinct_rows

EDIT_VERSION = "janus-edit/1"
ROWS_PER_REQUEST = 3  # full, part, uncond
GUIDANCE = "l_cond=(l_full+s2*l_part)/(1+s2); l=l_uncond+s1*(l_cond-l_uncond)"
LAYOUT = "janus4o three streams per request: full, part, uncond (rows 3i, 3i+1, 3i+2)"
STREAMS = {"full": "SigLIP features on the placeholders + source VQ code embeddings on the pad slots",
           "part": "SigLIP features on the placeholders; pad slots keep the pad embedding"}
VQ_SEARCH = ("encoder + quant_conv; z and codebook L2-normalised; squared-distance argmin in float32 "
             "(deepseek quantizer)")


@dataclass(frozen=True)
class EditTokenIds:
    """The special token ids the edit layout is made of (looked up from the tokenizer)."""

    bos: int
    pad: int
    boi: int
    eoi: int
    image: int


@dataclass
class EditRows:
    """Token rows for a chunk of P requests: row 3i full, 3i+1 part, 3i+2 uncond (left padded)."""

    input_ids: torch.Tensor  # (3P, L)
    attention_mask: torch.Tensor  # (3P, L); 0 only on left padding
    position_ids: torch.Tensor  # (3P, L); 0 at each row's BOS
    image_starts: list[int]  # per request: first placeholder column (N placeholders follow)
    slot_starts: list[int]  # per request: first VQ slot column (N slots follow)


def special_strings(tokenizer: Any) -> dict[str, str]:
    """The tokenizer's BOI, EOI, image placeholder and pad strings, keyed as ``edit_user_content`` wants."""
    return {"boi": tokenizer.boi_token, "eoi": tokenizer.eoi_token, "image": tokenizer.image_token,
            "pad": tokenizer.pad_token}


def describe_layout(strings: dict[str, str], image_tokens: int) -> str:
    """The user content with the placeholder and pad runs written as counts (for protocol cards)."""
    layout = edit_user_content("{instruction}", 1, strings)
    for name in ("image", "pad"):
        layout = layout.replace(strings[name], f"{strings[name]}x{image_tokens}")
    return layout


def edit_user_content(instruction: str, image_tokens: int, strings: dict[str, str]) -> str:
    """The user turn's content: the SigLIP block, the VQ block, then the instruction (no separator).

    ``strings`` maps "boi", "eoi", "image", "pad" to the tokenizer's special strings.
    """
    siglip = strings["boi"] + strings["image"] * image_tokens + strings["eoi"]
    vq = strings["boi"] + strings["pad"] * image_tokens + strings["eoi"]
    return siglip + vq + instruction


def build_edit_rows(tokenizer: Any, texts: Sequence[str], ids: EditTokenIds, image_tokens: int,
                    names: Sequence[str]) -> EditRows:
    """Tokenise rendered prompts (left padded) and expand each into its full, part and uncond rows.

    Every row is checked: BOS first, then BOI + N placeholders + EOI + BOI + N pads + EOI somewhere
    after it, exactly N placeholders and two EOIs, BOI last. An instruction that itself contains one
    of these special strings breaks the layout and is refused (``names`` says which request).
    """
    encoded = tokenizer(list(texts), padding=True, return_tensors="pt")
    tokens, mask = encoded["input_ids"].long(), encoded["attention_mask"].long()
    length = tokens.shape[1]
    image_starts, slot_starts = [], []
    for row, name in enumerate(names):
        first = int(length - mask[row].sum())
        real = tokens[row, first:]
        image_positions = (real == ids.image).nonzero().flatten()
        eoi_positions = (real == ids.eoi).nonzero().flatten()
        if (int(real[0]) != ids.bos or int(real[-1]) != ids.boi or len(image_positions) != image_tokens
                or len(eoi_positions) != 2):
            raise HarnessError(f"{name}: the edit prompt does not tokenise to BOS ... BOI with {image_tokens} "
                               f"image placeholders and two end-of-image tokens (does the instruction contain "
                               f"a special token string, or does the tokenizer not prepend BOS?)")
        start = int(image_positions[0])
        siglip_eoi = start + image_tokens
        slots = siglip_eoi + 2
        expected_layout = (
            slots + image_tokens < len(real) and int(real[start - 1]) == ids.boi
            and bool((image_positions == torch.arange(start, siglip_eoi)).all())
            and int(real[siglip_eoi]) == ids.eoi and int(real[siglip_eoi + 1]) == ids.boi
            and bool((real[slots:slots + image_tokens] == ids.pad).all())
            and int(real[slots + image_tokens]) == ids.eoi)
        if not expected_layout:
            raise HarnessError(f"{name}: the image blocks of the edit prompt are not BOI + placeholders + EOI "
                               f"+ BOI + pads + EOI; got {real.tolist()}")
        image_starts.append(first + start)
        slot_starts.append(first + slots)
    # Unconditional row: same length, everything but the row's BOS and its final BOI -> pad.
    first_columns = length - mask.sum(dim=1)
    uncond = torch.full_like(tokens, ids.pad)
    uncond[torch.arange(len(texts)), first_columns] = ids.bos
    uncond[:, -1] = ids.boi
    input_ids = torch.stack([tokens, tokens, uncond], dim=1).reshape(ROWS_PER_REQUEST * len(texts), length)
    attention_mask = mask.repeat_interleave(ROWS_PER_REQUEST, dim=0)
    position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
    return EditRows(input_ids, attention_mask, position_ids, image_starts, slot_starts)


def preprocess_sources(image_processor: Any, images: Sequence[Image.Image], image_size: int) -> torch.Tensor:
    """Source images -> (P, 3, S, S) pixels in [-1, 1], the same for SigLIP and the VQ encoder.

    The checkpoint's processor resizes the long side to S, pads to a square with its background
    colour and normalises (mean = std = 0.5 for Janus), like the reference's ``VLMImageProcessor``.
    RGBA and palette images are converted to RGB first (alpha would crash the normalisation).
    """
    rgb = [image if image.mode == "RGB" else image.convert("RGB") for image in images]
    pixels = image_processor(images=rgb, return_tensors="pt")["pixel_values"]
    if tuple(pixels.shape[-2:]) != (image_size, image_size):
        raise HarnessError(f"the image processor gives {tuple(pixels.shape[-2:])} pixels; the model reads "
                           f"{image_size}x{image_size}")
    return pixels


def describe_preprocessing(image_processor: Any, image_size: int) -> str:
    """How sources are read, for the protocol card."""
    background = getattr(image_processor, "background_color", None)
    return (f"RGB, long side resized to {image_size}, padded square with {background}, mean/std "
            f"{list(image_processor.image_mean)}/{list(image_processor.image_std)}; same pixels for SigLIP "
            "and VQ; encoded one image at a time")


def encode_vq_codes(vqmodel: Any, pixel_values: torch.Tensor) -> torch.Tensor:
    """(B, 3, S, S) pixels -> (B, N) VQ codes, searched as deepseek's quantizer does (pitfall 12)."""
    latent = vqmodel.quant_conv(vqmodel.encoder(pixel_values))  # (B, C, g, g)
    batch, channels = latent.shape[:2]
    z = F.normalize(latent.permute(0, 2, 3, 1).reshape(-1, channels).float(), p=2, dim=-1)
    codebook = F.normalize(vqmodel.quantize.embedding.weight.float(), p=2, dim=-1)
    distances = (z.pow(2).sum(dim=1, keepdim=True) + codebook.pow(2).sum(dim=1) - 2 * z @ codebook.T)
    return distances.argmin(dim=1).reshape(batch, -1)


def edit_input_embeds(model: Any, rows: EditRows, pixel_values: torch.Tensor, image_tokens: int,
                      device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Input embeddings of the 3P rows and the sources' VQ codes (P, N).

    Token embeddings everywhere, then for request i: SigLIP features (aligned) over the placeholders
    of rows 3i and 3i+1, and the VQ codes' generation embeddings (generation aligner) over the slots of
    row 3i only. Each source is encoded alone, so its features do not depend on the batch.
    """
    janus = model.model
    embeds = model.get_input_embeddings()(rows.input_ids.to(device))
    all_codes = []
    for i, (image_start, slot_start) in enumerate(zip(rows.image_starts, rows.slot_starts)):
        pixels = pixel_values[i:i + 1].to(device, dtype)
        features = janus.get_image_features(pixels).pooler_output[0]  # (N, hidden)
        if features.shape[0] != image_tokens:
            raise HarnessError(f"the vision encoder gives {features.shape[0]} features per image, the "
                               f"prompt has {image_tokens} placeholders; check the checkpoint's config")
        codes = encode_vq_codes(janus.vqmodel, pixels)[0]
        vq_embeds = model.prepare_embeddings_for_image_generation(codes.unsqueeze(0))[0]
        full, part = ROWS_PER_REQUEST * i, ROWS_PER_REQUEST * i + 1
        embeds[full, image_start:image_start + image_tokens] = features.to(embeds.dtype)
        embeds[part, image_start:image_start + image_tokens] = features.to(embeds.dtype)
        embeds[full, slot_start:slot_start + image_tokens] = vq_embeds.to(embeds.dtype)
        all_codes.append(codes)
    return embeds, torch.stack(all_codes)


def guided_edit_logits(logits: torch.Tensor, cfg_weight: float, cfg_weight2: float) -> torch.Tensor:
    """(3P, V) gen-head logits, rows full/part/uncond per request -> (P, V) guided float32 logits."""
    logits = logits.float()
    full, part, uncond = logits[0::3], logits[1::3], logits[2::3]
    cond = (full + cfg_weight2 * part) / (1 + cfg_weight2)
    return uncond + cfg_weight * (cond - uncond)


def draw_tokens(logits: torch.Tensor, temperature: float, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """One token per request from its own generator (CPU, float32); temperature 0 = argmax (tests)."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1).cpu()
    draws = [torch.multinomial(probs[i], 1, generator=g) for i, g in enumerate(generators)]
    return torch.cat(draws).to(logits.device)


def image_key(image: Image.Image) -> str:
    """A content key of a source image (mode, size, pixels), to find requests that share a source."""
    return hashlib.sha256(f"{image.mode}:{image.size}".encode() + image.tobytes()).hexdigest()


def edit_prompt_rows(rows: EditRows, embeds: torch.Tensor, source_keys: Sequence[Hashable]) -> PromptRows:
    """The engine's prompt rows: full and part rows are equal when their tokens and source image are;
    uncond rows when their tokens are (every request of the same prompt length)."""
    first = (rows.attention_mask.shape[1] - rows.attention_mask.sum(dim=1)).tolist()
    ids = rows.input_ids.tolist()
    keys = []
    for row, (start, tokens) in enumerate(zip(first, ids)):
        kind = row % ROWS_PER_REQUEST
        source = source_keys[row // ROWS_PER_REQUEST] if kind < 2 else None
        keys.append((kind, int(start), tuple(tokens), source))
    distinct, inverse = distinct_rows(keys)
    return PromptRows(embeds[distinct], rows.attention_mask[distinct], rows.position_ids[distinct],
                      torch.tensor(inverse))


def sample_edit_tokens(model: Any, rows: EditRows, embeds: torch.Tensor, seeds: Sequence[int],
                       cfg_weight: float, cfg_weight2: float, temperature: float, image_tokens: int,
                       device: torch.device, verbose: bool = False) -> torch.Tensor:
    """The reference sampler's KV-cached three-stream loop: (P, N) output image tokens (the engine runs
    the same rows and guidance through ``JanusEngine.sample_image_tokens``)."""
    from transformers import DynamicCache

    janus = model.model
    language_model = janus.language_model
    requests = len(seeds)
    generators = [torch.Generator(device="cpu").manual_seed(int(s) % 2**64) for s in seeds]
    mask = rows.attention_mask.to(device)
    positions = rows.position_ids.to(device)
    cache = DynamicCache(config=language_model.config)
    cached = cache_argument(language_model, cache)
    tokens = torch.zeros(requests, image_tokens, dtype=torch.long, device=device)
    steps: Any = range(image_tokens)
    if verbose:
        from tqdm import tqdm
        steps = tqdm(steps, desc=f"janus-edit x{requests}", unit="tok")
    for step in steps:
        out = language_model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions,
                             use_cache=True, **cached)
        logits = janus.generation_head(out.last_hidden_state[:, -1, :])
        tokens[:, step] = draw_tokens(guided_edit_logits(logits, cfg_weight, cfg_weight2), temperature, generators)
        if step + 1 < image_tokens:  # the same token goes to the full, part and uncond rows
            fed = tokens[:, step].repeat_interleave(ROWS_PER_REQUEST).unsqueeze(1)
            embeds = model.prepare_embeddings_for_image_generation(fed)
            mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
            positions = positions[:, -1:] + 1
    return tokens
