"""Errors that name the file and line at fault, so a bad input is easy to find and fix."""
from __future__ import annotations

from pathlib import Path


class HarnessError(Exception):
    """An error the CLI reports as a one-line message (no traceback) and exit status 2."""


class InputError(HarnessError):
    """Bad user input: a malformed line, a corrupt image, a missing field."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.path, self.line, self.detail = path, line, message
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}")


class PartialBatchError(HarnessError):
    """A model adapter finished only part of a batch (an API that kept failing for some requests).

    ``done`` maps batch positions to finished outputs; the runner stores those before stopping, so
    a re-run pays only for what failed.
    """

    def __init__(self, message: str, done: dict[int, object]):
        super().__init__(message)
        self.done = done
