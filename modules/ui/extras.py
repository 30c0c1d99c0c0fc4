"""The Extras tab: face restoration and upscaling of one image, several files or a folder, and the
Download button for the face restoration models."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from modules.core.limits import Limits
from modules.core.server_paths import ServerPaths
from modules.core.services import Services
from modules.errors import UserError
from modules.extras import RESIZE_MODES, ExtrasParams, images_in_folder
from modules.face_restoration import FaceRestorers, download_face_models, missing_weights_message
from modules.models.model_download import RemoteFile
from modules.ui.generation_tab import infotext_html, wait_with_progress
from modules.ui.output_panel import folder_button, output_gallery
from modules.ui.user_errors import page_error

TAB = "extras"
MODES = ("Single Image", "Batch Process", "Batch from Directory")
SINGLE, BATCH, DIRECTORY = range(len(MODES))
FACE_MODELS_READY = "All face restoration model files are in place."


class ExtrasTab:
    """The tab's components; `image` is the Single Image input that "Send to extras" buttons fill."""

    mode: gr.Number  # the active sub-tab: SINGLE, BATCH or DIRECTORY
    modes: gr.Tabs  # the sub-tabs themselves
    image: gr.Image
    image_batch: gr.File
    input_dir: gr.Textbox
    output_dir: gr.Textbox
    show_results: gr.Checkbox
    controls: dict[str, gr.components.Component]  # ExtrasParams field name -> its control
    generate: gr.Button
    gallery: gr.Gallery
    info: gr.HTML
    face_models: gr.Markdown  # which face model files are missing
    download: gr.Button


def face_models_status(restorers: FaceRestorers) -> str:
    """Markdown naming every missing face model file, its URL and folder; or that all are there."""
    missing = list(
        dict.fromkeys(pair for name in ("GFPGAN", "CodeFormer") for pair in restorers.get(name).missing_files())
    )
    if not missing:
        return FACE_MODELS_READY
    files, _, advice = missing_weights_message("Face restoration", missing).rpartition("\n")
    return f"{files}\n\n{advice}"  # the advice as a paragraph of its own, not part of the list's last item


def download_missing_face_models(restorers: FaceRestorers, progress: Callable[..., Any]) -> str:
    """Fetch the face model files (CodeFormer's too when missing) with sha256 checks, reporting to a
    gr.Progress-like `progress`; returns the new status. A failed download raises its UserError."""

    def report(remote: RemoteFile, done: int, total: int | None) -> None:
        size = f"{done / 1e6:.1f} of {total / 1e6:.1f} MB" if total else f"{done / 1e6:.1f} MB"
        progress(done / total if total else None, desc=f"Downloading {remote.name}: {size}")

    codeformer = bool(restorers.get("CodeFormer").missing_files())
    download_face_models(restorers.models_dir, codeformer=codeformer, progress=report)
    return face_models_status(restorers)


def job_inputs(
    mode: int, image: Any, files: list | None, input_dir: str, output_dir: str, server_paths: ServerPaths
) -> tuple[list, Path | None]:
    """The images to process for the active sub-tab, and the folder to write to (None: the default one);
    folders as `server_paths` allows."""
    if mode == SINGLE:
        if image is None:
            raise UserError("Drop an image onto the Extras input first")
        return [image], None
    if mode == BATCH:
        if not files:
            raise UserError("Add some images to Batch Process first")
        return [Path(f) for f in files], None
    if not input_dir or not input_dir.strip():
        raise UserError("Batch from directory needs an input directory")
    inputs = images_in_folder(server_paths.folder(input_dir, "Input directory"))
    return inputs, server_paths.folder(output_dir, "Output directory") if output_dir and output_dir.strip() else None


def _control(name: str, upscalers: list[str]) -> gr.components.Component:
    """The component of one ExtrasParams field, labelled, bounded and with element id as in A1111."""
    f, spec = next((f, spec) for f, spec in ExtrasParams.fields() if f.name == name)
    kwargs = {
        "label": spec.label,
        "value": f.default,
        "elem_id": name if name.startswith("extras_") else f"extras_{name}",
    }
    if spec.widget == "dropdown":
        return gr.Dropdown(choices=upscalers, **kwargs)
    if spec.widget == "checkbox":
        return gr.Checkbox(**kwargs)
    if spec.widget == "hidden":
        return gr.Number(precision=0, visible=False, **kwargs)
    return gr.Slider(minimum=spec.minimum, maximum=spec.maximum, step=spec.step, **kwargs)


def build_tab(services: Services) -> ExtrasTab:
    """Lay out the tab and wire Generate (API name "extras") and Download. Call inside a gr.Tab context."""
    tab = ExtrasTab()
    upscalers = services.tools.upscalers.names()
    tab.controls = {}

    def control(name: str) -> gr.components.Component:
        tab.controls[name] = _control(name, upscalers)
        return tab.controls[name]

    with gr.Row():
        with gr.Column():
            tab.mode = gr.Number(SINGLE, precision=0, visible=False, label="Extras mode", elem_id="extras_mode")
            with gr.Tabs(elem_id="mode_extras") as tab.modes:
                with gr.Tab(MODES[SINGLE], id="single_image", elem_id="extras_single_tab") as single:
                    tab.image = gr.Image(
                        label="Source",
                        type="pil",
                        image_mode=None,
                        format="png",
                        height=420,
                        sources=("upload", "clipboard"),
                        elem_id="extras_image",
                    )
                with gr.Tab(MODES[BATCH], id="batch_process", elem_id="extras_batch_process_tab") as batch:
                    tab.image_batch = gr.File(
                        label="Batch Process", file_count="multiple", type="filepath", elem_id="extras_image_batch"
                    )
                with gr.Tab(
                    MODES[DIRECTORY],
                    id="batch_from_directory",
                    elem_id="extras_batch_directory_tab",
                    visible=not services.server_paths.hidden,
                ) as directory:
                    tab.input_dir = gr.Textbox(
                        label="Input directory",
                        elem_id="extras_batch_input_dir",
                        placeholder="A directory on the same machine where the server is running.",
                    )
                    tab.output_dir = gr.Textbox(
                        label="Output directory",
                        elem_id="extras_batch_output_dir",
                        placeholder="Leave blank to save images to the default path.",
                    )
                    tab.show_results = gr.Checkbox(
                        label="Show result images", value=True, elem_id="extras_show_extras_results"
                    )
            for number, sub in enumerate((single, batch, directory)):
                sub.select(lambda n=number: n, outputs=tab.mode, api_visibility="private")
            tab.generate = gr.Button("Generate", variant="primary", elem_id="extras_generate")
            resize_mode = control("resize_mode")
            with gr.Tabs(elem_id="extras_resize_mode"):
                with gr.Tab(RESIZE_MODES[0], elem_id="extras_scale_by_tab") as scale_by:
                    control("upscaling_resize")
                with gr.Tab(RESIZE_MODES[1], elem_id="extras_scale_to_tab") as scale_to:
                    with gr.Row():
                        with gr.Column(scale=4):
                            control("upscaling_resize_w")
                            control("upscaling_resize_h")
                        control("upscaling_crop")
            for number, sub in enumerate((scale_by, scale_to)):
                sub.select(lambda n=number: n, outputs=resize_mode, api_visibility="private")
            with gr.Row():
                control("upscaler_1")
                control("upscaler_2")
            control("extras_upscaler_2_visibility")
            for name in ("gfpgan_visibility", "codeformer_visibility", "codeformer_weight", "upscale_first"):
                control(name)
            with gr.Accordion("Face restoration models", open=False, elem_id="extras_face_models"):
                tab.face_models = gr.Markdown(  # the page's load fills it in again (modules/ui/page.py)
                    face_models_status(services.tools.face_restorers), elem_id="extras_face_models_status"
                )
                tab.download = gr.Button("Download", elem_id="extras_download_face_models")
        with gr.Column():
            tab.gallery = output_gallery(TAB)
            with gr.Row(elem_id=f"image_buttons_{TAB}", elem_classes="image-buttons"):
                log = gr.HTML(elem_id=f"html_log_{TAB}", render=False)
                folder_button(
                    TAB, lambda: services.jobs.output_dir("outdir_extras_samples"), services.server_paths, log
                )
            tab.info = gr.HTML(elem_id="html_info_extras")
            log.render()
    _wire(services, tab)
    return tab


def _wire(services: Services, tab: ExtrasTab) -> None:
    names = [f.name for f, _ in ExtrasParams.fields()]
    outputs = services.paths.outputs

    def run(
        mode: float,
        image: Any,
        files: list | None,
        input_dir: str,
        output_dir: str,
        show_results: bool,
        *values: Any,
        progress: gr.Progress = gr.Progress(),
    ) -> tuple:
        mode = int(mode or 0)
        show = mode != DIRECTORY or bool(show_results)  # as in A1111, the checkbox is for folders only
        try:
            params = ExtrasParams.from_dict(dict(zip(names, values)))
            inputs, folder = job_inputs(mode, image, files, input_dir, output_dir, services.server_paths)
            if mode == BATCH:
                Limits.from_options(services.opts).check_input_count(len(inputs), MODES[BATCH])
        except UserError as exc:
            raise page_error(exc) from exc
        result = wait_with_progress(services, services.jobs.extras(params, inputs, folder, show), progress)
        for warning in result.warnings:
            gr.Warning(warning)
        text = "\n".join([*(f"⚠️ {w}" for w in result.warnings), *result.infotexts[:1]])
        if result.interrupted:
            text = f"(interrupted)\n{text}"
        if not show:
            return [], infotext_html(text)
        # Saved files carry their text chunks, but the page may only serve those under outputs/.
        saved = len(result.paths) == len(result.images) and all(p.is_relative_to(outputs) for p in result.paths)
        return [str(p) for p in result.paths] if saved else result.images, infotext_html(text)

    tab.generate.click(
        run,
        inputs=[tab.mode, tab.image, tab.image_batch, tab.input_dir, tab.output_dir, tab.show_results]
        + [tab.controls[n] for n in names],
        outputs=[tab.gallery, tab.info],
        api_name=TAB,
        concurrency_limit=None,
    )

    def download(progress: gr.Progress = gr.Progress()) -> str:
        try:
            return download_missing_face_models(services.tools.face_restorers, progress)
        except UserError as exc:
            raise page_error(exc) from exc

    tab.download.click(download, outputs=tab.face_models, api_name="extras_download_face_models", concurrency_limit=1)
