"""Per-sample seeds: a sample's randomness depends only on (run seed, benchmark, sample id)."""
from __future__ import annotations

import hashlib


def sample_seed(run_seed: int, benchmark: str, sample_id: str) -> int:
    """A 63-bit seed derived from the run seed, the benchmark name and the sample id.

    Never from batch position, rank or order, so one process and N processes, batch size 1 and 4,
    give the same sample.
    """
    digest = hashlib.sha256(f"{run_seed}\x1f{benchmark}\x1f{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)
