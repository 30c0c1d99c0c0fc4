"""Files a browser test adds to the session's shared page server (tests/conftest.py's page_app): each gets a
name no other test uses, and is removed again when the test is done."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def unique(stem: str) -> str:
    """`stem` with a suffix that no other test's file has."""
    return f"{stem}-{uuid.uuid4().hex[:8]}"


@contextmanager
def removed_after(*paths: Path) -> Iterator[None]:
    """Delete `paths` (files or folders the block writes) when the block ends, however it ends."""
    try:
        yield
    finally:
        for path in paths:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)


def new_files(folder: Path, pattern: str, before: set[Path]) -> list[Path]:
    """The files under `folder` matching `pattern` that are not in `before` (a listing taken earlier)."""
    return sorted(set(folder.rglob(pattern)) - before)


def log_size(data: Path) -> int:
    """How long the server's log is now: `log_since` reads what it writes after."""
    return (data / "server.log").stat().st_size


def log_since(data: Path, start: int) -> str:
    """What the server logged after `start` (a `log_size`)."""
    return (data / "server.log").read_bytes()[start:].decode(errors="replace")
