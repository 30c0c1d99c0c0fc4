"""A real, nearly full disk for tests: a small tmpfs mounted on a temporary folder (needs root, as CI runs)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

SIZE = 256 * 1024


def free_bytes(folder: Path) -> int:
    """Bytes still free on the file system of `folder`."""
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize


@contextmanager
def mounted_small_disk(folder: Path, size: int = SIZE) -> Iterator[Path]:
    """`folder` (created) on its own file system of `size` bytes; skips the test where mounting isn't allowed."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"a small file system can't be mounted here (needs root): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def fill(folder: Path, leave: int = 1024) -> None:
    """Fill the file system of `folder` up to `leave` bytes."""
    (folder / "filler").write_bytes(b"\0" * max(0, free_bytes(folder) - leave))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on its own 256 KiB file system; fill it to test a full disk."""
    with mounted_small_disk(tmp_path / "disk") as folder:
        yield folder
