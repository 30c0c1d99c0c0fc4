"""Load: 20 API clients at once send small txt2img jobs to a real `app.py --nowebui`. Every job is
answered with its own image, each client's jobs run in the order it sent them, no answer is a 5xx,
every saved image is on disk, and the server's memory stays flat once it has warmed up.

The short run (40 jobs) is the default; SOAK_LONG=1 runs the full 100."""

from __future__ import annotations

import json
import os
import threading
import time

import psutil
import pytest
import requests
from app_process import app_process, running_app, with_demo_checkpoint
from PIL import Image

pytestmark = pytest.mark.soak

CLIENTS = 20
JOBS = 100 if os.environ.get("SOAK_LONG") == "1" else 40
WARM = 20  # memory is compared from this job on
BODY = {
    "prompt": "a small lighthouse",
    "steps": 1,
    "width": 64,
    "height": 64,
    "sampler_name": "Euler",
    "save_images": True,
}


@pytest.fixture(scope="module")
def server(tmp_path_factory, demo_checkpoint):
    data = tmp_path_factory.mktemp("soak")
    with_demo_checkpoint(data, demo_checkpoint)
    with running_app(data, "--nowebui", model_name="demo.safetensors") as url:
        yield url + "sdapi/v1", data, app_process(url)


class Tally:
    """Jobs done so far, and the server's memory once warm."""

    def __init__(self, app: psutil.Process) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.done = 0
        self.warm_rss: int | None = None
        self.peak_rss = 0

    def finished(self) -> None:
        with self.lock:
            self.done += 1
            rss = self.app.memory_info().rss
            if self.done == WARM:
                self.warm_rss = rss
            if self.done >= WARM:
                self.peak_rss = max(self.peak_rss, rss)


def seeds_for(client: int) -> list[int]:
    """This client's jobs: one seed each, in sending order."""
    count = JOBS // CLIENTS + (client < JOBS % CLIENTS)
    return [100_000 + client * 1000 + k for k in range(count)]


def test_twenty_clients_get_every_image_in_order_with_flat_memory(server):
    url, data, app = server
    tally = Tally(app)
    answers: dict[int, list[tuple[int, int, list[int]]]] = {}  # client -> (seed, status, all_seeds)

    def client(number: int) -> None:
        session = requests.Session()
        answers[number] = []
        for seed in seeds_for(number):
            response = session.post(f"{url}/txt2img", json={**BODY, "seed": seed}, timeout=600)
            seeds = json.loads(response.json()["info"])["all_seeds"] if response.status_code == 200 else []
            answers[number].append((seed, response.status_code, seeds))
            tally.finished()

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(number,)) for number in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(900)
    elapsed = time.monotonic() - started

    assert tally.done == JOBS, f"{tally.done} of {JOBS} jobs answered"
    for number in range(CLIENTS):
        sent = seeds_for(number)
        assert [status for _, status, _ in answers[number]] == [200] * len(sent), answers[number]
        assert [seeds for _, _, seeds in answers[number]] == [[seed] for seed in sent]  # each its own image

    saved = sorted((data / "outputs" / "txt2img-images").rglob("*.png"), key=lambda p: p.stat().st_mtime_ns)
    assert len(saved) == JOBS
    saved_seeds = [int(Image.open(path).text["parameters"].split("Seed: ")[1].split(",")[0]) for path in saved]
    assert sorted(saved_seeds) == sorted(seed for number in range(CLIENTS) for seed in seeds_for(number))
    for number in range(CLIENTS):  # the worker ran each client's jobs in the order it sent them
        assert [seed for seed in saved_seeds if seed // 1000 == 100 + number] == seeds_for(number)

    growth = tally.peak_rss / tally.warm_rss
    print(
        f"{JOBS} jobs in {elapsed:.0f}s; RSS at job {WARM}: {tally.warm_rss / 2**20:.0f} MiB, "
        f"peak after: {tally.peak_rss / 2**20:.0f} MiB"
    )
    assert growth < 1.10, f"the server's memory grew {100 * (growth - 1):.1f}% from job {WARM} to job {JOBS}"
