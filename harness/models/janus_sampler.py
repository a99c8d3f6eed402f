"""Counter-based Gumbel-max sampling: a draw that depends only on (request seed, step).

The engine (``janus_engine.py``) samples the next image token of every request in one batched
operation on the model's device, and still keeps the adapter's guarantee that a sample does not depend
on the batch, its order, its size or the number of devices. It does so without any random number
generator state:

* For each request and step a 64-bit key is derived on the host from ``(SAMPLER_VERSION, seed, step)``
  with BLAKE2b (:func:`step_keys`), once per batch for every step.
* For each token id ``v`` of the image vocabulary, a 32-bit word ``h(key, v)`` comes from two rounds of
  a 32-bit integer mixer keyed with the two halves of the key (:func:`uniform_bits`). Everything is
  exact integer arithmetic on int64 tensors (every product stays below 2**63), so the bits are the same
  on any device and in any batch.
* ``u = (h + 0.5) / 2**32`` is uniform on (0, 1); ``g = -log(-log(u))`` is standard Gumbel noise
  (computed in float64); the token is ``argmax_v(l_v / T + g_v)``. By the Gumbel-max theorem this is
  an exact draw from ``softmax(l / T)`` (``tests/test_janus_engine.py`` checks it with a chi-square
  test, and checks that the test rejects samplers that are slightly off).

Because every request's noise is a function of its own key only, the row a request occupies in a batch
does not matter; the only way a batch can change a draw is through the logits themselves (kernels that
change the last bits of a logit with the batch shape, on GPU).
"""
from __future__ import annotations

import hashlib
from typing import Sequence

import torch

SAMPLER_VERSION = "janus-gumbel/1"
DESCRIPTION = ("Gumbel-max on the device: token = argmax(l/T + g), g = -log(-log(u)) in float64, "
               "u = (h+0.5)/2^32, h = 32-bit counter-based hash of (request seed, step, token id) "
               f"({SAMPLER_VERSION}); float32 guided logits")

_MASK32 = 0xFFFFFFFF
# Multipliers of a 32-bit "xorshift-multiply" mixer with low bias (both below 2**31, so a product
# with a 32-bit value fits in int64 without overflow).
_M1 = 0x21F0AAAD
_M2 = 0x735A2D97
_TOKEN_SALT = 0x9E3779B9


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A bijective 32-bit mixer on int64 tensors holding values in [0, 2**32); works in place on ``x``."""
    x ^= x >> 16
    x.mul_(_M1).bitwise_and_(_MASK32)
    x ^= x >> 15
    x.mul_(_M2).bitwise_and_(_MASK32)
    x ^= x >> 15
    return x


def step_keys(seeds: Sequence[int], steps: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``(len(seeds), steps, 2)`` int64 keys, two 32-bit halves of BLAKE2b(version, seed, step)."""
    rows = []
    for seed in seeds:
        seed_bytes = (int(seed) % 2**64).to_bytes(8, "little")
        row = []
        for step in range(steps):
            digest = hashlib.blake2b(seed_bytes + step.to_bytes(4, "little"), digest_size=8,
                                     person=SAMPLER_VERSION.encode()[:16]).digest()
            row.append((int.from_bytes(digest[:4], "little"), int.from_bytes(digest[4:], "little")))
        rows.append(row)
    return torch.tensor(rows, dtype=torch.int64, device=device).reshape(len(seeds), steps, 2)


_SALTS: dict[tuple[int, str], torch.Tensor] = {}


def token_salts(vocab: int, device: torch.device) -> torch.Tensor:
    """Per token id a fixed 32-bit salt (so keys that differ in a few bits still give other words)."""
    key = (vocab, str(device))
    if key not in _SALTS:
        ids = torch.arange(vocab, dtype=torch.int64, device=device)
        _SALTS[key] = _mix32(ids + _TOKEN_SALT)
    return _SALTS[key]


def uniform_bits(keys: torch.Tensor, vocab: int) -> torch.Tensor:
    """``keys (..., 2)`` -> ``(..., vocab)`` int64 words in [0, 2**32), one per token id."""
    salts = token_salts(vocab, keys.device)
    words = _mix32(salts ^ keys[..., 0:1])
    words ^= keys[..., 1:2]
    return _mix32(words)


def gumbel_noise(keys: torch.Tensor, vocab: int) -> torch.Tensor:
    """Standard Gumbel noise, float64, ``(..., vocab)``, from the keys of :func:`step_keys`."""
    u = uniform_bits(keys, vocab).to(torch.float64).add_(0.5).mul_(1.0 / 2**32)
    return u.log_().neg_().log_().neg_()


def draw(logits: torch.Tensor, noise: torch.Tensor | None, temperature: float) -> torch.Tensor:
    """One token per row of ``logits`` (P, V): ``argmax(l / T + g)``; temperature 0 = argmax (tests)."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    return (logits.to(torch.float64) / temperature + noise).argmax(dim=-1)
