"""The Checkpoint Merger tab, laid out and labelled as A1111's: three checkpoints, the interpolation, the output
options, and Merge, which queues an engine job (modules/models/checkpoint_merger.py) and lists the new checkpoint."""

from __future__ import annotations

import html

import gradio as gr

from modules.core.services import Services
from modules.errors import ModelLoadError, UserError
from modules.models.checkpoint_merger import (
    ADD_DIFFERENCE,
    CHECKPOINT_FORMATS,
    CONFIG_SOURCES,
    INTERPOLATIONS,
    NO_INTERPOLATION,
    NO_VAE,
    WEIGHTED_SUM,
    MergeResult,
    MergeSettings,
    merge_checkpoints,
)
from modules.ui.generation_tab import wait_with_progress
from modules.ui.user_errors import page_error

TAB = "modelmerger"
DESCRIPTIONS = {
    NO_INTERPOLATION: "Only model A is used: to change its format, save it as float16, bake in a VAE or drop "
    "weights. The result is A.",
    WEIGHTED_SUM: "A blend of two models, A and B. The result is A · (1 − M) + B · M.",
    ADD_DIFFERENCE: "What B has over C is added to A. Needs three models, A, B and C. The result is A + (B − C) · M.",
}


def describe(method: str) -> str:
    """The paragraph above the models that says what `method` computes."""
    return f"<p style='margin-bottom: 2.5em'>{html.escape(DESCRIPTIONS[method])}</p>"


def _refresh_button(elem_id: str) -> gr.Button:
    return gr.Button("🔄", elem_id=elem_id, size="sm", scale=0, min_width=40)


def build_tab(services: Services, checkpoint: gr.Dropdown) -> None:
    """Lay out the tab and wire Merge; `checkpoint` (the page's top dropdown) lists the result too. Call inside
    a gr.Tab context."""
    models = services.models

    def vae_choices() -> list[str]:
        return [NO_VAE, *(path.name for path in services.vaes.files)]

    def relisted(selected: str | None) -> dict:
        """A checkpoint dropdown's update: the listed titles, and its selection under its title now (a hash
        computed since, by a merge's metadata or a load, changes the title)."""
        try:
            selected = models.title(models.find(selected)) if selected else selected
        except ModelLoadError:
            selected = None
        return gr.update(choices=models.titles(), value=selected)

    def refresh_checkpoints(selected: str | None) -> dict:
        models.refresh()
        return relisted(selected)

    def refresh_vaes() -> dict:
        services.vaes.refresh()
        return gr.update(choices=vae_choices())

    with gr.Row(equal_height=False):
        with gr.Column(variant="compact", scale=3):
            description = gr.HTML(describe(WEIGHTED_SUM), elem_id="modelmerger_interp_description")
            dropdowns = []
            with gr.Row(elem_id="modelmerger_models"):
                for letter, label, elem_id in (
                    ("A", "Primary model (A)", "primary"),
                    ("B", "Secondary model (B)", "secondary"),
                    ("C", "Tertiary model (C)", "tertiary"),
                ):
                    dropdown = gr.Dropdown(
                        models.titles(),
                        value=None,
                        label=label,
                        min_width=100,
                        elem_id=f"modelmerger_{elem_id}_model_name",
                    )  # none picked, as in A1111
                    refresh = _refresh_button(f"refresh_checkpoint_{letter}")
                    refresh.click(refresh_checkpoints, inputs=dropdown, outputs=dropdown, api_visibility="private")
                    dropdowns.append(dropdown)
            custom_name = gr.Textbox(label="Custom Name (Optional)", elem_id="modelmerger_custom_name")
            multiplier = gr.Slider(
                minimum=0.0,
                maximum=1.0,
                step=0.05,
                value=0.3,
                label="Multiplier (M) - set to 0 to get model A",
                elem_id="modelmerger_interp_amount",
            )
            method = gr.Radio(
                list(INTERPOLATIONS),
                value=WEIGHTED_SUM,
                label="Interpolation Method",
                elem_id="modelmerger_interp_method",
            )
            method.change(describe, inputs=method, outputs=description, api_visibility="private")
            with gr.Row():
                checkpoint_format = gr.Radio(
                    list(CHECKPOINT_FORMATS),
                    value="safetensors",
                    label="Checkpoint format",
                    elem_id="modelmerger_checkpoint_format",
                )
                save_as_half = gr.Checkbox(False, label="Save as float16", elem_id="modelmerger_save_as_half")
            with gr.Row():
                config_source = gr.Radio(
                    list(CONFIG_SOURCES),
                    value=CONFIG_SOURCES[0],
                    label="Copy config from",
                    elem_id="modelmerger_config_method",
                )
                bake_in_vae = gr.Dropdown(
                    vae_choices(), value=NO_VAE, label="Bake in VAE", elem_id="modelmerger_bake_in_vae"
                )
                refresh_vae = _refresh_button("modelmerger_refresh_bake_in_vae")
                refresh_vae.click(refresh_vaes, outputs=bake_in_vae, api_visibility="private")
            discard_weights = gr.Textbox(
                label="Discard weights with matching name", elem_id="modelmerger_discard_weights"
            )
            save_metadata = gr.Checkbox(True, label="Save metadata", elem_id="modelmerger_save_metadata")
            checkpoint_format.change(
                lambda fmt: gr.update(visible=fmt == "safetensors"),
                inputs=checkpoint_format,
                outputs=save_metadata,
                api_visibility="private",
            )
            merge = gr.Button("Merge", variant="primary", elem_id="modelmerger_merge")
        with gr.Column(variant="compact", scale=2, elem_id="modelmerger_results_container"):
            result = gr.HTML(elem_id="modelmerger_result")

    def run(
        primary: str | None,
        secondary: str | None,
        tertiary: str | None,
        interpolation: str,
        m: float,
        half: bool,
        name: str,
        fmt: str,
        config: str,
        vae: str | None,
        discard: str,
        metadata: bool,
        progress: gr.Progress = gr.Progress(),
    ) -> tuple:
        settings = MergeSettings(
            primary or "",
            secondary or "",
            tertiary or "",
            interpolation,
            float(m),
            bool(half),
            name or "",
            fmt,
            config,
            vae or NO_VAE,
            discard or "",
            bool(metadata),
        )
        try:
            settings.validate()
        except UserError as exc:
            raise page_error(exc) from exc
        future = services.engine.submit(
            "merge checkpoints", lambda ctx: merge_checkpoints(settings, services.models, services.vaes, ctx)
        )
        try:
            merged: MergeResult = wait_with_progress(services, future, progress)
            message = merged.message
        except gr.Error as exc:
            message = f"Error merging checkpoints: {exc.message}"
            gr.Warning(message)
        return (
            *map(relisted, (primary, secondary, tertiary)),
            gr.update(choices=models.titles()),
            f"<p>{html.escape(message)}</p>",
        )

    merge.click(
        run,
        inputs=[
            *dropdowns,
            method,
            multiplier,
            save_as_half,
            custom_name,
            checkpoint_format,
            config_source,
            bake_in_vae,
            discard_weights,
            save_metadata,
        ],
        outputs=[*dropdowns, checkpoint, result],
        api_name=TAB,
        concurrency_limit=None,
    )
