"""Crash-safe file writing: atomic replace for whole files, fsync'd appends for logs, and the lock
that keeps a folder to one writer."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from harness.errors import HarnessError, InputError


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


def read_text(path: str | Path, encoding: str = "utf-8") -> str:
    """The file's text; bytes that are not valid ``encoding`` raise ``InputError`` naming the file
    and the line they are on (a BOM is dropped when ``encoding`` is ``utf-8-sig``)."""
    data = Path(path).read_bytes()
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"not {exc.encoding.upper()} text (byte {data[exc.start]:#04x} at offset "
                         f"{exc.start})", path, line) from None


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


#: the lock file a writer holds in its folder (run, dataset, pipeline or shared cache)
LOCK_FILE = ".harness.lock"


@contextlib.contextmanager
def folder_lock(folder: str | Path, what: str) -> Iterator[None]:
    """Hold ``folder``'s lock while writing it: a second writer stops at once with ``HarnessError``
    naming the holder's pid, instead of mixing its files with the first one's. The lock is an OS
    lock (``flock``) on ``folder/.harness.lock``, so the OS drops it when the holder dies, however.
    ``what`` names the folder in the message ("run folder", "shared cache"). The folder is created.
    Not POSIX: no lock (documented in docs/RELIABILITY.md)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(folder / LOCK_FILE, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise HarnessError(f"the {what} {folder} is in use by another harness process (pid {holder}); "
                               "wait for it to finish or use another folder") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)  # the pid goes with the lock: an idle folder names no holder
            fcntl.flock(handle, fcntl.LOCK_UN)


def remove_stray_temporaries(folder: str | Path) -> int:
    """Delete what interrupted atomic writes left in ``folder`` and below (``.NAME.XXXX.tmp``);
    returns how many. Call it only while holding the folder's lock."""
    removed = 0
    for path in Path(folder).rglob(".*.tmp"):
        if path.is_file():
            path.unlink()
            removed += 1
    return removed
