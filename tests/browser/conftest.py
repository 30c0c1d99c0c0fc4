"""Browser tests: Debian's Chromium driven by Playwright against app.py on a free port."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from outcomes import failed
from page_controls import VIEWPORT, new_app_page, open_app

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
def chromium():
    """Chromium for the session as one browser context with a profile on disk; each test opens its own tabs in it
    (page_controls.new_tab, new_app_page), which start without the cookies of earlier tabs or their site's data
    (local storage and the like). The tabs share the HTTP cache, V8's cache of compiled scripts and renderer
    processes, as a returning user's tabs do: a page load costs Chromium about 1.3 CPU s and the app about 0.4
    less than in a new incognito context of its own."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: ./test.sh installs Debian's chromium package")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    # Not a tmp_path_factory folder: tests/conftest.py's module_dirs_removed would delete it after the first module.
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, viewport=VIEWPORT
        )
        yield context
        context.close()


@pytest.fixture(scope="session")
def app_url(page_app):
    """The session's app.py with the demo model (tests/conftest.py's page_app); each test gets a fresh page."""
    return page_app[0]


def screenshot_if_failed(page, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """When the test failed, save a screenshot of `page` in its temporary folder and print the path (a passing
    test's would be deleted with the folder unseen)."""
    if failed(request):
        shot = tmp_path / "screenshot.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot of the failed test: {shot}")


@pytest.fixture
def page(chromium, app_url, tmp_path, request):
    """A fresh page on the app (a screenshot of it is kept when the test fails)."""
    page = new_app_page(chromium, app_url)
    yield page
    screenshot_if_failed(page, tmp_path, request)
    page.close()


@pytest.fixture(scope="module")
def module_page(chromium, app_url):
    """One page on the app for a whole module (see reused_page)."""
    page = new_app_page(chromium, app_url)
    yield page
    page.close()


@pytest.fixture
def reused_page(module_page, app_url, tmp_path, request):
    """The module's page, loaded once, for tests that each set the controls they read: a module's `page` where
    its tests allow. After a failed test it is loaded again, so the next test starts from the page as loaded."""
    yield module_page
    if failed(request):
        screenshot_if_failed(module_page, tmp_path, request)
        open_app(module_page, app_url)
