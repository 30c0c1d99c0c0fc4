"""img2img's "Interrogate CLIP" button (A1111's elem_id `interrogate`, in the top row beside Generate): it fills
the prompt with what BLIP and CLIP say of the current sub-tab's image. Beside it, while models/BLIP or models/clip
lacks files, a Download button fetches the official ones (hash-checked, with progress)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gradio as gr

from modules.errors import UserError
from modules.models.interrogate_models import download_interrogate_models, model_folders
from modules.models.model_download import RemoteFile
from modules.ui.user_errors import page_error

if TYPE_CHECKING:
    from modules.ui.generation_tab import GenerationTab

MODELS_READY = "The interrogate models are in place."


def models_missing(models_dir) -> bool:
    return any(folder.missing() for folder in model_folders(models_dir))


def build(tab: GenerationTab, image_of: Callable[[int, list], Any], image_inputs: list) -> None:
    """Add the buttons to `tab`'s top row and wire them: `image_of(mode, values)` picks the image to describe from
    the values of `image_inputs` (the first of which is the sub-tab number)."""
    services = tab.services
    prompt = tab.controls["prompt"]
    with _actions_column(tab.tab), gr.Row(elem_id=f"{tab.tab}_interrogate_container"):
        interrogate = gr.Button("Interrogate CLIP", elem_id="interrogate", size="sm")
        download = gr.Button(
            "Download interrogate models",
            elem_id="interrogate_download",
            size="sm",
            visible=models_missing(services.paths.models),
        )

    def describe(mode: int, *values: Any) -> str:
        try:
            return services.jobs.interrogate(image_of(int(mode or 0), list(values))).result()
        except UserError as exc:
            raise page_error(exc) from exc

    def fetch(progress: gr.Progress = gr.Progress()) -> gr.Button:
        def report(remote: RemoteFile, done: int, total: int | None) -> None:
            size = f"{done / 1e6:.1f} of {total / 1e6:.1f} MB" if total else f"{done / 1e6:.1f} MB"
            progress(done / total if total else None, desc=f"Downloading {remote.name}: {size}")

        try:
            download_interrogate_models(services.paths.models, report)
        except UserError as exc:
            raise page_error(exc) from exc
        gr.Info(MODELS_READY)
        return gr.Button(visible=models_missing(services.paths.models))

    interrogate.click(describe, inputs=image_inputs, outputs=prompt, api_name="interrogate")
    download.click(fetch, outputs=download, api_name="interrogate_download", concurrency_limit=1)


def _actions_column(tab_name: str) -> contextlib.AbstractContextManager:
    """The top row's column of Generate and the tool buttons (re-entered to add to it), or, failing that, the
    place being built now."""
    root = gr.context.Context.root_block
    for block in root.blocks.values() if root is not None else ():
        if getattr(block, "elem_id", None) == f"{tab_name}_actions_column":
            return block
    return contextlib.nullcontext()
