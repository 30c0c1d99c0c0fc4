"""The txt2img tab, with its Hires. fix accordion."""

from __future__ import annotations

import gradio as gr

from modules.core.services import Services
from modules.imaging.upscalers import LATENT_MODES
from modules.jobs import hires_fix
from modules.jobs.generation_params import USE_SAME_CHECKPOINT, GenerationParams
from modules.processing import StableDiffusionProcessingTxt2Img
from modules.ui import input_accordion
from modules.ui.generation_tab import GenerationTab, queue_job
from modules.ui.script_controls import script_controls
from modules.ui.ui_config import UiConfig

TAB = "txt2img"
SIZE_FIELDS = ("width", "height", "hr_scale", "hr_resize_x", "hr_resize_y")


def hires_summary(enabled: bool, *values: float) -> str:
    """The accordion's summary line for the current size controls ("" while Hires. fix is off)."""
    if not enabled:
        return ""
    try:
        params = GenerationParams.from_dict(dict(zip(SIZE_FIELDS, values)))
    except ValueError:
        return ""
    return hires_fix.summary(params)


def hires_accordion(tab: GenerationTab, services: Services) -> gr.Markdown:
    """Hires. fix, an accordion with its enable box in the header: upscaler, steps, denoising strength, target
    size, checkpoint, sampler and prompts. Returns its summary line (see wire_hires_summary)."""
    accordion_id = f"{TAB}_hr"  # A1111's
    with input_accordion.wrapper(accordion_id):
        enabled = tab.control("enable_hr", container=False, elem_id=input_accordion.checkbox_id(accordion_id))
        with input_accordion.link(enabled, "Hires. fix", accordion_id):
            summary = gr.Markdown(elem_id=f"{TAB}_hires_summary")
            with gr.Row():
                tab.control(
                    "hr_upscaler", choices=[*LATENT_MODES, *services.tools.upscalers.names()], allow_custom_value=True
                )
                tab.control("hr_second_pass_steps")
                tab.control("denoising_strength")
            with gr.Row():
                tab.control("hr_scale")
                tab.control("hr_resize_x")
                tab.control("hr_resize_y")
            with gr.Row():
                tab.checkpoint_control("hr_checkpoint_name", USE_SAME_CHECKPOINT)
                tab.control("hr_sampler_name")
                tab.control("hr_scheduler")
            tab.control("hr_prompt", lines=2, placeholder="Prompt for hires fix pass (empty: the same as the first)")
            tab.control(
                "hr_negative_prompt",
                lines=2,
                placeholder="Negative prompt for hires fix pass (empty: the same as the first)",
            )
    return summary


def wire_hires_summary(tab: GenerationTab, summary: gr.Markdown) -> None:
    """Keep the summary line ("from 512x512 to 1024x1024") up to date once the size controls exist."""
    sizes = [tab.controls["enable_hr"], *(tab.controls[name] for name in SIZE_FIELDS)]
    for control in sizes:
        control.change(
            hires_summary, inputs=sizes, outputs=summary, queue=False, show_progress="hidden", api_visibility="private"
        )
    summary.value = hires_summary(*(control.value for control in sizes))


def build_tab(services: Services, ui_config: UiConfig, clip_skip: gr.Slider | None) -> GenerationTab:
    """Lay out the tab and wire Generate. Call inside a gr.Tab context."""
    tab = GenerationTab(TAB, services, ui_config)
    tab.prompt_row()
    with tab.extra_tabs():
        with tab.generation_columns():
            tab.sampler_controls()
            with gr.Row(elem_id=f"{TAB}_accordions", elem_classes="accordions"):
                summary = hires_accordion(tab, services)
                tab.refiner_accordion()
            tab.size_controls()
            tab.control("cfg_scale")
            tab.seed_controls()
            tab.checkbox_controls()
            tab.override_settings_control()
            script_inputs = script_controls(services, TAB)
    wire_hires_summary(tab, summary)
    tab.wire(
        clip_skip,
        lambda params, extra, overrides: queue_job(
            services, StableDiffusionProcessingTxt2Img.from_params(params), extra, overrides
        ),
        script_inputs,
    )
    return tab
