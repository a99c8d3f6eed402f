"""The official GenEval detector: mmdetection 2.x Mask2Former Swin-S (PROTOCOLS.md 1.3).

mmdet 2.x needs mmcv-full 1.7.x, which has no wheels for recent torch/CUDA and must be built from
source, so mmdet is an optional extra imported only when this detector is first used. The conversion
from mmdet's output to ``Detection`` objects is a plain function, testable without mmdet.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from harness.devices import resolve_device
from harness.errors import HarnessError
from harness.judges.base import Detection
from benchmarks.geneval.judges.mask2former_hf import load_geneval_class_names
from harness.registry import register

VERSION = 1
CONFIG_NAME = "mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco"
CHECKPOINT_URL = ("https://download.openmmlab.com/mmdetection/v2.0/mask2former/" + CONFIG_NAME + "/"
                  + CONFIG_NAME + "_20220504_001756-743b7d99.pth")

INSTALL_HINT = ("install mmdet 2.28 and mmcv-full 1.7 (it must be built from source for recent torch: "
                "bash benchmarks/geneval/judges/build_mmdet.sh \"$VIRTUAL_ENV\", 12-40 minutes on 2 cores), or use "
                "`geneval-mask2former`: the same official checkpoint on transformers, no mmcv needed")


def _as_bool_mask(mask: Any) -> np.ndarray:
    """A boolean (H, W) array from a raw mask or a COCO run-length-encoded one."""
    if isinstance(mask, dict) and "counts" in mask:
        from pycocotools import mask as mask_utils  # only RLE-encoding detectors need it
        return mask_utils.decode(mask).astype(bool)
    return np.asarray(mask).astype(bool)


def detections_from_mmdet_result(result: Any, class_names: Sequence[str]) -> list[Detection]:
    """Convert one image's mmdet 2.x result to ``Detection`` objects.

    ``result`` is ``(bbox_result, segm_result)`` or a bare ``bbox_result`` (or panoptic-style
    ``{"ins_results": ...}``); ``bbox_result[c]`` is a (k, 5) array ``[x1, y1, x2, y2, score]`` of
    class ``c`` and ``segm_result[c]`` a list of k masks. Detections come out class by class, in the
    detector's order within a class (rules sort by score themselves).
    """
    if isinstance(result, dict):
        result = result["ins_results"]
    # the official evaluate_images.py reads the tuple the same way
    bbox_result = result[0] if isinstance(result, tuple) else result
    segm_result = result[1] if isinstance(result, tuple) and len(result) > 1 else None
    if len(bbox_result) != len(class_names):
        raise HarnessError(f"detector returned {len(bbox_result)} classes but {len(class_names)} class "
                           f"names were given; check class_names_file")
    detections = []
    for index, name in enumerate(class_names):
        boxes = np.asarray(bbox_result[index], dtype=np.float64).reshape(-1, 5)
        masks = None if segm_result is None else segm_result[index]
        if masks is not None and len(masks) != len(boxes):
            raise HarnessError(f"class {name!r}: {len(boxes)} boxes but {len(masks)} masks")
        for j, row in enumerate(boxes):
            detections.append(Detection(label=name, score=float(row[4]), box=[float(v) for v in row[:4]],
                                        mask=None if masks is None else _as_bool_mask(masks[j])))
    return detections


def default_config_path() -> Path:
    """The config inside the installed mmdet: ``<mmdet>/../configs`` (source install, as the official
    script expects) or ``<mmdet>/.mim/configs`` (pip wheel)."""
    import mmdet
    package = Path(mmdet.__file__).parent
    candidates = [package.parent / "configs", package / ".mim" / "configs"]
    for folder in candidates:
        path = folder / "mask2former" / f"{CONFIG_NAME}.py"
        if path.is_file():
            return path
    raise HarnessError(f"{CONFIG_NAME}.py not found under {' or '.join(str(c) for c in candidates)}; "
                       f"pass config='/path/to/{CONFIG_NAME}.py'")


@register("detector", "mmdet-mask2former")
class MMDetMask2FormerDetector:
    """GenEval's detector as the official script runs it (``init_detector`` / ``inference_detector``).

    ``checkpoint`` is the ``.pth`` file that GenEval's ``download_models.sh`` saves as
    ``<model-path>/mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco.pth``.
    """

    def __init__(self, config: str | None = None, checkpoint: str | None = None, device: str = "auto",
                 class_names_file: str | None = None):
        self.config, self.checkpoint = config, checkpoint
        self.device = resolve_device(device)
        self.class_names = load_geneval_class_names(class_names_file)
        self._model: Any = None
        weights = Path(checkpoint).name if checkpoint else "missing-checkpoint"
        config_name = Path(config).stem if config else CONFIG_NAME
        self.judge_id = f"mmdet-mask2former:{config_name}:{weights}:v{VERSION}"

    def _ensure_loaded(self) -> None:
        if self._model is not None:
            return
        try:
            from mmdet.apis import init_detector
        except ImportError as exc:
            raise HarnessError(f"the mmdet-mask2former detector needs mmdet 2.x ({exc}): {INSTALL_HINT}") from exc
        if not self.checkpoint or not os.path.isfile(self.checkpoint):
            raise HarnessError(f"mmdet checkpoint not found: {self.checkpoint!r}. Download {CHECKPOINT_URL} "
                               f"and pass checkpoint='/path/to/{CONFIG_NAME}.pth'")
        config = self.config or str(default_config_path())
        device = f"cuda:{self.device.index or 0}" if self.device.type == "cuda" else str(self.device)
        self._model = init_detector(config, self.checkpoint, device=device)

    def detect(self, images: Sequence[Image.Image],
               sample_ids: Sequence[str] | None = None) -> list[list[Detection]]:
        """Every detection per image; images go to mmdet as BGR arrays, as ``cv2`` would load them."""
        self._ensure_loaded()
        from mmdet.apis import inference_detector

        results = []
        for image in images:  # one at a time, like the official script
            bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
            results.append(detections_from_mmdet_result(inference_detector(self._model, bgr), self.class_names))
        return results
