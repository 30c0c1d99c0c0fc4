"""img2img in the browser: drag an image in, paint an inpainting mask with the mouse, Interrogate CLIP."""

import base64
import io
import shutil

import numpy as np
import pytest
import requests
from interrogate_models import write_tiny_interrogate_models
from page_controls import open_img2img_mode, open_tab, set_number
from PIL import Image
from playwright.sync_api import expect
from skimage import data

from modules.interrogate import CATEGORIES, packaged_lists, read_terms


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def drop_file(page, selector: str, content: bytes, name: str = "photo.png") -> None:
    """Drop a file the way a person's drag does: dragenter, dragover and drop with a DataTransfer."""
    page.evaluate(
        """([selector, b64, name]) => {
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], name, {type: "image/png"}));
        const target = document.querySelector(selector);
        for (const type of ["dragenter", "dragover", "drop"]) {
            target.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: transfer}));
        }
    }""",
        [selector, base64.b64encode(content).decode(), name],
    )


@pytest.fixture
def shared_page(reused_page):
    """One page for the module's tests but the mask painting's: each sets the boxes it reads and waits for its own
    job's infotext. The mask painting has a page of its own, whose image editor stops drawing when it closes."""
    return reused_page


def put_image(page, target: str, image: Image.Image) -> None:
    """Drop `image` into the image box `target`, after removing the one it shows if any, and wait until it shows."""
    remove = page.locator(f"{target} button[aria-label='Remove Image']")
    if remove.count():
        remove.click()
        expect(page.locator(f"{target} img")).to_have_count(0)
    drop_file(page, f"{target} button[aria-dropeffect]", png_bytes(image))
    expect(page.locator(f"{target} img")).to_be_visible(timeout=20000)


def gallery_image(page, tab: str) -> Image.Image:
    image = page.locator(f"#{tab}_gallery img").first
    expect(image).to_be_visible(timeout=120000)
    return Image.open(io.BytesIO(requests.get(image.get_attribute("src"), timeout=30).content)).convert("RGB")


def test_drag_an_image_into_img2img_and_generate_at_the_chosen_size(shared_page):
    page = shared_page
    open_img2img_mode(page, "img2img")
    put_image(page, "#img2img_image", Image.fromarray(data.astronaut()).resize((96, 80)))
    page.fill("#img2img_prompt textarea", "a portrait")
    for elem_id, value in (("img2img_steps", 3), ("img2img_width", 64), ("img2img_height", 96)):
        set_number(page, elem_id, value)
    page.click("#img2img_generate")
    expect(page.locator("#html_info_img2img")).to_contain_text("a portrait", timeout=120000)
    expect(page.locator("#html_info_img2img")).to_contain_text("Denoising strength: 0.75")
    assert gallery_image(page, "img2img").size == (64, 96)
    expect(page.locator("#html_info_img2img")).to_contain_text("Size: 64x96")


def test_paint_a_mask_with_the_mouse_and_only_that_area_changes(page):
    open_tab(page, "txt2img")
    for elem_id, value in (("txt2img_steps", 3), ("txt2img_width", 128), ("txt2img_height", 128)):
        set_number(page, elem_id, value)
    page.fill("#txt2img_prompt textarea", "a house")
    page.click("#txt2img_generate")
    expect(page.locator("#html_info_txt2img")).to_contain_text("a house", timeout=120000)
    source = gallery_image(page, "txt2img")
    page.click("#txt2img_send_to_inpaint")
    canvas = page.locator("#img2maskimg canvas").first
    expect(canvas).to_be_visible(timeout=20000)
    # A stroke before the editor has taken the image in is lost (the job then runs without a mask). It is ready when
    # its brush controls show and the image is its first undoable step; a fixed 3 s wait was too short under load.
    editor = page.locator("#img2maskimg")
    expect(editor.get_by_role("button", name="Brush Size")).to_be_visible(timeout=30000)
    expect(editor.get_by_role("button", name="Undo")).to_be_enabled()
    box = canvas.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.3, y)
    page.mouse.down()
    # The brush draws a line from each pointer position to the next, so two moves paint the same mask as ten did;
    # each move is a frame of the editor's canvas, which a GPU-less Chromium draws in software (about 0.8 CPU s).
    for x in (0.5, 0.7):
        page.mouse.move(box["x"] + box["width"] * x, y)
    page.mouse.up()
    set_number(page, "img2img_steps", 4)
    page.click("#img2img_generate")
    expect(page.locator("#html_info_img2img")).to_contain_text("Mask blur: 4", timeout=120000)
    result = np.asarray(gallery_image(page, "img2img")).astype(int)
    before = np.asarray(source).astype(int)
    assert result.shape == before.shape
    band = slice(20, 108)  # the stroke crosses the middle row; the (broad) brush and the blur stay within it
    outside = np.ones(result.shape[:2], bool)
    outside[band] = False
    ys, xs = np.nonzero(np.abs(result - before).sum(axis=2))
    assert (result[outside] == before[outside]).all(), (ys.min(), ys.max(), xs.min(), xs.max())
    assert np.abs(result[64, 50:78] - before[64, 50:78]).mean() > 5


def test_send_a_txt2img_image_to_extras_and_upscale_it(shared_page):
    page = shared_page
    open_tab(page, "txt2img")
    for elem_id, value in (("txt2img_steps", 2), ("txt2img_width", 64), ("txt2img_height", 64)):
        set_number(page, elem_id, value)
    page.fill("#txt2img_prompt textarea", "a lighthouse")
    page.click("#txt2img_generate")
    expect(page.locator("#html_info_txt2img")).to_contain_text("a lighthouse", timeout=120000)
    source = gallery_image(page, "txt2img")
    page.click("#txt2img_send_to_extras")
    expect(page.locator("#extras_image img")).to_be_visible(timeout=20000)
    page.click("#extras_upscaler_1 input")
    page.click("ul[role=listbox] li:has-text('Lanczos')")
    page.click("#extras_generate")
    expect(page.locator("#html_info_extras")).to_contain_text("Postprocess upscaler: Lanczos", timeout=120000)
    result = gallery_image(page, "extras")
    assert result.size == (2 * source.width, 2 * source.height)


def test_interrogate_clip_fills_the_prompt_from_the_image(shared_page, page_app):
    page = shared_page
    models = page_app[1] / "models"
    write_tiny_interrogate_models(models)  # what a user puts in models/BLIP and models/clip
    try:
        open_img2img_mode(page, "img2img")
        put_image(page, "#img2img_image", Image.fromarray(data.astronaut()))
        prompt = page.locator("#img2img_prompt textarea")
        prompt.fill("")
        page.click("#interrogate")
        expect(prompt).not_to_have_value("", timeout=120000)
        caption, *terms = prompt.input_value().split(", ")
        assert caption and len(terms) == len(CATEGORIES)
        for term, category in zip(terms, CATEGORIES):  # the best of the first 1500 lines of each packaged list
            assert term in read_terms(packaged_lists(), category, 1500)
    finally:
        for folder in ("BLIP", "clip"):
            shutil.rmtree(models / folder)
