"""The helpers A1111 extensions' install.py files import (`import launch`): is_installed, run_pip, run.

install.py runs in a separate process with this folder on PYTHONPATH, so these use that process's
own Python (the web UI's virtual environment); run_pip goes through the package guard."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shlex
import subprocess
import sys

from modules.cmd_args import parse_args

python = sys.executable
index_url = os.environ.get("INDEX_URL", "")
args = parse_args([])
"""A1111's `launch.args`: the app's parsed flags (app.py puts its own here at start; an install.py process
sees the defaults)."""


def is_installed(package: str) -> bool:
    """Whether a distribution (pip name) or an importable module of that name is present."""
    try:
        importlib.metadata.distribution(package)
        return True
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def run(
    command: str,
    desc: str | None = None,
    errdesc: str | None = None,
    custom_env: dict | None = None,
    live: bool = False,
) -> str:
    """Run a shell command; print `desc` first. Raises RuntimeError with its output when it fails."""
    if desc:
        print(desc, flush=True)
    result = subprocess.run(
        command,
        shell=True,
        env=custom_env or os.environ,
        text=True,
        stdout=None if live else subprocess.PIPE,
        stderr=None if live else subprocess.PIPE,
    )
    if result.returncode != 0:
        details = "" if live else f"\nstdout: {result.stdout}\nstderr: {result.stderr}"
        raise RuntimeError(
            f"{errdesc or 'Command failed'}\ncommand: {command}\nexit code: {result.returncode}{details}"
        )
    return "" if live else result.stdout


def run_pip(command: str, desc: str | None = None, live: bool = False) -> str:
    """`pip <command>` with this Python, e.g. run_pip("install somepackage", "somepackage"), through the
    package guard (modules/extensions/guarded_pip.py): what would change the web UI's own packages is refused."""
    extra = f" --index-url {shlex.quote(index_url)}" if index_url else ""
    here = os.path.dirname(os.path.abspath(__file__))  # so modules.extensions.guarded_pip imports from any folder
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))}
    return run(
        f"{shlex.quote(python)} -m modules.extensions.guarded_pip {command} --prefer-binary{extra}",
        desc=f"Installing {desc}" if desc else None,
        errdesc=f"Couldn't install {desc or command}",
        custom_env=env,
        live=live,
    )
