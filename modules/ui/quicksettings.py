"""The settings in the row at the top of the page: those A1111's `quicksettings_list` setting names, in its
order, each with the control the Settings tab would give it (and a 🔄 beside a list that can change), applied
and saved as soon as it changes. The checkpoint dropdown, which loads models, is always first (page.py)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import gradio as gr

from modules.core.services import Services
from modules.errors import UserError
from modules.options import Options
from modules.ui.settings import setting_control

log = logging.getLogger(__name__)

CHECKPOINT = "sd_model_checkpoint"


@dataclass
class QuickControls:
    """The row's setting controls by setting key (the checkpoint's aside), and their 🔄 buttons."""

    controls: dict[str, gr.components.Component]
    refresh_buttons: dict[str, gr.Button]


def row_keys(opts: Options) -> list[str]:
    """The declared settings quicksettings_list names, once each, in its order, without the checkpoint."""
    declared = opts.declared()
    unknown = [key for key in opts.quicksettings_list if key not in declared]
    if unknown:
        log.warning("quicksettings_list names settings that don't exist: %s", ", ".join(unknown))
    return [key for key in dict.fromkeys(opts.quicksettings_list) if key in declared and key != CHECKPOINT]


def build_controls(opts: Options) -> QuickControls:
    """Make the controls (call inside the row)."""
    controls, buttons = {}, {}
    for key in row_keys(opts):
        info = opts.info(key)
        controls[key] = setting_control(key, info, getattr(opts, key), scale=2)
        if info.refresh is not None:
            buttons[key] = gr.Button("🔄", elem_id=f"refresh_{key}", size="sm", scale=0, min_width=40)
    return QuickControls(controls, buttons)


def apply_setting(services: Services, key: str, value: object) -> None:
    """Apply and save one changed setting (UserSettings.change: sd_vae swaps the loaded model's VAE).
    Raises UserError or ValueError, and then nothing changed."""
    services.user_settings.change({key: value})


def wire(quick: QuickControls, services: Services, status: gr.Markdown) -> None:
    """Connect each control's change (a slider's release, a text's blur) and each 🔄."""
    opts = services.opts
    for key, control in quick.controls.items():

        def change(value: object, key: str = key) -> tuple:
            try:
                apply_setting(services, key, value)
            except (UserError, ValueError) as exc:
                gr.Warning(str(exc))
                return gr.update(value=getattr(opts, key)), f"⚠️ {exc}"
            return gr.update(), services.page.status

        if isinstance(control, gr.Slider):
            event = control.release
        elif isinstance(control, (gr.Textbox, gr.Number)):
            event = control.blur
        elif isinstance(control, gr.Dropdown) and not control.multiselect:
            event = control.select  # its input fires again on blur, which would apply the pick twice
        else:
            event = control.input
        event(change, inputs=control, outputs=[control, status], api_visibility="private")
    for key, button in quick.refresh_buttons.items():

        def refresh(key: str = key) -> dict:
            info = opts.info(key)
            info.refresh()
            return gr.update(choices=info.choice_list(), value=getattr(opts, key))

        button.click(refresh, outputs=quick.controls[key], api_visibility="private")
