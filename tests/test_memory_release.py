"""Freed CPU memory goes back to the system when a model is dropped."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from modules.core.memory_release import _glibc_malloc_trim

ROOT = Path(__file__).resolve().parent.parent


# Run in a fresh interpreter's main thread: glibc gives each other thread an arena of its own, whose freed heaps
# go back by themselves, so in a test runner's worker thread (pytest-xdist) the holes below may not stay.
HOLES = """
import json
from pathlib import Path

import torch

from modules.core.memory_release import release_freed_memory


def resident_mb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


# 256 MB of 64 KiB tensors (heap-allocated, under glibc's mmap threshold), each followed by a small
# survivor, so the freed space is full of holes that the heap's top cannot give back by itself.
big, survivors = [], []
for _ in range(4096):
    big.append(torch.ones(16384))
    survivors.append(torch.ones(16))
before = resident_mb()
del big
after_free = resident_mb()
release_freed_memory()
after_release = resident_mb()
print(json.dumps([before, after_free, after_release, all(t.sum() == 16 for t in survivors)]))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or _glibc_malloc_trim() is None, reason="glibc only")
def test_pages_freed_in_the_middle_of_the_heap_are_returned():
    out = subprocess.run(
        [sys.executable, "-c", HOLES], cwd=ROOT, check=True, capture_output=True, text=True, timeout=120
    ).stdout
    before, after_free, after_release, survivors_intact = json.loads(out)
    assert before - after_free < 64, "the holes should stay resident until trimmed"
    assert after_free - after_release > 192, (before, after_free, after_release)
    assert survivors_intact
