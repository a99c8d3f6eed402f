"""Complex-Edit (UCSC-VLAA/Complex-Edit): compound instructions at complexity levels C1..C8, judged as
``eval.py`` judges them. See docs/COMPLEX_EDIT.md."""
from benchmarks.complex_edit.benchmark import ComplexEdit  # noqa: F401  (registers the benchmark)
from benchmarks.complex_edit import commands  # noqa: F401  (registers harness rescore complex_edit)
