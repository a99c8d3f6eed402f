"""The shapes world's benchmark suite: how each benchmark runs on shapes-world data.

This is the one table of the shapes world keyed by benchmark name (the layer rule allows it here):
the data each benchmark needs (its writer and sizes), the benchmark parameters pointing at the
written data, its procedural judges, the procedural model that gets everything right (the tour's
"oracle"), and how ``harness demo --tour`` sizes it and prints its headline. The pipeline's
``eval`` stage and the tour both read it.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping


@dataclass(frozen=True)
class ShapesBenchmark:
    data: Mapping[str, int]  # data-writer parameter -> default
    judges: Mapping[str, str]
    answers: bool = False  # an understanding benchmark: the model answers in text
    fixed: Mapping[str, Any] = field(default_factory=dict)  # benchmark params the stage sets itself
    writer: Callable[[Path, Mapping[str, int], int], Any] | None = None
    locate: Callable[[Path], dict[str, str]] = lambda path: {}
    suffix: str = ""  # of the data path (a file for MMBench)
    oracle: tuple[str, Mapping[str, Any]] = ("", {})  # the procedural model that gets it right
    tour_sizes: Mapping[str, str] = field(default_factory=dict)  # tour size field -> data or benchmark param
    headline: Callable[[Mapping[str, Any]], str] = lambda scores: f"overall {scores['overall']:.4f}"
    #: ``harness shapes-data``: (out, items, seed, image size, legacy layout) -> the path written
    standalone: Callable[[Path, int, int, int, bool], Path] | None = None


def _write_dpg(path: Path, data: Mapping[str, int], seed: int) -> None:
    from shapes.dense import write_dpg_shapes
    write_dpg_shapes(path, items=data["items"], seed=seed)


def _write_imgedit(path: Path, data: Mapping[str, int], seed: int) -> None:
    from shapes.edits import write_imgedit_shapes
    write_imgedit_shapes(path, items=data["items"], seed=seed)


def _write_mme(path: Path, data: Mapping[str, int], seed: int) -> None:
    from shapes.understanding import write_mme_shapes
    write_mme_shapes(path, per_subtask=data["images_per_subtask"], seed=seed)


def _write_mmbench(path: Path, data: Mapping[str, int], seed: int) -> None:
    from shapes.understanding_mmbench import write_mmbench_shapes
    write_mmbench_shapes(path, questions=data["questions"], seed=seed)


def _mme_data(out: Path, items: int, seed: int, size: int, legacy: bool) -> Path:
    from shapes.understanding import write_mme_shapes
    return write_mme_shapes(out, per_subtask=items, seed=seed, size=size)


def _mmbench_data(out: Path, items: int, seed: int, size: int, legacy: bool) -> Path:
    from shapes.understanding_mmbench import write_mmbench_shapes
    return write_mmbench_shapes(out, questions=items, seed=seed, size=size, legacy=legacy)


def _geneval_headline(scores: Mapping[str, Any]) -> str:
    tasks = ", ".join(f"{tag} {value:.3f}" for tag, value in scores["tasks"].items())
    return f"overall {scores['overall']:.4f} ({tasks})"


RENDERER = ("shapes-renderer", {"size": 64})
SHAPES_BENCHMARKS: dict[str, ShapesBenchmark] = {
    "geneval": ShapesBenchmark({}, {"detector": "shapes", "color_classifier": "shapes"}, fixed={"prompts": "shapes"},
                               oracle=RENDERER, tour_sizes={"per_tag": "per_tag",
                                                            "images_per_prompt": "images_per_prompt"},
                               headline=_geneval_headline),
    "dpg": ShapesBenchmark({"items": 12}, {"vqa": "shapes-vqa"}, writer=_write_dpg,
                           locate=lambda p: {"prompts": str(p / "prompts"), "csv": str(p / "dpg_bench.csv")},
                           oracle=RENDERER, tour_sizes={"dpg_items": "items"},
                           headline=lambda scores: f"overall {scores['overall']:.2f} (0-100)"),
    "imgedit": ShapesBenchmark({"items": 18}, {"judge": "shapes-edit-judge"}, writer=_write_imgedit,
                               locate=lambda p: {"edits": str(p / "basic_edit.json"), "images": str(p / "images"),
                                                 "judge_prompts": str(p / "prompts.json")},
                               oracle=("shapes-editor", {}), tour_sizes={"imgedit_items": "items"},
                               headline=lambda scores: f"overall {scores['overall']:.2f} (1-5, mean of type means)"),
    "mme": ShapesBenchmark({"images_per_subtask": 10}, {}, answers=True, writer=_write_mme,
                           locate=lambda p: {"data": str(p)}, oracle=("shapes-answerer", {}),
                           tour_sizes={"mme_images_per_subtask": "images_per_subtask"},
                           headline=lambda scores: f"perception {scores['perception']:.2f} "
                                                   f"(max {200 * len(scores['subtasks'])})",
                           standalone=_mme_data),
    "mmbench": ShapesBenchmark({"questions": 40}, {}, answers=True, writer=_write_mmbench,
                               locate=lambda p: {"data": str(p)}, suffix=".tsv", oracle=("shapes-answerer", {}),
                               tour_sizes={"mmbench_questions": "questions"},
                               headline=lambda scores: f"overall {scores['overall']:.4f} (CircularEval)",
                               standalone=_mmbench_data),
}


def write_once(path: Path, write: Callable[[Path], Any]) -> None:
    """Data appear complete or not at all (written under a temporary name, then renamed)."""
    if path.exists():
        return
    partial = path.with_name(path.name + ".partial")
    if partial.is_dir():
        shutil.rmtree(partial)
    elif partial.exists():
        partial.unlink()
    write(partial)
    partial.rename(path)
