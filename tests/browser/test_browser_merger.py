"""The Checkpoint Merger tab in the browser: merge two demo checkpoints, pick the result at the top of the page
and generate with it; a second merge under the same name is refused on the page."""

import re

import pytest
import torch
from app_process import wait_for
from page_controls import load_checkpoint, options_of, pick, set_number
from page_data import removed_after, unique
from playwright.sync_api import expect
from safetensors.torch import load_file, save_file

OTHER, MERGED = unique("other"), unique("merged")


@pytest.fixture(scope="module")
def checkpoints(page_app, demo_checkpoint):
    """The shared page server's checkpoint folder with another checkpoint (the demo's weights moved a little);
    it and the merge's result are removed when the module is done."""
    folder = page_app[1] / "models" / "Stable-diffusion"
    generator = torch.Generator().manual_seed(1)
    other = {
        key: value + torch.randn(value.shape, generator=generator) * 0.1
        for key, value in load_file(demo_checkpoint).items()
    }
    with removed_after(folder / f"{OTHER}.safetensors", folder / f"{MERGED}.safetensors"):
        save_file(other, str(folder / f"{OTHER}.safetensors"))
        yield folder


@pytest.fixture
def demo_loaded_after(page):
    """The shared server's model is the demo again after the test (it loads the merged checkpoint)."""
    yield
    load_checkpoint(page, "demo.safetensors")


def test_merge_two_checkpoints_then_generate_with_the_result(page, checkpoints, demo_loaded_after):
    page.click("#tabs button[role=tab]:has-text('Checkpoint Merger')")
    page.click("#refresh_checkpoint_B")  # the page's 🔄 lists the checkpoint added while the server runs
    wait_for(lambda: any(OTHER in text for text in options_of(page, "modelmerger_secondary_model_name")), 30, OTHER)
    pick(page, "modelmerger_primary_model_name", "demo.safetensors")
    pick(page, "modelmerger_secondary_model_name", f"{OTHER}.safetensors")
    page.fill("#modelmerger_custom_name textarea", MERGED)
    page.click("#modelmerger_merge")
    saved = checkpoints / f"{MERGED}.safetensors"
    expect(page.locator("#modelmerger_result")).to_contain_text(f"Checkpoint saved to {saved}", timeout=60000)
    written = saved.stat().st_mtime_ns
    page.click("#modelmerger_merge")  # the same name again: refused, the first result stays
    expect(page.locator("#modelmerger_result")).to_contain_text(f"{MERGED}.safetensors already exists", timeout=60000)
    assert saved.stat().st_mtime_ns == written

    pick(page, "setting_sd_model_checkpoint", f"{MERGED}.safetensors")
    expect(page.locator("#setting_sd_model_checkpoint input")).to_have_value(
        re.compile(rf"^{MERGED}\.safetensors \[[0-9a-f]{{10}}\]$"), timeout=60000
    )
    short_hash = page.locator("#setting_sd_model_checkpoint input").input_value()[-11:-1]
    page.click("#tabs button[role=tab]:has-text('txt2img')")
    for elem_id, value in (("txt2img_steps", 2), ("txt2img_width", 64), ("txt2img_height", 64)):
        set_number(page, elem_id, value)
    page.fill("#txt2img_prompt textarea", "a red barn")
    page.click("#txt2img_generate")
    info = page.locator("#html_info_txt2img")
    expect(info).to_contain_text(f"Model: {MERGED}", timeout=60000)
    expect(info).to_contain_text(f"Model hash: {short_hash}")
