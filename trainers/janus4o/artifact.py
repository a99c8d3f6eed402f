"""The trained checkpoint as an artifact: its inputs' hashes (lineage) and its manifest.

``out_dir/artifact.json`` (kind ``checkpoint``, :func:`harness.artifacts.write_manifest`, written last)
covers ``model/`` (a ``save_pretrained`` folder the ``janus`` adapter loads), ``loss.json``, ``loss.png``
and ``train_config.json``. Its ``inputs``:

* ``base_model``: the hash in the base folder's ``artifact.json`` (or, for ``<checkpoint>/model``, in
  the checkpoint's), else a hash of every file in the folder;
* ``data``: the synth dataset folder's ``artifact.json`` hash when the training JSON is one of that
  dataset's files (unchanged), else a hash of the JSON and of the images it names, in order;
* ``config``: a hash of the settings that decide the result (``TrainConfig.identity()``).

``budget.json`` (samples, tokens, wall time, GPU-hours) is written too and copied into the manifest's
``info``, not into its content hash: two runs that make the same weights are the same artifact however
long they took. File hashes of the inputs are remembered in ``out_dir/input_hashes.json`` by (size,
mtime) so a finished run's check does not re-read a 15 GB base model.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable

from harness.artifacts import MANIFEST, Artifact, read_manifest, verify, write_manifest
from harness.dataset_formats import read_llava, read_sharegpt4o
from harness.fileio import atomic_write_text
from harness.hashing import hash_file, hash_value

KIND = "checkpoint"
CONTENT_FILES = ("loss.json", "loss.png", "train_config.json")
HASH_CACHE = "input_hashes.json"


class FileHasher:
    """``hash_file`` with a cache keyed by absolute path, size and modification time."""

    def __init__(self, cache_file: Path | None = None) -> None:
        self.cache_file = cache_file
        self.entries: dict[str, list[Any]] = {}
        if cache_file is not None and cache_file.is_file():
            try:
                self.entries = json.loads(cache_file.read_text())
            except ValueError:  # a damaged cache only costs a re-hash
                self.entries = {}

    def __call__(self, path: Path) -> str:
        key = str(path.resolve())
        stat = os.stat(key)
        known = self.entries.get(key)
        if known is not None and known[:2] == [stat.st_size, stat.st_mtime_ns]:
            return str(known[2])
        digest = hash_file(key)
        self.entries[key] = [stat.st_size, stat.st_mtime_ns, digest]
        return digest

    def save(self) -> None:
        if self.cache_file is not None and self.cache_file.parent.is_dir():
            atomic_write_text(self.cache_file, json.dumps(self.entries, indent=0, sort_keys=True))


def folder_files(folder: Path) -> list[str]:
    """Every file under ``folder`` (relative, sorted), the manifest excluded."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and p.relative_to(folder).as_posix() != MANIFEST)


def base_model_hash(model_dir: Path, hasher: FileHasher) -> str:
    for candidate, prefix in ((model_dir, ""), (model_dir.parent, model_dir.name + "/")):
        manifest = read_manifest(candidate)
        # the manifest must describe this folder: its config.json is listed, with this content
        if manifest is not None and manifest.files.get(prefix + "config.json") == hasher(model_dir / "config.json"):
            return manifest.hash
    return hash_value({"files": {rel: hasher(model_dir / rel) for rel in folder_files(model_dir)}})


def sharegpt4o_images(dataset_json: Path) -> list[Path]:
    return [p for sample in read_sharegpt4o(dataset_json) for p in (*sample.input_images, sample.output_image)]


def llava_images(dataset_json: Path) -> list[Path]:
    return [c.image for c in read_llava(dataset_json) if c.image is not None]


def data_hash(dataset_json: Path, hasher: FileHasher,
              images: Callable[[Path], list[Path]] = sharegpt4o_images) -> str:
    manifest = read_manifest(dataset_json.parent)
    own = hasher(dataset_json)
    # synth datasets name their images by content, so an unchanged JSON pins the images too
    if manifest is not None and manifest.kind == "dataset" and manifest.files.get(dataset_json.name) == own:
        return manifest.hash
    unique = list(dict.fromkeys(images(dataset_json)))
    return hash_value({"json": own, "images": [hasher(p) for p in unique]})


def training_inputs(model_dir: Path, dataset_json: Path, settings: dict[str, Any], hasher: FileHasher,
                    images: Callable[[Path], list[Path]] = sharegpt4o_images) -> dict[str, str]:
    return {"base_model": base_model_hash(model_dir, hasher), "data": data_hash(dataset_json, hasher, images),
            "config": hash_value(settings)}


def finished_artifact(out_dir: Path, inputs: dict[str, str]) -> Artifact | None:
    """The finished checkpoint in ``out_dir`` made from ``inputs``, if its files are intact; raises
    when ``out_dir`` holds a checkpoint made from other inputs."""
    from harness.errors import HarnessError

    artifact = read_manifest(out_dir)
    if artifact is None:
        return None
    if artifact.kind != KIND or artifact.inputs != inputs:
        changed = sorted(k for k in {*inputs, *artifact.inputs} if inputs.get(k) != artifact.inputs.get(k))
        raise HarnessError(f"{out_dir} holds a {artifact.kind} made with other settings or inputs "
                           f"({', '.join(changed)} differ); use another out_dir")
    return artifact if not verify(out_dir) else None


def write_checkpoint_artifact(out_dir: Path, inputs: dict[str, str], spec: dict[str, Any],
                              info: dict[str, Any], content_files: Iterable[str] = CONTENT_FILES) -> Artifact:
    files = [f"model/{rel}" for rel in folder_files(out_dir / "model")] + list(content_files)
    return write_manifest(out_dir, KIND, files, inputs, spec=spec, info=info)
