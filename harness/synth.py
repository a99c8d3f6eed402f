"""Run a data recipe: source -> steps -> a dataset artifact (``harness synth RECIPE.yaml``).

Layout of a dataset folder::

    DATASET/recipe.yaml        the recipe as run
    DATASET/rows.jsonl         every kept row, all fields, in source order
    DATASET/images/            the images the rows name (content-addressed)
    DATASET/sharegpt4o.json    exports named by the recipe (llava.json, data/train-*.parquet, ...)
    DATASET/dropped.jsonl      rows a filter left out, with the reason
    DATASET/failures.jsonl     rows that failed (retried on the next run)
    DATASET/artifact.json      written last: content hash, lineage, counts, usage and cost
    DATASET/cache/             call and step caches, image blobs (not part of the content)

Resume: two caches make a re-run free. Every API call is cached by content the moment its reply
arrives (``harness.clients.call_cache``); every step's result per row is cached after each batch.
So a killed run, started again, re-asks only what was in flight, and ends with the same files as
an uninterrupted run. A finished dataset without failures is not run again.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from harness import registry
from harness.artifacts import Artifact, read_manifest, verify, write_manifest
from harness.cache import KeyedLog
from harness.clients.call_cache import BlobStore, CachedClient, validate_prices
from harness.clients.openai_compat import OpenAICompatClient, connect
from harness.dataset_formats import EXPORTS
from harness.errors import HarnessError, InputError
from harness.fileio import (LOCK_FILE, atomic_write_bytes, atomic_write_text, folder_lock,
                            remove_stray_temporaries, write_jsonl)
from harness.hashing import hash_value
from harness.registry import register
from harness.recipe import (IMAGE_DIR, Drop, Failure, RecipeSpec, Source, Step, StepContext,
                            plugin_identity, row_key)
from harness.safety import safe_name
from harness.stage import Ref, Stage, StageContext, StageResult, check_keys

RECIPE_FILE = "recipe.yaml"
ROWS_FILE = "rows.jsonl"


@dataclass
class SynthOutcome:
    folder: Path
    artifact: Artifact
    skipped: bool  # the dataset was already complete


def default_folder(spec: RecipeSpec, plugins: Sequence[Any]) -> Path:
    return Path("datasets") / f"{spec.name}-{hash_value(spec.identity(plugins), length=12)}"


def build_plugins(spec: RecipeSpec) -> list[Any]:
    plugins = []
    for index, step in enumerate(spec.steps):
        try:
            plugin = registry.build("generator", step.name, **step.params)
        except registry.UnknownPluginError as exc:
            raise InputError(str(exc), spec.source) from None
        except (InputError, TypeError, ValueError) as exc:  # a typo or a bad value in the step's params
            raise InputError(f"steps[{index}] {step.name!r}: {exc}", spec.source) from None
        wanted = Source if index == 0 else Step
        if not isinstance(plugin, wanted):
            raise InputError(f"steps[{index}] {step.name!r} is a {type(plugin).__bases__[0].__name__.lower()}; "
                             f"the first step must be a source and the others steps over rows", spec.source)
        plugins.append(plugin)
    check_fields(spec, plugins)
    return plugins


def check_fields(spec: RecipeSpec, plugins: Sequence[Any]) -> None:
    """Refuse a recipe whose steps read fields nothing writes, before anything is paid for."""
    for index, (plugin, step) in enumerate(zip(plugins, spec.steps)):
        for role in {getattr(plugin, "client_role", None), getattr(plugin, "text_client_role", None)} - {None}:
            if role not in spec.clients:
                raise InputError(f"steps[{index}] {step.name!r} uses client {role!r}, which the recipe does not "
                                 f"define (clients: {', '.join(sorted(spec.clients)) or 'none'})", spec.source)
    available = {"id", *plugins[0].outputs}
    for index, (plugin, step) in enumerate(zip(plugins[1:], spec.steps[1:]), start=1):
        missing = [name for name in plugin.inputs if name not in available]
        if missing:
            raise InputError(f"steps[{index}] {step.name!r} reads {missing}, which no earlier step writes "
                             f"(available: {', '.join(sorted(available))})", spec.source)
        available |= set(plugin.outputs)
    for name in spec.export:
        if name not in EXPORTS:
            raise InputError(f"unknown export {name!r} (known: {', '.join(sorted(EXPORTS))})", spec.source)
        missing = [field for field in EXPORTS[name].required_fields if field not in available]
        if missing:
            raise InputError(f"export {name!r} needs fields {missing} that no step writes", spec.source)


def connect_clients(spec: RecipeSpec) -> dict[str, tuple[OpenAICompatClient, Any]]:
    """role -> (client, prices), checked; nothing is written (a bad parameter stops here)."""
    clients = {}
    for role, params in spec.clients.items():
        params = dict(params)
        prices = validate_prices(params.pop("prices", None), f"{spec.source}: clients.{role}")
        try:  # RecipeSpec has checked the keys; connect() checks them again, as for every client
            client = connect(owner=f"clients.{role}", credentials_now=False, **params)
        except InputError as exc:
            raise InputError(exc.detail, spec.source) from None
        clients[role] = (client, prices)
    return clients


def synthesize(spec: RecipeSpec, out: str | Path | None = None, cache_dir: str | Path | None = None,
               show_progress: bool = True) -> SynthOutcome:
    """Run (or resume) ``spec``; return the dataset folder and its manifest.

    One writer per dataset folder (and per shared ``cache_dir``): a second ``harness synth`` into
    either stops at once. The recipe copy is the first thing written, so a run killed at any point
    leaves a folder the same command resumes; temporaries of interrupted writes are removed."""
    plugins = build_plugins(spec)
    folder = Path(out) if out is not None else default_folder(spec, plugins)
    if folder.exists() and not folder.is_dir():
        raise HarnessError(f"--out {folder} exists and is not a folder")
    connected = connect_clients(spec)  # before anything is written: bad client params stop here
    cache = Path(cache_dir) if cache_dir is not None else folder / "cache"
    # what a run killed before its recipe copy may leave: the lock, temporaries, the default cache
    if folder.is_dir() and not (folder / RECIPE_FILE).is_file() and any(
            p.name not in (LOCK_FILE, "cache") and not _is_temporary(p) for p in folder.iterdir()):
        raise HarnessError(f"{folder} is not empty and holds no dataset made by a recipe; use another --out "
                           f"(a recipe's run deletes images its rows do not name)")
    with contextlib.ExitStack() as locks:
        locks.enter_context(folder_lock(folder, "dataset folder"))
        if cache_dir is not None:
            locks.enter_context(folder_lock(cache, "shared cache"))
        return _synthesize(spec, plugins, folder, cache, connected, show_progress)


def _is_temporary(path: Path) -> bool:
    return path.name.startswith(".") and path.name.endswith(".tmp")


def _synthesize(spec: RecipeSpec, plugins: list[Any], folder: Path, cache: Path,
                connected: dict[str, tuple[OpenAICompatClient, Any]], show_progress: bool) -> SynthOutcome:
    identity = spec.identity(plugins)
    recorded = folder / RECIPE_FILE
    if recorded.is_file():
        old = RecipeSpec.load(recorded)
        if len(old.steps) != len(spec.steps) or old.identity(build_plugins(old)) != identity:
            raise HarnessError(f"{folder} holds a dataset of another recipe ({recorded}); use another --out")
    remove_stray_temporaries(folder)
    if cache != folder / "cache":
        remove_stray_temporaries(cache)
    previous = read_manifest(folder)
    source = plugins[0]
    inputs = {"recipe": hash_value(identity), **source.input_hashes()}
    if previous is not None and previous.info.get("failed") == 0 and previous.inputs == inputs and not verify(folder):
        return SynthOutcome(folder, previous, skipped=True)
    atomic_write_text(recorded, spec.to_yaml())  # first: from now on the folder is this recipe's
    blobs = BlobStore(cache / "blobs")
    clients = {role: CachedClient(client, KeyedLog(cache, f"calls-{role}"), blobs, prices)
               for role, (client, prices) in connected.items()}
    started = time.time()

    rows = source.rows(StepContext(spec.seed, step_salt(0, spec.steps[0].name), blobs, clients))
    _check_rows(rows, spec.steps[0].name, source.outputs)
    dropped: list[dict] = []
    failed: list[dict] = []
    steps_done = []
    calls_used: dict[str, set[str]] = {role: set() for role in clients}
    for index, (plugin, step_spec) in enumerate(zip(plugins[1:], spec.steps[1:]), start=1):
        ctx = StepContext(spec.seed, step_salt(index, step_spec.name), blobs, clients)
        rows, step_dropped, step_failed = _run_step(index, plugin, step_spec, rows, ctx, cache, show_progress,
                                                    clients, calls_used)
        dropped += step_dropped
        failed += step_failed
        steps_done.append({"step": step_spec.name, "kept": len(rows), "dropped": len(step_dropped),
                           "failed": len(step_failed)})

    files = _write_dataset(folder, rows, blobs, spec.export)
    write_jsonl(folder / "dropped.jsonl", dropped)
    write_jsonl(folder / "failures.jsonl", failed)
    usage = {role: client.usage(calls_used[role]) for role, client in sorted(clients.items())}
    info = {"rows": len(rows), "dropped": len(dropped), "failed": len(failed), "steps": steps_done,
            "usage": usage, "cost_usd": round(sum(u["dataset"]["cost_usd"] for u in usage.values()), 6),
            "seconds": round(time.time() - started, 3)}
    artifact = write_manifest(folder, "dataset", files, inputs, {"recipe": spec.to_dict()}, info)
    return SynthOutcome(folder, artifact, skipped=False)


def _run_step(index: int, plugin: Step, spec: Any, rows: list[dict], ctx: StepContext, cache: Path,
              show_progress: bool, clients: dict[str, CachedClient],
              calls_used: dict[str, set[str]]) -> tuple[list[dict], list[dict], list[dict]]:
    """Run one step over ``rows``: results are cached per row after each batch; a batch record
    lists the API calls it touched, so the dataset's cost counts them however the rows were made."""
    # the clients' models are part of what a step's rows depend on (a shared cache may hold another's)
    identity = {**plugin_identity(plugin, spec),
                "clients": {role: client.identity for role, client in sorted(clients.items())}}
    log = KeyedLog(cache, f"step{index:02d}-{spec.name}")
    keys = [row_key(identity, row, plugin.inputs, ctx.seed(row)) for row in rows]
    pending = [i for i, key in enumerate(keys) if log.get(key) is None]
    failures: dict[int, str] = {}
    bar = _progress(len(pending), f"{index}:{spec.name}", show_progress)
    for start in range(0, len(pending), plugin.batch_size):
        batch = pending[start:start + plugin.batch_size]
        marks = {role: client.mark() for role, client in clients.items()}
        results = plugin.generate([rows[i] for i in batch], ctx)
        if len(results) != len(batch):
            raise HarnessError(f"step {spec.name!r} returned {len(results)} results for {len(batch)} rows")
        batch_key = "batch-" + hash_value([keys[i] for i in batch], length=32)
        log.put(batch_key, {"calls": {role: client.touched_since(marks[role]) for role, client in clients.items()}},
                sync=False)
        for i, result in zip(batch, results):
            if isinstance(result, Failure):
                failures[i] = result.error
            elif isinstance(result, Drop):
                log.put(keys[i], {"drop": result.reason, "batch": batch_key}, sync=False)
            elif isinstance(result, dict) and set(result) == set(plugin.outputs):
                log.put(keys[i], {"fields": result, "batch": batch_key}, sync=False)
            else:
                raise HarnessError(f"step {spec.name!r} returned {result!r} for row {rows[i]['id']!r}; "
                                   f"expected a dict with exactly its outputs {list(plugin.outputs)}, Drop or Failure")
        log.sync()  # one fsync per batch: the batch record and its rows become durable together
        bar.update(len(batch))
    bar.close()
    kept, dropped, failed = [], [], []
    for i, (row, key) in enumerate(zip(rows, keys)):
        record = log.get(key)
        if i in failures or record is None:
            failed.append({"id": row["id"], "step": spec.name, "error": failures.get(i, "no result")})
            continue
        for role, call_keys in (log.get(record.get("batch", "")) or {}).get("calls", {}).items():
            calls_used.setdefault(role, set()).update(call_keys)
        if "drop" in record:
            dropped.append({"id": row["id"], "step": spec.name, "reason": record["drop"]})
        else:
            kept.append({**row, **record["fields"]})
    log.close()
    return kept, dropped, failed


def _check_rows(rows: list[dict], name: str, outputs: Iterable[str]) -> None:
    seen: set[str] = set()
    for row in rows:
        row_id = row.get("id")
        if not isinstance(row_id, str) or not row_id:
            raise HarnessError(f"source {name!r} made a row without a string id: {row!r}")
        if row_id in seen:
            raise HarnessError(f"source {name!r} made two rows with id {row_id!r}")
        seen.add(row_id)
        if set(row) != {"id", *outputs}:
            raise HarnessError(f"source {name!r} made row {row_id!r} with fields {sorted(row)}; it declares "
                               f"{sorted(['id', *outputs])}")


def step_salt(index: int, name: str) -> str:
    """What a step's per-row seeds are derived from: its position and name (two steps of the same
    plugin in one recipe draw different samples)."""
    return f"{index}:{name}"


def image_refs(value: Any) -> list[str]:
    """Every image field value inside a row value (strings under ``images/``, in lists too)."""
    if isinstance(value, str):
        return [value] if value.startswith(IMAGE_DIR + "/") else []
    if isinstance(value, list):
        return [ref for item in value for ref in image_refs(item)]
    return []


def _write_dataset(folder: Path, rows: list[dict], blobs: BlobStore, exports: Sequence[str]) -> list[str]:
    """rows.jsonl, the images the rows name (hard links to the blobs), and the exports."""
    refs = sorted({ref for row in rows for value in row.values() for ref in image_refs(value)})
    (folder / IMAGE_DIR).mkdir(exist_ok=True)
    for ref in refs:
        target = folder / safe_name(ref, "image named by a row")
        if not target.is_file():
            source = blobs.path(Path(ref).name)
            if not source.is_file():
                raise HarnessError(f"image {ref} named by a row is missing from the store {blobs.folder}")
            try:
                os.link(source, target)
            except OSError:  # another file system: copy (atomically: a kill leaves no half image)
                atomic_write_bytes(target, source.read_bytes())
    for stale in (folder / IMAGE_DIR).iterdir():  # left by an earlier, different run of this recipe
        if f"{IMAGE_DIR}/{stale.name}" not in refs:
            stale.unlink()
    write_jsonl(folder / ROWS_FILE, rows)
    files = [ROWS_FILE, *refs]
    for name in exports:
        files += EXPORTS[name].write(rows, folder)
    return files


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, desc: str, enabled: bool) -> Any:
    if not enabled or total == 0:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="row", file=sys.stderr, leave=False)


@register("stage", "synth")
class SynthStage(Stage):
    """Run a data recipe. Params: ``recipe`` (path, relative to the pipeline file), ``overrides``
    (the recipe's dotted overrides, e.g. ``{steps.0.params.t2i: 20}``)."""

    output = "dataset"

    def check(self, params: Mapping[str, Any]) -> list[Ref]:
        check_keys(params, {"recipe", "overrides"}, {"recipe"})
        if not isinstance(params["recipe"], str):
            raise ValueError(f"recipe must be a path, got {params['recipe']!r}")
        if not isinstance(params.get("overrides") or {}, Mapping):
            raise ValueError("overrides must be a mapping of dotted keys to values")
        return []

    def _recipe(self, params: Mapping[str, Any], ctx: StageContext):
        recipe = RecipeSpec.load(ctx.resolve(params["recipe"]))
        return recipe.with_overrides(params["overrides"]) if params.get("overrides") else recipe

    def identity(self, params: Mapping[str, Any], ctx: StageContext) -> Any:
        recipe = self._recipe(params, ctx)  # the recipe's content, not its path
        plugins = build_plugins(recipe)
        return {"recipe": recipe.identity(plugins), "sources": plugins[0].input_hashes()}

    def run(self, params: Mapping[str, Any], inputs: Mapping[str, StageResult], folder: Path,
            ctx: StageContext) -> StageResult:
        outcome = synthesize(self._recipe(params, ctx), out=folder, show_progress=ctx.show_progress)
        info = outcome.artifact.info
        if info.get("failed"):
            raise HarnessError(f"{info['failed']} rows of the recipe failed (see {folder / 'failures.jsonl'}); "
                               "run the pipeline again to retry them")
        facts = {"rows": info.get("rows", 0), "dropped": info.get("dropped", 0), "cost_usd": info.get("cost_usd", 0)}
        return StageResult(folder, outcome.artifact.hash, facts)
