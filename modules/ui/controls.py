"""Gradio controls made from GenerationParams field specs and ui-config.json overrides."""

from __future__ import annotations

from typing import Any

import gradio as gr

from modules.jobs.generation_params import USE_SAME_SAMPLER, USE_SAME_SCHEDULER, GenerationParams
from modules.sampling import registry
from modules.ui.ui_config import UiConfig

CHOICES = {
    "sampler_name": lambda: registry.SAMPLER_NAMES,
    "scheduler": lambda: registry.SCHEDULE_LABELS,
    "hr_sampler_name": lambda: [USE_SAME_SAMPLER, *registry.SAMPLER_NAMES],
    "hr_scheduler": lambda: [USE_SAME_SCHEDULER, *registry.SCHEDULE_LABELS],
}


def make_control(name: str, tab: str, ui_config: UiConfig, **extra: Any) -> gr.components.Component:
    """The control for field `name` on `tab`, labelled as in A1111, with ui-config.json applied."""
    spec = GenerationParams.spec(name)
    kwargs: dict[str, Any] = {"label": spec.label, "elem_id": f"{tab}_{name}"}
    kwargs.update(ui_config.control(tab, spec.label))
    kwargs.update(extra)
    if spec.widget == "textbox":
        return gr.Textbox(**kwargs)
    if spec.widget == "slider":
        return gr.Slider(**kwargs)
    if spec.widget == "dropdown":
        kwargs.setdefault("choices", CHOICES[name]() if name in CHOICES else None)
        return gr.Dropdown(**kwargs)
    if spec.widget == "checkbox":
        return gr.Checkbox(**kwargs)
    if spec.widget == "radio":
        return gr.Radio(choices=list(spec.choices), type="index", **kwargs)
    for bound in ("minimum", "maximum", "step"):
        kwargs.pop(bound, None)
    return gr.Number(precision=0 if GenerationParams.field_type(name) is int else None, **kwargs)
