"""The img2img tab: sub-tabs for img2img, Sketch, Inpaint, Inpaint sketch, Inpaint upload and Batch."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import replace

import gradio as gr
import numpy as np
from PIL import Image

from modules.core.services import Services
from modules.errors import UserError
from modules.img2img import Img2ImgInputs
from modules.jobs.generation_params import GenerationParams
from modules.processing import StableDiffusionProcessingImg2Img
from modules.ui import interrogate as interrogate_ui
from modules.ui.generation_tab import GenerationTab, queue_job
from modules.ui.script_controls import script_controls
from modules.ui.ui_config import UiConfig

TAB = "img2img"
MODES = ("img2img", "Sketch", "Inpaint", "Inpaint sketch", "Inpaint upload", "Batch")
IMG2IMG, SKETCH, INPAINT, INPAINT_SKETCH, INPAINT_UPLOAD, BATCH = range(len(MODES))
INPAINT_MODES = (INPAINT, INPAINT_SKETCH, INPAINT_UPLOAD, BATCH)
MASK_FIELDS = ("mask_blur", "inpainting_mask_invert", "inpainting_fill", "inpaint_full_res", "inpaint_full_res_padding")


def strokes_mask(editor: dict) -> Image.Image | None:
    """White where any layer of an ImageEditor value was painted; None when nothing was."""
    layers = [layer for layer in (editor or {}).get("layers") or [] if layer is not None]
    if not layers:
        return None
    alpha = np.zeros((layers[0].height, layers[0].width), dtype=np.uint8)
    for layer in layers:
        alpha = np.maximum(alpha, np.asarray(layer.convert("RGBA").getchannel("A")))
    return Image.fromarray(np.where(alpha > 0, 255, 0).astype(np.uint8)) if alpha.any() else None


def editor_image(editor: dict | None, key: str) -> Image.Image:
    image = (editor or {}).get(key)
    if image is None:
        raise UserError("Drop an image onto the canvas first")
    return image


def inputs_for(mode: int, values: list) -> Img2ImgInputs:
    """The job's images from whichever sub-tab is active."""
    image, sketch, inpaint, inpaint_sketch, upload_image, upload_mask = values
    if mode == IMG2IMG:
        if image is None:
            raise UserError("Drop an image onto the img2img input first")
        return Img2ImgInputs([image])
    if mode == SKETCH:
        return Img2ImgInputs([editor_image(sketch, "composite")])
    if mode == INPAINT:
        return Img2ImgInputs([editor_image(inpaint, "background")], strokes_mask(inpaint))
    if mode == INPAINT_SKETCH:
        return Img2ImgInputs([editor_image(inpaint_sketch, "composite")], strokes_mask(inpaint_sketch))
    if upload_image is None or upload_mask is None:
        raise UserError("Inpaint upload needs both an image and a mask")
    return Img2ImgInputs([upload_image], upload_mask)


def interrogated_image(mode: int, values: list) -> Image.Image:
    """The image Interrogate CLIP describes: the active sub-tab's (Batch has none; its option appends to each)."""
    if mode == BATCH:
        raise UserError("Interrogate CLIP describes one image: open the sub-tab that holds it")
    return inputs_for(mode, values).images[0]


def scaled_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    """ "Resize by": the image's size times `scale`, each side down to a multiple of 8 and at least 64."""
    return tuple(max(64, int(side * scale) // 8 * 8) for side in size)


def size_tabs(tab: GenerationTab) -> tuple[gr.State, gr.Slider]:
    """A1111's "Resize to" (Width and Height with ⇅) and "Resize by" (Scale) tabs, then Batch count and size.
    Returns which tab is chosen (0 or 1) and the scale."""
    chosen = gr.State(0)
    with gr.Row(elem_id=f"{TAB}_dimensions_row", equal_height=False):
        with gr.Column(scale=3, min_width=240):
            with gr.Tabs(elem_id=f"{TAB}_tabs_resize"):
                with gr.Tab("Resize to", id=f"{TAB}_tab_resize_to", elem_id=f"{TAB}_tab_resize_to") as resize_to:
                    with gr.Row():
                        tab.width_height()
                with gr.Tab("Resize by", id=f"{TAB}_tab_resize_by", elem_id=f"{TAB}_tab_resize_by") as resize_by:
                    scale = gr.Slider(0.05, 4.0, 1.0, step=0.05, label="Scale", elem_id=f"{TAB}_scale")
                    preview = gr.Markdown(elem_id=f"{TAB}_scale_resolution_preview")
        with gr.Column(scale=1, elem_id=f"{TAB}_column_batch", min_width=160):
            tab.control("n_iter")
            tab.control("batch_size")
    for number, sub in enumerate((resize_to, resize_by)):
        sub.select(lambda n=number: n, outputs=chosen, queue=False, api_visibility="private")

    def show(image: Image.Image | None, factor: float) -> str:
        if image is None:
            return "Drop an image into img2img to see the size it becomes."
        width, height = scaled_size(image.size, factor)
        return f"Resize: from {image.width}x{image.height} to {width}x{height}"

    for trigger in (tab.image.change, scale.change):
        trigger(
            show,
            inputs=[tab.image, scale],
            outputs=preview,
            queue=False,
            show_progress="hidden",
            api_visibility="private",
        )
    preview.value = show(None, 1.0)
    return chosen, scale


def build_tab(services: Services, ui_config: UiConfig, clip_skip: gr.Slider | None) -> GenerationTab:
    """Lay out the tab and wire Generate. Call inside a gr.Tab context."""
    tab = GenerationTab(TAB, services, ui_config)
    tab.prompt_row()
    # Which sub-tab is active (0 img2img … 5 Batch); a hidden number, so API clients can set it too.
    mode = tab.mode = gr.Number(IMG2IMG, precision=0, visible=False, label="img2img mode", elem_id="img2img_mode")
    editor = {"type": "pil", "format": "png", "height": 480, "sources": ("upload", "clipboard")}
    with tab.extra_tabs(), tab.generation_columns():
        with gr.Tabs(elem_id="mode_img2img") as tab.modes:
            with gr.Tab("img2img", id="img2img_tab") as sub_img2img:
                # image_mode=None: uploads arrive as they are; modules/imaging/image_inputs.py makes them uniform.
                tab.image = gr.Image(
                    label="Image for img2img",
                    type="pil",
                    elem_id="img2img_image",
                    sources=("upload", "clipboard"),
                    image_mode=None,
                    height=480,
                )
            with gr.Tab("Sketch", id="sketch_tab") as sub_sketch:
                tab.sketch = gr.ImageEditor(label="Sketch", elem_id="img2img_sketch", **editor)
            with gr.Tab("Inpaint", id="inpaint_tab") as sub_inpaint:
                tab.inpaint = gr.ImageEditor(
                    label="Image for inpainting with mask",
                    elem_id="img2maskimg",
                    brush=gr.Brush(colors=["#ffffff"], color_mode="fixed"),
                    layers=False,
                    **editor,
                )
            with gr.Tab("Inpaint sketch", id="inpaint_sketch_tab") as sub_inpaint_sketch:
                tab.inpaint_sketch = gr.ImageEditor(
                    label="Color sketch inpainting", elem_id="inpaint_sketch", layers=False, **editor
                )
            with gr.Tab("Inpaint upload", id="inpaint_upload_tab") as sub_upload:
                tab.upload_image = gr.Image(label="Image", type="pil", elem_id="img_inpaint_base", image_mode=None)
                tab.upload_mask = gr.Image(label="Mask", type="pil", elem_id="img_inpaint_mask", image_mode=None)
            with gr.Tab("Batch", id="batch_tab", visible=not services.server_paths.hidden) as sub_batch:
                gr.Markdown(
                    "Process every image in a folder on this machine; a mask with the same file "
                    "name in the mask folder turns it into inpainting."
                )
                batch_in = gr.Textbox(label="Input directory", elem_id="img2img_batch_input_dir")
                batch_out = gr.Textbox(label="Output directory", elem_id="img2img_batch_output_dir")
                batch_mask = gr.Textbox(
                    label="Inpaint batch mask directory (required for inpaint batch)",
                    elem_id="img2img_batch_inpaint_mask_dir",
                )
                batch_interrogate = gr.Checkbox(
                    label="Append interrogated prompt", value=False, elem_id="img2img_batch_append_interrogation"
                )
        tab.control("resize_mode")
        with gr.Group(visible=False, elem_id="img2img_inpaint_controls") as inpaint_controls:
            for name in MASK_FIELDS:
                tab.control(name)
        tab.sampler_controls()
        with gr.Row(elem_id=f"{TAB}_accordions", elem_classes="accordions"):
            tab.refiner_accordion()
        scale_tab, scale = size_tabs(tab)
        tab.control("cfg_scale")
        tab.control("denoising_strength")
        tab.seed_controls()
        tab.checkbox_controls()
        tab.override_settings_control()
        script_inputs = script_controls(services, TAB)
    for number, sub in enumerate((sub_img2img, sub_sketch, sub_inpaint, sub_inpaint_sketch, sub_upload, sub_batch)):
        sub.select(lambda n=number: n, outputs=mode, api_visibility="private")
    # the inpaint options show on the inpaint sub-tabs (and Batch, which can inpaint), as in A1111
    mode.change(
        lambda n: gr.Group(visible=n in INPAINT_MODES),
        inputs=mode,
        outputs=inpaint_controls,
        queue=False,
        show_progress="hidden",
        api_visibility="private",
    )
    images = [tab.image, tab.sketch, tab.inpaint, tab.inpaint_sketch, tab.upload_image, tab.upload_mask]
    interrogate_ui.build(tab, interrogated_image, [mode, *images])

    def submit(params: GenerationParams, extra: list, overrides: dict) -> Future:
        mode_value, images, batch_values = int(extra[0] or 0), extra[1:7], extra[7:11]
        if mode_value == BATCH:
            with services.opts.overridden(overrides):  # a batch job reads its settings when it is queued
                return services.jobs.img2img_batch(params, *batch_values)
        inputs = inputs_for(mode_value, images)
        if extra[11] == 1:  # Resize by
            width, height = scaled_size(inputs.images[0].size, extra[12])
            params = replace(params, width=width, height=height)
        p = StableDiffusionProcessingImg2Img.from_params(params, init_images=inputs.images, mask=inputs.mask)
        return queue_job(services, p, extra[13:], overrides)

    tab.wire(
        clip_skip,
        submit,
        [
            mode,
            tab.image,
            tab.sketch,
            tab.inpaint,
            tab.inpaint_sketch,
            tab.upload_image,
            tab.upload_mask,
            batch_in,
            batch_out,
            batch_mask,
            batch_interrogate,
            scale_tab,
            scale,
            *script_inputs,
        ],
    )
    return tab
