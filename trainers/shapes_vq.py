"""A tiny VQ image tokenizer for the shapes world, trained by the project itself (a cached artifact).

A randomly initialised ``JanusVQVAE`` cannot draw, so a tiny Janus trained on shapes data would still
score zero. This module trains the transformers ``JanusVQVAE`` on rendered shapes-world scenes (the
distribution the shapes GenEval prompts produce) until the procedural detector reads its
reconstructions back, and builds a tiny Janus checkpoint around it.

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

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from harness.artifacts import read_manifest, verify, write_manifest
from harness.hashing import hash_value
from shapes.prompts import random_geneval_prompt
from shapes.world import Scene, WorldProfile, get_profile, render, scene_for_metadata

ARTIFACT_KIND = "vq-tokenizer"
TRAINER_VERSION = "shapes-vq/1"
WEIGHTS, CONFIG, METRICS = "vq.safetensors", "vq_config.json", "metrics.json"


@dataclass(frozen=True)
class ShapesVQSettings:
    """Everything that determines the trained weights (hashed into the artifact's inputs)."""

    image_size: int = 64
    patch_size: int = 8
    steps: int = 400
    batch_size: int = 8  # 4x the steps of batch 32 per CPU second (not compared head to head)
    seed: int = 0
    codebook_size: int = 512
    embed_dim: int = 8
    base_channels: int = 32
    latent_channels: int = 32
    channel_multiplier: tuple[int, ...] | None = None  # None: all ones, one level per halving
    num_res_blocks: int = 1
    lr: float = 3e-3
    lr_floor: float = 0.05  # cosine decay from lr to lr_floor x lr over the run (a constant lr ends noisy)
    beta: float = 0.25  # commitment weight
    foreground_weight: float = 4.0  # extra reconstruction weight on object pixels
    edge_weight: float = 0.0  # extra weight on a 3x3 band around object outlines (where blur costs shapes)
    reseed_every: int = 50
    autoencoder_steps: int = 0  # first steps decode the continuous latents; then codes start from them
    reconstruction: str = "mse"  # "mse" weighs large (colour) errors up; "l1" tends to grey medians
    conv_init: str = "pytorch"  # "pytorch": torch's default conv init; "hf": the port's normal(0.02)
    profile: str = "full"  # the shapes-world profile its scenes are drawn from (shapes.world.PROFILES)
    #: pulls the encoder's (normalised) latents of pixel-identical patches of a batch together, so a
    #: patch gets the same code whatever surrounds it (docs/TRAINING.md: context codes are what the
    #: language model then has to learn); 0 = off
    consistency_weight: float = 0.0
    #: where dead codes are re-seeded: "random" encoder outputs of the batch, or "farthest": one at a
    #: time at the output farthest from every live code (and only while one is farther than
    #: ``reseed_distance``), so frequent patches (plain background) do not split over many codes
    reseed_from: str = "random"
    reseed_distance: float = 0.05
    #: for the first this many steps, training quantises each group of pixel-identical patches of a
    #: batch by its mean latent, so codes come to depend on the patch alone (with
    #: ``consistency_weight``); later steps quantise each patch on its own, as encoding does
    group_code_steps: int = 0

    def __post_init__(self) -> None:
        if self.reseed_from not in ("random", "farthest"):
            raise ValueError(f"reseed_from must be 'random' or 'farthest', got {self.reseed_from!r}")
        if self.consistency_weight < 0 or self.group_code_steps < 0:
            raise ValueError("consistency_weight and group_code_steps must be >= 0")

    def identity(self) -> dict[str, Any]:
        """The hashed settings; fields added later are left out at their defaults, so tokenizers
        made before them keep their hashes."""
        settings = asdict(self)
        for key, default in _LATER_FIELDS.items():
            if settings[key] == default:
                settings.pop(key)
        return settings

    def multiplier(self) -> list[int]:
        levels = int(round(np.log2(self.patch_size)))
        if 2 ** levels != self.patch_size:
            raise ValueError(f"patch_size must be a power of two; got {self.patch_size}")
        mult = list(self.channel_multiplier) if self.channel_multiplier else [1] * (levels + 1)
        if len(mult) != levels + 1:
            raise ValueError(f"channel_multiplier needs {levels + 1} levels for a {self.patch_size}x downsample")
        if any(self.base_channels * m % 32 for m in mult):  # GroupNorm(32) is hard-coded in the port
            raise ValueError("base_channels x every multiplier must be a multiple of 32")
        return mult


#: settings added after tokenizers were first made, with the default that leaves training as it was
_LATER_FIELDS: dict[str, Any] = {"profile": "full", "consistency_weight": 0.0, "reseed_from": "random",
                                  "reseed_distance": 0.05, "group_code_steps": 0}


def vq_config(settings: ShapesVQSettings, projection_dim: int = 64):
    """The ``JanusVQVAEConfig`` for ``settings`` (``projection_dim`` = the LM hidden size)."""
    from transformers import JanusVQVAEConfig

    if settings.image_size % settings.patch_size:
        raise ValueError("image_size must be a multiple of patch_size")
    return JanusVQVAEConfig(
        embed_dim=settings.embed_dim, num_embeddings=settings.codebook_size,
        latent_channels=settings.latent_channels, base_channels=settings.base_channels,
        channel_multiplier=settings.multiplier(), num_res_blocks=settings.num_res_blocks,
        num_patches=settings.image_size // settings.patch_size, projection_dim=projection_dim,
        image_token_embed_dim=projection_dim, num_hidden_layers=2,
    )


# ------------------------------------------------------------------------------------------- data
def training_scene(rng: np.random.Generator, profile: WorldProfile | str | None = None) -> Scene:
    """A scene a shapes GenEval prompt of the profile asks for (1-4 objects, every tag, every colour)."""
    profile = get_profile(profile)
    return scene_for_metadata(random_geneval_prompt(rng, profile=profile), rng, profile=profile)


def to_pixels(images: Sequence[Any]) -> torch.Tensor:
    """PIL RGB images -> (B, 3, H, W) in [-1, 1], the Janus processor's mean = std = 0.5."""
    arrays = np.stack([np.asarray(image.convert("RGB"), dtype=np.float32) for image in images])
    return torch.from_numpy(arrays).permute(0, 3, 1, 2) / 127.5 - 1.0


def to_images(pixels: torch.Tensor) -> list[Any]:
    """(B, 3, H, W) decoder output -> uint8 RGB images with deepseek's clip((x+1)/2*255), truncated."""
    from PIL import Image

    values = ((pixels.detach().float().permute(0, 2, 3, 1) + 1) / 2 * 255).clamp(0, 255).to(torch.uint8)
    return [Image.fromarray(v.numpy()) for v in values]


def batch(rng: np.random.Generator, size: int, image_size: int,
          profile: WorldProfile | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixels and a foreground mask (pixels that differ from the bare background) of fresh scenes."""
    scenes = [training_scene(rng, profile) for _ in range(size)]
    pixels = to_pixels([render(s, image_size) for s in scenes])
    bare = to_pixels([render(Scene((), s.background, s.texture_seed), image_size) for s in scenes])
    foreground = ((pixels - bare).abs().amax(dim=1, keepdim=True) > 0.02).float()
    return pixels, foreground


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


def reconstruct(vq, images: Sequence[Any]) -> list[Any]:
    """Encode -> codes -> decode through the stock HF path, with Janus pixel conventions."""
    with torch.no_grad():
        codes = vq.encode(to_pixels(images)).image_tokens.view(len(images), -1)
        return to_images(vq.decode(codes))


# ---------------------------------------------------------------------------------------- accuracy
def scene_read_correctly(scene: Scene, detections: Sequence[Any], image_size: int,
                         min_score: float = 0.9, position_tolerance: float | None = 0.1) -> bool:
    """True when the detections scoring above ``min_score`` are exactly the scene's (shape, colour)
    multiset and, if ``position_tolerance`` is set, each lies within that fraction of the image of
    an unclaimed object of its kind (greedy, closest first). 0.9 is GenEval's counting threshold,
    the strictest one its rules apply."""
    kept = [d for d in detections if d.score > min_score]
    if Counter((d.label, d.color) for d in kept) != Counter((o.shape, o.color) for o in scene.objects):
        return False
    if position_tolerance is None:
        return True
    pairs = []
    for i, d in enumerate(kept):
        cx, cy = (d.box[0] + d.box[2]) / 2 / image_size, (d.box[1] + d.box[3]) / 2 / image_size
        for j, o in enumerate(scene.objects):
            if (d.label, d.color) == (o.shape, o.color):
                pairs.append((float(np.hypot(cx - o.cx, cy - o.cy)), i, j))
    used_d, used_o = set(), set()
    for dist, i, j in sorted(pairs):
        if i not in used_d and j not in used_o and dist <= position_tolerance:
            used_d.add(i)
            used_o.add(j)
    return len(used_d) == len(kept)


def reconstruction_accuracy(vq, scenes: Sequence[Scene], image_size: int = 64, min_score: float = 0.9,
                            position_tolerance: float | None = 0.1, batch_size: int = 64,
                            profile: str = "full", progress: bool = False) -> float:
    """Share of ``scenes`` whose VQ reconstruction the shapes detector (of ``profile``) reads correctly."""
    from shapes.detector import ShapesDetector

    detector = ShapesDetector(profile=profile)
    correct = 0
    bar = _progress_bar(progress, len(scenes), "tokenizer readback")
    for start in range(0, len(scenes), batch_size):
        chunk = scenes[start:start + batch_size]
        for scene, image in zip(chunk, reconstruct(vq, [render(s, image_size) for s in chunk])):
            correct += scene_read_correctly(scene, detector.detect_one(image), image_size,
                                            min_score, position_tolerance)
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    return correct / max(len(scenes), 1)


def _progress_bar(show: bool, total: int, desc: str):
    """A tqdm bar on stderr, or None."""
    if not show:
        return None
    import sys

    from tqdm import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, dynamic_ncols=True)


def held_out_scenes(count: int, seed: int = 10_000, profile: WorldProfile | str | None = None) -> list[Scene]:
    """Evaluation scenes from their own generator (training draws from ``seed`` of the settings)."""
    rng = np.random.default_rng(seed)
    return [training_scene(rng, profile) for _ in range(count)]


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
        bar = _progress_bar(progress, settings.steps, "tokenizer")
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


def save_vq(vq, folder: str | Path) -> None:
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in vq.state_dict().items()}, str(folder / WEIGHTS))
    (folder / CONFIG).write_text(vq.config.to_json_string(use_diff=False))


def load_vq(folder: str | Path):
    """The trained ``JanusVQVAE`` of an artifact folder (eval mode)."""
    from safetensors.torch import load_file
    from transformers import JanusVQVAE, JanusVQVAEConfig

    folder = Path(folder)
    config = JanusVQVAEConfig.from_dict(json.loads((folder / CONFIG).read_text()))
    vq = JanusVQVAE(config)
    vq.load_state_dict(load_file(str(folder / WEIGHTS)))
    return vq.eval()


def train_shapes_vq(out_dir: str | Path, image_size: int = 64, patch_size: int = 8, steps: int = 400,
                    batch_size: int = 8, seed: int = 0, eval_scenes: int = 200, log_every: int = 0,
                    device: str = "cpu", progress: bool = False, **overrides: Any) -> Path:
    """Train (or reuse) the shapes VQ tokenizer artifact in ``out_dir``; return ``out_dir``.

    ``overrides`` are further ``ShapesVQSettings`` fields. A folder whose manifest verifies and was
    made from the same settings is returned as is; one made from other settings is an error (delete
    it or pick another folder). ``eval_scenes`` held-out scenes are scored into ``metrics.json``.
    ``device`` (e.g. "cuda" for a recipe sweep) is recorded in the manifest's info, not in its inputs;
    ``progress`` shows progress bars (training, then the held-out readback) on stderr.
    """
    settings = ShapesVQSettings(image_size=image_size, patch_size=patch_size, steps=steps,
                                batch_size=batch_size, seed=seed, **overrides)
    get_profile(settings.profile)  # a known profile, before any training
    spec = {"trainer": TRAINER_VERSION, **settings.identity()}
    inputs = {"settings": hash_value(spec)}
    out = Path(out_dir)
    existing = read_manifest(out)
    if existing is not None and not verify(out):
        if existing.inputs != inputs:
            raise ValueError(f"{out} holds a VQ tokenizer trained with other settings ({existing.spec}); "
                             "use another folder")
        return out
    vq, metrics = train_vq_model(settings, log_every, device, progress)
    if eval_scenes:
        started = time.perf_counter()
        scenes = held_out_scenes(eval_scenes, profile=settings.profile)
        metrics["held_out_scenes"] = eval_scenes
        metrics["held_out_accuracy"] = reconstruction_accuracy(vq, scenes, image_size, profile=settings.profile,
                                                               progress=progress)
        metrics["held_out_accuracy_ignoring_position"] = reconstruction_accuracy(
            vq, scenes, image_size, position_tolerance=None, profile=settings.profile)
        metrics["eval_seconds"] = round(time.perf_counter() - started, 1)
    save_vq(vq, out)
    # timings go to the manifest's info only: the hashed files are the same for the same settings,
    # so a re-trained tokenizer gets the same content hash and the lineage downstream stays put
    timing = {key: metrics.pop(key) for key in ("train_seconds", "eval_seconds") if key in metrics}
    (out / METRICS).write_text(json.dumps(metrics, indent=2) + "\n")
    write_manifest(out, ARTIFACT_KIND, [WEIGHTS, CONFIG, METRICS], inputs=inputs, spec=spec,
                   info={"torch": torch.__version__, "threads": torch.get_num_threads(), "device": device,
                         **metrics, **timing})
    return out


# ------------------------------------------------------------------------------- tiny Janus + VQ
def tiny_janus_with_vq(path: str | Path, vq_dir: str | Path, words: Iterable[str] = (), seed: int = 0,
                       hidden: int = 64, layers: int = 2) -> Path:
    """A tiny Janus checkpoint (``build_tiny_janus``) whose ``model.vqmodel`` is the trained tokenizer.

    ``build_tiny_janus`` has no VQ override, so we build its folder (tokenizer, processor,
    generation config), then rebuild the model with the trained VQ config (and its image size,
    grid and token count), keep every built tensor whose shape still fits, and load the VQ weights.
    """
    from safetensors.torch import load_file
    from transformers import JanusConfig, JanusForConditionalGeneration, JanusVQVAEConfig

    from harness.models.tiny_janus import build_tiny_janus

    vq_dir = Path(vq_dir)
    trained = json.loads((vq_dir / CONFIG).read_text())
    grid = int(trained["num_patches"])
    levels = len(trained["channel_multiplier"]) - 1
    image_size = grid * 2 ** levels
    path = build_tiny_janus(path, words=words, seed=seed, image_size=image_size, patch_size=2 ** levels,
                            hidden=hidden, layers=layers)
    built = JanusForConditionalGeneration.from_pretrained(path)
    config = JanusConfig.from_pretrained(path)
    vq_fields = {k: v for k, v in trained.items() if k in JanusVQVAEConfig().to_dict()}
    config.vq_config = JanusVQVAEConfig(**{**vq_fields, "projection_dim": hidden,
                                           "image_token_embed_dim": hidden})
    config.vq_config.num_patches = grid
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = JanusForConditionalGeneration(config).eval()
    fresh = model.state_dict()
    kept = {k: v for k, v in built.state_dict().items()
            if not k.startswith("model.vqmodel.") and k in fresh and fresh[k].shape == v.shape}
    missing = [k for k in fresh if not k.startswith("model.vqmodel.") and k not in kept]
    with torch.no_grad():
        # A new codebook size changes the generation head's output: give it build_tiny_janus's
        # variance-preserving init rather than std 0.02 (near-uniform sampling).
        for name in missing:
            if name.startswith("model.generation_head.") and name.endswith("weight"):
                fresh[name].normal_(std=fresh[name].shape[1] ** -0.5)
            elif name.startswith("model.generation_head.") and name.endswith("bias"):
                fresh[name].zero_()
    model.load_state_dict({**fresh, **kept})
    model.model.vqmodel.load_state_dict(load_file(str(vq_dir / WEIGHTS)))
    model.generation_config = built.generation_config
    model.save_pretrained(path)
    return path


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m trainers.shapes_vq OUT [--steps N] [--set key=json ...]``: train, print metrics."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("out")
    parser.add_argument("--steps", type=int, default=ShapesVQSettings.steps)
    parser.add_argument("--set", action="append", default=[], help="a ShapesVQSettings field, key=json")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (recorded, not hashed)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    overrides = {key: json.loads(value) for key, value in (item.split("=", 1) for item in args.set)}
    if "channel_multiplier" in overrides:
        overrides["channel_multiplier"] = tuple(overrides["channel_multiplier"])
    out = train_shapes_vq(args.out, steps=args.steps, log_every=args.log_every, device=args.device, **overrides)
    print(json.dumps(read_manifest(out).info, indent=2))


if __name__ == "__main__":
    main()
