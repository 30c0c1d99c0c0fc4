"""The Extensions tab in the browser: install an extension from a local git repository by its URL, press
"Apply and restart UI", and the reloaded page has the extension's tab; Settings → "Reload UI" reloads too."""

import json

import pytest
from app_process import running_app, with_demo_checkpoint
from file_server import serving
from git_repos import Remote
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
    return data


@pytest.fixture(scope="module")
def app_url(app_data):
    with running_app(app_data) as url:
        yield url


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()


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
        expect(row).to_contain_text("Lights <b>up</b>")
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
