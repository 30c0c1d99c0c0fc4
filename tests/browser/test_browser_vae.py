"""The SD VAE dropdown in the quicksettings row: picking a file is used by the next image and saved; a file
that can't be used is refused with a warning and the dropdown goes back to the VAE in use."""

import json

import pytest
from app_process import running_app, wait_for, with_demo_checkpoint
from playwright.sync_api import expect
from test_sd_vae import OTHER, write_vae_files

from modules.paths import MODEL_CONFIGS_DIR


@pytest.fixture(scope="module")
def app_data(tmp_path_factory, demo_checkpoint):
    data = tmp_path_factory.mktemp("vae-browser-data")
    with_demo_checkpoint(data, demo_checkpoint)
    vae_config = json.loads((MODEL_CONFIGS_DIR / "demo" / "vae" / "config.json").read_text())
    write_vae_files(data / "models" / "VAE", vae_config)
    return data


@pytest.fixture(scope="module")
def app_url(app_data):
    with running_app(app_data, model_name="demo.safetensors") as url:
        yield url


def choose(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.locator("[role=listbox] [role=option]", has_text=option).first.click()


def test_pick_a_vae_in_the_quicksettings_row(page, app_data):
    row = page.locator("#quicksettings")
    expect(row.locator("#setting_sd_vae")).to_be_visible()
    expect(row.locator("#refresh_sd_vae")).to_be_visible()
    expect(row.locator("#setting_CLIP_stop_at_last_layers")).to_be_visible()
    choose(page, "setting_sd_vae", OTHER)
    config = app_data / "config.json"
    wait_for(lambda: config.is_file() and json.loads(config.read_text()).get("sd_vae") == OTHER, 60, "sd_vae saved")
    for elem_id, value in (("txt2img_steps", 2), ("txt2img_width", 64), ("txt2img_height", 64)):
        box = page.locator(f"#{elem_id} input[type=number]")
        box.fill(str(value))
        box.press("Tab")
    page.fill("#txt2img_prompt textarea", "a quiet lake")
    page.click("#txt2img_generate")
    expect(page.locator("#html_info_txt2img")).to_contain_text(f"VAE: {OTHER}", timeout=60000)
    choose(page, "setting_sd_vae", "broken.safetensors")
    expect(page.locator("#model_status")).to_contain_text("Could not use the VAE broken.safetensors", timeout=60000)
    expect(page.locator("#setting_sd_vae input")).to_have_value(OTHER)
    assert json.loads(config.read_text())["sd_vae"] == OTHER
