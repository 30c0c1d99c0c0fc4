"""Tiny wheels written by hand (a wheel is a zip with METADATA, WHEEL and RECORD), for pip to install
offline with --no-index --find-links, and a throwaway virtual environment to install them into."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def write_wheel(
    folder: Path,
    name: str,
    version: str,
    requires: tuple[str, ...] = (),
    extras: dict[str, tuple[str, ...]] | None = None,
    files: dict[str, str] | None = None,
) -> Path:
    """`folder/<name>-<version>-py3-none-any.whl` with a package `<name>` (its __init__ sets __version__),
    the given requirements, extras (extra -> requirements) and extra `files` (path -> text)."""
    module = name.replace("-", "_")
    info = f"{module}-{version}.dist-info"
    metadata = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
        *(f"Requires-Dist: {requirement}" for requirement in requires),
    ]
    for extra, needs in (extras or {}).items():
        metadata += [f"Provides-Extra: {extra}", *(f'Requires-Dist: {need}; extra == "{extra}"' for need in needs)]
    wheel_file = "Wheel-Version: 1.0\nGenerator: tiny_wheels\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    contents = {
        f"{module}/__init__.py": f"__version__ = {version!r}\n",
        **(files or {}),
        f"{info}/METADATA": "\n".join(metadata) + "\n",
        f"{info}/WHEEL": wheel_file,
    }
    record = [_record_line(path, text.encode()) for path, text in contents.items()] + [f"{info}/RECORD,,"]
    path = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for member, text in contents.items():
            wheel.writestr(member, text)
        wheel.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return path


def make_venv(folder: Path) -> Path:
    """A virtual environment with nothing installed that still runs pip and imports packaging: both are linked
    from this environment into a folder its .pth file names. pip installs into it, never into this one.
    Returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    shared = folder / "shared"
    shared.mkdir()
    for package in ("pip", "packaging"):
        (shared / package).symlink_to(Path(sysconfig.get_paths()["purelib"]) / package, target_is_directory=True)
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(site) / "zz_shared.pth").write_text(f"{shared}\n")
    return python


def pip(python: Path, *args: str) -> str:
    """Run pip in that environment (offline: only the wheels in PIP_FIND_LINKS); its output, failing loudly."""
    done = subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", *args], capture_output=True, text=True
    )
    assert done.returncode == 0, f"pip {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done.stdout
