"""The checkpoint list in the browser: a file added while the app runs appears in the top dropdown and in
hires fix's Hires checkpoint dropdown after 🔄."""
import shutil

import pytest
from app_process import running_app, wait_for
from playwright.sync_api import expect


@pytest.fixture(scope="module")
def app_data(tmp_path_factory, demo_checkpoint):
    data = tmp_path_factory.mktemp("checkpoints-browser-data")
    (data / "models" / "Stable-diffusion").mkdir(parents=True)
    shutil.copy(demo_checkpoint, data / "models" / "Stable-diffusion" / "demo.safetensors")
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
    wait_for(lambda: any("added-later" in text for text in options_of(page, "setting_sd_model_checkpoint")), 30,
             "the new checkpoint in the top dropdown")
    hires = options_of(page, "txt2img_hr_checkpoint_name")
    assert hires[0] == "Use same checkpoint", hires
    assert any("added-later" in text for text in hires)
