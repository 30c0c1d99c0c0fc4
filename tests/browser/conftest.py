"""Browser tests: Debian's Chromium driven by Playwright against app.py on a free port."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from outcomes import failed

CHROMIUM = Path("/usr/bin/chromium")
# Headless flags for this machine's closed network (see the env README).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: ./test.sh installs Debian's chromium package")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def app_url(page_app):
    """The session's app.py with the demo model (tests/conftest.py's page_app); each test gets a fresh page."""
    return page_app[0]


@pytest.fixture
def page(browser, app_url, tmp_path, request):
    """A fresh page on the app; its screenshot is saved in the test's temporary folder, and
    its path is printed when the test fails."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(app_url)
    page.wait_for_selector("#txt2img_generate", timeout=30000)
    yield page
    shot = tmp_path / "screenshot.png"
    page.screenshot(path=str(shot), full_page=True)
    if failed(request):
        print(f"screenshot of the failed test: {shot}")
    context.close()
