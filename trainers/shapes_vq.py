"""A tiny VQ image tokenizer for the shapes world, trained by the project itself (a cached artifact).

A randomly initialised ``JanusVQVAE`` cannot draw, so a tiny Janus trained on shapes data would still
score zero. This module trains the transformers ``JanusVQVAE`` on rendered shapes-world scenes (the
distribution the shapes GenEval prompts produce) until the procedural detector reads its
reconstructions back, and builds a tiny Janus checkpoint around it.

The steps live beside this module: ``shapes_vq_settings.py`` (the hashed settings),
``shapes_vq_data.py`` (scenes, pixels, readback accuracy) and ``shapes_vq_training.py`` (the
quantiser and the training loop, docs/JANUS.md "Training a tiny VQ tokenizer"). This module makes
the artifact: train or reuse, save and load, and the tiny Janus checkpoint built around it.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from harness.artifacts import read_manifest, verify, write_manifest
from harness.hashing import hash_value
from shapes.world import get_profile
from trainers.shapes_vq_data import held_out_scenes, reconstruction_accuracy
# re-exported: tests import these from trainers.shapes_vq
from trainers.shapes_vq_data import reconstruct, scene_read_correctly, to_pixels, training_scene  # noqa: F401
from trainers.shapes_vq_settings import ShapesVQSettings
from trainers.shapes_vq_settings import vq_config  # noqa: F401 - re-exported: tests import it from here
from trainers.shapes_vq_training import train_vq_model

ARTIFACT_KIND = "vq-tokenizer"
TRAINER_VERSION = "shapes-vq/1"
WEIGHTS, CONFIG, METRICS = "vq.safetensors", "vq_config.json", "metrics.json"


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
