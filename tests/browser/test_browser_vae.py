"""The SD VAE dropdown in the quicksettings row: picking a file is used by the next image and saved; a file
that can't be used is refused with a warning and the dropdown goes back to the VAE in use."""

import json
import shutil

import pytest
from app_process import wait_for
from page_controls import options_of, pick
from page_data import removed_after, unique
from playwright.sync_api import expect
from test_sd_vae import OTHER, write_vae_files

from modules.paths import MODEL_CONFIGS_DIR

MINE, BROKEN = f"{unique('other')}.safetensors", f"{unique('broken')}.safetensors"


def sd_vae(config) -> str | None:
    return json.loads(config.read_text()).get("sd_vae") if config.is_file() else None


@pytest.fixture
def vae_files(page, page_app, tmp_path):
    """test_sd_vae's VAE and its cut-short copy in the shared page server's VAE folder under names of their own,
    listed with the page's 🔄; then the setting as it was, the files removed and the list read again."""
    written = tmp_path / "vae"
    write_vae_files(written, json.loads((MODEL_CONFIGS_DIR / "demo" / "vae" / "config.json").read_text()))
    folder, config = page_app[1] / "models" / "VAE", page_app[1] / "config.json"
    before = page.locator("#setting_sd_vae input").input_value()
    with removed_after(folder / MINE, folder / BROKEN):
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(written / OTHER, folder / MINE)
        shutil.copy(written / "broken.safetensors", folder / BROKEN)
        page.click("#refresh_sd_vae")
        wait_for(lambda: BROKEN in options_of(page, "setting_sd_vae"), 30, "the VAE files listed")
        yield config
        pick(page, "setting_sd_vae", before)
        wait_for(lambda: sd_vae(config) == before, 60, f"sd_vae back to {before}")
    # pressed with the keyboard: a click would wait ~9 s for the test's warning toast to stop covering the button
    page.locator("#refresh_sd_vae").press("Enter")
    wait_for(lambda: MINE not in options_of(page, "setting_sd_vae"), 30, "the VAE files gone from the list")


def test_pick_a_vae_in_the_quicksettings_row(page, vae_files):
    config = vae_files
    row = page.locator("#quicksettings")
    expect(row.locator("#setting_sd_vae")).to_be_visible()
    expect(row.locator("#refresh_sd_vae")).to_be_visible()
    expect(row.locator("#setting_CLIP_stop_at_last_layers")).to_be_visible()
    pick(page, "setting_sd_vae", MINE)
    wait_for(lambda: sd_vae(config) == MINE, 60, "sd_vae saved")
    for elem_id, value in (("txt2img_steps", 2), ("txt2img_width", 64), ("txt2img_height", 64)):
        box = page.locator(f"#{elem_id} input[type=number]")
        box.fill(str(value))
        box.press("Tab")
    page.fill("#txt2img_prompt textarea", "a quiet lake")
    page.click("#txt2img_generate")
    expect(page.locator("#html_info_txt2img")).to_contain_text(f"VAE: {MINE}", timeout=60000)
    pick(page, "setting_sd_vae", BROKEN)
    expect(page.locator("#model_status")).to_contain_text(f"Could not use the VAE {BROKEN}", timeout=60000)
    expect(page.locator("#setting_sd_vae input")).to_have_value(MINE)
    assert json.loads(config.read_text())["sd_vae"] == MINE
