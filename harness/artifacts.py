"""Artifacts: folders with a manifest that gives their content hash and their inputs' hashes.

Every stage (synth, train, eval) writes one artifact. ``artifact.json`` records:

- ``kind``: dataset, checkpoint, results, ...
- ``hash``: content hash over the artifact's declared files (so equal content = equal hash);
- ``inputs``: role -> hash of what it was made from (the model weights, the data file, the spec);
- ``spec``: the spec that made it.

Following ``inputs`` from a score back through the store is the lineage: results -> checkpoint ->
dataset -> recipe. The manifest is written last, atomically: a folder without one is unfinished.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from harness.fileio import atomic_write_text
from harness.hashing import hash_file, hash_value

MANIFEST = "artifact.json"


@dataclass
class Artifact:
    kind: str
    hash: str
    inputs: dict[str, str]
    files: dict[str, str]
    spec: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0
    path: Path | None = None
    #: facts about how the artifact was made that are not part of its content (counts, usage, timing)
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "hash": self.hash, "inputs": self.inputs, "files": self.files,
                "spec": self.spec, "created": self.created, "info": self.info}


def write_manifest(folder: str | Path, kind: str, files: Iterable[str], inputs: dict[str, str],
                   spec: dict | None = None, info: dict | None = None) -> Artifact:
    """Hash ``files`` (paths relative to ``folder``) and write the manifest last."""
    folder = Path(folder)
    file_hashes = {rel: hash_file(folder / rel) for rel in sorted(files)}
    content_hash = hash_value({"kind": kind, "files": file_hashes, "inputs": inputs})
    artifact = Artifact(kind=kind, hash=content_hash, inputs=dict(inputs), files=file_hashes,
                        spec=spec or {}, created=time.time(), path=folder, info=info or {})
    atomic_write_text(folder / MANIFEST, json.dumps(artifact.to_dict(), indent=2) + "\n")
    return artifact


def read_manifest(folder: str | Path) -> Artifact | None:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return Artifact(path=Path(folder), **data)


def verify(folder: str | Path) -> list[str]:
    """Files whose content no longer matches the manifest (empty list = intact)."""
    artifact = read_manifest(folder)
    if artifact is None:
        return [MANIFEST]
    return [rel for rel, digest in artifact.files.items()
            if not (Path(folder) / rel).is_file() or hash_file(Path(folder) / rel) != digest]


class ArtifactStore:
    """A root folder of artifacts, ``<root>/<kind>/<key>/``, findable by content hash."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def folder(self, kind: str, key: str) -> Path:
        return self.root / kind / key

    def get(self, kind: str, key: str) -> Artifact | None:
        return read_manifest(self.folder(kind, key))

    def all(self) -> list[Artifact]:
        found = []
        for manifest in sorted(self.root.glob(f"*/*/{MANIFEST}")):
            artifact = read_manifest(manifest.parent)
            if artifact is not None:
                found.append(artifact)
        return found

    def by_hash(self, content_hash: str) -> Artifact | None:
        return next((a for a in self.all() if a.hash == content_hash), None)

    def lineage(self, artifact: Artifact) -> dict[str, Any]:
        """The tree of inputs behind an artifact; inputs not in the store appear as bare hashes."""
        tree: dict[str, Any] = {"kind": artifact.kind, "hash": artifact.hash, "inputs": {}}
        for role, digest in artifact.inputs.items():
            parent = self.by_hash(digest)
            tree["inputs"][role] = self.lineage(parent) if parent else {"hash": digest}
        return tree
