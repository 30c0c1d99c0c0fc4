"""`python -m modules.extensions.guarded_pip <pip arguments>`: pip as extensions reach it.

launch.run_pip comes here, and so do the pip calls an install.py makes through subprocess or os.system
(modules/extensions/install_runner.py routes them). `pip install` is judged against the web UI's protected packages
(modules/extensions/package_guard.py) before it runs: a requirement that names one at another version is refused without
the network; the others go through pip's resolver with the pins as constraints, and one that can't be
resolved that way is looked at alone, then without its extras, then extra by extra, so that only what
conflicts is left out. pip then runs with the constraints file. `pip uninstall` of a protected package is
refused; other commands go to pip unchanged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from modules.extensions.package_guard import (
    SESSION_VARIABLE,
    GuardSession,
    PythonEnvironment,
    Refusal,
    direct_refusal,
    is_change,
    protected_pins,
    without_constraints,
)

# pip's options that take a value as the next argument (pip install's and the general ones)
VALUE_OPTIONS = frozenset(
    {
        "-r",
        "--requirement",
        "-c",
        "--constraint",
        "-e",
        "--editable",
        "-t",
        "--target",
        "--platform",
        "--python-version",
        "--implementation",
        "--abi",
        "--root",
        "--prefix",
        "--src",
        "--upgrade-strategy",
        "-C",
        "--config-settings",
        "--global-option",
        "--build-option",
        "--no-binary",
        "--only-binary",
        "--progress-bar",
        "--root-user-action",
        "--report",
        "-i",
        "--index-url",
        "--extra-index-url",
        "-f",
        "--find-links",
        "--log",
        "--log-file",
        "--local-log",
        "--cache-dir",
        "--proxy",
        "--retries",
        "--timeout",
        "--exists-action",
        "--trusted-host",
        "--cert",
        "--client-cert",
        "--python",
        "--keyring-provider",
        "--use-feature",
        "--use-deprecated",
        "--hash",
        "--install-option",
        "-b",
        "--build",
    }
)
COMMANDS = frozenset(
    {
        "install",
        "download",
        "uninstall",
        "freeze",
        "inspect",
        "list",
        "show",
        "check",
        "config",
        "search",
        "cache",
        "index",
        "wheel",
        "hash",
        "completion",
        "debug",
        "help",
    }
)


@dataclass(frozen=True)
class Wanted:
    """A requirement as the extension wrote it: `index` is its place in pip's arguments, or its line number
    in the -r `file` it came from."""

    text: str
    index: int
    file: Path | None = None


@dataclass
class InstallArgs:
    """`pip install`'s arguments taken apart: `options` (with their values, -e included) and `requirements`
    (from the command line and from -r files; `files` keeps where each file's path is in `args`: its index
    and what comes before the path in that argument, as in --requirement=FILE)."""

    args: list[str]
    options: list[str]
    requirements: list[Wanted]
    files: dict[Path, tuple[int, str]]


def split_command(argv: list[str]) -> tuple[list[str], str, list[str]]:
    """(the options before pip's command, the command, its arguments); the command is "" when there is none."""
    index = 0
    while index < len(argv):
        if argv[index] in COMMANDS:
            return argv[:index], argv[index], argv[index + 1 :]
        index += 2 if argv[index] in VALUE_OPTIONS else 1
    return argv, "", []


def _option_value(args: list[str], index: int) -> tuple[str | None, int, str]:
    """For an option at `index` that takes a value: (the value, the index holding it, the prefix before the
    value in that argument); the value is None for an option without one."""
    arg = args[index]
    if arg in VALUE_OPTIONS:
        return (args[index + 1], index + 1, "") if index + 1 < len(args) else (None, index, "")
    name, equals, value = arg.partition("=")
    if equals and name in VALUE_OPTIONS:
        return value, index, name + "="
    if len(arg) > 2 and arg[:2] in VALUE_OPTIONS and not arg.startswith("--"):  # -rfile
        return arg[2:], index, arg[:2]
    return None, index, ""


def requirement_lines(file: Path) -> list[Wanted]:
    """The requirements in a requirements file (options, comments and per-line options like --hash left out)."""
    found = []
    for number, line in enumerate(file.read_text(encoding="utf-8", errors="replace").splitlines()):
        text = line.split(" #", 1)[0].split(" --", 1)[0].strip()
        if text and not text.startswith(("#", "-")):
            found.append(Wanted(text, number, file))
    return found


def parse_install(args: list[str]) -> InstallArgs:
    """Take `pip install`'s arguments apart (see InstallArgs)."""
    parsed = InstallArgs(list(args), [], [], {})
    index = 0
    while index < len(args):
        arg = args[index]
        if not arg.startswith("-") or arg == "-":
            parsed.requirements.append(Wanted(arg, index))
            index += 1
            continue
        value, value_index, prefix = _option_value(args, index)
        name = prefix.rstrip("=") or arg
        if value is not None and name in ("-r", "--requirement") and Path(value).is_file():  # else pip says why
            file = Path(value)
            parsed.files[file] = (value_index, prefix)
            parsed.requirements.extend(requirement_lines(file))
        else:
            parsed.options.extend(args[index : value_index + 1])
        index = value_index + 1
    return parsed


@dataclass(frozen=True)
class Change:
    """A protected distribution the resolver would change, and the requirements that ask for that."""

    package: str
    installed: str
    wanted: str
    askers: tuple[str, ...]  # "name version requires spec"


def dry_run(
    pip_options: list[str], options: list[str], requirements: list[str], constraints: Path | None
) -> list[dict] | None:
    """What pip would install (its --report "install" list), or None when it can't resolve the requirements."""
    with tempfile.TemporaryDirectory(prefix="sd-webui-dry-run-") as folder:
        report = Path(folder) / "report.json"
        command = [
            sys.executable,
            "-m",
            "pip",
            *pip_options,
            "install",
            "--dry-run",
            "--quiet",
            "--report",
            str(report),
            *options,
            *requirements,
            *(["-c", str(constraints)] if constraints else []),
        ]
        done = subprocess.run(
            command, env=without_constraints(), capture_output=True, text=True, stdin=subprocess.DEVNULL
        )
        if done.returncode != 0 or not report.exists():
            return None
        return json.loads(report.read_text()).get("install", [])


def protected_changes(items: list[dict], pins: dict[str, str], wanted_by: str = "") -> list[Change]:
    """The pinned distributions among what pip would install, at other versions than the pinned ones; those
    that the distribution `wanted_by` itself asks for come first."""
    changes = []
    for item in items:
        name, version = canonicalize_name(item["metadata"]["name"]), item["metadata"]["version"]
        if is_change(pins, name, version):
            changes.append(Change(name, pins[name], version, _askers(items, name, pins[name])))
    wanted_by = canonicalize_name(wanted_by)
    return sorted(
        changes,
        key=lambda change: not any(canonicalize_name(asker.split(" ", 1)[0]) == wanted_by for asker in change.askers),
    )


def _askers(items: list[dict], name: str, pinned: str) -> tuple[str, ...]:
    """ "<name> <version> requires <spec>" for each requirement among `items` that rules out the pinned version."""
    found = []
    for item in items:
        for spec in map(_without_marker, item["metadata"].get("requires_dist", [])):
            if _name_of(spec) == name and not Requirement(spec).specifier.contains(pinned, prereleases=True):
                found.append(f"{item['metadata']['name']} {item['metadata']['version']} requires {spec}")
    return tuple(dict.fromkeys(found))


def _name_of(text: str) -> str:
    try:
        return canonicalize_name(Requirement(text).name)
    except InvalidRequirement:
        return ""


def _without_marker(text: str) -> str:
    requirement = Requirement(text)
    requirement.marker = None
    return str(requirement)


def _with_extras(requirement: Requirement, extras: set[str]) -> str:
    copy = Requirement(str(requirement))
    copy.extras = set(extras)
    return str(copy)


class InstallJudge:
    """Decides, for one `pip install`, what is refused and which extras are left out."""

    def __init__(self, session: GuardSession, pip_options: list[str], options: list[str]) -> None:
        self.session, self.pip_options, self.options = session, pip_options, options
        self.refusals: list[Refusal] = []
        self.edits: dict[Wanted, str] = {}

    def resolves(self, requirements: list[str]) -> bool:
        """Whether pip can install `requirements` with the pins."""
        return dry_run(self.pip_options, self.options, requirements, self.session.constraints) is not None

    def changes(self, requirement: str) -> list[Change]:
        """What installing `requirement` alone, without the pins, would change among them."""
        items = dry_run(self.pip_options, self.options, [requirement], None)
        return protected_changes(items or [], self.session.pins, _name_of(requirement))

    def refuse(self, wanted: Wanted, changes: list[Change], extra: str = "") -> None:
        """Record that `wanted` (or its `extra`) is refused for the first of `changes`, naming the others."""
        first = changes[0]
        also = ", ".join(f"{change.package} {change.installed} → {change.wanted}" for change in changes[1:])
        self.refusals.append(
            Refusal(
                self.session.extension,
                wanted.text,
                first.package,
                first.installed,
                first.wanted,
                extra,
                "; ".join(first.askers),
                also=also,
            )
        )

    def judge(self, requirements: list[Wanted]) -> None:
        """Fill `refusals` and `edits` for these requirements."""
        to_resolve = []
        for wanted in requirements:
            refusal = direct_refusal(self.session.extension, wanted.text, self.session.pins)
            if refusal:
                self.refusals.append(refusal)
            else:
                to_resolve.append(wanted)
        if not to_resolve or self.resolves([wanted.text for wanted in to_resolve]):
            return
        for wanted in to_resolve:  # one of them conflicts (or fails for another reason)
            if len(to_resolve) == 1 or not self.resolves([wanted.text]):
                self.judge_conflict(wanted)

    def judge_conflict(self, wanted: Wanted) -> None:
        """A requirement that can't be installed with the pins: refused when that is because it would change
        them, or kept without the extras that would."""
        changes = self.changes(wanted.text)
        if not changes:  # it fails for another reason, which pip will tell
            return
        try:
            requirement = Requirement(wanted.text)
        except InvalidRequirement:
            requirement = None
        if requirement is None or not requirement.extras or not self.resolves([_with_extras(requirement, set())]):
            self.refuse(wanted, changes)
            return
        kept = set()
        for extra in sorted(requirement.extras):
            alone = _with_extras(requirement, {extra})
            if self.resolves([alone]):
                kept.add(extra)
            else:
                self.refuse(wanted, self.changes(alone) or changes, extra)
        self.edits[wanted] = _with_extras(requirement, kept)


def edited_args(parsed: InstallArgs, edits: dict[Wanted, str], folder: Path) -> list[str]:
    """pip install's arguments with the edited requirements in place; an edited -r file is copied into
    `folder` with those lines changed (its own relative -r and -c paths made absolute)."""
    args = list(parsed.args)
    for wanted, text in edits.items():
        if wanted.file is None:
            args[wanted.index] = text
    for file, (index, prefix) in parsed.files.items():
        changed = {wanted: text for wanted, text in edits.items() if wanted.file == file}
        if not changed:
            continue
        lines = file.read_text(encoding="utf-8").splitlines()
        for wanted, text in changed.items():
            lines[wanted.index] = lines[wanted.index].replace(wanted.text, text, 1)
        handle, copy = tempfile.mkstemp(prefix="requirements-", suffix=".txt", dir=folder)
        os.close(handle)
        Path(copy).write_text(
            "\n".join(_absolute_includes(line, file.parent) for line in lines) + "\n", encoding="utf-8"
        )
        args[index] = prefix + copy
    return args


def _absolute_includes(line: str, base: Path) -> str:
    """A requirements file's line, with the path of an -r or -c include made absolute from `base`."""
    option, _, rest = line.strip().partition(" ")
    if option in ("-r", "--requirement", "-c", "--constraint") and rest and not Path(rest.strip()).is_absolute():
        return f"{option} {base / rest.strip()}"
    return line


def install(session: GuardSession, pip_options: list[str], args: list[str]) -> int:
    """Judge, report, then run `pip install` with what is left and the constraints file; pip's exit status."""
    parsed = parse_install(args)
    judge = InstallJudge(session, pip_options, parsed.options)
    judge.judge(parsed.requirements)
    for refusal in judge.refusals:
        session.record(refusal)
        print(refusal.message(), file=sys.stderr, flush=True)
    if any(not refusal.extra for refusal in judge.refusals):
        return 1
    with tempfile.TemporaryDirectory(prefix="sd-webui-requirements-") as folder:
        command = [
            sys.executable,
            "-m",
            "pip",
            *pip_options,
            "install",
            *edited_args(parsed, judge.edits, Path(folder)),
            "-c",
            str(session.constraints),
        ]
        return subprocess.run(command, env=without_constraints()).returncode


def uninstall(session: GuardSession, pip_options: list[str], args: list[str]) -> int:
    """Refuse to uninstall a protected distribution; otherwise run pip uninstall."""
    parsed = parse_install(args)
    names = {_name_of(wanted.text): wanted.text for wanted in parsed.requirements}
    refused = [
        Refusal(session.extension, text, name, session.pins[name], "", command="uninstall")
        for name, text in names.items()
        if name in session.pins
    ]
    for refusal in refused:
        session.record(refusal)
        print(refusal.message(), file=sys.stderr, flush=True)
    if refused:
        return 1
    return subprocess.run([sys.executable, "-m", "pip", *pip_options, "uninstall", *args]).returncode


def main(argv: list[str]) -> int:
    """Run one pip command through the guard, in the session the installer started (or, when pip is run by
    hand outside one, in a session of its own for this Python)."""
    variable = os.environ.get(SESSION_VARIABLE)
    session = (
        GuardSession.load(variable)
        if variable
        else GuardSession.start(Path.cwd().name, protected_pins(PythonEnvironment(sys.executable)))
    )
    try:
        pip_options, command, args = split_command(argv)
        if command == "install" and "--dry-run" not in args:
            return install(session, pip_options, args)
        if command == "uninstall":
            return uninstall(session, pip_options, args)
        return subprocess.run([sys.executable, "-m", "pip", *argv]).returncode
    finally:
        if not variable:
            session.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
