"""The Extensions tab in the browser: install an extension from a local git repository by its URL, press
"Apply and restart UI", and the reloaded page has the extension's tab; Settings → "Reload UI" reloads too.

And an A1111-style extension's javascript in Chromium (tests/browser/extension_probe.py's, in the app's
extensions folder from its start, so one app serves the whole module): its script runs before DOMContentLoaded,
finds A1111's element ids through gradioApp() and Gradio 3's `#txt2img_prompt > label > textarea` path, reads
opts and sets titles, gets onUiLoaded / onUiUpdate / onUiTabChange / onOptionsChanged, and fetches its own
on_app_started route and a `file=` URL inside its folder. Typing into the moved prompt box still reaches
Gradio, and Generate reads it and the size ⇅ swapped. These run first, on the app as it started."""

import json
import time

import pytest
from app_process import running_app, with_demo_checkpoint
from extension_probe import probe, write_probe_extension
from file_server import serving
from git_repos import Remote
from page_controls import new_tab, open_app, open_tab
from playwright.sync_api import expect

TAB_SCRIPT = """import gradio as gr
from modules import script_callbacks


def tabs():
    with gr.Blocks() as ui:
        gr.Markdown("Harbor extension tab body")
    return [(ui, "Harbor tab", "harbor_tab")]


script_callbacks.on_ui_tabs(tabs)
"""


@pytest.fixture(scope="module")
def remote(tmp_path_factory):
    return Remote(tmp_path_factory.mktemp("harbor-remote"), "harbor-ext", {"scripts/harbor.py": TAB_SCRIPT})


@pytest.fixture(scope="module")
def app_data(tmp_path_factory, demo_checkpoint):
    data = tmp_path_factory.mktemp("extensions-browser-data")
    with_demo_checkpoint(data, demo_checkpoint)
    write_probe_extension(data / "extensions")
    return data


@pytest.fixture(scope="module")
def app_url(app_data):
    with running_app(app_data, model_name="demo.safetensors") as url:
        yield url


@pytest.fixture
def page(reused_page):
    """One page for the module, in the order of its tests: the probe's checks on the page as loaded come first; the
    installs and reloads after them start from whatever tab the last test left open."""
    return reused_page


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


def test_on_ui_loaded_waits_for_the_galleries_whose_code_comes_late(chromium, app_url):
    # Gradio fetches a component's code when the component is first shown; on a busy machine the galleries' came
    # after the tabs had opened, and onUiLoaded ran without them. Here their code comes 2 s late.
    def late(route):
        time.sleep(2)
        route.continue_()

    page = new_tab(chromium, app_url)
    try:
        page.route("**/Gallery-*.js", late)
        open_app(page, app_url)
        page.wait_for_function("window.probe && window.probe.done", timeout=30000)
        assert probe(page, "ids") == []
    finally:
        page.close()


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


def test_install_from_url_then_apply_and_restart_shows_its_tab(page, remote, app_data):
    expect(page.get_by_role("tab", name="Harbor tab")).to_have_count(0)
    open_tab(page, "Extensions")
    open_tab(page, "Install from URL")
    page.locator("#extensions_install_url textarea").fill(remote.bare.as_uri())
    page.click("#extensions_install_button")
    expect(page.locator("#extension_install_result")).to_contain_text("Installed harbor-ext", timeout=60000)
    assert (app_data / "extensions" / "harbor-ext" / "scripts" / "harbor.py").exists()

    open_tab(page, "Installed")
    expect(page.locator("#extensions_installed_html")).to_contain_text("harbor-ext")
    expect(page.locator("#extensions_enabled_list").get_by_label("harbor-ext")).to_be_checked()
    page.evaluate("window.beforeRestart = true")
    page.click("#extensions_apply")
    expect(page.locator("#extensions_installed_info")).to_contain_text("Restarting the page")
    harbor = page.get_by_role("tab", name="Harbor tab")
    expect(harbor).to_be_visible(timeout=180000)  # the page reloaded itself from the restarted server
    assert page.evaluate("window.beforeRestart === undefined")
    harbor.click()
    expect(page.get_by_text("Harbor extension tab body")).to_be_visible()


def test_the_available_table_installs_an_extension_with_its_own_button(page, tmp_path, app_data):
    lantern = Remote(tmp_path, "lantern-ext", {"scripts/lantern.py": "# nothing to load\n"})
    index = {
        "extensions": [
            {"name": "Lantern", "url": lantern.bare.as_uri(), "description": "Lights <b>up</b>", "tags": ["script"]}
        ]
    }
    with serving({"/index.json": json.dumps(index).encode()}) as server:
        open_tab(page, "Extensions")
        open_tab(page, "Available")
        page.locator("#extensions_index_url textarea, #extensions_index_url input").fill(f"{server}/index.json")
        page.click("#extensions_load_index")
        row = page.locator("#available_extensions tbody tr", has_text="Lantern")
        expect(row).to_contain_text("Lights <b>up</b>", timeout=30000)  # the server fetches the index: 5 s was short
        row.get_by_role("button", name="Install").click()
        expect(page.locator("#extensions_available_info")).to_contain_text("Installed lantern-ext", timeout=60000)
    assert (app_data / "extensions" / "lantern-ext" / "scripts" / "lantern.py").exists()


def test_reload_ui_in_settings_rebuilds_the_page(page):
    page.evaluate("window.beforeReload = true")
    open_tab(page, "Settings")
    page.click("#settings_restart_gradio")
    expect(page.locator("#settings_result")).to_contain_text("Reloading the UI")
    page.wait_for_function("window.beforeReload === undefined", timeout=180000)
    expect(page.locator("#txt2img_generate")).to_be_visible(timeout=60000)
