"""Pipelines: ``harness run PIPELINE.yaml`` runs named stages in order (synth, train, eval, report).

A pipeline file::

    name: shapes
    seed: 0
    out: runs/shapes-pipeline            # default output folder (relative to the current folder)
    stages:
      - {name: data, kind: synth, params: {recipe: shapes-recipe.yaml}}
      - {name: untrained, kind: tiny-janus, params: {words: data}}
      - {name: trained, kind: train, params: {model: untrained, data: data, epochs: 1}}
      ...

Each stage is a plugin (``@register("stage", KIND)``, see ``harness.stage``) that writes one
artifact (a folder with ``artifact.json``) into ``OUT/<stage name>/``. Parameters that name an
earlier stage are that stage's output; a stage sees the results of the stages it needs.

Skipping: a stage's *identity* is the hash of its kind, plugin version, parameters (as the plugin
resolves them: a recipe's content, not its path), the pipeline seed and the content hashes of the
stages it needs. ``OUT/pipeline.json`` records each stage's identity and artifact hash. A stage
whose recorded identity matches and whose artifact still verifies is skipped; any other stage runs,
and since its hash then changes, so do the identities of the stages downstream.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import yaml

from harness import registry
from harness.artifacts import read_manifest, verify
from harness.errors import HarnessError, InputError
from harness.fileio import LOCK_FILE, atomic_write_text, folder_lock
from harness.hashing import hash_value
from harness.safety import refuse_secrets
from harness.stage import STAGE_NAME, Ref, Stage, StageContext, StageResult, stage_plugin
from harness.yamlfile import apply_overrides, read_yaml_text

PIPELINE_VERSION = 1
RECORD = "pipeline.json"


# ------------------------------------------------------------------------------------------ the spec


@dataclass(frozen=True)
class StageSpec:
    name: str
    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)
    needs: tuple[str, ...] = ()  # the earlier stages it reads (from its params, plus any listed)
    line: int | None = field(default=None, compare=False)  # in the pipeline file, for messages

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "params": dict(self.params), "needs": list(self.needs)}


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    stages: tuple[StageSpec, ...]
    seed: int = 0
    out: str | None = None
    source: str = "pipeline"
    base_dir: str = "."  # the pipeline file's folder: relative paths in parameters start there

    def to_dict(self) -> dict:
        return {"version": PIPELINE_VERSION, "name": self.name, "seed": self.seed, "out": self.out,
                "stages": [stage.to_dict() for stage in self.stages]}

    def stage(self, name: str) -> StageSpec:
        return next(stage for stage in self.stages if stage.name == name)

    @classmethod
    def from_dict(cls, data: Any, source: str = "pipeline", base_dir: str | Path = ".",
                  lines: Sequence[int] = ()) -> "PipelineSpec":
        if not isinstance(data, Mapping):
            raise InputError("a pipeline must be a mapping with name, stages, ...", source)
        refuse_secrets(data, source)
        allowed = {"version", "name", "seed", "out", "stages"}
        if set(data) - allowed:
            raise InputError(f"unknown keys {sorted(set(data) - allowed)} (allowed: {', '.join(sorted(allowed))})",
                             source)
        if data.get("version", PIPELINE_VERSION) != PIPELINE_VERSION:
            raise InputError(f"pipeline version {data['version']} is not supported (this harness reads "
                             f"{PIPELINE_VERSION})", source)
        name, seed, out = data.get("name"), data.get("seed", 0), data.get("out")
        if not isinstance(name, str) or not STAGE_NAME.match(name):
            raise InputError(f"name must be a word of letters, digits, '-', '_' or '.', got {name!r}", source)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise InputError(f"seed must be an integer, got {seed!r}", source)
        if out is not None and not isinstance(out, str):
            raise InputError(f"out must be a folder path, got {out!r}", source)
        raw = data.get("stages")
        if not isinstance(raw, list) or not raw:
            raise InputError("stages must be a non-empty list of {name, kind, params}", source)
        stages: list[StageSpec] = []
        for index, item in enumerate(raw):
            line = lines[index] if index < len(lines) else None
            stages.append(_parse_stage(item, index, list(stages), source, line))
        return cls(name=name, stages=tuple(stages), seed=seed, out=out, source=source, base_dir=str(base_dir))

    @classmethod
    def load(cls, path: str | Path) -> "PipelineSpec":
        data, text = read_yaml_text(path, "pipeline file")
        return cls.from_dict(data, str(path), Path(path).parent, _stage_lines(text))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def with_overrides(self, overrides: Mapping[str, Any]) -> "PipelineSpec":
        """Dotted overrides: ``stages.2.params.steps`` or ``stages.train.params.steps``, ``seed``."""
        data = apply_overrides(self.to_dict(), overrides, self.source, "pipeline", position=_index)
        return PipelineSpec.from_dict(data, f"{self.source} with overrides", self.base_dir,
                                      [s.line for s in self.stages])


def _index(stages: list, part: str) -> int:
    """A list position, or the position of the stage named ``part``."""
    if part.isdigit():
        return int(part)
    found = [i for i, item in enumerate(stages) if isinstance(item, dict) and item.get("name") == part]
    if not found:
        raise KeyError(part)
    return found[0]


def _parse_stage(item: Any, index: int, earlier: list[StageSpec], source: str, line: int | None) -> StageSpec:
    where = f"stages[{index}]"
    if not isinstance(item, Mapping) or not isinstance(item.get("name"), str) or not isinstance(item.get("kind"), str):
        raise InputError(f"{where}: expected {{name: ..., kind: ..., params: {{...}}}}, got {item!r}", source, line)
    name, kind = item["name"], item["kind"]
    where = f"stage {name!r}"
    unknown = set(item) - {"name", "kind", "params", "needs"}
    if unknown:
        raise InputError(f"{where}: unknown keys {sorted(unknown)} (allowed: name, kind, params, needs)", source, line)
    if not STAGE_NAME.match(name):
        raise InputError(f"{where}: a stage name is a word of letters, digits, '-', '_' or '.' "
                         "starting with a letter", source, line)
    if any(stage.name == name for stage in earlier):
        raise InputError(f"{where} is defined twice", source, line)
    if name == RECORD:
        raise InputError(f"{where}: {RECORD} is the pipeline's own record in the output folder; "
                         "pick another name", source, line)
    try:
        plugin = stage_plugin(kind)
    except registry.UnknownPluginError as exc:
        raise InputError(f"{where}: {exc}", source, line) from None
    params = item.get("params") or {}
    if not isinstance(params, Mapping):
        raise InputError(f"{where}: params must be a mapping, got {params!r}", source, line)
    try:
        refs = plugin.check(params)
    except (ValueError, TypeError, HarnessError) as exc:  # HarnessError: a nested spec's own check
        raise InputError(f"{where} ({kind}): {exc}", source, line) from None
    listed = item.get("needs") or []
    if not isinstance(listed, list) or not all(isinstance(n, str) for n in listed):
        raise InputError(f"{where}: needs must be a list of stage names", source, line)
    by_name = {stage.name: stage for stage in earlier}
    for ref in [*refs, *(Ref("needs", n, ()) for n in listed)]:
        if ref.stage not in by_name:
            known = ", ".join(by_name) or "none"
            raise InputError(f"{where}: {ref.param} names stage {ref.stage!r}, which is not defined earlier "
                             f"(earlier stages: {known})", source, line)
        made = stage_plugin(by_name[ref.stage].kind).output
        if ref.wants and made not in ref.wants:
            raise InputError(f"{where}: {ref.param} names stage {ref.stage!r}, which makes a {made}; "
                             f"expected {' or '.join(ref.wants)}", source, line)
    needs = [stage.name for stage in earlier] if plugin.needs_all_earlier else []
    for stage_name in [*(ref.stage for ref in refs), *listed]:
        if stage_name not in needs:
            needs.append(stage_name)
    return StageSpec(name=name, kind=kind, params=dict(params), needs=tuple(needs), line=line)


def _stage_lines(text: str) -> list[int]:
    """The line of each item of ``stages`` (1-based), from the YAML node tree (no objects built)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return []
    if not isinstance(root, yaml.MappingNode):
        return []
    for key, value in root.value:
        if getattr(key, "value", None) == "stages" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


# ------------------------------------------------------------------------------------------ running


@dataclass
class PipelineOutcome:
    out: Path
    results: dict[str, StageResult]
    skipped: list[str]
    report: Path | None  # the last report stage's file (None without a report stage)
    seconds: float


def stage_identity(plugin: Stage, stage: StageSpec, spec: PipelineSpec, inputs: Mapping[str, StageResult],
                   ctx: StageContext) -> str:
    return hash_value({"kind": stage.kind, "version": plugin.version, "seed": spec.seed,
                       "params": plugin.identity(stage.params, ctx),
                       "inputs": {name: result.hash for name, result in sorted(inputs.items())}})


def _previous_records(out: Path) -> dict[str, dict]:
    path = out / RECORD
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")).get("stages") or {})
    except (json.JSONDecodeError, AttributeError):
        raise InputError("not a pipeline record (delete the output folder or use another --out)", path) from None


def _reusable(record: dict | None, identity: str, out: Path) -> StageResult | None:
    """The recorded result, if it was made with this identity and its artifact still verifies."""
    if not record or record.get("status") != "done" or record.get("identity") != identity:
        return None
    folder = out / record["folder"]
    try:
        manifest = read_manifest(folder)
    except (ValueError, KeyError, TypeError):  # a damaged artifact.json: make the stage again
        return None
    if manifest is None or manifest.hash != record["hash"] or verify(folder):
        return None
    path = out / record["path"] if record.get("path") else None
    return StageResult(folder, record["hash"], record.get("facts") or {}, path)


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise HarnessError(f"{out} exists and is not a folder")
    if out.is_dir() and any(p.name != LOCK_FILE for p in out.iterdir()) and not (out / RECORD).is_file():
        raise HarnessError(f"{out} is not empty and holds no {RECORD}: not a pipeline folder; use another --out "
                           "(a pipeline removes the stage folders it re-runs)")


def _relative(path: Path, out: Path) -> str:
    return str(path.resolve().relative_to(out.resolve()))


def _fmt_facts(facts: Mapping[str, Any], prefix: str = "") -> str:
    """``key=value`` for the scalar facts; numbers inside nested mappings as ``outer.inner=value``."""
    shown = []
    for key, value in facts.items():
        if isinstance(value, Mapping):
            shown.append(_fmt_facts(value, f"{prefix}{key}."))
        elif isinstance(value, float):
            shown.append(f"{prefix}{key}={value:.4g}")
        elif isinstance(value, int) and not isinstance(value, bool) or (isinstance(value, str) and not prefix):
            shown.append(f"{prefix}{key}={value}")
    return " ".join(part for part in shown if part)


def run_pipeline(spec: PipelineSpec, out: str | Path | None = None, overrides: Mapping[str, Any] | None = None,
                 show_progress: bool = True, echo: Callable[[str], None] = print) -> PipelineOutcome:
    """Run ``spec`` into ``out`` (default: the spec's ``out``, else ``pipelines/<name>``), skipping
    stages whose artifacts were made from the same inputs. ``echo`` gets one line per stage:
    ``skip <stage> <hash>`` or ``done <stage> <hash> (<kind>, <seconds> s) <facts>``."""
    if overrides:
        spec = spec.with_overrides(overrides)
    out = Path(out or spec.out or Path("pipelines") / spec.name)
    _check_out(out)
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out, "pipeline folder"):
        return _run_stages(spec, out, show_progress, echo)


def _run_stages(spec: PipelineSpec, out: Path, show_progress: bool, echo: Callable[[str], None]) -> PipelineOutcome:
    previous = _previous_records(out)
    ctx = StageContext(seed=spec.seed, base_dir=Path(spec.base_dir), out=out, show_progress=show_progress)
    records: dict[str, dict] = {}
    skipped: list[str] = []
    report: Path | None = None
    started = time.perf_counter()

    def save() -> None:
        # stages not reached yet keep their old records: a run that stops early loses no skip
        stages = {s.name: records.get(s.name) or previous.get(s.name) for s in spec.stages}
        record = {"pipeline": spec.name, "source": spec.source, "spec": spec.to_dict(),
                  "stages": {name: entry for name, entry in stages.items() if entry}}
        atomic_write_text(out / RECORD, json.dumps(record, indent=2) + "\n")

    for stage in spec.stages:
        plugin = stage_plugin(stage.kind)
        inputs = {name: ctx.results[name] for name in stage.needs}
        identity = stage_identity(plugin, stage, spec, inputs, ctx)
        folder = out / stage.name
        began = time.perf_counter()
        result = _reusable(previous.get(stage.name), identity, out)
        if result is None:
            old = previous.get(stage.name) or {}
            if folder.exists() and old.get("identity") != identity and not plugin.reuse_folder:
                shutil.rmtree(folder)  # made from other inputs (or unfinished with them)
            records[stage.name] = {"kind": stage.kind, "identity": identity, "status": "started"}
            save()
            with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the stage lines
                result = plugin.run(stage.params, inputs, folder, ctx)
        else:
            skipped.append(stage.name)
        seconds = round(time.perf_counter() - began, 3)
        result = replace(result, stage=stage.name, kind=stage.kind,
                         inputs={name: r.hash for name, r in inputs.items()})
        ctx.results[stage.name] = result
        records[stage.name] = {
            "kind": stage.kind, "identity": identity, "status": "done", "hash": result.hash,
            "inputs": dict(result.inputs), "folder": _relative(result.folder, out),
            "path": _relative(result.path, out) if result.path else None,
            "seconds": seconds, "skipped": stage.name in skipped,
            # how long making it took (kept when it is skipped later)
            "made_in_seconds": previous[stage.name].get("made_in_seconds", 0.0) if stage.name in skipped else seconds,
            "facts": dict(result.facts)}
        save()
        if plugin.output == "report":
            report = result.target
        if stage.name in skipped:
            echo(f"skip {stage.name} {result.hash}")
        else:
            echo(f"done {stage.name} {result.hash} ({stage.kind}, {seconds:.1f} s) {_fmt_facts(result.facts)}".rstrip())
    return PipelineOutcome(out, ctx.results, skipped, report, round(time.perf_counter() - started, 3))
