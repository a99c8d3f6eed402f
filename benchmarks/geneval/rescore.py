"""Rescore GenEval from files: an official ``results.jsonl``, or precomputed detections.

``rescore_detections`` runs the official rules on detections someone else computed (another
detector, the shapes world, a test), with each detection's ``color`` standing in for the CLIP
colour classifier. Row ``filename`` is ``"{prompt_index:05d}/samples/{image}"``: the official
path relative to the image root (the official joins the root in front; no number depends on it).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from benchmarks.geneval.aggregate import summarize
from benchmarks.geneval.data import load_class_names, load_metadata
from benchmarks.geneval.results_io import DetectionsEntry, read_detections, read_results_with_lines
from benchmarks.geneval.rules import ColorOf, GenEvalOptions, score_image
from harness.errors import InputError
from harness.judges.base import Detection


def rescore_results(path: str | Path, strict: bool = False) -> dict:
    """Summarize an official ``results.jsonl`` as ``summary_scores.py`` would. Rows with
    ``"correct": null`` are skipped as pandas skips NaN, and ``summary["warnings"]`` says so;
    ``strict`` refuses them instead."""
    rows, lines = read_results_with_lines(path, strict=strict)
    summary = summarize(rows, path, lines)
    if summary.get("skipped"):
        nulls = [line for row, line in zip(rows, lines) if row["correct"] is None]
        summary["warnings"] = [
            f"{path}: {len(nulls)} row(s) have \"correct\": null (line {_lines(nulls)}): skipped in every mean, "
            "as summary_scores.py skips them (they still count in 'Total images'); --strict refuses such a file"]
    return summary


def _lines(numbers: list[int], shown: int = 5) -> str:
    text = ", ".join(str(n) for n in numbers[:shown])
    return text + (f" and {len(numbers) - shown} more" if len(numbers) > shown else "")


def _colors_from_file(path: str | Path, entry: DetectionsEntry) -> ColorOf:
    """A colour judge that reads each detection's ``color``; a missing one names the line."""
    def color_of(found: list[Detection], class_name: str) -> list[str]:
        for det in found:
            if det.color is None:
                raise InputError(f"a colour clause needs the colour of {class_name!r} in image "
                                 f"{entry.image!r}, but its detection has \"color\": null",
                                 path, entry.line)
        return [det.color for det in found]
    return color_of


def rescore_detections(path: str | Path, metadata_path: str | Path | None = None,
                       options: GenEvalOptions = GenEvalOptions(),
                       class_order: Sequence[str] | None = None) -> tuple[list[dict], dict]:
    """Score every image of a detections file; return (official rows, summary).

    ``metadata_path`` defaults to the packaged 553 official prompts; ``class_order`` (the key
    order of ``details``) defaults to the packaged 80 COCO class names, the official order.
    """
    prompts = load_metadata(metadata_path)
    order = list(class_order) if class_order is not None else load_class_names()
    rows = []
    for entry in read_detections(path):
        if entry.prompt_index >= len(prompts):
            raise InputError(f"prompt_index {entry.prompt_index} out of range: the metadata has "
                             f"{len(prompts)} prompts (0..{len(prompts) - 1})", path, entry.line)
        rows.append(score_image(f"{entry.prompt_index:05d}/samples/{entry.image}",
                                prompts[entry.prompt_index], entry.detections,
                                _colors_from_file(path, entry), options, order))
    return rows, summarize(rows)
