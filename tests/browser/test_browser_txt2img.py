"""txt2img as a person drives it: a typed prompt; Sampling steps, CFG Scale and Clip skip set once with the
sliders' keyboard and once with their number boxes; Generate and Ctrl+Enter; the image and its infotext."""

from page_controls import set_number
from playwright.sync_api import expect


def slide(page, elem_id: str, presses: int) -> None:
    """Move a slider with the keyboard: Home (its minimum), then `presses` steps of ArrowRight."""
    thumb = page.locator(f"#{elem_id} input[type=range]")
    thumb.focus()
    thumb.press("Home")
    for _ in range(presses):
        thumb.press("ArrowRight")
    thumb.press("Tab")


def expect_result(page, *texts: str) -> None:
    info = page.locator("#html_info_txt2img")
    for text in texts:
        expect(info).to_contain_text(text, timeout=120000)
    expect(page.locator("#txt2img_gallery img").first).to_be_visible()


def test_sliders_number_boxes_generate_and_ctrl_enter(page):
    set_number(page, "txt2img_width", 64)
    set_number(page, "txt2img_height", 64)
    prompt = page.locator("#txt2img_prompt textarea")
    prompt.click()
    prompt.type("a lighthouse at dusk")

    slide(page, "txt2img_steps", 2)  # 1 → 3
    slide(page, "txt2img_cfg_scale", 5)  # 1 → 3.5 in steps of 0.5
    slide(page, "setting_CLIP_stop_at_last_layers", 1)  # 1 → 2
    expect(page.locator("#txt2img_steps input[type=number]")).to_have_value("3")
    expect(page.locator("#txt2img_cfg_scale input[type=number]")).to_have_value("3.5")
    page.click("#txt2img_generate")
    expect_result(page, "a lighthouse at dusk", "Steps: 3,", "CFG scale: 3.5,", "Clip skip: 2,")

    set_number(page, "txt2img_steps", 2)
    set_number(page, "txt2img_cfg_scale", 6)
    set_number(page, "setting_CLIP_stop_at_last_layers", 3)
    expect(page.locator("#txt2img_steps input[type=range]")).to_have_value("2")
    prompt.press("End")
    prompt.type(", calm sea")
    prompt.press("Control+Enter")
    expect_result(page, "a lighthouse at dusk, calm sea", "Steps: 2,", "CFG scale: 6,", "Clip skip: 3,")
    expect(prompt).to_have_value("a lighthouse at dusk, calm sea")
