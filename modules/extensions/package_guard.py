"""Keeps extensions' pip installs from changing the packages the web UI runs on.

The protected packages are the web UI's declared requirements and theirs, transitively (torch, diffusers,
transformers, gradio, numpy, huggingface-hub, …), each pinned at the version installed now. pip gets the
pins as a constraints file, and every `pip install` an extension asks for is judged first (see
modules/extensions/guarded_pip.py): a requirement that would change a pinned package is refused; when only an extra
of it would, the extra is left out and the rest is installed. Each refusal is written to the session's
report, which the installer reads when install.py is done."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from modules.errors import UserError

APP_DISTRIBUTION = "sd-webui"  # [project] name in pyproject.toml
CORE_MODULES = ("torch", "diffusers", "transformers", "gradio", "numpy")  # must import after every install
SESSION_VARIABLE = "SD_WEBUI_PACKAGE_GUARD"  # names the session file of the install.py being run
PIP_TIMEOUT = 600.0  # seconds for one pip run of the guard's own

Pins = dict[str, str]  # canonical distribution name -> installed version


class PackageGuardError(UserError):
    """The guard could not check an install (pip itself failed or took too long); the message says why."""


class InstallBlocked(PackageGuardError):
    """An install was refused or undone because it would change or break the web UI's own packages; the
    extension is to be disabled, and the message says why."""


@dataclass(frozen=True)
class PythonEnvironment:
    """Where extensions install into: its Python, the distribution whose requirements are protected, and
    the modules that must still import afterwards. Tests point it at a throwaway virtual environment."""

    python: str = sys.executable
    app_distribution: str = APP_DISTRIBUTION
    core_modules: tuple[str, ...] = CORE_MODULES

    def pip(self, *args: str, timeout: float = PIP_TIMEOUT) -> subprocess.CompletedProcess:
        """Run `python -m pip <args>` in this environment without the guard's constraints (they are the
        guard's to apply); returns the finished process with its text output."""
        env = {**without_constraints(), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        try:
            return subprocess.run(
                [self.python, "-m", "pip", *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise PackageGuardError(f"pip {args[0]} took longer than {timeout:.0f} s and was stopped.") from None

    def pip_output(self, *args: str) -> str:
        """pip's standard output; PackageGuardError when pip fails (`pip check` exiting 1 is a finding, not a
        failure)."""
        done = self.pip(*args)
        if done.returncode != 0 and args[0] != "check":
            raise PackageGuardError(f"pip {args[0]} failed in {self.python}: {done.stderr.strip()[-500:]}")
        return done.stdout


def without_constraints() -> dict[str, str]:
    """This process's environment without PIP_CONSTRAINT: the guard passes its constraints with -c, which,
    unlike the variable, doesn't reach the builds of source packages (their build requirements are not pinned)."""
    return {key: value for key, value in os.environ.items() if key != "PIP_CONSTRAINT"}


def protected_pins(environment: PythonEnvironment) -> Pins:
    """The installed version of every distribution the web UI needs: its own requirements (with their markers
    and extras) and theirs, transitively, plus the core modules' distributions. Read with `pip inspect`."""
    report = json.loads(environment.pip_output("inspect"))
    markers = report.get("environment", {})
    installed = {canonicalize_name(item["metadata"]["name"]): item["metadata"] for item in report["installed"]}
    app = canonicalize_name(environment.app_distribution)
    pending = [
        (app, frozenset[str]()),
        *((canonicalize_name(name), frozenset[str]()) for name in environment.core_modules),
    ]
    seen: set[tuple[str, frozenset[str]]] = set()
    pins: Pins = {}
    while pending:
        name, extras = pending.pop()
        metadata = installed.get(name)
        if (name, extras) in seen or metadata is None:  # a missing requirement is pip check's to report
            continue
        seen.add((name, extras))
        if name != app:
            pins[name] = metadata["version"]
        for text in metadata.get("requires_dist", []):
            requirement = Requirement(text)
            wanted_by = extras or {""}
            if requirement.marker and not any(
                requirement.marker.evaluate({**markers, "extra": extra}) for extra in wanted_by
            ):
                continue
            pending.append((canonicalize_name(requirement.name), frozenset(requirement.extras)))
    return pins


def is_change(pins: Pins, name: str, version: str) -> bool:
    """Whether installing `name` at `version` would change a pinned distribution."""
    pinned = pins.get(canonicalize_name(name))
    if pinned is None:
        return False
    try:
        return Version(pinned) != Version(version)
    except InvalidVersion:
        return pinned != version


@dataclass(frozen=True)
class Refusal:
    """One thing the guard would not let pip do: `requirement` (as the extension asked, or its `extra`) would
    change `package` from `installed` to `wanted` ("" when it would remove it)."""

    extension: str
    requirement: str
    package: str
    installed: str
    wanted: str
    extra: str = ""
    because: str = ""  # which distributions ask for that version, when pip's resolver told
    command: str = "install"
    also: str = ""  # the other protected distributions it would change, "name installed → wanted, …"

    def message(self) -> str:
        change = (
            f"change {self.package} from {self.installed} (the version the web UI uses) to {self.wanted}"
            if self.wanted
            else f"remove {self.package} {self.installed}, which the web UI uses"
        )
        why = (f" ({self.because})" if self.because else "") + (f", and also {self.also}" if self.also else "")
        if self.extra:
            return (
                f'Extension {self.extension}: the "{self.extra}" extra of {self.requirement} was left out, '
                f"because it would {change}{why}; the rest was installed without it."
            )
        return (
            f"Extension {self.extension}: pip {self.command} {self.requirement} was refused, because it would "
            f"{change}{why}."
        )


def direct_refusal(extension: str, text: str, pins: Pins) -> Refusal | None:
    """Judge a requirement that names a protected distribution by its specifier alone (no network needed):
    refused when the installed version doesn't satisfy it, or when it points pip at a URL instead."""
    try:
        requirement = Requirement(text)
    except InvalidRequirement:  # a path or URL: only pip's resolver can say what it is
        return None
    name = canonicalize_name(requirement.name)
    if name not in pins or (requirement.marker and not requirement.marker.evaluate()):
        return None
    if requirement.url:
        return Refusal(extension, text, name, pins[name], requirement.url)
    if requirement.specifier.contains(pins[name], prereleases=True):
        return None
    pinned = [spec.version for spec in requirement.specifier if spec.operator in ("==", "===")]
    wanted = pinned[0] if len(pinned) == 1 and "*" not in pinned[0] else f"a version {requirement.specifier}"
    return Refusal(extension, text, name, pins[name], wanted)


@dataclass(frozen=True)
class GuardSession:
    """The files one install.py run shares with the pip calls it makes, in `folder`: the constraints file
    (also in PIP_CONSTRAINT), the session file that tells modules/extensions/guarded_pip.py the extension and the pins,
    and the report it appends refusals to. start() makes them, close() removes them."""

    extension: str
    pins: Pins
    folder: Path

    @property
    def constraints(self) -> Path:
        return self.folder / "constraints.txt"

    @property
    def report(self) -> Path:
        return self.folder / "refusals.jsonl"

    @property
    def file(self) -> Path:
        return self.folder / "session.json"

    @classmethod
    def start(cls, extension: str, pins: Pins) -> GuardSession:
        """Write the constraints and session files into a new temporary folder."""
        session = cls(extension, dict(pins), Path(tempfile.mkdtemp(prefix="sd-webui-package-guard-")))
        session.constraints.write_text("".join(f"{name}=={version}\n" for name, version in sorted(pins.items())))
        session.file.write_text(json.dumps({"extension": extension, "pins": session.pins}))
        return session

    @classmethod
    def load(cls, file: str | os.PathLike) -> GuardSession:
        """The session a parent process started (from the path in SD_WEBUI_PACKAGE_GUARD)."""
        data = json.loads(Path(file).read_text())
        return cls(data["extension"], data["pins"], Path(file).parent)

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def variables(self) -> dict[str, str]:
        """What the install.py process needs in its environment."""
        return {SESSION_VARIABLE: str(self.file), "PIP_CONSTRAINT": str(self.constraints)}

    def record(self, refusal: Refusal) -> None:
        """Append a refusal to the report."""
        with self.report.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(asdict(refusal)) + "\n")

    def refusals(self) -> list[Refusal]:
        """Every refusal recorded so far, in order."""
        if not self.report.exists():
            return []
        return [Refusal(**json.loads(line)) for line in self.report.read_text(encoding="utf-8").splitlines() if line]
