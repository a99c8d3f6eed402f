"""VQ decoding for the Janus engine: image tokens to pixels, a fixed number of images per decoder call.

The reference sampler decodes one image at a time with the model's own ``decode_image_tokens``. The
engine (``sampler: engine``) decodes with :class:`VQDecoder`, which runs the same layers of the
model's ``JanusVQVAEDecoder`` (one copy of their weights, channels-last) with these changes, none of
which changes the arithmetic beyond float rounding (before the conversion to uint8, outputs differ from
the model's own decoder's by 1e-5 or less on the models tested, as the earlier channels-last decoding
did; after it, a rare value by one level):

* **Codebook folded.** The L2-normalised codebook entry of every token and the 1x1 ``post_quant_conv``
  applied to it are computed once; decoding starts with one table lookup.
* **Fewer passes.** Group norm and SiLU run as ``group_norm`` then an in-place ``silu``; the residual
  is added in place into the second convolution's output.
* **Sub-pixel upsampling.** Nearest-neighbour x2 upsampling followed by a 3x3 convolution equals four
  2x2 convolutions at the low resolution (one per output phase, their weights sums of the 3x3's), run
  as one convolution with four times the output channels: 16 instead of 36 multiply-adds per output
  pixel and input channel, and no upsampled copy of the input.
* **Chunks of a fixed size.** Every call decodes ``chunk`` images (the last chunk padded with copies),
  so an image's pixels never depend on how many images its batch had.
* **No page faults** (CPU, glibc): freeing a decoder activation of a few MB returns it to the kernel
  (glibc trims the heap), and the next one takes a page fault per 4 KiB page: about 11,000 faults and a
  third of the time of decoding 16 tiny-model images on the machine of docs/PERFORMANCE.md.
  :func:`keep_freed_heap` tells glibc to keep freed memory (up to ``HEAP_KEEP_BYTES``) for reuse; it
  is a process-wide setting, made once, and ``KEEP_FREED_HEAP = False`` turns it off.

``torch.compile`` of this decoder was measured on the CPU of docs/PERFORMANCE.md and did not help (about
30 s of compilation for a slightly slower decoder), so it is not used.
"""
from __future__ import annotations

import ctypes
import logging
import sys
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

log = logging.getLogger(__name__)

#: images per decoder call on CUDA
DECODE_CHUNK_CUDA = 16
#: on CPU, a chunk holds about this many values of the decoder's widest activation (image size squared x
#: base channels): 8 images for the 64 px tiny model (4 MB activations, measured fastest on the CPU of
#: docs/PERFORMANCE.md), one at a time for the real VQ decoder (128 channels at full resolution)
DECODE_VALUES_CPU = 2**20
MAX_CHUNK_CPU = 8
#: :func:`keep_freed_heap` runs when the engine first decodes on a CPU; set False to leave malloc alone
KEEP_FREED_HEAP = True
#: freed memory glibc keeps for reuse: M_MMAP_THRESHOLD (its largest allowed value: blocks above it are
#: still mapped and unmapped on their own, so model weights are returned) and M_TRIM_THRESHOLD
HEAP_KEEP_BYTES = (32 * 2**20, 256 * 2**20)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_heap_kept: bool | None = None
DESCRIPTION = ("VQ decoder layers on a channels-last copy (codebook and post_quant_conv folded into one table, "
               "nearest x2 upsampling + 3x3 conv as a 2x2 sub-pixel conv)")


def chunk_size(device: torch.device, image_size: int, base_channels: int) -> int:
    """Images per decoder call: fixed for a model and device type, so pixels never depend on the batch."""
    if device.type == "cuda":
        return DECODE_CHUNK_CUDA
    return max(1, min(MAX_CHUNK_CPU, DECODE_VALUES_CPU // (image_size ** 2 * base_channels)))


def keep_freed_heap() -> bool:
    """Ask glibc to keep freed heap memory for reuse instead of returning it to the kernel (once per
    process; a no-op elsewhere or when ``KEEP_FREED_HEAP`` is False). Returns whether it is in effect."""
    global _heap_kept
    if _heap_kept is None and KEEP_FREED_HEAP:
        _heap_kept = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(None)
                if hasattr(libc, "gnu_get_libc_version"):
                    mmap_bytes, trim_bytes = HEAP_KEEP_BYTES
                    _heap_kept = bool(libc.mallopt(_M_MMAP_THRESHOLD, mmap_bytes)
                                      and libc.mallopt(_M_TRIM_THRESHOLD, trim_bytes))
            except (OSError, AttributeError) as exc:  # pragma: no cover - not glibc
                log.debug("mallopt unavailable: %s", exc)
    return bool(_heap_kept)


def _subpixel(conv: torch.nn.Conv2d) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Weights (4 x out, in, 2, 2) and bias of the four output phases (row phase a, column phase b, in
    that order) of nearest x2 upsampling followed by ``conv`` (3x3, padding 1): phase 0 reads low-res
    rows p-1, p with kernel rows (w0, w1 + w2); phase 1 reads rows p, p+1 with (w0 + w1, w2)."""
    weight = conv.weight.detach().double()

    def fold(w: torch.Tensor, dim: int, phase: int) -> torch.Tensor:
        first, middle, last = w.unbind(dim)
        pair = (first, middle + last) if phase == 0 else (first + middle, last)
        return torch.stack(pair, dim)

    phases = [fold(fold(weight, 2, a), 3, b) for a in (0, 1) for b in (0, 1)]
    bias = None if conv.bias is None else conv.bias.detach().repeat(4)
    return torch.cat(phases).to(conv.weight.dtype).contiguous(memory_format=torch.channels_last), bias


def _upsample_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Nearest x2 upsampling then the 3x3 convolution, from the phase weights of :func:`_subpixel`."""
    batch, _, height, width = x.shape
    channels = weight.shape[0] // 4
    phases = F.conv2d(F.pad(x, (1, 1, 1, 1)), weight, bias)  # (B, 4C, H+1, W+1): window s covers rows s-1, s
    phases = phases.permute(0, 2, 3, 1).reshape(batch, height + 1, width + 1, 2, 2, channels)
    out = torch.empty(batch, 2 * height, 2 * width, channels, dtype=x.dtype, device=x.device)
    interleaved = out.view(batch, height, 2, width, 2, channels)
    for a in (0, 1):  # output row 2p + a is window p + a of phase a
        for b in (0, 1):
            interleaved[:, :, a, :, b] = phases[:, a:a + height, b:b + width, a, b]
    return out.permute(0, 3, 1, 2)


def _norm_silu(x: torch.Tensor, norm: torch.nn.GroupNorm) -> torch.Tensor:
    return F.silu(F.group_norm(x, norm.num_groups, norm.weight, norm.bias, norm.eps), inplace=True)


def _resnet(block: Any, x: torch.Tensor) -> torch.Tensor:
    """``JanusVQVAEResnetBlock.forward`` (dropout is the identity at inference)."""
    h = block.conv1(_norm_silu(x, block.norm1))
    h = block.conv2(_norm_silu(h, block.norm2))
    if block.in_channels != block.out_channels:
        x = block.conv_shortcut(x) if block.use_conv_shortcut else block.nin_shortcut(x)
    return h.add_(x)


class VQDecoder:
    """Image tokens (B, N) -> pixels (B, H, W, 3) in about [-1, 1], through the layers of the model's VQ
    decoder (see the module docstring); falls back to the decoder modules as they are when the layout is
    not ``JanusVQVAEDecoder``'s."""

    def __init__(self, vqmodel: Any) -> None:
        import copy

        self.grid = tuple(vqmodel.quantize.quant_state_dims)
        decoder = copy.deepcopy(vqmodel.decoder).to(memory_format=torch.channels_last)
        post_quant_conv = vqmodel.post_quant_conv
        with torch.no_grad():
            codes = F.normalize(vqmodel.quantize.embedding.weight, p=2, dim=-1)
            self.table = F.linear(codes, post_quant_conv.weight.flatten(1), post_quant_conv.bias)
        self.decoder = decoder
        self.layered = all(hasattr(decoder, name) for name in ("conv_in", "mid", "up", "norm_out", "conv_out"))
        self.upsample = {index: _subpixel(level.upsample.conv) for index, level in enumerate(decoder.up)
                         if hasattr(level, "upsample")} if self.layered else {}

    @torch.inference_mode()
    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        height, width = self.grid
        x = self.table.index_select(0, tokens.reshape(-1)).view(len(tokens), height, width, -1)
        x = x.permute(0, 3, 1, 2)  # channels-last already
        decoder = self.decoder
        if not self.layered:
            return decoder(x).permute(0, 2, 3, 1)
        x = decoder.conv_in(x)
        x = decoder.mid.attn_1(_resnet(decoder.mid.block_1, x))
        x = _resnet(decoder.mid.block_2, x)
        for index, level in enumerate(decoder.up):
            for number, block in enumerate(level.block):
                x = _resnet(block, x)
                if len(level.attn) > 0:
                    x = level.attn[number](x)
            if index in self.upsample:
                x = _upsample_conv(x, *self.upsample[index])
        return decoder.conv_out(_norm_silu(x, decoder.norm_out)).permute(0, 2, 3, 1)


def to_images(pixels: torch.Tensor, count: int | None = None) -> list[Image.Image]:
    """(B, H, W, 3) floats in about [-1, 1] -> the first ``count`` RGB images, ``clip((x + 1) / 2 * 255)``
    truncated to uint8 (the same arithmetic, element by element, as one image at a time)."""
    values = ((pixels[:count].float().cpu() + 1) / 2 * 255).clamp(0, 255).to(torch.uint8)
    return [Image.fromarray(value.contiguous().numpy()) for value in values]


def decode(decoder: VQDecoder, tokens: torch.Tensor, chunk: int, device: torch.device) -> list[Image.Image]:
    """Images for ``tokens`` (B, N), ``chunk`` per decoder call, the last call padded with copies."""
    if device.type == "cpu":
        keep_freed_heap()
    images: list[Image.Image] = []
    for start in range(0, len(tokens), chunk):
        part = tokens[start:start + chunk].to(device)
        count = len(part)
        if count < chunk:
            part = torch.cat([part, part[-1:].expand(chunk - count, -1)])
        images.extend(to_images(decoder(part), count))
    return images
