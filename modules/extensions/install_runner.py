"""`python -m modules.extensions.install_runner install.py [args]`: run an extension's install.py as `python install.py`
would, with its pip calls routed through the package guard (modules/extensions/guarded_pip.py).

A call to pip through subprocess (check_call, run, Popen, os.popen) or os.system that targets this Python,
as `[sys.executable, "-m", "pip", …]`, `python -m pip …` or this environment's `pip …`, runs
`python -m modules.extensions.guarded_pip …` instead. pip reached any other way still gets the constraints file from
PIP_CONSTRAINT, and the installer's check after install.py catches what slips past both."""

from __future__ import annotations

import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

GUARDED_PIP = "modules.extensions.guarded_pip"
PYTHON_NAME = re.compile(r"python(\d+(\.\d+)?)?(\.exe)?", re.IGNORECASE)
PIP_NAME = re.compile(r"pip(\d+(\.\d+)?)?(\.exe)?", re.IGNORECASE)
# a program followed by pip's arguments, at the start of a shell command or after ; & | ( or a newline
SHELL_PIP = re.compile(
    r"""(?P<lead>^|[;&|(\n]\s*)(?P<program>"[^"]+"|'[^']+'|[^\s;&|()'"]+)"""
    r"""(?P<module>\s+-m\s+pip)?(?=\s)"""
)


def _in_this_environment(program: str, names: re.Pattern) -> bool:
    """Whether `program` (a path or a name looked up on PATH) is this environment's python or pip."""
    if not names.fullmatch(os.path.basename(program)):
        return False
    found = program if os.path.dirname(program) else shutil.which(program)
    return found is not None and os.path.dirname(os.path.abspath(found)) == os.path.dirname(
        os.path.abspath(sys.executable)
    )


def route_args(args: Any) -> Any:
    """Popen's `args` with a pip call on this Python turned into a guarded one; anything else unchanged."""
    if isinstance(args, str):
        return route_shell(args)
    if not isinstance(args, (list, tuple)):  # bytes or a single path: a program without arguments
        return args
    parts = [os.fsdecode(part) if isinstance(part, (bytes, os.PathLike)) else part for part in args]
    if not parts or not all(isinstance(part, str) for part in parts):
        return args
    if parts[1:3] == ["-m", "pip"] and _in_this_environment(parts[0], PYTHON_NAME):
        return [sys.executable, "-m", GUARDED_PIP, *parts[3:]]
    if _in_this_environment(parts[0], PIP_NAME):
        return [sys.executable, "-m", GUARDED_PIP, *parts[1:]]
    return args


def route_shell(command: str) -> str:
    """A shell command line with each pip call on this Python turned into a guarded one."""

    def replace(match: re.Match) -> str:
        program = match["program"].strip("'\"")
        python_pip = match["module"] and _in_this_environment(program, PYTHON_NAME)
        if python_pip or (not match["module"] and _in_this_environment(program, PIP_NAME)):
            return f"{match['lead']}{shlex.quote(sys.executable)} -m {GUARDED_PIP}"
        return match[0]

    return SHELL_PIP.sub(replace, command)


def install_routing() -> None:
    """Route pip calls made through subprocess.Popen (which run, call, check_call, check_output and os.popen
    use) and os.system, for the rest of this process."""

    class RoutedPopen(subprocess.Popen):
        def __init__(self, args: Any, *rest: Any, **kwargs: Any) -> None:
            super().__init__(route_args(args), *rest, **kwargs)

    shell = os.system

    def system(command: str) -> int:
        return shell(route_shell(command))

    subprocess.Popen = RoutedPopen  # type: ignore[misc]
    os.system = system


def main(argv: list[str]) -> None:
    """Run the script `argv[0]` as __main__, with `argv[1:]` as its arguments and its folder first on sys.path."""
    if not argv:
        sys.exit("usage: python -m modules.extensions.install_runner install.py [arguments]")
    script = Path(argv[0]).resolve()
    sys.argv = [str(script), *argv[1:]]
    sys.path[0] = str(script.parent)
    install_routing()
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
