"""The txt2img tab, with its Hires. fix accordion."""
from __future__ import annotations

import gradio as gr

from modules import hires_fix
from modules.generation_params import USE_SAME_CHECKPOINT, GenerationParams
from modules.processing import StableDiffusionProcessingTxt2Img
from modules.services import Services
from modules.ui.extra_networks import ExtraNetworksPanel
from modules.ui.generation_tab import GenerationTab, queue_job
from modules.ui.script_controls import script_controls
from modules.ui.ui_config import UiConfig
from modules.upscalers import LATENT_MODES

TAB = "txt2img"
SIZE_FIELDS = ("width", "height", "hr_scale", "hr_resize_x", "hr_resize_y")


def hires_summary(*values: float) -> str:
    """The accordion's summary line for the current size controls."""
    try:
        params = GenerationParams.from_dict(dict(zip(SIZE_FIELDS, values)))
    except ValueError:
        return ""
    return hires_fix.summary(params)


def hires_accordion(tab: GenerationTab, services: Services) -> None:
    """Hires. fix: upscaler, steps, denoising strength, target size, checkpoint, sampler and prompts."""
    with gr.Accordion("Hires. fix", open=False, elem_id=f"{TAB}_hr"):
        with gr.Row():
            tab.control("enable_hr", scale=1)
            summary = gr.Markdown(elem_id=f"{TAB}_hires_summary")
        with gr.Row():
            tab.control("hr_upscaler", choices=[*LATENT_MODES, *services.tools.upscalers.names()],
                        allow_custom_value=True)
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
        tab.control("hr_negative_prompt", lines=2,
                    placeholder="Negative prompt for hires fix pass (empty: the same as the first)")
    sizes = [tab.controls[name] for name in SIZE_FIELDS]
    for control in sizes:
        control.change(hires_summary, inputs=sizes, outputs=summary, queue=False, show_progress="hidden",
                       api_visibility="private")
    summary.value = hires_summary(*(control.value for control in sizes))


def build_tab(services: Services, ui_config: UiConfig, clip_skip: gr.Slider | None) -> GenerationTab:
    """Lay out the tab and wire Generate. Call inside a gr.Tab context."""
    tab = GenerationTab(TAB, services, ui_config)
    tab.prompt_row()
    tab.extra_networks = ExtraNetworksPanel(tab)
    with gr.Row():
        with gr.Column(elem_id=f"{TAB}_settings"):
            tab.sampling_controls()
            with gr.Row():
                tab.control("restore_faces")
                tab.control("tiling")
            hires_accordion(tab, services)
            tab.refiner_accordion()
            tab.override_settings_control()
            script_inputs = script_controls(services, TAB)
        with gr.Column():
            tab.output_column()
    tab.wire(clip_skip, lambda params, extra, overrides: queue_job(
        services, StableDiffusionProcessingTxt2Img.from_params(params), extra, overrides), script_inputs)
    return tab
