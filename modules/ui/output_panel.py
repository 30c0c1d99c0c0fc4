"""What sits under a tab's gallery, as in A1111: 📂 💾 🗃️ and the Send-to buttons, the saved files, and the infotext
of the selected image. The job's result stays on the server (a gr.State), so Save, ♻️ and Send-to take the selected
image and its infotext from there; `generation_info_<tab>` holds A1111's JSON of it for extensions' scripts."""

from __future__ import annotations

import html
import json
import os
import platform
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import gradio as gr
from PIL import Image

from modules.core.server_paths import ServerPaths
from modules.core.services import Services
from modules.errors import UserError
from modules.jobs import saved_images
from modules.jobs.generation import GenerationResult
from modules.jobs.infotext import parse_infotext
from modules.ui.user_errors import page_error

TARGETS = (("img2img", "🖼️ Send to img2img"), ("inpaint", "🎨️ Send to inpaint"), ("extras", "📐 Send to extras"))


def infotext_html(text: str) -> str:
    """Infotext as A1111 shows it under the gallery."""
    return f"<p class='infotext'>{'<br>'.join(html.escape(line) for line in text.splitlines())}</p>"


def output_gallery(tab: str) -> gr.Gallery:
    """A tab's output gallery: images fitted whole into their tiles, and no upload area."""
    return gr.Gallery(
        label="Output",
        elem_id=f"{tab}_gallery",
        format="png",
        columns=2,
        height=512,
        object_fit="contain",
        interactive=False,
    )


def selected(result: GenerationResult | None, index: int | None) -> int:
    """The selected image's index in `result`, the first when none (-1, or one out of range) is selected."""
    if result is None or not result.images or index is None or not 0 <= index < len(result.images):
        return 0
    return index


def seed_of(result: GenerationResult | None, index: int | None) -> int:
    """The seed of the selected image (a grid's is the first image's); -1 before any result."""
    if result is None or not result.seeds:
        return -1
    return result.seeds[min(selected(result, index), len(result.seeds) - 1)]


def subseed_of(result: GenerationResult | None, index: int | None) -> int:
    """The variation seed of the selected image, read from its infotext; its seed when it has none (as A1111's
    ♻️ beside Variation seed); -1 before any result."""
    if result is None or not result.infotexts:
        return seed_of(result, index)
    parsed = parse_infotext(result.infotexts[min(selected(result, index), len(result.infotexts) - 1)])
    try:
        return int(parsed["Variation seed"])
    except (KeyError, ValueError):
        return seed_of(result, index)


def image_of(result: GenerationResult | None, index: int | None) -> Image.Image:
    """The selected image: its saved file when it has one (the generation parameters travel with it)."""
    if result is None or not result.images:
        raise page_error("Generate an image first")
    number = selected(result, index)
    if len(result.paths) == len(result.images) and result.paths[number].is_file():
        return Image.open(result.paths[number])
    image = result.images[number]
    if number < len(result.infotexts):
        image.info["parameters"] = result.infotexts[number]
    return image


def generation_info(result: GenerationResult | None) -> str:
    """A1111's generation_info JSON of a result (the keys its page scripts read)."""
    if result is None:
        return ""
    p, first = result.params, result.index_of_first_image
    return json.dumps(
        {
            "prompt": p.prompt,
            "negative_prompt": p.negative_prompt,
            "seed": p.seed,
            "all_seeds": result.seeds[first:],
            "subseed": p.subseed,
            "subseed_strength": p.subseed_strength,
            "width": p.width,
            "height": p.height,
            "sampler_name": p.sampler_name,
            "cfg_scale": p.cfg_scale,
            "steps": p.steps,
            "batch_size": p.batch_size,
            "index_of_first_image": first,
            "infotexts": result.infotexts,
            "styles": list(p.styles),
            "clip_skip": p.clip_skip,
        }
    )


def open_folder(folder: Path, server_paths: ServerPaths) -> str:
    """📂: open `folder` in the file manager when the server is this computer; otherwise just name it."""
    if server_paths.hidden:
        return ""
    if not folder.is_dir():
        return f"The folder {folder} does not exist yet: it is made when the first image is saved."
    if server_paths.reachable:
        return f"Images are saved on the server, in {folder}"
    if platform.system() == "Windows":
        os.startfile(folder)  # type: ignore[attr-defined]
        return f"Opened {folder}"
    opener = shutil.which("open" if platform.system() == "Darwin" else "xdg-open")
    if opener is None:
        return f"Images are saved in {folder} (no xdg-open here to open it)"
    subprocess.Popen([opener, str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return f"Opened {folder}"


def folder_button(tab: str, folder: Callable[[], Path], server_paths: ServerPaths, log: gr.HTML) -> gr.Button:
    """📂 for the folder `folder()` names (hidden with --hide-ui-dir-config, as in A1111); its message goes to `log`."""
    button = gr.Button(
        "📂",
        elem_id=f"{tab}_open_folder",
        size="sm",
        scale=0,
        min_width=40,
        visible=not server_paths.hidden,
        elem_classes="tool",
    )
    button.click(
        lambda: f"<p>{html.escape(open_folder(folder(), server_paths))}</p>",
        outputs=log,
        queue=False,
        api_visibility="private",
    )
    return button


class OutputPanel:
    """A generation tab's gallery with its buttons and infotext (call inside the tab's right column)."""

    def __init__(self, tab: str, services: Services, samples_option: str) -> None:
        self.tab, self.services = tab, services
        self.gallery = output_gallery(tab)
        with gr.Row(elem_id=f"image_buttons_{tab}", elem_classes="image-buttons"):
            self.log = gr.HTML(elem_id=f"html_log_{tab}", render=False)
            self.open_folder = folder_button(
                tab, lambda: services.jobs.output_dir(samples_option), services.server_paths, self.log
            )
            self.save = gr.Button("💾", elem_id=f"save_{tab}", size="sm", scale=0, min_width=40, elem_classes="tool")
            self.save_zip = gr.Button(
                "🗃️", elem_id=f"save_zip_{tab}", size="sm", scale=0, min_width=40, elem_classes="tool"
            )
            self.send_buttons = {
                name: gr.Button(text, elem_id=f"{tab}_send_to_{name}", size="sm") for name, text in TARGETS
            }
        self.download = gr.File(
            None,
            file_count="multiple",
            interactive=False,
            show_label=False,
            visible=False,
            elem_id=f"download_files_{tab}",
        )
        self.info = gr.HTML(elem_id=f"html_info_{tab}", elem_classes="infotext")
        self.log.render()
        self.generation_info = gr.Textbox(visible="hidden", elem_id=f"generation_info_{tab}")
        self.result = gr.State(None)
        # the page holds the selection, so closing the preview (done in the browser) can't overtake a later select
        self.selected = gr.Number(0, precision=0, visible=False)

    def wire(self) -> None:
        """Selecting an image shows its infotext; Save and Zip write the selection (or all) to the log folder."""

        def select(result: GenerationResult | None, event: gr.SelectData) -> tuple:
            index = selected(result, event.index)
            if result is None or index >= len(result.infotexts):
                return index, gr.skip()
            return index, infotext_html(result.infotexts[index])

        self.gallery.select(
            select,
            inputs=self.result,
            outputs=[self.selected, self.info],
            queue=False,
            show_progress="hidden",
            api_visibility="private",
        )
        self.gallery.preview_close(
            None, outputs=self.selected, js="() => -1", show_progress="hidden", api_visibility="private"
        )  # none selected: ♻️ takes the first, Save all
        self.result.change(
            generation_info,
            inputs=self.result,
            outputs=self.generation_info,
            queue=False,
            show_progress="hidden",
            api_visibility="private",
        )
        services = self.services

        def save(result: GenerationResult | None, index: int, make_zip: bool) -> tuple:
            if result is None or not result.images:
                raise page_error("Generate an image first")
            folder = services.jobs.output_dir("outdir_save")
            try:
                files = saved_images.save(result, -1 if index is None else index, services.opts, folder, make_zip)
            except (OSError, UserError) as exc:
                raise page_error(f"Could not save into {folder}: {exc}") from exc
            shown = files[1] if make_zip else files[0]
            note = f"Saved: {html.escape(shown.relative_to(folder).as_posix())}"
            return gr.File(value=[str(f) for f in files], visible=True), f"<p>{note}</p>"

        for button, make_zip in ((self.save, False), (self.save_zip, True)):
            button.click(
                lambda result, index, z=make_zip: save(result, index, z),
                inputs=[self.result, self.selected],
                outputs=[self.download, self.log],
                api_visibility="private",
            )
