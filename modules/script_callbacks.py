"""A1111's `modules.script_callbacks`: extensions register functions that run at named moments.

A callback that raises is logged with its traceback and the rest still run."""

from __future__ import annotations

import inspect
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from modules.core.engine import is_out_of_memory

log = logging.getLogger(__name__)

_callbacks: dict[str, list[tuple[str, Callable]]] = defaultdict(list)
NAMES = (
    "app_started",
    "model_loaded",
    "ui_tabs",
    "ui_settings",
    "before_image_saved",
    "image_saved",
    "cfg_denoiser",
    "cfg_denoised",
    "cfg_after_cfg",
    "infotext_pasted",
    "script_unloaded",
    "before_component",
    "after_component",
)


@dataclass
class ImageSaveParams:
    """What on_before_image_saved and on_image_saved receive: `filename` is the path the image will be saved
    to (a before_image_saved callback may set another), then the path it got; `pnginfo` holds the image's
    texts, `pnginfo["parameters"]` the infotext."""

    image: Any
    p: Any
    filename: str
    pnginfo: dict[str, str] = field(default_factory=dict)


@dataclass
class CFGDenoiserParams:
    """The UNet input before a guided step; a callback may replace `x`, `text_cond` or `text_uncond`."""

    x: Any
    image_cond: Any
    sigma: Any
    sampling_step: int
    total_sampling_steps: int
    text_cond: Any
    text_uncond: Any
    denoiser: Any = None  # the CFG denoiser making this call


@dataclass
class CFGDenoisedParams:
    """The guided noise prediction after a step's UNet call; a callback may replace `x`."""

    x: Any
    sampling_step: int
    total_sampling_steps: int
    inner_model: Any = None


@dataclass
class AfterCFGCallbackParams:
    """The guided x0 of a step, after CFG and the inpainting keep; a callback may replace `x`."""

    x: Any
    sampling_step: int
    total_sampling_steps: int


def _origin() -> str:
    """The file of the script that is registering a callback (for messages and unloading)."""
    for frame in inspect.stack()[2:]:
        if frame.filename != __file__:
            return frame.filename
    return "?"


def _add(name: str, callback: Callable) -> None:
    _callbacks[name].append((_origin(), callback))


def _run(name: str, *args: Any, **kwargs: Any) -> list[Any]:
    results = []
    for origin, callback in list(_callbacks[name]):
        try:
            results.append(callback(*args, **kwargs))
        except Exception as exc:
            if is_out_of_memory(exc):
                raise  # not the extension's bug: the engine frees memory and tells the caller
            log.exception("The %s callback from %s failed", name, origin)
    return results


def has(name: str) -> bool:
    """True when some callback is registered for `name` (lets hot loops skip building params)."""
    return bool(_callbacks[name])


def clear() -> None:
    """Forget every callback (before scripts are loaded again)."""
    _callbacks.clear()


def on_app_started(callback: Callable) -> None:
    """callback(demo: gr.Blocks | None, app: FastAPI) once the server runs."""
    _add("app_started", callback)


def on_model_loaded(callback: Callable) -> None:
    """callback(sd_model) after a checkpoint is loaded."""
    _add("model_loaded", callback)


def on_ui_tabs(callback: Callable) -> None:
    """callback() -> [(gr.Blocks, title, elem_id), ...]: each becomes a top-level tab."""
    _add("ui_tabs", callback)


def on_ui_settings(callback: Callable) -> None:
    """callback() that declares settings through shared.opts.add_option."""
    _add("ui_settings", callback)


def on_before_image_saved(callback: Callable) -> None:
    """callback(ImageSaveParams) before an image is written; it may change image, pnginfo or filename."""
    _add("before_image_saved", callback)


def on_image_saved(callback: Callable) -> None:
    """callback(ImageSaveParams) after an image is written."""
    _add("image_saved", callback)


def on_cfg_denoiser(callback: Callable) -> None:
    """callback(CFGDenoiserParams) before each sampling step's UNet call."""
    _add("cfg_denoiser", callback)


def on_cfg_denoised(callback: Callable) -> None:
    """callback(CFGDenoisedParams) after each sampling step's guided prediction."""
    _add("cfg_denoised", callback)


def on_cfg_after_cfg(callback: Callable) -> None:
    """callback(AfterCFGCallbackParams) after each step's guidance is combined."""
    _add("cfg_after_cfg", callback)


def on_infotext_pasted(callback: Callable) -> None:
    """callback(infotext: str, params: dict) when infotext is pasted; it may change params."""
    _add("infotext_pasted", callback)


def on_script_unloaded(callback: Callable) -> None:
    """callback() before scripts are reloaded or the server stops."""
    _add("script_unloaded", callback)


def on_before_component(callback: Callable) -> None:
    """callback(component, **kwargs) before each Gradio component of the page is made (kwargs["elem_id"])."""
    _add("before_component", callback)


def on_after_component(callback: Callable) -> None:
    """callback(component, **kwargs) after each Gradio component of the page is made."""
    _add("after_component", callback)


def app_started_callback(demo: Any, app: Any) -> None:
    _run("app_started", demo, app)


def model_loaded_callback(model: Any) -> None:
    _run("model_loaded", model)


def ui_tabs_callback() -> list[tuple]:
    return [tab for tabs in _run("ui_tabs") if tabs for tab in tabs]


def ui_settings_callback() -> None:
    _run("ui_settings")


def before_image_saved_callback(params: ImageSaveParams) -> None:
    _run("before_image_saved", params)


def image_saved_callback(params: ImageSaveParams) -> None:
    _run("image_saved", params)


def cfg_denoiser_callback(params: CFGDenoiserParams) -> None:
    _run("cfg_denoiser", params)


def cfg_denoised_callback(params: CFGDenoisedParams) -> None:
    _run("cfg_denoised", params)


def cfg_after_cfg_callback(params: AfterCFGCallbackParams) -> None:
    _run("cfg_after_cfg", params)


def infotext_pasted_callback(infotext: str, params: dict) -> None:
    _run("infotext_pasted", infotext, params)


def before_component_callback(component: Any, **kwargs: Any) -> None:
    _run("before_component", component, **kwargs)


def after_component_callback(component: Any, **kwargs: Any) -> None:
    _run("after_component", component, **kwargs)


def script_unloaded_callback() -> None:
    _run("script_unloaded")
