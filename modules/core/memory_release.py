"""Give freed memory back: to the system from the CPU heap, to the GPU from torch's caches."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc


@functools.cache
def _glibc_malloc_trim():
    """glibc's malloc_trim, or None where the C library is not glibc (musl, macOS, Windows)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None


def release_freed_memory() -> None:
    """Collect garbage, ask glibc to return its free heap pages to the system, and empty torch's
    GPU caches. Called after a model is dropped and after an out-of-memory error.

    Without the trim, glibc keeps the pages a dropped model freed in its arenas, and a load that
    does not fit the gaps takes new ones: resident memory grew by a fifth over ten SD1.5-size fp32
    switches, against 1–3% with it."""
    import torch

    gc.collect()
    trim = _glibc_malloc_trim()
    if trim is not None:
        trim(0)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if hasattr(torch, "mps") and torch.backends.mps.is_available():
        torch.mps.empty_cache()
