"""Torch's CPU threads: only the engine's worker runs torch work on several cores.

PyTorch on Linux parallelises CPU ops with GNU OpenMP, and every thread that runs a parallel op keeps a
pool of OpenMP threads of its own. Once a process holds more pooled threads than there are cores, libgomp
stops spinning between parallel regions, and every small op waits for its pool to wake up. On 2 cores a
20-step demo-model job through the API took 1.36 s instead of 0.98 s once a client polled /progress, whose
live preview is built in the polling thread. So every thread but the worker (the main thread at start,
the threads that build live previews) runs its torch ops on itself alone and never starts a pool.
"""

from __future__ import annotations

import ctypes
import functools
import threading

_state = threading.local()


@functools.cache
def _gnu_openmp() -> ctypes.CDLL | None:
    """The GNU OpenMP runtime torch loaded, or None where torch uses another one (or none)."""
    try:
        return ctypes.CDLL("libgomp.so.1")
    except OSError:
        return None


def single_threaded() -> None:
    """Make the calling thread run its torch CPU ops on itself only; a no-op in the engine's worker.
    Call it before the thread's first parallel torch op."""
    if getattr(_state, "settled", False):
        return
    _state.settled = True
    runtime = _gnu_openmp()
    if runtime is None:
        return
    import torch

    torch.get_num_threads()  # torch sets a thread's OpenMP thread count on its first use; let it go first
    runtime.omp_set_num_threads(1)


def mark_compute_thread() -> None:
    """Called by the engine's worker: this thread keeps torch's full thread count."""
    _state.settled = True
