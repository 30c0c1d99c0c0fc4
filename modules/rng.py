"""Seeds: a random one for -1, and each image's seed in a batch. A1111's noise itself (ImageRNG, the CPU / GPU /
NV sources, ENSD, variation seeds, "Resize seed from") is modules/sampling/noise.py."""

from __future__ import annotations

import random

MAX_SEED = 2**32 - 1


def resolve_seed(seed: int) -> int:
    """-1 (or any negative seed) becomes a random seed, as in A1111."""
    return random.randrange(MAX_SEED) if seed is None or seed < 0 else int(seed)


def image_seeds(seed: int, count: int, variation_strength: float = 0.0) -> list[int]:
    """Image i uses seed + i; with a variation strength every image keeps the seed, as in A1111 (their
    variation seeds count up instead)."""
    return [seed + (0 if variation_strength else i) for i in range(count)]
