"""Uploads are checked when they arrive: a file that isn't an image gets one line, "not an image: <name>", and
is dropped from the control, so nothing later trips over it (Gradio would answer with its own long error). The
image editors (sketch and inpaint canvases) decode a file in the browser and never send one they can't read;
javascript/canvas_uploads.js reports its name through `canvas_refusals`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image, UnidentifiedImageError

log = logging.getLogger(__name__)
Control = gr.Image | gr.ImageEditor | gr.File


def is_image(path: str | Path) -> bool:
    """Whether Pillow recognises the file as an image (its header only; damage is found when it is used)."""
    try:
        with Image.open(path):
            return True
    except Image.DecompressionBombError:
        return True  # an image, refused as too large where it is used
    except (UnidentifiedImageError, OSError, ValueError):
        return False


def file_name(data: dict) -> str:
    """The name the user's file had (Gradio keeps it as orig_name)."""
    return data.get("orig_name") or Path(data.get("path") or "").name


def _uploaded(value: Any) -> list[dict]:
    """The file records in a control's unprocessed value: an Image's, an ImageEditor's background, a File's."""
    if isinstance(value, dict) and "background" in value:
        value = value["background"]
    items = value if isinstance(value, list) else [value]
    return [item for item in items if isinstance(item, dict) and item.get("path")]


def refuse(name: str) -> None:
    """Say once that `name` isn't an image: a page notice and a log line."""
    log.warning("Refused an upload: not an image: %s", name)
    gr.Warning(f"not an image: {name}")


def check_uploads(*controls: Control, warn: bool = True) -> None:
    """Check each upload into `controls`; a non-image is dropped (and named, unless another handler of the
    control names it already)."""
    for control in controls:

        def check(value: Any) -> Any:
            files = _uploaded(value)
            bad = [data for data in files if not is_image(data["path"])]
            for data in bad if warn else ():
                refuse(file_name(data))
            if not bad:
                return gr.skip()
            if isinstance(value, list):
                return [data["path"] for data in files if data not in bad] or None
            return None

        control.upload(
            check, inputs=control, outputs=control, preprocess=False, show_progress="hidden", api_visibility="private"
        )


def canvas_refusals() -> None:
    """The hidden box through which the page names a file an image editor could not read (see the docstring)."""
    box = gr.Textbox(show_label=False, container=False, elem_id="canvas_upload_refusals", elem_classes="hidden-relay")
    box.change(
        lambda value: refuse(value.split("\n")[0]) if value else None,
        inputs=box,
        show_progress="hidden",
        api_visibility="private",
    )  # "name\nwhen": the same name again is a change too
