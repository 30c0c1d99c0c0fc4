"""Work bounded before it is done (issue 18): a prompt's AND parts × chunks, a script's plan (prompt matrix,
X/Y/Z ranges, cells and grid, Loopback loops, prompt lines), the API's input images and an Extras result are
refused with the setting named before the work, or the memory it would take, is spent; interrupt ends a
script between two images. In process: Services with the built-in scripts on the demo model (the page's
path), and the API app on the same Services through FastAPI's TestClient."""

from __future__ import annotations

import base64
import io
import re
import time

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from script_services import SMALL, script_args, services_with_scripts

from modules import script_callbacks
from modules.errors import UserError
from modules.extras import ExtrasParams
from modules.jobs.generation_params import GenerationParams
from modules.options import OPTIONS
from modules.processing import StableDiffusionProcessingTxt2Img

API = "/sdapi/v1"
# The review's prompt: 3.6k characters, 301 AND parts, the first 301 chunks long, each part padded to it.
AND_BREAK = "BREAK " * 300 + "a" + " AND a" * 300
# 30 variable parts: 2^30 prompts.
MATRIX_30 = "a house|" + "|".join(f"detail {number}" for number in range(30))
BILLION = "1-1000000000 [1000000000]"


@pytest.fixture(scope="module")
def services(tmp_path_factory, demo_checkpoint):
    made = services_with_scripts(tmp_path_factory.mktemp("data"), demo_checkpoint, [])
    yield made
    made.engine.shutdown()


@pytest.fixture(scope="module")
def api(services) -> TestClient:
    from modules.api.web_server import create_app

    return TestClient(create_app(services, []))


def png(image: Image.Image, cut_after: int | None = None) -> str:
    """Base64 PNG of `image`; with `cut_after`, only its first bytes: the header is whole, the pixels are not."""
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()[:cut_after]).decode()


def refused(response, setting: str, field: str | None = None) -> str:
    """The 422's message, which must name `setting` (and, as a RequestError, the request's `field`)."""
    assert response.status_code == 422, response.text
    body = response.json()
    assert OPTIONS[setting].label in body["errors"], body["errors"]
    if field is not None:
        assert body["detail"][0]["loc"] == ["body", *field.split(".")], body["detail"]
    return body["errors"]


def params(**values) -> GenerationParams:
    return GenerationParams(**{**SMALL, **values})


def setting(key: str) -> str:
    return re.escape(OPTIONS[key].label)


def test_and_break_prompt_is_refused_when_submitted(services, api):
    with pytest.raises(UserError, match=f"The prompt needs at least 301 chunks .*{setting('max_prompt_chunks')}"):
        services.jobs.txt2img(params(prompt=AND_BREAK, steps=1))  # the page's path: refused, not queued
    message = refused(api.post(f"{API}/txt2img", json={**SMALL, "prompt": AND_BREAK, "steps": 1}), "max_prompt_chunks")
    assert ": 301 AND part(s)" in message
    long_negative = {**SMALL, "negative_prompt": "ugly BREAK " * 120}
    assert "the longest text's at least 120 chunk(s)" in refused(
        api.post(f"{API}/txt2img", json=long_negative), "max_prompt_chunks"
    )
    with_hires = {**SMALL, "enable_hr": True, "hr_upscaler": "Latent", "hr_prompt": AND_BREAK}
    assert "The hires prompt needs" in refused(api.post(f"{API}/txt2img", json=with_hires), "max_prompt_chunks")


def test_prompt_matrix_of_30_parts_is_refused_before_any_prompt_is_built(services, api):
    with pytest.raises(
        UserError, match=f"30 variable parts would make 1,073,741,824 images.*{setting('max_grid_cells')}"
    ):
        services.jobs.txt2img(params(prompt=MATRIX_30), script_args(services, "Prompt matrix", {}))
    body = {**SMALL, "prompt": MATRIX_30, "script_name": "prompt matrix"}
    refused(api.post(f"{API}/txt2img", json=body), "max_grid_cells")
    # 7 parts make 128 images: within max_grid_cells, but one job of 128 images is over max_batch_images
    refused(api.post(f"{API}/txt2img", json={**body, "prompt": "a|b|c|d|e|f|g|h"}), "max_batch_images")
    script = services.scripts.runners["txt2img"].selectable[
        services.scripts.runners["txt2img"].script_by_title("Prompt matrix") - 1
    ]
    with pytest.raises(UserError, match="1,073,741,824 images"):  # run() called directly checks too
        script.run(
            StableDiffusionProcessingTxt2Img.from_params(params(prompt=MATRIX_30)), False, False, "positive", "comma", 0
        )


def test_xyz_ranges_are_counted_before_they_are_expanded(services, api):
    for text, count in (
        (BILLION, "1,000,000,000"),
        ("1-1000000000", "1,000,000,000"),
        ("1-5, 10-2000000 (+2)", "1,000,001"),
    ):
        with pytest.raises(UserError, match=f"Steps values up to the range .* would make {count} images"):
            services.jobs.txt2img(params(), script_args(services, "X/Y/Z plot", {"X type": "Steps", "X values": text}))
    body = {**SMALL, "script_name": "x/y/z plot", "script_args": [3, "0.0-1000000.0 (+0.001)"]}  # CFG Scale
    assert "would make 1,000,000,001 images" in refused(api.post(f"{API}/txt2img", json=body), "max_grid_cells")
    refused(api.post(f"{API}/txt2img", json={**body, "script_args": [2, BILLION]}), "max_grid_cells")


def test_xyz_cells_values_and_grid_size_are_checked_before_the_first_image(api):
    body = {**SMALL, "script_name": "x/y/z plot", "override_settings": {"max_grid_cells": 5}}
    message = refused(api.post(f"{API}/txt2img", json={**body, "script_args": [1, "1-3", 2, "2-3"]}), "max_grid_cells")
    assert "X/Y/Z plot: 3 × 2 × 1 cells would make 6 images, more than the limit of 5" in message
    message = refused(
        api.post(f"{API}/txt2img", json={**body, "batch_size": 3, "script_args": [1, "1-2"]}), "max_grid_cells"
    )
    assert "2 × 1 × 1 cells of 3 images each would make 6 images" in message
    grid = {
        **SMALL,
        "width": 512,
        "height": 512,
        "script_name": "x/y/z plot",
        "script_args": [1, "1-4"],
        "override_settings": {"img_max_size_mp": 1},
    }
    assert "4 images of 512x512 make a grid of 2 megapixels" in refused(
        api.post(f"{API}/txt2img", json=grid), "img_max_size_mp"
    )
    steps = {**SMALL, "script_name": "x/y/z plot", "script_args": [2, "2, 151"]}
    assert "Sampling steps 151" in refused(api.post(f"{API}/txt2img", json=steps), "max_steps")
    within = api.post(f"{API}/txt2img", json={**body, "script_args": [1, "1-2", 2, "1-2"]})
    assert within.status_code == 200, within.text
    assert len(within.json()["images"]) == 1  # the grid


def test_loopback_and_prompt_lines_are_bounded(api):
    image = png(Image.new("RGB", (64, 64), "teal"))
    loopback = {
        **SMALL,
        "init_images": [image],
        "script_name": "loopback",
        "n_iter": 3,
        "override_settings": {"max_grid_cells": 10},
    }
    message = refused(
        api.post(f"{API}/img2img", json={**loopback, "script_args": [4, 0.5, "Linear"]}), "max_grid_cells"
    )
    assert "Loopback: 4 loops × batch count 3 would make 12 images" in message
    lines = {**SMALL, "script_name": "prompts from file or textbox", "override_settings": {"max_grid_cells": 10}}
    text = "\n".join(f"line {number}" for number in range(11))
    assert "11 lines would make 11 images" in refused(
        api.post(f"{API}/txt2img", json={**lines, "script_args": [False, False, "start", text]}), "max_grid_cells"
    )
    message = refused(
        api.post(f"{API}/txt2img", json={**lines, "script_args": [False, False, "start", "a cat\n--steps 500"]}),
        "max_steps",
    )
    assert "line 2: Sampling steps 500" in message


def test_sd_upscale_and_outpainting_sizes_are_checked_before_the_first_image(api):
    image = png(Image.new("RGB", (64, 64), "teal"))
    small_images = {**SMALL, "init_images": [image], "override_settings": {"max_pixels": 100 * 100}}
    upscale = {**small_images, "script_name": "sd upscale"}
    message = refused(api.post(f"{API}/img2img", json={**upscale, "script_args": [None, 0, 0, 2]}), "max_pixels")
    assert "SD upscale: the upscaled image: 128x128" in message
    tiles = {**SMALL, "init_images": [image], "script_name": "sd upscale", "script_args": [None, 64, 0, 2]}
    message = refused(api.post(f"{API}/img2img", json=tiles), "max_grid_cells")  # 63 pixels of each 64 overlap
    assert "65 × 65 tiles of 64x64 would make 4,225 images" in message
    outpainting = {**small_images, "script_name": "outpainting mk2", "script_args": [None, 256]}
    message = refused(api.post(f"{API}/img2img", json=outpainting), "max_pixels")
    assert "Outpainting mk2: the grown canvas: 576x576" in message


def test_script_arguments_from_the_api_must_fit_their_controls(api):
    image = png(Image.new("RGB", (64, 64), "teal"))
    loopback = {**SMALL, "init_images": [image], "script_name": "loopback"}
    response = api.post(f"{API}/img2img", json={**loopback, "script_args": [100000, 0.5, "Linear"]})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "script_args[0]"]
    assert "Loopback's 'Loops' must be from 1 to 32, got 100000" in response.json()["errors"]
    response = api.post(f"{API}/img2img", json={**loopback, "script_args": [2, 0.5, "Wobbly"]})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "script_args[2]"]
    assert (
        "'Denoising strength curve' must be one of 'Aggressive', 'Linear', 'Subtle', got 'Wobbly'"
        in response.json()["errors"]
    )
    xyz = {**SMALL, "script_name": "x/y/z plot"}
    response = api.post(f"{API}/txt2img", json={**xyz, "script_args": [99, "1-2"]})
    assert response.status_code == 422 and "'X type' must be one of 'Nothing', 'Seed'" in response.json()["errors"]
    response = api.post(f"{API}/txt2img", json={**xyz, "script_args": [1, "1-2", 0, "", 0, "", "yes"]})
    assert response.status_code == 422 and "'Draw legend' must be true or false" in response.json()["errors"]
    within = api.post(f"{API}/img2img", json={**loopback, "script_args": [2, 0.5, "Subtle"]})
    assert within.status_code == 200, within.text
    assert len(within.json()["images"]) == 3  # the loops' strip, then each loop's image


def test_more_input_images_than_the_limit_are_refused_before_any_is_decoded(api):
    damaged = png(Image.new("RGB", (64, 64), "teal"), cut_after=60)  # decoding it would say "damaged"
    limit = OPTIONS["max_input_images"].default
    response = api.post(f"{API}/img2img", json={**SMALL, "init_images": [damaged] * (limit + 1)})
    message = refused(response, "max_input_images", "init_images")
    assert f"init_images holds {limit + 1} images" in message and "damaged" not in message
    batch = {"imageList": [{"data": damaged, "name": f"{number}.png"} for number in range(limit + 1)]}
    refused(api.post(f"{API}/extra-batch-images", json=batch), "max_input_images", "imageList")


def test_image_sizes_come_from_the_headers_before_decoding(api):
    # The review's four 9000x9000 PNGs, each cut short after its header: refused on the sizes alone, so
    # nothing was decoded (decoding would have found them damaged).
    huge = png(Image.new("1", (9000, 9000)), cut_after=200)
    response = api.post(f"{API}/img2img", json={**SMALL, "init_images": [huge] * 4})
    message = refused(response, "max_input_images")
    assert "hold 324,000,000 pixels together" in message and OPTIONS["max_pixels"].label in message
    assert "damaged" not in message
    one_photo = png(Image.new("RGB", (3000, 3000), "teal"))  # one large photo still comes in
    response = api.post(f"{API}/img2img", json={**SMALL, "init_images": [one_photo]})
    assert response.status_code == 200, response.text


def test_extras_results_are_within_max_pixels_without_an_upscaler_too(services, api, tmp_path):
    side = 2100  # 4.41 million pixels: over the default max_pixels (2048 x 2048) with nothing upscaled
    big = Image.new("RGB", (side, side), "teal")
    message = refused(api.post(f"{API}/extra-single-image", json={"image": png(big)}), "max_pixels")
    assert f"The result would be {side}x{side}" in message
    cut = {"imageList": [{"data": png(big, cut_after=200), "name": "big.png"}]}  # refused on its header
    message = refused(api.post(f"{API}/extra-batch-images", json=cut), "max_pixels")
    assert message.startswith("big.png: The result would be") and "damaged" not in message
    small = api.post(f"{API}/extra-single-image", json={"image": png(Image.new("RGB", (64, 64)))})
    assert small.status_code == 200, small.text
    # Batch Process and Batch from Directory: files, each checked on its header and skipped when too large
    big.save(tmp_path / "big.png")
    Image.new("RGB", (32, 32), "teal").save(tmp_path / "small.png")
    result = services.jobs.extras(
        ExtrasParams(), [tmp_path / "big.png", tmp_path / "small.png"], tmp_path / "out"
    ).result()
    assert [image.size for image in result.images] == [(32, 32)]
    assert result.warnings[0].startswith(f"Skipped big: The result would be {side}x{side}")


@pytest.mark.parametrize(
    "title,values,most",
    [
        ("X/Y/Z plot", {"X type": "Seed", "X values": "1-40", "Include Sub Images": True}, 3),  # the grid, 2 cells
        ("Prompts from file or textbox", {"List of prompt inputs": "\n".join(f"line {n}" for n in range(40))}, 2),
    ],
)
def test_interrupt_ends_a_script_between_two_images(services, title, values, most):
    saved: list[str] = []

    def interrupt_after_two(saving) -> None:
        saved.append(saving.filename)
        if len(saved) == 2:
            services.engine.interrupt()

    script_callbacks.on_image_saved(interrupt_after_two)
    try:
        start = time.monotonic()
        result = services.jobs.txt2img(params(), script_args(services, title, values)).result(timeout=120)
        elapsed = time.monotonic() - start
    finally:
        script_callbacks.clear()
    assert result.interrupted  # the page and the API say the job was cut short
    assert 1 <= len(result.images) <= most, len(result.images)
    assert len(saved) <= 3, saved  # two images, and X/Y/Z's grid of them: nothing started after the interrupt
    assert elapsed < 60
