"""The whole page: quicksettings row (checkpoint, Clip skip), status line and the tabs."""
from __future__ import annotations

from pathlib import Path

import gradio as gr
from PIL import Image

from modules.errors import UserError
from modules.options import OPTIONS
from modules.services import Services
from modules.ui import extras, img2img, png_info, txt2img
from modules.ui.generation_tab import GenerationTab
from modules.ui.infotext_paste import Quicksettings, connect_paste_button
from modules.ui.ui_config import UiConfig

CSS = """
.infotext { font-family: monospace; font-size: 0.9em; white-space: pre-wrap; word-break: break-word; }
#quicksettings { align-items: end; }
.token-counter { text-align: right; font-size: 0.8em; opacity: 0.7; margin: -2.4em 0.8em 0 0; z-index: 10;
                 pointer-events: none; min-height: 0 !important; }
"""
JAVASCRIPT_DIR = Path(__file__).with_name("javascript")


def head_scripts() -> str:
    """The page's own scripts (for example Ctrl+Up/Down weight editing), as <script> tags."""
    return "\n".join(f"<script>{path.read_text()}</script>" for path in sorted(JAVASCRIPT_DIR.glob("*.js")))


def build_page(services: Services, ui_config: UiConfig) -> gr.Blocks:
    """Build the Gradio page. It never touches the model; it talks to the engine."""
    models = services.models
    clip_info = OPTIONS["CLIP_stop_at_last_layers"]
    with gr.Blocks(title="Stable Diffusion") as page:
        with gr.Row(elem_id="quicksettings"):
            checkpoint = gr.Dropdown(label="Stable Diffusion checkpoint", choices=models.titles(),
                                     value=models.current_title, elem_id="setting_sd_model_checkpoint", scale=4,
                                     allow_custom_value=True)
            refresh = gr.Button("🔄", elem_id="refresh_sd_model_checkpoint", size="sm", scale=0, min_width=40)
            clip_skip = gr.Slider(label=clip_info.label, minimum=clip_info.minimum, maximum=clip_info.maximum,
                                  step=clip_info.step, value=services.opts.CLIP_stop_at_last_layers,
                                  elem_id="setting_CLIP_stop_at_last_layers", scale=2)
        status = gr.Markdown(services.status, elem_id="model_status")
        if services.notices:
            gr.Markdown("\n".join(f"⚠️ {notice}" for notice in services.notices), elem_id="notices")
        with gr.Tabs(elem_id="tabs") as tabs:
            with gr.Tab("txt2img", id="txt2img"):
                t2i = txt2img.build_tab(services, ui_config, clip_skip)
            with gr.Tab("img2img", id="img2img"):
                i2i = img2img.build_tab(services, ui_config, clip_skip)
            with gr.Tab("Extras", id="extras"):
                extras.build_tab(services)
            with gr.Tab("PNG Info", id="pnginfo"):
                png = png_info.build_tab()
        send_to_img2img(t2i, i2i, tabs)

        def change_checkpoint(title: str, progress: gr.Progress = gr.Progress()) -> tuple:
            if not title or title == models.current_title:
                return gr.update(), services.status
            progress(0, desc=f"Loading {title}…")
            future = services.load_checkpoint(title)
            try:
                future.result()
            except UserError as exc:
                services.load_error = None if models.current else str(exc)
                gr.Warning(str(exc))
                return gr.update(value=models.current_title), f"⚠️ {exc}"
            return gr.update(choices=models.titles(), value=models.current_title), services.status

        def refresh_list() -> dict:
            models.refresh()
            return gr.update(choices=models.titles(), value=models.current_title)

        def save_clip_skip(value: float) -> None:
            services.opts.set("CLIP_stop_at_last_layers", int(value))

        def page_status() -> tuple:
            loaded = models.current is not None or services.load_error is not None
            dropdown = gr.update(choices=models.titles(), value=models.current_title)
            return services.status, dropdown, gr.Timer(active=not loaded)

        checkpoint.input(change_checkpoint, inputs=checkpoint, outputs=[checkpoint, status],
                         api_name="change_checkpoint")
        quick = Quicksettings({"clip_skip": clip_skip}, checkpoint, status, models, change_checkpoint)
        for tab in (t2i, i2i):
            connect_paste_button(tab, quick)
        for target in png_info.generation_targets(t2i, i2i):
            png_info.connect_send_button(png, target, tabs, quick)
        refresh.click(refresh_list, outputs=checkpoint, api_visibility="private")
        clip_skip.release(save_clip_skip, inputs=clip_skip, api_visibility="private")
        timer = gr.Timer(1.0)
        timer.tick(page_status, outputs=[status, checkpoint, timer], api_visibility="private")
        page.load(page_status, outputs=[status, checkpoint, timer], api_visibility="private")
    return page


def send_to_img2img(source: GenerationTab, target: GenerationTab, tabs: gr.Tabs) -> None:
    """The "Send to img2img / inpaint" buttons: the selected image and the shared settings move over."""
    shared = [name for name in source.controls if name in target.controls]

    def sender(sub_tab: str, mode: int):
        def send(gallery: list | None, selected: int, *values):
            if not gallery:
                raise gr.Error("Generate an image first")
            item = gallery[min(selected or 0, len(gallery) - 1)]
            image = Image.open(item[0] if isinstance(item, (list, tuple)) else item)
            picture = image if mode == img2img.IMG2IMG else {"background": image, "layers": [], "composite": image}
            return (picture, *values, gr.Tabs(selected="img2img"), gr.Tabs(selected=sub_tab), mode)
        return send

    for button, sub_tab, mode, picture in ((source.send_to_img2img, "img2img_tab", img2img.IMG2IMG, target.image),
                                           (source.send_to_inpaint, "inpaint_tab", img2img.INPAINT, target.inpaint)):
        inputs = [source.gallery, source.selected] + [source.controls[n] for n in shared]
        outputs = [picture] + [target.controls[n] for n in shared] + [tabs, target.modes, target.mode]
        button.click(sender(sub_tab, mode), inputs=inputs, outputs=outputs, api_visibility="private")
