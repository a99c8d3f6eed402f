"""Shapes-world scenes and pixels for the VQ tokenizer: training scenes and batches, the Janus pixel
conventions, and how well the shapes detector reads a tokenizer's reconstructions back."""
from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import numpy as np
import torch

from shapes.prompts import random_geneval_prompt
from shapes.world import Scene, WorldProfile, get_profile, render, scene_for_metadata


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
    bar = progress_bar(progress, len(scenes), "tokenizer readback")
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


def progress_bar(show: bool, total: int, desc: str):
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
