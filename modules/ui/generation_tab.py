"""What txt2img and img2img share on the page, laid out as in A1111 1.10: the top row (toprow.py), the tab strip
(Generation, then the extra networks), the sampling controls, the Refiner accordion, size and batch, the seed row,
Override settings, and the gallery with its infotext beside the settings."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

import gradio as gr
from PIL import Image

from modules import processing
from modules.core.engine import Engine, Progress
from modules.core.services import Services
from modules.errors import UserError
from modules.jobs.generation import GenerationResult
from modules.jobs.generation_params import NO_REFINER, GenerationParams
from modules.options import settings_from_entries
from modules.ui import input_accordion, toprow
from modules.ui.controls import make_control
from modules.ui.extra_networks import ExtraNetworksPanel
from modules.ui.output_panel import OutputPanel, infotext_html, seed_of, subseed_of
from modules.ui.ui_config import UiConfig
from modules.ui.user_errors import page_error

POLL_SECONDS = 0.25


def progress_text(progress: Progress) -> str:
    """ "Step 5/20 · batch 1/2 · ETA 3s"."""
    parts = [f"Step {progress.step}/{progress.steps}"]
    if progress.job_count > 1:
        parts.append(f"batch {progress.job_no + 1}/{progress.job_count}")
    if progress.eta is not None:
        parts.append(f"ETA {progress.eta:.0f}s")
    return " · ".join(parts)


def previews_while_waiting(engine: Engine, future: Future, progress: gr.Progress) -> Iterator[Image.Image]:
    """Mirror an engine job's progress on the page until it ends, yielding each new live preview. While the job
    waits in the queue, the engine's progress and preview are another job's, so nothing is mirrored."""
    shown = 0
    while not future.done():
        if not future.running():
            time.sleep(POLL_SECONDS)
            continue
        state = engine.progress
        if state.busy and state.steps:
            progress(state.fraction, desc=progress_text(state))
        if state.preview_id != shown:
            shown = state.preview_id
            image = engine.preview()
            if image is not None:
                yield image
        time.sleep(POLL_SECONDS)


def job_result(future: Future) -> Any:
    """A finished job's result; user errors become gr.Error."""
    try:
        return future.result()
    except UserError as exc:
        raise page_error(exc) from exc


def wait_with_progress(services: Services, future: Future, progress: gr.Progress) -> Any:
    """Wait for an engine job, mirroring its progress on the page."""
    for _ in previews_while_waiting(services.engine, future, progress):
        pass
    return job_result(future)


def queue_job(
    services: Services, p: processing.StableDiffusionProcessing, script_args: list, override_settings: dict[str, Any]
) -> Future:
    """Queue a page job: its processing object with the Script controls' values and the Override settings."""
    p.script_args, p.override_settings = list(script_args), dict(override_settings)
    return services.jobs.submit_processing(p)


def gallery_items(result: GenerationResult) -> list:
    """Saved files when the images were saved (they carry their infotext), else the images."""
    return [str(p) for p in result.paths] if len(result.paths) == len(result.images) else result.images


class GenerationTab:
    """Builds the shared parts of one generation tab and wires them to a submit function."""

    def __init__(self, tab: str, services: Services, ui_config: UiConfig) -> None:
        self.tab = tab
        self.services = services
        self.ui_config = ui_config
        self.controls: dict[str, gr.components.Component] = {}
        self.counters: dict[str, gr.HTML] = {}
        self.checkpoint_lists: list[tuple[gr.Dropdown, str]] = []  # dropdowns of checkpoints, each first choice

    def control(self, name: str, **extra: Any) -> gr.components.Component:
        """The control of one GenerationParams field on this tab."""
        self.controls[name] = make_control(name, self.tab, self.ui_config, **extra)
        return self.controls[name]

    def checkpoint_control(self, name: str, first: str) -> gr.components.Component:
        """A dropdown of the listed checkpoints after `first` ("Use same checkpoint", "None"); the 🔄 beside
        the page's checkpoint refreshes it too. A typed name of a listed checkpoint is accepted."""
        control = self.control(name, choices=[first, *self.services.models.titles()], allow_custom_value=True)
        self.checkpoint_lists.append((control, first))
        return control

    def refiner_accordion(self) -> None:
        """Refiner: a checkpoint that takes over sampling after "Switch at" of the steps. Its header box turns it
        on; a checkpoint other than None (picked, or pasted from an infotext) ticks it."""
        accordion_id = f"{self.tab}_refiner"
        with input_accordion.wrapper(accordion_id):
            self.refiner_enabled = gr.Checkbox(
                False, label="Refiner", container=False, elem_id=input_accordion.checkbox_id(accordion_id)
            )
            with input_accordion.link(self.refiner_enabled, "Refiner", accordion_id), gr.Row():
                checkpoint = self.checkpoint_control("refiner_checkpoint", NO_REFINER)
                self.control("refiner_switch_at")
        checkpoint.change(
            lambda name: gr.update(value=True) if name not in ("", NO_REFINER) else gr.update(),
            inputs=checkpoint,
            outputs=self.refiner_enabled,
            queue=False,
            show_progress="hidden",
            api_visibility="private",
        )

    def prompt_row(self) -> None:
        """A1111's top row: prompts, Generate / Interrupt / Skip, the tool buttons and Styles (modules/ui/toprow.py)."""
        toprow.build(self)

    def sampler_controls(self) -> None:
        """Sampling method and Schedule type on one row, then the steps."""
        with gr.Row(elem_id=f"{self.tab}_sampler_row"):
            self.control("sampler_name")
            self.control("scheduler")
        self.control("steps")

    def size_controls(self) -> None:
        """Width and Height with ⇅ beside them, then Batch count and Batch size."""
        with gr.Row(elem_id=f"{self.tab}_dimensions_row", equal_height=False):
            self.width_height()
            with gr.Column(scale=1, elem_id=f"{self.tab}_column_batch", min_width=160):
                self.control("n_iter")
                self.control("batch_size")

    def width_height(self) -> None:
        """Width and Height sliders with A1111's ⇅ that swaps them."""
        with gr.Column(scale=3, elem_id=f"{self.tab}_column_size", min_width=200):
            width, height = self.control("width"), self.control("height")
        swap = gr.Button(
            "⇅", elem_id=f"{self.tab}_res_switch_btn", size="sm", scale=0, min_width=40, elem_classes="tool"
        )
        swap.click(
            lambda w, h: (h, w),
            inputs=[width, height],
            outputs=[width, height],
            queue=False,
            show_progress="hidden",
            api_visibility="private",
        )

    def seed_controls(self) -> None:
        """The seed row (🎲 ♻️ Extra) and its extras."""
        with gr.Row(elem_id=f"{self.tab}_seed_row"):
            self.control("seed", scale=4)
            self.random_seed = gr.Button("🎲", elem_id=f"{self.tab}_random_seed", size="sm", scale=0, min_width=40)
            self.reuse_seed = gr.Button("♻️", elem_id=f"{self.tab}_reuse_seed", size="sm", scale=0, min_width=40)
            self.seed_extras = gr.Checkbox(label="Extra", elem_id=f"{self.tab}_subseed_show", scale=0, min_width=80)
        self.seed_extra_controls()

    def checkbox_controls(self) -> None:
        """Restore faces and Tiling."""
        with gr.Row(elem_classes="checkboxes-row"):
            self.control("restore_faces")
            self.control("tiling")

    def seed_extra_controls(self) -> None:
        """A1111's seed extras, shown by "Extra": variation seed and strength, and resize seed from. Hidden
        values never count: unticking "Extra" turns them off, and values that turn them on (pasted
        infotext, ui-config.json) tick it."""
        with gr.Row(visible=False, elem_id=f"{self.tab}_seed_extra_row_1") as variation_row:
            self.control("subseed", scale=4)
            random_subseed = gr.Button("🎲", elem_id=f"{self.tab}_random_subseed", size="sm", scale=0, min_width=40)
            self.reuse_subseed = gr.Button("♻️", elem_id=f"{self.tab}_reuse_subseed", size="sm", scale=0, min_width=40)
            self.control("subseed_strength", scale=4)
        with gr.Row(visible=False, elem_id=f"{self.tab}_seed_extra_row_2") as resize_row:
            self.control("seed_resize_from_w")
            self.control("seed_resize_from_h")
        rows = [variation_row, resize_row]
        extras = [self.controls[name] for name in ("subseed_strength", "seed_resize_from_w", "seed_resize_from_h")]

        def active(strength: float, width: float, height: float) -> bool:
            return bool(strength and strength > 0) or bool(width and height and width > 0 and height > 0)

        def toggle(shown: bool) -> list:
            return [gr.update(visible=shown)] * len(rows) + [gr.update() if shown else 0] * len(extras)

        self.seed_extras.value = active(*(control.value for control in extras))
        for row in rows:
            row.visible = self.seed_extras.value
        self.seed_extras.change(
            toggle,
            inputs=self.seed_extras,
            outputs=rows + extras,
            queue=False,
            show_progress="hidden",
            api_visibility="private",
        )
        for control in extras:
            control.change(
                lambda *values: gr.update(value=True) if active(*values) else gr.update(),
                inputs=extras,
                outputs=self.seed_extras,
                queue=False,
                show_progress="hidden",
                api_visibility="private",
            )
        random_subseed.click(lambda: -1, outputs=self.controls["subseed"], queue=False, api_visibility="private")

    def override_settings_control(self) -> None:
        """A1111's "Override settings": the settings pasted infotext sets (RNG, ENSD, Eta…) with values other than
        those in force, as "Key: value" entries that Generate applies to its job only. Hidden while empty; an
        entry removed by hand is not applied."""
        self.override_settings = gr.Dropdown(
            [],
            value=[],
            label="Override settings",
            multiselect=True,
            allow_custom_value=True,
            visible=False,
            elem_id=f"{self.tab}_override_settings",
        )
        self.override_settings.change(
            lambda entries: gr.update(visible=bool(entries)),
            inputs=self.override_settings,
            outputs=self.override_settings,
            queue=False,
            show_progress="hidden",
            api_visibility="private",
        )

    @contextmanager
    def extra_tabs(self) -> Iterator[None]:
        """A1111's tab strip under the top row: Generation (what the body lays out), then one tab per kind of
        extra network."""
        with gr.Tabs(elem_id=f"{self.tab}_extra_tabs", elem_classes="extra-networks") as self.strip:
            with gr.Tab("Generation", id=f"{self.tab}_generation", elem_id=f"{self.tab}_generation_tab"):
                yield
            self.extra_networks = ExtraNetworksPanel(self)

    def to_generation(self) -> tuple[gr.Tabs, Any]:
        """The tab strip and the update that brings Generation forward (for a "Send to" this tab)."""
        return self.strip, gr.update(selected=f"{self.tab}_generation")

    @contextmanager
    def generation_columns(self) -> Iterator[None]:
        """The settings column (A1111's `<tab>_settings`, laid out by the body) and the gallery column beside it."""
        with gr.Row(equal_height=False, elem_id=f"{self.tab}_generation_row"):
            with gr.Column(elem_id=f"{self.tab}_settings", min_width=320):
                yield
            with gr.Column(elem_id=f"{self.tab}_results", min_width=320):
                self.output_column()

    def output_column(self) -> None:
        """The gallery, 📂 💾 🗃️ and the Send-to buttons, and the selected image's infotext."""
        self.output = OutputPanel(self.tab, self.services, f"outdir_{self.tab}_samples")
        self.gallery, self.info, self.selected = self.output.gallery, self.output.info, self.output.selected
        self.send_buttons = self.output.send_buttons

    def wire(
        self,
        clip_skip: gr.Slider | None,
        submit: Callable[[GenerationParams, list, dict[str, Any]], Future],
        extra_inputs: list | None = None,
    ) -> None:
        """Connect Generate (API name = the tab's), the counters, the seed buttons and Interrupt/Skip.

        `clip_skip` is the quicksettings row's slider; without one, the Clip skip setting is used.

        `submit(params, extra_values, override_settings)` queues the job; `extra_values` are the values of
        `extra_inputs`, `override_settings` the Override settings entries as {setting key: value}.
        """
        names = list(self.controls)
        extra_inputs = extra_inputs or []
        services = self.services

        skip_inputs = [clip_skip] if clip_skip is not None else []
        settings_at = len(names) + len(skip_inputs)  # where the Override settings entries are among the inputs
        refiner_at = settings_at + 1  # then the Refiner accordion's box; off means no refiner whatever is chosen

        def run(*values: Any, progress: gr.Progress = gr.Progress()) -> Iterator[tuple]:
            field_values = values[: len(names)]
            skip_value = values[len(names)] if skip_inputs else services.opts.CLIP_stop_at_last_layers
            try:
                fields = {**dict(zip(names, field_values)), "clip_skip": skip_value}
                if not values[refiner_at]:
                    fields["refiner_checkpoint"] = NO_REFINER
                params = GenerationParams.from_dict(fields)
                overrides = settings_from_entries(services.opts, values[settings_at] or [])
            except ValueError as exc:
                raise page_error(exc) from exc
            try:
                future = submit(params, list(values[refiner_at + 1 :]), overrides)
            except UserError as exc:
                raise page_error(exc) from exc
            for preview in previews_while_waiting(services.engine, future, progress):
                yield [preview], gr.skip(), gr.skip()
            result: GenerationResult = job_result(future)
            services.page.last_infotext = next(iter(result.infotexts), services.page.last_infotext)
            for warning in result.warnings:
                gr.Warning(warning)
            text = "\n".join([*(f"⚠️ {w}" for w in result.warnings), *result.infotexts[:1]])
            if result.interrupted:
                text = f"(interrupted)\n{text}"
            yield gallery_items(result), infotext_html(text), result

        inputs = [
            *(self.controls[n] for n in names),
            *skip_inputs,
            self.override_settings,
            self.refiner_enabled,
            *extra_inputs,
        ]
        generated = self.generate.click(
            run,
            inputs=inputs,
            outputs=[self.gallery, self.info, self.output.result],
            api_name=self.tab,
            concurrency_limit=None,
        )
        # the first image (the grid, when there is one) opens selected, as in A1111's gallery
        generated.success(
            lambda: (gr.update(selected_index=0), 0),
            outputs=[self.gallery, self.selected],
            queue=False,
            show_progress="hidden",
            api_visibility="private",
        )
        toprow.wire_tools(self)
        toprow.idle_after(self, generated)
        self.interrupt.click(services.engine.interrupt, queue=False, api_name=f"{self.tab}_interrupt")
        self.skip.click(services.engine.skip, queue=False, api_name=f"{self.tab}_skip")

        def count(text: str, steps: float) -> str:
            counted = services.page.token_count(text or "", steps)
            return "" if counted is None else f"{counted[0]}/{counted[1]}"

        for name, counter in self.counters.items():
            self.controls[name].change(
                count,
                inputs=[self.controls[name], self.controls["steps"]],
                outputs=counter,
                queue=False,
                show_progress="hidden",
                trigger_mode="always_last",
                api_name=f"{self.tab}_{name}_tokens",
            )
        seed = self.controls["seed"]
        self.random_seed.click(lambda: -1, outputs=seed, queue=False, api_visibility="private")
        self.reuse_seed.click(
            seed_of, inputs=[self.output.result, self.selected], outputs=seed, queue=False, api_visibility="private"
        )
        self.reuse_subseed.click(
            subseed_of,
            inputs=[self.output.result, self.selected],
            outputs=self.controls["subseed"],
            queue=False,
            api_visibility="private",
        )
        self.output.wire()
