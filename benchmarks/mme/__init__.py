"""MME (BradyFU/Awesome-Multimodal-Large-Language-Models, Evaluation branch): 14 yes/no subtasks,
scored as the official eval_tool/calculation.py does. See docs/MME.md."""
from benchmarks.mme.benchmark import MME  # noqa: F401  (registers the benchmark)
from benchmarks.mme import commands  # noqa: F401  (registers harness rescore mme)
