"""Start app.py as a real subprocess on a free port, for end-to-end and browser tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
    data_dir: Path, *flags: str, model_name: str | None = None, command: list[str] | None = None
) -> Iterator[str]:
    """Run app.py (or `command`, which must end by calling app.main with the flags it is given) with
    this data dir; yields the page URL once the page answers (and, if `model_name` is given, once
    that checkpoint is loaded). The log is data_dir/server.log."""
    port = free_port()
    log_path = data_dir / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [*(command or [sys.executable, "app.py"]), "--data-dir", str(data_dir), "--port", str(port), *flags],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "GRADIO_TEMP_DIR": str(data_dir / "gradio-temp")},
        )
        url = f"http://127.0.0.1:{port}/"

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


def stop_page_jobs(url: str) -> None:
    """Press the page's Interrupt buttons (txt2img, img2img): the running job, if any, stops at its next step."""
    from gradio_client import Client

    client = Client(url, verbose=False)
    for tab in ("txt2img", "img2img"):
        client.predict(api_name=f"/{tab}_interrupt")


def app_process(url: str) -> psutil.Process:
    """The app.py process (a child of this one) that serves `url`."""
    port = url.rstrip("/").rsplit(":", 1)[1].split("/")[0]
    (app,) = [p for p in psutil.Process().children() if "app.py" in " ".join(p.cmdline()) and port in p.cmdline()]
    return app


def endpoint_args(client, api_name: str, values: dict[str, Any]) -> list:
    """Positional inputs for a page endpoint: each control's current default, or `values[label]`.

    Refuses a label the endpoint doesn't have, so a renamed control fails loudly."""
    params = client.view_api(return_format="dict", print_info=False)["named_endpoints"][api_name]["parameters"]
    labels = [p["label"] for p in params]
    unknown = set(values) - set(labels)
    assert not unknown, f"{api_name} has no inputs labelled {sorted(unknown)}; it has {labels}"
    return [values[p["label"]] if p["label"] in values else p["parameter_default"] for p in params]
