"""The ``harness`` command line: a shell whose subcommands are plugins.

Every subcommand is registered by the package that owns it (``@register("command", NAME)``, see
``harness.commands``): running and resuming (``eval``, ``synth``, ``run``, ``plugins``) by the kernel
(``harness.core_commands``), ``report``/``leaderboard``/``compare`` by ``reports``, ``demo`` by the
demo, and ``harness rescore BENCHMARK`` by each benchmark (``@register("rescore", NAME)``).
``harness --help`` lists them all.

Errors in user input print one line naming the file (and line) and exit with status 2.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from harness import registry
from harness.errors import HarnessError
from harness.registry import UnknownPluginError

RESCORE_HELP = "official numbers from official result files"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        return args.handler(args) or 0
    except (HarnessError, UnknownPluginError) as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("harness: interrupted; finished work is cached, run the same command again to resume",
              file=sys.stderr)
        return 130


RESCORE_ORDER = 40  # where ``rescore`` sits among the commands in the help


def _registered(kind: str) -> list[tuple[str, object]]:
    return [(name, registry.get(kind, name)()) for name in registry.names(kind)]


def build_parser() -> argparse.ArgumentParser:
    rescorers = _registered("rescore")
    entries = [(command.order, name, command) for name, command in _registered("command")]
    if rescorers:
        entries.append((RESCORE_ORDER, "rescore", None))
    entries.sort(key=lambda entry: (entry[0], entry[1]))
    rows = [row for _, _, command in entries
            for row in (command.overview if command else [("harness rescore BENCHMARK ...", RESCORE_HELP)])]
    width = max(len(synopsis) for synopsis, _ in rows)
    overview = [f"{synopsis:<{width}}  {text}" for synopsis, text in rows]
    parser = argparse.ArgumentParser(
        prog="harness", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Evaluate image models with the official protocols of their benchmarks; compare, rank "
                    "and gate the results.\n\n" + "\n".join(f"  {line}" for line in overview),
        epilog=" ".join([command.start_here for _, _, command in entries if command and command.start_here]
                        + ["Docs: README.md and docs/."]))
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for _, name, command in entries:
        if command is None:
            rescore = subparsers.add_parser("rescore", help=RESCORE_HELP)
            targets = rescore.add_subparsers(title="benchmarks", metavar="BENCHMARK")
            for benchmark, rescorer in rescorers:
                _add(targets, benchmark, rescorer)
        else:
            _add(subparsers, name, command)
    return parser


def _add(subparsers: argparse._SubParsersAction, name: str, command) -> None:
    sub = subparsers.add_parser(name, help=command.help, description=command.help)
    command.configure(sub)
    sub.set_defaults(handler=command.run)


if __name__ == "__main__":
    raise SystemExit(main())
