"""Loopback (img2img): feed each result back in as the next input, moving the denoising strength
towards a final value along a curve."""

import math

import gradio as gr

import modules.scripts as scripts
from modules import images, shared
from modules.core.limits import Limits, output_size
from modules.errors import UserError
from modules.processing import Processed, fix_seed, process_images
from modules.shared import opts, state

CURVES = ("Aggressive", "Linear", "Subtle")
INTERROGATIONS = ("None", "CLIP")  # A1111 also offers DeepBooru, which this web UI doesn't have


def denoising_strength(initial: float, final: float, curve: str, loop: int, loops: int) -> float:
    """The strength for loop number `loop` (0 = the first) of `loops`."""
    if loops <= 1:
        return initial
    progress = loop / (loops - 1)
    shaped = {"Aggressive": math.sin(progress * math.pi / 2), "Subtle": 1 - math.cos(progress * math.pi / 2)}
    return initial + (final - initial) * shaped.get(curve, progress)


class Script(scripts.Script):
    def title(self):
        return "Loopback"

    def show(self, is_img2img):
        return is_img2img

    def ui(self, is_img2img):
        loops = gr.Slider(minimum=1, maximum=32, step=1, label="Loops", value=4, elem_id=self.elem_id("loops"))
        final = gr.Slider(
            minimum=0,
            maximum=1,
            step=0.01,
            label="Final denoising strength",
            value=0.5,
            elem_id=self.elem_id("final_denoising_strength"),
        )
        curve = gr.Dropdown(
            label="Denoising strength curve",
            choices=list(CURVES),
            value="Linear",
            elem_id=self.elem_id("denoising_curve"),
        )
        interrogation = gr.Dropdown(
            label="Append interrogated prompt at each iteration",
            choices=list(INTERROGATIONS),
            value="None",
            elem_id=self.elem_id("append_interrogation"),
        )
        return [loops, final, curve, interrogation]

    def check_plan(self, p, loops, final, curve, interrogation="None"):
        """Loops × batch count images, within max_grid_cells; each batch's row of loops within img_max_size_mp."""
        loops = int(loops)
        if loops < 1:
            raise UserError(f"Loops must be at least 1, got {loops}")
        if interrogation not in INTERROGATIONS:
            raise UserError(
                f"Append interrogated prompt: {interrogation!r} is not available here; "
                f"choose one of {', '.join(INTERROGATIONS)}"
            )
        limits = Limits.from_options(opts)
        limits.check_planned_images(loops * p.n_iter, f"Loopback: {loops} loops × batch count {p.n_iter}")
        limits.check_grid(loops, *output_size(p.params), "Loopback")

    def run(self, p, loops, final, curve, interrogation="None"):
        self.check_plan(p, loops, final, curve, interrogation)
        fix_seed(p)
        loops, batches = int(loops), p.n_iter
        p.extra_generation_params = {
            **p.extra_generation_params,
            "Final denoising strength": final,
            "Denoising curve": curve,
        }
        p.batch_size, p.n_iter, p.do_not_save_grid = 1, 1, True
        first_images, initial, prompt = list(p.init_images), p.denoising_strength, p.prompt
        state.job_count = loops * batches
        grids, results, infotexts, first_seed, first_info = [], [], [], None, ""
        for _ in range(batches):
            p.init_images, history = list(first_images), []
            for loop in range(loops):
                p.denoising_strength = denoising_strength(initial, final, curve, loop, loops)
                if interrogation == "CLIP":  # as A1111: the first prompt, then what CLIP sees in this input
                    p.prompt = (f"{prompt}, " if prompt else "") + shared.interrogator.interrogate(p.init_images[0])
                processed = process_images(p)
                if not processed.images or state.interrupted:
                    break
                if first_seed is None:
                    first_seed, first_info = processed.seed, processed.info
                p.seed = processed.seed + 1
                p.init_images = [processed.images[0]]
                history.append(processed.images[0])
                infotexts.append(processed.infotexts[0])
            if history:
                grid = images.image_grid(history, rows=1)
                if opts.grid_save:
                    images.save_image(
                        grid,
                        p.outpath_grids,
                        "loopback",
                        first_seed,
                        p.prompt,
                        opts.grid_format,
                        info=first_info,
                        grid=True,
                        p=p,
                    )
                grids.append(grid)
                results += history
            if state.interrupted:
                break
        return Processed(
            p,
            grids + results,
            first_seed if first_seed is not None else p.seed,
            first_info,
            infotexts=[first_info] * len(grids) + infotexts,
            index_of_first_image=len(grids),
        )
