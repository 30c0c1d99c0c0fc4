"""webui.sh picks the .[ray] extra from --ray-* flags, and setup_venv.sh knows which installs already hold it.
The real scripts run in a copy of the repository's top level whose .venv/bin/python only logs its arguments."""

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Logs "name [arg] [arg]…", so an empty argument shows as [].
LOGGER = (
    "#!/usr/bin/env bash\n"
    '{{ printf %s "${{0##*/}}"; for a in "$@"; do printf " [%s]" "$a"; done; echo; }} '
    '>> "$(dirname "$0")/{log}"\n'
)

PIP = "python [-m] [pip] [install] [--disable-pip-version-check]"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of webui.sh, setup_venv.sh, pyproject.toml and the lock file, with a .venv/bin/python that logs its
    calls."""
    for name in ("webui.sh", "setup_venv.sh", "pyproject.toml", "requirements-lock.txt"):
        shutil.copy2(ROOT / name, tmp_path / name)
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    python = tmp_path / ".venv" / "bin" / "python"
    python.write_text(LOGGER.format(log="../../calls.log"))
    python.chmod(0o755)
    return tmp_path


def calls(repo: Path) -> list[str]:
    log = repo / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def bracketed(name: str, *args: str) -> str:
    return name + "".join(f" [{arg}]" for arg in args)


def run(repo: Path, script: str, *args: str) -> None:
    out = subprocess.run(["bash", str(repo / script), *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def stamp(repo: Path, extra: str, pyproject: bytes | None = None) -> None:
    """Mark `extra` installed from this pyproject.toml and lock file, as setup_venv.sh does."""
    text = (pyproject or (repo / "pyproject.toml").read_bytes()) + (repo / "requirements-lock.txt").read_bytes()
    digest = hashlib.sha256(text).hexdigest()
    (repo / ".venv" / f".installed{'-' + extra if extra else ''}").write_text(digest + "\n")


@pytest.mark.parametrize(
    "flags, extra",
    [
        ([], ""),
        (["--api", "--ckpt", "a.safetensors"], ""),
        (["--ray-address", "local"], "ray"),
        (["--api", "--ray-replicas=1:2", "--ray-address", "auto"], "ray"),
        (["--ray-models-per-replica", "2"], "ray"),
    ],
)
def test_webui_sh_asks_for_the_ray_extra_only_with_a_ray_flag(repo, flags, extra):
    setup = repo / "setup_venv.sh"
    setup.write_text(LOGGER.format(log="calls.log"))  # stands in for the installer
    run(repo, "webui.sh", *flags)
    assert calls(repo) == ["setup_venv.sh" + (f" [{extra}]" if extra else ""), bracketed("python", "app.py", *flags)]


def test_ray_install_is_skipped_when_the_test_extra_is_current(repo):
    stamp(repo, "test")
    run(repo, "setup_venv.sh", "ray")
    run(repo, "setup_venv.sh")
    assert calls(repo) == []


def test_ray_extra_is_installed_once_and_then_covers_the_plain_install(repo):
    run(repo, "setup_venv.sh", "ray")
    assert calls(repo) == [PIP + " [-e] [.[ray]]"]
    run(repo, "setup_venv.sh", "ray")
    run(repo, "setup_venv.sh")
    assert len(calls(repo)) == 1
    run(repo, "setup_venv.sh", "test")  # ray doesn't hold the test extra
    assert calls(repo)[1] == PIP + " [-c] [requirements-lock.txt] [-e] [.[test]]"  # the tested versions


def test_a_stale_test_install_does_not_cover_ray(repo):
    stamp(repo, "test", pyproject=b"an older pyproject.toml")
    run(repo, "setup_venv.sh", "ray")
    assert calls(repo) == [PIP + " [-e] [.[ray]]"]
