"""Generation on Ray Serve: app.py --ray-address on a real two-node Ray cluster (ray.cluster_utils.Cluster,
loopback only), the demo checkpoint and a second one with other weights, against app.py in-process, over
real HTTP. First, Serve itself on that cluster: replicas on both nodes, and a replica range that grows."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import shutil
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
from app_process import endpoint_args, running_app, wait_for
from PIL import Image
from ray_cluster import LOOPBACK, ray_cluster  # noqa: F401 - the module's cluster fixture

from modules.models.demo_model import write_demo_checkpoint

ray = pytest.importorskip("ray")
from ray import serve  # noqa: E402

SMALL = {"prompt": "a red house", "steps": 3, "width": 64, "height": 64, "seed": 5, "sampler_name": "Euler"}
HOOKS_SCRIPT = """
import gradio as gr
from PIL import ImageOps

import modules.scripts as scripts


class Script(scripts.Script):
    def title(self):
        return "Ray hooks"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        return [gr.Checkbox(label="Hook the batches", value=False)]

    def process_batch(self, p, enabled, **kwargs):
        if enabled:
            p.prompts = [prompt + f", hooked in batch {kwargs['batch_number']}" for prompt in p.prompts]

    def postprocess_image(self, p, pp, enabled):
        if enabled:
            pp.image = ImageOps.invert(pp.image.convert("RGB"))
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A data folder with checkpoints A (the demo model) and B (its layout, other weights), and an extension
    whose AlwaysVisible script changes each batch's prompts and inverts each image."""
    root = tmp_path_factory.mktemp("data")
    (root / "extensions" / "ray-hooks" / "scripts").mkdir(parents=True)
    (root / "extensions" / "ray-hooks" / "scripts" / "ray_hooks.py").write_text(HOOKS_SCRIPT)
    folder = root / "models" / "Stable-diffusion"
    folder.mkdir(parents=True)
    write_demo_checkpoint(folder / "a.safetensors", seed=0)
    write_demo_checkpoint(folder / "b.safetensors", seed=1)
    (root / "config.json").write_text(json.dumps({"show_progress_every_n_steps": 1}))
    return root


@pytest.fixture(scope="module")
def ray_app(ray_cluster, data):
    """The app (page and API) joined to the two-node cluster with a replica on each node."""
    with running_app(
        data,
        "--api",
        "--ray-address",
        ray_cluster,
        "--ray-replicas",
        "2",
        "--ckpt",
        "a.safetensors",
        model_name="a.safetensors",
    ) as url:
        yield url
    from modules.ray_backend.backend import APP_NAME

    assert APP_NAME not in serve.status().applications  # the app's shutdown took its Serve app down


@pytest.fixture(scope="module")
def ray_api(ray_app):
    return ray_app + "sdapi/v1"


@pytest.fixture(scope="module")
def page(ray_app):
    """A client of the page's own Gradio endpoints."""
    from gradio_client import Client

    return Client(ray_app, verbose=False)


@pytest.fixture(scope="module")
def local_api(data, tmp_path_factory):
    """The same app in-process. Ray gives each replica's torch one thread (its one CPU); so does this app,
    since on a CPU the thread count changes the order of float sums and with it the last bits of a pixel."""
    copy = tmp_path_factory.mktemp("local") / "data"
    shutil.copytree(data, copy, ignore=shutil.ignore_patterns("outputs", "server.log", "cache"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        with running_app(copy, "--nowebui", "--ckpt", "a.safetensors", model_name="a.safetensors") as url:
            yield url + "sdapi/v1"


def generate(url: str, route: str = "txt2img", **body) -> tuple[list[Image.Image], dict]:
    response = requests.post(f"{url}/{route}", json={**SMALL, **body}, timeout=300)
    assert response.status_code == 200, response.text
    answer = response.json()
    images = [Image.open(io.BytesIO(base64.b64decode(text))) for text in answer["images"]]
    return images, json.loads(answer["info"])


def cluster_state(url: str) -> dict:
    response = requests.get(f"{url}/cluster", timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def without_worker(infotext: str) -> str:
    return ", ".join(part for part in infotext.split(", ") if not part.startswith("Worker: "))


def b64_png(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@contextlib.contextmanager
def serve_app(app, name: str):
    """Run a Serve app for a test (Serve without HTTP proxies, as the app's) and delete it even when the test fails,
    so its replicas leave the nodes' CPUs to the app's (ray_app)."""
    serve.start(proxy_location="Disabled")
    handle = serve.run(app, name=name, route_prefix=None)
    try:
        yield handle
    finally:
        serve.delete(name)


# First, Serve alone on the cluster: the app's replicas (ray_app) would take both nodes' CPUs.
def test_two_serve_replicas_run_on_the_two_loopback_nodes(ray_cluster):
    assert ray_cluster.startswith(f"{LOOPBACK}:")
    nodes = [node for node in ray.nodes() if node["Alive"]]
    assert [node["NodeManagerAddress"] for node in nodes] == [LOOPBACK, LOOPBACK]

    @serve.deployment(num_replicas=2, ray_actor_options={"num_cpus": 1})
    class Where:
        def __call__(self) -> str:
            return ray.get_runtime_context().get_node_id()

    with serve_app(Where.bind(), "where") as handle, ThreadPoolExecutor(1) as off_loop:
        # on another thread: an earlier test may have left an asyncio loop on this one
        seen = off_loop.submit(lambda: {handle.remote().result(timeout_s=60) for _ in range(16)}).result()
    assert seen == {node["NodeID"] for node in nodes}


def test_a_replica_range_starts_at_its_minimum_and_grows_with_waiting_jobs(ray_cluster):
    from modules.ray_backend.backend import scaling

    @serve.deployment(max_ongoing_requests=1, ray_actor_options={"num_cpus": 1}, **scaling((1, 2)))
    class Slow:
        def __call__(self) -> str:
            time.sleep(1)
            return serve.get_replica_context().replica_id.unique_id

    def running() -> int:
        replicas = serve.status().applications["slow"].deployments["Slow"].replica_states
        return replicas.get("RUNNING", 0)

    with serve_app(Slow.bind(), "slow") as handle, ThreadPoolExecutor(1) as off_loop:  # see above
        assert running() == 1
        seen = off_loop.submit(
            lambda: {answer.result(timeout_s=120) for answer in [handle.remote() for _ in range(24)]}
        ).result()
        assert len(seen) == 2 and running() == 2  # the waiting jobs brought up the second replica, which took some


def test_txt2img_through_ray_gives_the_in_process_pixels_and_names_its_worker(ray_api, local_api):
    remote, remote_info = generate(ray_api, batch_size=2)
    local, local_info = generate(local_api, batch_size=2)
    assert len(remote) == len(local) == 2
    for a, b in zip(remote, local):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    worker = remote_info["infotexts"][0].rsplit("Worker: ", 1)[1].split(",")[0]
    assert "Worker:" not in local_info["infotexts"][0]
    assert [without_worker(text) for text in remote_info["infotexts"]] == local_info["infotexts"]
    state = cluster_state(ray_api)
    assert state["backend"] == "ray" and len(state["workers"]) == 2
    assert len({w["node"] for w in state["workers"]}) == 2  # one replica per node
    ran = next(w for w in state["workers"] if w["name"] == worker)
    assert ran["loaded"] == [remote_info["sd_model_hash"]] and ran["jobs_done"] >= 1 and ran["running"] is None


def test_a_batch_count_is_spread_over_the_replicas_with_the_in_process_seeds_and_order(ray_api, local_api):
    done_before = sum(w["jobs_done"] for w in cluster_state(ray_api)["workers"])
    remote, remote_info = generate(ray_api, n_iter=3, batch_size=2, steps=4, seed=21)
    local, local_info = generate(local_api, n_iter=3, batch_size=2, steps=4, seed=21)
    assert sum(w["jobs_done"] for w in cluster_state(ray_api)["workers"]) == done_before + 3  # one job per batch
    assert remote_info["all_seeds"] == local_info["all_seeds"] == list(range(21, 27))
    assert len(remote) == len(local) == 6
    for a, b in zip(remote, local):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    assert [without_worker(text) for text in remote_info["infotexts"]] == local_info["infotexts"]


def test_img2img_through_ray_gives_the_in_process_pixels(ray_api, local_api):
    source = Image.fromarray(np.random.default_rng(3).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    body = {"init_images": [b64_png(source)], "denoising_strength": 0.6}
    (remote,), remote_info = generate(ray_api, "img2img", **body)
    (local,), local_info = generate(local_api, "img2img", **body)
    assert np.array_equal(np.asarray(remote), np.asarray(local))
    assert without_worker(remote_info["infotexts"][0]) == local_info["infotexts"][0]


def test_an_xyz_grid_of_checkpoints_and_seeds_through_ray_gives_the_in_process_pixels(ray_api, local_api):
    plot = {
        "script_name": "x/y/z plot",
        "script_args": [7, "a.safetensors, b.safetensors", 1, "3, 4", 0, "", True, True, False, False, 0],
    }
    remote, remote_info = generate(ray_api, **plot)
    local, local_info = generate(local_api, **plot)
    assert len(remote) == len(local) == 5  # the grid, then its four cells
    for a, b in zip(remote, local):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    assert [without_worker(text) for text in remote_info["infotexts"]] == local_info["infotexts"]
    assert len({text.split("Model hash: ")[1][:10] for text in remote_info["infotexts"][1:]}) == 2


def test_the_cells_of_an_xyz_grid_run_at_once_on_both_replicas_with_the_in_process_pixels(ray_api, local_api):
    body = {
        "steps": 20,
        "width": 128,
        "height": 128,
        "script_name": "x/y/z plot",
        "script_args": [1, "3, 4", 3, "5, 9", 0, "", True, True, False, False, 0],
    }  # seeds × CFG scales
    answer: dict = {}
    thread = threading.Thread(target=lambda: answer.update(zip(("images", "info"), generate(ray_api, **body))))
    thread.start()
    together = False
    while thread.is_alive():
        together |= sum(bool(w["running"]) for w in cluster_state(ray_api)["workers"]) == 2
        time.sleep(0.1)
    assert together  # two cells ran at the same time, one on each replica
    local, local_info = generate(local_api, **body)
    assert len(answer["images"]) == len(local) == 5  # the grid, then its four cells
    for a, b in zip(answer["images"], local):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    assert [without_worker(text) for text in answer["info"]["infotexts"]] == local_info["infotexts"]
    assert len({text.rsplit("Worker: ", 1)[1].split(",")[0] for text in answer["info"]["infotexts"][1:]}) == 2


def test_an_always_visible_scripts_batch_and_image_hooks_act_on_a_job_that_runs_on_a_replica(ray_api, local_api):
    hooked = {"n_iter": 2, "seed": 31, "alwayson_scripts": {"Ray hooks": {"args": [True]}}}
    remote, remote_info = generate(ray_api, **hooked)
    local, local_info = generate(local_api, **hooked)
    plain, _ = generate(local_api, n_iter=2, seed=31)
    assert [text.split("\n")[0] for text in remote_info["infotexts"]] == [
        f"a red house, hooked in batch {n}" for n in (0, 1)
    ]
    for a, b, c in zip(remote, local, plain):
        assert np.array_equal(np.asarray(a), np.asarray(b)) and not np.array_equal(np.asarray(a), np.asarray(c))
    assert [without_worker(text) for text in remote_info["infotexts"]] == local_info["infotexts"]


def test_the_lines_of_prompts_from_file_run_as_separate_jobs_with_the_in_process_pixels(ray_api, local_api):
    lines = {
        "script_name": "prompts from file or textbox",
        "script_args": [False, False, "start", 'a red house\n--prompt "a blue boat" --steps 4'],
    }
    done_before = sum(w["jobs_done"] for w in cluster_state(ray_api)["workers"])
    remote, remote_info = generate(ray_api, **lines)
    local, local_info = generate(local_api, **lines)
    assert sum(w["jobs_done"] for w in cluster_state(ray_api)["workers"]) == done_before + 2
    assert len(remote) == len(local) == 2
    for a, b in zip(remote, local):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    assert [without_worker(text) for text in remote_info["infotexts"]] == local_info["infotexts"]
    assert "a blue boat" in remote_info["infotexts"][1]


def test_a_job_for_checkpoint_b_goes_to_the_replica_that_holds_b(ray_api):
    generate(ray_api)  # a replica holds A
    _, first = generate(ray_api, override_settings={"sd_model_checkpoint": "b.safetensors"})
    b_hash = first["sd_model_hash"]
    wait_for(lambda: any(b_hash in w["loaded"] for w in cluster_state(ray_api)["workers"]), 30, "B reported")
    time.sleep(1.0)  # Serve's routers learn which replica holds which model from the replicas' reports
    before = cluster_state(ray_api)["workers"]
    _, second = generate(ray_api, override_settings={"sd_model_checkpoint": "b.safetensors"})
    after = cluster_state(ray_api)["workers"]
    assert second["sd_model_hash"] == b_hash
    assert sum(w["loads"] for w in after) == sum(w["loads"] for w in before)  # nothing was loaded again
    holder = next(w for w in after if b_hash in w["loaded"])
    assert f"Worker: {holder['name']}" in second["infotexts"][0]
    assert all(len(w["loaded"]) == 1 for w in after)  # --ray-models-per-replica 1: a replica drops A to load B


def test_a_checkpoint_no_replica_can_read_is_a_clear_error_naming_the_file_and_node(ray_api):
    from modules.jobs.generation import ImagePlan, RunSettings
    from modules.jobs.generation_params import GenerationParams
    from modules.jobs.job_spec import GenerationJob

    params = GenerationParams(**SMALL)
    job = GenerationJob(
        "txt2img",
        params,
        ImagePlan.repeated(params, 1),
        RunSettings(),
        "ffffffffff",
        "gone.safetensors",
        job_id="missing",
    )
    handle = serve.get_app_handle("webui").options(multiplexed_model_id="ffffffffff", stream=True)
    with ThreadPoolExecutor(1) as off_loop:  # an earlier test may have left an asyncio loop on this thread
        (event,) = off_loop.submit(lambda: list(handle.generate.remote(job))).result()
    assert event["user"] is True  # the API answers a UserError with a 422
    assert event["error"].startswith("Can't run gone.safetensors: No checkpoint with hash ffffffffff in ")
    assert "on node " in event["error"]
    generate(ray_api)  # the replica goes on


def test_progress_and_interrupt_reach_the_replica_through_the_api(ray_api):
    answer: dict = {}

    def run() -> None:  # 256 px: the first two batches still run when the interrupt comes, even on a busy machine
        answer["images"], answer["info"] = generate(ray_api, steps=150, n_iter=4, width=256, height=256)

    thread = threading.Thread(target=run)
    thread.start()
    progress = wait_for(
        lambda: (lambda p: p if p["state"]["sampling_step"] >= 2 else None)(
            requests.get(f"{ray_api}/progress", timeout=30).json()
        ),
        120,
        "steps on the replica",
    )
    assert progress["state"]["sampling_steps"] == 150 and progress["state"]["job_count"] == 4
    assert 0 < progress["progress"] < 1
    assert wait_for(
        lambda: requests.get(f"{ray_api}/progress", timeout=30).json()["current_image"],
        60,
        "a live preview from the replica",
    )
    assert requests.post(f"{ray_api}/interrupt", timeout=30).status_code == 200
    thread.join(120)
    assert not thread.is_alive()
    assert answer["info"]["interrupted"] is True
    assert len(answer["images"]) <= 2  # the batches running on the two replicas stopped; the others never ran
    generate(ray_api)  # and the next job runs


def test_progress_previews_and_interrupt_reach_the_replica_through_the_page(page, ray_api):
    args = endpoint_args(
        page,
        "/txt2img",
        {
            "Prompt": "a field",
            "Sampling method": "Euler",
            "Sampling steps": 150,
            "Batch count": 4,
            "Width": 256,
            "Height": 256,
            "Seed": 5,
        },
    )
    job = page.submit(*args, api_name="/txt2img")

    def shown_step():
        units = job.status().progress_data or []
        return next((unit.desc for unit in units if unit.desc and unit.desc.startswith("Step ")), None)

    desc = wait_for(shown_step, 120, "the page showing the replica's steps")
    assert "/150 · batch " in desc and "/4" in desc
    wait_for(lambda: job.outputs(), 60, "a live preview on the page")
    page.predict(api_name="/txt2img_interrupt")
    gallery, info = job.result(timeout=120)
    assert info.find("(interrupted)") >= 0
    images = [item for item in gallery if not os.path.basename(item["image"]).startswith("grid")]
    assert len(images) <= 2  # the batches running on the two replicas stopped; the others never ran
    generate(ray_api)  # and the next job runs


def test_skip_through_the_api_ends_the_batch_on_the_replica(ray_api):
    answer: dict = {}

    def run() -> None:  # 256 px: the first two batches still run when the interrupt comes, even on a busy machine
        answer["images"], answer["info"] = generate(ray_api, steps=150, width=128, height=128)

    thread = threading.Thread(target=run)
    thread.start()
    wait_for(
        lambda: requests.get(f"{ray_api}/progress", timeout=30).json()["state"]["sampling_step"] >= 2,
        120,
        "steps on the replica",
    )
    assert requests.post(f"{ray_api}/skip", timeout=30).status_code == 200
    last_step = 0
    while thread.is_alive():
        last_step = max(last_step, requests.get(f"{ray_api}/progress", timeout=30).json()["state"]["sampling_step"])
        time.sleep(0.2)
    assert last_step < 100  # the batch ended long before its 150 steps
    assert len(answer["images"]) == 1 and answer["info"]["interrupted"] is False


def test_a_replica_killed_mid_job_is_retried_once_elsewhere_and_the_next_job_runs(ray_api, data):
    answer: dict = {}

    def run() -> None:
        answer["images"], answer["info"] = generate(ray_api, steps=60, width=128, height=128, seed=9)

    thread = threading.Thread(target=run)
    thread.start()
    busy = wait_for(
        lambda: next((w for w in cluster_state(ray_api)["workers"] if w["running"]), None),
        120,
        "a replica running the job",
    )
    time.sleep(0.5)
    os.kill(busy["pid"], signal.SIGKILL)
    thread.join(240)
    assert not thread.is_alive()
    assert f"Worker {busy['name']} stopped while running the job" in (data / "server.log").read_text()
    worker = answer["info"]["infotexts"][0].rsplit("Worker: ", 1)[1].split(",")[0]
    assert worker != busy["name"] and len(answer["images"]) == 1  # the retry ran on the other replica
    generate(ray_api)
    wait_for(
        lambda: (
            len(cluster_state(ray_api)["workers"]) == 2
            and busy["name"] not in {w["name"] for w in cluster_state(ray_api)["workers"]}
        ),
        120,
        "Serve's new replica",
    )
