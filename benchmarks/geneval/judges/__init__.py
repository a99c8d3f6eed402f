"""Detectors that serve GenEval alone: the official Mask2Former on transformers (no mmcv), the mmdet
reference, a transformers Mask2Former of other weights, and precomputed detections read from a file."""
from benchmarks.geneval.judges import (geneval_mask2former, mask2former_hf, mmdet_mask2former,  # noqa: F401
                                       precomputed)  # (register)
