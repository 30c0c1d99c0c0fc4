"""The txt2img tab: prompt boxes, generation controls, Generate/Interrupt/Skip, gallery and infotext."""
from __future__ import annotations

import html
import time
from typing import Any

import gradio as gr

from modules.engine import Progress
from modules.errors import UserError
from modules.generation import GenerationResult
from modules.generation_params import GenerationParams
from modules.services import Services
from modules.ui.controls import make_control
from modules.ui.ui_config import UiConfig

TAB = "txt2img"
POLL_SECONDS = 0.25


def infotext_html(text: str) -> str:
    """Infotext as A1111 shows it under the gallery."""
    return f"<p class='infotext'>{'<br>'.join(html.escape(line) for line in text.splitlines())}</p>"


def progress_text(progress: Progress) -> str:
    """"Step 5/20 · batch 1/2 · ETA 3s"."""
    parts = [f"Step {progress.step}/{progress.steps}"]
    if progress.job_count > 1:
        parts.append(f"batch {progress.job_no + 1}/{progress.job_count}")
    if progress.eta is not None:
        parts.append(f"ETA {progress.eta:.0f}s")
    return " · ".join(parts)


def wait_with_progress(services: Services, future, progress: gr.Progress) -> Any:
    """Wait for an engine job, mirroring its progress on the page; user errors become gr.Error."""
    while not future.done():
        state = services.engine.progress
        if state.busy and state.steps:
            progress(state.fraction, desc=progress_text(state))
        time.sleep(POLL_SECONDS)
    try:
        return future.result()
    except UserError as exc:
        raise gr.Error(str(exc)) from exc


def gallery_items(result: GenerationResult) -> list:
    """Saved files when the images were saved (they carry their infotext), else the images."""
    return [str(p) for p in result.paths] if len(result.paths) == len(result.images) else result.images


def build_tab(services: Services, ui_config: UiConfig, clip_skip: gr.Slider) -> None:
    """Lay out the tab and wire its events. Call inside a gr.Blocks/gr.Tab context."""
    controls: dict[str, gr.components.Component] = {}

    def control(name: str, **extra: Any) -> gr.components.Component:
        controls[name] = make_control(name, TAB, ui_config, **extra)
        return controls[name]

    with gr.Row():
        with gr.Column(scale=6):
            control("prompt", lines=3, placeholder="Prompt (press Generate)", show_label=False)
            counters = {"prompt": gr.HTML(elem_id=f"{TAB}_token_counter", elem_classes="token-counter")}
            control("negative_prompt", lines=2, placeholder="Negative prompt", show_label=False)
            counters["negative_prompt"] = gr.HTML(elem_id=f"{TAB}_negative_token_counter",
                                                  elem_classes="token-counter")
        with gr.Column(scale=1, min_width=160):
            generate = gr.Button("Generate", variant="primary", elem_id=f"{TAB}_generate")
            with gr.Row():
                interrupt = gr.Button("Interrupt", elem_id=f"{TAB}_interrupt", size="sm")
                skip = gr.Button("Skip", elem_id=f"{TAB}_skip", size="sm")
    with gr.Row():
        with gr.Column():
            with gr.Row():
                control("sampler_name")
                control("scheduler")
            control("steps")
            with gr.Row():
                with gr.Column(scale=3):
                    control("width")
                    control("height")
                with gr.Column(scale=1):
                    control("n_iter")
                    control("batch_size")
            control("cfg_scale")
            with gr.Row():
                seed = control("seed", scale=4)
                random_seed = gr.Button("🎲", elem_id=f"{TAB}_random_seed", size="sm", scale=0, min_width=40)
                reuse_seed = gr.Button("♻️", elem_id=f"{TAB}_reuse_seed", size="sm", scale=0, min_width=40)
        with gr.Column():
            gallery = gr.Gallery(label="Output", elem_id=f"{TAB}_gallery", format="png", columns=2, height=512)
            info = gr.HTML(elem_id=f"html_info_{TAB}")
    last_seed = gr.State(-1)
    names = list(controls)

    def run(*values: Any, progress: gr.Progress = gr.Progress()) -> tuple:
        *field_values, skip_value = values
        try:
            params = GenerationParams.from_dict({**dict(zip(names, field_values)), "clip_skip": skip_value})
        except ValueError as exc:
            raise gr.Error(str(exc)) from exc
        result: GenerationResult = wait_with_progress(services, services.txt2img(params), progress)
        for warning in result.warnings:
            gr.Warning(warning)
        text = "\n".join([*(f"⚠️ {w}" for w in result.warnings), *result.infotexts[:1]])
        if result.interrupted:
            text = f"(interrupted)\n{text}"
        return gallery_items(result), infotext_html(text), result.params.seed

    generate.click(run, inputs=[controls[n] for n in names] + [clip_skip], outputs=[gallery, info, last_seed],
                   api_name="txt2img", concurrency_limit=None)
    interrupt.click(services.engine.interrupt, queue=False, api_name="interrupt")
    skip.click(services.engine.skip, queue=False, api_name="skip")
    def count(text: str, steps: float) -> str:
        counted = services.token_count(text or "", steps)
        return "" if counted is None else f"{counted[0]}/{counted[1]}"

    for name, counter in counters.items():
        controls[name].change(count, inputs=[controls[name], controls["steps"]], outputs=counter, queue=False,
                              show_progress="hidden", trigger_mode="always_last", api_name=f"{TAB}_{name}_tokens")
    random_seed.click(lambda: -1, outputs=seed, queue=False, api_visibility="private")
    reuse_seed.click(lambda last: last, inputs=last_seed, outputs=seed, queue=False, api_visibility="private")
