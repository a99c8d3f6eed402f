"""The shapes world's benchmark suite: how each benchmark runs on shapes-world data.

This is the one table of the shapes world keyed by benchmark name (the layer rule allows it here):
the data each benchmark needs (its writer and sizes), the benchmark parameters pointing at the
written data, its procedural judges, the procedural model that gets everything right (the tour's
"oracle"), and how ``harness demo --tour`` sizes it (its flags, ``TourSize``) and prints its
headline. The pipeline's ``eval`` stage, the tour and the tour's flags all come from it: a new
shapes benchmark needs no edit in ``demo/`` or in the stage.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping


@dataclass(frozen=True)
class TourSize:
    """One size option of ``harness demo --tour``, declared by the entry it sizes: the flag, its
    default and help (the demo prefixes "tour: "), the parameter the size sets (a data-writer
    parameter when the entry's ``data`` has it, else a benchmark parameter), and its ``key`` in the
    tour's sizes (``demo.tour.DemoSize``; by default the flag's name)."""

    flag: str  # "--dpg-items"
    param: str
    default: int
    help: str = ""
    name: str = ""

    @property
    def key(self) -> str:
        return self.name or self.flag.removeprefix("--").replace("-", "_")


@dataclass(frozen=True)
class ShapesBenchmark:
    data: Mapping[str, int]  # data-writer parameter -> default
    judges: Mapping[str, str]
    answers: bool = False  # an understanding benchmark: the model answers in text
    fixed: Mapping[str, Any] = field(default_factory=dict)  # benchmark params the stage sets itself
    writer: Callable[[Path, Mapping[str, int], int], Any] | None = None
    #: benchmark params that point at the written data -> their path in it ("" for the data path itself)
    paths: Mapping[str, str] = field(default_factory=dict)
    suffix: str = ""  # of the data path (a file for MMBench)
    oracle: tuple[str, Mapping[str, Any]] = ("", {})  # the procedural model that gets it right
    tour_sizes: tuple[TourSize, ...] = ()  # the flags of ``harness demo --tour`` that size it
    headline: Callable[[Mapping[str, Any]], str] = lambda scores: f"overall {scores['overall']:.4f}"
    #: ``harness shapes-data``: (out, items, seed, image size, legacy layout, profile) -> the path written
    standalone: Callable[[Path, int, int, int, bool, Any], Path] | None = None
    #: benchmark params that depend on the world profile (GenEval: the profile's prompt set); the
    #: writer gets ``profile=`` too, and every judge ``profile: NAME``, unless the profile is ``full``
    profiled: Callable[[Any], Mapping[str, Any]] = lambda profile: {}

    def locate(self, path: Path) -> dict[str, str]:
        """The benchmark params (``paths``) pointing into the data written at ``path``."""
        return {param: str(path / relative) if relative else str(path) for param, relative in self.paths.items()}


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
                               oracle=RENDERER, headline=_geneval_headline, profiled=_geneval_prompt_set,
                               tour_sizes=(TourSize("--per-tag", "per_tag", 8, "GenEval shapes prompts per tag"),
                                           TourSize("--images-per-prompt", "images_per_prompt", 4))),
    "dpg": ShapesBenchmark({"items": 12}, {"vqa": "shapes-vqa"}, writer=_write_dpg,
                           paths={"prompts": "prompts", "csv": "dpg_bench.csv"}, oracle=RENDERER,
                           tour_sizes=(TourSize("--dpg-items", "items", 12,
                                                "DPG shapes dense prompts (4 tiles each)"),),
                           headline=lambda scores: f"overall {scores['overall']:.2f} (0-100)"),
    "imgedit": ShapesBenchmark({"items": 18}, {"judge": "shapes-edit-judge"}, writer=_write_imgedit,
                               paths={"edits": "basic_edit.json", "images": "images", "judge_prompts": "prompts.json"},
                               oracle=("shapes-editor", {}),  # procedural edits over the shapes edit types
                               tour_sizes=(TourSize("--imgedit-items", "items", 18, "ImgEdit shapes edits"),),
                               headline=lambda scores: f"overall {scores['overall']:.2f} (1-5, mean of type means)"),
    "gedit": ShapesBenchmark({"items": 10}, {"judge": "shapes-gedit-judge"}, writer=_write_gedit,
                             paths={"data": ""}, oracle=("shapes-editor", {}),  # over its five shapes-world types
                             tour_sizes=(TourSize("--gedit-items", "items", 10, "GEdit-Bench shapes edits"),),
                             headline=_gedit_headline, standalone=_gedit_data),
    "complex_edit": ShapesBenchmark({"items": 6}, {"judge": "shapes-complex-edit-judge"}, writer=_write_complex_edit,
                                    paths={"data": "", "prompts": ""}, oracle=("shapes-editor", {}),
                                    tour_sizes=(TourSize("--complex-edit-items", "items", 6,  # chains of eight edits
                                                         "Complex-Edit shapes edit chains (judged at level C8)"),),
                                    headline=_complex_edit_headline, standalone=_complex_edit_data),
    "mme": ShapesBenchmark({"images_per_subtask": 10}, {}, answers=True, writer=_write_mme,
                           paths={"data": ""}, oracle=("shapes-answerer", {}),
                           tour_sizes=(TourSize("--mme-images", "images_per_subtask", 10,  # x 4 subtasks x 2 questions
                                                "MME shapes images per subtask", name="mme_images_per_subtask"),),
                           headline=lambda scores: f"perception {scores['perception']:.2f} "
                                                   f"(max {200 * len(scores['subtasks'])})",
                           standalone=_mme_data),
    "mmbench": ShapesBenchmark({"questions": 40}, {}, answers=True, writer=_write_mmbench,
                               paths={"data": ""}, suffix=".tsv", oracle=("shapes-answerer", {}),
                               # each asked once per circular pass (2-4 passes)
                               tour_sizes=(TourSize("--mmbench-questions", "questions", 40),),
                               headline=lambda scores: f"overall {scores['overall']:.4f} (CircularEval)",
                               standalone=_mmbench_data),
}


def tour_options() -> list[TourSize]:
    """Every entry's ``harness demo --tour`` size options, in the suite's order."""
    return [option for shapes in SHAPES_BENCHMARKS.values() for option in shapes.tour_sizes]


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
