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
    #: ``harness shapes-data``: (out, items, seed, image size, legacy layout, profile) -> the path written
    standalone: Callable[[Path, int, int, int, bool, Any], Path] | None = None
    #: benchmark params that depend on the world profile (GenEval: the profile's prompt set); the
    #: writer gets ``profile=`` too, and every judge ``profile: NAME``, unless the profile is ``full``
    profiled: Callable[[Any], Mapping[str, Any]] = lambda profile: {}


def _write_dpg(path: Path, data: Mapping[str, int], seed: int, profile: Any = None) -> None:
    from shapes.dense import write_dpg_shapes
    write_dpg_shapes(path, items=data["items"], seed=seed, profile=profile)


def _write_imgedit(path: Path, data: Mapping[str, int], seed: int, profile: Any = None) -> None:
    from shapes.edits import write_imgedit_shapes
    write_imgedit_shapes(path, items=data["items"], seed=seed, profile=profile)


def _write_mme(path: Path, data: Mapping[str, int], seed: int, profile: Any = None) -> None:
    from shapes.understanding import write_mme_shapes
    write_mme_shapes(path, per_subtask=data["images_per_subtask"], seed=seed, profile=profile)


def _write_mmbench(path: Path, data: Mapping[str, int], seed: int, profile: Any = None) -> None:
    from shapes.understanding_mmbench import write_mmbench_shapes
    write_mmbench_shapes(path, questions=data["questions"], seed=seed, profile=profile)


def _geneval_prompt_set(profile: Any) -> dict[str, str]:
    from shapes.prompts import prompt_set_name
    return {"prompts": prompt_set_name(profile)}


def _write_gedit(path: Path, data: Mapping[str, int], seed: int, profile: Any = None) -> None:
    from shapes.gedit_shapes import write_gedit_shapes
    write_gedit_shapes(path, items=data["items"], seed=seed, profile=profile)


def _write_complex_edit(path: Path, data: Mapping[str, int], seed: int, profile: Any = None) -> None:
    from shapes.complex_edit_shapes import write_complex_edit_shapes
    write_complex_edit_shapes(path, items=data["items"], seed=seed, profile=profile)


def _gedit_data(out: Path, items: int, seed: int, size: int, legacy: bool, profile: Any = None) -> Path:
    from shapes.gedit_shapes import write_gedit_shapes
    return write_gedit_shapes(out, items=items, seed=seed, size=size, profile=profile)


def _complex_edit_data(out: Path, items: int, seed: int, size: int, legacy: bool, profile: Any = None) -> Path:
    from shapes.complex_edit_shapes import write_complex_edit_shapes
    return write_complex_edit_shapes(out, items=items, seed=seed, size=size, profile=profile)


def _gedit_headline(scores: Mapping[str, Any]) -> str:
    return (f"overall {scores['overall']:.2f} (0-10 VIEScore G_O, mean of {len(scores['types'])} type means; "
            f"G_SC {scores['semantics']:.2f}, G_PQ {scores['quality']:.2f})")


def _complex_edit_headline(scores: Mapping[str, Any]) -> str:
    return (f"overall {scores['overall']:.2f} (0-10, {scores['level']} {scores['image_type']}: IF "
            f"{scores['instruction_following']:.2f}, IP {scores['identity_preservation']:.2f}, "
            f"PQ {scores['perceptual_quality']:.2f})")


def _mme_data(out: Path, items: int, seed: int, size: int, legacy: bool, profile: Any = None) -> Path:
    from shapes.understanding import write_mme_shapes
    return write_mme_shapes(out, per_subtask=items, seed=seed, size=size, profile=profile)


def _mmbench_data(out: Path, items: int, seed: int, size: int, legacy: bool, profile: Any = None) -> Path:
    from shapes.understanding_mmbench import write_mmbench_shapes
    return write_mmbench_shapes(out, questions=items, seed=seed, size=size, legacy=legacy, profile=profile)


def _geneval_headline(scores: Mapping[str, Any]) -> str:
    tasks = ", ".join(f"{tag} {value:.3f}" for tag, value in scores["tasks"].items())
    return f"overall {scores['overall']:.4f} ({tasks})"


RENDERER = ("shapes-renderer", {"size": 64})
SHAPES_BENCHMARKS: dict[str, ShapesBenchmark] = {
    "geneval": ShapesBenchmark({}, {"detector": "shapes", "color_classifier": "shapes"}, fixed={"prompts": "shapes"},
                               oracle=RENDERER, tour_sizes={"per_tag": "per_tag",
                                                            "images_per_prompt": "images_per_prompt"},
                               headline=_geneval_headline, profiled=_geneval_prompt_set),
    "dpg": ShapesBenchmark({"items": 12}, {"vqa": "shapes-vqa"}, writer=_write_dpg,
                           locate=lambda p: {"prompts": str(p / "prompts"), "csv": str(p / "dpg_bench.csv")},
                           oracle=RENDERER, tour_sizes={"dpg_items": "items"},
                           headline=lambda scores: f"overall {scores['overall']:.2f} (0-100)"),
    "imgedit": ShapesBenchmark({"items": 18}, {"judge": "shapes-edit-judge"}, writer=_write_imgedit,
                               locate=lambda p: {"edits": str(p / "basic_edit.json"), "images": str(p / "images"),
                                                 "judge_prompts": str(p / "prompts.json")},
                               oracle=("shapes-editor", {}), tour_sizes={"imgedit_items": "items"},
                               headline=lambda scores: f"overall {scores['overall']:.2f} (1-5, mean of type means)"),
    "gedit": ShapesBenchmark({"items": 10}, {"judge": "shapes-gedit-judge"}, writer=_write_gedit,
                             locate=lambda p: {"data": str(p)}, oracle=("shapes-editor", {}),
                             tour_sizes={"gedit_items": "items"}, headline=_gedit_headline,
                             standalone=_gedit_data),
    "complex_edit": ShapesBenchmark({"items": 6}, {"judge": "shapes-complex-edit-judge"}, writer=_write_complex_edit,
                                    locate=lambda p: {"data": str(p), "prompts": str(p)}, oracle=("shapes-editor", {}),
                                    tour_sizes={"complex_edit_items": "items"}, headline=_complex_edit_headline,
                                    standalone=_complex_edit_data),
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
