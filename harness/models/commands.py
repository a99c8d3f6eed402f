"""``harness tiny-janus``: a tiny randomly initialised Janus checkpoint, for trying things out."""
from __future__ import annotations

import argparse
from pathlib import Path

from harness.commands import Command
from harness.errors import HarnessError
from harness.registry import register


@register("command", "tiny-janus")
class TinyJanusCommand(Command, order=100):
    """build a tiny randomly initialised Janus checkpoint

    harness tiny-janus DIR  build a tiny random Janus checkpoint (for trying things out)
    """

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument("--seed", type=int, default=0)

    def run(self, args: argparse.Namespace) -> int:
        from harness.models.tiny_janus import build_tiny_janus

        if args.path.exists() and not args.path.is_dir():
            raise HarnessError(f"{args.path} exists and is not a folder")
        print(build_tiny_janus(args.path, seed=args.seed))
        return 0
