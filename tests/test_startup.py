"""Start-up: the first checkpoint loads on the engine's worker, so the app is ready to serve the page at
once and its status line says "Loading model…" until the model is there, or why it is not."""

from __future__ import annotations

import shutil
import threading
import time

import pytest

from modules.models.model_manager import ModelManager


def _wait_for(condition, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)


@pytest.fixture
def held_loading(monkeypatch):
    """Loading waits for the returned event, then runs for real."""
    release = threading.Event()
    real_load = ModelManager.load

    def load_when_released(self, name):
        release.wait(60)
        return real_load(self, name)

    monkeypatch.setattr(ModelManager, "load", load_when_released)
    yield release
    release.set()


def test_services_are_ready_before_the_model_and_the_status_says_loading(tmp_path, demo_checkpoint, held_loading):
    from app import create_services
    from modules.cmd_args import parse_args

    folder = tmp_path / "models" / "Stable-diffusion"
    folder.mkdir(parents=True)
    shutil.copy(demo_checkpoint, folder / "mine.safetensors")
    services = create_services(parse_args(["--data-dir", str(tmp_path)]))
    try:
        assert services.models.current is None and services.page.status == "Loading model…"
        held_loading.set()
        _wait_for(lambda: services.models.current is not None)
        assert services.page.status.startswith("Model: mine.safetensors")
    finally:
        services.engine.shutdown()


def test_a_checkpoint_that_fails_to_load_is_named_in_the_status(tmp_path):
    from app import create_services
    from modules.cmd_args import parse_args

    folder = tmp_path / "models" / "Stable-diffusion"
    folder.mkdir(parents=True)
    (folder / "broken.safetensors").write_bytes(b"not a safetensors file")
    services = create_services(parse_args(["--data-dir", str(tmp_path)]))
    try:
        _wait_for(lambda: services.switching.load_error is not None)
        assert services.models.current is None
        assert (
            services.page.status.startswith("Could not load the checkpoint")
            and "broken.safetensors" in services.page.status
        )
    finally:
        services.engine.shutdown()
