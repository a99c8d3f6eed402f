"""mmdetection 2.x's test-time steps around GenEval's Mask2Former, rewritten step for step.

Before the network (the config's ``test_pipeline``), on the BGR ``uint8`` array ``cv2.imread`` gives:
1. ``Resize(img_scale=(1333, 800), keep_ratio=True)``: scale factor ``min(1333 / long side, 800 /
   short side)``, new size ``int(side * factor + 0.5)``, ``cv2.resize`` with ``INTER_LINEAR``;
2. ``Pad(size_divisor=32, pad_val=dict(img=(128, 128, 128)))``: bottom and right, to multiples of 32,
   *before* normalising;
3. ``Normalize(mean, std, to_rgb=True)``: float32, BGR -> RGB, subtract the mean, multiply by 1/std,
   with OpenCV's arithmetic as mmcv calls it (so the floats round the same way).

After it (``Mask2FormerHead.simple_test`` and ``MaskFormerFusionHead.instance_postprocess``): mask
logits upsampled bilinearly to the padded size, cropped to the resized image, upsampled to the
original size; class scores softmaxed without the no-object class; the top 100 of queries x classes
(``sorted=False``); masks where the logit is positive; a detection's score is its class score times the
mean sigmoid inside its mask; its box is the mask's extent (right/bottom exclusive, zeros when empty);
detections grouped per class as ``bbox2result`` does.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from harness.errors import HarnessError

IMG_SCALE = (1333, 800)
SIZE_DIVISOR = 32
PAD_VALUE = (128, 128, 128)
MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)
MAX_PER_IMAGE = 100


def _cv2():
    try:
        import cv2
    except ImportError as exc:
        raise HarnessError("the geneval-mask2former detector needs OpenCV for mmdet's exact resize: "
                           "pip install opencv-python-headless (or the project's `geneval` extra)") from exc
    return cv2


@dataclass(frozen=True)
class ImageMeta:
    """The three sizes mmdet tracks: original, resized and padded (height, width)."""
    original: tuple[int, int]
    resized: tuple[int, int]
    padded: tuple[int, int]


def rescaled_size(width: int, height: int, scale: tuple[int, int] = IMG_SCALE) -> tuple[int, int]:
    """mmcv's ``rescale_size`` with ``keep_ratio``: the (width, height) that fits ``scale``."""
    factor = min(max(scale) / max(height, width), min(scale) / min(height, width))
    return int(width * float(factor) + 0.5), int(height * float(factor) + 0.5)


def preprocess(image: Image.Image) -> tuple[np.ndarray, ImageMeta]:
    """The network's input (3, H, W) float32 RGB, and the sizes, from a PIL image."""
    cv2 = _cv2()
    bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
    height, width = bgr.shape[:2]
    new_width, new_height = rescaled_size(width, height)
    resized = cv2.resize(bgr, (new_width, new_height), interpolation=cv2.INTER_LINEAR)
    pad_height = int(np.ceil(new_height / SIZE_DIVISOR)) * SIZE_DIVISOR
    pad_width = int(np.ceil(new_width / SIZE_DIVISOR)) * SIZE_DIVISOR
    padded = cv2.copyMakeBorder(resized, 0, pad_height - new_height, 0, pad_width - new_width,
                                cv2.BORDER_CONSTANT, value=PAD_VALUE)
    pixels = padded.astype(np.float32)
    # mmcv.imnormalize_: the mean and std are float32 in the config, then float64 for OpenCV
    mean = np.float64(np.array(MEAN, dtype=np.float32).reshape(1, -1))
    std_inverse = 1 / np.float64(np.array(STD, dtype=np.float32).reshape(1, -1))
    cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB, pixels)
    cv2.subtract(pixels, mean, pixels)
    cv2.multiply(pixels, std_inverse, pixels)
    meta = ImageMeta(original=(height, width), resized=(new_height, new_width), padded=(pad_height, pad_width))
    return np.ascontiguousarray(pixels.transpose(2, 0, 1)), meta


def mask_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """mmdet's ``mask2bbox``: (N, 4) float32 ``[x1, y1, x2 + 1, y2 + 1]``, zeros for an empty mask."""
    boxes = masks.new_zeros((masks.shape[0], 4), dtype=torch.float32)
    columns, rows = masks.any(dim=1), masks.any(dim=2)
    for i in range(masks.shape[0]):
        xs, ys = torch.where(columns[i])[0], torch.where(rows[i])[0]
        if len(xs) and len(ys):
            boxes[i] = torch.tensor([xs[0], ys[0], xs[-1] + 1, ys[-1] + 1], dtype=torch.float32)
    return boxes


def postprocess(class_logits: torch.Tensor, mask_logits: torch.Tensor, meta: ImageMeta,
                num_classes: int) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    """One image's ``(bbox_result, segm_result)`` in mmdet 2.x's format, from its raw head outputs.

    ``class_logits`` (queries, classes + 1) and ``mask_logits`` (queries, h, w) at a quarter of the
    padded size. ``bbox_result[c]`` is a (k, 5) float32 array ``[x1, y1, x2, y2, score]``,
    ``segm_result[c]`` a list of k boolean masks at the original size.
    """
    masks = F.interpolate(mask_logits[None], size=meta.padded, mode="bilinear", align_corners=False)[0]
    masks = masks[:, :meta.resized[0], :meta.resized[1]]
    masks = F.interpolate(masks[:, None], size=meta.original, mode="bilinear", align_corners=False)[:, 0]

    queries = class_logits.shape[0]
    scores = F.softmax(class_logits, dim=-1)[:, :-1]
    labels = torch.arange(num_classes, device=scores.device).unsqueeze(0).repeat(queries, 1).flatten(0, 1)
    top_scores, top_indices = scores.flatten(0, 1).topk(MAX_PER_IMAGE, sorted=False)
    top_labels = labels[top_indices]
    masks = masks[top_indices // num_classes]
    binary = (masks > 0).float()
    mask_scores = (masks.sigmoid() * binary).flatten(1).sum(1) / (binary.flatten(1).sum(1) + 1e-6)
    detection_scores = top_scores * mask_scores
    binary = binary.bool()
    boxes = torch.cat([mask_to_boxes(binary), detection_scores[:, None].float()], dim=-1)

    boxes_np, labels_np = boxes.cpu().numpy(), top_labels.cpu().numpy()
    bbox_result = [boxes_np[labels_np == c, :] for c in range(num_classes)]
    segm_result: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
    binary_np = binary.cpu().numpy()
    for j, label in enumerate(labels_np):
        segm_result[int(label)].append(binary_np[j])
    return bbox_result, segm_result
