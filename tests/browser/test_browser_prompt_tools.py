"""The prompt box as a person uses it: the token counter and Ctrl+Up/Down weight editing."""

import pytest
from playwright.sync_api import expect


@pytest.fixture
def page(reused_page):
    """One page for the module: each test fills the boxes it reads."""
    return reused_page


def test_token_counter_updates_as_you_type(page):
    box = page.locator("#txt2img_prompt textarea")
    box.fill("")
    box.click()
    box.type("a castle on a hill")
    expect(page.locator("#txt2img_prompt_token_counter")).to_have_text("5/75", timeout=10000)
    page.keyboard.insert_text(" cat" * 75)  # the rest at once, as a paste gives it (300 keystrokes took 10 s)
    expect(page.locator("#txt2img_prompt_token_counter")).to_have_text("80/150", timeout=10000)


def test_ctrl_up_and_down_edit_the_weight_of_the_selection(page):
    box = page.locator("#txt2img_prompt textarea")
    box.fill("a castle, sunset glow")
    box.evaluate("t => { const i = t.value.indexOf('sunset'); t.setSelectionRange(i, i + 6); }")
    box.press("Control+ArrowUp")
    expect(box).to_have_value("a castle, (sunset:1.1) glow")
    box.press("Control+ArrowUp")
    expect(box).to_have_value("a castle, (sunset:1.2) glow")
    box.press("Control+ArrowDown")
    box.press("Control+ArrowDown")
    expect(box).to_have_value("a castle, sunset glow")
    box.evaluate("t => t.setSelectionRange(3, 3)")  # cursor inside "castle", nothing selected
    box.press("Control+ArrowDown")
    expect(box).to_have_value("a (castle:0.9), sunset glow")


def test_ctrl_enter_in_the_prompt_generates(page):
    for elem_id, value in (("txt2img_steps", 2), ("txt2img_width", 64), ("txt2img_height", 64)):
        box = page.locator(f"#{elem_id} input[type=number]")
        box.fill(str(value))
        box.press("Tab")
    prompt = page.locator("#txt2img_prompt textarea")
    prompt.fill("a windmill")
    prompt.press("Control+Enter")
    expect(page.locator("#html_info_txt2img")).to_contain_text("a windmill", timeout=120000)
    expect(page.locator("#html_info_txt2img")).to_contain_text("Steps: 2,")
    expect(prompt).to_have_value("a windmill")  # no newline was typed


def test_a1111_page_helpers_for_extension_scripts(page):
    assert page.evaluate("gradioApp().querySelector('#txt2img_prompt textarea') !== null")
    assert page.evaluate("new Promise(resolve => onUiLoaded(() => resolve(true)))")
