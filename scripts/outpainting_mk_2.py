"""Outpainting mk2 (img2img): grow the canvas on the chosen sides and inpaint the new area. The new area
starts as the image's edge colours spread outwards, plus colour noise that grows with the distance from
the image (Color variation, Fall-off exponent), so the sampler has something to build on."""

import gradio as gr

import modules.scripts as scripts
from modules.core.limits import Limits
from modules.errors import UserError
from modules.imaging.outpainting import DIRECTIONS, add_falloff_noise, expand_canvas
from modules.masking import ORIGINAL
from modules.processing import fix_seed, process_images
from modules.shared import opts


class Script(scripts.Script):
    def title(self):
        return "Outpainting mk2"

    def show(self, is_img2img):
        return is_img2img

    def ui(self, is_img2img):
        info = gr.HTML("<p>Recommended settings: Sampling Steps: 80-100, Sampler: Euler a, Denoising strength: 0.8</p>")
        pixels = gr.Slider(
            label="Pixels to expand", minimum=8, maximum=256, step=8, value=128, elem_id=self.elem_id("pixels")
        )
        mask_blur = gr.Slider(
            label="Mask blur", minimum=0, maximum=64, step=1, value=8, elem_id=self.elem_id("mask_blur")
        )
        direction = gr.CheckboxGroup(
            label="Outpainting direction",
            choices=list(DIRECTIONS),
            value=list(DIRECTIONS),
            elem_id=self.elem_id("direction"),
        )
        exponent = gr.Slider(
            label="Fall-off exponent (lower=higher detail)",
            minimum=0.0,
            maximum=4.0,
            step=0.01,
            value=1.0,
            elem_id=self.elem_id("noise_q"),
        )
        variation = gr.Slider(
            label="Color variation",
            minimum=0.0,
            maximum=1.0,
            step=0.01,
            value=0.05,
            elem_id=self.elem_id("color_variation"),
        )
        return [info, pixels, mask_blur, direction, exponent, variation]

    def check_plan(self, p, _info, pixels, mask_blur, direction, exponent, variation):
        """The grown canvas (each chosen side + pixels, rounded up to a multiple of 8) within max_pixels."""
        if not p.init_images:
            raise UserError("Outpainting mk2 needs an input image")
        if not direction:
            raise UserError("Pick at least one outpainting direction")
        image, grow = p.init_images[0], int(pixels)
        width, height = (
            size + grow * sum(side in direction for side in sides)
            for size, sides in ((image.width, ("left", "right")), (image.height, ("up", "down")))
        )
        Limits.from_options(opts).check_pixels(
            width + -width % 8, height + -height % 8, "Outpainting mk2: the grown canvas"
        )

    def run(self, p, _info, pixels, mask_blur, direction, exponent, variation):
        self.check_plan(p, _info, pixels, mask_blur, direction, exponent, variation)
        fix_seed(p)
        canvas, mask = expand_canvas(p.init_images[0], int(pixels), list(direction))
        p.init_images = [add_falloff_noise(canvas, mask, int(pixels), float(exponent), float(variation), p.seed)]
        p.mask, p.mask_blur, p.inpainting_fill = mask, int(mask_blur), ORIGINAL  # sampling starts from the canvas
        p.inpainting_mask_invert, p.inpaint_full_res = 0, 0
        p.width, p.height = canvas.size
        return process_images(p)
