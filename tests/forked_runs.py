"""Runs pieces of Python in children forked from one process that has imported the heavy modules once, so a run
costs no fresh start (test_import_layering, test_atomic_state; app.py's own starts go through tests/app_zygote.py).

As a script, `python tests/forked_runs.py MODULE...` imports the modules, then reads one JSON string of code a line
from stdin and runs it in a fork. For each run it prints the child's pid, then its exit status: 0 when the code
ended, 1 when it raised (the traceback goes to stderr), minus the signal number when it was killed. Each of those
lines is one write, and so is a line the child prints with `say` (its code finds it defined): a line can't land
inside another. `print` would not do: with PYTHONUNBUFFERED, as under pytest-xdist, it writes the text and its newline
separately, and a CI run once read "3427saving" and a lone newline."""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def forked_runs(*modules: str) -> Iterator[subprocess.Popen]:
    """This script as a process that has imported `modules`; on leaving, it is killed with the children it forked."""
    process = subprocess.Popen(
        [sys.executable, __file__, *modules],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a process group of its own, which _stop ends
    )
    try:
        yield process
    finally:
        _stop(process)
        process.wait(10)


def _stop(process: subprocess.Popen) -> None:
    """Kill `process` and the children it forked: a child still running would hold its output open."""
    with suppress(ProcessLookupError):  # it has ended already
        os.killpg(process.pid, signal.SIGKILL)


def say(line: str) -> None:
    """Print `line` to stdout in one write (for the code a fork runs)."""
    os.write(sys.stdout.fileno(), f"{line}\n".encode())


def start(process: subprocess.Popen, code: str) -> None:
    """Have `process` run `code` in a new fork; its pid, then its exit status, come on process.stdout."""
    process.stdin.write(json.dumps(code) + "\n")
    process.stdin.flush()


def errors(process: subprocess.Popen) -> str:
    """What the runs wrote to stderr, once `process` and its forks are stopped."""
    _stop(process)
    return process.communicate()[1]


def _serve(modules: list[str]) -> None:
    sys.path.insert(0, str(ROOT))
    for name in modules:
        importlib.import_module(name)
    for line in sys.stdin:
        pid = os.fork()
        if pid == 0:
            status = 0
            try:
                exec(json.loads(line), {"__name__": "__forked__", "say": say})
            except BaseException:
                traceback.print_exc()
                status = 1
            finally:
                sys.stdout.flush()
                os._exit(status)
        say(str(pid))
        say(str(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])))


if __name__ == "__main__":
    _serve(sys.argv[1:])
