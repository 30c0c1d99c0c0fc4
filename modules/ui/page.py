"""The whole page: quicksettings row (checkpoint, then the settings quicksettings_list names), status line
and the tabs."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import gradio as gr

from modules import script_callbacks
from modules.api.file_urls import file_url
from modules.core.services import Services
from modules.errors import UserError
from modules.extensions import Extension, extension_assets
from modules.extensions.a1111 import infotext_utils
from modules.ui import extensions as extensions_ui
from modules.ui import extras, img2img, merger, png_info, quicksettings, settings, txt2img
from modules.ui.infotext_paste import Quicksettings, connect_paste_button
from modules.ui.page_load import PageLoad
from modules.ui.script_controls import notice_board, show_notices, tab_scripts
from modules.ui.send_buttons import connect_send_buttons
from modules.ui.ui_config import UiConfig
from modules.ui.upload_check import canvas_refusals, check_uploads

CSS = """
.infotext { font-family: monospace; font-size: 0.9em; white-space: pre-wrap; word-break: break-word; }
#quicksettings { align-items: end; }
.token-counter { text-align: right; font-size: 0.8em; opacity: 0.7; margin: -2.4em 0.8em 0 0; z-index: 10;
                 pointer-events: none; min-height: 0 !important; }
"""
JAVASCRIPT_DIR = Path(__file__).with_name("javascript")
STYLE = Path(__file__).with_name("style.css")  # the generation tabs' layout


def head_scripts(extra: Sequence[Path] = ()) -> str:
    """The page's own scripts (A1111's page helpers, Ctrl+Up/Down weight editing…) inline, then `extra`
    (extensions' javascript/*.js) as `<script src="file=…">` tags, as A1111 writes them: plain scripts that
    run in order while the page loads (modules/ui/page_head.py puts them in its <head>)."""
    own = [
        "<script>" + _read(path).replace("</script", r"<\/script") + "</script>"
        for path in sorted(JAVASCRIPT_DIR.glob("*.js"))
    ]
    return "\n".join([*own, *(f'<script src="{html.escape(file_url(path))}"></script>' for path in extra)])


def page_assets(extensions: Sequence[Extension]) -> dict[str, str]:
    """The launch options "head" and "css": the page's own, then the scripts and style.css of
    `extensions` (the enabled ones)."""
    assets = extension_assets(list(extensions))
    return {"head": head_scripts(assets.scripts), "css": "\n".join([CSS, _read(STYLE), *map(_read, assets.styles)])}


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def build_page(services: Services, ui_config: UiConfig, extensions: list[Extension] | None = None) -> gr.Blocks:
    """Build the Gradio page. It never touches the model; it talks to the engine. `extensions`: the extension
    folders the start looked up (None: the Extensions tab looks itself)."""
    models = services.models
    extension_tabs = script_callbacks.ui_tabs_callback()  # built before the page, rendered in it
    with gr.Blocks(title="Stable Diffusion") as page:
        with gr.Row(elem_id="quicksettings"):
            checkpoint = gr.Dropdown(
                label="Stable Diffusion checkpoint",
                choices=models.titles(),
                value=models.current_title,
                elem_id="setting_sd_model_checkpoint",
                scale=4,
                allow_custom_value=True,
            )
            refresh = gr.Button("🔄", elem_id="refresh_sd_model_checkpoint", size="sm", scale=0, min_width=40)
            quick_controls = quicksettings.build_controls(services.opts)
        clip_skip = quick_controls.controls.get("CLIP_stop_at_last_layers")  # None: the setting's value is used
        status = gr.Markdown(services.page.status, elem_id="model_status")
        notices = notice_board()
        with gr.Tabs(elem_id="tabs") as tabs:
            with gr.Tab("txt2img", id="txt2img", elem_id="tab_txt2img"), tab_scripts(services, "txt2img"):
                t2i = txt2img.build_tab(services, ui_config, clip_skip)
            with gr.Tab("img2img", id="img2img", elem_id="tab_img2img"), tab_scripts(services, "img2img"):
                i2i = img2img.build_tab(services, ui_config, clip_skip)
            with gr.Tab("Extras", id="extras", elem_id="tab_extras"):
                extras_tab = extras.build_tab(services)
            with gr.Tab("PNG Info", id="pnginfo", elem_id="tab_pnginfo"):
                png = png_info.build_tab()
            with gr.Tab("Checkpoint Merger", id="modelmerger", elem_id="tab_modelmerger"):
                merger.build_tab(services, checkpoint)
            for blocks, title, tab_id in extension_tabs:
                with gr.Tab(title, id=tab_id, elem_id=f"tab_{tab_id}"):
                    blocks.render()
            with gr.Tab("Settings", id="settings", elem_id="tab_settings"):
                settings.build_tab(services.opts, services.user_settings.change, services.args.hide_ui_dir_config)
            with gr.Tab("Extensions", id="extensions", elem_id="tab_extensions"):
                extensions_ui.build_tab(services, extensions)
        show_notices(notices, services)  # after the tabs: scripts that fail while they are built are named too
        for tab in (t2i, i2i):
            connect_send_buttons(tab, i2i, extras_tab, tabs)
        check_uploads(
            i2i.image,
            i2i.sketch,
            i2i.inpaint,
            i2i.inpaint_sketch,
            i2i.upload_image,
            i2i.upload_mask,
            extras_tab.image,
            extras_tab.image_batch,
        )
        canvas_refusals()

        def change_checkpoint(title: str, progress: gr.Progress = gr.Progress()) -> tuple:
            if not title or title == models.current_title:
                return gr.update(), services.page.status
            progress(0, desc=f"Loading {title}…")
            try:  # only a listed checkpoint, as the API: the dropdown takes typed text too
                services.switching.load_checkpoint(title).result()
            except UserError as exc:
                services.switching.load_error = None if models.current else str(exc)
                gr.Warning(str(exc))
                return gr.update(value=models.current_title), f"⚠️ {exc}"
            return gr.update(choices=models.titles(), value=models.current_title), services.page.status

        checkpoint_lists = [pair for tab in (t2i, i2i) for pair in tab.checkpoint_lists]

        def refresh_list() -> tuple[dict, ...]:
            """Read the checkpoint folder again, for the top dropdown and the tabs' (hires fix's, the refiner's)."""
            models.refresh()
            titles = models.titles()
            return (
                gr.update(choices=titles, value=models.current_title),
                *(gr.update(choices=[first, *titles]) for _, first in checkpoint_lists),
            )

        def page_status() -> tuple:
            loaded = models.current is not None or services.switching.load_error is not None
            dropdown = gr.update(choices=models.titles(), value=models.current_title)
            return services.page.status, dropdown, gr.Timer(active=not loaded)

        # select, not input: Gradio 6's dropdown sends input again when it loses focus, so a pick loaded twice
        checkpoint.select(
            change_checkpoint, inputs=checkpoint, outputs=[checkpoint, status], api_name="change_checkpoint"
        )
        quicksettings.wire(quick_controls, services, status)
        quick = Quicksettings(
            {"clip_skip": clip_skip} if clip_skip else {}, checkpoint, status, models, change_checkpoint
        )
        load = PageLoad()
        for tab in (t2i, i2i):
            connect_paste_button(tab, quick)
            tab.extra_networks.connect_checkpoints(checkpoint, change_checkpoint, status)
            tab.extra_networks.fill_on(load)
        infotext_utils.connect_paste_params_buttons({"txt2img": t2i, "img2img": i2i}, quick, tabs)  # extensions'
        for target in [*png_info.generation_targets(t2i, i2i), png_info.extras_target(extras_tab)]:
            png_info.connect_send_button(png, target, tabs, quick)
        # One at a time, in the order they were sent: a page_status answer computed before a 🔄 read the folder
        # would otherwise land after the 🔄's and put the old list back.
        listing = {"api_visibility": "private", "concurrency_id": "checkpoint_list"}
        refresh.click(refresh_list, outputs=[checkpoint, *(control for control, _ in checkpoint_lists)], **listing)
        timer = gr.Timer(1.0)
        timer.tick(page_status, outputs=[status, checkpoint, timer], **listing)
        load.add(page_status, [], [status, checkpoint, timer])
        load.add(lambda: (extras.face_models_status(services.tools.face_restorers),), [], [extras_tab.face_models])
        load.connect(page, **listing)
    return page
