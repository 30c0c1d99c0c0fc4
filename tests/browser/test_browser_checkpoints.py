"""Checkpoints in the browser: a file added while the app runs appears in the top dropdown and in hires
fix's Hires checkpoint dropdown after 🔄; the Refiner accordion hands sampling to a second checkpoint; picking
a broken file is one load attempt with one clear warning."""

import re
import shutil

import pytest
from app_process import wait_for
from page_controls import options_of, set_number
from page_data import log_since, log_size, removed_after, unique
from playwright.sync_api import expect

SECOND, LATER, BROKEN = unique("second"), unique("added-later"), unique("unreadable")


@pytest.fixture
def page(reused_page):
    """One page for the module: each test sets the controls its job reads."""
    return reused_page


@pytest.fixture(scope="module")
def checkpoints(page_app, demo_checkpoint):
    """The shared page server's checkpoint folder with a second checkpoint and a broken file in it; they and the
    one the refresh test adds are removed when the module is done."""
    folder = page_app[1] / "models" / "Stable-diffusion"
    second, broken, later = folder / f"{SECOND}.safetensors", folder / f"{BROKEN}.ckpt", folder / f"{LATER}.safetensors"
    with removed_after(second, broken, later):
        shutil.copy(demo_checkpoint, second)
        broken.write_bytes(bytes(range(256)) * 16)
        yield folder


def test_refresh_lists_a_new_checkpoint_in_both_dropdowns(page, checkpoints, demo_checkpoint):
    page.click("#txt2img_hr .label-wrap")  # open the Hires. fix accordion
    assert not any(LATER in text for text in options_of(page, "txt2img_hr_checkpoint_name"))
    shutil.copy(demo_checkpoint, checkpoints / f"{LATER}.safetensors")
    page.click("#refresh_sd_model_checkpoint")
    wait_for(
        lambda: any(LATER in text for text in options_of(page, "setting_sd_model_checkpoint")),
        30,
        "the new checkpoint in the top dropdown",
    )
    hires = options_of(page, "txt2img_hr_checkpoint_name")
    assert hires[0] == "Use same checkpoint", hires
    assert any(LATER in text for text in hires)


def test_the_refiner_accordion_hands_sampling_to_another_checkpoint(page, checkpoints):
    page.locator("#txt2img_hr-checkbox input").uncheck()  # opening Hires. fix above turned it on
    page.click("#txt2img_refiner .label-wrap")
    page.click("#refresh_sd_model_checkpoint")  # the page's 🔄 lists the second checkpoint for the refiner too
    wait_for(lambda: any(SECOND in text for text in options_of(page, "txt2img_refiner_checkpoint")), 30, SECOND)
    page.locator("#txt2img_refiner_checkpoint input").click()
    page.locator("#txt2img_refiner_checkpoint [role=option]", has_text=SECOND).first.click()
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
    expect(info).to_contain_text(f"Refiner: {SECOND}", timeout=60000)
    expect(info).to_contain_text("Refiner switch at: 0.5")
    expect(info).to_contain_text("Model: demo")


def test_picking_a_broken_checkpoint_is_one_attempt_with_one_clear_warning(page, page_app, checkpoints):
    data, start = page_app[1], log_size(page_app[1])
    page.click("#refresh_sd_model_checkpoint")
    wait_for(lambda: any(BROKEN in text for text in options_of(page, "setting_sd_model_checkpoint")), 30, BROKEN)
    page.locator("#setting_sd_model_checkpoint input").click()
    page.locator("#setting_sd_model_checkpoint [role=option]", has_text=f"{BROKEN}.ckpt").first.click()
    message = f"{BROKEN}.ckpt is not a checkpoint (unreadable)"
    expect(page.locator("#model_status")).to_contain_text(message, timeout=30000)
    page.wait_for_timeout(1500)  # a second attempt, if any, would have been logged by now
    attempts = log_since(data, start).count(f"Could not load checkpoint {BROKEN}.ckpt: {message}")
    assert attempts == 1, log_since(data, start)[-3000:]
    expect(page.locator(".toast-body", has_text=message)).to_have_count(1)
    expect(page.locator("#setting_sd_model_checkpoint input")).to_have_value(re.compile("^demo"))
