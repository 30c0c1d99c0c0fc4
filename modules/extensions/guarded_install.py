"""Runs extensions' install.py files so that none can break the web UI's own packages.

Each install.py runs under modules/extensions/install_runner.py with a guard session
(modules/extensions/package_guard.py): pip gets the protected packages' pins as constraints and refuses what would
change them. Around each run the environment is checked (modules/extensions/environment_check.py): `pip freeze` and
`pip check` before; `pip freeze` after, and when it changed, `pip check` and a fresh import of the core modules too.
A change to a protected package that slipped past pip, a core module that stopped importing or a new `pip check`
problem of a protected package is undone, and the install is reported as blocked. (The import check before an install
is skipped: the web UI imports those modules itself, and when they fail after an install, the check after undoing it
tells whether the install was the cause.) The protected pins, like pip check's findings, are read once for each
`pip freeze` of an environment: a second install into an unchanged environment runs pip only for its freezes."""

from __future__ import annotations

import functools
import logging
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from modules.extensions.environment_check import Snapshot, breakage, differences, restore
from modules.extensions.package_guard import GuardSession, InstallBlocked, Pins, PythonEnvironment, protected_pins
from modules.paths import REPO_ROOT

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InstallRun:
    """How one install.py ended: its exit status and output, and notes on extras that were left out."""

    returncode: int
    output: str
    notes: list[str] = field(default_factory=list)


@functools.lru_cache(maxsize=32)
def pins_while(environment: PythonEnvironment, freeze: tuple[str, ...]) -> Pins:
    """protected_pins(environment) while its `pip freeze` is `freeze` (the cache key: `pip inspect` runs once for
    each). Not to be changed: callers copy it."""
    return protected_pins(environment)


class GuardedInstaller:
    """Runs install.py files one after another in one environment. The snapshot after one install is the
    one before the next, so a start with several extensions checks the environment once per install."""

    def __init__(self, environment: PythonEnvironment | None = None) -> None:
        self.environment = environment or PythonEnvironment()
        self._pins: Pins | None = None
        self._state: Snapshot | None = None

    def pins(self) -> Pins:
        """The protected distributions' versions, read once (as the environment was before the first install)."""
        if self._pins is None:
            self._pins = dict(pins_while(self.environment, self.state().freeze))
        return self._pins

    def state(self) -> Snapshot:
        """The environment as the last install left it (pip freeze and pip check), read when first needed."""
        if self._state is None:
            self._state = Snapshot.take(self.environment, imports=False)
        return self._state

    def run(self, name: str, script: Path, timeout: float) -> InstallRun:
        """Run `script` (an extension's install.py, in its folder) under the guard. Raises InstallBlocked when
        the guard refused a requirement of it or had to undo what it did; subprocess.TimeoutExpired when it
        ran past `timeout` (what it changed is undone first)."""
        before, pins = self.state(), self.pins()
        session = GuardSession.start(name, pins)
        env = {
            **os.environ,
            **session.variables(),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        }
        try:
            done = subprocess.run(
                [self.environment.python, "-m", "modules.extensions.install_runner", script.name],
                cwd=script.parent,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
            refusals = session.refusals()
        except subprocess.TimeoutExpired:
            self.check(name, before)
            raise
        finally:
            session.close()
        self.check(name, before)
        output = "\n".join(part.strip() for part in (done.stdout, done.stderr) if part.strip())
        refused = [refusal.message() for refusal in refusals if not refusal.extra]
        if refused:
            raise InstallBlocked(" ".join(refused))
        return InstallRun(done.returncode, output, [refusal.message() for refusal in refusals if refusal.extra])

    def check(self, name: str, before: Snapshot) -> None:
        """Compare the environment with `before`; undo what install.py did when it is not safe any more
        (raising InstallBlocked with what changed and what could not be put back)."""
        after = Snapshot.take(self.environment, check=False)
        if after.freeze == before.freeze:
            return
        after = after.completed(self.environment)
        reasons = breakage(before, after, self.pins())
        if not reasons:
            self._state = after
            return
        log.error("install.py of %s broke the web UI's packages (%s); undoing it", name, "; ".join(reasons))
        failures = restore(self.environment, before, after)
        self._state = Snapshot.take(self.environment)
        left = [f"{old or 'nothing'} (now {new or 'absent'})" for old, new in differences(before, self._state).values()]
        message = f"install.py of {name} changed what the web UI needs: {'; '.join(reasons)}. "
        if left:
            message += f"Not all could be put back; still different: {'; '.join(failures + left)}. "
        else:
            message += "The packages were put back as they were. "
        if self._state.import_error:
            message += f"The core modules still don't import: {self._state.import_error}"
        raise InstallBlocked(message.strip())
