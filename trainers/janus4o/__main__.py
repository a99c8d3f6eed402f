"""Command line for Janus-4o fine-tuning.

One process::

    python -m trainers.janus4o --model DIR --data sharegpt4o.json --out DIR

Several (every process runs this module; rank 0 writes the outputs)::

    torchrun --nproc_per_node 8 -m trainers.janus4o ... --engine ddp
    deepspeed --num_gpus 8 trainers/janus4o/__main__.py ... --engine deepspeed --zero 1

``--set key=value`` sets any other ``TrainConfig`` field (e.g. ``--set text_drop=0``). Bad input
ends with one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import Any, Sequence

if __package__ in (None, ""):  # run as a script (the deepspeed launcher's usual form)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from harness.errors import HarnessError  # noqa: E402
from trainers.janus4o.loop import TrainConfig  # noqa: E402


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trainers.janus4o", description="Janus-4o fine-tuning")
    parser.add_argument("--model", required=True, help="Janus checkpoint folder (transformers layout)")
    parser.add_argument("--data", required=True, help="sharegpt4o.json (ShareGPT-4o-Image layout)")
    parser.add_argument("--out", required=True, help="output folder (resumes from its checkpoints)")
    parser.add_argument("--engine", choices=("plain", "ddp", "deepspeed"), default=None,
                        help="default: ddp when launched with WORLD_SIZE > 1, else plain")
    parser.add_argument("--zero", type=int, choices=(1, 2, 3), default=None, help="DeepSpeed ZeRO stage (1)")
    parser.add_argument("--global-batch", type=int, default=None)
    parser.add_argument("--micro-batch", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--checkpoint-every", type=int, default=None)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    return parser


def _convert(name: str, text: str, current: Any) -> Any:
    if isinstance(current, bool):
        if text.lower() not in ("true", "false", "1", "0"):
            raise HarnessError(f"--set {name}: expected true or false, got {text!r}")
        return text.lower() in ("true", "1")
    if name == "stop_after_steps":
        return None if text.lower() == "none" else int(text)
    try:
        return type(current)(text)
    except ValueError:
        raise HarnessError(f"--set {name}: expected a {type(current).__name__}, got {text!r}") from None


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    defaults = TrainConfig()
    values: dict[str, Any] = {}
    for item in args.set:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in fields:
            raise HarnessError(f"--set {item!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(fields))}")
        values[key] = _convert(key, text.strip(), getattr(defaults, key))
    engine = args.engine or ("ddp" if int(os.environ.get("WORLD_SIZE", "1")) > 1 else "plain")
    flags = {"engine": engine, "zero_stage": args.zero, "global_batch": args.global_batch,
             "micro_batch": args.micro_batch, "epochs": args.epochs, "learning_rate": args.lr,
             "checkpoint_every": args.checkpoint_every}
    values.update({k: v for k, v in flags.items() if v is not None})
    if args.zero is not None and engine != "deepspeed":
        raise HarnessError("--zero needs --engine deepspeed")
    for name in ("global_batch", "micro_batch", "epochs"):
        if values.get(name, 1) < 1:
            raise HarnessError(f"--{name.replace('_', '-')} must be at least 1")
    config = TrainConfig(**values)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if config.global_batch % (config.micro_batch * world):
        raise HarnessError(f"--global-batch {config.global_batch} is not divisible by micro batch "
                           f"{config.micro_batch} x {world} process(es)")
    return config


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        model, data = Path(args.model), Path(args.data)
        if not (model / "config.json").is_file():
            raise HarnessError(f"--model {model}: not a model folder (no config.json)")
        if not data.is_file():
            raise HarnessError(f"--data {data}: no such file")
        config = config_from_args(args)
        import torch

        from trainers.janus4o.engines import process_group
        from trainers.janus4o.loop import train

        if os.environ.get("JANUS4O_THREADS"):  # tests and shared CPU machines
            torch.set_num_threads(int(os.environ["JANUS4O_THREADS"]))
        with process_group():
            result = train(model, data, args.out, config)
    except HarnessError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
