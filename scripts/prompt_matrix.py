"""Prompt matrix: `base|part a|part b` renders every on/off combination of the parts in a labelled grid."""

import dataclasses
import math

import gradio as gr

import modules.scripts as scripts
from modules import images
from modules.core.limits import Limits, output_size
from modules.processing import fix_seed, process_images
from modules.shared import opts

DELIMITERS = {"comma": ", ", "space": " "}


def combinations(text: str, at_start: bool, delimiter: str) -> tuple[list[str], list[str]]:
    """(the parts, one prompt per combination); combination n switches part i on when bit i of n is set."""
    parts = [part.strip().strip(",").strip() for part in text.split("|")]
    prompts = []
    for number in range(1 << (len(parts) - 1)):
        chosen = [part for bit, part in enumerate(parts[1:]) if number & (1 << bit)]
        ordered = [*chosen, parts[0]] if at_start else [parts[0], *chosen]
        prompts.append(delimiter.join(part for part in ordered if part))
    return parts, prompts


class Script(scripts.Script):
    def title(self):
        return "Prompt matrix"

    def ui(self, is_img2img):
        with gr.Row():
            at_start = gr.Checkbox(
                label="Put variable parts at start of prompt", value=False, elem_id=self.elem_id("put_at_start")
            )
            different_seeds = gr.Checkbox(
                label="Use different seed for each picture", value=False, elem_id=self.elem_id("different_seeds")
            )
        with gr.Row():
            prompt_type = gr.Radio(
                ["positive", "negative"], label="Select prompt", value="positive", elem_id=self.elem_id("prompt_type")
            )
            delimiter = gr.Radio(
                list(DELIMITERS),
                label="Select joining char",
                value="comma",
                elem_id=self.elem_id("variations_delimiter"),
            )
        margin = gr.Slider(
            label="Grid margins (px)", minimum=0, maximum=500, value=0, step=2, elem_id=self.elem_id("margin_size")
        )
        return [at_start, different_seeds, prompt_type, delimiter, margin]

    def check_plan(self, p, at_start, different_seeds, prompt_type, delimiter, margin):
        """2^(parts - 1) images, counted before any prompt is built: within max_grid_cells, as one job within
        max_batch_images, and their grid within img_max_size_mp."""
        limits = Limits.from_options(opts)
        variable = (p.prompt if prompt_type == "positive" else p.negative_prompt).count("|")  # as combinations() splits
        count = 1 << variable
        limits.check_planned_images(count, f"Prompt matrix with {variable} variable parts")
        limits.check_generation(dataclasses.replace(p.params, n_iter=math.ceil(count / p.batch_size)))
        limits.check_grid(count, *output_size(p.params), "Prompt matrix")

    def run(self, p, at_start, different_seeds, prompt_type, delimiter, margin):
        self.check_plan(p, at_start, different_seeds, prompt_type, delimiter, margin)
        fix_seed(p)
        source = p.prompt if prompt_type == "positive" else p.negative_prompt
        parts, prompts = combinations(source, at_start, DELIMITERS.get(delimiter, ", "))
        if prompt_type == "positive":
            p.prompt = prompts
        else:
            p.negative_prompt = prompts
        p.seed = [p.seed + (number if different_seeds else 0) for number in range(len(prompts))]
        p.n_iter = math.ceil(len(prompts) / p.batch_size)
        p.do_not_save_grid = True
        processed = process_images(p)
        if not processed.images:
            return processed
        cell = processed.images[0]
        grid = images.image_grid(processed.images, p.batch_size, rows=1 << ((len(parts) - 1) // 2))
        grid = images.draw_prompt_matrix(grid, cell.width, cell.height, parts, int(margin))
        processed.images.insert(0, grid)
        processed.index_of_first_image = 1
        processed.infotexts.insert(0, processed.infotexts[0])
        if opts.grid_save:
            images.save_image(
                grid,
                p.outpath_grids,
                "prompt_matrix",
                extension=opts.grid_format,
                prompt=source,
                seed=processed.seed,
                grid=True,
                p=p,
            )
        return processed
