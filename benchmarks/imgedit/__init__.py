"""ImgEdit-Bench Basic (PKU-YuanGroup/ImgEdit), judged as ``basic_bench.py`` does. See docs/IMGEDIT.md."""
from benchmarks.imgedit.benchmark import ImgEdit  # noqa: F401  (registers the benchmark)
from benchmarks.imgedit import commands  # noqa: F401  (registers harness rescore imgedit)
