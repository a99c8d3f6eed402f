"""Judges that read results instead of computing them.

``precomputed`` detector: a detections file (one JSON line per image, see
``benchmarks/geneval/results_io.read_detections``) produced elsewhere, for example by the official
mmdet environment on a GPU machine. ``from-detections`` colour classifier: uses the ``color`` each
detection already carries (the precomputed file's stand-in for the CLIP prediction, or the shapes
detector's pixel colour) instead of classifying crops.
"""
from __future__ import annotations

from pathlib import PurePosixPath
from typing import Sequence

from PIL import Image

from harness.errors import HarnessError, InputError
from harness.hashing import hash_file
from harness.judges.base import Detection
from harness.registry import register


def _image_number(image: str, path: str, line: int) -> int:
    """``0003.png``, ``00003.png`` and ``samples/0003.png`` all name image 3 of their prompt."""
    stem = PurePosixPath(image).stem
    if not stem.isdigit():
        raise InputError(f"image name {image!r} does not start with the image number (e.g. 0003.png)", path, line)
    return int(stem)


@register("detector", "precomputed")
class PrecomputedDetections:
    """Look detections up by (prompt index, image file name) from a detections file."""

    version = "1"

    def __init__(self, path: str):
        from benchmarks.geneval.results_io import read_detections

        self.path = path
        self.judge_id = f"precomputed:{hash_file(path)}"
        self._by_image = {}
        for entry in read_detections(path):
            self._by_image[(entry.prompt_index, _image_number(entry.image, path, entry.line))] = entry.detections

    def detect(self, images: Sequence[Image.Image], sample_ids: Sequence[str] | None = None) -> list[list[Detection]]:
        if sample_ids is None:
            raise HarnessError("the precomputed detector needs sample ids to find each image's detections")
        found = []
        for sample_id in sample_ids:
            prompt, image = sample_id.split("/")
            key = (int(prompt), int(image))
            if key not in self._by_image:
                raise HarnessError(f"{self.path}: no detections for prompt {key[0]}, image {key[1]}")
            found.append(self._by_image[key])
        return found


@register("color_classifier", "from-detections")
class ColorFromDetections:
    """The colour the detector reported for each object."""

    version = "1"
    judge_id = "from-detections"

    def classify(self, image: Image.Image, objects: Sequence[Detection], class_name: str,
                 colors: Sequence[str]) -> list[str]:
        missing = [obj for obj in objects if obj.color is None]
        if missing:
            raise HarnessError(f"a detection of {class_name!r} has no colour; the 'from-detections' "
                               "colour classifier needs every detection to carry one")
        return [obj.color for obj in objects]
