"""The /sdapi/v1 REST API through real HTTP, against `app.py --nowebui --api-auth …` on a free port."""

from __future__ import annotations

import base64
import io
import json
import shutil
import socket
import threading
from datetime import date

import gradio as gr
import numpy as np
import pytest
import requests
import torch
from app_process import running_app, wait_for
from network_files import a1111_embedding
from PIL import Image, PngImagePlugin
from tiny_models import write_tiny_checkpoint

from modules import scripts
from modules.api.errors import RequestError
from modules.api.scripts import ScriptControls

ACCOUNTS = "user:pass,second:word"
SMALL = {"prompt": "a red house", "steps": 2, "width": 64, "height": 64, "seed": 5, "sampler_name": "Euler"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    ckpts = data / "models" / "Stable-diffusion"
    write_tiny_checkpoint("sd1", ckpts / "tiny.safetensors", seed=7)
    write_tiny_checkpoint("sd1", ckpts / "other.safetensors", seed=8)
    (data / "models" / "Lora").mkdir(parents=True)
    (data / "models" / "Lora" / "tinylora.safetensors").write_bytes(b"listed by name only")
    (data / "embeddings").mkdir()
    a1111_embedding(data / "embeddings" / "mystyle.pt", torch.randn(2, 64))
    a1111_embedding(data / "embeddings" / "wide.pt", torch.randn(3, 768))
    (data / "extensions" / "my-extension").mkdir(parents=True)
    (data / "config.json").write_text(json.dumps({"show_progress_every_n_steps": 1}))
    (data / "styles.csv").write_text('name,prompt,negative_prompt\nGolden,"{prompt}, golden hour",fog\n')
    with running_app(
        data, "--nowebui", "--api-auth", ACCOUNTS, "--ckpt", "tiny.safetensors", model_name="tiny.safetensors"
    ) as url:
        yield url + "sdapi/v1", data


@pytest.fixture(scope="module")
def api(server):
    session = requests.Session()
    session.auth = ("user", "pass")
    return session


def b64(image: Image.Image, data_uri: bool = False, text: str | None = None) -> str:
    buffer = io.BytesIO()
    info = PngImagePlugin.PngInfo()
    if text:
        info.add_text("parameters", text)
    image.save(buffer, "PNG", pnginfo=info)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return "data:image/png;base64," + encoded if data_uri else encoded


def unb64(text: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(text)))


def post(api, url: str, route: str, body: dict) -> requests.Response:
    return api.post(f"{url}/{route}", json=body, timeout=120)


def generate(api, url: str, route: str = "txt2img", **body) -> tuple[list[Image.Image], dict, dict]:
    response = post(api, url, route, {**SMALL, **body})
    assert response.status_code == 200, response.text
    answer = response.json()
    return [unb64(i) for i in answer["images"]], json.loads(answer["info"]), answer["parameters"]


def test_txt2img_answers_pngs_with_parameters_and_a1111_info(server, api):
    url, data = server
    images, info, parameters = generate(
        api,
        url,
        prompt="a lighthouse",
        sampler_name="DPM++ 2M Karras",
        batch_size=2,
        seed=77,
        styles=["Golden"],
        negative_prompt="rain",
    )
    assert [image.size for image in images] == [(64, 64), (64, 64)]
    assert [image.info["parameters"] for image in images] == info["infotexts"]
    assert "Sampler: DPM++ 2M, Schedule type: Karras," in info["infotexts"][0]
    assert info["seed"] == 77 and info["all_seeds"] == [77, 78] and "Seed: 78," in info["infotexts"][1]
    assert info["all_prompts"] == ["a lighthouse, golden hour"] * 2
    assert info["all_negative_prompts"] == ["rain, fog"] * 2
    assert info["sampler_name"] == "DPM++ 2M" and info["sd_model_name"] == "tiny" and len(info["sd_model_hash"]) == 10
    for key in (
        "subseed",
        "all_subseeds",
        "width",
        "height",
        "cfg_scale",
        "steps",
        "batch_size",
        "restore_faces",
        "job_timestamp",
        "clip_skip",
        "index_of_first_image",
        "extra_generation_params",
        "styles",
    ):
        assert key in info, key
    assert parameters["prompt"] == "a lighthouse" and parameters["styles"] == ["Golden"]
    assert not (data / "outputs" / "txt2img-images").exists() or not any((data / "outputs").rglob("*-77-*"))


def test_schedulers_by_name_or_label_and_images_saved_on_request(server, api):
    url, data = server
    for scheduler, label in (("karras", "Karras"), ("Exponential", "Exponential"), ("sgm_uniform", "SGM Uniform")):
        _, info, _ = generate(api, url, scheduler=scheduler, sampler_name="DPM++ 2M")
        assert f"Schedule type: {label}," in info["infotexts"][0]
    generate(api, url, seed=4242, save_images=True)
    assert len(list((data / "outputs" / "txt2img-images" / date.today().isoformat()).glob("*-4242-*.png"))) == 1


def test_a_saved_batch_answers_its_grid_first_as_a1111s_api(server, api):
    url, data = server
    images, info, _ = generate(api, url, seed=5150, batch_size=2, save_images=True)
    assert [image.size for image in images] == [(128, 64), (64, 64), (64, 64)] and info["index_of_first_image"] == 1
    assert info["all_seeds"] == [5150, 5151] and info["infotexts"][0] == info["infotexts"][1]
    [grid] = (data / "outputs" / "txt2img-grids").rglob("grid-*.png")  # A1111's short name: grid-0000.png
    assert Image.open(grid).info["parameters"] == info["infotexts"][0]
    images, info, _ = generate(api, url, seed=5150, batch_size=2)  # not saved: no grid, as in A1111
    assert len(images) == 2 and info["index_of_first_image"] == 0


def test_override_settings_apply_to_that_job_only(server, api):
    url, data = server
    _, info, _ = generate(
        api, url, override_settings={"CLIP_stop_at_last_layers": 2, "sd_model_checkpoint": "other.safetensors"}
    )
    assert "Clip skip: 2" in info["infotexts"][0] and info["sd_model_name"] == "other" and info["clip_skip"] == 2
    _, info, _ = generate(api, url)
    assert "Clip skip" not in info["infotexts"][0] and info["sd_model_name"] == "tiny"
    options = api.get(f"{url}/options", timeout=10).json()
    assert options["CLIP_stop_at_last_layers"] == 1 and options["sd_model_checkpoint"].startswith("tiny.safetensors")
    outside = shutil.copy(data / "models" / "Stable-diffusion" / "other.safetensors", data / "outside.safetensors")
    response = post(api, url, "txt2img", {**SMALL, "override_settings": {"sd_model_checkpoint": str(outside)}})
    assert response.status_code == 422 and "not one of the checkpoints" in response.json()["errors"]


def test_hires_checkpoint_runs_the_second_pass_on_that_model_for_the_job(server, api):
    url, _ = server
    hires = {"enable_hr": True, "hr_scale": 2, "denoising_strength": 0.6, "seed": 21}
    (plain,), info, _ = generate(api, url, **hires, hr_checkpoint_name=None)
    assert "Hires checkpoint" not in info["infotexts"][0]
    (same,), info, _ = generate(api, url, **hires, hr_checkpoint_name="tiny.safetensors")
    assert same.tobytes() == plain.tobytes() and "Hires checkpoint: tiny [" in info["infotexts"][0]
    (other,), info, _ = generate(api, url, **hires, hr_checkpoint_name="other")
    text = info["infotexts"][0]
    assert other.size == (128, 128) and other.tobytes() != plain.tobytes()
    assert "Hires checkpoint: other [" in text and info["sd_model_name"] == "tiny" and "Model: tiny," in text
    options = api.get(f"{url}/options", timeout=10).json()
    assert options["sd_model_checkpoint"].startswith("tiny.safetensors"), "the first pass's model stays loaded"
    (again,), _, _ = generate(api, url, **hires, hr_checkpoint_name="other")
    assert again.tobytes() == other.tobytes()
    response = post(api, url, "txt2img", {**SMALL, **hires, "hr_checkpoint_name": "missing.safetensors"})
    assert response.status_code == 422 and "hr_checkpoint_name" in response.json()["errors"]


def test_refiner_checkpoint_takes_over_sampling_for_the_job(server, api):
    url, _ = server
    (plain,), info, _ = generate(api, url, steps=4, refiner_checkpoint=None)
    assert "Refiner" not in info["infotexts"][0]
    (refined,), info, _ = generate(api, url, steps=4, refiner_checkpoint="other", refiner_switch_at=0.5)
    text = info["infotexts"][0]
    assert "Refiner: other [" in text and "Refiner switch at: 0.5" in text and info["sd_model_name"] == "tiny"
    assert refined.tobytes() != plain.tobytes()
    options = api.get(f"{url}/options", timeout=10).json()
    assert options["sd_model_checkpoint"].startswith("tiny.safetensors"), "the loaded model stays"
    response = post(api, url, "txt2img", {**SMALL, "refiner_checkpoint": "missing.safetensors"})
    assert response.status_code == 422 and "refiner_checkpoint" in response.json()["errors"]


def test_older_a1111_spellings_and_infotext(server, api):
    url, _ = server
    body = {
        "prompt": "a tower",
        "steps": 2,
        "seed": 3,
        "sampler_index": "Euler a",
        "enable_hr": True,
        "firstphase_width": 64,
        "firstphase_height": 64,
        "width": 128,
        "height": 128,
    }
    images, info, _ = generate(api, url, **{**body, "sampler_name": None})
    assert images[0].size == (128, 128) and info["sampler_name"] == "Euler a"
    assert "Size: 64x64" in info["infotexts"][0] and "Hires resize: 128x128" in info["infotexts"][0]
    unnamed = {key: value for key, value in SMALL.items() if key != "sampler_name"}
    info = json.loads(post(api, url, "txt2img", unnamed).json()["info"])
    assert info["sampler_name"] == "Euler" and "Sampler: Euler," in info["infotexts"][0], "A1111's API default"
    text = "a castle\nNegative prompt: fog\nSteps: 3, Sampler: Heun, CFG scale: 5, Seed: 42, Size: 64x64, Clip skip: 2"
    response = post(api, url, "txt2img", {"infotext": text, "steps": 2})
    info = json.loads(response.json()["info"])
    assert info["infotexts"][0].startswith("a castle\nNegative prompt: fog\nSteps: 2, Sampler: Heun,")
    assert "CFG scale: 5, Seed: 42, Size: 64x64" in info["infotexts"][0] and info["clip_skip"] == 2


def test_variation_seeds_and_tiling_are_real_fields(server, api):
    url, _ = server
    _, info, _ = generate(
        api,
        url,
        batch_size=2,
        subseed=9,
        subseed_strength=0.5,
        seed_resize_from_w=-1,
        seed_resize_from_h=-1,
        tiling=True,
    )
    assert info["all_seeds"] == [5, 5] and info["subseed"] == 9 and info["all_subseeds"] == [9, 10]
    assert info["subseed_strength"] == 0.5 and info["seed_resize_from_w"] == 0
    assert "Variation seed: 10, Variation seed strength: 0.5," in info["infotexts"][1]
    assert "Tiling: True" in info["infotexts"][0]


def test_img2img_inpaints_inside_the_mask_only(server, api):
    url, _ = server
    source = Image.new("RGB", (64, 64), (200, 30, 30))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    images, info, parameters = generate(
        api,
        url,
        "img2img",
        init_images=[b64(source, data_uri=True)],
        mask=b64(mask),
        mask_blur=0,
        denoising_strength=0.9,
        inpainting_fill="latent noise",
        inpaint_full_res=False,
    )
    assert images[0].convert("RGB").getpixel((2, 2)) == (200, 30, 30)
    assert images[0].convert("RGB").getpixel((32, 32)) != (200, 30, 30)
    text = info["infotexts"][0]
    assert "Denoising strength: 0.9" in text and "Masked content: latent noise" in text and "Mask blur: 0" in text
    assert parameters["init_images"] is None and parameters["mask"] is None


def test_inpainting_with_separate_blurs_and_an_unrounded_mask(server, api):
    url, _ = server
    source = Image.new("RGB", (64, 64), (200, 30, 30))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    body = {"init_images": [b64(source)], "mask": b64(mask), "denoising_strength": 0.9, "inpaint_full_res": False}
    (even,), info, _ = generate(api, url, "img2img", **body, mask_blur_x=6, mask_blur_y=6)
    assert "Mask blur: 6" in info["infotexts"][0]
    (across,), info, _ = generate(api, url, "img2img", **body, mask_blur_x=6, mask_blur_y=0)
    assert "Mask blur" not in info["infotexts"][0], "A1111 writes it only when both are equal"
    pixels = np.asarray(across.convert("RGB"), dtype=np.int16)
    assert (pixels[10, 32] == (200, 30, 30)).all() and across.tobytes() != even.tobytes()  # no blur downwards
    (soft,), _, _ = generate(api, url, "img2img", **body, mask_blur=6, mask_round=False)
    assert soft.tobytes() != even.tobytes()


def test_img2img_noise_multiplier_per_job_and_as_a_setting(server, api):
    url, _ = server
    source = b64(Image.new("RGB", (64, 64), (40, 120, 200)))
    body = {"init_images": [source], "denoising_strength": 0.6, "seed": 8}
    (plain,), info, _ = generate(api, url, "img2img", **body)
    assert "Noise multiplier" not in info["infotexts"][0]
    (quieter,), info, _ = generate(api, url, "img2img", **body, initial_noise_multiplier=0.5)
    assert "Noise multiplier: 0.5" in info["infotexts"][0]
    assert np.abs(np.asarray(quieter, dtype=np.int16) - np.asarray(plain, dtype=np.int16)).mean() > 1
    assert api.get(f"{url}/options", timeout=10).json()["initial_noise_multiplier"] == 1.0, "for that job only"
    assert api.post(f"{url}/options", json={"initial_noise_multiplier": 0.5}, timeout=10).status_code == 200
    try:
        (as_setting,), info, _ = generate(api, url, "img2img", **body)
        (_txt,), txt_info, _ = generate(api, url, seed=8)
    finally:
        api.post(f"{url}/options", json={"initial_noise_multiplier": 1.0}, timeout=10)
    assert as_setting.tobytes() == quieter.tobytes() and "Noise multiplier: 0.5" in info["infotexts"][0]
    assert "Noise multiplier" not in txt_info["infotexts"][0], "txt2img starts from plain noise"
    response = post(api, url, "img2img", {**SMALL, **body, "initial_noise_multiplier": -1})
    assert response.status_code == 422 and "initial_noise_multiplier" in response.json()["errors"]


def test_sigma_churn_fields_set_the_settings_for_that_job_unless_neutral(server, api):
    url, _ = server
    neutral = {"sampler_name": "Euler", "steps": 4, "s_churn": 0, "s_tmin": 0, "s_tmax": 0, "s_noise": 1}
    (plain,), info, _ = generate(api, url, **neutral)  # what webuiapi sends every time
    assert "Sigma" not in info["infotexts"][0]
    (churned,), info, _ = generate(api, url, **{**neutral, "s_churn": 2.5})
    assert "Sigma churn: 2.5" in info["infotexts"][0] and churned.tobytes() != plain.tobytes()
    assert api.get(f"{url}/options", timeout=10).json()["s_churn"] == 0, "for that job only"


def test_eta_is_the_samplers_eta_for_that_job(server, api):
    url, _ = server
    (zero,), info, _ = generate(api, url, sampler_name="DDIM", eta=0)
    (one,), info_one, _ = generate(api, url, sampler_name="DDIM", eta=1.0)  # what webuiapi sends by default
    assert "Eta DDIM" not in info["infotexts"][0] and "Eta DDIM: 1," in info_one["infotexts"][0]
    assert zero.tobytes() != one.tobytes()
    (quiet,), info_quiet, _ = generate(api, url, sampler_name="Euler a", eta=0)  # as A1111's own API tests send
    (euler,), _, _ = generate(api, url, sampler_name="Euler")
    assert "Eta: 0," in info_quiet["infotexts"][0]
    assert np.abs(np.asarray(quiet, dtype=int) - np.asarray(euler, dtype=int)).max() <= 1, "no noise: Euler's steps"
    options = api.get(f"{url}/options", timeout=10).json()
    assert (options["eta_ddim"], options["eta_ancestral"]) == (0, 1), "for that job only"
    response = post(api, url, "txt2img", {**SMALL, "sampler_name": "DDIM", "eta": 1.5})
    assert response.status_code == 422 and "eta" in response.text


def test_every_listed_sampler_and_schedule_runs(server, api):
    url, _ = server
    for sampler in api.get(f"{url}/samplers", timeout=10).json():  # 3 steps: the fewest UniPC (order 3) takes
        (image,), info, _ = generate(api, url, sampler_name=sampler["name"], steps=3)
        assert f"Sampler: {sampler['name']}," in info["infotexts"][0] and image.size == (64, 64)
    for schedule in api.get(f"{url}/schedulers", timeout=10).json():  # with Euler, 1 step is enough
        (image,), info, _ = generate(api, url, sampler_name="Euler", scheduler=schedule["name"], steps=1)
        label = schedule["label"]
        assert label == "Automatic" or f"Schedule type: {label}," in info["infotexts"][0], info["infotexts"][0]
    response = post(api, url, "txt2img", {**SMALL, "override_settings": {"randn_source": "TPU"}})
    assert response.status_code == 422 and "GPU, CPU, NV" in response.text
    response = post(api, url, "txt2img", {**SMALL, "sampler_name": "UniPC", "steps": 2})
    assert response.status_code == 422 and "UniPC needs at least as many sampling steps as its order" in response.text


@pytest.mark.parametrize(
    "route, body, field",
    [
        ("txt2img", {"width": -64}, "width"),
        ("txt2img", {"steps": 151}, "steps"),
        ("txt2img", {"sampler_name": "Euler z"}, "sampler_name"),
        ("txt2img", {"scheduler": "wobbly"}, "scheduler"),
        ("txt2img", {"subseed_strength": 1.5}, "subseed_strength"),
        ("txt2img", {"script_name": "no such script"}, "script_name"),
        ("txt2img", {"override_settings": {"no_such_setting": 1}}, "override_settings"),
        ("txt2img", {"styles": ["Nope"]}, None),
        ("img2img", {"init_images": ["%%% not base64"]}, "init_images"),
        ("img2img", {"init_images": [base64.b64encode(b"not an image").decode()]}, "init_images"),
        ("extra-single-image", {"image": "", "upscaler_1": "Lanczos"}, "image"),
        ("png-info", {"image": "data:text/plain,hello"}, "image"),
    ],
)
def test_bad_input_is_422_in_a1111_shape(server, api, route, body, field):
    url, _ = server
    response = post(api, url, route, {**SMALL, **body} if route.endswith("2img") else body)
    assert response.status_code == 422, response.text
    error = response.json()
    assert set(error) == {"error", "detail", "body", "errors"}
    if field:
        assert any(item["loc"][1] == field for item in error["detail"]), error
        assert field in error["errors"]
    assert api.get(f"{url}/samplers", timeout=10).status_code == 200


def test_a_job_that_fails_late_answers_and_the_next_runs(server, api):
    url, _ = server
    response = post(api, url, "txt2img", {**SMALL, "restore_faces": True})  # GFPGAN weights are not there
    assert response.status_code == 422 and "GFPGAN" in response.json()["errors"]
    images, _, _ = generate(api, url)
    assert len(images) == 1


def _start(api, url: str, body: dict) -> tuple[threading.Thread, dict]:
    answer: dict = {}
    thread = threading.Thread(target=lambda: answer.update(response=post(api, url, "txt2img", {**SMALL, **body})))
    thread.start()
    return thread, answer


def _progress(api, url: str, **params) -> dict:
    return api.get(f"{url}/progress", params=params, timeout=10).json()


def test_progress_preview_and_interrupt(server, api):
    url, _ = server
    thread, answer = _start(api, url, {"steps": 150, "n_iter": 3})
    state = wait_for(lambda: (p := _progress(api, url)) and p["state"]["sampling_step"] >= 3 and p, 30, "steps")
    assert state["state"]["job"].startswith("txt2img") and state["state"]["job_count"] == 3
    assert 0 < state["progress"] < 1 and state["eta_relative"] > 0
    assert unb64(_progress(api, url)["current_image"]).size == (64, 64)
    assert _progress(api, url, skip_current_image="true")["current_image"] is None
    assert api.post(f"{url}/interrupt", timeout=10).json() == {}
    thread.join(60)
    info = json.loads(answer["response"].json()["info"])
    assert info["interrupted"] and len(info["infotexts"]) == 1
    idle = wait_for(lambda: (p := _progress(api, url)) and p["state"]["job"] == "" and p, 10, "the engine to idle")
    assert idle["progress"] == 0 and idle["current_image"] is None


def test_skip_ends_the_current_batch_only(server, api):
    url, _ = server
    thread, answer = _start(api, url, {"steps": 150, "n_iter": 2})
    wait_for(lambda: _progress(api, url)["state"]["sampling_step"] >= 3, 30, "steps")
    assert api.post(f"{url}/skip", timeout=10).json() == {}
    moved_on = wait_for(lambda: (p := _progress(api, url)["state"])["job_no"] == 1 and p, 30, "the second batch")
    assert moved_on["sampling_step"] < 140
    api.post(f"{url}/interrupt", timeout=10)
    thread.join(60)
    assert answer["response"].status_code == 200


def test_options_read_and_persist_with_a1111_keys(server, api):
    url, data = server
    options = api.get(f"{url}/options", timeout=10).json()
    for key in (
        "sd_model_checkpoint",
        "CLIP_stop_at_last_layers",
        "eta_noise_seed_delta",
        "samples_format",
        "outdir_txt2img_samples",
        "sd_vae",
    ):
        assert key in options, key
    assert api.post(f"{url}/options", json={"eta_noise_seed_delta": 31337}, timeout=10).status_code == 200
    assert json.loads((data / "config.json").read_text())["eta_noise_seed_delta"] == 31337
    assert api.get(f"{url}/options", timeout=10).json()["eta_noise_seed_delta"] == 31337
    assert api.post(f"{url}/options", json={**options, "eta_noise_seed_delta": 31337}, timeout=10).ok
    bad = api.post(f"{url}/options", json={"samples_format": "gif", "eta_noise_seed_delta": 1}, timeout=10)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "samples_format"]
    assert api.post(f"{url}/options", json={"no_such_setting": 1}, timeout=10).status_code == 422
    assert api.get(f"{url}/options", timeout=10).json()["eta_noise_seed_delta"] == 31337  # nothing half-applied


def test_cluster_lists_the_one_in_process_worker_and_counts_its_jobs(server, api):
    url, _ = server
    before = api.get(f"{url}/cluster", timeout=30).json()
    _, info, _ = generate(api, url)
    after = api.get(f"{url}/cluster", timeout=30).json()
    assert before["backend"] == after["backend"] == "in-process"
    (worker,) = after["workers"]
    assert (worker["name"], worker["node"], worker["device"]) == ("local", socket.gethostname(), "cpu")
    assert worker["loaded"] == [info["sd_model_hash"]] and worker["running"] is None
    assert worker["jobs_done"] == before["workers"][0]["jobs_done"] + 1
    assert worker["loads"] == before["workers"][0]["loads"] >= 1  # the same model did the job: nothing loaded
    assert "Worker:" not in info["infotexts"][0]  # only jobs run on Ray name their worker


def test_listing_routes(server, api):
    url, _ = server

    def get(route: str):
        response = api.get(f"{url}/{route}", timeout=30)
        assert response.status_code == 200, (route, response.text)
        return response.json()

    samplers = {s["name"]: s for s in get("samplers")}
    assert {"Euler a", "DPM++ 2M", "DDIM"} <= set(samplers)
    assert samplers["DPM++ 2M"]["options"] == {"scheduler": "karras"}
    schedulers = {s["name"]: s["label"] for s in get("schedulers")}
    assert schedulers["automatic"] == "Automatic" and schedulers["sgm_uniform"] == "SGM Uniform"
    assert [u["name"] for u in get("upscalers")][:3] == ["None", "Lanczos", "Nearest"]
    assert "Latent (bicubic antialiased)" in [m["name"] for m in get("latent-upscale-modes")]
    models = {m["model_name"]: m for m in get("sd-models")}
    assert set(models) == {"tiny", "other"} and models["tiny"]["title"].startswith("tiny.safetensors [")
    assert get("sd-vae") == []
    assert [(e["name"], e["enabled"], e["remote"]) for e in get("extensions")] == [("my-extension", True, None)]
    assert {f["name"] for f in get("face-restorers")} == {"GFPGAN", "CodeFormer"}
    assert get("prompt-styles") == [{"name": "Golden", "prompt": "{prompt}, golden hour", "negative_prompt": "fog"}]
    embeddings = get("embeddings")
    assert embeddings["loaded"]["mystyle"]["vectors"] == 2 and embeddings["skipped"]["wide"]["shape"] == 768
    assert [lora["name"] for lora in get("loras")] == ["tinylora"]
    assert "prompt matrix" in get("scripts")["txt2img"] and "loopback" in get("scripts")["img2img"]
    matrix = next(s for s in get("script-info") if s["name"] == "prompt matrix" and not s["is_img2img"])
    assert matrix["args"][2] == {
        "label": "Select prompt",
        "value": "positive",
        "minimum": None,
        "maximum": None,
        "step": None,
        "choices": ["positive", "negative"],
    }
    assert get("memory")["ram"]["total"] > 0
    flags = get("cmd-flags")
    assert flags["nowebui"] is True and flags["api_auth"] == "***"


def test_scripts_run_by_name(server, api):
    url, _ = server
    images, info, _ = generate(
        api, url, prompt="a house|red", script_name="Prompt Matrix", script_args=[False, False, "positive", "comma", 0]
    )
    assert len(images) == 3 and info["index_of_first_image"] == 1 and images[0].size != (64, 64)
    response = post(api, url, "txt2img", {**SMALL, "script_name": "prompt matrix", "script_args": [0] * 50})
    assert response.status_code == 422 and "takes 5 arguments" in response.json()["errors"]


def test_extras_routes_keep_the_source_parameters(server, api):
    url, _ = server
    source = Image.new("RGB", (32, 24), "navy")
    response = post(
        api,
        url,
        "extra-single-image",
        {"image": b64(source, text="a ship\nSteps: 5"), "upscaler_1": "Lanczos", "upscaling_resize": 2},
    )
    assert response.status_code == 200, response.text
    image = unb64(response.json()["image"])
    assert image.size == (64, 48) and image.info["parameters"] == "a ship\nSteps: 5"
    assert image.info["extras"] == "Postprocess upscale by: 2, Postprocess upscaler: Lanczos"
    assert "Postprocess upscaler: Lanczos" in response.json()["html_info"]
    batch = post(
        api,
        url,
        "extra-batch-images",
        {
            "imageList": [{"data": b64(source), "name": "a"}, {"data": b64(source, True), "name": "b"}],
            "upscaler_1": "Nearest",
            "resize_mode": 1,
            "upscaling_resize_w": 80,
            "upscaling_resize_h": 64,
        },
    )
    assert batch.status_code == 200, batch.text
    assert [unb64(i).size for i in batch.json()["images"]] == [(80, 64), (80, 64)]
    unknown = post(api, url, "extra-single-image", {"image": b64(source), "upscaler_1": "4x-Nothing"})
    assert unknown.status_code == 422 and "4x-Nothing" in unknown.json()["errors"]


def test_png_info_reads_parameters_and_other_chunks(server, api):
    url, _ = server
    images, info, _ = generate(api, url, seed=9)
    response = post(api, url, "png-info", {"image": b64(images[0], text=info["infotexts"][0])})
    answer = response.json()
    assert answer["info"] == info["infotexts"][0] and answer["parameters"]["Seed"] == "9"
    assert answer["parameters"]["Size-1"] == "64" and answer["items"] == {}


def test_checkpoint_routes(server, api):
    url, data = server
    shutil.copy(
        data / "models" / "Stable-diffusion" / "other.safetensors",
        data / "models" / "Stable-diffusion" / "third.safetensors",
    )
    assert "third" not in [m["model_name"] for m in api.get(f"{url}/sd-models", timeout=10).json()]
    assert api.post(f"{url}/refresh-checkpoints", timeout=10).status_code == 200
    assert "third" in [m["model_name"] for m in api.get(f"{url}/sd-models", timeout=10).json()]
    assert api.post(f"{url}/refresh-embeddings", timeout=10).status_code == 200
    assert api.post(f"{url}/refresh-loras", timeout=10).status_code == 200
    assert api.post(f"{url}/unload-checkpoint", timeout=30).status_code == 200
    response = post(api, url, "txt2img", SMALL)
    assert response.status_code == 422 and "No model is loaded" in response.json()["errors"]
    assert api.post(f"{url}/reload-checkpoint", timeout=60).status_code == 200
    _, info, _ = generate(api, url)
    assert info["sd_model_name"] == "tiny"


def test_api_auth_needs_the_right_credentials(server):
    url, _ = server
    anonymous = requests.get(f"{url}/samplers", timeout=10)
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"] == "Basic"
    assert requests.get(f"{url}/samplers", auth=("user", "word"), timeout=10).status_code == 401
    assert requests.post(f"{url}/txt2img", json=SMALL, auth=("nobody", "pass"), timeout=10).status_code == 401
    assert requests.get(f"{url}/samplers", auth=("second", "word"), timeout=10).status_code == 200


def test_openapi_schema_is_derived_from_generation_params(server):
    url, _ = server
    schema = requests.get(url.removesuffix("sdapi/v1") + "openapi.json", timeout=10).json()
    txt2img = schema["components"]["schemas"]["StableDiffusionTxt2ImgProcessingAPI"]["properties"]
    steps = next(option for option in txt2img["steps"]["anyOf"] if option["type"] == "integer")
    assert (steps["minimum"], steps["maximum"], txt2img["steps"]["title"]) == (1, 150, "Sampling steps")
    img2img = schema["components"]["schemas"]["StableDiffusionImg2ImgProcessingAPI"]["properties"]
    assert "0 = fill, 1 = original" in img2img["inpainting_fill"]["description"] and "enable_hr" not in img2img


def test_eight_clients_at_once_get_their_images_in_submission_order(server, api):
    url, data = server
    seeds = [10000 + 1000 * number for number in range(8)]
    answers: dict[int, requests.Response] = {}
    threads = []
    for number, seed in enumerate(seeds):
        # The first job runs until interrupted, so the others are all waiting in the queue meanwhile.
        body = {**SMALL, "seed": seed, "save_images": True, **({"steps": 150, "n_iter": 100} if number == 0 else {})}
        thread = threading.Thread(target=lambda s=seed, b=body: answers.update({s: post(api, url, "txt2img", b)}))
        thread.start()
        threads.append(thread)
        # The next client connects once this one's job is in the queue.
        wait_for(
            lambda n=number: (state := _progress(api, url)["state"])["job"] and state["queued"] == n,
            60,
            f"request {number} to be queued",
        )
    api.post(f"{url}/interrupt", timeout=10)
    for thread in threads:
        thread.join(120)
    assert [answers[seed].status_code for seed in seeds] == [200] * 8
    assert [json.loads(answers[seed].json()["info"])["all_seeds"][0] for seed in seeds] == seeds
    saved = sorted((data / "outputs" / "txt2img-images" / date.today().isoformat()).glob("*-1????-*.png"))
    order = [int(path.name.split("-")[1]) for path in saved]
    first = len([seed for seed in order if seed < 11000])  # the interrupted job's images
    assert first >= 1 and order == list(range(10000, 10000 + first)) + seeds[1:]  # in the queue's order


class Switch(scripts.Script):
    """An AlwaysVisible script with two controls, for the argument layout."""

    def title(self):
        return "Switch"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        return [gr.Checkbox(label="On", value=False), gr.Slider(label="Level", minimum=0, maximum=9, value=3)]


def test_alwayson_script_args_land_in_the_page_layout():
    runner = scripts.ScriptRunner(scripts.LoadedScripts(classes=[(Switch, "switch.py")]), False)
    controls = ScriptControls()
    assert controls.args_for(runner, None, [], {}) == [0, False, 3]
    assert controls.args_for(runner, None, [], {"switch": {"args": [True]}}) == [0, True, 3]
    with pytest.raises(RequestError, match="no always-on script named 'Other'"):
        controls.args_for(runner, None, [], {"Other": {"args": []}})
    with pytest.raises(RequestError, match="takes 2 arguments"):
        controls.args_for(runner, None, [], {"Switch": {"args": [1, 2, 3]}})
