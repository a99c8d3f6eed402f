"""Commands that packages add to the ``harness`` command line.

A package registers a subcommand (``@register("command", "report")``) or, for a benchmark, its
``harness rescore NAME`` (``@register("rescore", "geneval")``). The CLI shell (``harness.cli``) builds
its parser from the registry, so it names no plugin; heavy imports belong in ``run``.

A :class:`Rescorer` also serves the leaderboard: ``claims`` says whether a leaderboard source (a
path, or ``NAME:FILE:FILE``) is one of its official result files, and ``leaderboard_entry``
re-scores it into the benchmark's leaderboard columns. The leaderboard asks every registered
rescorer in turn, so a benchmark's result files are known only to its own package.
"""
from __future__ import annotations

import argparse
import inspect
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

from harness.errors import HarnessError, InputError
from harness.hashing import hash_file, hash_value


class Command:
    """One subcommand: ``configure`` adds its arguments, ``run`` returns the exit status (None = 0).

    A subclass's docstring is its help. The first paragraph is the line shown in the command list
    and by ``harness COMMAND --help``; each later line of the form ``harness ...  what it does``
    (the two parts apart by two or more spaces) is a row of the overview at the top of
    ``harness --help``. Its place there is the class keyword ``order`` (smaller first; ``rescore``
    is 40): ``class EvalCommand(Command, order=10)``. ``start_here``, when set, is a sentence for the
    end of ``harness --help`` pointing a newcomer at this command (the shell names no command itself).
    """

    order: ClassVar[int] = 50
    start_here: ClassVar[str] = ""

    def __init_subclass__(cls, order: int | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if order is not None:
            cls.order = order

    @property
    def help(self) -> str:
        return " ".join(self._paragraphs()[0].split())

    @property
    def overview(self) -> list[tuple[str, str]]:
        """(synopsis, what it does) for each overview row the docstring gives."""
        rows = []
        for paragraph in self._paragraphs()[1:]:
            for line in paragraph.splitlines():
                synopsis, _, text = line.strip().partition("  ")
                if synopsis.startswith("harness "):
                    rows.append((synopsis, text.strip()))
        return rows

    def _paragraphs(self) -> list[str]:
        doc = inspect.cleandoc(type(self).__dict__.get("__doc__") or "")
        return doc.split("\n\n")

    def configure(self, parser: argparse.ArgumentParser) -> None:
        pass

    def run(self, args: argparse.Namespace) -> int | None:
        raise NotImplementedError


@dataclass(frozen=True)
class Rescored:
    """A re-scored official file as one leaderboard row: ``values`` maps a score key (a leaderboard
    column's key) to (value, reasons it is not the official setup); ``notes`` are shown with the row."""

    label: str
    provenance: str
    values: Mapping[str, tuple[float | None, tuple[str, ...]]]
    notes: Sequence[str] = field(default_factory=tuple)

    @classmethod
    def from_files(cls, files: Sequence[Path], values: Mapping[str, tuple[float | None, tuple[str, ...]]],
                   notes: Sequence[str] = ()) -> "Rescored":
        """The row of the result file ``files[0]`` (read with the other ``files``): labelled by the
        first file, its provenance naming every file with its content id."""
        provenance = " with ".join(f"{path} ({content_id(path)})" for path in files)
        return cls(source_label(files[0]), f"rescored {provenance}", values, tuple(notes))


class Rescorer(Command):
    """``harness rescore NAME``: official numbers from official result files; on the leaderboard,
    ``claims`` and ``leaderboard_entry`` (the rescorer's registered name is its benchmark's).

    A subclass adds its inputs in ``add_arguments``, re-scores them in ``rescore`` (a summary
    dict) and says how to print the summary in ``describe``. The base adds ``--strict`` when
    ``strict_help`` says what it refuses (what the official scorer accepts quietly: by default the
    official number is given, with a warning), prints the summary's ``warnings`` to stderr as
    ``harness: warning: ...``, then the text, then the ``printed`` keys as one JSON line.
    """

    #: what the leaderboard accepts for this benchmark, for its error message
    source_help: ClassVar[str] = ""
    #: what ``--strict`` refuses ("" for no ``--strict``)
    strict_help: ClassVar[str] = ""
    #: the summary keys of the JSON line
    printed: ClassVar[tuple[str, ...]] = ("overall",)

    def configure(self, parser: argparse.ArgumentParser) -> None:
        self.add_arguments(parser)
        if self.strict_help:
            parser.add_argument("--strict", action="store_true", help=self.strict_help)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        pass

    def rescore(self, args: argparse.Namespace) -> dict[str, Any]:
        raise NotImplementedError

    def describe(self, summary: dict[str, Any], args: argparse.Namespace) -> str:
        """The summary for people (may raise ``HarnessError`` when there is no number to give)."""
        return ""

    def run(self, args: argparse.Namespace) -> int:
        summary = self.rescore(args)
        for warning in summary.get("warnings", ()):
            print(f"harness: warning: {warning}", file=sys.stderr)
        text = self.describe(summary, args)
        if text:
            print(text)
        print(json.dumps({key: summary[key] for key in self.printed}))
        return 0

    def claims(self, source: str) -> bool:
        """True when the leaderboard source ``source`` is this benchmark's official result file.
        A source that plainly is one but cannot be scored as given (a file that needs its partner)
        raises ``InputError`` saying what to pass instead."""
        return False

    def leaderboard_entry(self, source: str) -> Rescored:
        """Re-score a source this rescorer claims into the benchmark's leaderboard columns."""
        raise NotImplementedError


def claims_paired(source: str, prefix: str, ending: str, needs: str, source_help: str) -> bool:
    """``Rescorer.claims`` for a result file read with a partner file: ``PREFIX:FILE:FILE`` is
    claimed; a lone file whose name ends with ``ending`` raises ``InputError`` saying that it
    ``needs`` its partner and what to pass (``source_help``); anything else is not claimed."""
    if paired_source(source, prefix) is not None:
        return True
    path = Path(source)
    if path.is_file() and path.name.lower().endswith(ending):
        raise InputError(f"{needs}: pass {source_help}", path)
    return False


def paired_source(source: str, prefix: str) -> tuple[Path, Path] | None:
    """``PREFIX:FILE:FILE`` -> the two files (which must exist); None for any other source."""
    kind, _, rest = source.partition(":")
    if kind != prefix or not rest:
        return None
    parts = rest.split(":")
    if len(parts) != 2 or not all(parts):
        raise InputError(f"leaderboard source {source!r}: expected {prefix}:FILE:FILE")
    if missing := [part for part in parts if not Path(part).is_file()]:
        raise InputError(f"leaderboard source {source!r}: file not found", missing[0])
    return Path(parts[0]), Path(parts[1])


def source_label(path: Path) -> str:
    """A short row label for a result file: its last three path parts."""
    return "/".join(path.resolve().parts[-3:])


def content_id(path: Path) -> str:
    """12 hex digits of a file's hash, or of a folder's (name, file hash) pairs."""
    if path.is_dir():
        return hash_value(sorted((p.name, hash_file(p)) for p in path.iterdir() if p.is_file()), 12)
    return hash_file(path, 12)


def key_values(items: Sequence[str], flag: str = "--options") -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``; a one-line error for an item without ``=``."""
    bad = [item for item in items if "=" not in item]
    if bad:
        raise HarnessError(f"{flag} expects KEY=VALUE, got {bad[0]!r}")
    return dict(item.split("=", 1) for item in items)


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``--set a.b=VALUE`` items -> {dotted key: YAML value} (numbers, booleans and lists parse as such);
    a value that is not YAML is a one-line error naming its key."""
    from harness.yamlfile import parse_yaml

    values = {}
    for key, value in key_values(items, "--set").items():
        try:
            values[key] = parse_yaml(value, f"--set {key}")
        except InputError as exc:  # one value on one line: the line number would say nothing
            raise InputError(exc.detail, f"--set {key}") from None
    return values
