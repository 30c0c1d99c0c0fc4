"""Gradio 3 calls from A1111-era extensions under Gradio 6 (modules.extensions.gradio_compat, modules.ui_components):
built into a page served by a real Gradio server and read back from its /config."""

from __future__ import annotations

import importlib.util
import sys

import gradio as gr
import pytest
import requests
from app_process import free_port

from modules.extensions import gradio_compat

gradio_compat.install()

# What an A1111-era extension writes: ToolButton subclasses (sd-webui-ar's ARButton), `_js=`,
# `.style()`, gr.Box, variant="compact" and Gradio 3 keywords Gradio 6 no longer takes.
EXTENSION_UI = """
import gradio as gr
from modules.ui_components import DropdownMulti, FormRow, InputAccordion, ToolButton


class ARButton(ToolButton):
    def __init__(self, ar=1.0, **kwargs):
        super().__init__(**kwargs)
        self.ar = ar

    def apply(self, w, h):
        return [round(self.ar * h), h]


class PlainSubclass(gr.Button):
    pass


def build():
    with gr.Row(variant="compact").style(equal_height=True):
        width = gr.Slider(64, 2048, 512, label="Width", elem_id="compat_width")
        height = gr.Slider(64, 2048, 512, label="Height", elem_id="compat_height")
        button = ARButton(ar=1.5, value="3:2", elem_id="compat_ar_button")
        button.click(button.apply, inputs=[width, height], outputs=[width, height], _js="(w, h) => [w, h]")
    with gr.Box(elem_id="compat_box"):
        gr.Button("Plain", elem_id="compat_plain").style(full_width=False, size="sm")
        PlainSubclass("Subclassed", elem_id="compat_subclass")
    with gr.Column(variant="compact"), gr.Group(variant="compact"):
        text = gr.Textbox(label="Text", elem_id="compat_text").style(container=False)
        text.change(lambda t: t, text, text, _js="(t) => t", show_progress=False).then(
            lambda t: t, text, text, _js="(t) => t.trim()")
        gr.Image(source="upload", tool="sketch", elem_id="compat_image")
        gr.Gallery(elem_id="compat_gallery").style(grid=4, height="auto")
    with FormRow(elem_id="compat_form_row"):
        DropdownMulti(choices=["a", "b"], value=["a"], label="Many", elem_id="compat_multi")
    with InputAccordion(True, label="Extra options", elem_id="compat_accordion") as accordion:
        with accordion.extra():
            gr.HTML("beside", elem_id="compat_extra")
        gr.Slider(label="Inside", elem_id="compat_inside")
    return accordion
"""


@pytest.fixture(scope="module")
def extension_module(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compat-extension")
    path = folder / "compat_ui.py"
    path.write_text(EXTENSION_UI)
    spec = importlib.util.spec_from_file_location("compat_ui", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["compat_ui"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("compat_ui", None)


@pytest.fixture(scope="module")
def served(extension_module):
    """The page's /config as a real Gradio server serves it, with the built blocks."""
    with gr.Blocks() as demo:
        accordion = extension_module.build()
        demo.load(None, _js="() => { window.compatLoaded = true; }")
    port = free_port()
    demo.launch(server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        yield requests.get(url + "config", timeout=10).json(), accordion, url
    finally:
        demo.close()


def component(config: dict, elem_id: str) -> dict:
    found = [c for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id]
    assert len(found) == 1, f"no single component {elem_id!r}"
    return found[0]


def test_tool_button_subclasses_render_as_buttons_with_their_value(served):
    config, _, _ = served
    for elem_id, text in (("compat_ar_button", "3:2"), ("compat_subclass", "Subclassed")):
        button = component(config, elem_id)
        assert button["type"] == "button"
        assert button["props"]["value"] == text and button["props"]["name"] == "button"
    assert component(config, "compat_ar_button")["props"]["size"] == "sm"


def test_a_tool_button_subclass_handler_answers_over_http(served):
    from gradio_client import Client

    _, _, url = served
    assert Client(url, verbose=False).predict(512, 512, api_name="/apply") == (768, 512)


def test_gradio3_js_keyword_becomes_js_on_listeners_chains_and_load(served):
    config, _, _ = served
    scripts = {dependency.get("js") for dependency in config["dependencies"]}
    assert {"(w, h) => [w, h]", "(t) => t", "(t) => t.trim()", "() => { window.compatLoaded = true; }"} <= scripts
    change = next(d for d in config["dependencies"] if d.get("js") == "(t) => t")
    assert change["show_progress"] == "hidden"


def test_gradio3_layout_calls_are_accepted(served):
    config, _, _ = served
    assert component(config, "compat_box")["type"] == "group"
    assert component(config, "compat_form_row")["type"] == "row"
    assert component(config, "compat_image")["props"]["sources"] == ["upload"]
    assert component(config, "compat_gallery")["type"] == "gallery"
    multi = component(config, "compat_multi")
    assert multi["type"] == "dropdown" and multi["props"]["multiselect"] is True
    button = gr.Button("x")
    assert button.style(full_width=True) is button
    assert gr.Textbox.update(value="new", visible=False) == gr.update(value="new", visible=False)


def test_input_accordion_is_a_header_checkbox_linked_to_the_accordion(served):
    config, accordion, _ = served
    checkbox = component(config, "compat_accordion-checkbox")
    assert checkbox["type"] == "checkbox" and checkbox["props"]["value"] is True
    assert checkbox["props"]["visible"] is True and "input-accordion-checkbox" in checkbox["props"]["elem_classes"]
    shown = component(config, "compat_accordion")
    assert shown["type"] == "accordion" and shown["props"]["label"] == "Extra options"
    assert shown["props"]["open"] is True
    setters = [d for d in config["dependencies"] if d["targets"][0][0] == shown["id"]]
    assert len(setters) == 2 and all(
        d["outputs"] == [checkbox["id"]] and "#compat_accordion-checkbox" in d["js"] for d in setters
    )
    followers = [d for d in config["dependencies"] if d["targets"][0][0] == checkbox["id"] and d["js"]]
    assert any("#compat_accordion > .label-wrap" in d["js"] for d in followers)
    assert accordion.value is True and component(config, "compat_extra")["type"] == "html"


def test_no_pyi_stub_is_written_beside_an_extensions_component_classes(extension_module, tmp_path):
    from pathlib import Path

    folder = Path(extension_module.__file__).parent
    assert sorted(p.name for p in folder.iterdir() if p.suffix == ".pyi") == []
