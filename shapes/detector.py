"""A pixel-only detector and colour classifier for the shapes world.

It sees only pixels, never the scene graph, so the GenEval rules can be exercised end to end on
shapes-world images (or on what a model draws when asked for shapes) without any download.

Pipeline for one image:

1. Background: median of the border pixels; foreground = pixels far (in RGB) from it.
2. Objects: 8-connected foreground components (the largest ``max_components`` only, so noise
   images stay fast); a component whose interior holds two or more palette colours in quantity is
   split by colour.
3. Colour: median of the component's eroded interior (anti-aliased edges excluded), named by the
   nearest palette colour.
4. Mask: pixels at least half covered by the object, estimated by projecting each pixel onto the
   line from the local background colour to the object colour (undoes anti-aliasing, so masks do
   not depend on contrast).
5. Shape: nearest prototype in a small feature space (box fill ratio, convex-hull solidity, share
   of area in the top half, aspect ratio), see ``PROTOTYPES``.

Score = shape posterior x "well-formedness" (distance to the prototype) x colour uniformity x
isolation (the object is surrounded by background) x border cleanliness. Clean shapes score > 0.99,
odd blobs, touching objects and fragments lower, and noise images (no clean border, no uniform
colour, no free-standing parts) nothing at all.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from PIL import Image
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from harness.judges.base import Detection
from harness.registry import register
from shapes.world import COLORS, PALETTE, WorldProfile, get_profile

_EIGHT = np.ones((3, 3), dtype=bool)
SUBPIXEL = 4  # shape geometry is measured on coverage interpolated up to this factor ...
SUBPIXEL_SIDE = 160  # ... or less, so that the interpolated crop stays about this many pixels wide

#: Feature prototypes: for each shape and feature (box fill ratio, convex-hull solidity, share of
#: area in the top half, aspect w/h) a pair (ideal, blur) giving ``ideal + blur / extent_px``. The
#: ideal values are the shapes' exact geometry; the blur slopes were fitted on rendered shapes at
#: 64-128 px (small shapes look rounder and fuller). ``FEATURE_SCALE`` is the tolerance of each
#: feature, about 3x the fit's residual spread; neighbouring prototypes stay >= 4 tolerances apart.
PROTOTYPES: dict[str, tuple[tuple[float, float], ...]] = {
    "circle": ((0.785, -0.10), (1.000, -0.34), (0.500, 0.00), (1.000, 0.00)),
    "square": ((1.000, -0.08), (1.000, -0.03), (0.500, 0.00), (1.000, 0.00)),
    "triangle": ((0.500, 0.74), (1.000, -0.55), (0.250, 0.33), (1.000, -0.15)),
    "diamond": ((0.500, 0.67), (1.000, -0.46), (0.500, 0.00), (1.000, 0.00)),
    "cross": ((0.556, 0.16), (0.714, 0.71), (0.500, 0.00), (1.000, 0.00)),
    "star": ((0.358, 1.20), (0.520, 1.41), (0.448, 0.04), (1.059, -0.38)),
}
FEATURE_SCALE = np.array([0.03, 0.03, 0.03, 0.06], dtype=np.float32)
MIN_EXTENT = 8.0  # px; the blur model is not extrapolated to smaller blobs
_PROTO_NAMES = list(PROTOTYPES)
_PROTO_IDEAL = np.array([[f[0] for f in PROTOTYPES[n]] for n in _PROTO_NAMES], dtype=np.float32)
_PROTO_BLUR = np.array([[f[1] for f in PROTOTYPES[n]] for n in _PROTO_NAMES], dtype=np.float32)


def _nearest_colour(rgb: np.ndarray, names: Sequence[str] = COLORS) -> str:
    table = np.array([PALETTE[n] for n in names], dtype=np.float32)
    return names[int(np.argmin(((table - rgb) ** 2).sum(axis=1)))]


def _shape_features(mask: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """Features of a binary mask and its box (x1, y1, x2, y2) with exclusive x2, y2."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if len(rows) < 3 or len(cols) < 3:
        return None
    y1, y2, x1, x2 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    m = mask[y1:y2, x1:x2]
    h, w = m.shape
    area = float(m.sum())
    per_row = m.sum(axis=1).astype(np.float32)
    centre = h / 2  # rows whose pixel spans the centre line count half
    weights = np.clip(centre - np.arange(h), 0, 1)
    top = float((per_row * weights).sum() / area)
    # Convex hull of pixel corners: the left and right extremes of each row are enough.
    occupied = np.flatnonzero(per_row)
    left = m[occupied].argmax(axis=1)
    right = w - m[occupied, ::-1].argmax(axis=1)
    pts = np.concatenate([np.stack([left, occupied], 1), np.stack([left, occupied + 1], 1),
                          np.stack([right, occupied], 1), np.stack([right, occupied + 1], 1)])
    try:
        hull_area = ConvexHull(pts.astype(np.float64)).volume
    except QhullError:
        return None
    feats = np.array([area / (h * w), area / max(hull_area, area), top, w / h], dtype=np.float32)
    return feats, (int(x1), int(y1), int(x2), int(y2))


def _classify_shape(feats: np.ndarray, extent: float,
                    shapes: Sequence[int] | None = None) -> tuple[str, float]:
    """Nearest prototype and a confidence: posterior among prototypes x closeness to the winner.
    ``shapes``: indices into the prototypes to choose among (default: all)."""
    rows = list(range(len(_PROTO_NAMES))) if shapes is None else list(shapes)
    proto = _PROTO_IDEAL[rows] + _PROTO_BLUR[rows] / max(extent, MIN_EXTENT)
    d2 = (((feats - proto) / FEATURE_SCALE) ** 2).sum(axis=1)
    best = int(np.argmin(d2))
    posterior = 1.0 / float(np.exp(-(d2 - d2[best]) / 2).sum())
    d = math.sqrt(float(d2[best]))
    formness = math.exp(-max(0.0, d - 2.0) ** 2 / 2)  # within 2 tolerances counts as well formed
    return _PROTO_NAMES[rows[best]], posterior * formness


@register("detector", "shapes")
class ShapesDetector:
    """Finds shapes-world objects from pixels; see the module docstring for the pipeline.
    ``profile`` (a name in ``shapes.world.PROFILES``, default ``full``): it names only the
    profile's shapes and colours."""

    judge_id = "shapes-detector-v1"

    def __init__(self, *, min_area_fraction: float = 0.004, fg_threshold: float = 45.0,
                 bg_tolerance: float = 30.0, color_tolerance: float = 40.0,
                 max_components: int = 24, min_score: float = 0.01, profile: "str | WorldProfile" = "full") -> None:
        world = get_profile(profile)
        self.profile = world.name
        self.colors = tuple(c for c in COLORS if c in world.colors)
        self._palette = np.array([PALETTE[c] for c in self.colors], dtype=np.float32)
        self._shape_rows = None if world.shapes == tuple(_PROTO_NAMES) else \
            [i for i, name in enumerate(_PROTO_NAMES) if name in world.shapes]
        self.min_area_fraction = min_area_fraction
        self.fg_threshold = fg_threshold
        self.bg_tolerance = bg_tolerance
        self.color_tolerance = color_tolerance
        self.max_components = max_components
        self.min_score = min_score
        self.params = {"min_area_fraction": min_area_fraction, "fg_threshold": fg_threshold,
                       "bg_tolerance": bg_tolerance, "color_tolerance": color_tolerance,
                       "max_components": max_components, "min_score": min_score,
                       **({"profile": world.name} if world.name != "full" else {})}

    def detect(self, images: Sequence[Image.Image],
               sample_ids: Sequence[str] | None = None) -> list[list[Detection]]:
        return [self.detect_one(image) for image in images]

    def detect_one(self, image: Image.Image) -> list[Detection]:
        """Detections of one image, most confident first."""
        img = np.asarray(image.convert("RGB"), dtype=np.float32)
        h, w = img.shape[:2]
        border = np.concatenate([img[:2].reshape(-1, 3), img[-2:].reshape(-1, 3),
                                 img[:, :2].reshape(-1, 3), img[:, -2:].reshape(-1, 3)])
        bg = np.median(border, axis=0)
        bg_clean = float((np.linalg.norm(border - bg, axis=1) < self.bg_tolerance).mean())
        # Shapes-world borders are clean background; noise is not. Below half clean, nothing counts.
        bg_factor = float(np.clip((bg_clean - 0.5) / 0.4, 0.0, 1.0))
        if bg_factor < self.min_score:
            return []
        fg = np.linalg.norm(img - bg, axis=2) > self.fg_threshold
        labels, n = ndimage.label(fg, structure=_EIGHT)
        if n == 0:
            return []
        min_area = max(6.0, self.min_area_fraction * h * w)
        areas = np.bincount(labels.ravel(), minlength=n + 1)[1:]
        order = [k for k in np.argsort(-areas, kind="stable") if areas[k] >= min_area]
        slices = ndimage.find_objects(labels)
        parts: list[tuple[tuple[slice, slice], np.ndarray, np.ndarray]] = []
        for k in order[: self.max_components]:
            sl = _pad(slices[k], 3, h, w)
            parts += self._split_by_colour(img, sl, labels[sl] == k + 1, min_area)
        detections: list[Detection] = []
        for sl, comp, rgb in parts[: self.max_components]:
            det = self._describe(img, sl, comp, rgb, bg, min_area)
            if det is not None:
                det.score *= bg_factor
                if det.score >= self.min_score:
                    detections.append(det)
        detections.sort(key=lambda d: -d.score)
        return detections

    def _split_by_colour(self, img: np.ndarray, sl: tuple[slice, slice], comp: np.ndarray,
                         min_area: float) -> list[tuple[tuple[slice, slice], np.ndarray, np.ndarray]]:
        """(slice, mask, observed colour) per single-colour part of a component (usually one).

        Shapes-world objects never touch, but a model's image may draw two colours side by side.
        """
        crop = img[sl]
        interior = ndimage.binary_erosion(comp, _EIGHT)
        if interior.sum() < 4:
            interior = comp
        pixels = crop[interior]
        quant = ((pixels[:, None, :] - self._palette[None]) ** 2).sum(axis=2).argmin(axis=1)
        counts = np.bincount(quant, minlength=len(self._palette))
        dominant = [c for c in np.argsort(-counts)
                    if counts[c] >= max(0.2 * len(pixels), min_area / 2)]
        if len(dominant) <= 1:
            return [(sl, comp, np.median(pixels, axis=0))]
        centres = np.stack([np.median(pixels[quant == c], axis=0) for c in dominant])
        nearest = ((crop[..., None, :] - centres) ** 2).sum(axis=3).argmin(axis=2)
        oy, ox = sl[0].start, sl[1].start
        parts = []
        for i in range(len(dominant)):
            sub_labels, m = ndimage.label(comp & (nearest == i), structure=_EIGHT)
            sizes = np.bincount(sub_labels.ravel(), minlength=m + 1)
            for j, sub in enumerate(ndimage.find_objects(sub_labels), start=1):
                if sub is None or sizes[j] < min_area:
                    continue
                local = _pad(sub, 3, *crop.shape[:2])
                part_sl = (slice(local[0].start + oy, local[0].stop + oy),
                           slice(local[1].start + ox, local[1].stop + ox))
                parts.append((part_sl, sub_labels[local] == j, centres[i]))
                if len(parts) >= self.max_components:
                    return parts
        return parts

    def _describe(self, img: np.ndarray, sl: tuple[slice, slice], comp: np.ndarray,
                  rgb: np.ndarray, bg: np.ndarray, min_area: float) -> Detection | None:
        crop = img[sl]
        # Local background: a ring two pixels out, so a gradient background does not bias alpha.
        near = ndimage.binary_dilation(comp, _EIGHT)
        ring = ndimage.binary_dilation(near, _EIGHT) & ~near
        ring_px = crop[ring] if ring.sum() >= 8 else bg[None]
        # Share of the ring that is background: shapes-world objects stand free; fragments of a
        # larger textured region (what noise or clutter splits into) do not.
        isolation = float((np.linalg.norm(ring_px - bg, axis=1) < self.bg_tolerance).mean())
        local_bg = np.median(ring_px, axis=0)
        if np.linalg.norm(local_bg - bg) > self.bg_tolerance:
            local_bg = bg  # the ring touches another object: fall back to the global estimate
        direction = rgb - local_bg
        norm2 = float(direction @ direction)
        if norm2 > self.fg_threshold ** 2:
            alpha = np.clip(((crop - local_bg) @ direction) / norm2, 0.0, 1.0)
        else:  # object barely differs from the background: fall back to the component itself
            alpha = comp.astype(np.float32)
        alpha = np.where(near, alpha, 0.0)
        mask = comp & (alpha >= 0.5)
        if mask.sum() < min_area:
            return None
        # Geometry at 4x resolution: interpolated coverage recovers sub-pixel edges, which keeps the
        # features of 12-pixel shapes nearly as stable as those of large ones.
        factor = int(np.clip(round(SUBPIXEL_SIDE / max(alpha.shape)), 1, SUBPIXEL))
        fine = ndimage.zoom(alpha, factor, order=1, grid_mode=True, mode="grid-constant") >= 0.5
        described = _shape_features(fine)
        if described is None:
            return None
        feats, fine_box = described
        extent = max(fine_box[2] - fine_box[0], fine_box[3] - fine_box[1]) / factor
        label, shape_conf = _classify_shape(feats, extent, self._shape_rows)
        interior = ndimage.binary_erosion(mask, _EIGHT)
        inner = crop[interior] if interior.sum() >= 4 else crop[mask]
        uniform = float((np.linalg.norm(inner - rgb, axis=1) < self.color_tolerance).mean())
        isolated = float(np.clip((isolation - 0.4) / 0.5, 0.0, 1.0))
        score = shape_conf * min(1.0, uniform / 0.95) ** 2 * isolated
        full = np.zeros(img.shape[:2], dtype=bool)
        full[sl] = mask
        oy, ox = sl[0].start, sl[1].start
        x1, y1, x2, y2 = (v / factor for v in fine_box)
        return Detection(label=label, score=float(max(score, 1e-6)),
                         box=[x1 + ox, y1 + oy, x2 + ox, y2 + oy],
                         mask=full, color=_nearest_colour(rgb, self.colors))


def _pad(sl: tuple[slice, slice], pad: int, h: int, w: int) -> tuple[slice, slice]:
    return (slice(max(sl[0].start - pad, 0), min(sl[0].stop + pad, h)),
            slice(max(sl[1].start - pad, 0), min(sl[1].stop + pad, w)))


@register("color_classifier", "shapes")
class ShapesColorClassifier:
    """Names an object's colour: nearest allowed palette colour to the median of its pixels
    (allowed: asked for and in the ``profile``'s colours)."""

    judge_id = "shapes-color-v1"

    def __init__(self, profile: "str | WorldProfile" = "full") -> None:
        world = get_profile(profile)
        self.world_colors = world.colors
        self.params: dict = {"profile": world.name} if world.name != "full" else {}

    def classify(self, image: Image.Image, objects: Sequence[Detection], class_name: str,
                 colors: Sequence[str]) -> list[str]:
        allowed = [c for c in colors if c in PALETTE and c in self.world_colors]
        if not allowed:
            raise ValueError(f"none of the colours {list(colors)} is in the shapes palette")
        img = np.asarray(image.convert("RGB"), dtype=np.float32)
        h, w = img.shape[:2]
        names = []
        for obj in objects:
            region = None
            if obj.mask is not None and obj.mask.shape == (h, w) and obj.mask.any():
                region = ndimage.binary_erosion(obj.mask, _EIGHT)  # skip anti-aliased edges
                if region.sum() < 4:
                    region = obj.mask
            if region is None:  # no mask: the central half of the box
                x1, y1, x2, y2 = obj.box
                bw, bh = x2 - x1, y2 - y1
                region = np.zeros((h, w), dtype=bool)
                region[int(max(y1 + bh / 4, 0)):int(math.ceil(min(y2 - bh / 4, h))),
                       int(max(x1 + bw / 4, 0)):int(math.ceil(min(x2 - bw / 4, w)))] = True
                if not region.any():
                    region[:] = True
            names.append(_nearest_colour(np.median(img[region], axis=0), allowed))
        return names
