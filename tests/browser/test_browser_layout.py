"""The page's layout: at 1280x800 every tab fits without scrolling sideways; txt2img's first screen is A1111
1.10's (top row, tab strip, settings beside the gallery, in view at 1920x1080 and 1366x768) in both themes; Hires.
fix's header box; Interrupt and Skip in Generate's place while a job runs; X/Y/Z plot's 📒 and swap buttons; the
Settings search box."""

from collections.abc import Callable

import pytest
from outcomes import failed
from page_controls import new_app_page, pick
from playwright.sync_api import Page, expect

from modules.sampling import registry

TABS = ("txt2img", "img2img", "Extras", "PNG Info", "Settings")
THEMES = ("light", "dark")
WIDE = {"width": 1920, "height": 1080}


@pytest.fixture(scope="module")
def loaded_pages():
    """The module's pages, one per theme, each loaded once at 1920x1080 when a test first asks for it."""
    pages: dict[str, Page] = {}
    yield pages
    for page in pages.values():
        page.close()


@pytest.fixture
def themed(chromium, app_url, loaded_pages, request) -> Callable[[str], Page]:
    """The page in a theme ("light", "dark"): the module's, at 1920x1080 with txt2img open. Each test here sets
    what it reads; after a failed one the pages are loaded afresh."""

    def page_in(theme: str) -> Page:
        if theme not in loaded_pages:
            loaded_pages[theme] = new_app_page(chromium, f"{app_url}?__theme={theme}", viewport=WIDE)
        page = loaded_pages[theme]
        page.set_viewport_size(WIDE)
        page.click("#tabs button[role=tab]:has-text('txt2img')")
        assert page.evaluate("document.body.classList.contains('dark')") == (theme == "dark")
        return page

    yield page_in
    if failed(request):
        for page in loaded_pages.values():
            page.close()
        loaded_pages.clear()


@pytest.mark.parametrize("theme", THEMES)
def test_every_tab_fits_1280_pixels(themed, theme):
    page = themed(theme)
    page.set_viewport_size({"width": 1280, "height": 800})
    for tab in TABS:
        page.click(f"#tabs button[role=tab]:has-text('{tab}')")
        page.wait_for_timeout(300)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 1280, f"{tab} is {width} pixels wide"


# The first screen as A1111 1.10 lays it out: what must be wholly in view without scrolling, per window size.
IN_VIEW = {
    (1920, 1080): (
        "txt2img_prompt",
        "txt2img_generate",
        "txt2img_sampler_name",
        "txt2img_steps",
        "txt2img_width",
        "txt2img_height",
        "txt2img_cfg_scale",
        "txt2img_seed",
    ),
    (1366, 768): ("txt2img_prompt", "txt2img_generate", "txt2img_sampler_name", "txt2img_steps"),
}
# Boxes that must not overlap one another (the tab strip is its row of tab buttons).
SEPARATE = (
    "txt2img_prompt",
    "txt2img_neg_prompt",
    "txt2img_generate",
    "txt2img_tools",
    "txt2img_styles_row",
    "txt2img_extra_tabs_strip",
    "txt2img_sampler_name",
    "txt2img_steps",
    "txt2img_hr",
    "txt2img_refiner",
    "txt2img_width",
    "txt2img_height",
    "txt2img_n_iter",
    "txt2img_cfg_scale",
    "txt2img_seed",
    "txt2img_gallery",
)
BOXES = """(ids) => Object.fromEntries(ids.map((id) => {
  const element = id === 'txt2img_extra_tabs_strip' ? document.querySelector('#txt2img_extra_tabs [role=tablist]')
                                                     : document.getElementById(id);
  const r = element.getBoundingClientRect();
  return [id, {left: r.left, top: r.top, right: r.right, bottom: r.bottom}];
}))"""


def overlap(a: dict, b: dict) -> bool:
    return (
        a["left"] < b["right"] - 1
        and b["left"] < a["right"] - 1
        and a["top"] < b["bottom"] - 1
        and b["top"] < a["bottom"] - 1
    )


@pytest.mark.parametrize("theme", THEMES)
def test_first_screen_is_laid_out_as_a1111s(themed, theme):
    page = themed(theme)
    for (width, height), in_view in IN_VIEW.items():
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(300)
        box = page.evaluate(BOXES, list({*SEPARATE, *in_view, "txt2img_settings"}))
        where = f"{theme} theme at {width}x{height}"
        for name in in_view:
            assert box[name]["top"] >= 0 and box[name]["bottom"] <= height, f"{name} is out of view ({where})"
        assert box["txt2img_gallery"]["top"] <= height - 256, f"the gallery starts too low ({where})"
        # top row: prompt on the left, Generate on the right of it, level with it
        prompt, generate = box["txt2img_prompt"], box["txt2img_generate"]
        assert prompt["right"] <= generate["left"] and generate["top"] < prompt["bottom"], where
        # the tab strip under the top row and above the settings; the gallery right of the settings
        strip, settings, gallery = box["txt2img_extra_tabs_strip"], box["txt2img_settings"], box["txt2img_gallery"]
        assert box["txt2img_neg_prompt"]["bottom"] <= strip["top"] and strip["bottom"] <= settings["top"], where
        assert settings["right"] <= gallery["left"] and gallery["top"] < settings["bottom"], where
        overlapping = [(a, b) for i, a in enumerate(SEPARATE) for b in SEPARATE[i + 1 :] if overlap(box[a], box[b])]
        assert not overlapping, f"{overlapping} overlap ({where})"
    page.set_viewport_size(WIDE)
    page.click("#tabs button[role=tab]:has-text('img2img')")
    image = page.locator("#img2img_image").bounding_box()
    assert image["y"] + image["height"] <= 1080, f"img2img's image is out of view ({theme} theme)"


def test_hires_fix_turns_on_when_opened_and_its_box_stands_alone_once_clicked(themed):
    page = themed("light")
    box = page.locator("#txt2img_hr-checkbox input")
    content = page.locator("#txt2img_hr_upscaler")
    expect(box).not_to_be_checked()
    page.click("#txt2img_hr > .label-wrap")  # opening turns it on, as in A1111
    expect(content).to_be_visible()
    expect(box).to_be_checked()
    expect(page.locator("#txt2img_hires_summary")).to_contain_text("from 512x512 to 1024x1024")
    box.click()  # the box in the header turns it off and leaves the accordion open
    expect(box).not_to_be_checked()
    page.wait_for_timeout(500)
    expect(content).to_be_visible()
    page.click("#txt2img_hr > .label-wrap")  # from now on closing leaves the box as it is
    expect(content).to_be_hidden()
    box.click()
    expect(box).to_be_checked()
    page.wait_for_timeout(500)
    expect(content).to_be_hidden()
    box.click()  # off again, as loaded, for the next test on this page
    expect(box).not_to_be_checked()


def test_interrupt_and_skip_take_generates_place_while_a_job_runs(themed):
    page = themed("light")
    generate, interrupt, skip = (page.locator(f"#txt2img_{name}") for name in ("generate", "interrupt", "skip"))
    expect(interrupt).to_be_hidden()
    expect(skip).to_be_hidden()
    for elem_id, value in (("txt2img_steps", 150), ("txt2img_width", 256), ("txt2img_height", 256)):
        number = page.locator(f"#{elem_id} input[type=number]")
        number.fill(str(value))
        number.press("Tab")
    generate.click()
    expect(interrupt).to_be_visible(timeout=10000)
    expect(skip).to_be_visible()
    expect(generate).to_be_hidden()
    place = page.locator("#txt2img_generate_box").bounding_box()
    for button in (interrupt, skip):  # side by side where Generate was
        shown = button.bounding_box()
        assert place["x"] <= shown["x"] and shown["x"] + shown["width"] <= place["x"] + place["width"] + 1
    # as in A1111, an interrupt that comes before the job has started is lost: wait for its first step
    expect(page.locator("#html_info_txt2img")).to_contain_text("Step ", timeout=60000)
    interrupt.click()
    expect(page.locator("#html_info_txt2img")).to_contain_text("(interrupted)", timeout=60000)
    expect(generate).to_be_visible()
    expect(interrupt).to_be_hidden()
    expect(skip).to_be_hidden()


def test_xyz_plot_fills_an_axis_with_its_choices_and_swaps_axes(themed):
    page = themed("light")
    pick(page, "txt2img_script_dropdown", "X/Y/Z plot")
    xyz = "script_txt2img_x_y_z_plot"
    fill = page.locator("#tab_txt2img #xyz_grid_fill_x_tool_button")
    expect(fill).to_be_hidden()  # Seed has no list of values
    pick(page, f"{xyz}_x_type", "Sampler")
    fill.click()
    every_sampler = ", ".join(registry.SAMPLER_NAMES)
    expect(page.locator(f"#{xyz}_x_values textarea")).to_have_value(every_sampler)
    page.click("#tab_txt2img #xy_grid_swap_axes_button")
    expect(page.locator(f"#{xyz}_y_type input")).to_have_value("Sampler")
    expect(page.locator(f"#{xyz}_y_values textarea")).to_have_value(every_sampler)
    expect(page.locator(f"#{xyz}_x_type input")).to_have_value("Nothing")
    expect(page.locator(f"#{xyz}_x_values textarea")).to_have_value("")


def test_settings_search_shows_the_matching_settings_of_every_section(themed):
    page = themed("light")
    page.click("#tabs button[role=tab]:has-text('Settings')")
    search = page.locator("#settings_search textarea, #settings_search input").first
    search.fill("face restoration")
    expect(page.locator("#setting_face_restoration_model")).to_be_visible()  # not the first section's
    expect(page.locator("#setting_samples_save")).to_be_hidden()
    expect(page.locator("#settings > .tab-wrapper")).to_be_hidden()
    search.fill("")
    expect(page.locator("#settings > .tab-wrapper")).to_be_visible()
    expect(page.locator("#setting_face_restoration_model")).to_be_hidden()  # back in its own section
