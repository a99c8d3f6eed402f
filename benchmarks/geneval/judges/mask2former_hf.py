"""A GenEval-style detector on Hugging Face transformers' Mask2Former (no mmdet/mmcv needed).

This is a convenience alternative, **not** the official GenEval detector. The official one is the
mmdetection 2.x Mask2Former Swin-S checkpoint (``mmdet-mask2former``); numbers from this detector are
close in spirit but not identical, because:

- weights: ``facebook/mask2former-swin-small-coco-instance`` is the original Detectron2 model converted
  to transformers, while GenEval uses mmdetection's own training run of the same architecture;
- pre-processing: we resize like mmdet's test pipeline (shorter side 800, longer side at most 1333),
  but with torchvision instead of OpenCV interpolation, and transformers then stretches each side up to
  a multiple of 32 where mmdet pads it;
- post-processing: transformers' ``post_process_instance_segmentation`` thresholds mask logits at a
  fixed 384x384 size and resizes the binary masks to the image with nearest-neighbour, where mmdet
  resizes the logits bilinearly to the image first. Queries with an empty mask are dropped (mmdet keeps
  them with a zero box and score 0, below every GenEval threshold); scores are rounded to 6 decimals.

Boxes are the extent of each mask (``x2 = last column + 1``), as mmdet's ``mask2bbox``; labels are the
80 GenEval class names (``benchmarks/geneval/data/object_names.txt``).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from harness.devices import resolve_device
from harness.errors import HarnessError
from harness.judges.base import Detection
from harness.registry import register

VERSION = 1
DEFAULT_CHECKPOINT = "facebook/mask2former-swin-small-coco-instance"

#: mmdet's test-time resize for the GenEval config; user ``processor_kwargs`` override it
MMDET_TEST_RESIZE = {"size": {"shortest_edge": 800, "longest_edge": 1333}, "size_divisor": 32}

#: spellings used by COCO-trained checkpoints (HF, VOC-style) -> GenEval's class names
LABEL_ALIASES = {
    "mouse": "computer mouse", "remote": "tv remote", "keyboard": "computer keyboard",
    "tvmonitor": "tv", "tv monitor": "tv", "motorbike": "motorcycle", "aeroplane": "airplane",
    "sofa": "couch", "pottedplant": "potted plant", "diningtable": "dining table",
    "hair dryer": "hair drier", "cellphone": "cell phone",
}


def load_geneval_class_names(path: str | os.PathLike | None = None) -> list[str]:
    """The detector class names, one per line in class-index order (default: GenEval's 80)."""
    from benchmarks.geneval.data import load_class_names  # lazy: keeps the harness core light
    return load_class_names(path)


def normalise_label(raw: str, known: Sequence[str]) -> str:
    """Map a checkpoint's label (``"mouse"``, ``"dining-table"``) to a GenEval class name, or fail."""
    key = " ".join(raw.strip().lower().replace("_", " ").replace("-", " ").split())
    key = LABEL_ALIASES.get(key, key)
    if key not in known:
        raise HarnessError(f"detector label {raw!r} is not a GenEval class name; pass class_names_file= "
                           f"with one class name per line in the model's label order")
    return key


def box_from_mask(mask: np.ndarray) -> list[float]:
    """``[x1, y1, x2, y2]`` of the mask's pixels, right/bottom edges exclusive; zeros if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)]


def batches_by_key(keys: Sequence[Any], batch_size: int) -> list[list[int]]:
    """Indices grouped by key (an image's size), at most ``batch_size`` each.

    Mixed sizes would be padded to a common size, and the padding changes the features: a result
    would depend on its batch-mates. Same-size images need no padding.
    """
    groups: dict[Any, list[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault(key, []).append(index)
    return [members[start:start + batch_size] for members in groups.values()
            for start in range(0, len(members), batch_size)]


@register("detector", "mask2former-hf")
class HFMask2FormerDetector:
    """Instance segmentation with ``Mask2FormerForUniversalSegmentation``.

    ``path`` is a hub id or a local folder (``save_pretrained`` layout with the image processor's
    ``preprocessor_config.json``). ``config`` instead builds a model from a ``Mask2FormerConfig``
    dict with random weights (tests). ``score_threshold`` 0 keeps everything: GenEval's rules
    threshold later. ``processor_kwargs`` override the image processor's settings (resize, ...).
    """

    def __init__(self, path: str = DEFAULT_CHECKPOINT, device: str = "auto",
                 class_names_file: str | None = None, config: dict | None = None,
                 score_threshold: float = 0.0, batch_size: int = 4,
                 processor_kwargs: dict | None = None):
        self.path, self.config = path, config
        self.device = resolve_device(device)
        self.class_names_file = class_names_file
        self.score_threshold, self.batch_size = float(score_threshold), int(batch_size)
        self.processor_kwargs = {**MMDET_TEST_RESIZE, **(processor_kwargs or {})}
        self._model: Any = None
        self._processor: Any = None
        self.labels: list[str] = []

        if config is not None:
            source = "config-" + hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
        else:
            source = Path(path).name if os.path.isdir(path) else path
        resize = self.processor_kwargs.get("size")
        self.judge_id = f"mask2former-hf:{source}:size={json.dumps(resize, sort_keys=True)}:v{VERSION}"

    # ----------------------------------------------------------------------------- loading
    def _ensure_loaded(self) -> None:
        if self._model is not None:
            return
        from transformers import (Mask2FormerConfig, Mask2FormerForUniversalSegmentation,
                                  Mask2FormerImageProcessor)

        if self.config is not None:
            model = Mask2FormerForUniversalSegmentation(Mask2FormerConfig(**self.config))
            processor = Mask2FormerImageProcessor(**self.processor_kwargs)
        else:
            try:
                model = Mask2FormerForUniversalSegmentation.from_pretrained(self.path)
                processor = Mask2FormerImageProcessor.from_pretrained(self.path, **self.processor_kwargs)
            except (OSError, ValueError) as exc:
                raise HarnessError(
                    f"could not load the Mask2Former checkpoint {self.path!r}: it is not a local folder and "
                    f"not in the Hugging Face cache, and it cannot be downloaded (offline? HF_HUB_OFFLINE="
                    f"{os.environ.get('HF_HUB_OFFLINE')}). Download it once with network access "
                    f"(`hf download {self.path}`) or pass path='/local/folder' holding config.json, "
                    f"the weights and preprocessor_config.json. Cause: {exc}") from exc
        self.labels = self._label_names(model.config)
        self._model = model.to(self.device).eval()
        self._processor = processor

    def _label_names(self, config: Any) -> list[str]:
        """GenEval class name of every model class index."""
        known = load_geneval_class_names()
        if self.class_names_file is not None:
            names = load_geneval_class_names(self.class_names_file)
            if len(names) != config.num_labels:
                raise HarnessError(f"{self.class_names_file}: {len(names)} class names for a model with "
                                   f"{config.num_labels} classes")
            return names
        names = [normalise_label(config.id2label[i], known) for i in range(config.num_labels)]
        if len(set(names)) != len(names):
            raise HarnessError("detector labels map to duplicate GenEval class names; pass class_names_file=")
        return names

    # ----------------------------------------------------------------------------- detecting
    def detect(self, images: Sequence[Image.Image],
               sample_ids: Sequence[str] | None = None) -> list[list[Detection]]:
        """Every detection per image, masks at the image's resolution, boxes from the masks."""
        self._ensure_loaded()
        results: dict[int, list[Detection]] = {}
        for batch in batches_by_key([image.size for image in images], self.batch_size):
            chunk = [images[i].convert("RGB") for i in batch]
            inputs = self._processor(images=chunk, return_tensors="pt")
            with torch.inference_mode():
                outputs = self._model(pixel_values=inputs["pixel_values"].to(self.device),
                                      pixel_mask=inputs["pixel_mask"].to(self.device))
                processed = self._processor.post_process_instance_segmentation(
                    outputs, threshold=self.score_threshold, return_binary_maps=True,
                    target_sizes=[(image.height, image.width) for image in chunk])
            for i, result in zip(batch, processed):
                results[i] = self._detections(result)
        return [results[i] for i in range(len(images))]

    def _detections(self, result: dict) -> list[Detection]:
        detections = []
        for k, info in enumerate(result["segments_info"]):
            mask = result["segmentation"][k].bool().cpu().numpy()
            detections.append(Detection(label=self.labels[info["label_id"]], score=float(info["score"]),
                                        box=box_from_mask(mask), mask=mask))
        return detections
