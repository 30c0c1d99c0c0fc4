"""Uploads are checked when they arrive: a text file renamed fake.png gets one clear line, "not an image:
fake.png", and the control is left empty, in img2img, PNG Info and Extras."""

import pytest
from page_controls import close_messages, open_img2img_mode, open_tab
from playwright.sync_api import expect
from test_browser_img2img import drop_file

FAKE = b"just some text, not a picture\n" * 20


@pytest.fixture
def page(reused_page):
    """One page for the module: each test starts with no message shown and opens the tab it uses."""
    close_messages(reused_page)
    return reused_page


@pytest.mark.parametrize(
    "tab, target", [("img2img", "#img2img_image"), ("PNG Info", "#pnginfo_image"), ("Extras", "#extras_image")]
)
def test_a_fake_png_gets_one_clear_line_and_is_not_kept(page, tab, target):
    open_tab(page, tab)
    drop_file(page, f"{target} button[aria-dropeffect]", FAKE, name="fake.png")
    toasts = page.locator(".toast-body")
    expect(toasts.filter(has_text="not an image: fake.png")).to_have_count(1, timeout=20000)
    expect(page.locator(f"{target} img")).to_have_count(0)
    page.wait_for_timeout(1500)  # a second message, if any, would be shown by now
    expect(toasts).to_have_count(1)
    if tab == "img2img":
        page.fill("#img2img_prompt textarea", "a boat")
        page.click("#img2img_generate")
        expect(toasts.filter(has_text="image")).not_to_have_count(1, timeout=20000)  # Generate's own answer
        assert "preprocess" not in " ".join(toasts.all_inner_texts())


def test_a_fake_png_among_extras_batch_files_is_dropped_and_named(page, tmp_path):
    from PIL import Image

    Image.new("RGB", (16, 16), "teal").save(tmp_path / "real.png")
    (tmp_path / "fake.png").write_bytes(FAKE)
    open_tab(page, "Extras")
    page.get_by_role("tab", name="Batch Process", exact=True).click()
    page.locator("#extras_image_batch input[type=file]").set_input_files([tmp_path / "real.png", tmp_path / "fake.png"])
    expect(page.locator(".toast-body", has_text="not an image: fake.png")).to_have_count(1, timeout=20000)
    files = page.locator("#extras_image_batch")
    expect(files).to_contain_text("real")  # the name is shown as "real" and ".png"
    expect(files).not_to_contain_text("fake")


# Last in the module: once an editor has been shown, opening another tab makes its hidden canvas redraw for a
# while, which a GPU-less Chromium does in software (about 4 CPU s); the module's page closes instead.
@pytest.mark.parametrize("sub_tab, editor", [("Sketch", "#img2img_sketch"), ("Inpaint", "#img2maskimg")])
def test_a_fake_png_given_to_a_canvas_gets_one_clear_line(page, sub_tab, editor):
    open_img2img_mode(page, sub_tab)
    page.set_input_files(
        f"{editor} input[type=file]", files=[{"name": "fake.png", "mimeType": "image/png", "buffer": FAKE}]
    )
    toasts = page.locator(".toast-body")
    expect(toasts.filter(has_text="not an image: fake.png")).to_have_count(1, timeout=20000)
    expect(page.locator(f"{editor} img")).to_have_count(0)
