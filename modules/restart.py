"""Restarting the page inside the process (A1111's "Reload UI"): the Extensions tab asks for it, and
app.py's serving loop closes the page, reloads extensions and scripts, and serves a new page."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_requested = threading.Event()
_accepting = threading.Event()


def request_restart() -> bool:
    """Ask the serving loop for a restart. Returns False, and does nothing, when the app serves in a way
    that can't restart in place (no loop is waiting)."""
    if not _accepting.is_set():
        return False
    _requested.set()
    return True


@contextmanager
def accepting_restarts() -> Iterator[None]:
    """While inside, request_restart() is honoured (the serving loop wraps itself in this)."""
    _accepting.set()
    try:
        yield
    finally:
        _accepting.clear()
        _requested.clear()


def wait_for_restart(poll: float = 0.5) -> None:
    """Block until a restart is requested, then clear the request. Polls, so Ctrl+C still gets through."""
    while not _requested.wait(poll):
        pass
    _requested.clear()
