"""Start app.py as a real subprocess on a free port, for end-to-end and browser tests."""

from __future__ import annotations

import atexit
import itertools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent


FIRST_TEST_PORT = 20000  # above Ray's worker ports (10002-19999)


def ephemeral_ports_start() -> int:
    """The first port of the kernel's ephemeral range, which outgoing connections and binds to port 0 draw from."""
    return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])


def _port_stripe() -> list[int]:
    """This test process's own ports. They lie below the kernel's ephemeral range, so no outgoing connection and no
    bind to port 0 (Ray's processes make many) can take one between its choice here and the server's own bind.
    Each xdist worker has a share of its own, so two workers never choose the same port."""
    ports = range(FIRST_TEST_PORT, ephemeral_ports_start())
    if len(ports) < 300:
        raise RuntimeError(f"the ephemeral ports start at {ports.stop}: too few ports below them for tests")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    stripe = list(ports[worker::workers])
    start = random.randrange(len(stripe))  # another pytest run on the machine most likely starts elsewhere
    return stripe[start:] + stripe[:start]


_STRIPE = _port_stripe()
_PORTS = itertools.cycle(_STRIPE)


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on or holds now, from this process's stripe."""
    for port in itertools.islice(_PORTS, len(_STRIPE)):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:  # in use, or a closed server's port still in TIME_WAIT
                continue
        return port
    raise RuntimeError(f"every one of this test process's {len(_STRIPE)} ports is held")


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def with_demo_checkpoint(data_dir: Path, demo_checkpoint: Path) -> Path:
    """`data_dir` with the demo checkpoint copied in as models/Stable-diffusion/demo.safetensors."""
    folder = data_dir / "models" / "Stable-diffusion"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(demo_checkpoint, folder / "demo.safetensors")
    return data_dir


@contextmanager
def running_app(
    data_dir: Path, *flags: str, model_name: str | None = None, script: list[str] | None = None
) -> Iterator[str]:
    """Run app.py with this data dir, forked from tests/app_zygote.py, which has done app.py's imports once; or
    `script`, a Python file and its first arguments, run as app.py would be (it must end by calling app.main with
    the flags it is given). Yields the page URL once the page answers (and, if `model_name` is given, once
    that checkpoint is loaded). The log is data_dir/server.log."""
    port = free_port()
    log_path = data_dir / "server.log"
    log_path.write_text("")
    argv = [*(script or ["app.py"]), "--data-dir", str(data_dir), "--port", str(port), *flags]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "GRADIO_TEMP_DIR": str(data_dir / "gradio-temp")}
    proc = APP_FORKS.start(argv, env, log_path)
    url = f"http://127.0.0.1:{port}/"
    APPS[str(port)] = proc.pid

    def page_up() -> bool:
        assert proc.poll() is None, log_path.read_text()
        try:
            return requests.get(url, timeout=2).status_code in (200, 401)
        except (requests.ConnectionError, requests.Timeout):  # a loaded machine: not up yet
            return False

    try:
        wait_for(page_up, 180, "the page")
        if model_name:
            wait_for(lambda: f"Loaded {model_name}" in log_path.read_text(), 120, f"model {model_name}")
        yield url
    finally:
        proc.terminate()
        proc.wait(30)
        del APPS[str(port)]


@dataclass
class ForkedApp:
    """An app.py that tests/app_zygote.py forked, with the part of subprocess.Popen's interface that tests use.
    Its exit status comes from the file the zygote writes when the process ends."""

    pid: int
    status_file: Path
    log: Path
    returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and self.status_file.exists():
            self.returncode = int(self.status_file.read_text())
        return self.returncode

    def terminate(self) -> None:
        if self.poll() is None:
            with suppress(ProcessLookupError):  # it ended just now
                os.kill(self.pid, signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while (code := self.poll()) is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"app.py (pid {self.pid}) did not end within {timeout:.0f} s: {self._state()}")
            time.sleep(0.05)
        return code

    def _state(self) -> str:
        """Whether the process still runs (then with the stacks of its threads, which tests/app_zygote.py has it
        write to its log on SIGUSR1) or ended unnoticed."""
        try:
            status = psutil.Process(self.pid).status()
        except psutil.NoSuchProcess:
            return "it is gone, but the zygote wrote no exit status"
        if status == psutil.STATUS_ZOMBIE:
            return "it ended, but the zygote has not collected its exit status"
        before = self.log.stat().st_size
        os.kill(self.pid, signal.SIGUSR1)
        time.sleep(1)
        with self.log.open() as log:
            log.seek(before)
            return f"it is {status}; its threads:\n{log.read()[-6000:]}"


class AppForks:
    """This process's tests/app_zygote.py: started at the first app.py start, it lives until this process ends
    (then its stdin closes and it leaves; its folder of exit statuses is removed)."""

    def __init__(self) -> None:
        self._zygote: subprocess.Popen | None = None
        self._status_dir = Path()
        self._lock = threading.Lock()

    def start(self, argv: list[str], env: dict[str, str], log_path: Path) -> ForkedApp:
        with self._lock:
            if self._zygote is None or self._zygote.poll() is not None:
                self._status_dir = Path(tempfile.mkdtemp(prefix="app-forks-"))
                atexit.register(shutil.rmtree, self._status_dir, True)
                self._zygote = subprocess.Popen(
                    [sys.executable, str(Path(__file__).with_name("app_zygote.py")), str(self._status_dir)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                )
            assert self._zygote.stdin and self._zygote.stdout
            request = {"argv": argv, "cwd": str(ROOT), "env": env, "log": str(log_path)}
            self._zygote.stdin.write(json.dumps(request) + "\n")
            self._zygote.stdin.flush()
            answer = self._zygote.stdout.readline()
        if not answer:
            raise RuntimeError(f"tests/app_zygote.py ended with status {self._zygote.wait()}: see its stderr")
        pid = json.loads(answer)["pid"]
        return ForkedApp(pid, self._status_dir / str(pid), log_path)


APP_FORKS = AppForks()
APPS: dict[str, int] = {}  # port → the pid of the app.py serving it


def stop_page_jobs(url: str) -> None:
    """Press the page's Interrupt buttons (txt2img, img2img): the running job, if any, stops at its next step."""
    from gradio_client import Client

    client = Client(url, verbose=False)
    for tab in ("txt2img", "img2img"):
        client.predict(api_name=f"/{tab}_interrupt")


def app_process(url: str) -> psutil.Process:
    """The app.py process that serves `url` (started by running_app)."""
    return psutil.Process(APPS[url.rstrip("/").rsplit(":", 1)[1].split("/")[0]])


def endpoint_args(client, api_name: str, values: dict[str, Any]) -> list:
    """Positional inputs for a page endpoint: each control's current default, or `values[label]`.

    Refuses a label the endpoint doesn't have, so a renamed control fails loudly."""
    params = client.view_api(return_format="dict", print_info=False)["named_endpoints"][api_name]["parameters"]
    labels = [p["label"] for p in params]
    unknown = set(values) - set(labels)
    assert not unknown, f"{api_name} has no inputs labelled {sorted(unknown)}; it has {labels}"
    return [values[p["label"]] if p["label"] in values else p["parameter_default"] for p in params]
