"""GenEval (djghosh13/geneval): object-focused text-to-image evaluation. See PROTOCOLS in docs/."""
from benchmarks.geneval.benchmark import GenEval  # noqa: F401  (registers the benchmark)
from benchmarks.geneval import commands  # noqa: F401  (registers harness rescore geneval)
from benchmarks.geneval import judges  # noqa: F401  (registers its detectors)
