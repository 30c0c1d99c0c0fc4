"""The txt2img tab."""
from __future__ import annotations

import gradio as gr

from modules.services import Services
from modules.ui.generation_tab import GenerationTab
from modules.ui.ui_config import UiConfig

TAB = "txt2img"


def build_tab(services: Services, ui_config: UiConfig, clip_skip: gr.Slider) -> GenerationTab:
    """Lay out the tab and wire Generate. Call inside a gr.Tab context."""
    tab = GenerationTab(TAB, services, ui_config)
    tab.prompt_row()
    with gr.Row():
        with gr.Column():
            tab.sampling_controls()
        with gr.Column():
            tab.output_column()
            with gr.Row():
                tab.send_to_img2img = gr.Button("🖼️ Send to img2img", elem_id=f"{TAB}_send_to_img2img", size="sm")
                tab.send_to_inpaint = gr.Button("🎨️ Send to inpaint", elem_id=f"{TAB}_send_to_inpaint", size="sm")
    tab.wire(clip_skip, lambda params, extra: services.txt2img(params))
    return tab
