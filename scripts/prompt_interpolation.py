"""Prompt interpolation: frames whose conditioning moves from each prompt to the next (lerp or slerp), with the
same seed and settings throughout, so only the conditioning moves; optionally the noise travels from the seed
to another seed at the same time (A1111's variation seed). The frames are saved as usual, and joined into an
animated WebP and GIF saved beside them and shown first in the gallery."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

import modules.scripts as scripts
from modules import rng
from modules.core.atomic_files import write_atomic
from modules.core.limits import Limits
from modules.errors import UserError
from modules.processing import Processed, fix_seed, process_images_each
from modules.prompting.conditioning_blend import METHODS, SLERP, ConditioningBlend
from modules.shared import opts, state

ANIMATION_FORMATS = ("webp", "gif")


def frame_positions(prompts: int, frames_per_transition: int) -> list[tuple[int, float]]:
    """(prompt index, share of the way to the next prompt) of every frame; the last frame is the last prompt."""
    return [
        (index, step / frames_per_transition) for index in range(prompts - 1) for step in range(frames_per_transition)
    ] + [(prompts - 1, 0.0)]


def interpolation_lines(text: str | None) -> list[str]:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if len(lines) < 2:
        raise UserError("Prompt interpolation needs at least two prompts, one per line")
    return lines


def save_animation(frames: list[Image.Image], first_frame: Path, fps: float) -> list[Path]:
    """The frames as an animated WebP and GIF beside the first frame's file, looping."""
    saved = []
    for extension in ANIMATION_FORMATS:
        path = first_frame.with_name(f"{first_frame.stem}-interpolation.{extension}")
        write_atomic(
            path,
            lambda handle, fmt=extension: frames[0].save(
                handle,
                format=fmt.upper(),
                save_all=True,
                append_images=frames[1:],
                duration=round(1000 / fps),
                loop=0,
                **({"lossless": True} if fmt == "webp" else {}),
            ),
        )
        saved.append(path)
    return saved


class Script(scripts.Script):
    def title(self):
        return "Prompt interpolation"

    def show(self, is_img2img):
        return not is_img2img

    def ui(self, is_img2img):
        prompts = gr.Textbox(label="Prompts, one per line", lines=3, elem_id=self.elem_id("prompts"))
        frames = gr.Slider(
            label="Frames per transition", minimum=2, maximum=120, step=1, value=8, elem_id=self.elem_id("frames")
        )
        method = gr.Radio(list(METHODS), label="Interpolation", value=SLERP, elem_id=self.elem_id("method"))
        travel = gr.Checkbox(
            label="Also move the noise to another seed", value=False, elem_id=self.elem_id("seed_travel")
        )
        to_seed = gr.Number(label="To seed", value=-1, precision=0, elem_id=self.elem_id("to_seed"))
        fps = gr.Slider(
            label="Animation frames per second", minimum=1, maximum=60, step=1, value=8, elem_id=self.elem_id("fps")
        )
        return [prompts, frames, method, travel, to_seed, fps]

    def check_plan(self, p, prompts, frames, method, travel, to_seed, fps):
        lines = interpolation_lines(prompts)
        if int(frames) < 2:
            raise UserError(f"Frames per transition must be at least 2, got {frames}")
        if method not in METHODS:
            raise UserError(f"Interpolation must be one of {', '.join(METHODS)}, not {method!r}")
        count = len(frame_positions(len(lines), int(frames)))
        Limits.from_options(opts).check_planned_images(
            count * p.batch_size * p.n_iter, f"Prompt interpolation: {count} frames"
        )

    def run(self, p, prompts, frames, method, travel, to_seed, fps):
        self.check_plan(p, prompts, frames, method, travel, to_seed, fps)
        lines = interpolation_lines(prompts)
        positions = frame_positions(len(lines), int(frames))
        fix_seed(p)
        end_seed = rng.resolve_seed(-1 if to_seed is None else int(to_seed)) if travel else None
        state.job_count = len(positions)

        def frame_jobs() -> Iterator[Any]:
            for number, (index, share) in enumerate(positions):
                if state.interrupted:
                    return
                job = copy.copy(p)
                job.prompt = lines[index]
                job.conditioning_blend = ConditioningBlend(lines[index + 1], share, method) if share else None
                if travel:
                    job.subseed, job.subseed_strength = end_seed, number / (len(positions) - 1)
                job.extra_generation_params = {
                    **p.extra_generation_params,
                    "Interpolation": f"{number + 1}/{len(positions)}, {method}",
                }
                yield job

        images, infotexts, seeds, prompts_run, paths, firsts = [], [], [], [], [], []
        for processed in process_images_each(frame_jobs()):
            images += processed.images
            infotexts += processed.infotexts
            seeds += processed.all_seeds
            prompts_run += processed.all_prompts
            paths += processed.paths if len(processed.paths) == len(processed.images) else []
            firsts += processed.images[:1]
        shown_first = 0
        if len(paths) == len(images) and len(firsts) > 1:  # shown and kept like a grid: first, before the frames
            animation = save_animation(firsts, paths[0], float(fps))
            images, infotexts, paths = (
                [Image.open(animation[0]), *images],
                [infotexts[0], *infotexts],
                [animation[0], *paths],
            )
            shown_first = 1
        result = Processed(
            p,
            images,
            p.seed,
            infotexts[0] if infotexts else "",
            all_prompts=prompts_run,
            all_seeds=seeds,
            infotexts=infotexts,
            index_of_first_image=shown_first,
        )
        result.paths = paths
        return result
