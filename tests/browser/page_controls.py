"""Setting the page's controls as a person does, for the browser tests."""


def set_number(page, elem_id: str, value) -> None:
    """Type `value` into a slider's or number's box and leave it (Gradio takes the value on blur)."""
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Tab")


def pick(page, elem_id: str, option: str) -> None:
    """Open a dropdown and click its first option holding `option`."""
    page.locator(f"#{elem_id} input").click()
    page.locator(f"#{elem_id} [role=option]", has_text=option).first.click()
