"""The pipeline stage interface (``@register("stage", KIND)``) and helpers for stage plugins.

A stage writes one artifact into its stage folder and returns a ``StageResult``; the pipeline itself
is ``harness.pipeline``. Stages are registered by the packages that own them: ``synth`` by the
kernel (``harness.synth``), the training stages by ``trainers.stages``, ``eval`` by the shapes world,
``report`` by ``reports.stage``. Heavy imports (torch, transformers) belong in ``run``, so loading
the plugins stays cheap.
"""
from __future__ import annotations

import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping

from harness import registry
from harness.artifacts import MANIFEST, read_manifest
from harness.errors import HarnessError

STAGE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")  # a folder name; not a number (overrides use indices)



@dataclass(frozen=True)
class Ref:
    """A parameter that names an earlier stage; ``wants`` lists the outputs that stage may produce."""

    param: str
    stage: str
    wants: tuple[str, ...]


@dataclass(frozen=True)
class StageResult:
    """What a stage made: its artifact folder and hash, the path downstream stages (and people) use
    (a model folder, a report file; the folder by default), and a few headline facts. The pipeline
    fills in ``stage``, ``kind`` and ``inputs`` (stage name -> hash) after ``run``."""

    folder: Path
    hash: str
    facts: Mapping[str, Any] = field(default_factory=dict)
    path: Path | None = None
    stage: str = ""
    kind: str = ""
    inputs: Mapping[str, str] = field(default_factory=dict)

    @property
    def target(self) -> Path:
        return self.path or self.folder


@dataclass
class StageContext:
    """A stage's view of the pipeline: the seed, where relative paths resolve, progress bars, and
    every stage result so far (for reports)."""

    seed: int
    base_dir: Path
    out: Path
    show_progress: bool = True
    results: dict[str, StageResult] = field(default_factory=dict)

    def resolve(self, path: str) -> Path:
        """A path from the pipeline file, relative to the file's folder."""
        return (self.base_dir / path) if not Path(path).is_absolute() else Path(path)


class Stage:
    """A stage plugin. ``check`` validates parameters when the pipeline is loaded (raise ValueError
    with a one-line message) and returns the stages they name; ``run`` makes the artifact."""

    output: ClassVar[str] = ""  # what it produces: dataset, vq-tokenizer, model, evaluation, report
    version: ClassVar[str] = "1"
    #: True: a changed identity re-runs in the old folder (the stage reuses what still fits itself);
    #: False: the old folder is removed first
    reuse_folder: ClassVar[bool] = False
    #: True: the stage needs every earlier stage (a report's lineage table)
    needs_all_earlier: ClassVar[bool] = False

    def check(self, params: Mapping[str, Any]) -> list[Ref]:
        raise NotImplementedError

    def identity(self, params: Mapping[str, Any], ctx: StageContext) -> Any:
        """What, besides the upstream hashes, decides the artifact (default: the parameters)."""
        return dict(params)

    def run(self, params: Mapping[str, Any], inputs: Mapping[str, StageResult], folder: Path,
            ctx: StageContext) -> StageResult:
        raise NotImplementedError


def stage_plugin(kind: str) -> Stage:
    return registry.get("stage", kind)()



def check_keys(params: Mapping[str, Any], allowed: Iterable[str], required: Iterable[str] = ()) -> None:
    """One-line ValueError for unknown or missing parameters."""
    allowed = set(allowed)
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValueError(f"unknown params {unknown} (allowed: {', '.join(sorted(allowed))})")
    missing = [name for name in required if name not in params]
    if missing:
        raise ValueError(f"missing params {missing}")


def typed_settings(cls: type, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` for the dataclass ``cls``, with float fields given as YAML strings ("5e-6": YAML 1.1
    needs a dot to read a number) converted; a one-line ValueError for a value of the wrong type, so
    a bad value fails when the pipeline is loaded, not minutes into a run."""
    hints = typing.get_type_hints(cls)
    typed = {}
    for key, value in params.items():
        kind, is_bool = hints.get(key), isinstance(value, bool)
        if kind is float and not is_bool and isinstance(value, (int, float, str)):
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"{key} must be a number, got {value!r}") from None
        elif kind is float or (kind is int and (is_bool or not isinstance(value, int))):
            raise ValueError(f"{key} must be {'a number' if kind is float else 'an integer'}, got {value!r}")
        elif kind is bool and not is_bool:
            raise ValueError(f"{key} must be true or false, got {value!r}")
        typed[key] = value
    return typed


def stage_name(params: Mapping[str, Any], key: str) -> str:
    value = params[key]
    if not isinstance(value, str):
        raise ValueError(f"{key} must be the name of an earlier stage, got {value!r}")
    return value


def folder_files(folder: Path) -> list[str]:
    """Every file under ``folder`` (relative), less the manifest."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)


def manifest_result(folder: Path, facts: Mapping[str, Any], path: Path | None = None) -> StageResult:
    manifest = read_manifest(folder)
    if manifest is None:
        raise HarnessError(f"{folder}: the stage finished without writing {MANIFEST}")
    return StageResult(folder, manifest.hash, dict(facts), path)
