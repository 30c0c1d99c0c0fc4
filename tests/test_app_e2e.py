"""Start app.py for real on a free port with a temporary data dir and drive it over HTTP."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest
import requests
from PIL import Image

from tiny_models import write_tiny_checkpoint

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


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    ckpts = data / "models" / "Stable-diffusion"
    write_tiny_checkpoint("sd1", ckpts / "other.safetensors", seed=7)
    (ckpts / "corrupt.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{broken")
    (data / "ui-config.json").write_text(json.dumps({"txt2img/Sampling steps/maximum": 300,
                                                     "txt2img/Sampling steps/value": 33}))
    port = free_port()
    log = open(data / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "app.py", "--data-dir", str(data), "--port", str(port),
                             "--ckpt", "other.safetensors"],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}/"

    def page_up():
        try:
            return requests.get(url, timeout=2).status_code == 200
        except requests.ConnectionError:
            assert proc.poll() is None, (data / "server.log").read_text()
            return False

    try:
        wait_for(page_up, 180, "the page")
        wait_for(lambda: "Loaded other.safetensors" in (data / "server.log").read_text(), 120, "the model")
        yield url, data
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server[0], verbose=False)


def component(url: str, label: str) -> dict:
    config = requests.get(url + "config", timeout=10).json()
    return next(c["props"] for c in config["components"] if c.get("props", {}).get("label") == label)


def test_generate_through_the_page_endpoint_saves_png_with_parameters(server, client):
    url, data = server
    gallery, info = client.predict("a lighthouse, at night", "fog", "Euler a", "Automatic", 6, 64, 96, 1, 2,
                                   6.5, 77, 2, api_name="/txt2img")
    assert len(gallery) == 2
    assert "Steps: 6, Sampler: Euler a, Schedule type: Automatic, CFG scale: 6.5, Seed: 77, Size: 64x96" in info
    folder = data / "outputs" / "txt2img-images" / date.today().isoformat()
    saved = sorted(folder.glob("*.png"))
    assert [p.name for p in saved] == ["00000-77-a lighthouse at night.png", "00001-78-a lighthouse at night.png"]
    text = Image.open(saved[1]).info["parameters"]
    assert text.startswith('a lighthouse, at night\nNegative prompt: fog\nSteps: 6, Sampler: Euler a,')
    assert "Seed: 78," in text and "Clip skip: 2" in text and "Model: other," in text
    assert Image.open(saved[0]).size == (64, 96)


def test_ui_config_sets_slider_defaults_and_is_completed_on_start(server):
    url, data = server
    steps = component(url, "Sampling steps")
    assert steps["maximum"] == 300 and steps["value"] == 33
    written = json.loads((data / "ui-config.json").read_text())
    assert written["txt2img/CFG Scale/value"] == 7.0
    assert written["txt2img/Sampling steps/maximum"] == 300


def test_checkpoint_dropdown_lists_switches_and_survives_a_corrupt_file(server, client):
    url, data = server
    choices = [c[0] if isinstance(c, list) else c for c in component(url, "Stable Diffusion checkpoint")["choices"]]
    assert any(c.startswith("corrupt.safetensors") for c in choices)
    assert not any(c.startswith("demo-tiny-sd") for c in choices)  # no demo model when the user has checkpoints
    dropdown, status = client.predict("corrupt.safetensors", api_name="/change_checkpoint")
    assert "corrupt.safetensors" in status and "damaged" in status
    log = (data / "server.log").read_text()
    assert "corrupt.safetensors" in log
    gallery, info = client.predict("still works", "", "Euler", "Automatic", 2, 64, 64, 1, 1, 7, 1, 1,
                                   api_name="/txt2img")
    assert "Model: other," in info


def test_demo_model_is_written_when_there_is_no_checkpoint(tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "app.py", "--data-dir", str(tmp_path), "--port", str(port)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        def loaded_and_serving():
            lines.append(proc.stdout.readline())
            assert proc.poll() is None, "".join(lines)
            text = "".join(lines)
            return "Loaded demo-tiny-sd.safetensors" in text and "Running on local URL" in text
        wait_for(loaded_and_serving, 180, "the demo model and the page")
        assert any("DEMO model" in line and "abstract images" in line for line in lines)
        assert (tmp_path / "models" / "Stable-diffusion" / "demo-tiny-sd.safetensors").is_file()
        for name in ("outputs", "embeddings", "extensions", "ui-config.json"):
            assert (tmp_path / name).exists(), name
    finally:
        proc.terminate()
        proc.wait(30)


def test_gradio_auth_requires_a_login(tmp_path, demo_checkpoint):
    import shutil

    from gradio_client import Client

    ckpts = tmp_path / "models" / "Stable-diffusion"
    ckpts.mkdir(parents=True)
    shutil.copy(demo_checkpoint, ckpts / "demo.safetensors")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "app.py", "--data-dir", str(tmp_path), "--port", str(port),
                             "--gradio-auth", "alice:secret"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        def up():
            try:
                return requests.get(url, timeout=2).status_code == 200
            except requests.ConnectionError:
                assert proc.poll() is None
                return False
        wait_for(up, 180, "the page")
        assert requests.get(url + "config", timeout=10).status_code == 401
        wrong = requests.post(url + "login", data={"username": "alice", "password": "wrong"}, timeout=10)
        assert wrong.status_code != 200
        session = requests.Session()
        assert session.post(url + "login", data={"username": "alice", "password": "secret"}, timeout=10).ok
        assert session.get(url + "config", timeout=10).status_code == 200
        Client(url, auth=("alice", "secret"), verbose=False)
    finally:
        proc.terminate()
        proc.wait(30)
