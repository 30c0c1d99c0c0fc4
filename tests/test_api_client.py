"""An unmodified public A1111 client (webuiapi from PyPI) against `app.py --api`: the page and the API on one
port, one engine, one queue."""

from __future__ import annotations

import threading

import pytest
import requests
import webuiapi
from app_process import endpoint_args, wait_for
from PIL import Image
from shared_logins import AUTH_API_LOGIN, AUTH_PAGE_LOGIN


@pytest.fixture(scope="module")
def server(auth_app):
    """The shared locked-down app (page and API logins, the demo model)."""
    return auth_app[0]


@pytest.fixture(scope="module")
def client(server):
    port = int(server.rstrip("/").rsplit(":", 1)[1])
    user, password = AUTH_API_LOGIN
    return webuiapi.WebUIApi(port=port, sampler="Euler a", steps=3, username=user, password=password)


def test_txt2img(client):
    result = client.txt2img(prompt="a blue door", negative_prompt="fog", seed=21, width=64, height=64, batch_size=2)
    assert [image.size for image in result.images] == [(64, 64), (64, 64)]
    assert result.info["all_seeds"] == [21, 22] and result.info["sampler_name"] == "Euler a"
    assert result.images[1].info["parameters"] == result.info["infotexts"][1]
    assert result.parameters["negative_prompt"] == "fog"


def test_img2img_with_a_mask(client):
    source = Image.new("RGB", (64, 64), (20, 160, 60))
    mask = Image.new("RGB", (64, 64), "black")
    mask.paste((255, 255, 255), (0, 0, 32, 64))
    result = client.img2img(
        images=[source],
        mask_image=mask,
        prompt="a field",
        seed=4,
        width=64,
        height=64,
        denoising_strength=0.8,
        mask_blur=0,
        inpainting_fill=1,
        inpaint_full_res=False,
    )
    image = result.image.convert("RGB")
    assert image.getpixel((60, 32)) == (20, 160, 60) and image.getpixel((10, 32)) != (20, 160, 60)
    assert "Mask blur: 0" in result.info["infotexts"][0] and "Denoising strength: 0.8" in result.info["infotexts"][0]


def test_extras_and_png_info(client):
    generated = client.txt2img(prompt="a lamp", seed=8, width=64, height=64).image
    upscaled = client.extra_single_image(generated, upscaler_1="Lanczos", upscaling_resize=2)
    assert upscaled.image.size == (128, 128) and "Postprocess upscaler: Lanczos" in upscaled.info
    info = client.png_info(upscaled.image)
    assert info.info.startswith("a lamp\nSteps: 3, Sampler: Euler a,") and "Seed: 8," in info.info
    assert info.json["items"]["extras"].startswith("Postprocess upscale by: 2")


def test_options(client):
    changed = {"eta_noise_seed_delta": 7, "CLIP_stop_at_last_layers": 2}
    before = {key: client.get_options()[key] for key in changed}
    assert before != changed
    client.set_options(changed)
    try:
        options = client.get_options()
        assert options["eta_noise_seed_delta"] == 7 and options["CLIP_stop_at_last_layers"] == 2
        assert "Clip skip: 2" in client.txt2img(prompt="x", width=64, height=64).info["infotexts"][0]
    finally:
        client.set_options(before)  # the shared server's settings as they were
    assert options["sd_model_checkpoint"] in client.util_get_model_names()


def test_progress_and_interrupt(client):
    answer = {}
    thread = threading.Thread(
        target=lambda: answer.update(result=client.txt2img(prompt="slow", steps=150, n_iter=3, width=64, height=64))
    )
    thread.start()
    wait_for(lambda: client.get_progress()["state"]["sampling_step"] >= 2, 30, "the job to start")
    progress = client.get_progress()
    assert 0 < progress["progress"] < 1 and progress["state"]["job_count"] == 3
    client.interrupt()
    thread.join(60)
    assert answer["result"].info["interrupted"] and len(answer["result"].images) == 1


def test_page_and_api_share_the_queue(server, client):
    """A page job shows in the API's /progress, the API can interrupt it, and an API job queued behind it runs."""
    from gradio_client import Client

    page = Client(server, auth=AUTH_PAGE_LOGIN, verbose=False)
    values = {
        "Prompt": "page job",
        "Sampling method": "Euler",
        "Sampling steps": 150,
        "Batch count": 3,
        "Width": 64,
        "Height": 64,
    }
    job = page.submit(*endpoint_args(page, "/txt2img", values), api_name="/txt2img")
    state = wait_for(lambda: (s := client.get_progress()["state"])["sampling_step"] >= 2 and s, 60, "the page job")
    assert state["job"].startswith("txt2img") and state["job_count"] == 3
    behind = {}
    thread = threading.Thread(target=lambda: behind.update(result=client.txt2img(prompt="api", width=64, height=64)))
    thread.start()
    wait_for(lambda: client.get_progress()["state"]["queued"] == 1, 30, "the API job to queue")
    client.interrupt()
    _gallery, info = job.result(timeout=60)
    thread.join(60)
    assert "(interrupted)" in info and len(behind["result"].images) == 1
    assert requests.get(server + "sdapi/v1/samplers", timeout=10).status_code == 401  # the API keeps its auth
