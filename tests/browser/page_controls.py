"""Loading the app's page and setting its controls as a person does, for the browser tests."""

import re
from urllib.parse import urlparse

from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

VIEWPORT = {"width": 1400, "height": 1000}
SITE_DATA = "local_storage,indexeddb,service_workers,cache_storage,file_systems,websql"  # not the HTTP cache


def open_app(page, url: str) -> None:
    """Load the app's page in `page` and wait until its controls are there."""
    page.goto(url)
    page.wait_for_selector("#txt2img_generate", timeout=30000)


def new_tab(chromium, url: str, viewport: dict[str, int] = VIEWPORT):
    """A new tab of the session's Chromium (tests/browser/conftest.py's `chromium`) at `viewport`, for a page at
    `url`: no cookies, and no site data (local storage, IndexedDB, service workers) of its origin, are left from
    earlier tabs. The caller loads the page."""
    chromium.clear_cookies()
    page = chromium.new_page()
    devtools = chromium.new_cdp_session(page)
    origin = "{0.scheme}://{0.netloc}".format(urlparse(url))
    devtools.send("Storage.clearDataForOrigin", {"origin": origin, "storageTypes": SITE_DATA})
    devtools.detach()
    page.set_viewport_size(viewport)
    return page


def new_app_page(chromium, url: str, viewport: dict[str, int] = VIEWPORT):
    """A new tab (new_tab) with the app at `url` loaded."""
    page = new_tab(chromium, url, viewport)
    open_app(page, url)
    return page


def open_tab(page, name: str) -> None:
    """Open the page's top-level tab `name` (the top tab strip comes before img2img's own "img2img" tab)."""
    page.get_by_role("tab", name=name, exact=True).first.click()


def open_img2img_mode(page, name: str) -> None:
    """Open img2img and its mode tab `name` ("img2img", "Sketch", "Inpaint", …)."""
    open_tab(page, "img2img")
    page.locator("#mode_img2img").get_by_role("tab", name=name, exact=True).click()


def set_number(page, elem_id: str, value) -> None:
    """Type `value` into a slider's or number's box and leave it (Gradio takes the value on blur)."""
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Tab")


def pick(page, elem_id: str, option: str, tries: int = 3) -> None:
    """Open a dropdown and click its first option holding `option`. When the page redraws the dropdown meanwhile
    (a job that just ended updates the checkpoint list), the open list goes with it: close and open it again, as
    a person would."""
    box = page.locator(f"#{elem_id} input")
    for attempt in range(1, tries + 1):
        box.click()
        try:
            page.locator(f"#{elem_id} [role=option]", has_text=option).first.click(timeout=10000)
            return
        except PlaywrightTimeoutError:
            if attempt == tries:
                raise
            page.keyboard.press("Escape")
            box.blur()  # a click on the still focused box would not open it again


def options_of(page, elem_id: str) -> list[str]:
    """A dropdown's options as it lists them (opened, read, closed and left again), without the ✓ of the chosen one."""
    page.locator(f"#{elem_id} input").click()
    options = page.locator(f"#{elem_id} [role=listbox] [role=option]")
    expect(options.first).to_be_visible()
    texts = [text.removeprefix("✓").strip() for text in options.all_inner_texts()]
    page.keyboard.press("Escape")
    expect(options.first).to_be_hidden()
    page.locator(f"#{elem_id} input").blur()  # a click on the still focused box would not open it again
    return texts


def load_checkpoint(page, name: str) -> None:
    """Pick the checkpoint `name` at the top of the page and wait until it is loaded."""
    pick(page, "setting_sd_model_checkpoint", name)
    expect(page.locator("#setting_sd_model_checkpoint input")).to_have_value(
        re.compile(rf"^{re.escape(name)} \[[0-9a-f]{{10}}\]$"), timeout=60000
    )


def close_messages(page) -> None:
    """Close every message the page shows (the × of each), so that a test on a reused page counts only its own."""
    messages = page.locator(".toast-body")
    for _ in range(50):
        if not messages.count():
            return
        page.evaluate("document.querySelectorAll('[data-testid=toast-close]').forEach((button) => button.click())")
        page.wait_for_timeout(200)
    expect(messages).to_have_count(0)
