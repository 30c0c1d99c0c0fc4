"""The page at 1280x800: every tab fits without scrolling sideways, in both themes."""
import pytest

TABS = ("txt2img", "img2img", "Extras", "PNG Info", "Settings")


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_every_tab_fits_1280_pixels(browser, app_url, theme):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    try:
        page.goto(f"{app_url}?__theme={theme}")
        page.wait_for_selector("#txt2img_generate", timeout=30000)
        assert page.evaluate("document.body.classList.contains('dark')") == (theme == "dark")
        for tab in TABS:
            page.click(f"#tabs button[role=tab]:has-text('{tab}')")
            page.wait_for_timeout(300)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 1280, f"{tab} is {width} pixels wide"
    finally:
        context.close()
