"""The output gallery as A1111 users know it: a batch of two shows its grid first (saved to the grids folder), the
grid is shown whole (fitted, never cropped), selecting an image shows its infotext and gives ♻️ its seed, 💾 and 🗃️
save into log/images with log.csv, Send-to sends the selected image, and no output gallery takes uploads."""

import io
import json
import re

import numpy as np
import pytest
import requests
from page_controls import set_number
from page_data import new_files
from PIL import Image
from playwright.sync_api import expect


@pytest.fixture
def saved_before(page_app):
    """The shared page server's data dir and what its output and log folders held before the test; what the
    test saves into log/images is removed after it (other tests' outputs are left as they are)."""
    data = page_app[1]
    before = {path for name in ("outputs", "log") for path in (data / name).rglob("*")}
    yield data, before
    log_csv = data / "log" / "images" / "log.csv"
    for path in new_files(data / "log" / "images", "*", before):
        if path.is_file() and path != log_csv:
            path.unlink()
    if log_csv not in before:
        log_csv.unlink(missing_ok=True)


@pytest.fixture
def page(reused_page):
    """One page for the module: the first test only reads it."""
    return reused_page


def thumbnails(page, kind: str = "small"):
    """The preview's strip of thumbnails ("small") or the gallery's grid of them ("lg", shown when it is closed)."""
    return page.locator(f"#txt2img_gallery button.thumbnail-{kind}")


def assert_whole(image, frame) -> None:
    """`image` (an img locator) shows all of its picture inside `frame` (a locator): fitted, not cropped."""
    width, height, fit = image.evaluate("img => [img.naturalWidth, img.naturalHeight, getComputedStyle(img).objectFit]")
    assert (width, height, fit) == (128, 64, "contain")  # the 2:1 grid
    box, tile = image.bounding_box(), frame.bounding_box()
    scale = min(box["width"] / width, box["height"] / height)  # what "contain" draws
    assert width * scale <= tile["width"] + 1 and height * scale <= tile["height"] + 1


def generate_two(page) -> None:
    """Batch count 2 of 64x64 images, seeds 100 and 101."""
    set_number(page, "txt2img_width", 64)
    set_number(page, "txt2img_height", 64)
    set_number(page, "txt2img_steps", 2)
    set_number(page, "txt2img_n_iter", 2)
    set_number(page, "txt2img_seed", 100)
    page.locator("#txt2img_prompt textarea").fill("a lighthouse")
    page.click("#txt2img_generate")
    expect(page.locator("#html_info_txt2img")).to_contain_text("Seed: 100,", timeout=180000)
    expect(thumbnails(page)).to_have_count(3, timeout=30000)


def test_no_output_gallery_takes_uploads(page):
    for tab in ("txt2img", "img2img", "extras"):
        gallery = page.locator(f"#{tab}_gallery")
        expect(gallery).to_have_count(1)
        assert gallery.locator("input[type=file]").count() == 0
        assert "Drop" not in (gallery.text_content() or "")


def test_batch_of_two_shows_its_grid_first_whole_and_follows_the_selection(page, saved_before):
    app_data, before = saved_before
    log_csv = app_data / "log" / "images" / "log.csv"
    log_lines = log_csv.read_text().splitlines()[1:] if log_csv.is_file() else []  # another test's saves
    generate_two(page)
    grids = new_files(app_data / "outputs" / "txt2img-grids", "grid-*.png", before)
    assert len(grids) == 1 and b"Seed: 100," in grids[0].read_bytes()

    info_json = page.locator("#generation_info_txt2img textarea")  # A1111's JSON, for extensions' scripts
    expect(info_json).to_have_value(re.compile('"index_of_first_image": 1'))
    assert json.loads(info_json.input_value())["all_seeds"] == [100, 101]
    gallery = page.locator("#txt2img_gallery")
    assert_whole(gallery.get_by_test_id("detailed-image"), gallery)  # the preview opens on the grid

    thumbnails(page).nth(2).click()  # the second image
    info = page.locator("#html_info_txt2img")
    expect(info).to_contain_text("Seed: 101,")
    assert page.evaluate("selected_gallery_index()") == 2  # A1111's page function, for extensions
    page.click("#txt2img_reuse_seed")
    expect(page.locator("#txt2img_seed input")).to_have_value("101")

    page.click("#save_txt2img")
    expect(page.locator("#html_log_txt2img")).to_contain_text("Saved: ", timeout=30000)
    saved = new_files(app_data / "log" / "images", "*.png", before)
    assert len(saved) == 1 and b"Seed: 101," in saved[0].read_bytes()
    header, *log = log_csv.read_text().splitlines()
    assert header == "prompt,seed,width,height,sampler,cfgs,steps,filename,negative_prompt"
    assert log[: len(log_lines)] == log_lines and len(log) == len(log_lines) + 1  # one line added: this save's
    assert log[-1].startswith("a lighthouse,100,64,64,") and saved[0].name in log[-1]
    expect(page.locator("#download_files_txt2img")).to_be_visible()

    page.click("#save_zip_txt2img")
    expect(page.locator("#download_files_txt2img")).to_contain_text(".zip", timeout=30000)
    assert len(new_files(app_data / "log" / "images", "*.zip", before)) == 1

    thumbnails(page).nth(1).click()  # the first image
    expect(info).to_contain_text("Seed: 100,")
    set_number(page, "txt2img_seed", -1)
    page.click("#txt2img_reuse_seed")
    expect(page.locator("#txt2img_seed input")).to_have_value("100")

    gallery.get_by_label("Close").click()
    assert_whole(thumbnails(page, "lg").first.locator("img"), thumbnails(page, "lg").first)
    thumbnails(page, "lg").nth(2).click()
    expect(info).to_contain_text("Seed: 101,")
    page.click("#txt2img_reuse_seed")
    expect(page.locator("#txt2img_seed input")).to_have_value("101")
    gallery.get_by_label("Close").click()  # none selected: ♻️ takes the first image's seed
    page.click("#txt2img_reuse_seed")
    expect(page.locator("#txt2img_seed input")).to_have_value("100")

    # Send-to sends the selected image: the first, then the second (each shown in the infotext before the next click,
    # as a person sees it; a click right after a select could go out before the select's answer came back)
    thumbnails(page, "lg").nth(1).click()
    expect(info).to_contain_text("Seed: 100,")
    thumbnails(page).nth(2).click()
    expect(info).to_contain_text("Seed: 101,")
    page.click("#txt2img_send_to_extras")
    sent = page.locator("#extras_image img")
    expect(sent).to_be_visible(timeout=20000)
    [second] = new_files(app_data / "outputs" / "txt2img-images", "*-101-*.png", before)
    received = Image.open(io.BytesIO(requests.get(sent.get_attribute("src"), timeout=30).content)).convert("RGB")
    assert np.array_equal(np.asarray(received), np.asarray(Image.open(second).convert("RGB")))
