"""The PNG Info tab: every text an image carries, its generation parameters, and "Send to …" buttons."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr
from PIL import Image

from modules.errors import UserError
from modules.images import open_image, read_image_texts, read_infotext
from modules.jobs.infotext import MISSING_KEY_DEFAULTS, parse_infotext
from modules.ui import extras, img2img
from modules.ui.generation_tab import GenerationTab
from modules.ui.infotext_paste import Quicksettings, wire_paste
from modules.ui.upload_check import check_uploads, file_name, is_image
from modules.ui.user_errors import page_error


@dataclass
class PngInfoTab:
    """The tab's components that send buttons use: the dropped image and the row the buttons go in."""

    image: gr.Image
    buttons: gr.Row


@dataclass(frozen=True)
class SendTarget:
    """Where a "Send to <name>" button sends the image: the main tab to select (`tab_id`), the generation
    tab whose fields the infotext fills (none for a tab without them), the component that receives the
    image as `image_value(image)` makes it, and fixed values for other components (sub-tab, mode)."""

    name: str
    tab_id: str
    fields: GenerationTab | None = None
    image: gr.components.Component | None = None
    image_value: Callable[[Image.Image], Any] = lambda image: image
    fixed: tuple[tuple[gr.components.Component, Any], ...] = ()


def _lines(text: str) -> str:
    return "<br>".join(html.escape(line) for line in text.splitlines())


def texts_html(texts: dict[str, str]) -> str:
    """Each text chunk as a bold name over its value, escaped."""
    if not texts:
        return "<p>Nothing found in the image.</p>"
    return "".join(
        f"<div><p><b>{html.escape(key)}</b></p><p class='infotext'>{_lines(value)}</p></div>"
        for key, value in texts.items()
    )


def parameters_html(infotext: str) -> str:
    """The parsed generation parameters as a table, escaped; defaults the text doesn't state are left out."""
    if not infotext:
        return ""
    parsed = parse_infotext(infotext)
    derived = {f"{key}-{part}" for key in parsed for part in (1, 2)}
    rows = "".join(
        f"<tr><th>{html.escape(key)}</th><td>{_lines(value)}</td></tr>"
        for key, value in parsed.items()
        if key not in derived and (key not in MISSING_KEY_DEFAULTS or f"{key}:" in infotext)
    )
    return f"<table class='pnginfo-parameters'>{rows}</table>"


def _open(path: str | None) -> Image.Image:
    if not path:
        raise page_error("Drop an image into PNG Info first")
    try:
        return open_image(path)
    except UserError as exc:
        raise page_error(exc) from exc


def describe(path: str | None) -> tuple[str, str, str]:
    """(texts HTML, parameters HTML, infotext) for a dropped file."""
    if not path:
        return "", "", ""
    texts = read_image_texts(_open(path))
    infotext = texts.get("parameters", "")
    return texts_html(texts), parameters_html(infotext), infotext


def describe_upload(upload: dict | None) -> tuple[str, str, str]:
    """describe() for the control's unprocessed value, so a file that isn't an image is named in one line
    rather than failing in Gradio's preprocessing."""
    if upload and upload.get("path") and not is_image(upload["path"]):
        raise page_error(f"not an image: {file_name(upload)}")
    return describe(upload and upload.get("path"))


def build_tab() -> PngInfoTab:
    """Lay out the tab and wire reading a dropped image (API name `pnginfo`). Call inside a gr.Tab context."""
    with gr.Row(equal_height=False):
        with gr.Column(variant="panel"):
            image = gr.Image(
                label="Source",
                type="filepath",
                image_mode=None,
                elem_id="pnginfo_image",
                sources=("upload", "clipboard"),
                height=480,
            )
        with gr.Column(variant="panel"):
            info = gr.HTML(elem_id="pnginfo_html_info")
            parameters = gr.HTML(elem_id="pnginfo_html_parameters")
            infotext = gr.Textbox(visible=False, elem_id="pnginfo_generation_info")
            with gr.Row(elem_id="pnginfo_send_buttons") as buttons:
                pass
    image.change(
        describe_upload, inputs=image, outputs=[info, parameters, infotext], api_name="pnginfo", preprocess=False
    )
    check_uploads(image, warn=False)  # describe names the file
    return PngInfoTab(image, buttons)


def connect_send_button(png: PngInfoTab, target: SendTarget, tabs: gr.Tabs, quick: Quicksettings) -> gr.Button:
    """Add "Send to <target.name>" (elem_id `<name>_tab`, API name `pnginfo_send_to_<name>`) to the tab."""
    with png.buttons:
        button = gr.Button(f"Send to {target.name}", elem_id=f"{target.name}_tab")
    fixed = [*target.fixed, (tabs, gr.update(selected=target.tab_id))]

    def source(path: str | None) -> tuple[str | None, list]:
        image = _open(path)
        text = read_infotext(image) if target.fields else None
        if target.fields and not text:
            gr.Warning("This image holds no generation parameters")
        picture = [target.image_value(image)] if target.image else []
        return text, [*picture, *(value for _, value in fixed)]

    outputs = [*([target.image] if target.image else []), *(component for component, _ in fixed)]
    wire_paste(button, source, [png.image], target.fields, quick, outputs, api_name=f"pnginfo_send_to_{target.name}")
    return button


def editor_value(image: Image.Image) -> dict:
    """An image as the value of an empty ImageEditor (the inpaint canvas)."""
    return {"background": image, "layers": [], "composite": image}


def generation_targets(txt2img: GenerationTab, i2i: GenerationTab) -> list[SendTarget]:
    """Send targets for txt2img, img2img and inpaint (the last two select their img2img sub-tab); each brings its
    tab's Generation forward."""

    def sub_tab(tab_id: str, mode: int) -> tuple:
        return (i2i.modes, gr.update(selected=tab_id)), (i2i.mode, mode), i2i.to_generation()

    return [
        SendTarget("txt2img", "txt2img", txt2img, fixed=(txt2img.to_generation(),)),
        SendTarget("img2img", "img2img", i2i, i2i.image, fixed=sub_tab("img2img_tab", img2img.IMG2IMG)),
        SendTarget("inpaint", "img2img", i2i, i2i.inpaint, editor_value, fixed=sub_tab("inpaint_tab", img2img.INPAINT)),
    ]


def extras_target(extras_tab: extras.ExtrasTab) -> SendTarget:
    """Send target for the Extras tab's single image (the image only; Extras has no generation fields)."""
    return SendTarget(
        "extras",
        "extras",
        None,
        extras_tab.image,
        fixed=((extras_tab.modes, gr.update(selected="single_image")), (extras_tab.mode, extras.SINGLE)),
    )
