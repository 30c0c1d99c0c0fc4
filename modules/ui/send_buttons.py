""""Send to img2img / inpaint / extras" under a generation tab's gallery, and what they do."""
from __future__ import annotations

import gradio as gr
from PIL import Image

from modules.ui import extras, img2img
from modules.ui.generation_tab import GenerationTab

TARGETS = (("img2img", "🖼️ Send to img2img"), ("inpaint", "🎨️ Send to inpaint"), ("extras", "📐 Send to extras"))


def add_send_buttons(tab: GenerationTab) -> None:
    """The three buttons in a row (call under the gallery); they are wired by connect_send_buttons."""
    tab.send_buttons = {}
    with gr.Row():
        for name, text in TARGETS:
            tab.send_buttons[name] = gr.Button(text, elem_id=f"{tab.tab}_send_to_{name}", size="sm")


def selected_image(gallery: list | None, selected: int | None) -> Image.Image:
    """The gallery's selected image (the first when none was clicked)."""
    if not gallery:
        raise gr.Error("Generate an image first")
    item = gallery[min(selected or 0, len(gallery) - 1)]
    return Image.open(item[0] if isinstance(item, (list, tuple)) else item)


def connect_send_buttons(source: GenerationTab, i2i: GenerationTab, extras_tab: extras.ExtrasTab,
                         tabs: gr.Tabs) -> None:
    """img2img and inpaint get the image and every setting both tabs have; extras gets the image
    (its saved file, so the generation parameters travel with it)."""
    shared = [name for name in source.controls if name in i2i.controls]
    gallery = [source.gallery, source.selected]

    def to_img2img(sub_tab: str, mode: int):
        def send(images: list | None, selected: int, *values):
            image = selected_image(images, selected)
            picture = image if mode == img2img.IMG2IMG else {"background": image, "layers": [], "composite": image}
            return (picture, *values, gr.Tabs(selected="img2img"), gr.Tabs(selected=sub_tab), mode)
        return send

    for name, sub_tab, mode, picture in (("img2img", "img2img_tab", img2img.IMG2IMG, i2i.image),
                                         ("inpaint", "inpaint_tab", img2img.INPAINT, i2i.inpaint)):
        source.send_buttons[name].click(
            to_img2img(sub_tab, mode), inputs=gallery + [source.controls[n] for n in shared],
            outputs=[picture] + [i2i.controls[n] for n in shared] + [tabs, i2i.modes, i2i.mode],
            api_visibility="private")

    def to_extras(images: list | None, selected: int) -> tuple:
        return (selected_image(images, selected), gr.Tabs(selected="extras"), gr.Tabs(selected="single_image"),
                extras.SINGLE)

    source.send_buttons["extras"].click(to_extras, inputs=gallery,
                                        outputs=[extras_tab.image, tabs, extras_tab.modes, extras_tab.mode],
                                        api_visibility="private")
