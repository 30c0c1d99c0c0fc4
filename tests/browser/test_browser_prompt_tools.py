"""The prompt box as a person uses it: the token counter and Ctrl+Up/Down weight editing."""
from playwright.sync_api import expect


def test_token_counter_updates_as_you_type(page):
    box = page.locator("#txt2img_prompt textarea")
    box.click()
    box.type("a castle on a hill")
    expect(page.locator("#txt2img_prompt_token_counter")).to_have_text("5/75", timeout=10000)
    box.type(" cat" * 75)
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
