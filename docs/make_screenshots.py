"""Take the README's screenshots: each tab at 1280x800, after one demo-model generation.

Run with `.venv/bin/python docs/make_screenshots.py`; needs Debian's chromium (see README)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from app_process import running_app  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
TABS = {"txt2img": "txt2img", "img2img": "img2img", "Extras": "extras", "PNG Info": "png_info", "Settings": "settings"}


def main() -> None:
    out = ROOT / "docs" / "screenshots"
    out.mkdir(exist_ok=True)
    with (
        tempfile.TemporaryDirectory() as data,
        running_app(Path(data), model_name="demo-tiny-sd.safetensors") as url,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(url)
        page.wait_for_selector("#txt2img_generate", timeout=60000)
        page.fill("#txt2img_prompt textarea", "a lighthouse on a cliff, (sunset:1.2), oil painting")
        for elem_id, value in (("txt2img_steps", 8), ("txt2img_width", 256), ("txt2img_height", 256)):
            page.locator(f"#{elem_id} input[type=number]").fill(str(value))
            page.locator(f"#{elem_id} input[type=number]").press("Tab")
        page.click("#txt2img_generate")
        page.wait_for_selector("#html_info_txt2img p", timeout=120000)
        for label, name in TABS.items():
            page.click(f"#tabs button[role=tab]:has-text('{label}')")
            page.evaluate("window.scrollTo(0, 0)")
            page.wait_for_timeout(500)
            page.screenshot(path=str(out / f"{name}.png"))
            print(out / f"{name}.png")
        browser.close()


if __name__ == "__main__":
    main()
