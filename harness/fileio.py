"""Crash-safe file writing: atomic replace for whole files, fsync'd appends for logs."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from harness.errors import InputError


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` so that ``path`` holds either the old content or all of the new, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_jsonl(path: str | Path, rows: Iterable[Any]) -> None:
    atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def read_jsonl(path: str | Path, *, tolerate_torn_tail: bool = False) -> Iterator[tuple[int, Any]]:
    """Yield ``(line number, value)``; a malformed line raises InputError naming file and line.

    With ``tolerate_torn_tail`` a last line without its newline that does not parse is skipped:
    that is what a process killed in the middle of an append leaves behind.
    """
    with open(path, "rb") as handle:
        lines = handle.read().split(b"\n")
    last = len(lines)
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            yield number, json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            if tolerate_torn_tail and number == last:  # no trailing newline: an interrupted append
                return
            raise InputError(f"malformed JSON line ({exc})", path, number) from None


class AppendLog:
    """An append-only JSON-lines file; each append is flushed and fsync'd before returning.

    A record is durable once ``append`` returns. A crash mid-append leaves at most one torn last
    line, which readers skip and the next append starts a fresh line after.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = None

    def append(self, record: Any, sync: bool = True) -> None:
        """Append one record; with ``sync=False`` it is durable only after the next ``sync()`` (callers
        on many threads write under their lock and sync outside it, so their fsyncs overlap)."""
        if self._handle is None:
            self._repair_torn_tail()
            self._handle = open(self.path, "ab")
        self._handle.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
        self._handle.flush()
        if sync:
            os.fsync(self._handle.fileno())

    def sync(self) -> None:
        if self._handle is not None:
            os.fsync(self._handle.fileno())

    def _repair_torn_tail(self) -> None:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as handle:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":  # torn last record: drop it
                data = self.path.read_bytes()
                handle.seek(0)
                handle.truncate(data.rfind(b"\n") + 1)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> "AppendLog":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
