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

import json
import sys
from pathlib import Path
from typing import Any

from harness.fileio import AppendLog, atomic_write_bytes
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
        own = self.folder / f"{name}.rank{rank}.jsonl"
        for path in sorted(self.folder.glob(f"{name}.rank*.jsonl")):
            self._load(path, own=path == own)
        self._log = AppendLog(own)

    def _load(self, path: Path, own: bool) -> None:
        """Read one log. A line that is not a cache record (a disk error, a hand edit) is skipped
        with a warning and moved to ``<log>.corrupt`` (from this rank's own log; other ranks' logs
        are only read), so it costs that one entry and never blocks a run. A torn last line is what
        a killed append leaves: skipped, and repaired by the next append."""
        lines = path.read_bytes().split(b"\n")
        kept, bad = [], []
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
                self._entries[record["key"]] = record
            except (ValueError, KeyError, TypeError):
                if number < len(lines):  # not the torn tail
                    bad.append((number, raw))
                continue
            kept.append(raw)
        if not bad:
            return
        print(f"harness: warning: {path}: {len(bad)} corrupt cache line(s) skipped (line "
              f"{', '.join(str(n) for n, _ in bad)}); those entries are computed again", file=sys.stderr)
        if own:
            with open(path.with_name(path.name + ".corrupt"), "ab") as handle:
                handle.write(b"".join(raw + b"\n" for _, raw in bad))
            atomic_write_bytes(path, b"".join(raw + b"\n" for raw in kept))

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
