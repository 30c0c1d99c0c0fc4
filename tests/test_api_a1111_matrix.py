"""A1111's own API test suite (its test/test_txt2img.py, test_img2img.py, test_extras.py, test_utils.py) as
requests against one `app.py --nowebui --api-server-stop` on a first start (no checkpoint: the demo model),
with the unmodified webuiapi client listing the checkpoints the moment the server first answers; and every other
A1111 route and option (modules/api/not_available.py, server_control.py, modules/core/a1111_options.py)."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import pytest
import requests
import torch
import webuiapi
from app_process import running_app, wait_for
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from model_weights import link_gfpgan_files, tiny_esrgan
from PIL import Image, ImageDraw

from modules.api import server_control
from modules.core.a1111_options import NO_EFFECT, NO_EFFECT_SECTIONS
from modules.core.atomic_files import write_atomic
from modules.models.checkpoints import list_checkpoints
from modules.models.demo_model import DEMO_FILE_NAME
from modules.options import OPTIONS
from modules.paths import REPO_ROOT


def png_data_uri(image: Image.Image) -> str:
    """As A1111's test conftest sends its test images."""
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def server(weights_store, tmp_path_factory):
    """The app on a data dir with no checkpoint, face restoration weights (random, with a detector that finds no
    face), a Real-ESRGAN file and a hypernetwork file; yields (API URL, data dir, the model titles webuiapi listed
    right after the server first answered)."""
    data = tmp_path_factory.mktemp("data")
    link_gfpgan_files(weights_store, data / "models" / "GFPGAN", finds_faces=False)
    (data / "models" / "RealESRGAN").mkdir()
    torch.save(tiny_esrgan(2), data / "models" / "RealESRGAN" / "RealESRGAN_x2plus.pth")
    (data / "models" / "hypernetworks" / "styles").mkdir(parents=True)
    (data / "models" / "hypernetworks" / "styles" / "anime.pt").write_bytes(b"listed by name only")
    with running_app(data, "--nowebui", "--api-server-stop") as url:
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        listed = webuiapi.WebUIApi(port=port).util_get_model_names()
        yield f"{url}sdapi/v1", data, listed


@pytest.fixture(scope="module")
def url(server) -> str:
    return server[0]


def test_webuiapi_lists_the_demo_checkpoint_as_soon_as_the_server_answers(server):
    _, data, listed = server
    assert [title.split(" [")[0] for title in listed] == [DEMO_FILE_NAME]
    assert not list((data / "models" / "Stable-diffusion").glob("*.tmp"))


def test_a_checkpoint_being_written_is_listed_once_complete(tmp_path: Path):
    target = tmp_path / "new.safetensors"
    seen_while_writing = []

    def write(handle) -> None:
        handle.write(b"half a checkpoint")
        seen_while_writing.extend(info.path.name for info in list_checkpoints([tmp_path]))

    write_atomic(target, write)
    assert seen_while_writing == [] and [info.path.name for info in list_checkpoints([tmp_path])] == [target.name]


@pytest.mark.parametrize(
    "route",
    [
        "cmd-flags",
        "samplers",
        "upscalers",
        "sd-models",
        "hypernetworks",
        "face-restorers",
        "realesrgan-models",
        "prompt-styles",
        "embeddings",
    ],
)
def test_a1111s_get_routes_answer(url, route):
    assert requests.get(f"{url}/{route}", timeout=60).status_code == 200


def test_hypernetworks_and_realesrgan_models_in_a1111s_shapes(server):
    url, data, _ = server
    assert requests.get(f"{url}/hypernetworks", timeout=60).json() == [
        {"name": "anime", "path": str(data / "models" / "hypernetworks" / "styles" / "anime.pt")}
    ]
    assert requests.get(f"{url}/realesrgan-models", timeout=60).json() == [
        {"name": "RealESRGAN_x2plus", "path": str(data / "models" / "RealESRGAN" / "RealESRGAN_x2plus.pth"), "scale": 2}
    ]


def test_options_write_round_trips_send_seed_and_holds_every_a1111_key(server):
    url, data, _ = server
    options = requests.get(f"{url}/options", timeout=60).json()
    before = options["send_seed"]
    assert requests.post(f"{url}/options", json={"send_seed": not before}, timeout=60).status_code == 200
    assert requests.get(f"{url}/options", timeout=60).json()["send_seed"] is (not before)
    assert '"send_seed": ' + ("false" if before else "true") in (data / "config.json").read_text()
    assert requests.post(f"{url}/options", json={"send_seed": before}, timeout=60).status_code == 200
    assert {key: options[key] for key in NO_EFFECT} == NO_EFFECT  # A1111's defaults
    whole_copy = requests.post(f"{url}/options", json=options, timeout=60)  # the checkpoint may be null or set
    assert whole_copy.status_code == 200, whole_copy.text
    assert requests.post(f"{url}/options", json={"sd_model_checkpoint": None}, timeout=60).status_code == 200
    wrong = requests.post(f"{url}/options", json={"send_size": "yes", "no_such_key": 1}, timeout=60)
    assert wrong.status_code == 422 and "send_size" in wrong.json()["errors"]
    unknown = requests.post(f"{url}/options", json={"no_such_key": 1}, timeout=60)
    assert unknown.status_code == 422 and "no_such_key" in unknown.json()["errors"]


A1111_TXT2IMG = {  # A1111's test/test_txt2img.py request
    "batch_size": 1,
    "cfg_scale": 7,
    "denoising_strength": 0,
    "enable_hr": False,
    "eta": 0,
    "firstphase_height": 0,
    "firstphase_width": 0,
    "height": 64,
    "n_iter": 1,
    "negative_prompt": "",
    "prompt": "example prompt",
    "restore_faces": False,
    "s_churn": 0,
    "s_noise": 1,
    "s_tmax": 0,
    "s_tmin": 0,
    "sampler_index": "Euler a",
    "seed": -1,
    "seed_resize_from_h": -1,
    "seed_resize_from_w": -1,
    "steps": 3,
    "styles": [],
    "subseed": -1,
    "subseed_strength": 0,
    "tiling": False,
    "width": 64,
}


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"negative_prompt": "example negative prompt"},
        {"prompt": "((emphasis)), (emphasis1:1.1), [to:1], [from::2], [from:to:0.3], [alt|alt1]"},
        {"height": 128},
        {"enable_hr": True},
        {"tiling": True},
        {"restore_faces": True},
        {"sampler_index": "PLMS"},
        {"sampler_index": "DDIM"},
        {"sampler_index": "UniPC"},
        {"n_iter": 2},
        {"batch_size": 2},
    ],
)
def test_a1111s_txt2img_requests(url, changes):
    response = requests.post(f"{url}/txt2img", json={**A1111_TXT2IMG, **changes}, timeout=300)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert len(answer["images"]) == 2 if {"n_iter", "batch_size"} & set(changes) else 1
    if changes.get("restore_faces"):
        assert "Face restoration: GFPGAN" in answer["info"]


@pytest.fixture(scope="module")
def a1111_images() -> tuple[str, str]:
    """An init image and a mask, as A1111's test/test_files/img2img_basic.png and mask_basic.png serve."""
    image = Image.new("RGB", (64, 64), (30, 90, 160))
    ImageDraw.Draw(image).ellipse((16, 16, 48, 48), fill=(220, 200, 40))
    mask = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(mask).rectangle((0, 0, 32, 64), fill=255)
    return png_data_uri(image), png_data_uri(mask)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"mask": "mask"},
        {"mask": "mask", "inpainting_mask_invert": True},
        {"script_name": "sd upscale", "script_args": ["", 8, "Lanczos", 2.0]},
    ],
)
def test_a1111s_img2img_requests(url, a1111_images, changes):
    image, mask = a1111_images
    request = {  # A1111's test/test_img2img.py request
        "batch_size": 1,
        "cfg_scale": 7,
        "denoising_strength": 0.75,
        "eta": 0,
        "height": 64,
        "include_init_images": False,
        "init_images": [image],
        "inpaint_full_res": False,
        "inpaint_full_res_padding": 0,
        "inpainting_fill": 0,
        "inpainting_mask_invert": False,
        "mask": None,
        "mask_blur": 4,
        "n_iter": 1,
        "negative_prompt": "",
        "override_settings": {},
        "prompt": "example prompt",
        "resize_mode": 0,
        "restore_faces": False,
        "s_churn": 0,
        "s_noise": 1,
        "s_tmax": 0,
        "s_tmin": 0,
        "sampler_index": "Euler a",
        "seed": -1,
        "seed_resize_from_h": -1,
        "seed_resize_from_w": -1,
        "steps": 3,
        "styles": [],
        "subseed": -1,
        "subseed_strength": 0,
        "tiling": False,
        "width": 64,
        **{key: mask if value == "mask" else value for key, value in changes.items()},
    }
    response = requests.post(f"{url}/img2img", json=request, timeout=300)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "payload",
    [
        {
            "resize_mode": 0,
            "show_extras_results": True,
            "gfpgan_visibility": 0,
            "codeformer_visibility": 0,
            "codeformer_weight": 0,
            "upscaling_resize": 2,
            "upscaling_resize_w": 128,
            "upscaling_resize_h": 128,
            "upscaling_crop": True,
            "upscaler_1": "Lanczos",
            "upscaler_2": "None",
            "extras_upscaler_2_visibility": 0,
        },
        {},
        {"model": "clip"},
    ],
)  # A1111's test/test_extras.py: its "png info" and "interrogate" tests post these here
def test_a1111s_extras_requests(url, a1111_images, payload):
    response = requests.post(f"{url}/extra-single-image", json={**payload, "image": a1111_images[0]}, timeout=120)
    assert response.status_code == 200, response.text


def test_interrogate_names_the_folders_its_models_would_come_from(server, a1111_images):
    url, data, _ = server
    response = requests.post(f"{url}/interrogate", json={"image": a1111_images[0], "model": "clip"}, timeout=60)
    assert response.status_code == 404
    assert set(response.json()) == {"error", "detail", "body", "errors"}
    assert str(data / "models" / "BLIP") in response.json()["detail"]
    assert str(data / "models" / "clip") in response.json()["detail"]
    unknown = requests.post(f"{url}/interrogate", json={"image": a1111_images[0], "model": "owl"}, timeout=60)
    assert unknown.status_code == 404 and "'owl'" in unknown.json()["detail"]


@pytest.mark.parametrize(
    "route, names",
    [
        ("create/embedding", "embeddings"),
        ("create/hypernetwork", "hypernetwork"),
        ("train/embedding", "training"),
        ("train/hypernetwork", "hypernetwork"),
    ],
)
def test_training_routes_say_what_is_missing(url, route, names):
    response = requests.post(f"{url}/{route}", json={"name": "x"}, timeout=60)
    assert response.status_code == 501 and route in response.json()["detail"] and names in response.json()["detail"]


def test_server_commands_are_refused_without_api_server_stop():
    app = FastAPI()
    router = APIRouter()
    server_control.add_routes(router, allowed=False)
    app.include_router(router)
    client = TestClient(app)
    for route in server_control.COMMANDS:
        response = client.post(f"/{route}")
        assert response.status_code == 403 and "--api-server-stop" in response.json()["detail"], route


def test_with_api_server_stop_restart_is_501_alone_and_stop_ends_the_server(url):
    restart = requests.post(f"{url}/server-restart", timeout=60)
    assert restart.status_code == 501 and "--nowebui" in restart.json()["detail"]
    stop = requests.post(f"{url}/server-stop", timeout=60)
    assert stop.status_code == 200 and stop.text == "Stopping."

    def gone() -> bool:
        try:
            requests.get(f"{url}/samplers", timeout=2)
        except requests.ConnectionError:
            return True
        except requests.Timeout:  # still closing
            return False
        return False

    wait_for(gone, 30, "the server to stop")


def test_no_effect_options_are_one_table_declared_nowhere_else_and_documented():
    assert all(OPTIONS[key].no_effect and OPTIONS[key].default == default for key, default in NO_EFFECT.items())
    assert len(NO_EFFECT) == sum(len(section) for section in NO_EFFECT_SECTIONS.values())
    documented = set(re.findall(r"`([A-Za-z0-9_]+)`", (REPO_ROOT / "docs" / "A1111-OPTIONS.md").read_text()))
    assert set(NO_EFFECT) <= documented, sorted(set(NO_EFFECT) - documented)
