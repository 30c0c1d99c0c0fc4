"""A1111's ui_components in Chromium on a real Gradio server: a ToolButton subclass (sd-webui-ar's ARButton)
shows its text and sets the sliders it is wired to with a Gradio 3 `_js=`; InputAccordion's value follows
the accordion and the accordion follows its value."""

from __future__ import annotations

import gradio as gr
import pytest
from app_process import free_port
from page_controls import new_tab
from playwright.sync_api import expect

from modules.extensions import gradio_compat

gradio_compat.install()


@pytest.fixture(scope="module")
def demo_url():
    from modules.ui_components import InputAccordion, ToolButton

    class ARButton(ToolButton):
        def __init__(self, ar: float = 1.0, **kwargs) -> None:
            super().__init__(**kwargs)
            self.ar = ar

        def apply(self, width: float, height: float) -> list[int]:
            return [round(self.ar * height), round(height)]

    with gr.Blocks() as demo:
        with gr.Row(variant="compact"):
            width = gr.Slider(64, 2048, 512, step=8, label="Width", elem_id="txt2img_width")
            height = gr.Slider(64, 2048, 512, step=8, label="Height", elem_id="txt2img_height")
            button = ARButton(ar=1.5, value="3:2", elem_id="ar_button")
        button.click(
            button.apply,
            inputs=[width, height],
            outputs=[width, height],
            _js="(w, h) => { window.arClicked = true; return [w, h]; }",
        )
        with InputAccordion(False, label="Enable thing", elem_id="acc") as accordion:
            gr.Markdown("Inside the accordion")
        shown = gr.Textbox(label="Read back", elem_id="read_back")
        gr.Button("Read", elem_id="read").click(lambda value: f"value={value}", accordion, shown)
        gr.Button("Switch off", elem_id="switch_off").click(lambda: False, None, accordion)
    port = free_port()
    demo.launch(server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture
def page(chromium, demo_url):
    page = new_tab(chromium, demo_url, {"width": 1200, "height": 900})
    page.goto(demo_url)
    page.wait_for_selector("#read", timeout=30000)
    yield page
    page.close()


def test_a_tool_button_subclass_shows_its_text_and_sets_the_size(page):
    button = page.locator("#ar_button")
    expect(button).to_have_text("3:2")
    button.click()
    expect(page.locator("#txt2img_width input[type=number]")).to_have_value("768")
    expect(page.locator("#txt2img_height input[type=number]")).to_have_value("512")
    assert page.evaluate("window.arClicked") is True


def test_input_accordion_value_and_accordion_follow_each_other(page):
    def read_back(expected: str) -> None:
        page.click("#read")
        expect(page.locator("#read_back textarea")).to_have_value(expected)

    read_back("value=False")
    page.locator("#acc").get_by_text("Enable thing").click()
    expect(page.get_by_text("Inside the accordion")).to_be_visible()
    read_back("value=True")
    page.click("#switch_off")
    expect(page.get_by_text("Inside the accordion")).to_be_hidden()
    read_back("value=False")
