"""User extensions: one folder each under extensions/ (usually a git clone), laid out as in A1111.

An extension may hold scripts/*.py (loaded with the built-in scripts), javascript/*.js and style.css
(added to the page), install.py (run at install, and at each start unless --skip-install, under the
package guard: modules/extensions/guarded_install.py), preload.py (its `preload(parser)` adds command-line flags) and
metadata.ini (`[Extension]` Name and Requires). The folders that are switched off are listed in the
`disabled_extensions` setting; why an install left one disabled is kept in extensions/.install-notes.json.
Git runs as a subprocess; its own message is passed on when it fails.

This is A1111's `modules.extensions`; the package also holds the package guard around installs, Gradio 3
compatibility and the A1111 module names extensions import (a1111/)."""

from __future__ import annotations

import argparse
import configparser
import importlib.util
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from modules.core.atomic_files import read_json_object, write_json_atomic
from modules.core.setting_values import check_index_url
from modules.errors import UserError
from modules.extensions.guarded_install import GuardedInstaller
from modules.extensions.package_guard import InstallBlocked, PackageGuardError

if TYPE_CHECKING:
    from modules.options import Options

log = logging.getLogger(__name__)

DISABLED_SETTING = "disabled_extensions"
GIT_TIMEOUT = 300.0  # seconds for a clone or fetch
INSTALL_TIMEOUT = 900.0  # seconds for one install.py
OUTPUT_TAIL = 1500  # characters of a failed install.py's output shown to the user
NOTES_FILE = ".install-notes.json"  # in the extensions folder: what the last install of each one reported
_install_lock = threading.Lock()


class ExtensionError(UserError):
    """An extension could not be installed, updated or read; the message says why."""


class InstallScriptError(ExtensionError):
    """The clone is in place but its install.py failed; `extension` is the installed, disabled extension."""

    def __init__(self, message: str, extension: Extension) -> None:
        super().__init__(message)
        self.extension = extension


@dataclass(frozen=True)
class ExtensionMetadata:
    """What metadata.ini says: the canonical name (lower case; the folder name when absent) and the
    canonical names of the extensions this one requires."""

    name: str
    requires: tuple[str, ...] = ()


@dataclass
class Extension:
    """One folder under extensions/. The git fields are filled by read_git_info(); `status` and
    `can_update` by check_for_updates()."""

    name: str
    path: Path
    metadata: ExtensionMetadata
    enabled: bool = True
    remote: str | None = None
    branch: str | None = None
    commit_hash: str = ""
    commit_date: int | None = None  # Unix time of the checked-out commit
    status: str = ""
    can_update: bool = False
    note: str = ""  # what its last install reported: why it was disabled, or the extras left out

    @property
    def version(self) -> str:
        """The short commit hash, as A1111 shows it."""
        return self.commit_hash[:8]

    @property
    def is_git(self) -> bool:
        return (self.path / ".git").exists()

    def files(self, subdir: str, suffix: str) -> list[Path]:
        """The files directly in `subdir` whose names end with `suffix`, by name."""
        folder = self.path / subdir
        return sorted(p for p in folder.glob(f"*{suffix}") if p.is_file()) if folder.is_dir() else []

    def read_git_info(self) -> None:
        """Fill remote, branch, commit hash and date from the clone; a folder that is no git clone keeps
        them empty. A git failure is logged and leaves them empty too."""
        if not self.is_git:
            return
        try:
            commit_hash, date, *refs = git(self.path, "log", "-1", "--format=%H%n%ct%n%D").split("\n")
            self.commit_hash, self.commit_date = commit_hash, int(date)
        except (ExtensionError, ValueError) as exc:  # an empty repository has no commit to read
            log.warning("Could not read the git state of extension %s: %s", self.name, exc)
            return
        head = re.match(r"HEAD -> ([^,]+)", refs[0] if refs else "")
        self.branch = head.group(1) if head else None
        try:
            self.remote = git(self.path, "config", "--get", "remote.origin.url") or None
        except ExtensionError:
            self.remote = None


def git(cwd: Path | None, *args: str, timeout: float = 60.0) -> str:
    """Run git and return its output. Git never prompts (a repository that needs a login fails); a
    failure raises ExtensionError with git's own message."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    try:  # a session of its own, so a timeout stops git's helpers (git-remote-https, ssh) too
        proc = subprocess.Popen(
            ["git", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise ExtensionError("git is not installed (or not on PATH); extensions need it.") from None
    with proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise ExtensionError(f"git {args[0]} took longer than {timeout:.0f} s and was stopped.") from None
    if proc.returncode != 0:
        message = err.strip() or out.strip() or f"exit status {proc.returncode}"
        raise ExtensionError(f"git {args[0]} failed: {message}")
    return out.strip()


def read_metadata(folder: Path) -> ExtensionMetadata:
    """The extension's metadata.ini; a missing or unreadable file gives the folder name and no requirements."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(folder / "metadata.ini", encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as exc:
        log.warning("%s could not be read: %s", folder / "metadata.ini", exc)
    name = parser.get("Extension", "Name", fallback="").strip().lower() or folder.name.lower()
    requires = parser.get("Extension", "Requires", fallback="").lower()
    return ExtensionMetadata(name, tuple(re.findall(r"[^,\s]+", requires)))


def disabled_names(opts: Options) -> set[str]:
    """The folder names the `disabled_extensions` setting switches off."""
    return set(getattr(opts, DISABLED_SETTING) or [])


def set_disabled(opts: Options, names: Iterable[str]) -> None:
    """Store the folder names to switch off in config.json (used from the next start or restart)."""
    opts.set(DISABLED_SETTING, sorted(set(names)))


def read_disabled(config_file: Path) -> set[str]:
    """`disabled_extensions` read straight from config.json, for use before the settings are loaded
    (preload.py); an unreadable file counts as none disabled and is left for Options to report."""
    try:
        data = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    names = data.get(DISABLED_SETTING) if isinstance(data, dict) else None
    return {str(name) for name in names} if isinstance(names, list) else set()


def read_notes(extensions_dir: Path) -> dict[str, str]:
    """What the last install of each extension reported, by folder name (an unreadable file is moved aside)."""
    data, problem = read_json_object(extensions_dir / NOTES_FILE)
    if problem:
        log.warning("%s", problem)
    return {str(name): str(text) for name, text in data.items()}


def set_note(extensions_dir: Path, name: str, text: str) -> None:
    """Keep `text` as what the install of extension `name` reported ("" forgets it)."""
    notes = read_notes(extensions_dir)
    if notes.get(name, "") == text:
        return
    if text:
        notes[name] = text
    else:
        notes.pop(name, None)
    write_json_atomic(extensions_dir / NOTES_FILE, notes)


def list_extensions(extensions_dir: Path, disabled: Iterable[str] = ()) -> list[Extension]:
    """Every extension folder, by name, with its install note; folders starting with '.' (installs in
    progress) are skipped. Git details are not read here: call read_git_info() on the ones that need them."""
    if not extensions_dir.is_dir():
        return []
    off, notes = set(disabled), read_notes(extensions_dir)
    return [
        Extension(path.name, path, read_metadata(path), path.name not in off, note=notes.get(path.name, ""))
        for path in sorted(extensions_dir.iterdir())
        if path.is_dir() and not path.name.startswith(".")
    ]


def requirement_problems(extensions: list[Extension]) -> list[str]:
    """A line for each enabled extension that requires (metadata.ini) one that is missing or disabled."""
    known = {ext.metadata.name: ext for ext in extensions} | {ext.name.lower(): ext for ext in extensions}
    problems = []
    for ext in extensions:
        for required in ext.metadata.requires if ext.enabled else ():
            other = known.get(required)
            if other is None or not other.enabled:
                state = "not installed" if other is None else "disabled"
                problems.append(f'Extension "{ext.name}" requires "{required}", which is {state}.')
    return problems


def access_refusal(args: argparse.Namespace) -> str | None:
    """Why installing, updating and switching extensions is refused (as A1111 does when the server is
    reachable from other machines), or None when it is allowed."""
    if getattr(args, "enable_insecure_extension_access", False):
        return None
    flags = [flag for flag in ("listen", "share") if getattr(args, flag, False)]
    if not flags:
        return None
    named = " and ".join(f"--{flag}" for flag in flags)
    return (
        f"Extension access is turned off because the server can be reached from other machines ({named}): "
        "an extension runs code on this computer. Start with --enable-insecure-extension-access to allow it."
    )


def check_access(args: argparse.Namespace) -> None:
    """Raise ExtensionError with the reason when extension access is refused."""
    reason = access_refusal(args)
    if reason:
        raise ExtensionError(reason)


def folder_name_for(url: str, folder: str | None = None) -> str:
    """The folder to install into: `folder`, or the repository's name from the URL without '.git'.
    A name with '/', '\\' or '..', or starting with '.', is refused."""
    name = (folder or "").strip()
    if not name:
        tail = url.strip().replace("\\", "/").rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
        name = tail.removesuffix(".git")
    if not name or "/" in name or "\\" in name or ".." in name or name.startswith(".") or "\0" in name:
        raise ExtensionError(
            f"{name!r} can't be an extension folder name: give a plain name, without '/', '\\' "
            "or '..', that doesn't start with '.'."
        )
    return name


def _same_repository(a: str, b: str) -> bool:
    def normal(url: str) -> str:
        return url.strip().rstrip("/").removesuffix(".git").removeprefix("file://")

    return normal(a) == normal(b)


def install_from_url(
    url: str,
    extensions_dir: Path,
    opts: Options,
    branch: str | None = None,
    folder: str | None = None,
    run_install: bool = True,
    installer: GuardedInstaller | None = None,
) -> Extension:
    """Clone `url` (https, ssh, file:// or a local path), optionally a `branch`, into
    extensions/`folder` and run its install.py (with `installer`, by default one for this Python). The
    clone goes to a hidden folder in extensions/ first and is renamed into place only when complete, so a
    failed clone leaves nothing behind. When install.py fails, or the package guard blocks it, the
    extension stays on disk but is disabled (stored in `opts`), the reason is kept as its note, and
    InstallScriptError says so. Access checks (check_access) are the caller's."""
    url = url.strip()
    if not url:
        raise ExtensionError("Enter the URL (or folder) of the extension's git repository.")
    if Path(url).expanduser().is_dir():
        url = str(Path(url).expanduser().resolve())
    name = folder_name_for(url, folder)
    with _install_lock:
        target = extensions_dir / name
        if target.exists():
            raise ExtensionError(f"The folder {target} exists already; choose another folder name.")
        for ext in list_extensions(extensions_dir):
            ext.read_git_info()
            if ext.remote and _same_repository(ext.remote, url):
                raise ExtensionError(f"This repository is installed already, as {ext.name}.")
        extensions_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".installing-{name}-", dir=extensions_dir))
        branch_args = ["--branch", branch.strip()] if branch and branch.strip() else []
        try:
            git(
                None,
                "clone",
                "--quiet",
                "--recurse-submodules",
                *branch_args,
                "--",
                url,
                str(staging / name),
                timeout=GIT_TIMEOUT,
            )
            (staging / name).rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    extension = Extension(name, target, read_metadata(target))
    extension.read_git_info()
    if name in disabled_names(opts):  # left from an earlier install of that name: a new one starts enabled
        set_disabled(opts, disabled_names(opts) - {name})
    if run_install and (target / "install.py").is_file():
        try:
            extension.note = " ".join(run_install_script(extension, installer=installer))
        except (ExtensionError, PackageGuardError) as exc:
            _disable_after_install(extension, opts, str(exc))
            raise InstallScriptError(
                f"{exc} The extension was installed into {target} but is disabled; fix the "
                "problem, then enable it on the Installed tab.",
                extension,
            ) from None
    set_note(extensions_dir, name, extension.note)
    log.info("Installed extension %s from %s", name, url)
    return extension


def _disable_after_install(extension: Extension, opts: Options, reason: str) -> None:
    """Switch off an extension whose install failed or was blocked (stored in `opts`), `reason` kept as its note."""
    set_disabled(opts, disabled_names(opts) | {extension.name})
    set_note(extension.path.parent, extension.name, reason)
    extension.enabled, extension.note = False, reason


def run_install_script(
    extension: Extension, timeout: float = INSTALL_TIMEOUT, installer: GuardedInstaller | None = None
) -> list[str]:
    """Run the extension's install.py in the extension's folder, with the web UI's folder on PYTHONPATH (as
    A1111 does), under the package guard (`installer`, by default one for this Python). Returns notes on
    extras the guard left out. A failure raises ExtensionError with the end of its output; InstallBlocked
    when the guard refused or undid what it asked for."""
    try:
        done = (installer or GuardedInstaller()).run(extension.name, extension.path / "install.py", timeout)
    except subprocess.TimeoutExpired:
        raise ExtensionError(
            f"install.py of {extension.name} ran longer than {timeout:.0f} s and was stopped."
        ) from None
    if done.output:
        log.info("install.py of %s:\n%s", extension.name, done.output)
    for note in done.notes:
        log.warning("%s", note)
    if done.returncode != 0:
        tail = done.output[-OUTPUT_TAIL:] or "no output"
        raise ExtensionError(f"install.py of {extension.name} failed (exit status {done.returncode}): {tail}")
    return done.notes


def run_install_scripts(
    extensions: list[Extension], opts: Options, installer: GuardedInstaller | None = None
) -> list[str]:
    """Run install.py of each extension that has one (at start); returns a message for each failure and each
    note. One the package guard blocks is disabled (stored in `opts`) with the reason as its note."""
    problems = []
    installer = installer or GuardedInstaller()
    for ext in extensions:
        if not (ext.path / "install.py").is_file():
            continue
        try:
            notes = run_install_script(ext, installer=installer)
            if notes:
                set_note(ext.path.parent, ext.name, " ".join(notes))
            problems += notes
        except InstallBlocked as exc:
            log.error("%s", exc)
            _disable_after_install(ext, opts, str(exc))
            problems.append(f"{exc} {ext.name} was disabled.")
        except (ExtensionError, PackageGuardError) as exc:
            log.error("%s", exc)
            problems.append(str(exc))
    return problems


def check_for_updates(extension: Extension, timeout: float = GIT_TIMEOUT) -> tuple[int, int]:
    """`git fetch`, then count the commits the checkout is (behind, ahead) of its upstream branch; sets
    `status` and `can_update`. Raises ExtensionError (and sets `status`) when that can't be told."""
    try:
        if not extension.is_git:
            raise ExtensionError(f"{extension.name} is not a git clone, so it can't be updated.")
        git(extension.path, "fetch", "--quiet", timeout=timeout)
        behind, ahead = map(
            int, git(extension.path, "rev-list", "--left-right", "--count", "@{upstream}...HEAD").split()
        )
    except ExtensionError as exc:
        extension.status, extension.can_update = f"unknown: {exc}", False
        raise
    extension.can_update = behind > 0
    if behind and ahead:
        extension.status = f"diverged: {behind} new, {ahead} local commits"
    elif behind:
        extension.status = f"{behind} new commit{'s' if behind > 1 else ''}"
    else:
        extension.status = "latest" if not ahead else f"{ahead} local commit{'s' if ahead > 1 else ''} ahead"
    return behind, ahead


def update(extension: Extension, timeout: float = GIT_TIMEOUT) -> None:
    """Fetch and fast-forward to the upstream branch (`git pull --ff-only`); local changes or diverged
    history make git refuse, and its message is raised."""
    git(extension.path, "fetch", "--quiet", timeout=timeout)
    git(extension.path, "merge", "--ff-only", "@{upstream}", timeout=timeout)
    extension.read_git_info()
    extension.status, extension.can_update = "latest", False


def load_preload(parser: argparse.ArgumentParser, extensions: Iterable[Extension]) -> list[str]:
    """Call `preload(parser)` of each enabled one of `extensions` that has a preload.py, so it can add flags
    before they are parsed. One that fails is logged and named in the returned list; the others still run."""
    problems = []
    for ext in extensions:
        script = ext.path / "preload.py"
        if not ext.enabled or not script.is_file():
            continue
        module_name = "extension_preload_" + re.sub(r"\W", "_", ext.name)
        try:
            spec = importlib.util.spec_from_file_location(module_name, script)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            if callable(getattr(module, "preload", None)):
                module.preload(parser)
        except Exception as exc:  # an extension's own code: report it and go on
            log.exception("preload.py of extension %s failed", ext.name)
            problems.append(f"preload.py of {ext.name} failed: {exc}")
    return problems


@dataclass(frozen=True)
class ExtensionAssets:
    """What extensions add to the page: their javascript/*.js files and style.css files, in order."""

    scripts: list[Path]
    styles: list[Path]


def extension_assets(extensions: list[Extension]) -> ExtensionAssets:
    """The page files of `extensions` (pass the active ones)."""
    return ExtensionAssets(
        scripts=[path for ext in extensions for path in ext.files("javascript", ".js")],
        styles=[ext.path / "style.css" for ext in extensions if (ext.path / "style.css").is_file()],
    )


@dataclass(frozen=True)
class IndexEntry:
    """One extension in an index such as A1111's index.json."""

    name: str
    url: str
    description: str = ""
    tags: tuple[str, ...] = ()
    added: str = ""


def fetch_index(url: str, timeout: float = 10.0) -> list[IndexEntry]:
    """Download and read an extension index (JSON with an "extensions" list of name, url, description,
    tags, added) from an http(s) URL. Raises ExtensionError saying what went wrong when it can't be loaded."""
    try:
        check_index_url(url)
    except ValueError as exc:
        raise ExtensionError(str(exc)) from None
    # Imported here, not at the top: `python -m modules.extensions.install_runner` (and guarded_pip) import this
    # package first, in whatever Python environment an extension is installed into.
    import requests

    try:
        response = requests.get(url, timeout=timeout)
        response.raise_for_status()
    except requests.RequestException as exc:
        raise ExtensionError(f"The extension index at {url} could not be loaded: {exc}") from None
    try:
        data = json.loads(response.text)
    except ValueError:
        raise ExtensionError(f"The extension index at {url} is not JSON.") from None
    items = data.get("extensions") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ExtensionError(f'The extension index at {url} has no "extensions" list.')
    return [
        IndexEntry(
            str(item.get("name") or item["url"]),
            str(item["url"]),
            str(item.get("description", "")),
            tuple(map(str, item.get("tags") or ())),
            str(item.get("added", "")),
        )
        for item in items
        if isinstance(item, dict) and item.get("url")
    ]
