"""Detectors that serve GenEval alone: the transformers and mmdet Mask2Former, and precomputed
detections read from a file."""
from benchmarks.geneval.judges import mask2former_hf, mmdet_mask2former, precomputed  # noqa: F401  (register)
