"""GenEval's official detector without mmcv: the mmdet checkpoint, run by transformers' Mask2Former.

``geneval-mask2former`` reads the checkpoint file that GenEval's ``download_models.sh`` fetches
(``mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco.pth``, published by OpenMMLab as ``..._20220504_001756
-743b7d99.pth``; its sha256 starts with ``743b7d99``), converts its weights in memory
(``mask2former_convert.py``) and runs mmdet 2.x's test-time pre- and post-processing step for step
(``mask2former_pipeline.py``). The output is what GenEval's ``evaluate_images.py`` reads from
``inference_detector``: per class, boxes with scores and masks at the image's size.

Equality with the official mmdet run is tested on random weights (tests/test_geneval_mask2former.py,
fixtures made by mmdet itself); docs/GENEVAL.md says what remains different on a GPU.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from benchmarks.geneval.benchmark import OFFICIAL_CHECKPOINT_SHA256
from benchmarks.geneval.judges.mask2former_convert import hf_model_from_mmdet
from benchmarks.geneval.judges.mask2former_pipeline import postprocess, preprocess
from benchmarks.geneval.judges.mask2former_random import SHAPES, SWIN_S
from benchmarks.geneval.judges.mask2former_hf import batches_by_key, load_geneval_class_names
from benchmarks.geneval.judges.mmdet_mask2former import CHECKPOINT_URL, CONFIG_NAME, detections_from_mmdet_result
from harness.devices import resolve_device
from harness.errors import HarnessError
from harness.hashing import hash_file
from harness.judges.base import Detection
from harness.registry import register

VERSION = 1
#: the first 8 hex digits of the official checkpoint's sha256 (OpenMMLab names files by them); GenEval's
#: departures_from_official flags a ``sha256`` parameter that checks anything else, or nothing
OFFICIAL_SHA256_PREFIX = OFFICIAL_CHECKPOINT_SHA256


def load_mmdet_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The ``state_dict`` of an mmdet checkpoint, loaded without running pickled code.

    The checkpoint's ``meta`` may hold numpy scalars (mmcv saves the run's seed as ``np.int64``), so
    numpy's scalar and dtype reconstructors are allowed; nothing else outside torch's safe set is.
    """
    allowed: list[Any] = [np.dtype, np.ndarray]
    core = getattr(np, "_core", None) or np.core
    allowed += [(core.multiarray.scalar, "numpy.core.multiarray.scalar"), core.multiarray.scalar,
                (core.multiarray._reconstruct, "numpy.core.multiarray._reconstruct"), core.multiarray._reconstruct]
    allowed += [type(np.dtype(name)) for name in ("int64", "int32", "float64", "float32", "bool")]
    try:
        with torch.serialization.safe_globals(allowed):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, truncated download, or a pickle that is not a checkpoint
        raise HarnessError(f"{path}: cannot be read as an mmdet checkpoint ({type(exc).__name__}: {exc})") from exc
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise HarnessError(f"{path}: no state_dict of tensors in this file; is it the mmdet checkpoint?")
    return state


@register("detector", "geneval-mask2former")
class GenEvalMask2FormerDetector:
    """The official GenEval detector's weights and test-time steps, on transformers (no mmcv).

    ``checkpoint``: the official ``.pth`` file. ``shapes``: ``swin-s`` (the official network) or
    ``tiny`` (tests). ``sha256``: the hash (or its leading digits) the file must have; the official
    prefix is checked by default for ``swin-s``, ``""`` skips the check. ``batch_size``: images of the
    same size run together (a result never depends on its batch-mates: no padding between them).
    """

    def __init__(self, checkpoint: str | None = None, device: str = "auto", shapes: str = "swin-s",
                 sha256: str | None = None, class_names_file: str | None = None, batch_size: int = 1):
        if shapes not in SHAPES:
            raise HarnessError(f"geneval-mask2former: unknown shapes {shapes!r}; known: {sorted(SHAPES)}")
        self.checkpoint, self.shapes = checkpoint, SHAPES[shapes]
        self.device = resolve_device(device)
        self.expected_sha256 = (OFFICIAL_SHA256_PREFIX if self.shapes is SWIN_S else "") if sha256 is None else sha256
        self.batch_size = max(1, int(batch_size))
        self.class_names = load_geneval_class_names(class_names_file)
        if len(self.class_names) != self.shapes.num_classes:
            raise HarnessError(f"{len(self.class_names)} class names for a detector of {self.shapes.num_classes} classes")
        self._model: Any = None
        weights = Path(checkpoint).name if checkpoint else "missing-checkpoint"
        self.judge_id = f"geneval-mask2former:{self.shapes.name}:{weights}:v{VERSION}"

    def _ensure_loaded(self) -> None:
        if self._model is not None:
            return
        if not self.checkpoint or not os.path.isfile(self.checkpoint):
            raise HarnessError(f"geneval-mask2former: checkpoint not found: {self.checkpoint!r}. Download "
                               f"{CHECKPOINT_URL} (as GenEval's download_models.sh does) and pass "
                               f"checkpoint='/path/to/{CONFIG_NAME}.pth'")
        if self.expected_sha256:
            digest = hash_file(self.checkpoint, length=64)
            if not digest.startswith(self.expected_sha256.lower()):
                raise HarnessError(f"{self.checkpoint}: sha256 {digest[:16]}... is not the official GenEval "
                                   f"checkpoint's ({self.expected_sha256}...): a partial or different download? "
                                   f"Download it again from {CHECKPOINT_URL}")
        state = load_mmdet_state_dict(self.checkpoint)
        self._model = hf_model_from_mmdet(state, self.shapes).to(self.device)

    def detect(self, images: Sequence[Image.Image],
               sample_ids: Sequence[str] | None = None) -> list[list[Detection]]:
        """Every detection per image (GenEval's rules threshold and sort them)."""
        self._ensure_loaded()
        prepared = [preprocess(image) for image in images]
        results: dict[int, list[Detection]] = {}
        for batch in batches_by_key([meta.padded for _, meta in prepared], self.batch_size):
            pixels = torch.from_numpy(np.stack([prepared[i][0] for i in batch])).to(self.device)
            with torch.inference_mode():
                outputs = self._model(pixel_values=pixels)
            for row, index in enumerate(batch):
                raw = postprocess(outputs.class_queries_logits[row].float(), outputs.masks_queries_logits[row].float(),
                                  prepared[index][1], self.shapes.num_classes)
                results[index] = detections_from_mmdet_result(raw, self.class_names)
        return [results[i] for i in range(len(images))]
