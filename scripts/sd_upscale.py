"""SD upscale (img2img): enlarge the image with an upscaler, then redraw it tile by tile with img2img
at the tab's width x height, blending the tiles' overlaps."""

import copy
import math

import gradio as gr

import modules.scripts as scripts
from modules import images, shared
from modules.core.limits import Limits
from modules.errors import UserError
from modules.processing import Processed, fix_seed, process_images
from modules.shared import opts, state


class Script(scripts.Script):
    def title(self):
        return "SD upscale"

    def show(self, is_img2img):
        return is_img2img

    def ui(self, is_img2img):
        info = gr.HTML(
            "<p>Will upscale the image by the selected scale factor; use width and height sliders to set tile size</p>"
        )
        overlap = gr.Slider(
            minimum=0, maximum=256, step=16, label="Tile overlap", value=64, elem_id=self.elem_id("overlap")
        )
        scale = gr.Slider(
            minimum=1.0, maximum=4.0, step=0.05, label="Scale Factor", value=2.0, elem_id=self.elem_id("scale_factor")
        )
        names = shared.services.tools.upscalers.names()
        upscaler = gr.Radio(
            label="Upscaler", choices=names, value=names[0], type="index", elem_id=self.elem_id("upscaler_index")
        )
        return [info, overlap, upscaler, scale]

    def check_plan(self, p, _info, overlap, upscaler_index, scale):
        """The upscaled image within max_pixels, and its tiles (one image each) within max_grid_cells."""
        if not p.init_images:
            raise UserError("SD upscale needs an input image")
        limits = Limits.from_options(opts)
        source = p.init_images[0]
        width, height = max(1, round(source.width * float(scale))), max(1, round(source.height * float(scale)))
        limits.check_pixels(width, height, "SD upscale: the upscaled image")
        overlap = max(0, min(int(overlap), p.width - 1, p.height - 1))  # as images.split_grid clamps it
        columns, rows = (
            1 if length <= tile else math.ceil((length - overlap) / (tile - overlap))
            for length, tile in ((width, p.width), (height, p.height))
        )
        limits.check_planned_images(columns * rows, f"SD upscale: {columns} × {rows} tiles of {p.width}x{p.height}")

    def run(self, p, _info, overlap, upscaler_index, scale):
        self.check_plan(p, _info, overlap, upscaler_index, scale)
        fix_seed(p)
        upscalers = shared.services.tools.upscalers
        name = upscalers.names()[int(upscaler_index or 0)]
        source = p.init_images[0].convert("RGB")
        large = upscalers.upscale(source, float(scale), name, opts.ESRGAN_tile, opts.ESRGAN_tile_overlap)
        tiles = images.split_grid(large, p.width, p.height, int(overlap))
        job = copy.copy(p)
        job.batch_size, job.n_iter, job.do_not_save_grid, job.do_not_save_samples = 1, 1, True, True
        state.job_count = sum(len(row) for _, _, row in tiles.rows)
        info = ""
        for _, _, row in tiles.rows:
            for index, (x, tile) in enumerate(row):
                job.init_images = [tile]
                job.width, job.height = tile.width // 8 * 8, tile.height // 8 * 8
                processed = process_images(job)
                if not processed.images or state.interrupted:
                    return Processed(p, [], p.seed, "")
                info = processed.info
                row[index] = (x, processed.images[0].resize(tile.size))
        result = images.combine_grid(tiles)
        if opts.samples_save:
            images.save_image(result, p.outpath_samples, "", p.seed, p.prompt, opts.samples_format, info=info, p=p)
        return Processed(p, [result], p.seed, info)
