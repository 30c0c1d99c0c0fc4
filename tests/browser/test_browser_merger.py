"""The Checkpoint Merger tab in the browser: merge two demo checkpoints, pick the result at the top of the page
and generate with it; a second merge under the same name is refused on the page."""

import re

import pytest
import torch
from app_process import running_app, with_demo_checkpoint
from page_controls import pick, set_number
from playwright.sync_api import expect
from safetensors.torch import load_file, save_file


@pytest.fixture(scope="module")
def app_data(tmp_path_factory, demo_checkpoint):
    data = tmp_path_factory.mktemp("merger-browser-data")
    with_demo_checkpoint(data, demo_checkpoint)
    generator = torch.Generator().manual_seed(1)
    other = {
        key: value + torch.randn(value.shape, generator=generator) * 0.1
        for key, value in load_file(demo_checkpoint).items()
    }
    save_file(other, str(data / "models" / "Stable-diffusion" / "other.safetensors"))
    return data


@pytest.fixture(scope="module")
def app_url(app_data):
    with running_app(app_data, model_name="demo.safetensors") as url:
        yield url


def test_merge_two_checkpoints_then_generate_with_the_result(page, app_data):
    page.click("#tabs button[role=tab]:has-text('Checkpoint Merger')")
    pick(page, "modelmerger_primary_model_name", "demo.safetensors")
    pick(page, "modelmerger_secondary_model_name", "other.safetensors")
    page.fill("#modelmerger_custom_name textarea", "merged")
    page.click("#modelmerger_merge")
    saved = app_data / "models" / "Stable-diffusion" / "merged.safetensors"
    expect(page.locator("#modelmerger_result")).to_contain_text(f"Checkpoint saved to {saved}", timeout=60000)
    written = saved.stat().st_mtime_ns
    page.click("#modelmerger_merge")  # the same name again: refused, the first result stays
    expect(page.locator("#modelmerger_result")).to_contain_text("merged.safetensors already exists", timeout=60000)
    assert saved.stat().st_mtime_ns == written

    pick(page, "setting_sd_model_checkpoint", "merged.safetensors")
    expect(page.locator("#setting_sd_model_checkpoint input")).to_have_value(
        re.compile(r"^merged\.safetensors \[[0-9a-f]{10}\]$"), timeout=60000
    )
    short_hash = page.locator("#setting_sd_model_checkpoint input").input_value()[-11:-1]
    page.click("#tabs button[role=tab]:has-text('txt2img')")
    for elem_id, value in (("txt2img_steps", 2), ("txt2img_width", 64), ("txt2img_height", 64)):
        set_number(page, elem_id, value)
    page.fill("#txt2img_prompt textarea", "a red barn")
    page.click("#txt2img_generate")
    info = page.locator("#html_info_txt2img")
    expect(info).to_contain_text("Model: merged", timeout=60000)
    expect(info).to_contain_text(f"Model hash: {short_hash}")
