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
from shapes.world import Scene, render, scene_for_metadata

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
def training_scene(rng: np.random.Generator) -> Scene:
    """A scene a shapes GenEval prompt asks for (1-4 objects, every tag, every colour)."""
    return scene_for_metadata(random_geneval_prompt(rng), rng)


def to_pixels(images: Sequence[Any]) -> torch.Tensor:
    """PIL RGB images -> (B, 3, H, W) in [-1, 1], the Janus processor's mean = std = 0.5."""
    arrays = np.stack([np.asarray(image.convert("RGB"), dtype=np.float32) for image in images])
    return torch.from_numpy(arrays).permute(0, 3, 1, 2) / 127.5 - 1.0


def to_images(pixels: torch.Tensor) -> list[Any]:
    """(B, 3, H, W) decoder output -> uint8 RGB images with deepseek's clip((x+1)/2*255), truncated."""
    from PIL import Image

    values = ((pixels.detach().float().permute(0, 2, 3, 1) + 1) / 2 * 255).clamp(0, 255).to(torch.uint8)
    return [Image.fromarray(v.numpy()) for v in values]


def batch(rng: np.random.Generator, size: int, image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixels and a foreground mask (pixels that differ from the bare background) of fresh scenes."""
    scenes = [training_scene(rng) for _ in range(size)]
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


def _quantise(vq, pixels: torch.Tensor, continuous: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Straight-through quantised latents, the codebook + commitment loss parts, and the code ids.
    ``continuous``: pass the normalised latents through unquantised (autoencoder warm-up)."""
    latents = vq.quant_conv(vq.encoder(pixels))
    b, d, h, w = latents.shape
    z = F.normalize(latents.permute(0, 2, 3, 1).reshape(-1, d), dim=-1)
    codebook = F.normalize(vq.quantize.embedding.weight, dim=-1)
    ids = (z.detach() @ codebook.T).argmax(dim=1)
    q = codebook[ids]
    codebook_loss = F.mse_loss(q, z.detach())
    commitment = F.mse_loss(z, q.detach())
    q_st = z if continuous else z + (q - z).detach()  # decoder gradient reaches the encoder unchanged
    return q_st.view(b, h, w, d).permute(0, 3, 1, 2), torch.stack([codebook_loss, commitment]), ids


def _reseed_dead_codes(vq, usage: torch.Tensor, pixels: torch.Tensor, generator: torch.Generator) -> int:
    """Point codes unused since the last check at encoder outputs of this batch; return how many."""
    dead = torch.nonzero(usage == 0).flatten()
    if len(dead) == 0:
        return 0
    with torch.no_grad():
        latents = vq.quant_conv(vq.encoder(pixels))
        z = F.normalize(latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1]), dim=-1)
        pick = torch.randint(len(z), (len(dead),), generator=generator).to(z.device)  # CPU draws: same on any device
        noise = 0.01 * torch.randn(len(dead), z.shape[1], generator=generator).to(z.device)
        vq.quantize.embedding.weight[dead] = F.normalize(z[pick] + noise, dim=-1)
    return len(dead)


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
                            position_tolerance: float | None = 0.1, batch_size: int = 64) -> float:
    """Share of ``scenes`` whose VQ reconstruction the shapes detector reads correctly."""
    from shapes.detector import ShapesDetector

    detector = ShapesDetector()
    correct = 0
    for start in range(0, len(scenes), batch_size):
        chunk = scenes[start:start + batch_size]
        for scene, image in zip(chunk, reconstruct(vq, [render(s, image_size) for s in chunk])):
            correct += scene_read_correctly(scene, detector.detect_one(image), image_size,
                                            min_score, position_tolerance)
    return correct / max(len(scenes), 1)


def held_out_scenes(count: int, seed: int = 10_000) -> list[Scene]:
    """Evaluation scenes from their own generator (training draws from ``seed`` of the settings)."""
    rng = np.random.default_rng(seed)
    return [training_scene(rng) for _ in range(count)]


# ---------------------------------------------------------------------------------------- training
def train_vq_model(settings: ShapesVQSettings, log_every: int = 0, device: str = "cpu"):
    """Train a ``JanusVQVAE`` on ``device``; return it (on the CPU, eval mode, unit-norm codebook) and
    the training metrics. Scenes and random draws are made on the CPU, so only float rounding differs
    between devices."""
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
        for step in range(settings.steps):
            pixels, foreground = (t.to(device) for t in batch(rng, settings.batch_size, settings.image_size))
            warming_up = step < settings.autoencoder_steps
            if step == settings.autoencoder_steps and step:  # every code starts at a latent of this batch
                usage.zero_()
                reseeded += _reseed_dead_codes(vq, usage, pixels, generator)
            quantised, vq_terms, ids = _quantise(vq, pixels, continuous=warming_up)
            decoded = vq.decoder(vq.post_quant_conv(quantised))
            weight = 1.0 + settings.foreground_weight * foreground
            if settings.edge_weight:
                band = F.max_pool2d(foreground, 3, 1, 1) + F.max_pool2d(-foreground, 3, 1, 1)
                weight = weight + settings.edge_weight * band
            error = (decoded - pixels).abs() if settings.reconstruction == "l1" else (decoded - pixels) ** 2
            reconstruction = (weight * error).mean() / weight.mean()
            loss = reconstruction if warming_up else reconstruction + vq_terms[0] + settings.beta * vq_terms[1]
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            usage += torch.bincount(ids, minlength=settings.codebook_size)
            history.append(float(reconstruction.detach()))
            if settings.reseed_every and (step + 1) % settings.reseed_every == 0 and step + 1 < settings.steps:
                reseeded += _reseed_dead_codes(vq, usage, pixels, generator)
                usage.zero_()
            if log_every and (step + 1) % log_every == 0:
                print(f"step {step + 1} rec {np.mean(history[-log_every:]):.4f} "
                      f"used {int((usage > 0).sum())} {time.perf_counter() - started:.0f}s", flush=True)
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
                    device: str = "cpu", **overrides: Any) -> Path:
    """Train (or reuse) the shapes VQ tokenizer artifact in ``out_dir``; return ``out_dir``.

    ``overrides`` are further ``ShapesVQSettings`` fields. A folder whose manifest verifies and was
    made from the same settings is returned as is; one made from other settings is an error (delete
    it or pick another folder). ``eval_scenes`` held-out scenes are scored into ``metrics.json``.
    ``device`` (e.g. "cuda" for a recipe sweep) is recorded in the manifest's info, not in its inputs.
    """
    settings = ShapesVQSettings(image_size=image_size, patch_size=patch_size, steps=steps,
                                batch_size=batch_size, seed=seed, **overrides)
    spec = {"trainer": TRAINER_VERSION, **asdict(settings)}
    inputs = {"settings": hash_value(spec)}
    out = Path(out_dir)
    existing = read_manifest(out)
    if existing is not None and not verify(out):
        if existing.inputs != inputs:
            raise ValueError(f"{out} holds a VQ tokenizer trained with other settings ({existing.spec}); "
                             "use another folder")
        return out
    vq, metrics = train_vq_model(settings, log_every, device)
    if eval_scenes:
        started = time.perf_counter()
        scenes = held_out_scenes(eval_scenes)
        metrics["held_out_scenes"] = eval_scenes
        metrics["held_out_accuracy"] = reconstruction_accuracy(vq, scenes, image_size)
        metrics["held_out_accuracy_ignoring_position"] = reconstruction_accuracy(
            vq, scenes, image_size, position_tolerance=None)
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
