"""Prompts from file or textbox: one job per line; a line may set options such as
`--prompt "a cat" --steps 10 --cfg_scale 5 --negative_prompt "blurry"`."""

import copy
import shlex
from collections.abc import Iterator
from typing import Any

import gradio as gr

import modules.scripts as scripts
from modules import shared
from modules.core.limits import Limits
from modules.errors import UserError
from modules.jobs.generation import validate
from modules.jobs.generation_params import GenerationParams
from modules.processing import Processed, fix_seed, process_images_each
from modules.shared import opts, state

FOLDER_KEYS = {"outpath_samples", "outpath_grids"}  # server folders: as the server paths policy allows
OTHER_KEYS = {*FOLDER_KEYS, "do_not_save_samples", "do_not_save_grid", "styles"}


def parse_line(line: str) -> dict:
    """The settings of one line: `--key value` pairs, or the whole line as the prompt."""
    if not line.startswith("--"):
        return {"prompt": line}
    try:
        tokens = shlex.split(line)
    except ValueError as exc:
        raise UserError(f"Can't read the line {line!r}: {exc}") from exc
    settings = {}
    while tokens:
        key = tokens.pop(0)
        name = key[2:]
        if not key.startswith("--") or (name not in GenerationParams.field_names() and name not in OTHER_KEYS):
            raise UserError(f"Unknown option {key!r} in the line {line!r}")
        if not tokens:
            raise UserError(f"The option {key} has no value in the line {line!r}")
        value = tokens.pop(0)
        if name in FOLDER_KEYS:
            value = str(shared.services.server_paths.folder(value, f"Prompts from file {key}"))
        settings[name] = GenerationParams.coerce(name, value) if name in GenerationParams.field_names() else value
    return settings


class Script(scripts.Script):
    def title(self):
        return "Prompts from file or textbox"

    def ui(self, is_img2img):
        iterate = gr.Checkbox(label="Iterate seed every line", value=False, elem_id=self.elem_id("checkbox_iterate"))
        same_seed = gr.Checkbox(
            label="Use same random seed for all lines", value=False, elem_id=self.elem_id("checkbox_iterate_batch")
        )
        position = gr.Radio(
            ["start", "end"], label="Insert prompts at the", value="start", elem_id=self.elem_id("prompt_position")
        )
        text = gr.Textbox(label="List of prompt inputs", lines=2, elem_id=self.elem_id("prompt_txt"))
        upload = gr.File(label="Upload prompt inputs", type="binary", elem_id=self.elem_id("file"))
        return [iterate, same_seed, position, text, upload]

    def check_plan(self, p, iterate, same_seed, position, text, upload):
        """The lines are counted before any is parsed, then each line's job is checked against the limits; all
        the lines' images together within max_grid_cells."""
        limits = Limits.from_options(opts)
        lines = prompt_lines(text, upload)
        limits.check_planned_images(len(lines) * p.batch_size * p.n_iter, f"Prompts from file: {len(lines)} lines")
        total = 0
        for number, settings in enumerate(parse_line(line) for line in lines):
            job = line_job(p, settings, lines[number], position)
            try:
                validate(job.params, limits)
            except UserError as exc:
                raise UserError(f"Prompts from file, line {number + 1}: {exc}") from None
            total += job.batch_size * job.n_iter
        limits.check_planned_images(total, f"Prompts from file: {len(lines)} lines")

    def run(self, p, iterate, same_seed, position, text, upload):
        self.check_plan(p, iterate, same_seed, position, text, upload)
        lines = prompt_lines(text, upload)
        jobs = [parse_line(line) for line in lines]
        if iterate or same_seed:
            fix_seed(p)
        state.job_count = len(jobs)
        images, prompts, seeds, infotexts = [], [], [], []

        def line_jobs() -> Iterator[Any]:
            """Each line's job in order, made as it is taken."""
            for number, settings in enumerate(jobs):
                if state.interrupted:
                    return
                job = line_job(p, settings, lines[number], position)
                if iterate and "seed" not in settings:
                    job.seed = p.seed + number * p.batch_size * p.n_iter
                yield job

        for processed in process_images_each(line_jobs()):
            images += processed.images
            prompts += processed.all_prompts
            seeds += processed.all_seeds
            infotexts += processed.infotexts
        return Processed(
            p,
            images,
            p.seed,
            infotexts[0] if infotexts else "",
            all_prompts=prompts,
            all_seeds=seeds,
            infotexts=infotexts,
        )


def prompt_lines(text: str | None, upload: bytes | None) -> list[str]:
    """The non-empty lines of the uploaded file, else of the text box."""
    if upload:
        text = upload.decode("utf-8", errors="replace")
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not lines:
        raise UserError("Give at least one prompt, one per line")
    return lines


def line_job(p, settings: dict, line: str, position: str):
    """A copy of `p` with one line's settings; a plain prompt goes before or after the tab's prompt."""
    job = copy.copy(p)
    for name, value in settings.items():
        setattr(job, name, value)
    if "prompt" in settings and p.prompt and "--prompt" not in line:
        job.prompt = f"{settings['prompt']} {p.prompt}" if position == "start" else f"{p.prompt} {settings['prompt']}"
    return job
