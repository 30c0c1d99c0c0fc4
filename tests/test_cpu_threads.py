"""Only the engine's worker starts an OpenMP pool: other threads run torch single-threaded."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest
import torch

from modules.core import cpu_threads
from modules.core.engine import Engine

pytestmark = pytest.mark.skipif(
    cpu_threads._gnu_openmp() is None or (os.cpu_count() or 1) < 2, reason="needs GNU OpenMP and two cores"
)


@pytest.fixture(scope="module", autouse=True)
def two_torch_threads() -> Iterator[None]:
    """The session runs torch on one thread (tests/conftest.py); these tests are about a pool of two."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def in_new_thread(work):
    """Run `work()` in a new thread (which stays alive until it returns) and give back its result."""
    out = {}
    thread = threading.Thread(target=lambda: out.update(result=work()))
    thread.start()
    thread.join()
    return out["result"]


def os_threads() -> set[str]:
    return set(os.listdir("/proc/self/task"))


def pool_threads_started(settle: bool) -> int:
    """How many new OS threads a new thread's parallel torch op starts (its OpenMP pool); threads that end
    meanwhile elsewhere in the process don't count."""

    def work() -> int:
        if settle:
            cpu_threads.single_threaded()
        before = os_threads()
        torch.ones(4_000_000).mul_(2)  # far above torch's grain size: runs as a parallel region
        return len(os_threads() - before)

    return in_new_thread(work)


def test_a_single_threaded_thread_starts_no_openmp_pool():
    assert pool_threads_started(settle=False) >= 1, "the runtime starts a pool for a new thread's parallel op"
    assert pool_threads_started(settle=True) == 0


def test_previews_are_built_single_threaded_and_the_worker_keeps_every_core():
    engine = Engine()
    try:
        cores = engine.call("count", lambda ctx: torch.get_num_threads())
        engine.submit(
            "offer",
            lambda ctx: (
                ctx.set_preview(lambda: torch.get_num_threads()),
                ctx.report_step(1),
                threading.Event().wait(2),
            ),
        )
        for _ in range(100):
            seen = in_new_thread(engine.preview)
            if seen is not None:
                break
            threading.Event().wait(0.02)
        assert seen == 1, "the asking thread built the preview on itself alone"
        assert engine.call("count", lambda ctx: torch.get_num_threads()) == cores >= 2
    finally:
        engine.shutdown()
