"""The tool buttons: A1111's hover hints, the same text as aria-label; 🗑️ asks before clearing both prompts;
deleting a style asks first and saving one says so."""

import pytest
from playwright.sync_api import expect

HINTS = {
    "txt2img_random_seed": "Set seed to -1, which will cause a new random number to be used every time",
    "txt2img_reuse_seed": "Reuse seed from last generation, mostly useful if it was randomized",
    "txt2img_paste": "Read generation parameters from prompt or last generation if prompt is empty into user "
    "interface.",
    "txt2img_clear_prompt": "Clear prompt",
    "txt2img_style_apply": "Apply selected styles to current prompt",
    "refresh_sd_model_checkpoint": "Refresh",
    "txt2img_res_switch_btn": "Switch width/height",
    "txt2img_styles_edit_button": "Edit styles",
    "img2img_random_seed": "Set seed to -1, which will cause a new random number to be used every time",
}


@pytest.fixture
def page(reused_page):
    """One page for the module: each test fills the boxes it reads."""
    return reused_page


def test_tool_buttons_have_a1111_hints_and_aria_labels(page):
    for elem_id, hint in HINTS.items():
        button = page.locator(f"button#{elem_id}, #{elem_id} button").first
        expect(button).to_have_attribute("title", hint)
        expect(button).to_have_attribute("aria-label", hint)


def fill_prompts(page, prompt: str, negative: str) -> None:
    page.fill("#txt2img_prompt textarea", prompt)
    page.fill("#txt2img_neg_prompt textarea", negative)


def test_clear_prompt_asks_then_clears_both_prompts(page):
    fill_prompts(page, "a red boat", "blurry")
    questions: list[str] = []

    def answer(dialog, accept: bool) -> None:
        questions.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda dialog: answer(dialog, False))
    page.click("#txt2img_clear_prompt")
    page.wait_for_timeout(500)
    expect(page.locator("#txt2img_prompt textarea")).to_have_value("a red boat")
    expect(page.locator("#txt2img_neg_prompt textarea")).to_have_value("blurry")
    page.once("dialog", lambda dialog: answer(dialog, True))
    page.click("#txt2img_clear_prompt")
    expect(page.locator("#txt2img_prompt textarea")).to_have_value("")
    expect(page.locator("#txt2img_neg_prompt textarea")).to_have_value("")
    assert questions == ["Delete prompt?", "Delete prompt?"]


def test_style_save_says_so_and_delete_asks_first(page):
    page.click("#txt2img_styles_edit_button")  # 🖌️ opens the Edit styles dialog
    page.locator("#txt2img_styles_edit_select input").fill("harbour")
    page.fill("#txt2img_edit_style_prompt textarea", "{prompt}, at the harbour")
    page.click("#txt2img_edit_style_save")
    expect(page.locator(".toast-body", has_text="Saved the style 'harbour'")).to_have_count(1, timeout=20000)
    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.dismiss()))
    page.click("#txt2img_edit_style_delete")
    page.wait_for_timeout(1500)
    expect(page.locator(".toast-body", has_text="Deleted the style")).to_have_count(0)
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    page.click("#txt2img_edit_style_delete")
    expect(page.locator(".toast-body", has_text="Deleted the style 'harbour'")).to_have_count(1, timeout=20000)
    assert questions == ['Delete the style "harbour"?'] * 2
    page.click("#txt2img_edit_style_close")
    expect(page.locator("#txt2img_styles_dialog")).to_be_hidden()
