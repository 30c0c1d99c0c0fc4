"""PNG Info in the browser: drop a PNG with parameters, send it to txt2img; the ↙️ button reads the prompt box."""

import re
import shutil

import pytest
from app_process import wait_for
from page_controls import load_checkpoint, options_of
from page_data import removed_after, unique
from PIL import Image
from playwright.sync_api import expect
from test_browser_img2img import drop_file

from modules.images import save_unique

SECOND = unique("second")
INFOTEXT = (
    "a red boat, at dawn\nNegative prompt: blurry\n"
    f"Steps: 9, Sampler: Euler, CFG scale: 5.5, Seed: 1234, Size: 128x192, Model: {SECOND}, Clip skip: 3"
)


@pytest.fixture
def page(reused_page):
    """One page for the module: each test fills the boxes it reads."""
    return reused_page


@pytest.fixture
def second_checkpoint(page, page_app, demo_checkpoint):
    """A second checkpoint to switch to in the shared page server's folder, listed with the page's 🔄; after the
    test the demo model is loaded again and the file removed."""
    path = page_app[1] / "models" / "Stable-diffusion" / f"{SECOND}.safetensors"
    with removed_after(path):
        shutil.copy(demo_checkpoint, path)
        page.click("#refresh_sd_model_checkpoint")
        wait_for(lambda: any(SECOND in text for text in options_of(page, "setting_sd_model_checkpoint")), 30, SECOND)
        yield
        load_checkpoint(page, "demo.safetensors")


def number(page, elem_id: str):
    return page.locator(f"#{elem_id} input[type=number]").first


def test_drop_a_png_and_send_it_to_txt2img_with_its_checkpoint(page, second_checkpoint, tmp_path):
    path = save_unique(Image.new("RGB", (32, 48), "navy"), tmp_path, "1234-a red boat", INFOTEXT)
    page.click("#txt2img_extra_tabs button[role=tab]:has-text('Lora')")  # sending brings Generation back
    expect(page.locator("#txt2img_settings")).to_be_hidden()
    page.click("button[role=tab]:has-text('PNG Info')")
    drop_file(page, "#pnginfo_image button[aria-dropeffect]", path.read_bytes())
    expect(page.locator("#pnginfo_html_parameters")).to_contain_text("1234", timeout=20000)
    expect(page.locator("#pnginfo_html_info")).to_contain_text("a red boat, at dawn")
    page.click("#txt2img_tab")
    expect(page.locator("#txt2img_prompt textarea")).to_have_value("a red boat, at dawn", timeout=20000)
    expect(page.locator("#txt2img_neg_prompt textarea")).to_have_value("blurry")
    expect(page.locator("#txt2img_settings")).to_be_visible()
    for elem_id, value in (
        ("txt2img_steps", "9"),
        ("txt2img_seed", "1234"),
        ("txt2img_width", "128"),
        ("txt2img_height", "192"),
        ("txt2img_cfg_scale", "5.5"),
        ("setting_CLIP_stop_at_last_layers", "3"),
    ):
        expect(number(page, elem_id)).to_have_value(value)
    expect(page.locator("#model_status")).to_contain_text(f"{SECOND}.safetensors", timeout=60000)
    loaded = re.compile(rf"^{SECOND}\.safetensors \[\w{{10}}\]$")  # its hash is known once it is loaded
    expect(page.locator("#setting_sd_model_checkpoint input")).to_have_value(loaded)


def test_paste_button_fills_the_fields_from_the_prompt_box(page):
    prompt = page.locator("#img2img_prompt textarea")
    page.click("button[role=tab]:has-text('img2img')")
    prompt.fill("a fox\nSteps: 11, Seed: 99, Size: 64x80, Denoising strength: 0.35")
    page.click("#img2img_paste")
    expect(prompt).to_have_value("a fox", timeout=20000)
    for elem_id, value in (
        ("img2img_steps", "11"),
        ("img2img_seed", "99"),
        ("img2img_width", "64"),
        ("img2img_height", "80"),
        ("img2img_denoising_strength", "0.35"),
    ):
        expect(number(page, elem_id)).to_have_value(value)
