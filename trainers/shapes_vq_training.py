"""Training the shapes VQ tokenizer: the quantiser, dead-code reseeding and the training loop.

Training (docs/JANUS.md, "Training a tiny VQ tokenizer"):

* The module's own ``forward`` decodes from the selected codebook rows, so it sends no gradient to
  the encoder. We run encoder -> quant_conv -> quantiser -> decoder ourselves with a straight-through
  estimator, plus codebook and commitment terms.
* Quantisation is done the deepseek / LlamaGen way: encoder output and codebook are L2-normalised and
  the nearest direction wins. The HF decode normalises the looked-up rows anyway, and once the stored
  codebook is unit-norm (we normalise it at the end) the HF ``encode`` (plain Euclidean search) picks
  the same codes, since ``|z - e|^2 = |z|^2 + 1 - 2 z.e`` for unit ``e``.
* The reconstruction loss is a squared error (an L1 loss learns colour far slower: a wrong hue is one
  large error, which L1 weighs no more than many small ones) that weighs object pixels more than
  background (objects are ~15% of the image but carry every colour), and codes unused for ``reseed_every`` steps are re-seeded from encoder
  outputs of the current batch.
"""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from trainers.shapes_vq_data import batch, progress_bar
from trainers.shapes_vq_settings import ShapesVQSettings, vq_config


# --------------------------------------------------------------------------------------- quantiser
def nearest_codes(latents: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """deepseek's search: nearest codebook direction to each (B, D, h, w) latent -> (B, h*w) ids."""
    flat = F.normalize(latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1]), dim=-1)
    ids = (flat @ F.normalize(codebook, dim=-1).T).argmax(dim=1)
    return ids.view(latents.shape[0], -1)


def _quantise(vq, pixels: torch.Tensor, continuous: bool = False, patch: int = 0,
              group_codes: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Straight-through quantised latents, the codebook + commitment (+ consistency, with ``patch``)
    loss parts, and the code ids. ``continuous``: pass the normalised latents through unquantised
    (autoencoder warm-up)."""
    latents = vq.quant_conv(vq.encoder(pixels))
    b, d, h, w = latents.shape
    z = F.normalize(latents.permute(0, 2, 3, 1).reshape(-1, d), dim=-1)
    codebook = F.normalize(vq.quantize.embedding.weight, dim=-1)
    target = z.detach()
    if group_codes and patch:  # one code per group of identical patches: the group's mean latent's
        groups = _patch_groups(pixels, patch)
        count = torch.bincount(groups).clamp(min=1).unsqueeze(1).to(z.dtype)
        sums = torch.zeros(int(groups.max()) + 1, d, device=z.device, dtype=z.dtype).index_add(0, groups, target)
        target = F.normalize(sums / count, dim=-1)[groups]
    ids = (target @ codebook.T).argmax(dim=1)
    q = codebook[ids]
    codebook_loss = F.mse_loss(q, target)
    commitment = F.mse_loss(z, q.detach())
    q_st = z if continuous else z + (q - z).detach()  # decoder gradient reaches the encoder unchanged
    terms = [codebook_loss, commitment]
    if patch:
        terms.append(_patch_consistency(z, pixels, patch))
    return q_st.view(b, h, w, d).permute(0, 3, 1, 2), torch.stack(terms), ids


def _patch_groups(pixels: torch.Tensor, patch: int) -> torch.Tensor:
    """The group of each patch (raster order per image): patches with exactly the same pixels share one."""
    b, c, height, width = pixels.shape
    tiles = pixels.reshape(b, c, height // patch, patch, width // patch, patch).permute(0, 2, 4, 1, 3, 5)
    return torch.unique(tiles.reshape(-1, c * patch * patch), dim=0, return_inverse=True)[1]


def _patch_consistency(z: torch.Tensor, pixels: torch.Tensor, patch: int) -> torch.Tensor:
    """Mean squared distance of each patch's latent (rows of ``z``, in raster order per image) from
    the mean latent of the batch's patches with exactly the same pixels."""
    groups = _patch_groups(pixels, patch)
    count = torch.bincount(groups).clamp(min=1).unsqueeze(1).to(z.dtype)
    means = torch.zeros(int(groups.max()) + 1, z.shape[1], device=z.device, dtype=z.dtype).index_add(0, groups, z)
    return ((z - (means / count)[groups]) ** 2).sum(dim=1).mean()


def _reseed_dead_codes(vq, usage: torch.Tensor, pixels: torch.Tensor, generator: torch.Generator,
                       settings: ShapesVQSettings | None = None, initial: bool = False) -> int:
    """Point codes unused since the last check at encoder outputs of this batch; return how many.
    ``initial`` (the end of the autoencoder warm-up): every code is placed, farthest-first in the
    "farthest" mode."""
    dead = torch.nonzero(usage == 0).flatten()
    if len(dead) == 0:
        return 0
    if settings is not None and settings.reseed_from == "farthest":
        return _reseed_farthest(vq, dead, usage, pixels, -1.0 if initial else settings.reseed_distance)
    with torch.no_grad():
        latents = vq.quant_conv(vq.encoder(pixels))
        z = F.normalize(latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1]), dim=-1)
        pick = torch.randint(len(z), (len(dead),), generator=generator).to(z.device)  # CPU draws: same on any device
        noise = 0.01 * torch.randn(len(dead), z.shape[1], generator=generator).to(z.device)
        vq.quantize.embedding.weight[dead] = F.normalize(z[pick] + noise, dim=-1)
    return len(dead)


def _reseed_farthest(vq, dead: torch.Tensor, usage: torch.Tensor, pixels: torch.Tensor, threshold: float) -> int:
    """Farthest-point reseeding: each dead code in turn goes to the batch's encoder output farthest
    (squared distance of unit vectors) from every live or already reseeded code, while that is
    more than ``threshold``; the rest stay dead. Deterministic given the batch."""
    with torch.no_grad():
        latents = vq.quant_conv(vq.encoder(pixels))
        z = F.normalize(latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1]), dim=-1)
        weight = vq.quantize.embedding.weight
        alive = F.normalize(weight[usage > 0], dim=-1)
        nearest = (2 - 2 * (z @ alive.T).amax(dim=1)) if len(alive) else torch.full((len(z),), 4.0, device=z.device)
        done = 0
        for code in dead.tolist():
            far = int(nearest.argmax())
            if float(nearest[far]) <= threshold:
                break
            weight[code] = z[far]
            nearest = torch.minimum(nearest, 2 - 2 * (z @ z[far]))
            done += 1
    return done


# ---------------------------------------------------------------------------------------- training
def train_vq_model(settings: ShapesVQSettings, log_every: int = 0, device: str = "cpu", progress: bool = False):
    """Train a ``JanusVQVAE`` on ``device``; return it (on the CPU, eval mode, unit-norm codebook) and
    the training metrics. Scenes and random draws are made on the CPU, so only float rounding differs
    between devices. ``progress``: a progress bar of the steps on stderr."""
    from transformers import JanusVQVAE

    rng = np.random.default_rng(settings.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        vq = JanusVQVAE(vq_config(settings))
        if settings.conv_init == "pytorch":  # std 0.02 makes every conv nearly silent: slow start
            for module in vq.modules():
                if isinstance(module, torch.nn.Conv2d):
                    module.reset_parameters()
        vq.to(device)
        generator = torch.Generator().manual_seed(settings.seed + 1)
        optimiser = torch.optim.Adam(vq.parameters(), lr=settings.lr, betas=(0.9, 0.99))
        floor = settings.lr_floor
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimiser, lambda step: floor + (1 - floor) * 0.5 * (1 + np.cos(np.pi * step / settings.steps)))
        usage = torch.zeros(settings.codebook_size, device=device)
        history, reseeded, started = [], 0, time.perf_counter()
        vq.train()
        bar = progress_bar(progress, settings.steps, "tokenizer")
        for step in range(settings.steps):
            pixels, foreground = (t.to(device) for t in batch(rng, settings.batch_size, settings.image_size,
                                                              settings.profile))
            warming_up = step < settings.autoencoder_steps
            if step == settings.autoencoder_steps and step:  # every code starts at a latent of this batch
                usage.zero_()
                reseeded += _reseed_dead_codes(vq, usage, pixels, generator, settings, initial=True)
            quantised, vq_terms, ids = _quantise(
                vq, pixels, continuous=warming_up, group_codes=step < settings.group_code_steps,
                patch=settings.patch_size if settings.consistency_weight or settings.group_code_steps else 0)
            decoded = vq.decoder(vq.post_quant_conv(quantised))
            weight = 1.0 + settings.foreground_weight * foreground
            if settings.edge_weight:
                band = F.max_pool2d(foreground, 3, 1, 1) + F.max_pool2d(-foreground, 3, 1, 1)
                weight = weight + settings.edge_weight * band
            error = (decoded - pixels).abs() if settings.reconstruction == "l1" else (decoded - pixels) ** 2
            reconstruction = (weight * error).mean() / weight.mean()
            loss = reconstruction if warming_up else reconstruction + vq_terms[0] + settings.beta * vq_terms[1]
            if settings.consistency_weight:
                loss = loss + settings.consistency_weight * vq_terms[2]
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            usage += torch.bincount(ids, minlength=settings.codebook_size)
            history.append(float(reconstruction.detach()))
            if bar is not None:
                bar.update(1)
                if (step + 1) % 25 == 0:
                    bar.set_postfix(reconstruction=f"{np.mean(history[-25:]):.4f}", refresh=False)
            if settings.reseed_every and (step + 1) % settings.reseed_every == 0 and step + 1 < settings.steps:
                reseeded += _reseed_dead_codes(vq, usage, pixels, generator, settings)
                usage.zero_()
            if log_every and (step + 1) % log_every == 0:
                print(f"step {step + 1} rec {np.mean(history[-log_every:]):.4f} "
                      f"used {int((usage > 0).sum())} {time.perf_counter() - started:.0f}s", flush=True)
    if bar is not None:
        bar.close()
    vq.cpu().eval()
    with torch.no_grad():  # unit rows: HF encode() then agrees with the normalised search
        vq.quantize.embedding.weight.copy_(F.normalize(vq.quantize.embedding.weight, dim=-1))
    metrics = {"train_seconds": round(time.perf_counter() - started, 1),
               "first_reconstruction_loss": float(np.mean(history[:10])),
               "final_reconstruction_loss": float(np.mean(history[-10:])),
               "codes_used_last_window": int((usage > 0).sum()), "codes_reseeded": reseeded}
    return vq, metrics
