"""A long job in the browser: the progress bar and live preview appear, Interrupt stops it, and the
page goes on working."""

import re
import time

from page_controls import set_number
from playwright.sync_api import expect


def test_progress_preview_and_interrupt(page):
    # 256x256, not 512x512: a step of the demo model costs ~0.1 CPU s instead of ~0.9 (all of it spent until the
    # preview shows), and 150 of them still last many times the ~10 steps (plus a poll) before the first preview
    for elem_id, value in (("txt2img_steps", 150), ("txt2img_width", 256), ("txt2img_height", 256)):
        set_number(page, elem_id, value)
    page.fill("#txt2img_prompt textarea", "a long walk")
    page.click("#txt2img_generate")
    progress = page.locator(".progress-text, .meta-text, .progress-level-inner").filter(has_text=re.compile("Step"))
    expect(progress.first).to_be_visible(timeout=60000)
    expect(page.locator("#txt2img_gallery img").first).to_be_visible(timeout=60000)  # a live preview
    started = time.monotonic()
    page.click("#txt2img_interrupt")
    expect(page.locator("#html_info_txt2img")).to_contain_text("(interrupted)", timeout=60000)
    assert time.monotonic() - started < 30  # the 150 steps were not run out
    set_number(page, "txt2img_steps", 2)
    set_number(page, "txt2img_width", 64)
    set_number(page, "txt2img_height", 64)
    page.click("#txt2img_generate")
    expect(page.locator("#html_info_txt2img")).to_contain_text("Steps: 2,", timeout=60000)
    expect(page.locator("#html_info_txt2img")).not_to_contain_text("(interrupted)")
