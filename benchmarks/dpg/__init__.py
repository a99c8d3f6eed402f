"""DPG-Bench (TencentQQGYLab/ELLA, dpg_bench/): dense prompts judged by VQA over a question graph,
scored as the official compute_dpg_bench.py does. See docs/DPG.md."""
from benchmarks.dpg.benchmark import DPGBench  # noqa: F401  (registers the benchmark)
from benchmarks.dpg import commands  # noqa: F401  (registers harness rescore dpg)
