"""The state of a Python environment around an extension's install, and putting it back.

A snapshot holds `pip freeze`, the problems `pip check` finds, and whether the core modules import in a
fresh process (a check of seconds, for torch: it is left out where the caller knows nothing changed).
Comparing two snapshots tells what an install changed; restore() uninstalls what was added and reinstalls
the earlier versions of what changed (`pip install --no-deps`). What pip check finds depends only on what is
installed, which pip freeze lists, so it runs once for each freeze of an environment (check_findings)."""

from __future__ import annotations

import functools
import re
import subprocess
from dataclasses import dataclass, replace

from packaging.utils import canonicalize_name

from modules.extensions.package_guard import Pins, PythonEnvironment

IMPORT_TIMEOUT = 300.0  # seconds for importing the core modules
IMPORT_CHECK = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"


def import_problem(environment: PythonEnvironment) -> str:
    """ "" when the core modules import in a fresh process, else the last line of the error."""
    try:
        done = subprocess.run(
            [environment.python, "-c", IMPORT_CHECK, *environment.core_modules],
            capture_output=True,
            text=True,
            timeout=IMPORT_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return f"importing {', '.join(environment.core_modules)} took longer than {IMPORT_TIMEOUT:.0f} s"
    if done.returncode == 0:
        return ""
    lines = done.stderr.strip().splitlines()
    return lines[-1] if lines else f"exit status {done.returncode}"


def freeze_name(line: str) -> str:
    """The canonical distribution name a `pip freeze` line is about ('' for a comment)."""
    if line.startswith("#"):
        return ""
    editable = re.search(r"[#&]egg=([\w.-]+)", line) if line.startswith("-e") else None
    if editable:
        return canonicalize_name(editable.group(1))
    return canonicalize_name(re.split(r"\s*(?:==|===| @ )", line, maxsplit=1)[0].strip())


@dataclass(frozen=True)
class Snapshot:
    """`pip freeze` (its lines), `pip check`'s problems, and the core modules' import error ("" when they
    import or were not tried)."""

    freeze: tuple[str, ...]
    problems: frozenset[str] = frozenset()
    import_error: str = ""

    @classmethod
    def take(cls, environment: PythonEnvironment, check: bool = True, imports: bool = True) -> Snapshot:
        """Read the environment now: pip freeze, then pip check when `check`, the imports when `imports`."""
        freeze = tuple(environment.pip_output("freeze").splitlines())
        snapshot = cls(freeze)
        return snapshot.completed(environment, imports) if check else snapshot

    def completed(self, environment: PythonEnvironment, imports: bool = True) -> Snapshot:
        """This snapshot with pip check's problems and, when `imports`, the import check."""
        problems = check_findings(environment, self.freeze)
        return replace(self, problems=problems, import_error=import_problem(environment) if imports else "")

    def lines(self) -> dict[str, str]:
        """Each distribution's freeze line, by canonical name."""
        return {freeze_name(line): line for line in self.freeze if freeze_name(line)}


@functools.lru_cache(maxsize=32)
def check_findings(environment: PythonEnvironment, freeze: tuple[str, ...]) -> frozenset[str]:
    """The problems `pip check` finds in `environment` while its `pip freeze` is `freeze` (the cache key: pip runs
    once for each, ~2 s a time)."""
    return frozenset(
        line
        for line in environment.pip_output("check").splitlines()
        if line and not line.startswith("No broken requirements")
    )


def differences(before: Snapshot, after: Snapshot) -> dict[str, tuple[str | None, str | None]]:
    """What changed between two snapshots: name -> (line before, line after); None where it was not installed."""
    old, new = before.lines(), after.lines()
    return {
        name: (old.get(name), new.get(name))
        for name in sorted(old.keys() | new.keys())
        if old.get(name) != new.get(name)
    }


def _version(line: str | None) -> str:
    """The version in a `name==version` freeze line; any other line as it is."""
    return (line.split("==", 1)[1] if "==" in line and " @ " not in line else line) if line else ""


def breakage(before: Snapshot, after: Snapshot, pins: Pins) -> list[str]:
    """Why `after` is not safe for the web UI, compared with `before`: protected distributions changed or
    removed, core modules that stopped importing, or new pip check problems of a protected distribution."""
    reasons = [
        f"{name} {_version(before_line) or 'absent'} → {_version(after_line) or 'removed'}"
        for name, (before_line, after_line) in differences(before, after).items()
        if name in pins
    ]
    if after.import_error and not before.import_error:
        reasons.append(f"the core modules no longer import: {after.import_error}")
    reasons += [
        problem
        for problem in sorted(after.problems - before.problems)
        if canonicalize_name(problem.split(" ", 1)[0]) in pins
    ]
    return reasons


def restore(environment: PythonEnvironment, before: Snapshot, after: Snapshot) -> list[str]:
    """Make the environment's `pip freeze` what it was in `before`: uninstall the distributions added since,
    reinstall the earlier versions of the ones changed or removed (without their dependencies). Returns
    pip's messages where it failed."""
    changed = differences(before, after)
    added = [name for name, (old, _new) in changed.items() if old is None]
    earlier = [old for old, _new in changed.values() if old is not None and not old.startswith("-e")]
    failures = []
    if added:
        done = environment.pip("uninstall", "--yes", *added)
        if done.returncode != 0:
            failures.append(f"pip uninstall {' '.join(added)}: {done.stderr.strip()[-300:]}")
    if earlier:
        done = environment.pip("install", "--no-deps", *earlier)
        if done.returncode != 0:
            failures.append(f"pip install --no-deps {' '.join(earlier)}: {done.stderr.strip()[-300:]}")
    return failures
