"""Start app.py for real on a free port with a temporary data dir and drive it over HTTP."""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import requests
import torch
from app_process import app_process, endpoint_args, running_app
from network_files import a1111_embedding, kohya_lora
from PIL import Image
from shared_logins import AUTH_PAGE_LOGIN
from tiny_models import tiny_modules, write_tiny_checkpoint


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    ckpts = data / "models" / "Stable-diffusion"
    write_tiny_checkpoint("sd1", ckpts / "other.safetensors", seed=7)
    unet, _, (text_encoder,) = tiny_modules("sd1", seed=7)
    (data / "models" / "Lora").mkdir(parents=True)
    kohya_lora(data / "models" / "Lora" / "tinylora.safetensors", unet, text_encoder)
    (data / "embeddings").mkdir()
    a1111_embedding(data / "embeddings" / "mystyle.pt", torch.randn(2, 64))
    (ckpts / "corrupt.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{broken")
    (data / "config.json").write_text(json.dumps({"show_progress_every_n_steps": 2}))
    (data / "styles.csv").write_text('name,prompt,negative_prompt\nGolden,"{prompt}, golden hour",fog\n')
    (data / "ui-config.json").write_text(
        json.dumps({"txt2img/Sampling steps/maximum": 300, "txt2img/Sampling steps/value": 33})
    )
    with running_app(data, "--ckpt", "other.safetensors", model_name="other.safetensors") as url:
        yield url, data


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server[0], verbose=False)


BASE = {"Sampling method": "Euler", "Width": 64, "Height": 64, "Seed": 5, "Clip skip": 1}


def txt2img(client, values: dict) -> tuple:
    """Call the page's Generate endpoint of txt2img with small defaults and `values` by label."""
    return client.predict(*endpoint_args(client, "/txt2img", {**BASE, **values}), api_name="/txt2img")


def img2img(client, values: dict) -> tuple:
    """The same for img2img."""
    return client.predict(*endpoint_args(client, "/img2img", {**BASE, **values}), api_name="/img2img")


def component(url: str, label: str) -> dict:
    config = requests.get(url + "config", timeout=10).json()
    return next(c["props"] for c in config["components"] if c.get("props", {}).get("label") == label)


def test_generate_through_the_page_endpoint_saves_png_with_parameters(server, client):
    _url, data = server
    gallery, info = txt2img(
        client,
        {
            "Prompt": "a lighthouse, at night",
            "Negative prompt": "fog",
            "Sampling method": "Euler a",
            "Sampling steps": 6,
            "Height": 96,
            "Batch size": 2,
            "CFG Scale": 6.5,
            "Seed": 77,
            "Clip skip": 2,
        },
    )
    assert len(gallery) == 3 and Image.open(gallery[0]["image"]).size == (128, 96)  # the grid first, as in A1111
    assert "Steps: 6, Sampler: Euler a, Schedule type: Automatic, CFG scale: 6.5, Seed: 77, Size: 64x96" in info
    folder = data / "outputs" / "txt2img-images" / date.today().isoformat()
    saved = sorted(folder.glob("*.png"))
    assert [p.name for p in saved] == ["00000-77-a lighthouse at night.png", "00001-78-a lighthouse at night.png"]
    text = Image.open(saved[1]).info["parameters"]
    assert text.startswith("a lighthouse, at night\nNegative prompt: fog\nSteps: 6, Sampler: Euler a,")
    assert "Seed: 78," in text and "Clip skip: 2" in text and "Model: other," in text
    assert Image.open(saved[0]).size == (64, 96)


def test_every_sampler_and_schedule_type_on_the_page_runs(server, client):
    """Each choice of the page's Sampling method and Schedule type dropdowns generates, and says so in the infotext;
    a schedule type the sampler can't use (DDIM with Karras) is a note, as in A1111."""
    url, _ = server
    samplers = [choice[0] for choice in component(url, "Sampling method")["choices"]]
    schedules = [choice[0] for choice in component(url, "Schedule type")["choices"]]
    assert len(samplers) == 20 and {"DPM adaptive", "Restart", "DDIM CFG++", "LCM"} <= set(samplers)
    assert len(schedules) == 12 and {"Automatic", "Align Your Steps", "Beta"} <= set(schedules)
    few = {"Prompt": "a boat", "Sampling steps": 1}  # only that each one runs: a schedule (Euler) needs 1 step
    for sampler in samplers:  # 3 steps: the fewest UniPC (order 3) takes
        gallery, info = txt2img(client, {**few, "Sampling method": sampler, "Sampling steps": 3})
        assert len(gallery) == 1 and f"Sampler: {sampler}," in info, info
    for schedule in schedules[1:]:
        gallery, info = txt2img(client, {**few, "Schedule type": schedule})
        assert len(gallery) == 1 and f"Schedule type: {schedule}," in info, info
    _, info = txt2img(client, {**few, "Sampling method": "DDIM", "Schedule type": "Karras"})
    assert "Schedule type unused: Karras" in info, info


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
    _dropdown, status = client.predict("corrupt.safetensors", api_name="/change_checkpoint")
    assert "corrupt.safetensors" in status and "damaged" in status
    log = (data / "server.log").read_text()
    assert "corrupt.safetensors" in log
    _gallery, info = txt2img(client, {"Prompt": "still works", "Sampling steps": 2})
    assert "Model: other," in info


def test_demo_model_is_written_when_there_is_no_checkpoint(tmp_path):
    with running_app(tmp_path, model_name="demo-tiny-sd.safetensors"):
        log = (tmp_path / "server.log").read_text()
        assert "DEMO model" in log and "abstract images" in log
        assert (tmp_path / "models" / "Stable-diffusion" / "demo-tiny-sd.safetensors").is_file()
        for name in ("outputs", "embeddings", "extensions", "ui-config.json"):
            assert (tmp_path / name).exists(), name


def test_gradio_auth_requires_a_login(auth_app):
    from gradio_client import Client

    url, _ = auth_app
    user, password = AUTH_PAGE_LOGIN
    assert requests.get(url + "config", timeout=10).status_code == 401
    wrong = requests.post(url + "login", data={"username": user, "password": "wrong"}, timeout=10)
    assert wrong.status_code != 200
    session = requests.Session()
    assert session.post(url + "login", data={"username": user, "password": password}, timeout=10).ok
    assert session.get(url + "config", timeout=10).status_code == 200
    Client(url, auth=AUTH_PAGE_LOGIN, verbose=False)


def test_prompt_syntax_lora_and_embedding_from_the_data_dir(server, client):
    _url, data = server
    _gallery, info = txt2img(
        client,
        {
            "Prompt": "a [red:blue:1] house <lora:tinylora:0.8> in mystyle AND a tree :0.5",
            "Negative prompt": "ugly",
            "Sampling steps": 3,
        },
    )
    assert "Lora hashes: &quot;tinylora: " in info and "TI hashes: &quot;mystyle: " in info
    _, missing = txt2img(client, {"Prompt": "a house <lora:nope:1>", "Sampling steps": 3})
    assert "LoRA not found: nope" in missing
    assert "LoRA not found: nope" in (data / "server.log").read_text()


def test_token_counter_endpoint(client):
    assert client.predict("a castle on a hill", 20, api_name="/txt2img_prompt_tokens") == "5/75"
    assert client.predict(" ".join(["cat"] * 80), 20, api_name="/txt2img_prompt_tokens") == "80/150"
    assert client.predict("[cat:a much longer phrase here:5]", 20, api_name="/txt2img_prompt_tokens") == "5/75"


def test_img2img_and_inpaint_upload_through_the_page_endpoint(server, client, tmp_path):
    from gradio_client import handle_file
    from skimage import data as samples

    _url, data = server
    photo_path = tmp_path / "photo.png"
    Image.fromarray(samples.astronaut()).resize((64, 64)).save(photo_path)
    mask_path = tmp_path / "mask.png"
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    mask.save(mask_path)
    portrait = {"Prompt": "a portrait", "Sampling steps": 4}
    _gallery, info = img2img(client, {**portrait, "Image for img2img": handle_file(str(photo_path))})
    assert "Denoising strength: 0.75" in info and "Mask blur" not in info
    _gallery, info = img2img(
        client,
        {
            **portrait,
            "img2img mode": 4,
            "Image": handle_file(str(photo_path)),
            "Mask": handle_file(str(mask_path)),
            "Mask blur": 0,
        },
    )
    assert "Mask blur: 0, Mask mode: Inpaint masked" in info
    saved = sorted((data / "outputs" / "img2img-images" / date.today().isoformat()).glob("*.png"))
    result = np.asarray(Image.open(saved[-1]).convert("RGB")).astype(int)
    source = np.asarray(Image.open(photo_path).convert("RGB")).astype(int)
    outside = np.asarray(mask) == 0
    assert (result[outside] == source[outside]).all() and (result[~outside] != source[~outside]).any()
    with pytest.raises(Exception, match="Drop an image"):
        img2img(client, portrait)


def test_hires_fix_through_the_page_endpoint(server, client):
    url, _data = server
    gallery, info = txt2img(
        client,
        {
            "Prompt": "a tower",
            "Sampling steps": 2,
            "Hires. fix": True,
            "Upscale by": 1.5,
            "Hires steps": 2,
            "Denoising strength": 0.5,
            "Upscaler": "Lanczos",
        },
    )
    assert Image.open(gallery[0]["image"]).size == (96, 96)
    assert "Size: 64x64" in info and "Hires upscale: 1.5, Hires steps: 2, Hires upscaler: Lanczos" in info
    assert component(url, "Denoising strength")["value"] == 0.7  # txt2img's own default, as in A1111
    from modules.ui.txt2img import hires_summary  # the accordion's line: shown only while Hires. fix is on

    assert hires_summary(True, 512, 512, 2.0, 0, 0) == "from 512x512 to 1024x1024"
    assert hires_summary(False, 512, 512, 2.0, 0, 0) == ""
    with pytest.raises(Exception, match="no upscaler called"):
        txt2img(client, {"Prompt": "a tower", "Hires. fix": True, "Upscaler": "nope"})


def test_hires_checkpoint_through_the_page_endpoint(server, client):
    url, data = server
    choices = [c[0] if isinstance(c, list) else c for c in component(url, "Hires checkpoint")["choices"]]
    assert choices[0] == "Use same checkpoint" and any(c.startswith("other.safetensors") for c in choices)
    hires = {"Prompt": "a tower", "Sampling steps": 2, "Hires. fix": True, "Denoising strength": 0.5}
    gallery, info = txt2img(client, {**hires, "Hires checkpoint": "other.safetensors"})
    assert "Hires checkpoint: other [" in info and Image.open(gallery[0]["image"]).size == (128, 128)
    with pytest.raises(Exception, match=r"corrupt.safetensors"):
        txt2img(client, {**hires, "Hires checkpoint": "corrupt.safetensors"})
    outside = shutil.copy(data / "models" / "Stable-diffusion" / "other.safetensors", data / "outside.safetensors")
    with pytest.raises(Exception, match="not one of the checkpoints"):
        txt2img(client, {**hires, "Hires checkpoint": str(outside)})
    gallery, info = txt2img(client, {"Prompt": "still works", "Sampling steps": 2})
    assert "Model: other," in info and "Hires" not in info


def test_refiner_through_the_page_endpoint(server, client):
    url, _ = server
    config = requests.get(url + "config", timeout=10).json()
    for tab in ("txt2img", "img2img"):
        dropdown = next(
            c["props"] for c in config["components"] if c.get("props", {}).get("elem_id") == f"{tab}_refiner_checkpoint"
        )
        choices = [c[0] if isinstance(c, list) else c for c in dropdown["choices"]]
        assert choices[0] == "None" and any(c.startswith("other.safetensors") for c in choices)
    refined = {"Prompt": "a tower", "Sampling steps": 4, "Checkpoint": "other.safetensors", "Switch at": 0.5}
    _gallery, info = txt2img(client, {**refined, "Refiner": True})
    assert "Refiner: other [" in info and "Refiner switch at: 0.5" in info
    _gallery, info = txt2img(client, {**refined, "Refiner": False})  # the accordion's box off: no refiner
    assert "Refiner" not in info


def test_live_previews_arrive_before_the_result(client):
    # A preview every 2 steps (the server's config), and the page looks every 0.25 s: 24 steps at 96x64 last
    # several looks, so a preview must reach the page; the size only checks a preview is the whole image.
    args = endpoint_args(
        client, "/txt2img", {**BASE, "Prompt": "a field", "Sampling steps": 24, "Width": 96, "Height": 64}
    )
    job = client.submit(*args, api_name="/txt2img")
    job.result(timeout=300)
    *previews, (gallery, info) = job.outputs()
    assert previews, "no live preview reached the page"
    for preview in previews:
        assert len(preview[0]) == 1 and Image.open(preview[0][0]["image"]).size == (96, 64)
    assert "Steps: 24," in info and len(gallery) == 1


def test_styles_apply_at_generation_and_save_through_the_page(server, client):
    _url, data = server
    _, info = txt2img(client, {"Prompt": "a barn", "Sampling steps": 2, "Styles": ["Golden"]})
    assert "a barn, golden hour" in info and "Negative prompt: fog" in info
    client.predict("Rainy", "{prompt}, rain", "", api_name="/txt2img_styles_save")
    assert "Rainy" in (data / "styles.csv").read_text()
    _, info = txt2img(client, {"Prompt": "a barn", "Sampling steps": 2, "Styles": ["Rainy"]})
    assert "a barn, rain" in info


def test_an_idle_server_wakes_rarely(server):
    """Gradio's queue looks for events every 1 ms while it is empty, over a thousand wakeups a second; the app's
    queue waits for work instead (modules/ui/quiet_queue.py), so an idle server leaves the cores to the rest of the
    machine."""
    tasks = Path(f"/proc/{app_process(server[0]).pid}/task")

    def switches() -> int:
        """Context switches of all the server's threads so far (psutil counts only the main thread's)."""
        total = 0
        for task in tasks.iterdir():
            with contextlib.suppress(FileNotFoundError):  # a thread that just ended
                lines = (task / "status").read_text().splitlines()
                total += sum(int(line.split()[1]) for line in lines if "ctxt_switches:" in line)
        return total

    before, started = switches(), time.monotonic()
    time.sleep(3)
    per_second = (switches() - before) / (time.monotonic() - started)
    assert per_second < 60, f"the idle server woke {per_second:.0f} times a second"
