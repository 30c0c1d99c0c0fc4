"""An A1111-style extension's javascript in Chromium: its script runs before DOMContentLoaded, finds A1111's
element ids through gradioApp() and Gradio 3's `#txt2img_prompt > label > textarea` path, reads opts and
sets titles, gets onUiLoaded / onUiUpdate / onUiTabChange / onOptionsChanged, and fetches its own
on_app_started route and a `file=` URL inside its folder. Typing into the moved prompt box still reaches
Gradio, and Generate reads it and the size ⇅ swapped."""

import shutil

import pytest
from app_process import running_app
from playwright.sync_api import expect

EXT = "probe-ext"
ROUTES = """from modules import script_callbacks


def routes(_demo, app):
    @app.get("/tacapi/v1/tag-list")
    def tag_list():
        return ["1girl", "scenery"]


script_callbacks.on_app_started(routes)
"""
# Written as extensions for A1111 are: globals, DOMContentLoaded, the folder from document.currentScript.
PROBE = """
var probe = {beforeDomContentLoaded: document.readyState === "loading", updates: 0, tabs: [], optionChanges: 0};
var probeFolder = decodeURIComponent(new URL(document.currentScript.src).pathname).replace(/^\\/file=/, "")
  .replace(/\\/javascript\\/[^/]*$/, "");
titles["Generate"] = "Probe: make the images";
document.addEventListener("DOMContentLoaded", () => { probe.domContentLoaded = true; });
onUiUpdate(() => { probe.updates += 1; });
onUiTabChange(() => { probe.tabs.push(get_uiCurrentTabContent().id); });
onOptionsChanged(() => { probe.optionChanges += 1; probe.clipSkip = opts.CLIP_stop_at_last_layers; });
onUiLoaded(async () => {
  probe.generate = gradioApp().getElementById("txt2img_generate")?.tagName;
  probe.buttonTexts = [...gradioApp().querySelectorAll("#txt2img_generate, #img2img_generate, #settings_submit")]
    .map((button) => button.textContent);
  probe.ids = ["txt2img_prompt", "txt2img_neg_prompt", "txt2img_gallery", "txt2img_settings", "txt2img_width",
               "txt2img_height", "txt2img_res_switch_btn", "txt2img_styles", "txt2img_steps", "txt2img_cfg_scale",
               "txt2img_seed", "img2img_prompt", "img2img_neg_prompt", "img2img_generate", "img2img_gallery",
               "img2img_settings", "img2img_res_switch_btn", "img2img_seed", "tab_txt2img", "tab_img2img",
               "tab_settings", "quicksettings", "settings"].filter((id) => !gradioApp().getElementById(id));
  probe.areas = ["#txt2img_prompt", "#txt2img_neg_prompt", "#img2img_prompt", "#img2img_neg_prompt"]
    .map((id) => gradioApp().querySelector(`${id} > label > textarea`)?.tagName);
  probe.samplesFormat = opts.samples_format;
  probe.currentTab = get_uiCurrentTab()?.textContent.trim();
  probe.tags = await (await fetch("tacapi/v1/tag-list")).json();
  probe.csv = await (await fetch(`file=${probeFolder}/tags/tags.csv?${Date.now()}`)).text();
  probe.done = true;
});
"""


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, demo_checkpoint):
    data = tmp_path_factory.mktemp("extension-js-data")
    (data / "models" / "Stable-diffusion").mkdir(parents=True)
    shutil.copy(demo_checkpoint, data / "models" / "Stable-diffusion" / "demo.safetensors")
    ext = data / "extensions" / EXT
    for name, text in (("scripts/routes.py", ROUTES), ("javascript/probe.js", PROBE), ("tags/tags.csv", "1girl,0\n")):
        (ext / name).parent.mkdir(parents=True, exist_ok=True)
        (ext / name).write_text(text)
    with running_app(data, model_name="demo.safetensors") as url:
        yield url


def probe(page, key: str):
    return page.evaluate(f"window.probe[{key!r}]")


def test_an_a1111_extension_script_finds_the_page_api(page):
    page.wait_for_function("window.probe && window.probe.done", timeout=30000)
    assert probe(page, "beforeDomContentLoaded") and probe(page, "domContentLoaded")
    assert probe(page, "generate") == "BUTTON" and probe(page, "ids") == []
    assert probe(page, "buttonTexts") == ["Generate", "Generate", "Apply settings"]  # as Gradio 3 wrote them
    assert probe(page, "areas") == ["TEXTAREA"] * 4
    assert probe(page, "samplesFormat") == "png" and probe(page, "clipSkip") == 1
    assert probe(page, "currentTab") == "txt2img"
    assert probe(page, "tags") == ["1girl", "scenery"] and probe(page, "csv") == "1girl,0\n"
    assert probe(page, "updates") > 0
    expect(page.locator("#txt2img_generate")).to_have_attribute("title", "Probe: make the images")

    page.get_by_role("tab", name="img2img", exact=True).click()
    page.wait_for_function("window.probe.tabs.includes('tab_img2img')")
    page.get_by_role("tab", name="txt2img", exact=True).click()

    clip_skip = page.locator("#setting_CLIP_stop_at_last_layers input[type=number]")
    clip_skip.fill("2")
    clip_skip.press("Tab")
    page.wait_for_function("window.probe.clipSkip === 2 && opts.CLIP_stop_at_last_layers === 2", timeout=15000)


def test_typing_into_the_a1111_path_reaches_gradio_and_generate(page):
    page.wait_for_function("window.probe && window.probe.done", timeout=30000)
    for elem_id, value in (("txt2img_width", "64"), ("txt2img_height", "96")):
        box = page.locator(f"#{elem_id} input[type=number]")
        box.fill(value)
        box.press("Tab")
    page.click("#txt2img_res_switch_btn")  # A1111's ⇅
    expect(page.locator("#txt2img_width input[type=number]")).to_have_value("96")
    page.locator("#txt2img_steps input[type=number]").fill("2")
    prompt = page.locator("#txt2img_prompt > label > textarea")
    prompt.click()
    prompt.type("1girl, red hair")
    page.locator("#txt2img_neg_prompt > label > textarea").fill("blurry")
    expect(page.locator("#txt2img_prompt_token_counter")).not_to_have_text("0/75", timeout=15000)
    page.click("#txt2img_generate")
    info = page.locator("#html_info_txt2img")
    expect(info).to_contain_text("1girl, red hair", timeout=120000)
    expect(info).to_contain_text("Negative prompt: blurry")
    expect(info).to_contain_text("Size: 96x64")
