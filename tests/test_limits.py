"""Request limits (modules/core/limits.py): each is a setting, and a request over one is refused with a message
naming that setting before any work, in the engine, on the page and in the API (422, A1111's error shape)."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import re

import pytest
import requests
from app_process import endpoint_args, running_app
from PIL import Image

from modules.core.limits import Limits
from modules.errors import UserError
from modules.jobs.generation import ImagePlan, RunSettings, Txt2Img
from modules.jobs.generation_params import GenerationParams
from modules.options import OPTIONS, Options

SMALL = {"prompt": "a red house", "steps": 2, "width": 64, "height": 64, "seed": 5, "sampler_name": "Euler"}
# The limits the app below runs with.
LOW = {
    "max_pixels": 96 * 96,
    "max_batch_images": 3,
    "max_steps": 4,
    "max_prompt_length": 200,
    "max_upload_bytes": 20_000,
    "max_prompt_chunks": 4,
    "max_input_images": 2,
}

# (generation values over a LOW limit, the setting whose label the message names)
OVER = [
    ({"width": 128, "height": 128}, "max_pixels"),
    ({"batch_size": 2, "n_iter": 2}, "max_batch_images"),
    ({"steps": 5}, "max_steps"),
    ({"prompt": "x" * 201}, "max_prompt_length"),
    ({"negative_prompt": "y" * 201}, "max_prompt_length"),
]


def test_every_limit_is_a_declared_setting_with_a_sane_default():
    limits = Limits()
    for name in (
        "max_pixels",
        "max_batch_images",
        "max_steps",
        "max_prompt_length",
        "max_upload_bytes",
        "max_prompt_chunks",
        "max_grid_cells",
        "img_max_size_mp",
        "max_input_images",
    ):
        info = OPTIONS[name]
        assert info.section == "System" and info.limit and getattr(limits, name) == info.default
    assert 512 * 512 < limits.max_pixels and 8 <= limits.max_batch_images and 150 <= limits.max_steps
    assert 10_000 <= limits.max_prompt_length and 10 * 2**20 <= limits.max_upload_bytes
    assert 8 <= limits.max_prompt_chunks and 100 <= limits.max_grid_cells and 4 <= limits.max_input_images


def test_limits_are_read_from_the_settings(tmp_path):
    opts = Options(tmp_path / "config.json")
    opts.set("max_steps", 7)
    assert Limits.from_options(opts).max_steps == 7
    with opts.overridden({"max_steps": 5}):
        assert Limits.from_options(opts).max_steps == 5
    with pytest.raises(ValueError, match="can't be raised for one job"):
        with opts.overridden({"max_steps": 9}):
            pass
    with pytest.raises(ValueError, match="at most 1000"):
        opts.set("max_steps", 5000)


@pytest.mark.parametrize("values,setting", OVER)
def test_each_limit_refuses_with_the_setting_named(values, setting):
    params = GenerationParams.from_dict({**SMALL, **values})
    with pytest.raises(UserError, match=f"more than the limit .*{re.escape(OPTIONS[setting].label)}"):
        Limits(**LOW).check_generation(params)
    Limits().check_generation(params)  # the defaults allow it


def test_limits_allow_exactly_the_limit():
    at_limit = GenerationParams.from_dict(
        {
            **SMALL,
            "width": 96,
            "height": 96,
            "batch_size": 3,
            "steps": 4,
            "prompt": "p" * 200,
            "hr_second_pass_steps": 4,
        }
    )
    Limits(**LOW).check_generation(at_limit)
    Limits(**LOW).check_upload(20_000, "image")
    with pytest.raises(UserError, match="image is 20,001 bytes, more than the limit of 20,000"):
        Limits(**LOW).check_upload(20_001, "image")
    with pytest.raises(UserError, match="Hires steps 5"):
        Limits(**LOW).check_generation(GenerationParams.from_dict({**SMALL, "hr_second_pass_steps": 5}))


def test_the_engine_refuses_before_the_unet_runs(engine, demo_model):
    calls = []
    handle = demo_model.unet.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        params = GenerationParams.from_dict({**SMALL, "steps": 5})
        job = lambda ctx: Txt2Img(demo_model, params, ctx, RunSettings(limits=Limits(**LOW))).run()  # noqa: E731
        with pytest.raises(UserError, match="Sampling steps 5 is more than the limit of 4"):
            engine.call("txt2img", job, timeout=120)
    finally:
        handle.remove()
    assert calls == []


def test_prompt_chunks_are_and_parts_times_the_longest_text_or_every_text_encoded(demo_model):
    def count(text: str) -> int:
        return demo_model.prompt_encoder.chunk_count(text)

    padded = ["a BREAK b AND c"]  # 2 AND parts, the longest 2 chunks: each image's conditioning is 2 × 2 wide
    Limits(max_prompt_chunks=4).check_prompt_chunks(padded, [""], 20, count)
    with pytest.raises(
        UserError,
        match=r"needs at least 4 chunks .*: 2 AND part\(s\), each padded to the longest "
        r"text's at least 2 chunk\(s\)",
    ):
        Limits(max_prompt_chunks=3).check_prompt_chunks(padded, [""], 20, count)
    with pytest.raises(UserError, match=r"needs at least 3 chunks .*the longest text's at least 3 chunk"):
        Limits(max_prompt_chunks=2).check_prompt_chunks(["a"], ["x BREAK y BREAK z"], 20, count)  # the negative
    scheduled = ["[a:b:2] [c|d]"]  # four texts over 4 steps, each encoded: a c, a d, b c, b d (and the negative)
    Limits(max_prompt_chunks=5).check_prompt_chunks(scheduled, [""], 4, count)
    with pytest.raises(UserError, match=r"at least 5 chunk\(s\) to encode"):
        Limits(max_prompt_chunks=4).check_prompt_chunks(scheduled, [""], 4, count)
    tokenized = []
    with pytest.raises(UserError, match="at least 301 chunks"):  # more parts than the limit: nothing tokenized
        Limits().check_prompt_chunks(["BREAK " * 300 + "a" + " AND a" * 300], [""], 20, tokenized.append)
    assert tokenized == []


def test_the_worker_refuses_a_scripts_prompts_before_the_text_encoder_runs(engine, demo_model):
    calls = []
    handle = demo_model.text_encoders[0].register_forward_pre_hook(lambda *_: calls.append(1))
    try:

        def job(ctx):
            txt2img = Txt2Img(
                demo_model, GenerationParams.from_dict(SMALL), ctx, RunSettings(limits=Limits(max_prompt_chunks=3))
            )
            txt2img.plan = ImagePlan(["a BREAK b BREAK c BREAK d"], [""], [5])  # as a script would set it
            return txt2img.run()

        with pytest.raises(UserError, match=r"The prompt needs 5 chunks"):  # 4, and the negative prompt's 1
            engine.call("txt2img", job, timeout=120)
    finally:
        handle.remove()
    assert calls == []


# ---- Through a real app: the page and the API ------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory, demo_checkpoint):
    data = tmp_path_factory.mktemp("data")
    ckpts = data / "models" / "Stable-diffusion"
    ckpts.mkdir(parents=True)
    (ckpts / demo_checkpoint.name).write_bytes(demo_checkpoint.read_bytes())
    (data / "config.json").write_text(json.dumps(LOW))
    with running_app(data, "--api", model_name=demo_checkpoint.name) as url:
        yield url


def png_bytes(size: tuple[int, int], noisy: bool = False) -> bytes:
    image = Image.effect_noise(size, 64).convert("RGB") if noisy else Image.new("RGB", size, "teal")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def assert_refused(response: requests.Response, setting: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert set(body) == {"error", "detail", "body", "errors"}
    assert "more than the limit" in body["errors"] and OPTIONS[setting].label in body["errors"]


@pytest.mark.parametrize("values,setting", OVER)
def test_api_generation_over_a_limit_is_a_422(server, values, setting):
    for route, extra in (("txt2img", {}), ("img2img", {"init_images": [b64(png_bytes((64, 64)))]})):
        response = requests.post(f"{server}sdapi/v1/{route}", json={**SMALL, **extra, **values}, timeout=60)
        assert_refused(response, setting)


def test_api_uploads_over_the_limit_are_a_422(server):
    big = b64(png_bytes((128, 128), noisy=True))
    assert len(base64.b64decode(big)) > LOW["max_upload_bytes"]
    api = f"{server}sdapi/v1"
    assert_refused(
        requests.post(f"{api}/img2img", json={**SMALL, "init_images": [big]}, timeout=60), "max_upload_bytes"
    )
    assert_refused(
        requests.post(
            f"{api}/img2img", json={**SMALL, "init_images": [b64(png_bytes((64, 64)))], "mask": big}, timeout=60
        ),
        "max_upload_bytes",
    )
    assert_refused(requests.post(f"{api}/extra-single-image", json={"image": big}, timeout=60), "max_upload_bytes")
    batch = {"imageList": [{"data": big, "name": "big.png"}]}
    assert_refused(requests.post(f"{api}/extra-batch-images", json=batch, timeout=60), "max_upload_bytes")
    assert_refused(requests.post(f"{api}/png-info", json={"image": big}, timeout=60), "max_upload_bytes")


def test_api_requests_within_the_limits_still_work(server):
    response = requests.post(
        f"{server}sdapi/v1/txt2img", json={**SMALL, "steps": 4, "batch_size": 3, "width": 96, "height": 96}, timeout=300
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["images"]) == 3


def test_page_uploads_over_the_limit_are_refused(server):
    small = requests.post(f"{server}gradio_api/upload", files={"files": ("a.png", png_bytes((16, 16)))}, timeout=30)
    assert small.status_code == 200, small.text
    big = requests.post(
        f"{server}gradio_api/upload", files={"files": ("b.png", png_bytes((128, 128), True))}, timeout=30
    )
    assert big.status_code == 413 and "File size exceeded" in big.text


def test_page_generation_over_a_limit_shows_the_message(server):
    from gradio_client import Client

    client = Client(server, verbose=False)
    values = {"Sampling method": "Euler", "Width": 64, "Height": 64, "Sampling steps": 5}
    with pytest.raises(Exception, match=r"Sampling steps 5 is more than the limit of 4 \(setting: Most sampling"):
        client.predict(*endpoint_args(client, "/txt2img", values), api_name="/txt2img")
    with pytest.raises(Exception, match="Prompt is 201 characters long"):
        client.predict(
            *endpoint_args(client, "/txt2img", {**values, "Sampling steps": 2, "Prompt": "z" * 201}),
            api_name="/txt2img",
        )
    with pytest.raises(Exception, match=r"The prompt needs 6 chunks .*Most 75-token prompt chunks"):  # and the negative
        client.predict(
            *endpoint_args(
                client, "/txt2img", {**values, "Sampling steps": 2, "Prompt": "a BREAK b BREAK c BREAK d BREAK e"}
            ),
            api_name="/txt2img",
        )
    gallery, *_ = client.predict(
        *endpoint_args(client, "/txt2img", {**values, "Sampling steps": 2}), api_name="/txt2img"
    )
    assert len(gallery) == 1


def test_page_batch_process_takes_at_most_max_input_images(server, tmp_path):
    from gradio_client import Client, handle_file

    from modules.extras import ExtrasParams

    files = []
    for number in range(3):
        Image.new("RGB", (16, 16), "teal").save(tmp_path / f"{number}.png")
        files.append(handle_file(str(tmp_path / f"{number}.png")))
    client = Client(server, verbose=False)

    def extras(batch: list) -> tuple:
        return client.predict(
            1, None, batch, "", "", True, *dataclasses.asdict(ExtrasParams()).values(), api_name="/extras"
        )

    with pytest.raises(Exception, match=r"Batch Process holds 3 images, more than the limit of 2 \(setting: Most"):
        extras(files)
    gallery, _ = extras(files[:2])
    assert len(gallery) == 2


def test_the_token_counter_skips_prompts_over_the_limit(server):
    from gradio_client import Client

    client = Client(server, verbose=False)
    assert client.predict("a cat", 20, api_name="/txt2img_prompt_tokens") == "2/75"
    # Over 200 characters: not counted (tokenizing every step's text of a huge prompt is slow).
    assert client.predict("z " * 101, 20, api_name="/txt2img_prompt_tokens") == ""


def test_api_images_are_refused_or_normalized_with_a_clear_answer(server):
    api = f"{server}sdapi/v1"
    huge = io.BytesIO()
    Image.new("1", (9_500, 9_500)).save(huge, "PNG")  # 11 kB, under the upload limit, 90 million pixels
    response = requests.post(f"{api}/extra-single-image", json={"image": b64(huge.getvalue())}, timeout=60)
    assert response.status_code == 422 and "decompression bomb" in response.json()["errors"]
    whole = png_bytes((64, 64), noisy=True)
    response = requests.post(
        f"{api}/img2img", json={**SMALL, "init_images": [b64(whole[: len(whole) // 2])]}, timeout=60
    )
    assert response.status_code == 422 and "damaged" in response.json()["errors"]
    cmyk = io.BytesIO()
    Image.new("CMYK", (32, 32), (0, 255, 255, 0)).save(cmyk, "JPEG")
    response = requests.post(
        f"{api}/extra-single-image",
        timeout=60,
        json={"image": b64(cmyk.getvalue()), "upscaler_1": "Lanczos", "upscaling_resize": 2},
    )
    assert response.status_code == 200, response.text
    result = Image.open(io.BytesIO(base64.b64decode(response.json()["image"])))
    assert result.mode == "RGB" and result.size == (64, 64) and result.getpixel((5, 5))[0] > 200
