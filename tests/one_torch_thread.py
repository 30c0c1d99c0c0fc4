"""A fixture for modules whose tests run many small torch ops in the test process (tiny UNets, text encoders):
one CPU thread for torch while the module runs. On such small tensors a second OpenMP thread only adds
synchronisation, and the CPU time it spins away grows with the machine's load (CI runs two workers on two
cores); the results are the same, only the CPU time drops."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """torch on one thread for the importing module's tests (and the engine workers they start), then back to the
    session's count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
