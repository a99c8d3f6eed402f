"""GEdit-Bench (stepfun-ai/Step1X-Edit ``GEdit-Bench/``), judged by VIEScore as ``test_gedit_score.py``
does and averaged as ``calculate_statistics.py`` does. See docs/GEDIT.md."""
from benchmarks.gedit.benchmark import GEdit  # noqa: F401  (registers the benchmark)
from benchmarks.gedit import commands  # noqa: F401  (registers harness rescore gedit)
