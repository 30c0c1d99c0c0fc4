"""app.py for real with an extension in its data dir: the extension's javascript, style.css, install.py
and script load; the Extensions tab installs from a git repository through its endpoint; "Apply and
restart UI" disables an extension and the page comes back without it, in the same process."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import requests
from app_process import endpoint_args, running_app, wait_for
from git_repos import Remote

SHINY_SCRIPT = """import gradio as gr
from modules import scripts


class Shiny(scripts.Script):
    def title(self):
        return "Shiny"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        return [gr.Checkbox(label="Shiny extension checkbox")]
"""


# An extension as people write them for A1111: a dropdown script, a top-level tab with a paste button and an
# app-started hook.
FRESH_SCRIPT = """from pathlib import Path

import gradio as gr
from modules import infotext_utils, script_callbacks, scripts
from modules.processing import process_images


def started(demo, app):
    (Path(__file__).parent.parent / "started.txt").write_text("yes")


def tabs():
    with gr.Blocks() as ui:
        gr.Markdown("Fresh extension tab body")
        text = gr.Textbox(label="Fresh infotext")
        send = gr.Button("Send to txt2img")
        infotext_utils.register_paste_params_button(infotext_utils.ParamBinding(send, "txt2img", text))
    return [(ui, "Fresh tab", "fresh_tab")]


script_callbacks.on_app_started(started)
script_callbacks.on_ui_tabs(tabs)


class Fresh(scripts.Script):
    def title(self):
        return "Fresh"

    def ui(self, is_img2img):
        return [gr.Textbox(label="Fresh suffix", value="in the snow")]

    def run(self, p, suffix):
        p.prompt = f"{p.prompt} {suffix}"
        return process_images(p)
"""


@pytest.fixture(scope="module")
def app(tmp_path_factory, demo_checkpoint):
    root = tmp_path_factory.mktemp("extensions-e2e")
    data = root / "data"
    (data / "models" / "Stable-diffusion").mkdir(parents=True)
    shutil.copy(demo_checkpoint, data / "models" / "Stable-diffusion" / "demo.safetensors")
    shiny = data / "extensions" / "shiny"
    for name, text in {
        "javascript/shiny.js": "window.SHINY_EXTENSION = 'loaded';\n",
        "style.css": ".shiny-extension-marker { color: rebeccapurple; }\n",
        "install.py": "open('ran-at-start.txt', 'w').write('yes')\n",
        "scripts/shiny.py": SHINY_SCRIPT,
    }.items():
        (shiny / name).parent.mkdir(parents=True, exist_ok=True)
        (shiny / name).write_text(text)
    remote = Remote(
        root,
        "fresh-ext",
        {
            "javascript/fresh.js": "window.FRESH_EXTENSION = 'loaded';\n",
            "install.py": "open('installed.txt', 'w').write('yes')\n",
            "scripts/fresh.py": FRESH_SCRIPT,
        },
    )
    with running_app(data, "--api") as url:  # the API beside the page restarts with it (the last test)
        yield url, data, remote


def page_html(url: str) -> str:
    """The page's HTML, followed by the text of each extension script its <head> names (`file=` URLs)."""
    html = requests.get(url, timeout=10).text
    scripts = re.findall(r'<script src="(file=[^"]+)"', html[: html.find("<body")])
    return "\n".join([html, *(requests.get(url + src, timeout=10).text for src in scripts)])


def test_an_enabled_extension_is_on_the_page(app):
    url, data, _ = app
    html = page_html(url)  # the scripts are in the page's <head>; Gradio puts the css in its embedded config
    assert "window.SHINY_EXTENSION = 'loaded';" in html and ".shiny-extension-marker" in html
    config = requests.get(url + "config", timeout=10).json()
    assert ".shiny-extension-marker { color: rebeccapurple; }" in config["css"]
    assert (data / "extensions" / "shiny" / "ran-at-start.txt").read_text() == "yes"
    assert "Shiny extension checkbox" in json.dumps(config)


def test_install_through_the_tab_then_apply_and_restart(app):
    from gradio_client import Client

    url, data, remote = app
    assert "fresh" not in requests.get(url + "sdapi/v1/scripts", timeout=10).json()["txt2img"]
    client = Client(url, verbose=False)
    message, _, _ = client.predict(str(remote.bare.parent / "missing.git"), "", "", api_name="/extensions_install")
    assert "git clone failed" in message and "does not exist" in message
    message, table, _ = client.predict(remote.bare.as_uri(), "", "", api_name="/extensions_install")
    assert "Installed fresh-ext" in message and "fresh-ext" in table
    assert (data / "extensions" / "fresh-ext" / "installed.txt").read_text() == "yes"
    assert sorted(p.name for p in (data / "extensions").iterdir()) == ["fresh-ext", "shiny"]

    message = client.predict(["fresh-ext"], [], api_name="/extensions_apply")
    assert "Restarting" in message
    html = wait_for(lambda: page_with(url, "FRESH_EXTENSION"), 120, "the restarted page with the new extension")
    assert "SHINY_EXTENSION" not in html and ".shiny-extension-marker" not in html
    assert json.loads((data / "config.json").read_text())["disabled_extensions"] == ["shiny"]
    assert "Shiny extension checkbox" not in requests.get(url + "config", timeout=10).text
    assert "Restarting the page" in (data / "server.log").read_text()


def test_the_installed_extensions_script_tab_and_hooks_work_after_the_restart(app):
    from gradio_client import Client

    url, data, _ = app
    wait_for(lambda: page_with(url, "FRESH_EXTENSION"), 120, "the page with the new extension")
    config = requests.get(url + "config", timeout=10).json()
    labels = {c.get("props", {}).get("label") for c in config["components"]}
    assert "Fresh tab" in labels and "Fresh extension tab body" in json.dumps(config)
    assert (data / "extensions" / "fresh-ext" / "started.txt").read_text() == "yes"
    client = Client(url, verbose=False)
    args = endpoint_args(
        client, "/txt2img", {"Prompt": "a barn", "Sampling steps": 2, "Width": 64, "Height": 64, "Script": "Fresh"}
    )
    _, info = client.predict(*args, api_name="/txt2img")
    assert "a barn in the snow" in info
    pasted = client.predict("a fox\nSteps: 9, Sampler: Heun, CFG scale: 3", api_name="/extension_paste_0")
    values = [update.get("value") for update in pasted if isinstance(update, dict)]
    assert "a fox" in values and 9 in values and "Heun" in values


def page_with(url: str, text: str) -> str | None:
    """The page's HTML once it is served and contains `text` (None before: down, or the old page)."""
    try:
        html = page_html(url)
    except requests.ConnectionError:
        return None
    return html if text in html else None


def test_apply_and_restart_also_restarts_the_api_served_beside_the_page(app):
    url, data, _ = app  # the install and restart of test_install_through_the_tab_then_apply_and_restart
    wait_for(lambda: page_with(url, "FRESH_EXTENSION"), 120, "the restarted page with the new extension")
    assert "fresh" in requests.get(url + "sdapi/v1/scripts", timeout=10).json()["txt2img"]
    assert (data / "extensions" / "fresh-ext" / "started.txt").read_text() == "yes"
