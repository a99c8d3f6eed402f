"""Benchmark: a recipe's API step against a server with fixed latency, concurrent vs one at a time.

    python perf/synth_concurrency.py                  # 1000 chat requests, 100 ms each, concurrency 64 vs 1
    python perf/synth_concurrency.py --serial 200     # time only 200 requests one at a time (rate compared)

Both runs go through the whole recipe runner (``harness.synth.synthesize``: the source, the chat step,
the call and step caches, the dataset files) against the loopback fake server, started in its own
process, with ``--latency`` per reply; each run writes a fresh folder. Prints both wall times, requests per second and their ratio (the
acceptance bar is a ratio of at least 30 for 1000 requests at 100 ms).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from generators.base import ChatRequest, ChatStep  # noqa: E402
from harness.recipe import Source, RecipeSpec  # noqa: E402
from harness.registry import load_plugins, register  # noqa: E402
from harness.synth import synthesize  # noqa: E402


@register("generator", "perf-rows")
class PerfRows(Source):
    outputs = ("topic",)

    def __init__(self, count: int):
        self.count = count

    def rows(self, ctx):
        return [{"id": f"r{i:05d}", "topic": f"topic number {i}"} for i in range(self.count)]


@register("generator", "perf-echo")
class PerfEcho(ChatStep):
    inputs, outputs = ("topic",), ("input_prompt",)

    def request(self, row, ctx):
        return ChatRequest(f"Write a prompt about {row['topic']}")

    def parse(self, text, row):
        return {"input_prompt": text}


def timed_run(base_url: str, rows: int, concurrency: int, batch_size: int, folder: Path) -> float:
    spec = RecipeSpec.from_dict({
        "name": f"perf-c{concurrency}", "export": [],
        "clients": {"llm": {"base_url": base_url, "model": "fake-llm", "max_concurrency": concurrency}},
        "steps": [{"name": "perf-rows", "params": {"count": rows}},
                  {"name": "perf-echo", "params": {"client": "llm", "batch_size": batch_size}}]})
    start = time.perf_counter()
    outcome = synthesize(spec, folder, show_progress=False)
    elapsed = time.perf_counter() - start
    assert outcome.artifact.info["rows"] == rows and outcome.artifact.info["failed"] == 0
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per reply (default 0.1)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=256, help="rows handed to the step at once")
    parser.add_argument("--serial", type=int, help="requests timed one at a time (default: --requests)")
    args = parser.parse_args()
    serial_requests = args.serial or args.requests
    load_plugins()  # importing the built-in plugins (torch, transformers) is a fixed cost, not timed
    # the server runs in its own process, as a real one would: in this process its threads would
    # compete with the client's for the interpreter lock
    server = subprocess.Popen([sys.executable, "-m", "harness.testing.fake_openai", "--delay", str(args.latency)],
                              stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
    try:
        base_url = server.stdout.readline().strip()
        with tempfile.TemporaryDirectory() as tmp:
            concurrent = timed_run(base_url, args.requests, args.concurrency, args.batch_size, Path(tmp) / "c")
            serial = timed_run(base_url, serial_requests, 1, args.batch_size, Path(tmp) / "s")
    finally:
        server.terminate()
        server.wait()
    rate_c, rate_s = args.requests / concurrent, serial_requests / serial
    print(f"latency {args.latency * 1000:.0f} ms per reply (loopback fake server in its own process)")
    print(f"concurrency {args.concurrency:>3}: {args.requests} requests in {concurrent:7.2f} s  ({rate_c:7.1f}/s)")
    print(f"concurrency   1: {serial_requests} requests in {serial:7.2f} s  ({rate_s:7.1f}/s)")
    print(f"speed-up (requests per second): {rate_c / rate_s:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
