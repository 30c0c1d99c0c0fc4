"""The package guard, with real pip, offline: extensions (real git repositories) whose install.py asks pip for
what would change the web UI's packages. The environment they install into is a throwaway virtual
environment (tiny_wheels.make_venv) whose "web UI" is the tiny distribution fakeapp, needing coretrans
(which needs corehub) and corenum; the project's own environment is checked to be unchanged at the end."""

from __future__ import annotations

import html
import importlib.metadata
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
import tomllib
from app_process import running_app
from git_repos import Remote
from tiny_wheels import make_venv, pip, write_wheel

from modules.cmd_args import parse_args
from modules.extensions import (
    InstallScriptError,
    disabled_names,
    install_from_url,
    list_extensions,
    run_install_scripts,
)
from modules.extensions.guarded_install import GuardedInstaller
from modules.extensions.guarded_pip import parse_install, split_command
from modules.extensions.install_runner import route_args, route_shell
from modules.extensions.package_guard import APP_DISTRIBUTION, PIP_TIMEOUT, PythonEnvironment, protected_pins
from modules.options import Options
from modules.paths import REPO_ROOT
from modules.ui.extensions import ExtensionActions

PROTECTED = {"coretrans": "5.0", "corehub": "2.0", "corenum": "2.0"}
EVIL_PTH = "import sys; sys.modules['corenum'] = None\n"  # makes `import corenum` fail in every new process


def in_process_pip(wheels: Path, *requirements: str) -> str:
    """An install.py that slips past the guard: pip's own main() in-process, --isolated (no PIP_CONSTRAINT)."""
    args = ["--isolated", "install", "--no-index", "--find-links", str(wheels), *requirements]
    return f"import sys\nfrom pip._internal.cli.main import main\nsys.exit(main({args!r}))\n"


@pytest.fixture(scope="module", autouse=True)
def project_environment_unchanged():
    """Nothing here may change the project's own virtual environment."""

    def freeze() -> str:
        return subprocess.run(
            [sys.executable, "-m", "pip", "freeze"], capture_output=True, text=True, check=True
        ).stdout

    before = freeze()
    yield
    assert freeze() == before


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("wheels")
    write_wheel(folder, "fakeapp", "1.0", ("coretrans>=4", "corenum"))
    write_wheel(folder, "coretrans", "5.0", ("corehub>=2",))
    write_wheel(folder, "coretrans", "4.0", ("corehub<2",))
    for name in ("corehub", "corenum"):
        write_wheel(folder, name, "2.0")
        write_wheel(folder, name, "1.0")
    write_wheel(folder, "localpkg", "1.0", extras={"magic": ("coretrans<5",), "nice": ("helperpkg",)})
    write_wheel(folder, "helperpkg", "1.0")
    write_wheel(folder, "needsoldhub", "1.0", ("corehub<2",))
    write_wheel(folder, "evilpth", "1.0", files={"zz_evil.pth": EVIL_PTH})
    return folder


@pytest.fixture(scope="module")
def fresh_environment(tmp_path_factory, wheels) -> Path:
    """A throwaway environment with fakeapp installed, built once: each test gets a copy (`environment`)."""
    folder = tmp_path_factory.mktemp("venv") / "venv"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PIP_NO_INDEX", "1")
        patch.setenv("PIP_FIND_LINKS", str(wheels))
        python = make_venv(folder)
        pip(python, "install", "fakeapp", "helperpkg")
        pip(python, "uninstall", "--yes", "helperpkg")
    return python


@pytest.fixture
def environment(tmp_path, wheels, fresh_environment, monkeypatch) -> PythonEnvironment:
    """A copy of the fresh environment, this test's own; pip finds only the tiny wheels."""
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    venv = fresh_environment.parent.parent
    shutil.copytree(venv, tmp_path / "venv", symlinks=True)
    python = tmp_path / "venv" / fresh_environment.relative_to(venv)
    return PythonEnvironment(str(python), "fakeapp", ("coretrans", "corenum"))


# Every distribution in the environment as "name==version", sorted: what `pip freeze` lists, and pip and
# setuptools too, read without starting pip, which takes most of a second each time.
LIST_INSTALLED = (
    "import importlib.metadata as m\n"
    "print('\\n'.join(sorted(f\"{d.metadata['Name']}=={d.version}\" for d in m.distributions())))"
)


def freeze(environment: PythonEnvironment) -> str:
    done = subprocess.run([environment.python, "-c", LIST_INSTALLED], capture_output=True, text=True, check=True)
    return done.stdout


def versions(environment: PythonEnvironment, *names: str) -> tuple[str | None, ...]:
    """The installed version of each of `names` (None where it is not installed), from one listing."""
    installed = dict(line.split("==", 1) for line in freeze(environment).splitlines())
    return tuple(installed.get(name) for name in names)


def tab(exts: Path, opts: Options, environment: PythonEnvironment) -> ExtensionActions:
    """The Extensions tab's actions, installing into `environment`."""
    services = SimpleNamespace(args=parse_args([]), paths=SimpleNamespace(extensions=exts), opts=opts)
    return ExtensionActions(services, GuardedInstaller(environment))


def test_the_web_uis_requirements_are_protected_at_their_installed_versions():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == APP_DISTRIBUTION
    pins = protected_pins(PythonEnvironment())
    for name in (
        "torch",
        "torchvision",
        "diffusers",
        "transformers",
        "gradio",
        "numpy",
        "huggingface-hub",
        "safetensors",
        "accelerate",
        "tokenizers",
        "pydantic",
        "fastapi",
    ):
        assert pins[name] == importlib.metadata.version(name), name
    assert "pytest" not in pins and APP_DISTRIBUTION not in pins  # test tools and the app itself are not pinned


def test_pins_follow_the_apps_requirements_transitively(environment):
    assert protected_pins(environment) == PROTECTED  # corehub through coretrans; pip and setuptools are not asked


@pytest.mark.parametrize(
    "install_py, files, package, wanted",
    [
        ("import launch\nlaunch.run_pip('install coretrans==4.0', 'an older coretrans')\n", {}, "coretrans", "4.0"),
        (
            "import subprocess, sys\nsubprocess.check_call([sys.executable, '-m', 'pip', 'install', 'needsoldhub'])\n",
            {},
            "corehub",
            "1.0 (needsoldhub 1.0 requires corehub<2)",
        ),
        (
            "import os, sys\nsys.exit(os.system(f'\"{sys.executable}\" -m pip install -r requirements.txt') and 1)\n",
            {"requirements.txt": "# what we need\ncorenum<2\n"},
            "corenum",
            "a version <2",
        ),
    ],
    ids=["launch.run_pip", "subprocess", "os.system with -r"],
)
def test_a_request_to_change_a_core_package_is_refused_and_the_extension_disabled(
    tmp_path, exts, opts, environment, install_py, files, package, wanted
):
    remote = Remote(tmp_path, "old-deps", {"install.py": install_py, **files})
    before = freeze(environment)
    message = html.unescape(tab(exts, opts, environment).install(str(remote.bare)))
    assert freeze(environment) == before
    installed = PROTECTED[package]
    assert "Extension old-deps: pip install" in message and "was refused" in message
    assert f"change {package} from {installed} (the version the web UI uses) to {wanted}" in message
    assert "disabled" in message and disabled_names(opts) == {"old-deps"}
    actions = tab(exts, opts, environment)  # a new tab, as after a restart, reads the note from disk
    shown = html.unescape(actions.table())
    assert "old-deps (disabled)" in shown and f"change {package} from {installed}" in shown
    actions.apply(["old-deps"], [])  # enabled again: the note goes until its next install
    assert disabled_names(opts) == set() and "was refused" not in html.unescape(actions.table())


@pytest.mark.parametrize(
    "files",
    [
        {
            "install.py": "import subprocess, sys\n"
            "subprocess.check_call([sys.executable, '-m', 'pip', 'install', 'localpkg[magic,nice]'])\n"
        },
        {
            "install.py": "import launch\nlaunch.run_pip('install -r requirements.txt', 'requirements')\n",
            "requirements.txt": "helperpkg\nlocalpkg[magic,nice]  # the magic needs an old coretrans\n",
        },
    ],
    ids=["subprocess", "launch.run_pip with -r"],
)
def test_an_extra_that_needs_an_older_core_package_is_left_out(tmp_path, exts, opts, environment, files):
    remote = Remote(tmp_path, "prompts", files)
    message = html.unescape(tab(exts, opts, environment).install(str(remote.bare)))
    assert 'Extension prompts: the "magic" extra of localpkg[magic,nice] was left out' in message
    assert (
        "change coretrans from 5.0 (the version the web UI uses) to 4.0 (localpkg 1.0 requires coretrans<5), "
        "and also corehub 2.0 → 1.0; the rest was installed without it."
        in message
        and "Installed prompts" in message
    )
    assert versions(environment, "localpkg", "helperpkg", "coretrans") == ("1.0", "1.0", "5.0")
    assert disabled_names(opts) == set()
    assert '"magic" extra' in html.unescape(tab(exts, opts, environment).table())


def test_a_change_that_slips_past_pip_is_rolled_back(tmp_path, exts, opts, environment, wheels):
    remote = Remote(tmp_path, "sneaky", {"install.py": in_process_pip(wheels, "coretrans==4.0", "helperpkg")})
    before = freeze(environment)
    with pytest.raises(InstallScriptError) as failure:
        install_from_url(str(remote.bare), exts, opts, installer=GuardedInstaller(environment))
    assert freeze(environment) == before  # coretrans and corehub put back, helperpkg uninstalled
    message = str(failure.value)
    assert "install.py of sneaky changed what the web UI needs" in message
    assert "coretrans 5.0 → 4.0" in message and "corehub 2.0 → 1.0" in message
    assert "The packages were put back as they were." in message
    assert disabled_names(opts) == {"sneaky"} and list_extensions(exts, disabled_names(opts))[0].note


def test_a_new_package_that_breaks_an_import_is_uninstalled(tmp_path, exts, opts, environment, wheels):
    remote = Remote(tmp_path, "breaker", {"install.py": in_process_pip(wheels, "evilpth")})
    before = freeze(environment)
    with pytest.raises(InstallScriptError, match=r"the core modules no longer import: .*corenum"):
        install_from_url(str(remote.bare), exts, opts, installer=GuardedInstaller(environment))
    assert freeze(environment) == before
    imported = subprocess.run([environment.python, "-c", "import corenum"], capture_output=True)
    assert imported.returncode == 0 and disabled_names(opts) == {"breaker"}


@dataclass(frozen=True)
class CountingEnvironment(PythonEnvironment):
    """A PythonEnvironment that notes the pip command of each pip run of the guard's own."""

    runs: list[str] = field(default_factory=list, compare=False)

    def pip(self, *args: str, timeout: float = PIP_TIMEOUT) -> subprocess.CompletedProcess:
        self.runs.append(args[0])
        return super().pip(*args, timeout=timeout)


def test_pip_check_and_inspect_run_once_for_each_freeze_of_an_environment(tmp_path, exts, opts, environment):
    counting = CountingEnvironment(environment.python, environment.app_distribution, environment.core_modules)
    runs = []
    for name, install_py in [
        ("quiet", "print('nothing to install')\n"),
        ("helper", "import launch\nlaunch.run_pip('install helperpkg', 'helper')\n"),
        ("quiet-too", "print('nothing to install')\n"),
    ]:
        remote = Remote(tmp_path, name, {"install.py": install_py})
        counting.runs.clear()
        install_from_url(str(remote.bare), exts, opts, installer=GuardedInstaller(counting))  # a new installer each
        runs.append(list(counting.runs))
    assert versions(environment, "helperpkg") == ("1.0",)
    assert runs == [
        ["freeze", "check", "inspect", "freeze"],
        ["freeze", "freeze", "check"],  # the same freeze before: no check, no inspect; a new one after: check
        ["freeze", "inspect", "freeze"],  # pip check of this freeze ran after the last install
    ]


def test_at_start_a_blocked_install_disables_its_extension_and_the_others_run(exts, opts, environment):
    (exts / "greedy").mkdir()
    (exts / "greedy" / "install.py").write_text("import launch\nlaunch.run_pip('uninstall --yes corenum', 'x')\n")
    (exts / "fine").mkdir()
    (exts / "fine" / "install.py").write_text("import launch\nlaunch.run_pip('install helperpkg', 'helper')\n")
    problems = run_install_scripts(list_extensions(exts), opts, GuardedInstaller(environment))
    assert len(problems) == 1 and "pip uninstall corenum was refused" in problems[0]
    assert "remove corenum 2.0, which the web UI uses" in problems[0] and "greedy was disabled" in problems[0]
    assert disabled_names(opts) == {"greedy"} and versions(environment, "corenum", "helperpkg") == ("2.0", "1.0")
    notes = {ext.name: ext.note for ext in list_extensions(exts, disabled_names(opts))}
    assert "pip uninstall corenum was refused" in notes["greedy"] and notes["fine"] == ""


def test_the_app_refuses_an_older_transformers_at_start_and_still_starts(tmp_path, monkeypatch, demo_checkpoint):
    """The real app in the project's environment: the refusal needs no network, and pip could not download
    anything anyway (no index), so the environment is safe even if the guard failed."""
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    data = tmp_path / "data"
    (data / "models" / "Stable-diffusion").mkdir(parents=True)
    (data / "models" / "Stable-diffusion" / "demo.safetensors").symlink_to(demo_checkpoint)
    (data / "extensions" / "old-transformers").mkdir(parents=True)
    (data / "extensions" / "old-transformers" / "install.py").write_text(
        "import launch\nlaunch.run_pip('install transformers==4.57.0', 'transformers 4')\n"
    )
    installed = importlib.metadata.version("transformers")
    with running_app(data) as url:
        page = html.unescape(requests.get(url + "config", timeout=10).text)
    assert "old-transformers (disabled)" in page
    assert f"change transformers from {installed} (the version the web UI uses) to 4.57.0" in page
    assert "old-transformers" in json.loads((data / "config.json").read_text())["disabled_extensions"]


def test_pip_calls_on_this_python_are_routed_through_the_guard(tmp_path):
    guarded = [sys.executable, "-m", "modules.extensions.guarded_pip", "install", "x"]
    assert route_args([sys.executable, "-m", "pip", "install", "x"]) == guarded
    assert route_args([str(Path(sys.executable).with_name("pip")), "install", "x"]) == guarded
    other = str(tmp_path / "python3")  # another environment's python is left alone
    assert route_args([other, "-m", "pip", "install", "x"]) == [other, "-m", "pip", "install", "x"]
    assert route_args([sys.executable, "script.py"]) == [sys.executable, "script.py"]
    assert route_args(Path(sys.executable)) == Path(sys.executable)
    routed = route_shell(f'echo hi && "{sys.executable}" -m pip install x; {other} -m pip install y')
    assert (
        routed == f"echo hi && {sys.executable} -m modules.extensions.guarded_pip install x; {other} -m pip install y"
    )


def test_pip_arguments_are_taken_apart(tmp_path):
    requirements = tmp_path / "req.txt"
    requirements.write_text("-i https://example.com\n\ncorenum<2  # old\nhelperpkg --hash=sha256:00\n")
    assert split_command(["-q", "--log", "install", "install", "a"]) == (["-q", "--log", "install"], "install", ["a"])
    parsed = parse_install(
        [
            "-U",
            "a[x]>=1",
            "-i",
            "https://i",
            f"--requirement={requirements}",
            "-e",
            "./b",
            "-r",
            str(tmp_path / "missing.txt"),
        ]
    )
    assert [wanted.text for wanted in parsed.requirements] == ["a[x]>=1", "corenum<2", "helperpkg"]
    assert parsed.options == ["-U", "-i", "https://i", "-e", "./b", "-r", str(tmp_path / "missing.txt")]
    assert parsed.files == {requirements: (4, "--requirement=")}
