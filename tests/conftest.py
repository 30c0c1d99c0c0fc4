"""Shared fixtures: a real demo checkpoint on disk, a loaded model, an engine."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests
import torch
from _pytest.nodeid import NodeId
from app_process import running_app, stop_page_jobs, with_demo_checkpoint
from outcomes import REPORTS, failed
from shared_logins import AUTH_API_LOGIN, AUTH_MAX_REQUEST_BYTES, AUTH_PAGE_LOGIN
from shared_servers import listening_app, login_page_app  # noqa: F401 - session fixtures, registered here once
from small_disk import small_disk  # noqa: F401 - a fixture for every test module

if TYPE_CHECKING:
    from modules.options import Options

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# One torch thread in the tests and in the processes they start (app.py, Ray's nodes): CI runs three workers on two
# cores, so a second OpenMP thread has no core of its own and spins on the tiny models' small ops. A module
# that is about threads sets its own count.
torch.set_num_threads(1)
os.environ["OMP_NUM_THREADS"] = "1"


BROWSER_TESTS = Path(__file__).parent / "browser"
SESSION_START = time.time()
GRADIO_CLIENT_LEFTOVER = re.compile(r"[0-9a-f]{40}")  # see pytest_sessionfinish
SHARED_APPS = ("page_app", "auth_app")  # the session's app.py servers below
SHARED_SERVERS = ("listening_app", "login_page_app")  # tests/shared_servers.py's, each used by two modules
SESSION_DIRS: set[Path] = set()  # temporary folders of session fixtures, kept until the session ends


def session_dir(factory: pytest.TempPathFactory, name: str) -> Path:
    """A temporary folder that lives as long as the test session (module_dirs_removed leaves it)."""
    path = factory.mktemp(name)
    SESSION_DIRS.add(path)
    return path


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by what it runs: `browser` (tests/browser/), `e2e` (its module starts app.py, or it drives
    a browser), `ray` (it uses the Ray cluster fixture). The soak module marks itself, as does a module that
    starts a Ray cluster of its own. Then group them for pytest-xdist's `--dist loadgroup` (test.sh): a module's
    tests run in one worker, so its module fixtures start once; the two modules on one server of
    tests/shared_servers.py share a worker, so it starts once; and the modules with Ray tests share one worker,
    so no two Ray clusters run at once. A session app (page_app, auth_app) starts at most once in each worker.
    The longest groups go first (Ray, then the modules that start app.py or a browser, then the rest, each by
    its number of tests), so that no worker is left with a long one at the end; test.sh keeps that order
    (`--no-loadscope-reorder`)."""
    _mark(items)
    ray_modules = {item.path for item in items if item.get_closest_marker("ray")}
    shared = {item.path: name for item in items for name in SHARED_SERVERS if name in getattr(item, "fixturenames", ())}
    for item in items:
        module = item.nodeid.split("::")[0]
        _join_group(item, "ray" if item.path in ray_modules else shared.get(item.path, module))
    e2e_modules = {item.path for item in items if item.get_closest_marker("e2e")}
    sizes = Counter(item.path for item in items)
    items.sort(
        key=lambda item: (
            0 if item.path in ray_modules else 1 if item.path in e2e_modules else 2,
            -sizes[item.path],
            str(item.path),
        )
    )


def _join_group(item: pytest.Item, group: str) -> None:
    """Put `item` in xdist group `group`. pytest-xdist 3.8 appends the group to `item._nodeid`, which pytest 9.2 no
    longer reads (a node's id is `item._id`), so its loadgroup would spread a module over the workers; the id
    gets the suffix here, as xdist means it to."""
    item.add_marker(pytest.mark.xdist_group(group))
    if os.environ.get("PYTEST_XDIST_WORKER") and "@" not in item.nodeid:
        item._id = NodeId.parse(f"{item.nodeid}@{group}")


def _mark(items: list[pytest.Item]) -> None:
    for item in items:
        in_browser = BROWSER_TESTS in item.path.parents
        if in_browser:
            item.add_marker(pytest.mark.browser)
        if (
            in_browser
            or hasattr(getattr(item, "module", None), "running_app")
            or set(SHARED_APPS + SHARED_SERVERS) & set(getattr(item, "fixturenames", ()))
        ):
            item.add_marker(pytest.mark.e2e)
        if "ray_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.ray)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """gradio_client downloads each file into a new tempdir/<40 hex digits> folder, moves it out and leaves the
    folder: several hundred a run. Remove the empty ones made since this session began, once no test runs: in
    pytest-xdist's controller (a worker that ends first would race the others' downloads), or the one process."""
    if hasattr(session.config, "workerinput"):
        return
    for path in Path(tempfile.gettempdir()).iterdir():
        if GRADIO_CLIENT_LEFTOVER.fullmatch(path.name) and path.is_dir() and path.stat().st_mtime >= SESSION_START:
            with suppress(OSError):  # only an empty folder goes
                path.rmdir()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    item.stash.setdefault(REPORTS, {})[report.when] = report


@pytest.fixture(scope="session")
def demo_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in demo model written as a real single-file .safetensors checkpoint."""
    from modules.models.demo_model import write_demo_checkpoint

    return write_demo_checkpoint(session_dir(tmp_path_factory, "ckpt") / "demo-tiny-sd.safetensors")


@pytest.fixture(scope="session")
def weights_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder every process of this test run shares, for weights built once a run (tests/model_weights.py's
    shared_face_file): the run's temporary root, of which each pytest-xdist worker's own is a subfolder. The run
    removes it with that root when it passes."""
    base = tmp_path_factory.getbasetemp()
    store = (base.parent if hasattr(request.config, "workerinput") else base) / "shared-weights"
    store.mkdir(exist_ok=True)
    SESSION_DIRS.add(store)  # in a run without workers it sits in the root module_dirs_removed empties
    return store


@pytest.fixture(scope="session")
def demo_model(demo_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory):
    """The demo checkpoint loaded through the same single-file path as a user's checkpoint."""
    from modules.models.checkpoints import CheckpointInfo, HashCache
    from modules.sd_models import load_model

    cache = session_dir(tmp_path_factory, "cache")
    return load_model(
        CheckpointInfo(demo_checkpoint, demo_checkpoint.name),
        torch.device("cpu"),
        torch.float32,
        cache,
        HashCache(cache / "cache.json"),
    )


@pytest.fixture(scope="session")
def page_app(tmp_path_factory: pytest.TempPathFactory, demo_checkpoint: Path) -> Iterator[tuple[str, Path]]:
    """app.py serving the page and the API beside it (--api, no logins) with the demo model (demo.safetensors),
    shared by the tests that need nothing else: (URL, data dir). A test that changes what the server keeps (a
    setting, a style, a file) undoes it, and one that reads data/server.log reads the part written since it
    began."""
    data = with_demo_checkpoint(session_dir(tmp_path_factory, "page-app"), demo_checkpoint)
    with running_app(data, "--api", model_name="demo.safetensors") as url:
        yield url, data


@pytest.fixture(scope="session")
def auth_app(tmp_path_factory: pytest.TempPathFactory, demo_checkpoint: Path) -> Iterator[tuple[str, Path]]:
    """app.py locked down: the page behind AUTH_PAGE_LOGIN (--gradio-auth), the API (--api) behind
    AUTH_API_LOGIN (--api-auth), request bodies capped at AUTH_MAX_REQUEST_BYTES, the demo model
    (demo.safetensors) loaded: (URL, data dir), shared as page_app is, on the same terms; a test that logs in
    wrong on purpose ends with a right login, so no throttle is left for the next."""
    data = with_demo_checkpoint(session_dir(tmp_path_factory, "auth-app"), demo_checkpoint)
    (data / "config.json").write_text(json.dumps({"max_request_bytes": AUTH_MAX_REQUEST_BYTES}))
    logins = ("--gradio-auth", ":".join(AUTH_PAGE_LOGIN), "--api-auth", ":".join(AUTH_API_LOGIN))
    with running_app(data, "--api", *logins, model_name="demo.safetensors") as url:
        yield url, data


@pytest.fixture(scope="module", autouse=True)
def module_dirs_removed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Once a test module is done, delete the temporary folders it made (its checkpoints, servers' data dirs):
    kept to the end, the suite's folders fill several GiB. A module with a failed test keeps its folders."""
    base = tmp_path_factory.getbasetemp()
    before, failures = set(base.iterdir()), request.session.testsfailed
    yield
    if request.session.testsfailed == failures:
        for path in set(base.iterdir()) - before - SESSION_DIRS:
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def page_app_left_idle(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test on a shared app fails, interrupt the job it may have left running (a long one, say), so that
    the next tests' jobs do not wait behind it."""
    yield
    if not failed(request, ("call",)):
        return
    if "page_app" in request.fixturenames:
        stop_page_jobs(request.getfixturevalue("page_app")[0])
    if "auth_app" in request.fixturenames:
        requests.post(request.getfixturevalue("auth_app")[0] + "sdapi/v1/interrupt", auth=AUTH_API_LOGIN, timeout=30)


@pytest.fixture
def engine():
    from modules.core.engine import Engine

    eng = Engine()
    yield eng
    eng.shutdown()


@pytest.fixture
def exts(tmp_path: Path) -> Path:
    """An empty extensions folder, tmp_path/data/extensions (the extension tests')."""
    folder = tmp_path / "data" / "extensions"
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def opts(tmp_path: Path) -> Options:
    """Settings in tmp_path/data/config.json, beside `exts`; a test module may define its own `opts`."""
    from modules.options import Options

    options = Options(tmp_path / "data" / "config.json")
    options.load()
    return options
