"""The ``eval`` pipeline stage: the shapes-world benchmarks on every labelled model.

``eval`` runs every listed benchmark on every labelled model through ``harness.runner.evaluate``.
The benchmarks' data are the shapes world's, written into the stage folder in the official layouts
(as ``harness demo`` does); each benchmark gets its procedural judges unless the entry names others.
All runs share one cache (``EVAL/cache``), so when only one model changed, the other's outputs
and verdicts are reused. The stage's artifact covers every run's result files.

``profile`` (a name in ``shapes.world.PROFILES``, default ``full``) picks the world profile: the
data are drawn from it, GenEval uses its prompt set, every procedural judge chooses only among its
shapes and colours, and each run spec carries it as its ``world`` (on every protocol card and in
every hash, so results of two profiles are never compared).
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Mapping

from harness.artifacts import read_manifest, write_manifest
from harness.hashing import hash_value
from harness.registry import register
from harness.spec import ComponentSpec, RunSpec
from harness.stage import (STAGE_NAME, Ref, Stage, StageContext, StageResult, check_keys, manifest_result,
                           stage_name)
from shapes.suite import SHAPES_BENCHMARKS, write_once
from shapes.world import FULL, PROFILES, get_profile


def _benchmark_params(name: str) -> set[str]:
    """The parameters an entry may pass to the benchmark: the plugin's own, less those the stage
    sets itself (the suite entry's data paths and fixed parameters)."""
    import inspect

    from harness import registry

    accepted = set(inspect.signature(registry.get("benchmark", name)).parameters)
    return accepted - set(SHAPES_BENCHMARKS[name].paths) - set(SHAPES_BENCHMARKS[name].fixed)


def _entries(params: Mapping[str, Any]) -> list[tuple[str, dict, dict]]:
    """(name, params, judges) of each benchmark entry; a bare name is an entry with defaults."""
    entries = []
    for entry in params.get("benchmarks") or []:
        entry = {"name": entry} if isinstance(entry, str) else entry
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise ValueError(f"a benchmark entry is a name or {{name, params, judges}}, got {entry!r}")
        check_keys(entry, {"name", "params", "judges"})
        entries.append((entry["name"], dict(entry.get("params") or {}), dict(entry.get("judges") or {})))
    return entries


@register("stage", "eval")
class EvalStage(Stage):
    """Params: ``models`` ({label: model stage}), ``benchmarks`` (entries: a name, or {name, params,
    judges}; names from shapes.suite.SHAPES_BENCHMARKS), ``model_params`` (extra ``janus`` adapter parameters,
    e.g. cfg_weight), ``answer_tokens`` (max_new_tokens for MME and MMBench answers, default 8),
    ``profile`` (the shapes-world profile, default ``full``)."""

    output = "evaluation"
    reuse_folder = True  # runs whose spec is unchanged resume from the shared cache

    def check(self, params: Mapping[str, Any]) -> list[Ref]:
        check_keys(params, {"models", "benchmarks", "model_params", "answer_tokens", "profile"},
                   {"models", "benchmarks"})
        if params.get("profile", "full") not in PROFILES:
            raise ValueError(f"profile must be one of {', '.join(PROFILES)}, got {params['profile']!r}")
        models = params["models"]
        if not isinstance(models, Mapping) or not models:
            raise ValueError("models must map labels to model stages, e.g. {trained: train}")
        bad = [label for label in models if not isinstance(label, str) or not STAGE_NAME.match(label)]
        if bad:
            raise ValueError(f"model labels are folder names (letters, digits, '-', '_', '.'): {bad}")
        if not isinstance(params.get("model_params") or {}, Mapping):
            raise ValueError("model_params must be a mapping of janus adapter parameters")
        entries = _entries(params)
        if not entries:
            raise ValueError("benchmarks must list at least one benchmark")
        for name, bench_params, judges in entries:
            if name not in SHAPES_BENCHMARKS:
                raise ValueError(f"no shapes-world benchmark {name!r} (known: {', '.join(SHAPES_BENCHMARKS)})")
            check_keys(bench_params, set(SHAPES_BENCHMARKS[name].data) | _benchmark_params(name))
            for role, judge in judges.items():
                ComponentSpec.from_dict(judge, f"{name} judges.{role}")
        if len({name for name, _, _ in entries}) != len(entries):
            raise ValueError("each benchmark may be listed once")
        return [Ref(f"models.{label}", stage_name(models, label), ("model",)) for label in models]

    def specs(self, params: Mapping[str, Any], inputs: Mapping[str, StageResult], folder: Path,
              seed: int) -> dict[str, dict[str, RunSpec]]:
        """benchmark -> label -> run spec, writing each benchmark's data first (once)."""
        model_params = {"batch_size": 16, **(params.get("model_params") or {})}
        answer_tokens = params.get("answer_tokens", 8)
        profile = get_profile(params.get("profile", "full"))
        # the full world writes, names and judges exactly as before profiles existed
        profiled = {} if profile is FULL else {"profile": profile.name}
        world = None if profile is FULL else {"shapes_profile": profile.describe()}
        specs: dict[str, dict[str, RunSpec]] = {}
        for name, bench_params, judge_specs in _entries(params):
            shapes = SHAPES_BENCHMARKS[name]
            data = {key: bench_params.pop(key, default) for key, default in shapes.data.items()}
            located = {}
            if shapes.writer is not None:
                tag = f"{profile.name}-" if profiled else ""
                path = folder / "data" / f"{name}-{tag}{hash_value(data, length=8)}-seed{seed}{shapes.suffix}"
                write_once(path, lambda target: shapes.writer(target, data, seed, **profiled))
                located = shapes.locate(path.resolve())
            fixed = {**shapes.fixed, **(shapes.profiled(profile) if profiled else {})}
            benchmark = ComponentSpec(name, {**fixed, **located, **bench_params})
            judges = {role: ComponentSpec(kind, dict(profiled)) for role, kind in shapes.judges.items()}
            judges.update({role: ComponentSpec.from_dict(judge, f"{name} judges.{role}")
                           for role, judge in judge_specs.items()})
            specs[name] = {}
            for label, stage in params["models"].items():
                adapter = {"path": str(inputs[stage].target.resolve()), **model_params}
                if shapes.answers:
                    adapter["max_new_tokens"] = answer_tokens
                specs[name][label] = RunSpec(benchmark=benchmark, model=ComponentSpec("janus", adapter),
                                             judges=judges, seed=seed, world=world)
        return specs

    def run(self, params: Mapping[str, Any], inputs: Mapping[str, StageResult], folder: Path,
            ctx: StageContext) -> StageResult:
        from harness.runner import evaluate

        specs = self.specs(params, inputs, folder, ctx.seed)
        _remove_stale_runs(folder / "runs", specs)
        files: list[str] = []
        runs: dict[str, dict[str, str]] = {}
        headline: dict[str, dict[str, float]] = {}
        for name, by_label in specs.items():
            for label, spec in by_label.items():
                run_dir = folder / "runs" / name / label
                recorded = run_dir / "spec.yaml"
                if recorded.is_file() and RunSpec.load(recorded).hash != spec.hash:
                    shutil.rmtree(run_dir)  # another benchmark setup; the shared cache keeps what still fits
                outcome = evaluate(spec, run_dir, cache_dir=folder / "cache", show_progress=ctx.show_progress)
                manifest = read_manifest(run_dir)
                files += [f"runs/{name}/{label}/{rel}" for rel in manifest.files]
                runs.setdefault(name, {})[label] = f"runs/{name}/{label}"
                headline.setdefault(name, {})[label] = outcome.summary.scores.get("overall")
        inputs_hashes = {f"model:{label}": inputs[stage].hash for label, stage in params["models"].items()}
        write_manifest(folder, "evaluation", files, {**inputs_hashes, "settings": hash_value(dict(params))},
                       spec={"runs": {n: {l: s.to_dict() for l, s in by.items()} for n, by in specs.items()}})
        return manifest_result(folder, {"runs": runs, "overall": headline})


def _remove_stale_runs(runs: Path, specs: Mapping[str, Mapping[str, RunSpec]]) -> None:
    """Run folders of benchmarks or labels no longer listed (the report must not pick them up)."""
    if not runs.is_dir():
        return
    for bench in runs.iterdir():
        for label in (bench.iterdir() if bench.is_dir() else []):
            if label.name not in specs.get(bench.name, {}):
                shutil.rmtree(label)
