"""GenEval rules: how one image's detections become a verdict, as in the official evaluator.

Mirrors djghosh13/geneval ``evaluation/evaluate_images.py`` (see PROTOCOLS.md 1.4, 1.7), quirks
included. Two numeric details follow from the official detector handing over **float32** arrays:

* scores and boxes are compared and combined in float32 (numpy compares a float32 array with a
  Python float in float32), so a score of ``float32(0.3)`` is *not* above the 0.3 threshold even
  though, as a float64, 0.30000001192 > 0.3;
* ``details`` holds the float32 values widened to Python floats, exactly what ``ndarray.tolist()``
  prints (0.95 appears as 0.949999988079071).

Ties in score keep the order ``np.argsort(scores)[::-1]`` gives for small arrays (the official
numpy 1.x sorts up to 16 items by insertion sort): among equal scores the *later* detection wins.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from benchmarks.geneval.data import COLORS, RELATIONS
from harness.errors import InputError
from harness.judges.base import Detection

#: ``color_of(found, class_name)`` names the colour of each object in ``found``, in order.
ColorOf = Callable[[list[Detection], str], list[str]]

_F32 = np.float32


@dataclass(frozen=True)
class GenEvalOptions:
    """The official ``--options`` with their defaults; any change makes numbers incomparable."""

    threshold: float = 0.3
    counting_threshold: float = 0.9
    max_objects: int = 16
    max_overlap: float = 1.0
    position_threshold: float = 0.1
    bgcolor: str = "#999"
    crop: bool = True
    clip_model: str = "ViT-L-14"
    model: str = "mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco"

    def to_dict(self) -> dict:
        """Plain values, for protocol cards and cache keys."""
        return asdict(self)

    @classmethod
    def from_options(cls, options: Mapping[str, str] | Iterable[str]) -> "GenEvalOptions":
        """Parse the CLI form: ``{"threshold": "0.5"}`` or ``["threshold=0.5", ...]``.

        Conversions follow the official script: ``float``/``int`` of the text, and ``crop`` is on
        only when the text is exactly ``"1"``. Unknown keys are an error (the official ignores
        them, which hides typos), and so is a number that is not finite (``nan``, ``inf``: every
        score comparison with NaN is false, so a NaN threshold would quietly fail every image).
        """
        if not isinstance(options, Mapping):
            pairs = {}
            for item in options:
                if "=" not in item:
                    raise InputError(f"option {item!r} is not key=value")
                key, value = item.split("=", 1)
                pairs[key] = value
            options = pairs
        known = {f.name: f.type for f in fields(cls)}
        values: dict = {}
        for key, text in options.items():
            if key not in known:
                raise InputError(f"unknown GenEval option {key!r}; known: {', '.join(known)}")
            try:
                if key == "crop":
                    values[key] = str(text) == "1"
                elif key == "max_objects":
                    values[key] = int(text)
                elif key in ("bgcolor", "clip_model", "model"):
                    values[key] = str(text)
                else:
                    values[key] = float(text)
            except ValueError:
                raise InputError(f"option {key}={text!r}: not a valid {known[key]}") from None
            if isinstance(values[key], float) and not math.isfinite(values[key]):
                raise InputError(f"option {key}={text!r}: must be a finite number (not nan or inf)")
        return cls(**values)


def _iou(box_a: Sequence[float], box_b: Sequence[float]) -> float:
    """IoU with the official +1-pixel area convention, in float32 like the detector's boxes."""
    a, b = [_F32(v) for v in box_a[:4]], [_F32(v) for v in box_b[:4]]

    def area(box: list) -> np.float32:
        return max(box[2] - box[0] + _F32(1), _F32(0)) * max(box[3] - box[1] + _F32(1), _F32(0))

    inter = area([max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])])
    union = area(a) + area(b) - inter
    return float(inter / union) if union else 0.0


def keep_detections(detections: Sequence[Detection], tag: str, options: GenEvalOptions,
                    class_order: Sequence[str] | None = None) -> dict[str, list[Detection]]:
    """Filter raw detections per class: threshold, top ``max_objects``, optional greedy NMS.

    Keys follow ``class_order`` (the detector's class index order, which the official iterates),
    then any other label in first-appearance order; classes with nothing kept are left out.
    """
    threshold = _F32(options.counting_threshold if tag == "counting" else options.threshold)
    by_class: dict[str, list[Detection]] = {}
    for det in detections:
        by_class.setdefault(det.label, []).append(det)
    order = [c for c in (class_order or []) if c in by_class]
    order += [c for c in by_class if c not in order]

    kept: dict[str, list[Detection]] = {}
    for name in order:
        group = by_class[name]
        scores = np.array([d.score for d in group], dtype=np.float32)
        ranked = np.argsort(scores, kind="stable")[::-1]          # ties: later detection first
        candidates = [group[i] for i in ranked if scores[i] > threshold][:options.max_objects]
        chosen: list[Detection] = []
        while candidates:
            best = candidates.pop(0)
            chosen.append(best)
            if options.max_overlap < 1:
                candidates = [d for d in candidates if _iou(best.box, d.box) < options.max_overlap]
        if chosen:
            kept[name] = chosen
    return kept


def relations(box_a: Sequence[float], box_b: Sequence[float],
              position_threshold: float = 0.1) -> set[str]:
    """Where box A lies relative to box B (x1y1x2y2, y down); see PROTOCOLS.md 1.4.

    Arithmetic is float32, as the official code gets it from the detector's float32 boxes.
    """
    boxes = np.array([list(box_a[:4]), list(box_b[:4])], dtype=np.float32).reshape(2, 2, 2)
    center_a, center_b = boxes.mean(axis=1)
    size_a, size_b = np.abs(boxes[:, 1] - boxes[:, 0])
    offset = center_a - center_b
    margin = _F32(position_threshold) * (size_a + size_b)
    revised = np.maximum(np.abs(offset) - margin, _F32(0)) * np.sign(offset)
    if np.all(np.abs(revised) < _F32(1e-3)):
        return set()
    dx, dy = revised / np.linalg.norm(offset)
    found = set()
    if dx < -0.5:
        found.add("left of")
    if dx > 0.5:
        found.add("right of")
    if dy < -0.5:
        found.add("above")
    if dy > 0.5:
        found.add("below")
    return found


def _color_reason(clause: Mapping, colors: list[str]) -> str:
    want, name, count = clause["color"], clause["class"], clause["count"]
    seen = ", ".join(f"{colors.count(c)} {c}" for c in COLORS if c in colors)
    return f"expected {want} {name}>={count}, found {colors.count(want)} {want}; and {seen}"


def evaluate(metadata: Mapping, objects: Mapping[str, list[Detection]], color_of: ColorOf,
             options: GenEvalOptions = GenEvalOptions()) -> tuple[bool, str]:
    """Check one image's kept objects against the prompt's clauses; return (correct, reason).

    Include clauses are ANDed in order, exclude clauses ORed. Colour and position look only at
    the ``count`` most confident objects of the class. When one object has several relations to
    its target the official joins a Python set (order varies with hash seeds); we list them in
    ``RELATIONS`` order, which changes only the reason text, never a verdict.
    """
    correct = True
    reasons: list[str] = []
    groups: list[list[Detection] | None] = []   # per include clause: its objects, None if failed
    for index, clause in enumerate(metadata.get("include", [])):
        name, count = clause["class"], clause["count"]
        found = list(objects.get(name, []))[:count]
        matched = True
        if len(found) < count:
            matched = False
            reasons.append(f"expected {name}>={count}, found {len(found)}")
        else:
            if "color" in clause:
                colors = list(color_of(found, name))
                if colors.count(clause["color"]) < count:
                    matched = False
                    reasons.append(_color_reason(clause, colors))
            if "position" in clause and matched:
                expected, target = clause["position"]
                if target >= index:
                    raise InputError(f"include clause {index}: position refers to clause {target}, "
                                     "which does not come before it")
                if groups[target] is None:
                    matched = False
                    reasons.append(f"no target for {name} to be {expected}")
                else:
                    matched = _check_position(found, groups[target], name, expected,
                                              options.position_threshold, reasons)
        correct = correct and matched
        groups.append(found if matched else None)
    for clause in metadata.get("exclude", []):
        name, count = clause["class"], clause["count"]
        present = len(objects.get(name, []))
        if present >= count:
            correct = False
            reasons.append(f"expected {name}<{count}, found {present}")
    return correct, "\n".join(reasons)


def _check_position(found: list[Detection], targets: list[Detection], name: str, expected: str,
                    threshold: float, reasons: list[str]) -> bool:
    """Every object must stand in ``expected`` relation to every target; report the first miss."""
    for obj in found:
        for target in targets:
            true_rels = relations(obj.box, target.box, threshold)
            if expected not in true_rels:
                listed = " and ".join(r for r in RELATIONS if r in true_rels)
                reasons.append(f"expected {name} {expected} target, found {listed} target")
                return False
    return True


def _as_float32(value: float) -> float:
    return float(_F32(value))


def details_json(objects: Mapping[str, list[Detection]]) -> str:
    """The official ``details`` string: ``{class: [[x1, y1, x2, y2, score], ...]}``."""
    return json.dumps({name: [[_as_float32(v) for v in list(d.box[:4]) + [d.score]] for d in dets]
                       for name, dets in objects.items()})


def score_image(filename: str, metadata: Mapping, detections: Sequence[Detection],
                color_of: ColorOf, options: GenEvalOptions = GenEvalOptions(),
                class_order: Sequence[str] | None = None) -> dict:
    """Score one image and return its official ``results.jsonl`` row (field order kept)."""
    objects = keep_detections(detections, metadata["tag"], options, class_order)
    correct, reason = evaluate(metadata, objects, color_of, options)
    return {
        "filename": filename,
        "tag": metadata["tag"],
        "prompt": metadata["prompt"],
        "correct": bool(correct),
        "reason": reason,
        "metadata": json.dumps(metadata),
        "details": details_json(objects),
    }
