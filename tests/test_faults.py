"""Faults against a real `app.py --nowebui`: a job that runs out of memory gets a clear answer, its
memory is freed and the next job runs normally; interrupt and skip while jobs wait in the queue leave
the queue consistent (the waiting jobs run, in order, in full) and the progress back at rest."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests
from app_process import app_process, running_app, wait_for, with_demo_checkpoint

# An extension that simulates running out of memory inside the sampling loop, through the same hook
# A1111 extensions use: at step 3 of a 7-step job torch's OutOfMemoryError, of a 9-step job Python's
# MemoryError, each while the job holds 256 MB that must be freed afterwards.
OOM_SCRIPT = """
import torch
from modules import script_callbacks


def simulate(params):
    if params.sampling_step == 3 and params.total_sampling_steps in (7, 9):
        hoard = torch.ones(64 * 1024 * 1024)  # noqa: F841 - held by this frame when the error strikes
        if params.total_sampling_steps == 7:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (simulated)")
        raise MemoryError()


script_callbacks.on_cfg_denoiser(simulate)
"""
SMALL = {"prompt": "a blue boat", "steps": 2, "width": 64, "height": 64, "sampler_name": "Euler"}


@pytest.fixture(scope="module")
def server(tmp_path_factory, demo_checkpoint):
    data = tmp_path_factory.mktemp("faults")
    with_demo_checkpoint(data, demo_checkpoint)
    (data / "extensions" / "oom-sim" / "scripts").mkdir(parents=True)
    (data / "extensions" / "oom-sim" / "scripts" / "oom.py").write_text(OOM_SCRIPT)
    with running_app(data, "--nowebui", model_name="demo.safetensors") as url:
        yield url + "sdapi/v1", data


def server_rss(url: str) -> int:
    """Resident memory of the app.py that serves `url`."""
    return app_process(url).memory_info().rss


def txt2img(url: str, **body) -> requests.Response:
    return requests.post(f"{url}/txt2img", json={**SMALL, **body}, timeout=300)


@pytest.mark.parametrize("steps, cause", [(7, "CUDA out of memory"), (9, "MemoryError")])
def test_out_of_memory_is_answered_clearly_and_the_next_job_runs(server, steps, cause):
    url, data = server
    assert txt2img(url, seed=1).status_code == 200
    before = server_rss(url)
    failed = txt2img(url, steps=steps, seed=2)
    assert failed.status_code == 503, failed.text
    assert failed.json()["errors"].startswith("Out of memory: ") and cause in failed.json()["errors"]
    assert "smaller image size" in failed.json()["errors"]
    assert server_rss(url) < before + 128 * 1024 * 1024  # the 256 MB the job held is gone
    after = txt2img(url, seed=3)
    assert after.status_code == 200 and json.loads(after.json()["info"])["all_seeds"] == [3]
    assert "Out of memory in txt2img" in (data / "server.log").read_text()


def progress(url: str) -> dict:
    return requests.get(f"{url}/progress", params={"skip_current_image": "true"}, timeout=10).json()


def test_interrupt_and_skip_leave_the_queue_consistent(server):
    url, _ = server
    answers: dict[int, requests.Response] = {}
    finished: list[int] = []

    def send(seed: int, **body) -> threading.Thread:
        def run() -> None:
            answers[seed] = txt2img(url, seed=seed, **body)
            finished.append(seed)

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    threads = [send(100, steps=150, n_iter=3)]
    wait_for(lambda: progress(url)["state"]["sampling_step"] >= 2, 60, "the long job to sample")
    for number, seed in enumerate((200, 300, 400), 1):
        # each waiting job takes a while (192 px): answers a few ms apart could reach their threads in either order
        threads.append(send(seed, width=192, height=192))
        wait_for(lambda n=number: progress(url)["state"]["queued"] == n, 30, f"job {seed} to be queued")
    assert requests.post(f"{url}/skip", timeout=10).status_code == 200
    wait_for(lambda: progress(url)["state"]["job_no"] == 1, 60, "the long job's second batch")
    assert requests.post(f"{url}/interrupt", timeout=10).status_code == 200
    for thread in threads:
        thread.join(300)
    assert [answers[seed].status_code for seed in (100, 200, 300, 400)] == [200] * 4
    assert finished == [100, 200, 300, 400]
    long_job = json.loads(answers[100].json()["info"])
    assert long_job["interrupted"] is True and len(answers[100].json()["images"]) < 3
    for seed in (200, 300, 400):  # each waiting job ran in full, untouched by the stop meant for the first
        info = json.loads(answers[seed].json()["info"])
        assert info["all_seeds"] == [seed] and info["interrupted"] is False and info["steps"] == 2
    time.sleep(0.5)
    rest = progress(url)
    assert rest["progress"] == 0 and rest["state"]["job"] == "" and rest["state"]["queued"] == 0
    assert (rest["state"]["job_count"], rest["state"]["sampling_step"], rest["state"]["job_no"]) == (0, 0, 0)
    assert rest["state"]["interrupted"] is False and rest["state"]["skipped"] is False
