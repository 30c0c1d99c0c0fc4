"""Browser tests: Debian's Chromium driven by Playwright against app.py on a free port."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from app_process import running_app, with_demo_checkpoint

CHROMIUM = Path("/usr/bin/chromium")
# Headless flags for this machine's closed network (see the env README).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


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


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, demo_checkpoint):
    """app.py with the demo model, in a data dir of its own."""
    data = tmp_path_factory.mktemp("browser-data")
    with_demo_checkpoint(data, demo_checkpoint)
    with running_app(data, model_name="demo.safetensors") as url:
        yield url


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    item.stash.setdefault(_REPORTS, {})[outcome.get_result().when] = outcome.get_result()


_REPORTS = pytest.StashKey[dict]()


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
    report = request.node.stash.get(_REPORTS, {}).get("call")
    if report is not None and report.failed:
        print(f"screenshot of the failed test: {shot}")
    context.close()
