"""The seed row's "Extra" checkbox: variation seed and resize-seed controls, shown, used, turned off, pasted."""

import pytest
from page_controls import set_number
from playwright.sync_api import expect


@pytest.fixture
def page(reused_page):
    """One page for the module: each test sets "Extra" and the boxes it reads."""
    return reused_page


def number(page, elem_id: str):
    return page.locator(f"#{elem_id} input[type=number]")


def test_extra_shows_the_variation_controls_and_hidden_values_never_count(page):
    rows = [page.locator("#txt2img_seed_extra_row_1"), page.locator("#txt2img_seed_extra_row_2")]
    for row in rows:
        expect(row).to_be_hidden()
    extra = page.locator("#txt2img_subseed_show input")
    extra.check()
    for row in rows:
        expect(row).to_be_visible()
    for elem_id, value in (
        ("txt2img_steps", 2),
        ("txt2img_width", 64),
        ("txt2img_height", 64),
        ("txt2img_seed", 5),
        ("txt2img_subseed", 7),
        ("txt2img_subseed_strength", 0.5),
    ):
        set_number(page, elem_id, value)
    page.locator("#txt2img_prompt textarea").fill("a windmill")
    info = page.locator("#html_info_txt2img")
    page.click("#txt2img_generate")
    expect(info).to_contain_text("Variation seed: 7, Variation seed strength: 0.5", timeout=120000)
    extra.uncheck()
    for row in rows:
        expect(row).to_be_hidden()
    page.locator("#txt2img_prompt textarea").fill("a lighthouse")
    page.click("#txt2img_generate")
    expect(info).to_contain_text("a lighthouse", timeout=120000)
    expect(info).not_to_contain_text("Variation")
    extra.check()
    expect(number(page, "txt2img_subseed_strength")).to_have_value("0")  # unticking turned it off
    expect(number(page, "txt2img_subseed")).to_have_value("7")


def test_pasted_variation_values_tick_extra(page):
    extra = page.locator("#txt2img_subseed_show input")
    extra.uncheck()
    expect(page.locator("#txt2img_seed_extra_row_1")).to_be_hidden()
    prompt = page.locator("#txt2img_prompt textarea")
    prompt.fill(
        "a fox\nSteps: 11, Seed: 99, Size: 64x64, Variation seed: 12, Variation seed strength: 0.3, "
        "Seed resize from: 128x96"
    )
    page.click("#txt2img_paste")
    expect(prompt).to_have_value("a fox", timeout=20000)
    expect(extra).to_be_checked()
    expect(page.locator("#txt2img_seed_extra_row_1")).to_be_visible()
    for elem_id, value in (
        ("txt2img_subseed", "12"),
        ("txt2img_subseed_strength", "0.3"),
        ("txt2img_seed_resize_from_w", "128"),
        ("txt2img_seed_resize_from_h", "96"),
    ):
        expect(number(page, elem_id)).to_have_value(value)
