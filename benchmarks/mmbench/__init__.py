"""MMBench (open-compass/MMBench), scored as open-compass/VLMEvalKit does. See docs/MMBENCH.md."""
from benchmarks.mmbench.benchmark import MMBench  # noqa: F401  (registers the benchmark)
from benchmarks.mmbench import commands  # noqa: F401  (registers harness rescore mmbench)
