"""Checkpoints in the browser: a file added while the app runs appears in the top dropdown and in hires
fix's Hires checkpoint dropdown after 🔄; the Refiner accordion hands sampling to a second checkpoint; picking
a broken file is one load attempt with one clear warning."""

import re
import shutil

import pytest
from app_process import running_app, wait_for, with_demo_checkpoint
from page_controls import set_number
from playwright.sync_api import expect


@pytest.fixture(scope="module")
def app_data(tmp_path_factory, demo_checkpoint):
    data = tmp_path_factory.mktemp("checkpoints-browser-data")
    with_demo_checkpoint(data, demo_checkpoint)
    shutil.copy(demo_checkpoint, data / "models" / "Stable-diffusion" / "second.safetensors")
    (data / "models" / "Stable-diffusion" / "unreadable.ckpt").write_bytes(bytes(range(256)) * 16)
    return data


@pytest.fixture(scope="module")
def app_url(app_data):
    with running_app(app_data, model_name="demo.safetensors") as url:
        yield url


def options_of(page, elem_id: str) -> list[str]:
    page.locator(f"#{elem_id} input").click()
    options = page.locator(f"#{elem_id} [role=listbox] [role=option]")
    expect(options.first).to_be_visible()
    texts = [text.removeprefix("✓").strip() for text in options.all_inner_texts()]
    page.keyboard.press("Escape")
    expect(options.first).to_be_hidden()
    return texts


def test_refresh_lists_a_new_checkpoint_in_both_dropdowns(page, app_data, demo_checkpoint):
    page.click("#txt2img_hr .label-wrap")  # open the Hires. fix accordion
    assert not any("added-later" in text for text in options_of(page, "txt2img_hr_checkpoint_name"))
    shutil.copy(demo_checkpoint, app_data / "models" / "Stable-diffusion" / "added-later.safetensors")
    page.click("#refresh_sd_model_checkpoint")
    wait_for(
        lambda: any("added-later" in text for text in options_of(page, "setting_sd_model_checkpoint")),
        30,
        "the new checkpoint in the top dropdown",
    )
    hires = options_of(page, "txt2img_hr_checkpoint_name")
    assert hires[0] == "Use same checkpoint", hires
    assert any("added-later" in text for text in hires)


def test_the_refiner_accordion_hands_sampling_to_another_checkpoint(page):
    page.click("#txt2img_refiner .label-wrap")
    page.locator("#txt2img_refiner_checkpoint input").click()
    page.locator("#txt2img_refiner_checkpoint [role=option]", has_text="second").first.click()
    for elem_id, value in (
        ("txt2img_steps", 4),
        ("txt2img_width", 64),
        ("txt2img_height", 64),
        ("txt2img_refiner_switch_at", 0.5),
    ):
        set_number(page, elem_id, value)
    page.fill("#txt2img_prompt textarea", "a quiet lake")
    page.click("#txt2img_generate")
    info = page.locator("#html_info_txt2img")
    expect(info).to_contain_text("Refiner: second", timeout=60000)
    expect(info).to_contain_text("Refiner switch at: 0.5")
    expect(info).to_contain_text("Model: demo")


def test_picking_a_broken_checkpoint_is_one_attempt_with_one_clear_warning(page, app_data):
    page.locator("#setting_sd_model_checkpoint input").click()
    page.locator("#setting_sd_model_checkpoint [role=option]", has_text="unreadable.ckpt").first.click()
    message = "unreadable.ckpt is not a checkpoint (unreadable)"
    expect(page.locator("#model_status")).to_contain_text(message, timeout=30000)
    page.wait_for_timeout(1500)  # a second attempt, if any, would have been logged by now
    attempts = (app_data / "server.log").read_text().count(f"Could not load checkpoint unreadable.ckpt: {message}")
    assert attempts == 1, (app_data / "server.log").read_text()[-3000:]
    expect(page.locator(".toast-body", has_text=message)).to_have_count(1)
    expect(page.locator("#setting_sd_model_checkpoint input")).to_have_value(re.compile("^demo"))
