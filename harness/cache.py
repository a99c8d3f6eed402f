"""Generation and judgement caches: append-only, crash-safe, shared by resumed runs.

Keys follow the design:

- generation key = hash(model digest, adapter protocol, benchmark protocol, request, sample seed).
  Sampled outputs are cached too: the seed is in the key, so the same key means the same image.
- judgement key = hash(output hash, judge ids and versions, judge options, the item's metadata).
  Swapping a judge changes the key and re-runs only judging.

Each rank appends to its own file (``<name>.rank<R>.jsonl``), so ranks never interleave writes;
readers merge all ranks' files. A cache line is written only after the output it names is on disk.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.fileio import AppendLog, read_jsonl
from harness.hashing import hash_value


def generation_key(model_digest: str, model_protocol: dict, benchmark_protocol: dict,
                   prompt: str, sample_id: str, seed: int) -> str:
    return hash_value({"model": model_digest, "model_protocol": model_protocol,
                       "benchmark_protocol": benchmark_protocol, "prompt": prompt,
                       "sample_id": sample_id, "seed": seed}, length=32)


def judgement_key(output_hash: str, judges: dict, options: dict, item: Any) -> str:
    return hash_value({"output": output_hash, "judges": judges, "options": options, "item": item}, length=32)


class KeyedLog:
    """A cache: ``key -> record`` backed by per-rank append-only logs in one folder."""

    def __init__(self, folder: str | Path, name: str, rank: int = 0):
        self.folder = Path(folder)
        self.name = name
        self._entries: dict[str, dict] = {}
        for path in sorted(self.folder.glob(f"{name}.rank*.jsonl")):
            for _, record in read_jsonl(path, tolerate_torn_tail=True):
                self._entries[record["key"]] = record
        self._log = AppendLog(self.folder / f"{name}.rank{rank}.jsonl")

    def get(self, key: str) -> dict | None:
        return self._entries.get(key)

    def put(self, key: str, record: dict, sync: bool = True) -> None:
        record = {"key": key, **record}
        self._log.append(record, sync=sync)
        self._entries[key] = record

    def sync(self) -> None:
        """Make every ``put(..., sync=False)`` so far durable."""
        self._log.sync()

    def __len__(self) -> int:
        return len(self._entries)

    def close(self) -> None:
        self._log.close()
