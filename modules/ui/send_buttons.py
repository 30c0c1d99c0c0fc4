""" "Send to img2img / inpaint / extras" under a generation tab's gallery (made by output_panel): what they do."""

from __future__ import annotations

import gradio as gr

from modules.jobs.generation import GenerationResult
from modules.ui import extras, img2img
from modules.ui.generation_tab import GenerationTab
from modules.ui.output_panel import image_of


def connect_send_buttons(
    source: GenerationTab, i2i: GenerationTab, extras_tab: extras.ExtrasTab, tabs: gr.Tabs
) -> None:
    """img2img and inpaint get the selected image and every setting both tabs have; extras gets the selected
    image (its saved file, so the generation parameters travel with it)."""
    shared = [name for name in source.controls if name in i2i.controls]
    strip, generation = i2i.to_generation()  # the settings, not an extra networks tab, come forward
    selection = [source.output.result, source.selected]

    def to_img2img(sub_tab: str, mode: int):
        def send(result: GenerationResult | None, selected: int, *values):
            image = image_of(result, selected)
            picture = image if mode == img2img.IMG2IMG else {"background": image, "layers": [], "composite": image}
            return (picture, *values, gr.Tabs(selected="img2img"), gr.Tabs(selected=sub_tab), mode, generation)

        return send

    for name, sub_tab, mode, picture in (
        ("img2img", "img2img_tab", img2img.IMG2IMG, i2i.image),
        ("inpaint", "inpaint_tab", img2img.INPAINT, i2i.inpaint),
    ):
        source.send_buttons[name].click(
            to_img2img(sub_tab, mode),
            inputs=selection + [source.controls[n] for n in shared],
            outputs=[picture] + [i2i.controls[n] for n in shared] + [tabs, i2i.modes, i2i.mode, strip],
            api_visibility="private",
        )

    def to_extras(result: GenerationResult | None, selected: int) -> tuple:
        return (image_of(result, selected), gr.Tabs(selected="extras"), gr.Tabs(selected="single_image"), extras.SINGLE)

    source.send_buttons["extras"].click(
        to_extras,
        inputs=selection,
        outputs=[extras_tab.image, tabs, extras_tab.modes, extras_tab.mode],
        api_visibility="private",
    )
